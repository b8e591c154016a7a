//! Score plugins: LeastAllocated and BalancedAllocation (NodeResourcesFit's scores), spreading
//! pods of one owner, PreferNoSchedule taints and preferred node affinity. Raw scores are
//! per node; those that depend on the other nodes (spreading, taints, affinity) are turned
//! into 0..=100 in `normalize`, once per decision, as Kubernetes' NormalizeScore does.

use super::filters::{term_matches, tolerates};
use super::{MAX_NODE_SCORE, PodInfo, Score};
use crate::cache::NodeInfo;

/// Kubernetes counts pods without requests as asking for 100m CPU and 200Mi for scoring.
const DEFAULT_CPU_MILLI: i64 = 100;
const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

fn requests_for_scoring(pod: &PodInfo) -> (i64, i64) {
    let r = pod.requests;
    (
        if r.cpu_milli == 0 {
            DEFAULT_CPU_MILLI
        } else {
            r.cpu_milli
        },
        if r.memory == 0 {
            DEFAULT_MEMORY
        } else {
            r.memory
        },
    )
}

fn fraction(requested: i64, allocatable: i64) -> f64 {
    if allocatable <= 0 {
        1.0
    } else {
        (requested as f64 / allocatable as f64).clamp(0.0, 1.0)
    }
}

/// Scale raw scores so the largest becomes 100 (`reverse`: so the smallest does).
fn normalize_by_max(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    for s in scores.iter_mut() {
        *s = match (max, reverse) {
            (0, true) => MAX_NODE_SCORE,
            (0, false) => 0,
            (m, false) => *s * MAX_NODE_SCORE / m,
            (m, true) => MAX_NODE_SCORE - *s * MAX_NODE_SCORE / m,
        };
    }
}

/// Prefer the emptiest node.
pub struct LeastAllocated;
impl Score for LeastAllocated {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }
    fn weight(&self) -> i64 {
        1
    }
    fn score(&self, pod: &PodInfo, n: &NodeInfo) -> i64 {
        let (c, m) = requests_for_scoring(pod);
        let cpu = 1.0 - fraction(n.requested.cpu_milli + c, n.allocatable_cpu);
        let mem = 1.0 - fraction(n.requested.memory + m, n.allocatable_memory);
        ((cpu + mem) / 2.0 * MAX_NODE_SCORE as f64).round() as i64
    }
}

/// Prefer nodes whose cpu and memory use stay in proportion.
pub struct BalancedAllocation;
impl Score for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }
    fn weight(&self) -> i64 {
        1
    }
    fn score(&self, pod: &PodInfo, n: &NodeInfo) -> i64 {
        let (c, m) = requests_for_scoring(pod);
        let cpu = fraction(n.requested.cpu_milli + c, n.allocatable_cpu);
        let mem = fraction(n.requested.memory + m, n.allocatable_memory);
        // The standard deviation of two fractions is |a-b|/2.
        ((1.0 - (cpu - mem).abs() / 2.0) * MAX_NODE_SCORE as f64).round() as i64
    }
}

/// Spread pods of the same owner (ReplicaSet) across nodes: fewer siblings is better.
pub struct OwnerSpread;
impl Score for OwnerSpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }
    fn weight(&self) -> i64 {
        2
    }
    fn score(&self, pod: &PodInfo, n: &NodeInfo) -> i64 {
        pod.owner
            .and_then(|o| n.owners.get(o))
            .copied()
            .unwrap_or(0)
    }
    fn normalize(&self, scores: &mut [i64]) {
        normalize_by_max(scores, true);
    }
}

/// Fewer untolerated PreferNoSchedule taints is better.
pub struct TaintToleration;
impl Score for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }
    fn weight(&self) -> i64 {
        3
    }
    fn score(&self, pod: &PodInfo, n: &NodeInfo) -> i64 {
        n.node
            .spec
            .taints
            .iter()
            .filter(|t| {
                t.effect == "PreferNoSchedule"
                    && !pod.pod.spec.tolerations.iter().any(|tol| tolerates(tol, t))
            })
            .count() as i64
    }
    fn normalize(&self, scores: &mut [i64]) {
        normalize_by_max(scores, true);
    }
}

