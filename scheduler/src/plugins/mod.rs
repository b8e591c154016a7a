//! The scheduling framework in miniature: filter plugins say whether a pod fits a node (and why
//! not, in Kubernetes' words), score plugins rank the nodes that fit. Run in Kubernetes' order.

pub mod filters;
pub mod scores;

use api::core::Pod;

use crate::cache::NodeInfo;

pub trait Filter: Send + Sync {
    fn name(&self) -> &'static str;
    /// `Err(reasons)` when the pod does not fit; each reason is counted in the FailedScheduling
    /// message ("2 Insufficient cpu").
    fn filter(&self, pod: &Pod, node: &NodeInfo) -> Result<(), Vec<String>>;
}

/// What score plugins may look at across all feasible nodes.
pub struct ScoreContext<'a> {
    pub feasible: &'a [&'a NodeInfo],
}

pub trait Score: Send + Sync {
    fn name(&self) -> &'static str;
    fn weight(&self) -> i64;
    /// 0..=100, higher is better.
    fn score(&self, pod: &Pod, node: &NodeInfo, ctx: &ScoreContext) -> i64;
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
