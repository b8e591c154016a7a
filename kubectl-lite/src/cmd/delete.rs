//! `delete`: by `KIND NAME…`, `KIND/NAME`, `-f`, `-l`/`--field-selector` or `--all`. Each
//! object gets a DELETE with `DeleteOptions` (`propagationPolicy` from `--cascade`,
//! `gracePeriodSeconds`); then, with `--wait` (the default), kubectl-lite watches until every
//! deleted object is really gone — a pod stays while it terminates, an object with finalizers
//! until they are removed.

use std::time::Duration;

use api::ResourceInfo;
use api::resource::lookup_kind;
use futures::StreamExt;
use serde_json::json;
use tokio::time::Instant;

use crate::builder;
use crate::context::Context;
use crate::context::query;
use crate::errors::{self, Error, Result};
use crate::manifest::FilenameArgs;
use crate::manifest::{mapping_error, target_namespace};
use crate::printer;
use crate::util::parse_duration;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  kubectl-lite delete pod web-1                # its ReplicaSet creates a replacement
  kubectl-lite delete -f examples/blog.yaml
  kubectl-lite delete pods -l app=blog
  kubectl-lite delete deploy blog --cascade=orphan   # keep its ReplicaSets and pods")]
pub struct Delete {
    /// `KIND NAME…`, `KIND/NAME…`, or `KIND` with `-l` or `--all`.
    #[arg(value_name = "RESOURCE")]
    pub args: Vec<String>,
    #[command(flatten)]
    pub files: FilenameArgs,
    /// Delete the objects matching this label selector.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Delete the objects matching this field selector.
    #[arg(long, value_name = "SELECTOR")]
    pub field_selector: Option<String>,
    /// Delete all objects of the kinds given, in the namespace.
    #[arg(long)]
    pub all: bool,
    /// With -l or --all: across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// What happens to dependents: background, foreground or orphan.
    #[arg(long, default_value = "background", value_name = "MODE")]
    pub cascade: String,
    /// Seconds to give the object to terminate gracefully (-1: the object's own default).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_name = "SECONDS")]
    pub grace_period: i64,
    /// Delete with a grace period of 1 second.
    #[arg(long)]
    pub now: bool,
    /// With --grace-period=0: remove immediately, without waiting for termination.
    #[arg(long)]
    pub force: bool,
    /// Wait until the objects are gone.
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub wait: bool,
    /// Treat "resource not found" as success (the default with -l and --all).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub ignore_not_found: Option<bool>,
    /// How long to wait for the deletion (`30s`, `5m`; 0: a week).
    #[arg(long, default_value = "0s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Output format: `name` prints only `kind.group/name`.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
}

/// One object to delete.
#[derive(Clone, Debug)]
struct Target {
    info: &'static ResourceInfo,
    namespace: String,
    name: String,
    /// The manifest it came from (`-f`), for error messages.
    source: String,
}

/// A deleted object to wait for.
struct Deleted {
    target: Target,
    uid: String,
}

