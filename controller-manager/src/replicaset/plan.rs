//! Pure decisions of the ReplicaSet controller: which pods to delete first, and the status.

use std::sync::Arc;

use api::apps::{ReplicaSet, ReplicaSetStatus};
use api::core::Pod;
use chrono::{DateTime, Utc};

/// Rank pods from least to most valuable, as Kubernetes' `ActivePods` ordering: unscheduled
/// before scheduled, pending before running, not ready before ready, ready for less time
/// before more, more restarts before fewer, newer before older.
pub fn pods_to_delete(pods: &[Arc<Pod>], n: usize, _now: DateTime<Utc>) -> Vec<Arc<Pod>> {
    let phase_rank = |p: &Pod| match p.phase() {
        "Pending" => 0,
        "Unknown" => 1,
        _ => 2,
    };
    let ready_since = |p: &Pod| {
        p.condition("Ready")
            .filter(|c| c.status == "True")
            .and_then(|c| c.last_transition_time)
    };
    let restarts = |p: &Pod| {
        p.status
            .as_ref()
            .map(|s| {
                s.container_statuses
                    .iter()
                    .map(|c| c.restart_count)
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    };
    let mut sorted: Vec<Arc<Pod>> = pods.to_vec();
    sorted.sort_by(|a, b| {
        (!a.spec.node_name.is_empty())
            .cmp(&!b.spec.node_name.is_empty())
            .then(phase_rank(a).cmp(&phase_rank(b)))
            .then(a.is_ready().cmp(&b.is_ready()))
            // Ready for a shorter time (a later timestamp) is less valuable.
            .then(ready_since(b).cmp(&ready_since(a)))
            .then(restarts(b).cmp(&restarts(a)))
            .then(
                b.metadata
                    .creation_timestamp
                    .cmp(&a.metadata.creation_timestamp),
            )
    });
    sorted.truncate(n);
    sorted
}

/// The status a ReplicaSet should report for these active pods.
pub fn calculate_status(
    rs: &ReplicaSet,
    active: &[Arc<Pod>],
    now: DateTime<Utc>,
) -> ReplicaSetStatus {
    let template_labels = &rs.spec.template.metadata.labels;
    let fully_labeled = active
        .iter()
        .filter(|p| {
            template_labels
                .iter()
                .all(|(k, v)| p.metadata.labels.get(k) == Some(v))
        })
        .count();
    let ready = active.iter().filter(|p| p.is_ready()).count();
    let available = active
        .iter()
        .filter(|p| p.is_available(rs.spec.min_ready_seconds, now))
        .count();
    let mut status = rs.status.clone().unwrap_or_default();
    status.replicas = active.len() as i32;
    status.fully_labeled_replicas = fully_labeled as i32;
    status.ready_replicas = ready as i32;
    status.available_replicas = available as i32;
    status.observed_generation = rs.metadata.generation;
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::core::{PodCondition, PodStatus};
    use api::meta::Time;

    fn pod(name: &str, node: &str, phase: &str, ready: bool, created: i64) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.name = name.into();
        p.metadata.labels.insert("app".into(), "web".into());
        p.metadata.creation_timestamp = Some(Time(DateTime::from_timestamp(created, 0).unwrap()));
        p.spec.node_name = node.into();
        p.status = Some(PodStatus {
            phase: phase.into(),
            conditions: vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                last_transition_time: Some(Time(DateTime::from_timestamp(created, 0).unwrap())),
                ..Default::default()
            }],
            ..Default::default()
        });
        Arc::new(p)
    }

    #[test]
    fn least_valuable_pods_go_first() {
        let pods = vec![
            pod("running-old", "n1", "Running", true, 100),
            pod("running-new", "n1", "Running", true, 200),
            pod("pending", "n1", "Pending", false, 50),
            pod("unscheduled", "", "Pending", false, 10),
            pod("not-ready", "n1", "Running", false, 10),
        ];
        let names: Vec<String> = pods_to_delete(&pods, 5, Utc::now())
            .iter()
            .map(|p| p.metadata.name.clone())
            .collect();
        assert_eq!(
            names,
            vec![
                "unscheduled",
                "pending",
                "not-ready",
                "running-new",
                "running-old"
            ]
        );
    }

    #[test]
    fn status_counts_ready_and_available() {
        let mut rs = ReplicaSet::default();
        rs.metadata.generation = 4;
        rs.spec.min_ready_seconds = 30;
        rs.spec
            .template
            .metadata
            .labels
            .insert("app".into(), "web".into());
        let now = DateTime::from_timestamp(1000, 0).unwrap();
        let pods = vec![
            pod("a", "n", "Running", true, 900),
            pod("b", "n", "Running", true, 990),
            pod("c", "n", "Running", false, 0),
        ];
        let s = calculate_status(&rs, &pods, now);
        assert_eq!(
            (
                s.replicas,
                s.fully_labeled_replicas,
                s.ready_replicas,
                s.available_replicas,
                s.observed_generation
            ),
            (3, 3, 2, 1, 4)
        );
    }
}
