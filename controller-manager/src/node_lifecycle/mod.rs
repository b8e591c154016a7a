//! The node lifecycle controller (Kubernetes' `pkg/controller/nodelifecycle`): watches node
//! heartbeats (the Lease in `kube-node-lease` and the Ready condition), marks silent nodes
//! `Ready=Unknown`, taints them `node.kubernetes.io/unreachable:NoExecute` (rate-limited as
//! Kubernetes does when many nodes fail at once), evicts their pods once the pods' toleration
//! runs out, and removes the taints when the node comes back.

mod eviction;
mod health;

pub use eviction::{ZoneState, eviction_deadline, zone_state};
pub use health::is_silent;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::core::{Node, NodeCondition, Pod, Taint};
use api::meta::{DeleteOptions, Time};
use client::runtime::events::object_ref;
use client::{Api, Patch};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::context::{Ctx, Result};

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

#[derive(Clone, Debug)]
pub struct NodeLifecycleConfig {
    /// How often node health is checked (`--node-monitor-period`).
    pub monitor_period: Duration,
    /// Silence after which a node is `Ready=Unknown` (`--node-monitor-grace-period`, 40 s).
    pub grace_period: Duration,
    /// How long pods without their own toleration stay on an unreachable or not-ready node
    /// (Kubernetes' `--default-unreachable-toleration-seconds`, 300 s).
    pub default_toleration: Duration,
    /// Nodes per second whose pods may start being evicted (`--node-eviction-rate`, 0.1).
    pub eviction_rate: f64,
    /// The same when a large part of the cluster is down (`--secondary-node-eviction-rate`, 0.01).
    pub secondary_eviction_rate: f64,
    /// Fraction of not-ready nodes above which the cluster counts as partially disrupted (0.55).
    pub unhealthy_zone_threshold: f64,
    /// Below this many nodes a partial disruption stops evictions altogether (50).
    pub large_cluster_size_threshold: usize,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        NodeLifecycleConfig {
            monitor_period: Duration::from_secs(5),
            grace_period: Duration::from_secs(40),
            default_toleration: Duration::from_secs(300),
            eviction_rate: 0.1,
            secondary_eviction_rate: 0.01,
            unhealthy_zone_threshold: 0.55,
            large_cluster_size_threshold: 50,
        }
    }
}

pub struct NodeLifecycleController {
    ctx: Ctx,
    config: NodeLifecycleConfig,
    health: Mutex<health::HealthTracker>,
    limiter: Mutex<eviction::TokenBucket>,
}

impl NodeLifecycleController {
    pub fn new(ctx: Ctx, config: NodeLifecycleConfig) -> Arc<Self> {
        Arc::new(NodeLifecycleController {
            limiter: Mutex::new(eviction::TokenBucket::new(config.eviction_rate)),
            ctx,
            config,
            health: Mutex::new(health::HealthTracker::default()),
        })
    }

