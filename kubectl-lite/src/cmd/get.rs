//! `get`: server-side Tables for humans (so the columns are the ones the real kubectl shows
//! against this server), the objects themselves for `-o yaml|json|name`. Lists are read in
//! chunks of 500 (`limit`/`continue`), as kubectl does.

use api::ResourceInfo;
use serde_json::{Value, json};

use crate::builder::{self, Selection};
use crate::context::Context;
use crate::errors::{self, Error, Result};
use crate::printer::{self, Output, Section, TableOptions};
use crate::rest::query;

#[derive(clap::Args, Debug, Default)]
pub struct Get {
    /// `KIND [NAME…]`, `KIND/NAME…`, `kind1,kind2`, or `all`.
    #[arg(value_name = "RESOURCE")]
    pub args: Vec<String>,
    /// Output format: wide, yaml, json or name.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
    /// Label selector to filter on (`app=web`, `tier in (a,b)`, `!canary`).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Field selector to filter on (`metadata.name=web`, `status.phase!=Running`).
    #[arg(long, value_name = "SELECTOR")]
    pub field_selector: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Show all labels as the last column.
    #[arg(long)]
    pub show_labels: bool,
    /// Don't print headers.
    #[arg(long)]
    pub no_headers: bool,
    /// Treat "resource not found" as a successful retrieval.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Return large lists in chunks rather than all at once (0: one request).
    #[arg(long, default_value_t = 500)]
    pub chunk_size: i64,
}

