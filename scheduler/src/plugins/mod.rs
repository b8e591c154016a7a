//! The scheduling framework in miniature: filter plugins say whether a pod fits a node (and why
//! not, in Kubernetes' words), score plugins rank the nodes that fit — a raw score per node,
//! then a normalisation over all of them (Kubernetes' Score and NormalizeScore). Run in
//! kube-scheduler's order.

pub mod filters;
pub mod scores;

use api::core::{Pod, Requests};

use crate::cache::{NodeInfo, host_ports};

/// What every plugin needs to know about the pod being scheduled, computed once per attempt.
pub struct PodInfo<'a> {
    pub pod: &'a Pod,
    pub requests: Requests,
    pub host_ports: Vec<(String, i32)>,
    /// UID of the pod's controller (its ReplicaSet), for spreading.
    pub owner: Option<&'a str>,
}

impl<'a> PodInfo<'a> {
    pub fn new(pod: &'a Pod) -> Self {
        PodInfo {
            pod,
            requests: pod.spec.requests(),
            host_ports: host_ports(pod),
            owner: pod.metadata.controller_ref().map(|r| r.uid.as_str()),
        }
    }
}

pub trait Filter: Send + Sync {
    fn name(&self) -> &'static str;
    /// `Err(reasons)` when the pod does not fit; each reason is counted in the FailedScheduling
    /// message ("2 Insufficient cpu").
    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>>;
}

/// The highest score a node can get from one plugin.
pub const MAX_NODE_SCORE: i64 = 100;

pub trait Score: Send + Sync {
    fn name(&self) -> &'static str;
    fn weight(&self) -> i64;
    /// A raw score for one node.
    fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64;
    /// Turn the raw scores of all feasible nodes into 0..=100 (default: already in range).
    fn normalize(&self, _scores: &mut [i64]) {}
}

/// The default profile, in kube-scheduler's plugin order.
pub fn default_filters() -> Vec<Box<dyn Filter>> {
    vec![
        Box::new(filters::NodeUnschedulable),
        Box::new(filters::NodeName),
        Box::new(filters::TaintToleration),
        Box::new(filters::NodeAffinity),
        Box::new(filters::NodePorts),
        Box::new(filters::NodeResourcesFit),
    ]
}

pub fn default_scores() -> Vec<Box<dyn Score>> {
    vec![
        Box::new(scores::TaintToleration),
        Box::new(scores::NodeAffinity),
        Box::new(scores::LeastAllocated),
        Box::new(scores::BalancedAllocation),
        Box::new(scores::OwnerSpread),
    ]
}
