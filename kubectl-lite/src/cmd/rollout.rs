//! `rollout status|history|undo|restart|pause|resume` for Deployments, as kubectl's
//! `pkg/cmd/rollout` and `pkg/polymorphichelpers` do them:
//!
//! - `status` follows the Deployment (a watch) and prints a line each time the rollout moves,
//!   until it is done ([`crate::workloads::deployment_status`] is kubectl's `DeploymentStatusViewer`).
//! - `history` lists the Deployment's ReplicaSets (by its selector, owned by it) by their
//!   `deployment.kubernetes.io/revision`, with `kubernetes.io/change-cause`.
//! - `undo` copies a revision's pod template back into the Deployment with a JSON patch
//!   replacing `/spec/template` and the annotations.
//! - `restart` sets the `kubectl.kubernetes.io/restartedAt` template annotation, `pause` and
//!   `resume` set `spec.paused` — strategic merge patches.

use std::collections::BTreeMap;
use std::time::Duration;

use api::annotations::{
    CHANGE_CAUSE, DESIRED_REPLICAS, LAST_APPLIED, MAX_REPLICAS, POD_TEMPLATE_HASH, RESTARTED_AT,
    REVISION, REVISION_HISTORY,
};
use serde_json::{Map, Value, json};

use crate::builder::{self, Object, Query};
use crate::context::{Context, PatchType, query};
use crate::describe;
use crate::errors::{self, Error, Result};
use crate::manifest::FilenameArgs;
use crate::printer;
use crate::tabwriter::{self, DESCRIBE};
use crate::util::{self, map_get, parse_duration};
use crate::workloads::{follow, owned_replica_sets};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  kubectl-lite rollout status deploy/blog
  kubectl-lite rollout history deploy/blog
  kubectl-lite rollout undo deploy/blog --to-revision=1
  kubectl-lite rollout restart deploy/blog")]
pub struct Rollout {
    #[command(subcommand)]
    pub command: RolloutCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum RolloutCommand {
    /// Show the status of the rollout, following it until it is done.
    Status(Status),
    /// View previous rollout revisions.
    History(History),
    /// Roll back to a previous rollout (the one before, or --to-revision).
    Undo(Undo),
    /// Restart every pod of a Deployment, by rolling out the same template again.
    Restart(Targets),
    /// Mark a Deployment as paused: template changes wait until it is resumed.
    Pause(Targets),
    /// Resume a paused Deployment.
    Resume(Targets),
}

/// Which Deployments: `deployment/NAME`, `deployment NAME`, `-l`, or `-f`.
#[derive(clap::Args, Debug, Default)]
pub struct Targets {
    /// `deployment/NAME`, or `deployment NAME…`.
    #[arg(value_name = "RESOURCE")]
    pub args: Vec<String>,
    #[command(flatten)]
    pub files: FilenameArgs,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
}

impl Targets {
    async fn objects(&self, ctx: &Context) -> Result<(Vec<Object>, Vec<Error>)> {
        if self.args.is_empty() && self.files.is_empty() {
            return Err(Error::msg("required resource not specified"));
        }
        builder::objects(
            ctx,
            Query {
                args: &self.args,
                files: Some(&self.files),
                selector: self.selector.as_deref(),
                ..Default::default()
            },
        )
        .await
    }
}

#[derive(clap::Args, Debug)]
pub struct Status {
    #[command(flatten)]
    pub targets: Targets,
    /// Follow the rollout until it is done (--watch=false: print the status once).
    #[arg(short = 'w', long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub watch: bool,
    /// Only succeed for this revision (0: the latest).
    #[arg(long, default_value_t = 0)]
    pub revision: i64,
    /// How long to wait (`30s`, `5m`; 0: forever).
    #[arg(long, default_value = "0s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

#[derive(clap::Args, Debug)]
pub struct History {
    #[command(flatten)]
    pub targets: Targets,
    /// Show the pod template of this revision.
    #[arg(long, default_value_t = 0)]
    pub revision: i64,
}

#[derive(clap::Args, Debug)]
pub struct Undo {
    #[command(flatten)]
    pub targets: Targets,
    /// The revision to roll back to (0: the one before the current).
    #[arg(long, default_value_t = 0)]
    pub to_revision: i64,
}

impl Rollout {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        match self.command {
            RolloutCommand::Status(c) => c.run(ctx).await,
            RolloutCommand::History(c) => c.run(ctx).await,
            RolloutCommand::Undo(c) => c.run(ctx).await,
            RolloutCommand::Restart(t) => patch_each(ctx, &t, Action::Restart).await,
            RolloutCommand::Pause(t) => patch_each(ctx, &t, Action::Pause).await,
            RolloutCommand::Resume(t) => patch_each(ctx, &t, Action::Resume).await,
        }
    }
}

/// Only Deployments have rollouts in kube-lite; others get kubectl's error for kinds without
/// a status viewer / history viewer / rollbacker.
fn require_deployment(o: &Object, what: &str) -> Result<()> {
    if o.info.kind == "Deployment" {
        Ok(())
    } else {
        Err(Error::msg(format!(
            "no {what} has been implemented for {:?}",
            o.info.qualified_kind()
        )))
    }
}

impl Status {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        if self.revision < 0 {
            return Err(Error::msg(format!(
                "revision must be a positive integer: {}",
                self.revision
            )));
        }
        let (objects, mut errors) = self.targets.objects(ctx).await?;
        if objects.is_empty() && errors.is_empty() {
            printer::stderr(&format!(
                "No resources found in {} namespace.\n",
                ctx.namespace
            ));
            return Ok(());
        }
        let deadline = util::deadline(self.timeout);
        for o in &objects {
            require_deployment(o, "status viewer")?;
            if let Err(e) = follow(
                ctx,
                o.info,
                &o.namespace,
                &o.name,
                self.revision,
                deadline,
                self.watch,
            )
            .await
            {
                errors.push(e);
            }
        }
        errors::collect(errors)
    }
}