impl Get {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        if self.args.is_empty() {
            return Err(Error::msg(
                "Required resource not specified.\nUse \"kubectl-lite api-resources\" for a complete list of supported resources.",
            ));
        }
        let output = Output::parse(self.output.as_deref()).map_err(Error::Message)?;
        let selections = builder::parse(&self.args)?;
        let named = selections.iter().any(|s| !s.names.is_empty());
        if named && self.all_namespaces {
            return Err(Error::msg(
                "a resource cannot be retrieved by name across all namespaces",
            ));
        }
        if named && (self.selector.is_some() || self.field_selector.is_some()) {
            return Err(Error::msg(
                "name cannot be provided when a selector is specified",
            ));
        }
        if output.is_human() {
            self.human(ctx, output, &selections).await
        } else {
            self.generic(ctx, output, &selections).await
        }
    }

    /// The namespace in request paths: None lists across all namespaces.
    fn namespace<'a>(&self, ctx: &'a Context) -> Option<&'a str> {
        (!self.all_namespaces).then_some(ctx.namespace.as_str())
    }

    fn list_params(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(s) = &self.selector {
            q.push(("labelSelector", s.clone()));
        }
        if let Some(s) = &self.field_selector {
            q.push(("fieldSelector", s.clone()));
        }
        if self.chunk_size > 0 {
            q.push(("limit", self.chunk_size.to_string()));
        }
        q
    }

    async fn human(&self, ctx: &Context, output: Output, selections: &[Selection]) -> Result<()> {
        let several_kinds = selections.len() > 1;
        let mut sections = Vec::new();
        let mut errors = Vec::new();
        for sel in selections {
            let options = TableOptions {
                wide: output == Output::Wide,
                no_headers: self.no_headers,
                with_namespace: self.all_namespaces && sel.info.namespaced,
                show_labels: self.show_labels,
                kind_prefix: several_kinds.then(|| printer::kind_string(sel.info)),
            };
            let table = if sel.names.is_empty() {
                match self.list_table(ctx, sel.info).await {
                    Ok(t) => t,
                    Err(e) if e.is_transport() => return Err(e),
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                }
            } else {
                let mut table: Option<Value> = None;
                for name in &sel.names {
                    let path = sel.info.object_path(self.namespace(ctx), name);
                    match ctx.rest.get_table(&path).await {
                        Ok(t) => merge_rows(&mut table, as_table(sel.info, t)),
                        Err(e) if e.is_not_found() && self.ignore_not_found => {}
                        Err(e) if e.is_transport() => return Err(e),
                        Err(e) => errors.push(e),
                    }
                }
                match table {
                    Some(t) => t,
                    None => continue,
                }
            };
            sections.push(Section { table, options });
        }
        let text = printer::tables(&sections);
        printer::stdout(&text);
        if text.is_empty() && errors.is_empty() && !self.ignore_not_found {
            let all_namespaced =
                !self.all_namespaces && selections.iter().all(|s| s.info.namespaced);
            printer::stderr(&printer::no_resources(
                all_namespaced.then_some(ctx.namespace.as_str()),
            ));
        }
        errors::collect(errors)
    }

    /// Every page of a list, as one Table.
    async fn list_table(&self, ctx: &Context, info: &'static ResourceInfo) -> Result<Value> {
        let mut table: Option<Value> = None;
        let mut cont = String::new();
        loop {
            let mut q = self.list_params();
            if !cont.is_empty() {
                q.push(("continue", cont.clone()));
            }
            let page = ctx
                .rest
                .get_table(&format!(
                    "{}{}",
                    info.collection_path(self.namespace(ctx)),
                    query(&q)
                ))
                .await?;
            cont = page["metadata"]["continue"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            merge_rows(&mut table, as_table(info, page));
            if cont.is_empty() {
                break;
            }
        }
        Ok(table.unwrap_or_else(|| {
            api::table::table(info, &[], "", None, "Metadata", chrono::Utc::now())
        }))
    }

    async fn generic(&self, ctx: &Context, output: Output, selections: &[Selection]) -> Result<()> {
        let mut objects: Vec<(&'static ResourceInfo, Value)> = Vec::new();
        let mut errors = Vec::new();
        for sel in selections {
            if sel.names.is_empty() {
                match self.list_items(ctx, sel.info).await {
                    Ok(items) => objects.extend(
                        items
                            .into_iter()
                            .map(|o| (sel.info, printer::with_type_meta(sel.info, o))),
                    ),
                    Err(e) if e.is_transport() => return Err(e),
                    Err(e) => errors.push(e),
                }
                continue;
            }
            for name in &sel.names {
                match ctx
                    .rest
                    .get(&sel.info.object_path(self.namespace(ctx), name))
                    .await
                {
                    Ok(o) => objects.push((sel.info, printer::with_type_meta(sel.info, o))),
                    Err(e) if e.is_not_found() && self.ignore_not_found => {}
                    Err(e) if e.is_transport() => return Err(e),
                    Err(e) => errors.push(e),
                }
            }
        }
        // `get KIND NAME` implies one object: print it as itself, not as a List.
        let single = selections.len() == 1 && selections[0].names.len() == 1;
        // Nothing found for one name, or with --ignore-not-found: no empty List either.
        if !(objects.is_empty() && (single || self.ignore_not_found)) {
            printer::stdout(&printer::generic(output, objects, single).map_err(Error::Message)?);
        }
        errors::collect(errors)
    }

    async fn list_items(&self, ctx: &Context, info: &'static ResourceInfo) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cont = String::new();
        loop {
            let mut q = self.list_params();
            if !cont.is_empty() {
                q.push(("continue", cont.clone()));
            }
            let mut page = ctx
                .rest
                .get(&format!(
                    "{}{}",
                    info.collection_path(self.namespace(ctx)),
                    query(&q)
                ))
                .await?;
            cont = page["metadata"]["continue"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if let Some(Value::Array(a)) = page.get_mut("items").map(Value::take) {
                items.extend(a);
            }
            if cont.is_empty() {
                return Ok(items);
            }
        }
    }
}

/// A Table, whatever the server answered: an object or a list (a server without Table support)
/// is turned into one with the same code the API server uses.
pub fn as_table(info: &ResourceInfo, v: Value) -> Value {
    if v["kind"] == "Table" {
        return v;
    }
    let items: Vec<Value> = match v.get("items").and_then(Value::as_array) {
        Some(items) => items.clone(),
        None => vec![v.clone()],
    };
    let rv = v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default();
    api::table::table(info, &items, rv, None, "Metadata", chrono::Utc::now())
}

/// Append `more`'s rows to `table` (the first table's columns win).
fn merge_rows(table: &mut Option<Value>, more: Value) {
    match table {
        None => *table = Some(more),
        Some(t) => {
            let rows = more["rows"].as_array().cloned().unwrap_or_default();
            match t["rows"].as_array_mut() {
                Some(existing) => existing.extend(rows),
                None => t["rows"] = json!(rows),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::resource::CONFIG_MAP;

    #[test]
    fn objects_become_tables() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "7"}, "data": {"a": "1"}});
        let t = as_table(&CONFIG_MAP, cm.clone());
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["rows"][0]["cells"][0], "c");
        assert_eq!(t["rows"][0]["cells"][1], 1);
        let l = as_table(
            &CONFIG_MAP,
            json!({"kind": "ConfigMapList", "items": [cm.clone(), cm]}),
        );
        assert_eq!(l["rows"].as_array().map(Vec::len), Some(2));
        let mut merged = None;
        merge_rows(&mut merged, t.clone());
        merge_rows(&mut merged, t);
        assert_eq!(
            merged.map(|m| m["rows"].as_array().map(Vec::len)),
            Some(Some(2))
        );
    }
}
