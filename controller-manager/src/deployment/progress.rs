//! Deployment conditions and status: Available, Progressing (with the progress deadline), and
//! the status write (Kubernetes' `progress.go` and `syncRolloutStatus`).

use std::sync::Arc;
use std::time::Duration;

use api::apps::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use api::meta::Time;
use client::Api;
use client::runtime::controller::Action;

use super::DeploymentController;
use super::sync::calculate_status;
use super::util::max_unavailable;
use crate::context::Result;

/// Every replica updated and available, and nothing old left.
pub fn is_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let want = d.spec.replicas.unwrap_or(1);
    s.updated_replicas == want
        && s.replicas == want
        && s.available_replicas == want
        && s.observed_generation >= d.metadata.generation
}

/// The rollout moved since the last status.
fn is_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    new.updated_replicas > old.updated_replicas
        || (new.replicas - new.updated_replicas) < (old.replicas - old.updated_replicas)
        || new.ready_replicas > old.ready_replicas
        || new.available_replicas > old.available_replicas
}

fn condition<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.iter().find(|c| c.type_ == type_)
}

/// Set a condition; the transition time moves only when the status does.
pub fn set_condition(
    s: &mut DeploymentStatus,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) {
    let now = Time::now();
    match s.conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == status && c.reason == reason && c.message == message => {}
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Some(now);
            }
            c.status = status.into();
            c.reason = reason.into();
            c.message = message;
            c.last_update_time = Some(now);
        }
        None => s.conditions.push(DeploymentCondition {
            type_: type_.into(),
            status: status.into(),
            last_update_time: Some(now),
            last_transition_time: Some(now),
            reason: reason.into(),
            message,
        }),
    }
}

fn timed_out(d: &Deployment, s: &DeploymentStatus) -> bool {
    let Some(deadline) = d.spec.progress_deadline_seconds else {
        return false;
    };
    let Some(c) = condition(s, "Progressing") else {
        return false;
    };
    if c.reason == "NewReplicaSetAvailable" || c.reason == "ProgressDeadlineExceeded" {
        return c.reason == "ProgressDeadlineExceeded";
    }
    c.last_update_time
        .is_some_and(|t| t.0 + chrono::Duration::seconds(deadline as i64) < chrono::Utc::now())
}

/// Note on the Deployment that a new ReplicaSet was created.
pub async fn record_new_replica_set(
    ctrl: &DeploymentController,
    d: &Deployment,
    name: &str,
) -> Result<()> {
    if d.spec.progress_deadline_seconds.is_none() {
        return Ok(());
    }
    let mut updated = d.clone();
    let status = updated.status.get_or_insert_with(Default::default);
    set_condition(
        status,
        "Progressing",
        "True",
        "NewReplicaSetCreated",
        format!("Created new replica set {name:?}"),
    );
    Api::<Deployment>::namespaced(ctrl.ctx.client.clone(), &d.metadata.namespace)
        .replace_status(&d.metadata.name, &updated)
        .await?;
    Ok(())
}

/// Compute and write the status. `rolling`: a rollout step (Progressing is maintained).
pub async fn sync_status(
    ctrl: &DeploymentController,
    d: &Deployment,
    all: &[Arc<ReplicaSet>],
    new: Option<&Arc<ReplicaSet>>,
    rolling: bool,
) -> Result<Action> {
    let mut status = calculate_status(d, all, new);
    let want = d.spec.replicas.unwrap_or(1);
    if status.available_replicas >= want - max_unavailable(d) {
        set_condition(
            &mut status,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
        );
    } else {
        set_condition(
            &mut status,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
        );
    }
    let mut requeue = None;
    if d.spec.paused {
        set_condition(
            &mut status,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
        );
    } else if d.spec.progress_deadline_seconds.is_some() {
        let paused_before =
            condition(&status, "Progressing").is_some_and(|c| c.reason == "DeploymentPaused");
        if paused_before {
            set_condition(
                &mut status,
                "Progressing",
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed".into(),
            );
        }
        if let Some(rs) = new {
            let name = &rs.metadata.name;
            if is_complete(d, &status) {
                set_condition(
                    &mut status,
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    format!("ReplicaSet {name:?} has successfully progressed."),
                );
            } else if rolling && is_progressing(d, &status) {
                let msg = format!("ReplicaSet {name:?} is progressing.");
                // Progress refreshes lastUpdateTime even when the message is the same.
                set_condition(
                    &mut status,
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    msg.clone(),
                );
                if let Some(c) = status
                    .conditions
                    .iter_mut()
                    .find(|c| c.type_ == "Progressing")
                {
                    c.last_update_time = Some(Time::now());
                }
            } else if timed_out(d, &status) {
                set_condition(
                    &mut status,
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    format!("ReplicaSet {name:?} has timed out progressing."),
                );
            }
            if !is_complete(d, &status)
                && let (Some(deadline), Some(c)) = (
                    d.spec.progress_deadline_seconds,
                    condition(&status, "Progressing"),
                )
                && c.status == "True"
                && let Some(t) = c.last_update_time
            {
                let left = (t.0 + chrono::Duration::seconds(deadline as i64 + 1)
                    - chrono::Utc::now())
                .num_seconds()
                .max(1);
                requeue = Some(Duration::from_secs(left as u64));
            }
        }
    }
    if d.status.as_ref() != Some(&status) {
        let mut updated = d.clone();
        updated.status = Some(status);
        Api::<Deployment>::namespaced(ctrl.ctx.client.clone(), &d.metadata.namespace)
            .replace_status(&d.metadata.name, &updated)
            .await?;
    }
    Ok(requeue
        .map(Action::RequeueAfter)
        .unwrap_or(Action::AwaitChange))
}
