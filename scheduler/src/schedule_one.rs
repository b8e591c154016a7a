//! One scheduling decision, pure: run the filters on the nodes (stopping once enough feasible
//! nodes were found, as kube-scheduler's `percentageOfNodesToScore` does), score the feasible
//! ones, pick the best with ties broken at random. No I/O, so every rule is unit-tested.

use std::collections::BTreeMap;

use api::core::Pod;
use rand::Rng;

use crate::cache::{Cache, NodeInfo};
use crate::plugins::{Filter, PodInfo, Score};

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Bind here. `scores` lists every scored node's total, for the decision log.
    Bind {
        node: String,
        scores: Vec<(String, i64)>,
        rejected: BTreeMap<String, Vec<String>>,
    },
    /// Nowhere fits. `message` is Kubernetes' FitError text; `reasons` is per node.
    Unschedulable {
        message: String,
        reasons: BTreeMap<String, Vec<String>>,
    },
}

/// Kubernetes' defaults for how many feasible nodes are enough to choose from.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;

/// kube-scheduler's adaptive `numFeasibleNodesToFind`: all nodes in small clusters, about
/// 50% − nodes/125% of them (at least 100) in large ones.
pub fn feasible_nodes_to_find(all: usize) -> usize {
    if all < MIN_FEASIBLE_NODES_TO_FIND {
        return all;
    }
    let pct = (50usize.saturating_sub(all / 125)).max(MIN_FEASIBLE_NODES_PERCENTAGE);
    (all * pct / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
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

/// Decide where `pod` goes. `start` rotates the first node looked at between decisions.
pub fn schedule(
    pod: &Pod,
    cache: &Cache,
    filters: &[Box<dyn Filter>],
    scores: &[Box<dyn Score>],
    start: usize,
) -> Decision {
    let info = PodInfo::new(pod);
    let total = cache.node_count();
    let enough = feasible_nodes_to_find(total);
    let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(enough.min(total));
    let mut reasons: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..total {
        if feasible.len() >= enough {
            break;
        }
        let Some(node) = cache.node_at(start + i) else {
            break;
        };
        match filters.iter().try_for_each(|f| f.filter(&info, node)) {
            Ok(()) => feasible.push(node),
            // Kubernetes stops at the first failing plugin for a node.
            Err(rs) => {
                reasons.insert(node.name().to_string(), rs);
            }
        }
    }
    if feasible.is_empty() {
        return Decision::Unschedulable {
            message: fit_error_message(total, &reasons),
            reasons,
        };
    }
    let mut totals = vec![0i64; feasible.len()];
    let mut raw = vec![0i64; feasible.len()];
    for plugin in scores {
        for (r, n) in raw.iter_mut().zip(&feasible) {
            *r = plugin.score(&info, n);
        }
        plugin.normalize(&mut raw);
        for (t, r) in totals.iter_mut().zip(&raw) {
            *t += r * plugin.weight();
        }
    }
    let best = totals.iter().copied().max().unwrap_or(0);
    let top: Vec<usize> = (0..totals.len()).filter(|i| totals[*i] == best).collect();
    let chosen = top[rand::rng().random_range(0..top.len())];
    let node = feasible[chosen].name().to_string();
    let scores = feasible
        .iter()
        .zip(&totals)
        .map(|(n, t)| (n.name().to_string(), *t))
        .collect();
    Decision::Bind {
        node,
        scores,
        rejected: reasons,
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
        match schedule(&pod("2"), &cache, &default_filters(), &default_scores(), 0) {
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
            matches!(schedule(&pod("1"), &empty, &default_filters(), &default_scores(), 0),
            Decision::Unschedulable { message, .. } if message == "no nodes available to schedule pods")
        );
    }

    #[test]
    fn picks_a_node_that_fits_and_prefers_the_emptier() {
        let mut cache = Cache::default();
        cache.upsert_node(node("small", "1", false));
        cache.upsert_node(node("big", "16", false));
        for start in 0..2 {
            match schedule(
                &pod("500m"),
                &cache,
                &default_filters(),
                &default_scores(),
                start,
            ) {
                Decision::Bind { node, scores, .. } => {
                    assert_eq!(node, "big");
                    assert_eq!(scores.len(), 2);
                }
                d => panic!("{d:?}"),
            }
        }
        match schedule(&pod("4"), &cache, &default_filters(), &default_scores(), 0) {
            Decision::Bind { node, rejected, .. } => {
                assert_eq!(node, "big");
                assert_eq!(rejected["small"], vec!["Insufficient cpu".to_string()]);
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn large_clusters_score_a_sample() {
        assert_eq!(feasible_nodes_to_find(50), 50);
        assert_eq!(feasible_nodes_to_find(100), 100);
        assert_eq!(feasible_nodes_to_find(1000), 420);
        assert_eq!(feasible_nodes_to_find(5000), 500);
        let mut cache = Cache::default();
        for i in 0..1000 {
            cache.upsert_node(node(&format!("n{i:04}"), "4", false));
        }
        match schedule(
            &pod("100m"),
            &cache,
            &default_filters(),
            &default_scores(),
            7,
        ) {
            Decision::Bind { scores, .. } => assert_eq!(scores.len(), 420),
            d => panic!("{d:?}"),
        }
    }
}
