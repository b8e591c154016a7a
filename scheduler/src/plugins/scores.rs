//! Score plugins: LeastAllocated and BalancedAllocation (NodeResourcesFit's scores), spreading
//! pods of one owner, PreferNoSchedule taints and preferred node affinity.

use api::core::Pod;

use super::filters::{term_matches, tolerates};
use super::{Score, ScoreContext};
use crate::cache::NodeInfo;

/// Kubernetes counts pods without requests as asking for 100m CPU and 200Mi for scoring.
const DEFAULT_CPU_MILLI: i64 = 100;
const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

fn requests_for_scoring(pod: &Pod) -> (i64, i64) {
    let r = pod.spec.requests();
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

/// Prefer the emptiest node.
pub struct LeastAllocated;
impl Score for LeastAllocated {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }
    fn weight(&self) -> i64 {
        1
    }
    fn score(&self, pod: &Pod, n: &NodeInfo, _: &ScoreContext) -> i64 {
        let (c, m) = requests_for_scoring(pod);
        let cpu = 1.0 - fraction(n.requested.cpu_milli + c, n.allocatable_cpu);
        let mem = 1.0 - fraction(n.requested.memory + m, n.allocatable_memory);
        ((cpu + mem) / 2.0 * 100.0).round() as i64
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
    fn score(&self, pod: &Pod, n: &NodeInfo, _: &ScoreContext) -> i64 {
        let (c, m) = requests_for_scoring(pod);
        let cpu = fraction(n.requested.cpu_milli + c, n.allocatable_cpu);
        let mem = fraction(n.requested.memory + m, n.allocatable_memory);
        // Standard deviation of two fractions is |a-b|/2.
        ((1.0 - (cpu - mem).abs() / 2.0) * 100.0).round() as i64
    }
}

/// Spread pods of the same owner (ReplicaSet) across nodes.
pub struct OwnerSpread;
impl Score for OwnerSpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }
    fn weight(&self) -> i64 {
        2
    }
    fn score(&self, pod: &Pod, n: &NodeInfo, ctx: &ScoreContext) -> i64 {
        let Some(owner) = pod.metadata.controller_ref().map(|r| r.uid.as_str()) else {
            return 100;
        };
        let count = |n: &NodeInfo| n.owners.get(owner).copied().unwrap_or(0);
        let max = ctx.feasible.iter().map(|n| count(n)).max().unwrap_or(0);
        if max == 0 {
            return 100;
        }
        100 - count(n) * 100 / (max + 1)
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
    fn score(&self, pod: &Pod, n: &NodeInfo, ctx: &ScoreContext) -> i64 {
        let count = |n: &NodeInfo| {
            n.node
                .spec
                .taints
                .iter()
                .filter(|t| {
                    t.effect == "PreferNoSchedule"
                        && !pod.spec.tolerations.iter().any(|tol| tolerates(tol, t))
                })
                .count() as i64
        };
        let max = ctx.feasible.iter().map(|n| count(n)).max().unwrap_or(0);
        if max == 0 {
            100
        } else {
            100 - count(n) * 100 / max
        }
    }
}

/// Sum of the weights of matching preferred node-affinity terms, normalised to 0..=100.
pub struct NodeAffinity;
impl Score for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }
    fn weight(&self) -> i64 {
        2
    }
    fn score(&self, pod: &Pod, n: &NodeInfo, ctx: &ScoreContext) -> i64 {
        let Some(terms) = pod
            .spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .map(|na| &na.preferred_during_scheduling_ignored_during_execution)
            .filter(|t| !t.is_empty())
        else {
            return 0;
        };
        let raw = |n: &NodeInfo| -> i64 {
            terms
                .iter()
                .filter(|t| term_matches(&t.preference, &n.node.metadata.labels, n.name()))
                .map(|t| t.weight as i64)
                .sum()
        };
        let max = ctx.feasible.iter().map(|n| raw(n)).max().unwrap_or(0);
        if max == 0 { 0 } else { raw(n) * 100 / max }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Cache;
    use api::core::{Container, Node, NodeStatus};
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

    #[test]
    fn least_allocated_prefers_empty_nodes() {
        let mut c = cache(&[("big", "8"), ("small", "1")]);
        let p = pod(None);
        c.assume(&p, "small");
        let nodes: Vec<&NodeInfo> = c.nodes().collect();
        let ctx = ScoreContext { feasible: &nodes };
        let score = |name: &str| {
            LeastAllocated.score(
                &pod(None),
                nodes.iter().find(|n| n.name() == name).unwrap(),
                &ctx,
            )
        };
        assert!(score("big") > score("small"));
    }

    #[test]
    fn spread_prefers_nodes_without_siblings() {
        let mut c = cache(&[("a", "4"), ("b", "4")]);
        c.assume(&pod(Some("rs1")), "a");
        let nodes: Vec<&NodeInfo> = c.nodes().collect();
        let ctx = ScoreContext { feasible: &nodes };
        let p = pod(Some("rs1"));
        let s = |name: &str| {
            OwnerSpread.score(&p, nodes.iter().find(|n| n.name() == name).unwrap(), &ctx)
        };
        assert!(s("b") > s("a"));
    }
}
