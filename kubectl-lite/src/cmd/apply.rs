//! `apply -f`: client-side apply, as kubectl does it. For each object: GET the live one; create
//! it when missing (recording the manifest in the `last-applied-configuration` annotation), else
//! PATCH it with a three-way strategic merge patch (see [`crate::patch`]) — or nothing at all
//! when the patch is empty (`unchanged`). Conflicts are retried on a fresh GET.
//!
//! `--wait` then follows what was applied until it is ready, with live progress: Deployments
//! until their rollout is done (as `rollout status`), pods until they are Ready.

use std::time::Duration;

use api::ResourceInfo;
use api::annotations::LAST_APPLIED;
use api::resource::lookup_kind;
use serde_json::{Map, Value, json};

use crate::context::{Context, PatchType, query};
use crate::errors::{self, Error, Result};
use crate::manifest::{
    FilenameArgs, Manifest, mapping_error, prune_nulls, target_namespace, with_last_applied,
};
use crate::patch;
use crate::printer;
use crate::util::parse_duration;
/// The field manager kubectl's client-side apply writes with.
const FIELD_MANAGER: &str = "kubectl-client-side-apply";
/// kubectl's `maxPatchRetry`.
const MAX_PATCH_RETRIES: usize = 5;
/// kubectl's `patchRetryBackOffPeriod`, after the first retry.
const RETRY_BACKOFF: Duration = Duration::from_secs(1);

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  kubectl-lite apply -f examples/blog.yaml     # create or update what the file describes
  kubectl-lite apply -f manifests/ -R          # every .yaml/.yml/.json file, recursively
  cat blog.yaml | kubectl-lite apply -f -
  kubectl-lite apply -f blog.yaml --wait       # then follow the rollout until it is done")]
pub struct Apply {
    #[command(flatten)]
    pub files: FilenameArgs,
    /// Output format: `name` prints only `kind.group/name`.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
    /// Then wait, showing progress, until applied Deployments have rolled out and pods are Ready.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (`30s`, `5m`; 0: a week).
    #[arg(long, default_value = "0s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

/// What applying one object did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }
}

impl Apply {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        if self.files.is_empty() {
            return Err(Error::msg("must specify one of -f and -k"));
        }
        let name_only = match self.output.as_deref() {
            None | Some("") => false,
            Some("name") => true,
            Some(other) => {
                return Err(Error::msg(format!(
                    "unable to match a printer suitable for the output format {other:?}, allowed formats are: name"
                )));
            }
        };
        let manifests = self.files.read(&mut std::io::stdin())?;
        if manifests.is_empty() {
            return Err(Error::msg("no objects passed to apply"));
        }
        // Resolve every kind first: kubectl reports mapping errors, then applies the rest.
        let mut errors = Vec::new();
        let mut resolved = Vec::new();
        for m in manifests {
            match lookup_kind(m.api_version(), m.kind()) {
                Some(info) => resolved.push((info, m)),
                None => errors.push(mapping_error(&m)),
            }
        }
        let mut applied = Vec::new();
        for (info, m) in resolved {
            match apply_one(ctx, info, &m).await {
                Ok((name, outcome)) => {
                    if let Ok(ns) = target_namespace(ctx, info, &m) {
                        applied.push((info, ns, name.clone()));
                    }
                    let line = info.qualified_name(&name);
                    if name_only {
                        printer::stdout(&format!("{line}\n"));
                    } else {
                        printer::stdout(&format!("{line} {}\n", outcome.word()));
                    }
                }
                // Nothing else will get through either.
                Err(e) if e.is_transport() => return Err(e),
                Err(e) => errors.push(e),
            }
        }
        if self.wait && errors.is_empty() {
            let deadline = crate::util::deadline(self.timeout);
            for (info, ns, name) in &applied {
                crate::workloads::wait_ready(ctx, info, ns, name, deadline).await?;
            }
        }
        errors::collect(errors)
    }
}

