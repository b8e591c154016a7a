//! `cordon`, `uncordon` and `drain`: node maintenance, as kubectl's `pkg/drain` does it.
//!
//! `cordon` marks a node unschedulable (`spec.unschedulable`, a strategic merge patch), so the
//! scheduler places no new pods there. `drain` cordons, then evicts every pod of the node —
//! `POST pods/NAME/eviction` with a `policy/v1` Eviction, which the API server may refuse
//! (429) to protect a disruption budget — and waits until they are gone; their controllers
//! create replacements elsewhere. Pods nobody would re-create (no controller) are only
//! deleted with `--force`. On an API server without the eviction subresource, drain deletes
//! the pods instead and says so.

use std::time::Duration;

use api::resource::{NODE, POD};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::{Value, json};

use crate::builder::{self, Object, Query};
use crate::context::{Context, PatchType};
use crate::errors::{self, Error, Result};
use crate::printer;
use crate::util::{map_get, name_of, namespace_of, parse_duration, str_of};
use crate::watch;

/// Which nodes: names, or `-l`.
#[derive(clap::Args, Debug)]
pub struct Nodes {
    /// The node(s).
    #[arg(value_name = "NODE")]
    pub names: Vec<String>,
    /// The nodes matching this label selector.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct Cordon {
    #[command(flatten)]
    pub nodes: Nodes,
}

#[derive(clap::Args, Debug)]
pub struct Uncordon {
    #[command(flatten)]
    pub nodes: Nodes,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  kubectl-lite drain worker-1                  # cordon, then evict every pod
  kubectl-lite drain worker-1 --force          # also pods no controller would re-create
  kubectl-lite uncordon worker-1               # back in service")]
pub struct Drain {
    #[command(flatten)]
    pub nodes: Nodes,
    /// Also delete pods that no controller manages (they are gone for good).
    #[arg(long)]
    pub force: bool,
    /// Leave DaemonSet-managed pods alone (they would be re-created on the node anyway).
    #[arg(long)]
    pub ignore_daemonsets: bool,
    /// Also delete pods with emptyDir volumes (their data is lost).
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// Seconds each pod gets to terminate (-1: its own terminationGracePeriodSeconds).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// Give up after this long (0: never).
    #[arg(long, default_value = "0s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Only the pods matching this label selector.
    #[arg(long, value_name = "SELECTOR")]
    pub pod_selector: Option<String>,
    /// Delete pods instead of evicting them (skipping disruption budgets).
    #[arg(long)]
    pub disable_eviction: bool,
}

impl Nodes {
    async fn objects(&self, ctx: &Context) -> Result<(Vec<Object>, Vec<Error>)> {
        if self.names.is_empty() && self.selector.is_none() {
            return Err(Error::msg("USAGE: cordon NODE [flags]"));
        }
        if !self.names.is_empty() && self.selector.is_some() {
            return Err(Error::msg(
                "error: cannot specify both a node name and a --selector option",
            ));
        }
        let mut args = vec!["nodes".to_string()];
        args.extend(self.names.iter().cloned());
        builder::objects(
            ctx,
            Query {
                args: &args,
                selector: self.selector.as_deref(),
                ..Default::default()
            },
        )
        .await
    }
}

impl Cordon {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        let (nodes, mut errors) = self.nodes.objects(ctx).await?;
        for n in &nodes {
            if let Err(e) = set_unschedulable(ctx, n, true).await {
                errors.push(e);
            }
        }
        errors::collect(errors)
    }
}

impl Uncordon {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        let (nodes, mut errors) = self.nodes.objects(ctx).await?;
        for n in &nodes {
            if let Err(e) = set_unschedulable(ctx, n, false).await {
                errors.push(e);
            }
        }
        errors::collect(errors)
    }
}

