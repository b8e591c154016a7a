//! `get`: server-side Tables for humans (so the columns are the ones the real kubectl shows
//! against this server), the objects themselves for `-o yaml|json|name|jsonpath=…`. Lists are
//! read in chunks of 500 (`limit`/`continue`), as kubectl does.
//!
//! `-w` lists, then watches from the list's resourceVersion and prints a row per change (the
//! server renders each watched object as a one-row Table), aligned with the rows above it.

use api::ResourceInfo;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::builder::{self, Selection};
use crate::color;
use crate::context::{Context, query};
use crate::errors::{self, Error, Result};
use crate::printer::{self, Output, Section, TableOptions};
use crate::tabwriter;

#[derive(clap::Args, Debug, Default)]
#[command(after_help = "Examples:
  kubectl-lite get pods                        # pods of the current namespace
  kubectl-lite get pods -o wide -A             # every namespace, with IP and NODE
  kubectl-lite get deploy,rs,po -l app=blog    # several kinds, by label
  kubectl-lite get pod web-1 -o yaml           # one object, whole
  kubectl-lite get pods -o jsonpath='{.items[*].status.podIP}'
  kubectl-lite get pods -w                     # then watch changes (Ctrl-C stops)")]
pub struct Get {
    /// `KIND [NAME…]`, `KIND/NAME…`, `kind1,kind2`, or `all`.
    #[arg(value_name = "RESOURCE")]
    pub args: Vec<String>,
    /// Output format: wide, yaml, json, name, jsonpath=TEMPLATE or jsonpath-file=FILE.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
    /// After listing, watch for changes and print them as they happen (Ctrl-C stops).
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Watch for changes without listing first.
    #[arg(long)]
    pub watch_only: bool,
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
        if self.watch || self.watch_only {
            return self.watch(ctx, &output, &selections).await;
        }
        if output.is_human() {
            self.human(ctx, &output, &selections).await
        } else {
            self.generic(ctx, &output, &selections).await
        }
    }

    fn table_options(&self, output: &Output, sel: &Selection, several_kinds: bool) -> TableOptions {
        TableOptions {
            wide: *output == Output::Wide,
            no_headers: self.no_headers,
            with_namespace: self.all_namespaces && sel.info.namespaced,
            show_labels: self.show_labels,
            kind_prefix: several_kinds.then(|| sel.info.kind_string()),
            color: color::stdout(),
        }
    }

    /// `-w`: the list (unless `--watch-only`), then a row (or an object) per change.
    async fn watch(&self, ctx: &Context, output: &Output, selections: &[Selection]) -> Result<()> {
        let [sel] = selections else {
            return Err(Error::msg(format!(
                "watch is only supported on individual resources and resource collections, but {} resources were found",
                selections.len()
            )));
        };
        if sel.names.len() > 1 {
            return Err(Error::msg(format!(
                "watch is only supported on individual resources and resource collections, but {} resources were found",
                sel.names.len()
            )));
        }
        let mut params = self.list_params();
        params.retain(|(k, _)| *k != "limit");
        if let Some(name) = sel.names.first() {
            params.push(("fieldSelector", format!("metadata.name={name}")));
        }
        let collection = sel.info.collection_path(self.namespace(ctx));
        let options = self.table_options(output, sel, false);
        let mut widths: Vec<usize> = Vec::new();
        let mut header_printed = false;
        // The first list: printed like `get`, and the resourceVersion to watch from.
        let rv = if self.watch_only {
            "0".to_string()
        } else {
            let list = if output.is_human() {
                ctx.get_table(&format!("{collection}{}", query(&params)))
                    .await?
            } else {
                ctx.get(&format!("{collection}{}", query(&params))).await?
            };
            let rv = list["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("0")
                .to_string();
            if output.is_human() {
                let table = as_table(sel.info, list);
                let cells = printer::table_cells(&table, &options);
                if !cells.is_empty() {
                    let (text, w) = tabwriter::align_min(&cells, tabwriter::GET, &[]);
                    printer::stdout(&text);
                    widths = w;
                    header_printed = !self.no_headers;
                } else {
                    printer::stderr(&printer::no_resources(
                        (!self.all_namespaces && sel.info.namespaced)
                            .then_some(ctx.namespace.as_str()),
                    ));
                }
            } else {
                let items: Vec<(&'static ResourceInfo, Value)> = list["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|o| (sel.info, printer::with_type_meta(sel.info, o)))
                    .collect();
                for (info, o) in items {
                    printer::stdout(&watched_object(output, info, o)?);
                }
            }
            rv
        };
        params.push(("resourceVersion", rv));
        params.push(("watch", "true".to_string()));
        let mut events = ctx
            .watch(
                &format!("{collection}{}", query(&params)),
                output.is_human(),
            )
            .await?;
        // With --watch-only and a resourceVersion of 0, the current objects come first as ADDED.
        while let Some(ev) = events.next().await {
            let ev = ev?;
            match ev.type_.as_str() {
                "ERROR" => {
                    let status: api::Status =
                        serde_json::from_value(ev.object).map_err(|e| Error::msg(e.to_string()))?;
                    return Err(Error::Api(Box::new(status)));
                }
                "BOOKMARK" => continue,
                _ => {}
            }
            if output.is_human() {
                let mut o = options.clone();
                o.no_headers = header_printed || self.no_headers;
                let table = as_table(sel.info, ev.object);
                let cells = printer::table_cells(&table, &o);
                if cells.is_empty() {
                    continue;
                }
                let (text, w) = tabwriter::align_min(&cells, tabwriter::GET, &widths);
                printer::stdout(&text);
                widths = w;
                header_printed = header_printed || !self.no_headers;
            } else {
                let obj = printer::with_type_meta(sel.info, ev.object);
                printer::stdout(&watched_object(output, sel.info, obj)?);
            }
        }
        Ok(())
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

    async fn human(&self, ctx: &Context, output: &Output, selections: &[Selection]) -> Result<()> {
        let several_kinds = selections.len() > 1;
        let mut sections = Vec::new();
        let mut errors = Vec::new();
        for sel in selections {
            let options = self.table_options(output, sel, several_kinds);
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
                    match ctx.get_table(&path).await {
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

    async fn generic(
        &self,
        ctx: &Context,
        output: &Output,
        selections: &[Selection],
    ) -> Result<()> {
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

/// One watched object as `-o yaml|json|name|jsonpath` prints it (YAML documents separated by
/// `---`, as kubectl does).
fn watched_object(output: &Output, info: &'static ResourceInfo, obj: Value) -> Result<String> {
    let text = printer::generic(output, vec![(info, obj)], true).map_err(Error::Message)?;
    Ok(match output {
        Output::Yaml => format!("---\n{text}"),
        Output::JsonPath(_) => text,
        _ => text,
    })
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