/// Revision → ReplicaSet.
fn revisions(rss: Vec<Value>) -> BTreeMap<i64, Value> {
    rss.into_iter()
        .filter_map(|rs| {
            let r = map_get(&rs, "/metadata/annotations", REVISION)?
                .parse::<i64>()
                .ok()?;
            Some((r, rs))
        })
        .collect()
}

/// `rollout history`'s table: each revision and its change cause.
pub fn history_table(rss: &BTreeMap<i64, Value>) -> String {
    if rss.is_empty() {
        return "No rollout history found.".into();
    }
    let mut text = String::from("REVISION\tCHANGE-CAUSE\n");
    for (r, rs) in rss {
        let cause = map_get(rs, "/metadata/annotations", CHANGE_CAUSE)
            .or_else(|| map_get(rs, "/spec/template/metadata/annotations", CHANGE_CAUSE))
            .filter(|c| !c.is_empty())
            .unwrap_or("<none>");
        text.push_str(&format!("{r}\t{cause}\n"));
    }
    tabwriter::align_with(&text, DESCRIBE)
}

impl History {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        if self.revision < 0 {
            return Err(Error::msg(format!(
                "revision must be a positive integer: {}",
                self.revision
            )));
        }
        let (objects, mut errors) = self.targets.objects(ctx).await?;
        for o in &objects {
            require_deployment(o, "history viewer")?;
            let revs = revisions(owned_replica_sets(ctx, o).await?);
            let name = o.info.qualified_name(&o.name);
            if self.revision > 0 {
                let Some(rs) = revs.get(&self.revision) else {
                    errors.push(Error::msg("unable to find the specified revision"));
                    continue;
                };
                let mut template = rs["spec"]["template"].clone();
                if let Some(cause) = map_get(rs, "/metadata/annotations", CHANGE_CAUSE) {
                    template["metadata"]["annotations"][CHANGE_CAUSE] = json!(cause);
                }
                printer::stdout(&format!(
                    "{name} with revision #{}\n{}\n",
                    self.revision,
                    describe::pod_template_page(&template)
                ));
            } else {
                printer::stdout(&format!("{name} \n{}\n", history_table(&revs)));
            }
        }
        errors::collect(errors)
    }
}

/// kubectl's rollback: the JSON patch that restores `rs`'s template into `d`, or None when
/// the template already matches (a skipped rollback).
pub fn rollback_patch(d: &Value, rs: &Value) -> Option<Value> {
    let template = |v: &Value| {
        serde_json::from_value::<api::apps::PodTemplateSpec>(v["spec"]["template"].clone()).ok()
    };
    if let (Some(a), Some(b)) = (template(rs), template(d))
        && api::workload::templates_equal(&a, &b)
    {
        return None;
    }
    let mut template = rs["spec"]["template"].clone();
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
    }
    // Keep the Deployment's own bookkeeping annotations; take the rest from the revision.
    let skip = [
        LAST_APPLIED,
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        "deprecated.deployment.rollback.to",
    ];
    let mut annotations = Map::new();
    if let Some(m) = d["metadata"]["annotations"].as_object() {
        for (k, v) in m {
            if skip.contains(&k.as_str()) {
                annotations.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(m) = rs["metadata"]["annotations"].as_object() {
        for (k, v) in m {
            if !skip.contains(&k.as_str()) {
                annotations.insert(k.clone(), v.clone());
            }
        }
    }
    Some(json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]))
}

