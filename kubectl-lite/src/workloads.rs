//! Following workloads, shared by the commands that need it (`rollout status`, `apply --wait`,
//! `describe`, `rollout history|undo`): a Deployment's rollout status as kubectl words it, the
//! loop that follows it, readiness for `apply --wait`, and a Deployment's ReplicaSets.

use api::ResourceInfo;
use api::annotations::REVISION;
use serde_json::Value;
use tokio::time::Instant;

use crate::builder::Object;
use crate::color::{self, Color};
use crate::context::Context;
use crate::describe;
use crate::errors::{Error, Result};
use crate::printer;
use crate::util::{int_of, map_get, name_of, str_of};
use crate::watch;

/// kubectl's `DeploymentStatusViewer.Status`: a message, and whether the rollout is done.
pub fn deployment_status(d: &Value, revision: i64) -> Result<(String, bool)> {
    let name = name_of(d);
    if revision > 0 {
        let current = map_get(d, "/metadata/annotations", REVISION)
            .and_then(|r| r.parse::<i64>().ok())
            .ok_or_else(|| Error::msg(format!("cannot get the revision of deployment {name:?}")))?;
        if current != revision {
            return Err(Error::msg(format!(
                "desired revision ({revision}) is different from the running revision ({current})"
            )));
        }
    }
    let generation = int_of(d, "/metadata/generation");
    let observed = int_of(d, "/status/observedGeneration");
    if generation > observed {
        return Ok((
            "Waiting for deployment spec update to be observed...".into(),
            false,
        ));
    }
    let progressing = d["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"));
    if progressing.is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
        return Err(Error::msg(format!(
            "deployment {name:?} exceeded its progress deadline"
        )));
    }
    let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let updated = int_of(d, "/status/updatedReplicas");
    let total = int_of(d, "/status/replicas");
    let available = int_of(d, "/status/availableReplicas");
    if updated < replicas {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {updated} out of {replicas} new replicas have been updated..."
            ),
            false,
        ));
    }
    if total > updated {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
                total - updated
            ),
            false,
        ));
    }
    if available < updated {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
            ),
            false,
        ));
    }
    Ok((format!("deployment {name:?} successfully rolled out"), true))
}

/// Follow one Deployment's rollout until done, printing each new status line.
pub async fn follow(
    ctx: &Context,
    info: &ResourceInfo,
    namespace: &str,
    name: &str,
    revision: i64,
    deadline: Instant,
    keep_watching: bool,
) -> Result<()> {
    let mut last = String::new();
    let on = color::stdout();
    let mut check = |obj: Option<&Value>| -> Result<bool> {
        let Some(d) = obj else {
            return Err(Error::msg("object has been deleted"));
        };
        let (msg, done) = deployment_status(d, revision)?;
        if msg != last {
            let shown = if done {
                color::paint(on, Color::Green, &msg)
            } else {
                msg.clone()
            };
            printer::stdout(&format!("{shown}\n"));
            last = msg;
        }
        Ok(done || !keep_watching)
    };
    watch::until(ctx, info, namespace, name, deadline, &mut check).await
}

/// `apply --wait`: Deployments until rolled out, pods until Ready; other kinds are ready at once.
pub async fn wait_ready(
    ctx: &Context,
    info: &ResourceInfo,
    namespace: &str,
    name: &str,
    deadline: Instant,
) -> Result<()> {
    match info.kind {
        "Deployment" => follow(ctx, info, namespace, name, 0, deadline, true).await,
        "Pod" => {
            let mut said = false;
            let mut check = |obj: Option<&Value>| -> Result<bool> {
                let Some(p) = obj else {
                    return Err(Error::msg(format!("pod {name:?} was deleted")));
                };
                let ready = p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
                if ready {
                    printer::stdout(&format!("pod {name:?} is ready\n"));
                } else if !said {
                    printer::stdout(&format!("Waiting for pod {name:?} to be ready...\n"));
                    said = true;
                }
                Ok(ready)
            };
            watch::until(ctx, info, namespace, name, deadline, &mut check).await
        }
        _ => Ok(()),
    }
}

/// A Deployment's ReplicaSets: those its selector matches that it controls.
pub async fn owned_replica_sets(ctx: &Context, d: &Object) -> Result<Vec<Value>> {
    let selector = describe::selector_string(&d.object["spec"]["selector"]);
    let uid = str_of(&d.object, "/metadata/uid");
    let rss = ctx
        .list(
            &api::resource::REPLICA_SET.collection_path(Some(&d.namespace)),
            &[("labelSelector", selector)],
        )
        .await?;
    Ok(rss
        .into_iter()
        .filter(|rs| describe::controlled_by_uid(rs, uid))
        .collect())
}