async fn apply_one(
    ctx: &Context,
    info: &'static ResourceInfo,
    m: &Manifest,
) -> Result<(String, Outcome)> {
    let name = m.name().to_string();
    if name.is_empty() {
        let why = if m.object["metadata"]["generateName"].is_string() {
            "cannot use generate name with apply"
        } else {
            "resource name may not be empty"
        };
        return Err(Error::msg(format!("from {}: {why}", m.source)));
    }
    let ns = target_namespace(ctx, info, m)?;
    let mut obj = m.object.clone();
    if info.namespaced {
        obj["metadata"]["namespace"] = json!(ns);
    }
    let modified = with_last_applied(&obj);
    let path = info.object_path(Some(&ns), &name);
    let params = query(&[
        ("fieldManager", FIELD_MANAGER.to_string()),
        ("fieldValidation", "Strict".to_string()),
    ]);
    let mut live = match ctx.get(&path).await {
        Ok(live) => live,
        Err(e) if e.is_not_found() => {
            let mut body = modified;
            prune_nulls(&mut body);
            ctx.post(
                &format!("{}{params}", info.collection_path(Some(&ns))),
                &body,
            )
            .await
            .map_err(|e| e.with_source("creating", &m.source))?;
            return Ok((name, Outcome::Created));
        }
        Err(e) => {
            return Err(e.with_source(
                "retrieving current configuration from server for",
                &m.source,
            ));
        }
    };
    let mut attempt = 0;
    loop {
        let original = match live["metadata"]["annotations"][LAST_APPLIED].as_str() {
            Some(text) => serde_json::from_str(text).map_err(|e| {
                Error::msg(format!(
                    "error when retrieving original configuration from {:?}: invalid {LAST_APPLIED} annotation: {e}",
                    m.source
                ))
            })?,
            None => {
                if attempt == 0 {
                    printer::stderr(&format!(
                        "Warning: resource {}/{name} is missing the {LAST_APPLIED} annotation which is required by kubectl-lite apply. kubectl-lite apply should only be used on resources created declaratively by either kubectl-lite create --save-config or kubectl-lite apply. The missing annotation will be patched automatically.\n",
                        info.plural
                    ));
                }
                Value::Null
            }
        };
        let patch = patch::three_way(&original, &modified, &live).map_err(|e| {
            Error::msg(format!(
                "error when computing the patch for {:?}: {e}",
                m.source
            ))
        })?;
        if patch.as_object().is_some_and(Map::is_empty) {
            return Ok((name, Outcome::Unchanged));
        }
        match ctx
            .patch(&format!("{path}{params}"), &patch, PatchType::Strategic)
            .await
        {
            Ok(_) => return Ok((name, Outcome::Configured)),
            Err(e) if e.is_conflict() && attempt < MAX_PATCH_RETRIES => {
                attempt += 1;
                if attempt > 1 {
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
                live = ctx.get(&path).await?;
            }
            Err(e) => return Err(e.with_source("patching", &m.source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{mapping_error, prune_nulls, with_last_applied};

    #[test]
    fn last_applied_is_kubectls() {
        let obj = json!({"kind": "ConfigMap", "apiVersion": "v1",
                         "metadata": {"name": "c", "namespace": "default"}, "data": {"a": "<1>"}});
        let m = with_last_applied(&obj);
        assert_eq!(
            m["metadata"]["annotations"][LAST_APPLIED],
            "{\"apiVersion\":\"v1\",\"data\":{\"a\":\"\\u003c1\\u003e\"},\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{},\"name\":\"c\",\"namespace\":\"default\"}}\n"
        );
        // Applying the result again records the same thing (the old annotation is dropped first).
        assert_eq!(with_last_applied(&m), m);
    }

    #[test]
    fn nulls_are_pruned() {
        let mut v = json!({"a": null, "b": {"c": null, "d": 1}, "e": [{"f": null}]});
        prune_nulls(&mut v);
        assert_eq!(v, json!({"b": {"d": 1}, "e": [{}]}));
    }

    #[test]
    fn unknown_kinds_say_where_they_came_from() {
        let m = Manifest {
            source: "widget.yaml".into(),
            object: json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
        };
        assert_eq!(
            mapping_error(&m).to_string(),
            "resource mapping not found for name: \"w\" namespace: \"\" from \"widget.yaml\": no matches for kind \"Widget\" in version \"example.com/v1\""
        );
    }
}
