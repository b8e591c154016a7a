//! `wait --for=condition=Available|delete|create|jsonpath='{…}'=VALUE KIND/NAME`: follow each
//! object (a watch, see [`crate::watch`]) until the condition holds, printing
//! `deployment.apps/web condition met`; `timed out waiting for the condition on …` after
//! `--timeout` (30s by default, as kubectl).

use std::time::Duration;

use serde_json::Value;

use crate::builder::{self, Query};
use crate::context::Context;
use crate::errors::{self, Error, Result};
use crate::jsonpath::Template;
use crate::manifest::FilenameArgs;
use crate::printer;
use crate::util::parse_duration;
use crate::watch;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  kubectl-lite wait --for=condition=Available deploy/blog --timeout=60s
  kubectl-lite wait --for=jsonpath='{.status.readyReplicas}'=3 deploy/blog
  kubectl-lite wait --for=delete pod/web-1
  kubectl-lite wait --for=condition=Ready pods -l app=blog")]
pub struct Wait {
    /// `KIND/NAME…`, `KIND NAME…`, or `KIND` with `-l`/`--all`.
    #[arg(value_name = "RESOURCE")]
    pub args: Vec<String>,
    #[command(flatten)]
    pub files: FilenameArgs,
    /// `delete`, `create`, `condition=NAME[=VALUE]` or `jsonpath='{PATH}'[=VALUE]`.
    #[arg(long = "for", value_name = "CONDITION")]
    pub for_: String,
    /// Give up after this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Every object of the kinds given.
    #[arg(long)]
    pub all: bool,
    /// The objects matching this label selector.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// What `--for` asks.
#[derive(Clone, Debug)]
pub enum Condition {
    Delete,
    Create,
    /// A `status.conditions[]` entry of this type with this status (case-insensitive).
    Condition {
        name: String,
        status: String,
    },
    /// A JSONPath that has (this) value.
    JsonPath {
        path: Template,
        value: Option<String>,
    },
}

impl Condition {
    pub fn parse(s: &str) -> Result<Condition> {
        let lower = s.to_ascii_lowercase();
        if lower == "delete" {
            return Ok(Condition::Delete);
        }
        if lower == "create" {
            return Ok(Condition::Create);
        }
        if let Some(rest) = s.strip_prefix("condition=") {
            let (name, status) = match rest.split_once('=') {
                Some((n, v)) => (n, v),
                None => (rest, "true"),
            };
            if name.is_empty() {
                return Err(Error::msg(format!("unrecognized condition: {s:?}")));
            }
            return Ok(Condition::Condition {
                name: name.to_string(),
                status: status.to_string(),
            });
        }
        if let Some(rest) = s.strip_prefix("jsonpath=") {
            let fail = || {
                Error::msg(
                    "jsonpath wait format must be --for=jsonpath='{.status.readyReplicas}'=3 or --for=jsonpath='{.status.readyReplicas}'",
                )
            };
            // Quotes the shell left in (`--for=jsonpath='{.x}'=3`) are not part of it.
            let rest = rest.replace('\'', "");
            let (path, value) = match rest.rfind("}=") {
                Some(i) => (&rest[..=i], Some(rest[i + 2..].to_string())),
                None => (rest.as_str(), None),
            };
            if !path.starts_with('{') || !path.ends_with('}') {
                return Err(fail());
            }
            let path = Template::parse(path).map_err(|_| fail())?;
            return Ok(Condition::JsonPath { path, value });
        }
        Err(Error::msg(format!("unrecognized condition: {s:?}")))
    }

    /// Whether the object (None: absent) meets the condition.
    pub fn met(&self, obj: Option<&Value>) -> bool {
        match (self, obj) {
            (Condition::Delete, o) => o.is_none(),
            (Condition::Create, o) => o.is_some(),
            (_, None) => false,
            (Condition::Condition { name, status }, Some(o)) => {
                let generation = o["metadata"]["generation"].as_i64();
                let Some(c) = o["status"]["conditions"].as_array().and_then(|cs| {
                    cs.iter().find(|c| {
                        c["type"]
                            .as_str()
                            .is_some_and(|t| t.eq_ignore_ascii_case(name))
                    })
                }) else {
                    return false;
                };
                let observed = c["observedGeneration"]
                    .as_i64()
                    .or_else(|| o["status"]["observedGeneration"].as_i64());
                if let (Some(g), Some(seen)) = (generation, observed)
                    && seen < g
                {
                    return false;
                }
                c["status"]
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(status))
            }
            (Condition::JsonPath { path, value }, Some(o)) => {
                let got = path.render(o).unwrap_or_default();
                match value {
                    Some(v) => got == *v,
                    None => !got.is_empty(),
                }
            }
        }
    }
}

