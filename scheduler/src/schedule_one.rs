//! One scheduling decision, pure: run the filters on every node, score the nodes that fit, pick
//! the best (ties broken at random). No I/O, so every rule is unit-tested without a cluster.

use std::collections::BTreeMap;

use api::core::Pod;
use rand::Rng;

use crate::cache::{Cache, NodeInfo};
use crate::plugins::{Filter, Score, ScoreContext};

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Bind here. `scores` lists every feasible node's total, for the decision log.
    Bind {
        node: String,
        scores: Vec<(String, i64)>,
    },
    /// Nowhere fits. `message` is Kubernetes' FitError text; `reasons` is per node.
    Unschedulable {
        message: String,
        reasons: BTreeMap<String, Vec<String>>,
    },
}

/// "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) were unschedulable."
pub fn fit_error_message(total: usize, reasons: &BTreeMap<String, Vec<String>>) -> String {
    if total == 0 {
        return "no nodes available to schedule pods".to_string();
    }
    let mut histogram: BTreeMap<&str, usize> = BTreeMap::new();
    for rs in reasons.values() {
        for r in rs {
            *histogram.entry(r.as_str()).or_default() += 1;
        }
    }
    let mut counted: Vec<(&str, usize)> = histogram.into_iter().collect();
    counted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let parts: Vec<String> = counted.iter().map(|(r, n)| format!("{n} {r}")).collect();
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}

pub fn schedule(
    pod: &Pod,
    cache: &Cache,
    filters: &[Box<dyn Filter>],
    scores: &[Box<dyn Score>],
) -> Decision {
    let mut feasible: Vec<&NodeInfo> = Vec::new();
    let mut reasons: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for node in cache.nodes() {
        let mut node_reasons = Vec::new();
        for f in filters {
            if let Err(rs) = f.filter(pod, node) {
                node_reasons.extend(rs);
                // Kubernetes stops at the first failing plugin for a node.
                break;
            }
        }
        if node_reasons.is_empty() {
            feasible.push(node);
        } else {
            reasons.insert(node.name().to_string(), node_reasons);
        }
    }
    if feasible.is_empty() {
        return Decision::Unschedulable {
            message: fit_error_message(cache.node_count(), &reasons),
            reasons,
        };
    }
    let ctx = ScoreContext {
        feasible: &feasible,
    };
    let totals: Vec<(String, i64)> = feasible
        .iter()
        .map(|n| {
            let total = scores
                .iter()
                .map(|s| s.score(pod, n, &ctx) * s.weight())
                .sum();
            (n.name().to_string(), total)
        })
        .collect();
    let best = totals.iter().map(|(_, s)| *s).max().unwrap_or(0);
    let top: Vec<&String> = totals
        .iter()
        .filter(|(_, s)| *s == best)
        .map(|(n, _)| n)
        .collect();
    let node = top[rand::rng().random_range(0..top.len())].clone();
    Decision::Bind {
        node,
        scores: totals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::{default_filters, default_scores};
    use api::core::{Container, Node, NodeStatus};
    use api::quantity::Quantity;
    use std::sync::Arc;

    fn node(name: &str, cpu: &str, unschedulable: bool) -> Arc<Node> {
        let mut n = Node::default();
        n.metadata.name = name.into();
        n.spec.unschedulable = unschedulable;
        let mut st = NodeStatus::default();
        st.allocatable.insert("cpu".into(), Quantity::new(cpu));
        st.allocatable.insert("memory".into(), Quantity::new("1Gi"));
        st.allocatable.insert("pods".into(), Quantity::new("110"));
        n.status = Some(st);
        Arc::new(n)
    }

    fn pod(cpu: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.namespace = "default".into();
        p.metadata.name = "web-1".into();
        let mut c = Container::default();
        c.resources
            .requests
            .insert("cpu".into(), Quantity::new(cpu));
        p.spec.containers.push(c);
        p
    }

    #[test]
    fn explains_why_nothing_fits() {
        let mut cache = Cache::default();
        cache.upsert_node(node("n1", "1", false));
        cache.upsert_node(node("n2", "1", false));
        cache.upsert_node(node("n3", "8", true));
        match schedule(&pod("2"), &cache, &default_filters(), &default_scores()) {
            Decision::Unschedulable { message, .. } => {
                assert_eq!(
                    message,
                    "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) were unschedulable."
                )
            }
            d => panic!("{d:?}"),
        }
        let empty = Cache::default();
        assert!(
            matches!(schedule(&pod("1"), &empty, &default_filters(), &default_scores()),
            Decision::Unschedulable { message, .. } if message == "no nodes available to schedule pods")
        );
    }

    #[test]
    fn picks_a_node_that_fits_and_prefers_the_emptier() {
        let mut cache = Cache::default();
        cache.upsert_node(node("small", "1", false));
        cache.upsert_node(node("big", "16", false));
        match schedule(&pod("500m"), &cache, &default_filters(), &default_scores()) {
            Decision::Bind { node, scores } => {
                assert_eq!(node, "big");
                assert_eq!(scores.len(), 2);
            }
            d => panic!("{d:?}"),
        }
        match schedule(&pod("4"), &cache, &default_filters(), &default_scores()) {
            Decision::Bind { node, .. } => assert_eq!(node, "big"),
            d => panic!("{d:?}"),
        }
    }
}