/// Cordon or uncordon one node, printing `node/NAME cordoned` (or `already cordoned`).
async fn set_unschedulable(ctx: &Context, node: &Object, desired: bool) -> Result<()> {
    let verb = if desired { "cordoned" } else { "uncordoned" };
    let current = node.object["spec"]["unschedulable"] == true;
    if current == desired {
        printer::stdout(&format!(
            "{} already {verb}\n",
            NODE.qualified_name(&node.name)
        ));
        return Ok(());
    }
    let value = if desired { json!(true) } else { Value::Null };
    ctx.patch(
        &node.path(),
        &json!({"spec": {"unschedulable": value}}),
        PatchType::Strategic,
    )
    .await
    .map_err(|e| {
        Error::msg(format!(
            "unable to {} node {:?}: {}",
            if desired { "cordon" } else { "uncordon" },
            node.name,
            errors::render(&e).trim_end()
        ))
    })?;
    printer::stdout(&format!("{} {verb}\n", NODE.qualified_name(&node.name)));
    Ok(())
}

/// What drain does with one pod (kubectl's `PodDeleteStatus`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Delete,
    /// Delete, with a warning (`deleting Pods that declare no controller`).
    Warn(&'static str),
    /// Leave it (mirror pods; DaemonSet pods with --ignore-daemonsets, with a warning).
    Skip(Option<&'static str>),
    /// Refuse to drain the node.
    Refuse(&'static str),
}

/// The drain filters, in kubectl's order: DaemonSet pods, mirror pods, local storage, pods
/// without a controller. Finished pods can always go.
pub fn verdict(
    pod: &Value,
    force: bool,
    ignore_daemonsets: bool,
    delete_emptydir: bool,
) -> Verdict {
    let finished = matches!(str_of(pod, "/status/phase"), "Succeeded" | "Failed");
    let controller = pod["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|o| o.iter().find(|r| r["controller"] == true));
    if controller.is_some_and(|c| c["kind"] == "DaemonSet") {
        return if ignore_daemonsets {
            Verdict::Skip(Some("ignoring DaemonSet-managed Pods"))
        } else {
            Verdict::Refuse("DaemonSet-managed Pods (use --ignore-daemonsets to ignore)")
        };
    }
    if map_get(pod, "/metadata/annotations", "kubernetes.io/config.mirror").is_some() {
        return Verdict::Skip(None);
    }
    let mut warning = None;
    let local_storage = pod["spec"]["volumes"]
        .as_array()
        .is_some_and(|vs| vs.iter().any(|v| v["emptyDir"].is_object()));
    if local_storage && !finished {
        if !delete_emptydir {
            return Verdict::Refuse(
                "Pods with local storage (use --delete-emptydir-data to override)",
            );
        }
        warning = Some("deleting Pods with local storage");
    }
    if controller.is_none() && !finished {
        if !force {
            return Verdict::Refuse("Pods that declare no controller (use --force to override)");
        }
        warning = Some("deleting Pods that declare no controller");
    }
    match warning {
        Some(w) => Verdict::Warn(w),
        None => Verdict::Delete,
    }
}

/// `message: ns/a, ns/b` per message, in first-seen order, joined by `; ` (kubectl's
/// `PodDeleteList.Warnings` and `errors`).
fn grouped(items: &[(&'static str, String)]) -> Vec<String> {
    let mut keys: Vec<&'static str> = Vec::new();
    for (m, _) in items {
        if !keys.contains(m) {
            keys.push(m);
        }
    }
    keys.iter()
        .map(|k| {
            let pods: Vec<&str> = items
                .iter()
                .filter(|(m, _)| m == k)
                .map(|(_, p)| p.as_str())
                .collect();
            format!("{k}: {}", pods.join(", "))
        })
        .collect()
}

impl Drain {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        let (nodes, mut errs) = self.nodes.objects(ctx).await?;
        for n in &nodes {
            set_unschedulable(ctx, n, true).await?;
        }
        let mut pending = Vec::new();
        let mut fatal = Vec::new();
        for n in &nodes {
            match self.drain_node(ctx, n).await {
                Ok(()) => printer::stdout(&format!("{} drained\n", NODE.qualified_name(&n.name))),
                Err(e) if e.is_transport() => return Err(e),
                Err(e) => {
                    let text = errors::render(&e);
                    printer::stderr(&format!(
                        "error: unable to drain node {:?} due to error: {}, continuing command...\n",
                        n.name,
                        text.trim_end().trim_start_matches("error: ")
                    ));
                    pending.push(n.name.clone());
                    fatal.push(e);
                }
            }
        }
        if !pending.is_empty() {
            let mut text = "There are pending nodes to be drained:\n".to_string();
            for n in &pending {
                text.push_str(&format!(" {n}\n"));
            }
            printer::stderr(&text);
        }
        errs.extend(fatal);
        errors::collect(errs)
    }

    async fn drain_node(&self, ctx: &Context, node: &Object) -> Result<()> {
        let mut params = vec![("fieldSelector", format!("spec.nodeName={}", node.name))];
        if let Some(s) = &self.pod_selector {
            params.push(("labelSelector", s.clone()));
        }
        let pods = ctx.list(&POD.collection_path(None), &params).await?;
        let mut warnings = Vec::new();
        let mut refusals = Vec::new();
        let mut to_delete = Vec::new();
        for p in pods {
            let id = format!("{}/{}", namespace_of(&p), name_of(&p));
            match verdict(
                &p,
                self.force,
                self.ignore_daemonsets,
                self.delete_emptydir_data,
            ) {
                Verdict::Delete => to_delete.push(p),
                Verdict::Warn(w) => {
                    warnings.push((w, id));
                    to_delete.push(p);
                }
                Verdict::Skip(Some(w)) => warnings.push((w, id)),
                Verdict::Skip(None) => {}
                Verdict::Refuse(r) => refusals.push((r, id)),
            }
        }
        if !refusals.is_empty() {
            let errs: Vec<Error> = grouped(&refusals)
                .into_iter()
                .map(|m| Error::msg(format!("cannot delete {m}")))
                .collect();
            return errors::collect(errs);
        }
        if !warnings.is_empty() {
            printer::warning(&grouped(&warnings).join("; "));
        }
        let evict = !self.disable_eviction && eviction_supported(ctx).await?;
        if !evict && !self.disable_eviction {
            printer::stderr(
                "note: this API server has no pods/eviction subresource; deleting the pods instead\n",
            );
        }
        let deadline = crate::util::deadline(self.timeout);
        let mut evicting = Vec::new();
        for p in &to_delete {
            let (ns, name) = (namespace_of(p).to_string(), name_of(p).to_string());
            let uid = str_of(p, "/metadata/uid").to_string();
            let used_eviction = if evict {
                printer::stdout(&format!("evicting pod {ns}/{name}\n"));
                self.evict(ctx, &ns, &name, deadline).await?
            } else {
                self.delete(ctx, &ns, &name).await?;
                false
            };
            evicting.push((ns, name, uid, used_eviction));
        }
        // Wait for every pod to be gone (or replaced by a new one of the same name).
        let mut waits: FuturesUnordered<_> = evicting
            .iter()
            .map(|(ns, name, uid, evicted)| async move {
                let mut gone = |obj: Option<&Value>| -> Result<bool> {
                    Ok(obj.is_none_or(|o| str_of(o, "/metadata/uid") != uid))
                };
                let r = watch::until(ctx, &POD, ns, name, deadline, &mut gone).await;
                (name, *evicted, r)
            })
            .collect();
        let mut failed = Vec::new();
        while let Some((name, evicted, r)) = waits.next().await {
            match r {
                Ok(()) => printer::stdout(&format!(
                    "pod/{name} {}\n",
                    if evicted { "evicted" } else { "deleted" }
                )),
                Err(e) => failed.push(Error::msg(format!(
                    "error when waiting for pod {name:?} to terminate: {}",
                    errors::render(&e).trim_end().trim_start_matches("error: ")
                ))),
            }
        }
        errors::collect(failed)
    }

    /// POST an Eviction; retried while the server answers 429 (a disruption budget). Falls back
    /// to DELETE when the server turns out not to have the subresource. Returns whether the
    /// pod was evicted (true) or deleted (false).
    async fn evict(
        &self,
        ctx: &Context,
        ns: &str,
        name: &str,
        deadline: tokio::time::Instant,
    ) -> Result<bool> {
        let mut body = json!({
            "apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": name, "namespace": ns},
        });
        if self.grace_period >= 0 {
            body["deleteOptions"] = json!({"gracePeriodSeconds": self.grace_period});
        }
        let path = format!("{}/eviction", POD.object_path(Some(ns), name));
        loop {
            match ctx.post(&path, &body).await {
                Ok(_) => return Ok(true),
                Err(e) if e.is_not_found() => {
                    // The pod is gone already — or the server has no eviction subresource.
                    if ctx.get(&POD.object_path(Some(ns), name)).await.is_ok() {
                        printer::stderr(&format!(
                            "note: the API server has no pods/eviction subresource; deleting pod {ns}/{name} instead\n"
                        ));
                        self.delete(ctx, ns, name).await?;
                        return Ok(false);
                    }
                    return Ok(true);
                }
                Err(e) if e.status().is_some_and(|s| s.code == 429) => {
                    printer::stderr(&format!(
                        "error when evicting pods/{name:?} -n {ns:?} (will retry after 5s): {}\n",
                        e
                    ));
                    if tokio::time::Instant::now() + Duration::from_secs(5) > deadline {
                        return Err(Error::msg(format!(
                            "error when evicting pods/{name:?} -n {ns:?}: global timeout reached: {}",
                            api::duration::format(self.timeout)
                        )));
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Err(e) if e.is_transport() => return Err(e),
                Err(e) => {
                    return Err(Error::msg(format!(
                        "error when evicting pods/{name:?} -n {ns:?}: {e}"
                    )));
                }
            }
        }
    }

    async fn delete(&self, ctx: &Context, ns: &str, name: &str) -> Result<()> {
        let mut options = json!({"kind": "DeleteOptions", "apiVersion": "v1"});
        if self.grace_period >= 0 {
            options["gracePeriodSeconds"] = json!(self.grace_period);
        }
        match ctx.delete(&POD.object_path(Some(ns), name), &options).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Whether discovery lists `pods/eviction` (kubectl's `CheckEvictionSupport`).
async fn eviction_supported(ctx: &Context) -> Result<bool> {
    let list = ctx.get("/api/v1").await?;
    Ok(list["resources"]
        .as_array()
        .is_some_and(|rs| rs.iter().any(|r| r["name"] == "pods/eviction")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(owner: Option<&str>, phase: &str, empty_dir: bool) -> Value {
        let mut p = json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {}, "status": {"phase": phase}});
        if let Some(kind) = owner {
            p["metadata"]["ownerReferences"] =
                json!([{"kind": kind, "name": "o", "uid": "u", "controller": true}]);
        }
        if empty_dir {
            p["spec"]["volumes"] = json!([{"name": "scratch", "emptyDir": {}}]);
        }
        p
    }

    #[test]
    fn drain_filters() {
        assert_eq!(
            verdict(
                &pod(Some("ReplicaSet"), "Running", false),
                false,
                false,
                false
            ),
            Verdict::Delete
        );
        assert_eq!(
            verdict(&pod(None, "Running", false), false, false, false),
            Verdict::Refuse("Pods that declare no controller (use --force to override)")
        );
        assert_eq!(
            verdict(&pod(None, "Running", false), true, false, false),
            Verdict::Warn("deleting Pods that declare no controller")
        );
        assert_eq!(
            verdict(&pod(None, "Succeeded", false), false, false, false),
            Verdict::Delete
        );
        assert_eq!(
            verdict(
                &pod(Some("DaemonSet"), "Running", false),
                false,
                false,
                false
            ),
            Verdict::Refuse("DaemonSet-managed Pods (use --ignore-daemonsets to ignore)")
        );
        assert_eq!(
            verdict(
                &pod(Some("DaemonSet"), "Running", false),
                false,
                true,
                false
            ),
            Verdict::Skip(Some("ignoring DaemonSet-managed Pods"))
        );
        assert_eq!(
            verdict(
                &pod(Some("ReplicaSet"), "Running", true),
                false,
                false,
                false
            ),
            Verdict::Refuse("Pods with local storage (use --delete-emptydir-data to override)")
        );
        let mut mirror = pod(None, "Running", false);
        mirror["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "x"});
        assert_eq!(verdict(&mirror, false, false, false), Verdict::Skip(None));
    }

    #[test]
    fn messages_group_pods() {
        let items = vec![
            (
                "deleting Pods that declare no controller",
                "default/a".to_string(),
            ),
            ("deleting Pods with local storage", "default/b".to_string()),
            (
                "deleting Pods that declare no controller",
                "default/c".to_string(),
            ),
        ];
        assert_eq!(
            grouped(&items).join("; "),
            "deleting Pods that declare no controller: default/a, default/c; deleting Pods with local storage: default/b"
        );
    }
}
