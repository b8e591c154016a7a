//! `label` and `annotate`: `KIND NAME key=value… key-…`, also for `-l`, `--all` and `-f`.
//! A JSON merge patch of `metadata.labels` (or `annotations`) per object, as kubectl sends;
//! changing an existing key needs `--overwrite`; `--list` prints what is there.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::builder::{self, Query};
use crate::context::{Context, PatchType};
use crate::errors::{self, Error, Result};
use crate::manifest::FilenameArgs;
use crate::printer;

/// Shared flags of `label` and `annotate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// `KIND NAME…` or `KIND/NAME…`, then `key=value` to set and `key-` to remove.
    #[arg(value_name = "RESOURCE KEY=VALUE… KEY-…")]
    pub args: Vec<String>,
    #[command(flatten)]
    pub files: FilenameArgs,
    /// Allow changing the value of a key that is already there.
    #[arg(long)]
    pub overwrite: bool,
    /// Every object of the kinds given (in the namespace).
    #[arg(long)]
    pub all: bool,
    /// The objects matching this label selector.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Across all namespaces (with -l or --all).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Print the current keys and values instead of changing them.
    #[arg(long)]
    pub list: bool,
    /// Only change the object if its resourceVersion is still this.
    #[arg(long, value_name = "VERSION")]
    pub resource_version: Option<String>,
    /// Output format: `name` prints only `kind.group/name`.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  kubectl-lite label pod web-1 tier=front
  kubectl-lite label pod web-1 tier=back --overwrite
  kubectl-lite label pods -l app=blog tier-    # remove the label
  kubectl-lite label deploy blog --list")]
pub struct Label {
    #[command(flatten)]
    pub args: Args,
}

#[derive(clap::Args, Debug)]
pub struct Annotate {
    #[command(flatten)]
    pub args: Args,
}

/// Which map is being changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Labels,
    Annotations,
}

impl Field {
    fn key(self) -> &'static str {
        match self {
            Field::Labels => "labels",
            Field::Annotations => "annotations",
        }
    }
    fn noun(self) -> &'static str {
        match self {
            Field::Labels => "label",
            Field::Annotations => "annotation",
        }
    }
}

impl Label {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        run(ctx, self.args, Field::Labels).await
    }
}

impl Annotate {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        run(ctx, self.args, Field::Annotations).await
    }
}

/// What to change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

/// Split the arguments into resources and `key=value`/`key-` changes (the changes come last).
pub fn split(args: &[String], field: Field) -> Result<(Vec<String>, Changes)> {
    let first_change = args
        .iter()
        .position(|a| a.contains('=') || (a.ends_with('-') && !a.contains('/')))
        .unwrap_or(args.len());
    let (resources, specs) = args.split_at(first_change);
    let mut changes = Changes::default();
    for spec in specs {
        if let Some((k, v)) = spec.split_once('=') {
            if k.is_empty() {
                return Err(Error::msg(format!("invalid {} spec: {spec}", field.noun())));
            }
            if field == Field::Labels {
                validate_label(k, v)
                    .map_err(|why| Error::msg(format!("invalid label value: {spec:?}: {why}")))?;
            }
            changes.set.insert(k.to_string(), v.to_string());
        } else if let Some(k) = spec.strip_suffix('-') {
            changes.remove.push(k.to_string());
        } else {
            return Err(Error::msg(format!("unknown {} spec: {spec}", field.noun())));
        }
    }
    if changes.remove.iter().any(|k| changes.set.contains_key(k)) {
        return Err(Error::msg(format!(
            "can not both modify and remove {} in the same command",
            if field == Field::Labels {
                "a label"
            } else {
                "an annotation"
            }
        )));
    }
    Ok((resources.to_vec(), changes))
}