impl Wait {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        let cond = Condition::parse(&self.for_)?;
        let deadline = crate::util::deadline(self.timeout);
        if matches!(cond, Condition::Create) {
            // Wait for the named objects to exist first.
            let selections = builder::parse(&self.args)?;
            for sel in &selections {
                for name in &sel.names {
                    let mut exists = |o: Option<&Value>| Ok(o.is_some());
                    watch::until(ctx, sel.info, &ctx.namespace, name, deadline, &mut exists)
                        .await
                        .map_err(|e| timeout_on(e, sel.info.plural, name))?;
                }
            }
        }
        let (objects, errors) = builder::objects(
            ctx,
            Query {
                args: &self.args,
                files: Some(&self.files),
                selector: self.selector.as_deref(),
                all: self.all,
                all_namespaces: self.all_namespaces,
            },
        )
        .await?;
        let is_delete = matches!(cond, Condition::Delete);
        // Waiting for deletion, an object that is not there is what was wanted.
        let errors: Vec<Error> = errors
            .into_iter()
            .filter(|e| !(is_delete && e.is_not_found()))
            .collect();
        if !errors.is_empty() {
            return errors::collect(errors);
        }
        if objects.is_empty() && !is_delete {
            return Err(Error::msg("no matching resources found"));
        }
        for o in &objects {
            let uid = o.object["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let mut check = |obj: Option<&Value>| -> Result<bool> {
                // A new object of the same name is not the one being waited on.
                let obj = obj
                    .filter(|x| !is_delete || x["metadata"]["uid"].as_str() == Some(uid.as_str()));
                Ok(cond.met(obj))
            };
            watch::until(ctx, o.info, &o.namespace, &o.name, deadline, &mut check)
                .await
                .map_err(|e| timeout_on(e, o.info.plural, &o.name))?;
            printer::stdout(&format!(
                "{} condition met\n",
                o.info.qualified_name(&o.name)
            ));
        }
        Ok(())
    }
}

/// kubectl names the object in its timeout message.
fn timeout_on(e: Error, plural: &str, name: &str) -> Error {
    if e.to_string() == "timed out waiting for the condition" {
        Error::msg(format!(
            "timed out waiting for the condition on {plural}/{name}"
        ))
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions() {
        let d = json!({"metadata": {"generation": 2},
                       "status": {"observedGeneration": 2, "readyReplicas": 3,
                                  "conditions": [{"type": "Available", "status": "True"}]}});
        let met = |s: &str, o: Option<&Value>| Condition::parse(s).map(|c| c.met(o));
        assert!(met("condition=Available", Some(&d)).unwrap());
        assert!(met("condition=available=true", Some(&d)).unwrap());
        assert!(!met("condition=Available=False", Some(&d)).unwrap());
        assert!(!met("condition=Progressing", Some(&d)).unwrap());
        assert!(met("jsonpath={.status.readyReplicas}=3", Some(&d)).unwrap());
        assert!(met("jsonpath='{.status.readyReplicas}'=3", Some(&d)).unwrap());
        assert!(!met("jsonpath={.status.readyReplicas}=2", Some(&d)).unwrap());
        assert!(met("jsonpath={.status.readyReplicas}", Some(&d)).unwrap());
        assert!(met("delete", None).unwrap());
        assert!(!met("delete", Some(&d)).unwrap());
        let mut stale = d.clone();
        stale["metadata"]["generation"] = json!(3);
        assert!(!met("condition=Available", Some(&stale)).unwrap());
        assert_eq!(
            Condition::parse("ready").unwrap_err().to_string(),
            "unrecognized condition: \"ready\""
        );
        assert!(Condition::parse("jsonpath=.status").is_err());
    }
}
