//! Deployment helpers from Kubernetes' `pkg/controller/deployment/util`: the pod-template-hash,
//! revision annotations, surge/unavailability fenceposts, ReplicaSet lookups.

use std::sync::Arc;

use api::apps::{Deployment, PodTemplateSpec, ReplicaSet};
use api::meta::IntOrString;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub use api::annotations::POD_TEMPLATE_HASH;
/// Annotations of the Deployment that are not copied to its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
];

/// FNV-1a, 32 bits: the hash Kubernetes uses for pod-template-hash.
fn fnv32a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in data {
        h ^= *b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// Kubernetes' `rand.SafeEncodeString`: no vowels, no look-alikes, so hashes never spell words.
fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// The pod-template-hash of a template, salted with the collision count.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(template).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&c.to_le_bytes());
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// Templates equal once the pod-template-hash label is ignored ([`api::workload`]).
pub use api::workload::templates_equal as equal_ignore_hash;

pub fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(1)
}

pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

pub fn max_revision(rss: &[Arc<ReplicaSet>]) -> i64 {
    rss.iter().map(|r| revision(r)).max().unwrap_or(0)
}

/// maxSurge (rounded up) and maxUnavailable (rounded down); never both zero.
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    let replicas = d.spec.replicas.unwrap_or(1);
    let ru = d
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.clone())
        .unwrap_or_default();
    let pct25 = IntOrString::String("25%".into());
    let surge = ru
        .max_surge
        .unwrap_or(pct25.clone())
        .scaled_value(replicas, true)
        .unwrap_or(0)
        .max(0);
    let mut unavailable = ru
        .max_unavailable
        .unwrap_or(pct25)
        .scaled_value(replicas, false)
        .unwrap_or(0)
        .max(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable.min(replicas.max(0)))
}

pub fn max_surge(d: &Deployment) -> i32 {
    if is_recreate(d) { 0 } else { fenceposts(d).0 }
}

pub fn max_unavailable(d: &Deployment) -> i32 {
    if is_recreate(d) || d.spec.replicas.unwrap_or(1) == 0 {
        0
    } else {
        fenceposts(d).1
    }
}

pub fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .strategy
        .as_ref()
        .is_some_and(|s| s.type_ == "Recreate")
}

/// The ReplicaSet whose template is the Deployment's (the oldest one, if several;
/// [`api::workload::new_replica_set`]).
pub fn find_new_replica_set(d: &Deployment, rss: &[Arc<ReplicaSet>]) -> Option<Arc<ReplicaSet>> {
    api::workload::new_replica_set(d, rss).map(|i| rss[i].clone())
}

/// Oldest first (name breaks ties).
pub fn sort_by_creation(rss: &mut [Arc<ReplicaSet>]) {
    rss.sort_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
            .then(a.metadata.name.cmp(&b.metadata.name))
    });
}

pub fn total_replicas(rss: &[Arc<ReplicaSet>]) -> i32 {
    rss.iter().map(|r| replicas(r)).sum()
}

pub fn status_replicas(
    rss: &[Arc<ReplicaSet>],
    f: impl Fn(&api::apps::ReplicaSetStatus) -> i32,
) -> i32 {
    rss.iter()
        .map(|r| r.status.as_ref().map(&f).unwrap_or(0))
        .sum()
}

pub fn available_replicas(rss: &[Arc<ReplicaSet>]) -> i32 {
    status_replicas(rss, |s| s.available_replicas)
}

/// The available replicas a scale-down may count on. A ReplicaSet's status is computed from
/// the pods it had before deleting its excess ones, so just after a scale-down it still counts
/// the pods going away; counting those let a rolling update drop below `maxUnavailable`. No
/// ReplicaSet has more available pods than it is scaled to once it has synced, so never count
/// more (stricter than Kubernetes, which sums the statuses as they are).
pub fn available_for_scale_down(rss: &[Arc<ReplicaSet>]) -> i32 {
    rss.iter()
        .map(|r| {
            let available = r.status.as_ref().map_or(0, |s| s.available_replicas);
            available.min(replicas(r))
        })
        .sum()
}

/// How many replicas the new ReplicaSet should have now (Kubernetes' `NewRSNewReplicas`).
pub fn new_rs_new_replicas(
    d: &Deployment,
    all: &[Arc<ReplicaSet>],
    new_rs: Option<&ReplicaSet>,
) -> i32 {
    let want = d.spec.replicas.unwrap_or(1);
    if is_recreate(d) {
        return want;
    }
    let current_new = new_rs.map(replicas).unwrap_or(0);
    let max_total = want + fenceposts(d).0;
    let current_total = total_replicas(all);
    if current_total >= max_total {
        return current_new;
    }
    let up = (max_total - current_total).min(want - current_new).max(0);
    current_new + up
}

/// The annotations a ReplicaSet of this Deployment carries (Deployment's, minus ours).
pub fn copied_annotations(d: &Deployment) -> std::collections::BTreeMap<String, String> {
    d.metadata
        .annotations
        .iter()
        .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::apps::{DeploymentStrategy, RollingUpdateDeployment};

    fn deployment(replicas: i32, surge: IntOrString, unavail: IntOrString) -> Deployment {
        let mut d = Deployment::default();
        d.spec.replicas = Some(replicas);
        d.spec.strategy = Some(DeploymentStrategy {
            type_: "RollingUpdate".into(),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(surge),
                max_unavailable: Some(unavail),
            }),
        });
        d
    }

    #[test]
    fn a_scale_down_never_counts_more_available_than_scaled_to() {
        let rs = |spec: i32, available: i32| {
            let mut r = ReplicaSet::default();
            r.spec.replicas = Some(spec);
            r.status = Some(api::apps::ReplicaSetStatus {
                replicas: available,
                available_replicas: available,
                ..Default::default()
            });
            Arc::new(r)
        };
        // Just scaled from 4 to 3, status not yet recomputed; the new one has 1 of 2.
        let rss = [rs(3, 4), rs(2, 1)];
        assert_eq!(available_replicas(&rss), 5);
        assert_eq!(available_for_scale_down(&rss), 4);
    }

    #[test]
    fn fenceposts_round_like_kubernetes() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(fenceposts(&deployment(10, pct("25%"), pct("25%"))), (3, 2));
        assert_eq!(fenceposts(&deployment(3, pct("25%"), pct("25%"))), (1, 0));
        assert_eq!(
            fenceposts(&deployment(1, IntOrString::Int(0), IntOrString::Int(0))),
            (0, 1)
        );
    }

    #[test]
    fn hashes_are_safe_and_stable() {
        let t = PodTemplateSpec::default();
        let h = pod_template_hash(&t, None);
        assert_eq!(h, pod_template_hash(&t, None));
        assert_ne!(h, pod_template_hash(&t, Some(1)));
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        let mut with_hash = t.clone();
        with_hash
            .metadata
            .labels
            .insert(POD_TEMPLATE_HASH.into(), h);
        assert!(equal_ignore_hash(&t, &with_hash));
    }
}