impl Delete {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        let name_only = match self.output.as_deref() {
            None | Some("") => false,
            Some("name") => true,
            Some(o) => {
                return Err(Error::msg(format!(
                    "unable to match a printer suitable for the output format {o:?}, allowed formats are: name"
                )));
            }
        };
        let policy = match self.cascade.as_str() {
            "background" | "true" => "Background",
            "foreground" => "Foreground",
            "orphan" | "false" => "Orphan",
            other => {
                return Err(Error::msg(format!(
                    "invalid cascade value ({other}). Must be \"background\", \"foreground\", or \"orphan\""
                )));
            }
        };
        let mut grace = self.grace_period;
        if self.now {
            if grace != -1 {
                return Err(Error::msg(
                    "--now and --grace-period cannot be specified together",
                ));
            }
            grace = 1;
        }
        if grace == 0 && !self.force {
            // kubectl's safety net: a zero grace period needs --force.
            grace = 1;
        }
        if self.force && grace < 0 {
            grace = 0;
        }
        if grace == 0 {
            printer::stderr(
                "Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. The resource may continue to run on the cluster indefinitely.\n",
            );
        }
        let by_selector = self.all || self.selector.is_some() || self.field_selector.is_some();
        let ignore_not_found = self.ignore_not_found.unwrap_or(by_selector);
        let mut options =
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy});
        if grace >= 0 {
            options["gracePeriodSeconds"] = json!(grace);
        }

        let mut errors = Vec::new();
        let targets = self.targets(ctx, by_selector, &mut errors).await?;
        let mut deleted = Vec::new();
        for t in &targets {
            let path = t.info.object_path(Some(&t.namespace), &t.name);
            match ctx.delete(&path, &options).await {
                Ok(resp) => {
                    printer::stdout(&(deleted_line(t, grace, name_only) + "\n"));
                    // Kubernetes answers the object (still there, or as it was) or a Status.
                    let uid = resp["metadata"]["uid"]
                        .as_str()
                        .or_else(|| resp["details"]["uid"].as_str())
                        .unwrap_or_default()
                        .to_string();
                    deleted.push(Deleted {
                        target: t.clone(),
                        uid,
                    });
                }
                Err(e) if e.is_not_found() && ignore_not_found => {}
                Err(e) if e.is_transport() => return Err(e),
                Err(e) => errors.push(e.with_source("deleting", &t.source)),
            }
        }
        if targets.is_empty() && errors.is_empty() {
            printer::stdout("No resources found\n");
            return Ok(());
        }
        if self.wait && !deleted.is_empty() {
            let timeout = if self.timeout.is_zero() {
                Duration::from_secs(7 * 24 * 3600)
            } else {
                self.timeout
            };
            let deadline = Instant::now() + timeout;
            for d in &deleted {
                if let Err(e) = wait_until_gone(ctx, d, deadline).await {
                    errors.push(e);
                    break;
                }
            }
        }
        errors::collect(errors)
    }

    /// What to delete: from manifests, names, or a list by selector.
    async fn targets(
        &self,
        ctx: &Context,
        by_selector: bool,
        errors: &mut Vec<Error>,
    ) -> Result<Vec<Target>> {
        if !self.files.is_empty() {
            if !self.args.is_empty() {
                return Err(Error::msg(
                    "when paths, URLs, or stdin is provided as input, you may not specify resource arguments as well",
                ));
            }
            let mut out = Vec::new();
            for m in self.files.read(&mut std::io::stdin())? {
                let Some(info) = lookup_kind(m.api_version(), m.kind()) else {
                    errors.push(mapping_error(&m));
                    continue;
                };
                if m.name().is_empty() {
                    // An empty name would address the whole collection.
                    errors.push(Error::msg(format!(
                        "from {}: resource name may not be empty",
                        m.source
                    )));
                    continue;
                }
                match target_namespace(ctx, info, &m) {
                    Ok(namespace) => out.push(Target {
                        info,
                        namespace,
                        name: m.name().to_string(),
                        source: m.source.clone(),
                    }),
                    Err(e) => errors.push(e),
                }
            }
            return Ok(out);
        }
        if self.args.is_empty() {
            return Err(Error::msg(
                "You must provide one or more resources by argument or filename.\nExample resource specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'",
            ));
        }
        let selections = builder::parse(&self.args)?;
        let named = selections.iter().any(|s| !s.names.is_empty());
        if named && by_selector {
            return Err(Error::msg(
                "name cannot be provided when a selector is specified",
            ));
        }
        if !named && !by_selector {
            return Err(Error::msg(
                "resource(s) were provided, but no name was specified",
            ));
        }
        if self.all_namespaces && !by_selector {
            return Err(Error::msg(
                "a resource cannot be retrieved by name across all namespaces",
            ));
        }
        let mut out = Vec::new();
        for sel in selections {
            if named {
                if sel.names.iter().any(String::is_empty) {
                    return Err(Error::msg("resource name may not be empty"));
                }
                out.extend(sel.names.iter().map(|name| Target {
                    info: sel.info,
                    namespace: ctx.namespace.clone(),
                    name: name.clone(),
                    source: String::new(),
                }));
                continue;
            }
            let mut q = Vec::new();
            if let Some(s) = &self.selector {
                q.push(("labelSelector", s.clone()));
            }
            if let Some(s) = &self.field_selector {
                q.push(("fieldSelector", s.clone()));
            }
            let ns = (!self.all_namespaces).then_some(ctx.namespace.as_str());
            let list = match ctx
                .get(&format!("{}{}", sel.info.collection_path(ns), query(&q)))
                .await
            {
                Ok(l) => l,
                Err(e) if e.is_transport() => return Err(e),
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            for item in list["items"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                out.push(Target {
                    info: sel.info,
                    namespace: item["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    name: item["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    source: String::new(),
                });
            }
        }
        Ok(out)
    }
}

/// `deployment.apps "blog" deleted from default namespace`, as kubectl 1.34+ prints it.
fn deleted_line(t: &Target, grace: i64, name_only: bool) -> String {
    if name_only {
        return t.info.qualified_name(&t.name);
    }
    let mut op = if grace == 0 {
        "force deleted".to_string()
    } else {
        "deleted".to_string()
    };
    if t.info.namespaced {
        op = format!("{op} from {} namespace", t.namespace);
    }
    format!("{} {:?} {op}", t.info.kind_string(), t.name)
}

/// Wait until the object is gone (or replaced by another with a new uid): GET, then watch from
/// that resourceVersion for its DELETED event; a watch that ends early is started again.
async fn wait_until_gone(ctx: &Context, d: &Deleted, deadline: Instant) -> Result<()> {
    let t = &d.target;
    let path = t.info.object_path(Some(&t.namespace), &t.name);
    let timed_out = || {
        Error::msg(format!(
            "timed out waiting for the condition on {}/{}",
            t.info.plural, t.name
        ))
    };
    loop {
        let obj = match ctx.get(&path).await {
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
            Ok(o) => o,
        };
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
        if !d.uid.is_empty() && uid != d.uid {
            return Ok(());
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timed_out());
        }
        let q = query(&[
            ("fieldSelector", format!("metadata.name={}", t.name)),
            (
                "resourceVersion",
                obj["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ),
            (
                "timeoutSeconds",
                remaining.as_secs().clamp(1, 300).to_string(),
            ),
            ("watch", "true".to_string()),
        ]);
        let ns = t.info.namespaced.then_some(t.namespace.as_str());
        let watch = async {
            let mut events = ctx
                .watch(&format!("{}{q}", t.info.collection_path(ns)), false)
                .await?;
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(ev) if ev.type_ == "DELETED" => return Ok::<bool, Error>(true),
                    Ok(ev) if ev.type_ == "ERROR" => return Ok(false),
                    Ok(_) => {}
                    Err(_) => return Ok(false),
                }
            }
            Ok(false)
        };
        match tokio::time::timeout_at(deadline, watch).await {
            Err(_) => return Err(timed_out()),
            Ok(Ok(true)) => return Ok(()),
            Ok(Err(e)) if e.is_transport() => return Err(e),
            // The watch ended or could not start: look again, without spinning.
            Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::resource::{DEPLOYMENT, NAMESPACE};

    #[test]
    fn deleted_lines() {
        let t = |info, ns: &str| Target {
            info,
            namespace: ns.into(),
            name: "blog".into(),
            source: String::new(),
        };
        assert_eq!(
            deleted_line(&t(&DEPLOYMENT, "default"), -1, false),
            "deployment.apps \"blog\" deleted from default namespace"
        );
        assert_eq!(
            deleted_line(&t(&NAMESPACE, ""), -1, false),
            "namespace \"blog\" deleted"
        );
        assert_eq!(
            deleted_line(&t(&DEPLOYMENT, "x"), 0, false),
            "deployment.apps \"blog\" force deleted from x namespace"
        );
        assert_eq!(
            deleted_line(&t(&DEPLOYMENT, "x"), 1, true),
            "deployment.apps/blog"
        );
    }
}
