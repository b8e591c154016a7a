//! `POD` or `TYPE/NAME` → the one pod a command works on (`logs`, `exec`), as kubectl's
//! `AttachablePodForObject` and `GetFirstPod` choose it: a pod is itself; a Deployment or a
//! ReplicaSet gives the best of the pods its selector matches ([`pod_rank`]).

use api::resource::POD;
use serde_json::Value;

use crate::builder;
use crate::context::Context;
use crate::describe;
use crate::errors::{Error, Result};
use crate::printer;
use crate::util::{name_of, str_of};

/// The pod `target` names or leads to. `verb` words the error for kinds without pods
/// (`get the logs from`, `exec into`).
pub async fn for_target(ctx: &Context, target: &str, verb: &str) -> Result<Value> {
    let (info, name) = match target.split_once('/') {
        Some((kind, name)) => (builder::kind(kind)?, name),
        None => (&POD, target),
    };
    let obj = ctx
        .get(&info.object_path(Some(&ctx.namespace), name))
        .await?;
    if info.kind == "Pod" {
        return Ok(obj);
    }
    let selector = match info.kind {
        "Deployment" | "ReplicaSet" => describe::selector_string(&obj["spec"]["selector"]),
        other => {
            return Err(Error::msg(format!(
                "cannot {verb} {other}: selector for {other} not implemented"
            )));
        }
    };
    let mut pods = ctx
        .list(
            &POD.collection_path(Some(&ctx.namespace)),
            &[("labelSelector", selector.clone())],
        )
        .await?;
    if pods.is_empty() {
        return Err(Error::msg(format!(
            "timed out waiting for the condition: no pods found for {} {name:?} ({selector})",
            info.kind_string()
        )));
    }
    pods.sort_by_key(pod_rank);
    if pods.len() > 1 {
        printer::stderr(&format!(
            "Found {} pods, using pod/{}\n",
            pods.len(),
            name_of(&pods[0])
        ));
    }
    Ok(pods.swap_remove(0))
}

/// kubectl's `ActivePods` order: running before pending before unscheduled, ready before not
/// ready, fewer restarts first, newer first.
pub fn pod_rank(p: &Value) -> (u8, u8, u8, i64, std::cmp::Reverse<String>) {
    let scheduled = if str_of(p, "/spec/nodeName").is_empty() {
        1
    } else {
        0
    };
    let phase = match str_of(p, "/status/phase") {
        "Running" => 0,
        "Pending" | "" => 1,
        _ => 2,
    };
    let ready = p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    });
    let restarts: i64 = p["status"]["containerStatuses"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    (
        scheduled,
        phase,
        if ready { 0 } else { 1 },
        restarts,
        std::cmp::Reverse(str_of(p, "/metadata/creationTimestamp").to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn running_ready_pods_come_first() {
        let pod = |name: &str, phase: &str, ready: bool, restarts: i64| {
            json!({"metadata": {"name": name, "creationTimestamp": "2024-05-01T12:00:00Z"},
                   "spec": {"nodeName": "n1"},
                   "status": {"phase": phase,
                              "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                              "containerStatuses": [{"restartCount": restarts}]}})
        };
        let mut pods = [
            pod("pending", "Pending", false, 0),
            pod("crashy", "Running", true, 5),
            pod("good", "Running", true, 0),
            pod("unready", "Running", false, 0),
        ];
        pods.sort_by_key(pod_rank);
        let names: Vec<&str> = pods.iter().map(name_of).collect();
        assert_eq!(names, ["good", "crashy", "unready", "pending"]);
    }
}