impl Undo {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        if self.to_revision < 0 {
            return Err(Error::msg(format!(
                "unable to find specified revision {} in history",
                self.to_revision
            )));
        }
        let (objects, mut errors) = self.targets.objects(ctx).await?;
        for o in &objects {
            require_deployment(o, "rollbacker")?;
            if map_get(&o.object, "/metadata/annotations", LAST_APPLIED).is_some() {
                printer::stderr(&format!(
                    "Warning: resource {} was previously managed with 'kubectl-lite apply'. Rolling back will not update the {LAST_APPLIED} annotation, which may cause unexpected behavior on future 'kubectl-lite apply' operations. Consider using 'kubectl-lite apply' with your previous configuration file instead.\n",
                    o.info.qualified_plural() + "/" + &o.name
                ));
            }
            match self.undo_one(ctx, o).await {
                Ok(result) => {
                    printer::stdout(&format!("{} {result}\n", o.info.qualified_name(&o.name)))
                }
                Err(e) if e.is_transport() => return Err(e),
                Err(e) => errors.push(e),
            }
        }
        errors::collect(errors)
    }

    async fn undo_one(&self, ctx: &Context, o: &Object) -> Result<String> {
        let revs = revisions(owned_replica_sets(ctx, o).await?);
        let rs = if self.to_revision > 0 {
            revs.get(&self.to_revision).ok_or_else(|| {
                Error::msg(format!(
                    "unable to find specified revision {} in history",
                    self.to_revision
                ))
            })?
        } else {
            // The newest but one.
            let mut newest = revs.values().rev();
            newest.next();
            newest.next().ok_or_else(|| {
                Error::msg(format!(
                    "no rollout history found for deployment {:?}",
                    o.name
                ))
            })?
        };
        if o.object["spec"]["paused"] == true {
            return Err(Error::msg(
                "you cannot rollback a paused deployment; resume it first with 'kubectl-lite rollout resume' and try again",
            ));
        }
        let revision = map_get(rs, "/metadata/annotations", REVISION).unwrap_or_default();
        let Some(patch) = rollback_patch(&o.object, rs) else {
            return Ok(format!(
                "skipped rollback (current template already matches revision {revision})"
            ));
        };
        ctx.patch(&o.path(), &patch, PatchType::Json)
            .await
            .map_err(|e| {
                Error::msg(format!(
                    "failed restoring revision {revision}: {}",
                    errors::render(&e).trim_end()
                ))
            })?;
        Ok("rolled back".into())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Restart,
    Pause,
    Resume,
}

/// The patch for restart/pause/resume, or the reason there is none (kubectl's wording).
fn action_patch(action: Action, d: &Value, now: &str) -> std::result::Result<Value, &'static str> {
    let paused = d["spec"]["paused"] == true;
    match action {
        Action::Restart if paused => {
            Err("can't restart paused deployment (run rollout resume first)")
        }
        Action::Restart => {
            Ok(json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}))
        }
        Action::Pause if paused => Err("is already paused"),
        Action::Pause => Ok(json!({"spec": {"paused": true}})),
        Action::Resume if !paused => Err("is not paused"),
        Action::Resume => Ok(json!({"spec": {"paused": null}})),
    }
}