/// Label values: at most 63 characters, alphanumerics with `-`, `_`, `.` inside.
fn validate_label(key: &str, value: &str) -> std::result::Result<(), String> {
    let name = key.rsplit('/').next().unwrap_or(key);
    let ok_name = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    if !ok_name(name) {
        return Err("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc')".into());
    }
    if !value.is_empty() && !ok_name(value) {
        return Err("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into());
    }
    Ok(())
}

/// The merge patch for one object, and what it did: `labeled`, `unlabeled`, `modified`,
/// `not labeled` (or `annotated`). Refuses to change an existing value without `overwrite`.
pub fn plan(
    current: &Value,
    changes: &Changes,
    field: Field,
    overwrite: bool,
) -> Result<(Option<Value>, &'static str)> {
    let existing: Map<String, Value> = current["metadata"][field.key()]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut conflicts = Vec::new();
    let mut patch = Map::new();
    let mut added = false;
    let mut removed = false;
    for (k, v) in &changes.set {
        match existing.get(k).and_then(Value::as_str) {
            Some(old) if old == v => {}
            Some(old) => {
                if !overwrite {
                    conflicts.push(format!("'{k}' already has a value ({old})"));
                    continue;
                }
                patch.insert(k.clone(), json!(v));
                added = true;
            }
            None => {
                patch.insert(k.clone(), json!(v));
                added = true;
            }
        }
    }
    for k in &changes.remove {
        if existing.contains_key(k) {
            patch.insert(k.clone(), Value::Null);
            removed = true;
        }
    }
    if !conflicts.is_empty() {
        return Err(Error::msg(match field {
            Field::Labels => format!("{}, and --overwrite is false", conflicts.join(", ")),
            Field::Annotations => format!(
                "--overwrite is false but found the following declared annotation(s): {}",
                conflicts.join("; ")
            ),
        }));
    }
    let msg = match (field, added, removed) {
        (Field::Annotations, _, _) => "annotated",
        (Field::Labels, true, true) => "modified",
        (Field::Labels, true, false) => "labeled",
        (Field::Labels, false, true) => "unlabeled",
        (Field::Labels, false, false) => "not labeled",
    };
    if patch.is_empty() {
        return Ok((None, msg));
    }
    Ok((Some(json!({"metadata": {field.key(): patch}})), msg))
}

async fn run(ctx: &Context, a: Args, field: Field) -> Result<()> {
    let name_only = crate::printer::name_only(a.output.as_deref())?;
    let (resources, changes) = split(&a.args, field)?;
    if a.all && a.selector.is_some() {
        return Err(Error::msg(
            "cannot set --all and --selector at the same time",
        ));
    }
    if resources.is_empty() && a.files.is_empty() {
        return Err(Error::msg(
            "one or more resources must be specified as <resource> <name> or <resource>/<name>",
        ));
    }
    if !a.list && changes.set.is_empty() && changes.remove.is_empty() {
        return Err(Error::msg(format!(
            "at least one {} update is required",
            field.noun()
        )));
    }
    let (objects, mut errors) = builder::objects(
        ctx,
        Query {
            args: &resources,
            files: Some(&a.files),
            selector: a.selector.as_deref(),
            all: a.all,
            all_namespaces: a.all_namespaces,
        },
    )
    .await?;
    if a.resource_version.is_some() && objects.len() > 1 {
        return Err(Error::msg(
            "--resource-version may only be used with a single resource",
        ));
    }
    for o in &objects {
        if a.list {
            let kind = if o.info.group.is_empty() {
                format!("{}.", o.info.kind)
            } else {
                format!("{}.{}", o.info.kind, o.info.group)
            };
            let title = if field == Field::Labels {
                "labels"
            } else {
                "annotations"
            };
            let mut text = format!("Listing {title} for {kind}/{}:\n", o.name);
            if let Some(m) = o.object["metadata"][field.key()].as_object() {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                for k in keys {
                    text.push_str(&format!(" {k}={}\n", m[k].as_str().unwrap_or_default()));
                }
            }
            printer::stdout(&text);
            continue;
        }
        if field == Field::Labels {
            for k in &changes.remove {
                if o.object["metadata"]["labels"].get(k).is_none() {
                    printer::stdout(&format!("label {k:?} not found.\n"));
                }
            }
        }
        let (patch, msg) = match plan(&o.object, &changes, field, a.overwrite) {
            Ok(p) => p,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if let Some(mut patch) = patch {
            if let Some(rv) = &a.resource_version {
                patch["metadata"]["resourceVersion"] = json!(rv);
            }
            match ctx.patch(&o.path(), &patch, PatchType::Merge).await {
                Ok(_) => {}
                Err(e) if e.is_transport() => return Err(e),
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            }
        }
        let line = o.info.qualified_name(&o.name);
        printer::stdout(&if name_only {
            format!("{line}\n")
        } else {
            format!("{line} {msg}\n")
        });
    }
    errors::collect(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn resources_then_changes() {
        let (r, c) = split(
            &strings(&["pods", "web", "tier=front", "env-"]),
            Field::Labels,
        )
        .unwrap();
        assert_eq!(r, ["pods", "web"]);
        assert_eq!(c.set.get("tier").map(String::as_str), Some("front"));
        assert_eq!(c.remove, ["env"]);
        let (r, _) = split(&strings(&["deploy/web-1", "a=b"]), Field::Labels).unwrap();
        assert_eq!(r, ["deploy/web-1"]);
        assert!(split(&strings(&["po", "x", "a=b", "a-"]), Field::Labels).is_err());
        assert!(split(&strings(&["po", "x", "a=not ok"]), Field::Labels).is_err());
        assert!(
            split(
                &strings(&["po", "x", "note=free text is fine"]),
                Field::Annotations
            )
            .is_ok()
        );
    }

    #[test]
    fn plans_need_overwrite_to_change_values() {
        let obj = json!({"metadata": {"labels": {"app": "web", "tier": "back"}}});
        let changes = |set: &[(&str, &str)], remove: &[&str]| Changes {
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            remove: strings(remove),
        };
        assert_eq!(
            plan(
                &obj,
                &changes(&[("env", "prod")], &[]),
                Field::Labels,
                false
            )
            .unwrap(),
            (
                Some(json!({"metadata": {"labels": {"env": "prod"}}})),
                "labeled"
            )
        );
        assert_eq!(
            plan(
                &obj,
                &changes(&[("tier", "front")], &[]),
                Field::Labels,
                false
            )
            .unwrap_err()
            .to_string(),
            "'tier' already has a value (back), and --overwrite is false"
        );
        assert_eq!(
            plan(
                &obj,
                &changes(&[("tier", "front")], &["app"]),
                Field::Labels,
                true
            )
            .unwrap(),
            (
                Some(json!({"metadata": {"labels": {"tier": "front", "app": null}}})),
                "modified"
            )
        );
        assert_eq!(
            plan(
                &obj,
                &changes(&[("app", "web")], &["nope"]),
                Field::Labels,
                false
            )
            .unwrap(),
            (None, "not labeled")
        );
        assert_eq!(
            plan(&obj, &changes(&[], &["app"]), Field::Labels, false)
                .unwrap()
                .1,
            "unlabeled"
        );
        assert_eq!(
            plan(
                &json!({}),
                &changes(&[("note", "hi")], &[]),
                Field::Annotations,
                false
            )
            .unwrap(),
            (
                Some(json!({"metadata": {"annotations": {"note": "hi"}}})),
                "annotated"
            )
        );
    }
}