    /// Check every node each monitor period until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.monitor_period) => {}
            }
            if let Err(e) = self.monitor().await {
                tracing::warn!(error = %e, "node health check failed");
            }
        }
    }

    async fn monitor(&self) -> Result<()> {
        let nodes = self.ctx.nodes.list();
        let now = Instant::now();
        let silent: HashMap<String, bool> = {
            let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
            h.retain_nodes(nodes.iter().map(|n| n.metadata.name.as_str()));
            nodes
                .iter()
                .map(|n| {
                    let lease = self
                        .ctx
                        .leases
                        .get(&format!("kube-node-lease/{}", n.metadata.name));
                    let s = h.observe(n, lease.as_deref(), now, self.config.grace_period);
                    (n.metadata.name.clone(), s)
                })
                .collect()
        };
        let not_ready = silent.values().filter(|s| **s).count();
        let state = zone_state(nodes.len(), not_ready, self.config.unhealthy_zone_threshold);
        let rate = match state {
            ZoneState::Normal => self.config.eviction_rate,
            ZoneState::PartialDisruption
                if nodes.len() > self.config.large_cluster_size_threshold =>
            {
                self.config.secondary_eviction_rate
            }
            ZoneState::PartialDisruption | ZoneState::FullDisruption => 0.0,
        };
        self.limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_rate(rate);
        for node in &nodes {
            let is_silent = silent.get(&node.metadata.name).copied().unwrap_or(false);
            if is_silent {
                self.mark_unknown(node).await?;
                let tainted = node
                    .spec
                    .taints
                    .iter()
                    .any(|t| t.key == UNREACHABLE && t.effect == "NoExecute");
                if !tainted {
                    let allowed = self
                        .limiter
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .try_take();
                    if allowed {
                        self.taint(node).await?;
                    } else {
                        tracing::info!(node = %node.metadata.name, ?state, "eviction of the node's pods is rate-limited");
                    }
                }
            } else if node.is_ready() {
                self.untaint(node).await?;
            }
            self.evict_pods(node).await?;
        }
        Ok(())
    }

    /// Every condition Unknown, as Kubernetes does for a node that stopped posting status.
    async fn mark_unknown(&self, node: &Node) -> Result<()> {
        let Some(status) = &node.status else {
            return Ok(());
        };
        if status.conditions.iter().all(|c| c.status == "Unknown") {
            return Ok(());
        }
        let now = Time::now();
        let conditions: Vec<NodeCondition> = status
            .conditions
            .iter()
            .map(|c| NodeCondition {
                status: "Unknown".into(),
                reason: "NodeStatusUnknown".into(),
                message: "Kubelet stopped posting node status.".into(),
                last_transition_time: if c.status == "Unknown" {
                    c.last_transition_time
                } else {
                    Some(now)
                },
                ..c.clone()
            })
            .collect();
        let api: Api<Node> = Api::all(self.ctx.client.clone());
        let patch = json!({"status": {"conditions": conditions}});
        api.patch_status(&node.metadata.name, &Patch::Strategic(&patch))
            .await?;
        tracing::info!(node = %node.metadata.name, "node stopped posting status: Ready=Unknown");
        self.ctx.recorder.normal(
            &object_ref(node),
            "NodeNotReady",
            format!("Node {} status is now: NodeNotReady", node.metadata.name),
        );
        Ok(())
    }

    async fn set_taints(&self, node: &Node, taints: Vec<Taint>) -> Result<()> {
        let api: Api<Node> = Api::all(self.ctx.client.clone());
        let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version}, "spec": {"taints": taints}});
        match api.patch(&node.metadata.name, &Patch::Merge(&patch)).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_conflict() || e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn taint(&self, node: &Node) -> Result<()> {
        let mut taints: Vec<Taint> = node
            .spec
            .taints
            .iter()
            .filter(|t| t.key != UNREACHABLE && t.key != NOT_READY)
            .cloned()
            .collect();
        for effect in ["NoSchedule", "NoExecute"] {
            taints.push(Taint {
                key: UNREACHABLE.into(),
                value: String::new(),
                effect: effect.into(),
                time_added: Some(Time::now()),
            });
        }
        tracing::info!(node = %node.metadata.name, "tainting unreachable node {UNREACHABLE}:NoExecute");
        self.set_taints(node, taints).await
    }

    async fn untaint(&self, node: &Node) -> Result<()> {
        if !node
            .spec
            .taints
            .iter()
            .any(|t| t.key == UNREACHABLE || t.key == NOT_READY)
        {
            return Ok(());
        }
        let taints: Vec<Taint> = node
            .spec
            .taints
            .iter()
            .filter(|t| t.key != UNREACHABLE && t.key != NOT_READY)
            .cloned()
            .collect();
        tracing::info!(node = %node.metadata.name, "node is back: removing its unreachable taints");
        self.ctx.recorder.normal(
            &object_ref(node),
            "NodeReady",
            format!("Node {} status is now: NodeReady", node.metadata.name),
        );
        self.set_taints(node, taints).await
    }

    /// Delete pods whose toleration of the node's NoExecute taints ran out.
    async fn evict_pods(&self, node: &Node) -> Result<()> {
        let taints: Vec<&Taint> = node
            .spec
            .taints
            .iter()
            .filter(|t| t.effect == "NoExecute")
            .collect();
        if taints.is_empty() {
            return Ok(());
        }
        let now = chrono::Utc::now();
        for pod in self
            .ctx
            .pods
            .list()
            .iter()
            .filter(|p| p.spec.node_name == node.metadata.name && !p.is_terminating())
        {
            let Some(deadline) = eviction_deadline(pod, &taints, self.config.default_toleration)
            else {
                continue;
            };
            if deadline > now {
                continue;
            }
            self.evict(pod).await?;
        }
        Ok(())
    }

    async fn evict(&self, pod: &Pod) -> Result<()> {
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &pod.metadata.namespace);
        let opts = DeleteOptions {
            preconditions: Some(api::meta::Preconditions {
                uid: Some(pod.metadata.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        tracing::info!(pod = %pod.metadata.name, node = %pod.spec.node_name, "evicting pod from a NoExecute-tainted node");
        self.ctx.recorder.normal(
            &object_ref(pod),
            "TaintManagerEviction",
            format!(
                "Marking for deletion Pod {}/{}",
                pod.metadata.namespace, pod.metadata.name
            ),
        );
        match api.delete(&pod.metadata.name, &opts).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