async fn patch_each(ctx: &Context, targets: &Targets, action: Action) -> Result<()> {
    let (objects, mut errors) = targets.objects(ctx).await?;
    if objects.is_empty() && errors.is_empty() {
        printer::stderr(&format!(
            "No resources found in {} namespace.\n",
            ctx.namespace
        ));
        return Ok(());
    }
    let verb = match action {
        Action::Restart => "restarted",
        Action::Pause => "paused",
        Action::Resume => "resumed",
    };
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    for o in &objects {
        if o.info.kind != "Deployment" {
            let what = match action {
                Action::Restart => "restarting",
                Action::Pause => "pausing",
                Action::Resume => "resuming",
            };
            errors.push(Error::msg(format!(
                "error: {} {:?} {what} is not supported",
                o.info.qualified_plural(),
                o.name
            )));
            continue;
        }
        let patch = match action_patch(action, &o.object, &now) {
            Ok(p) => p,
            Err(why) => {
                errors.push(Error::msg(format!(
                    "error: {} {:?} {why}",
                    o.info.qualified_plural(),
                    o.name
                )));
                continue;
            }
        };
        let q = query(&[("fieldManager", "kubectl-rollout".to_string())]);
        match ctx
            .patch(&format!("{}{q}", o.path()), &patch, PatchType::Strategic)
            .await
        {
            Ok(_) => printer::stdout(&format!("{} {verb}\n", o.info.qualified_name(&o.name))),
            Err(e) if e.is_transport() => return Err(e),
            Err(e) => errors.push(Error::msg(format!(
                "failed to patch: {}",
                errors::render(&e).trim_end()
            ))),
        }
    }
    errors::collect(errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::deployment_status;

    fn deploy(generation: i64, observed: i64, replicas: i64, status: Value) -> Value {
        let mut d = json!({"metadata": {"name": "web", "generation": generation,
                                        "annotations": {REVISION: "2"}},
                           "spec": {"replicas": replicas}, "status": status});
        d["status"]["observedGeneration"] = json!(observed);
        d
    }

    #[test]
    fn status_messages_follow_kubectl() {
        let cases = [
            (
                deploy(2, 1, 3, json!({})),
                "Waiting for deployment spec update to be observed...",
                false,
            ),
            (
                deploy(
                    2,
                    2,
                    3,
                    json!({"replicas": 3, "updatedReplicas": 1, "availableReplicas": 2}),
                ),
                "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...",
                false,
            ),
            (
                deploy(
                    2,
                    2,
                    3,
                    json!({"replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}),
                ),
                "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...",
                false,
            ),
            (
                deploy(
                    2,
                    2,
                    3,
                    json!({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 1}),
                ),
                "Waiting for deployment \"web\" rollout to finish: 1 of 3 updated replicas are available...",
                false,
            ),
            (
                deploy(
                    2,
                    2,
                    3,
                    json!({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
                ),
                "deployment \"web\" successfully rolled out",
                true,
            ),
        ];
        for (d, msg, done) in cases {
            assert_eq!(deployment_status(&d, 0).unwrap(), (msg.to_string(), done));
        }
        let stuck = deploy(
            1,
            1,
            3,
            json!({"conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
        );
        assert_eq!(
            deployment_status(&stuck, 0).unwrap_err().to_string(),
            "deployment \"web\" exceeded its progress deadline"
        );
        assert_eq!(
            deployment_status(&deploy(1, 1, 1, json!({})), 3)
                .unwrap_err()
                .to_string(),
            "desired revision (3) is different from the running revision (2)"
        );
    }

    fn rs(rev: &str, image: &str, cause: Option<&str>) -> Value {
        let mut annotations = json!({REVISION: rev});
        if let Some(c) = cause {
            annotations[CHANGE_CAUSE] = json!(c);
        }
        json!({"metadata": {"name": format!("web-{rev}"), "annotations": annotations},
               "spec": {"template": {"metadata": {"labels": {"app": "web", POD_TEMPLATE_HASH: format!("h{rev}")}},
                                     "spec": {"containers": [{"name": "web", "image": image}]}}}})
    }

    #[test]
    fn history_lists_revisions_in_order() {
        let revs = revisions(vec![
            rs(
                "3",
                "nginx:3",
                Some("kubectl-lite set image deploy/web web=nginx:3"),
            ),
            rs("1", "nginx:1", None),
            json!({"metadata": {"name": "stray"}}),
        ]);
        insta::assert_snapshot!(format!("deployment.apps/web \n{}\n", history_table(&revs)));
        assert_eq!(history_table(&BTreeMap::new()), "No rollout history found.");
    }

    #[test]
    fn rollback_replaces_the_template_and_keeps_bookkeeping() {
        let d = json!({"metadata": {"name": "web", "annotations": {REVISION: "3", LAST_APPLIED: "{}", "team": "a"}},
                       "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                                             "spec": {"containers": [{"name": "web", "image": "nginx:3"}]}}}});
        let old = rs("1", "nginx:1", Some("first"));
        let patch = rollback_patch(&d, &old).expect("a patch");
        assert_eq!(
            patch,
            json!([
                {"op": "replace", "path": "/spec/template", "value": {"metadata": {"labels": {"app": "web"}},
                  "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}},
                {"op": "replace", "path": "/metadata/annotations",
                 "value": {REVISION: "3", LAST_APPLIED: "{}", CHANGE_CAUSE: "first"}}
            ])
        );
        let same = rs("3", "nginx:3", None);
        assert_eq!(rollback_patch(&d, &same), None);
    }

    #[test]
    fn restart_pause_and_resume() {
        let running = json!({"spec": {}});
        let paused = json!({"spec": {"paused": true}});
        assert_eq!(
            action_patch(Action::Restart, &running, "2024-05-01T12:00:00Z"),
            Ok(
                json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2024-05-01T12:00:00Z"}}}}})
            )
        );
        assert!(action_patch(Action::Restart, &paused, "t").is_err());
        assert_eq!(
            action_patch(Action::Pause, &paused, "t"),
            Err("is already paused")
        );
        assert_eq!(
            action_patch(Action::Resume, &running, "t"),
            Err("is not paused")
        );
        assert_eq!(
            action_patch(Action::Resume, &paused, "t"),
            Ok(json!({"spec": {"paused": null}}))
        );
    }
}
