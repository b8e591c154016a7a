//! `api-resources`: what the server serves, from discovery (`/api/v1`, `/apis`, and each group's
//! preferred version), subresources left out, sorted by group then name as kubectl sorts them.

use serde_json::Value;

use crate::context::Context;
use crate::errors::{Error, Result};
use crate::printer;
use crate::tabwriter;

#[derive(clap::Args, Debug)]
pub struct ApiResources {
    /// Output format: wide or name.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
    /// Only namespaced (true) or cluster-scoped (false) resources.
    #[arg(long, value_name = "BOOL")]
    pub namespaced: Option<bool>,
    /// Only resources in this API group (`""` for the core group).
    #[arg(long, value_name = "GROUP")]
    pub api_group: Option<String>,
    /// Don't print headers.
    #[arg(long)]
    pub no_headers: bool,
    /// Sort by `name` or `kind` (default: group, then name).
    #[arg(long, value_name = "FIELD")]
    pub sort_by: Option<String>,
}

/// One row of discovery.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiResource {
    pub name: String,
    pub short_names: Vec<String>,
    pub group: String,
    pub version: String,
    pub namespaced: bool,
    pub kind: String,
    pub verbs: Vec<String>,
    pub categories: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The resources of an `APIResourceList`, without subresources.
pub fn from_list(group: &str, version: &str, list: &Value) -> Vec<ApiResource> {
    list["resources"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter_map(|r| {
            let name = r["name"].as_str()?;
            if name.contains('/') || strings(&r["verbs"]).is_empty() {
                return None;
            }
            Some(ApiResource {
                name: name.to_string(),
                short_names: strings(&r["shortNames"]),
                group: group.to_string(),
                version: version.to_string(),
                namespaced: r["namespaced"].as_bool().unwrap_or(false),
                kind: r["kind"].as_str().unwrap_or_default().to_string(),
                verbs: strings(&r["verbs"]),
                categories: strings(&r["categories"]),
            })
        })
        .collect()
}

/// kubectl's layout: NAME SHORTNAMES APIVERSION NAMESPACED KIND (+ VERBS CATEGORIES when wide).
pub fn render(resources: &[ApiResource], output: &str, no_headers: bool) -> String {
    if output == "name" {
        return resources
            .iter()
            .map(|r| {
                if r.group.is_empty() {
                    format!("{}\n", r.name)
                } else {
                    format!("{}.{}\n", r.name, r.group)
                }
            })
            .collect();
    }
    let wide = output == "wide";
    let mut text = String::new();
    if !no_headers {
        text.push_str("NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND");
        if wide {
            text.push_str("\tVERBS\tCATEGORIES");
        }
        text.push('\n');
    }
    for r in resources {
        let gv = if r.group.is_empty() {
            r.version.clone()
        } else {
            format!("{}/{}", r.group, r.version)
        };
        text.push_str(&format!(
            "{}\t{}\t{gv}\t{}\t{}",
            r.name,
            r.short_names.join(","),
            r.namespaced,
            r.kind
        ));
        if wide {
            text.push_str(&format!(
                "\t{}\t{}",
                r.verbs.join(","),
                r.categories.join(",")
            ));
        }
        text.push('\n');
    }
    tabwriter::align(&text)
}

impl ApiResources {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        let output = self.output.clone().unwrap_or_default();
        if !matches!(output.as_str(), "" | "wide" | "name") {
            return Err(Error::msg(format!(
                "--output {output} is not available, use one of: wide, name"
            )));
        }
        let mut all = from_list("", "v1", &ctx.get("/api/v1").await?);
        let groups = ctx.get("/apis").await?;
        for g in groups["groups"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            let (Some(name), Some(gv)) = (
                g["name"].as_str(),
                g["preferredVersion"]["groupVersion"].as_str(),
            ) else {
                continue;
            };
            let version = gv.rsplit('/').next().unwrap_or(gv);
            let list = ctx.get(&format!("/apis/{gv}")).await?;
            all.extend(from_list(name, version, &list));
        }
        all.retain(|r| {
            self.namespaced.is_none_or(|n| n == r.namespaced)
                && self.api_group.as_deref().is_none_or(|g| g == r.group)
        });
        let key = |r: &ApiResource| match self.sort_by.as_deref() {
            Some("name") => r.name.clone(),
            Some("kind") => r.kind.clone(),
            _ => r.group.clone(),
        };
        all.sort_by(|a, b| key(a).cmp(&key(b)).then_with(|| a.name.cmp(&b.name)));
        printer::stdout(&render(&all, &output, self.no_headers));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn discovery_rows() {
        let list = json!({"resources": [
            {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod", "verbs": ["get", "list"], "shortNames": ["po"], "categories": ["all"]},
            {"name": "pods/log", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
            {"name": "nodes", "namespaced": false, "kind": "Node", "verbs": ["get"], "shortNames": ["no"]}
        ]});
        let rows = from_list("", "v1", &list);
        assert_eq!(rows.len(), 2);
        let text = render(&rows, "", false);
        assert_eq!(
            text,
            "NAME    SHORTNAMES   APIVERSION   NAMESPACED   KIND\n\
             pods    po           v1           true         Pod\n\
             nodes   no           v1           false        Node\n"
        );
        assert_eq!(render(&rows, "name", false), "pods\nnodes\n");
        insta::assert_snapshot!(render(&rows, "wide", false));
    }
}