/// The sum of the weights of the preferred node-affinity terms a node matches.
pub struct NodeAffinity;
impl Score for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }
    fn weight(&self) -> i64 {
        2
    }
    fn score(&self, pod: &PodInfo, n: &NodeInfo) -> i64 {
        let Some(na) = pod
            .pod
            .spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
        else {
            return 0;
        };
        na.preferred_during_scheduling_ignored_during_execution
            .iter()
            .filter(|t| term_matches(&t.preference, &n.node.metadata.labels, n.name()))
            .map(|t| t.weight as i64)
            .sum()
    }
    fn normalize(&self, scores: &mut [i64]) {
        normalize_by_max(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Cache;
    use api::core::{Container, Node, NodeStatus, Pod, Taint};
    use api::meta::OwnerReference;
    use api::quantity::Quantity;
    use std::sync::Arc;

    fn cache(nodes: &[(&str, &str)]) -> Cache {
        let mut c = Cache::default();
        for (name, cpu) in nodes {
            let mut n = Node::default();
            n.metadata.name = name.to_string();
            let mut st = NodeStatus::default();
            st.allocatable.insert("cpu".into(), Quantity::new(*cpu));
            st.allocatable.insert("memory".into(), Quantity::new("4Gi"));
            st.allocatable.insert("pods".into(), Quantity::new("110"));
            n.status = Some(st);
            if *name == "tainted" {
                n.spec.taints.push(Taint {
                    key: "x".into(),
                    effect: "PreferNoSchedule".into(),
                    ..Default::default()
                });
            }
            c.upsert_node(Arc::new(n));
        }
        c
    }

    fn pod(owner: Option<&str>) -> Pod {
        let mut p = Pod::default();
        p.metadata.namespace = "d".into();
        p.metadata.name = format!("p{}", rand::random::<u32>());
        p.spec.containers.push(Container::default());
        if let Some(o) = owner {
            p.metadata.owner_references.push(OwnerReference {
                uid: o.into(),
                controller: Some(true),
                ..Default::default()
            });
        }
        p
    }

    fn scores(plugin: &dyn Score, pod: &Pod, c: &Cache, names: &[&str]) -> Vec<i64> {
        let info = PodInfo::new(pod);
        let mut raw: Vec<i64> = names
            .iter()
            .map(|n| plugin.score(&info, c.node(n).unwrap()))
            .collect();
        plugin.normalize(&mut raw);
        raw
    }

    #[test]
    fn least_allocated_prefers_empty_nodes() {
        let mut c = cache(&[("big", "8"), ("small", "1")]);
        c.assume(&pod(None), "small");
        let s = scores(&LeastAllocated, &pod(None), &c, &["big", "small"]);
        assert!(s[0] > s[1], "{s:?}");
    }

    #[test]
    fn spread_prefers_nodes_without_siblings() {
        let mut c = cache(&[("a", "4"), ("b", "4")]);
        c.assume(&pod(Some("rs1")), "a");
        let s = scores(&OwnerSpread, &pod(Some("rs1")), &c, &["a", "b"]);
        assert_eq!(s, vec![0, 100]);
        let s = scores(&OwnerSpread, &pod(Some("other")), &c, &["a", "b"]);
        assert_eq!(s, vec![100, 100]);
    }

    #[test]
    fn prefer_no_schedule_taints_lower_the_score() {
        let c = cache(&[("clean", "4"), ("tainted", "4")]);
        assert_eq!(
            scores(&TaintToleration, &pod(None), &c, &["clean", "tainted"]),
            vec![100, 0]
        );
    }
}
