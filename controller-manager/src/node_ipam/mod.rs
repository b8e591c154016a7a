//! Node IPAM (kube-controller-manager's `nodeipam` with `--allocate-node-cidrs`): every Node
//! without a pod CIDR gets the next free `/--node-cidr-mask-size` subnet of `--cluster-cidr`
//! in its `spec.podCIDR`, where its kubelet picks it up for the pod network. A range is never
//! given twice: the allocator starts from every Node's CIDR once the cache is in, marks each
//! assignment before writing it (keeping it for that node if the write fails: the cache may be
//! behind and the range already written), and frees a Node's range when the Node is deleted.

mod allocator;

pub use allocator::CidrAllocator;

use std::sync::{Arc, Mutex};

use api::core::Node;
use api::net::Cidr;
use client::runtime::controller::Action;
use client::runtime::events::object_ref;
use client::runtime::queue::WorkQueue;
use client::runtime::reflector::Change;
use client::{Api, Patch};
use serde_json::json;

use crate::context::{Ctx, Result};

#[derive(Clone, Debug)]
pub struct NodeIpamConfig {
    /// `--cluster-cidr`: the pods' addresses, cut into one range per node.
    pub cluster_cidr: Cidr,
    /// `--node-cidr-mask-size` (24).
    pub node_mask: u8,
}

pub struct NodeIpamController {
    ctx: Ctx,
    alloc: Mutex<CidrAllocator>,
    pub queue: WorkQueue,
}

impl NodeIpamController {
    pub fn new(ctx: Ctx, config: &NodeIpamConfig) -> std::result::Result<Arc<Self>, String> {
        Ok(Arc::new(NodeIpamController {
            ctx,
            alloc: Mutex::new(CidrAllocator::new(config.cluster_cidr, config.node_mask)?),
            queue: WorkQueue::default(),
        }))
    }

    fn alloc(&self) -> std::sync::MutexGuard<'_, CidrAllocator> {
        self.alloc.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Once the Node cache is in: mark every range in use, queue the nodes that need one.
    pub fn start(&self) {
        let nodes = self.ctx.nodes.list();
        let mut a = self.alloc();
        for n in &nodes {
            if let Ok(c) = Cidr::parse(&n.spec.pod_cidr) {
                a.occupy(&n.metadata.name, c);
            }
        }
        drop(a);
        for n in nodes.iter().filter(|n| n.spec.pod_cidr.is_empty()) {
            self.queue.add(n.metadata.name.clone());
        }
    }

    pub fn on_node(&self, c: &Change<Node>) {
        match c {
            Change::Applied { new, .. } => {
                if new.spec.pod_cidr.is_empty() {
                    self.queue.add(new.metadata.name.clone());
                } else if let Ok(c) = Cidr::parse(&new.spec.pod_cidr) {
                    self.alloc().occupy(&new.metadata.name, c);
                }
            }
            Change::Deleted(old) => {
                let released = self.alloc().release(&old.metadata.name);
                if let Some(c) = released {
                    tracing::info!(node = %old.metadata.name, cidr = %c, "pod CIDR released");
                    // A node that found none left may have one now.
                    for n in self.ctx.nodes.list() {
                        if n.spec.pod_cidr.is_empty() {
                            self.queue.add(n.metadata.name.clone());
                        }
                    }
                }
            }
        }
    }

    pub async fn sync(self: Arc<Self>, name: String) -> Result<Action> {
        let Some(node) = self.ctx.nodes.get(&name) else {
            return Ok(Action::AwaitChange);
        };
        if !node.spec.pod_cidr.is_empty() {
            return Ok(Action::AwaitChange);
        }
        // (The guard must not live into the match: the arms lock again.)
        let allocated = self.alloc().allocate(&name);
        let cidr = match allocated {
            Some(c) => c,
            None => {
                let range = self.alloc().range();
                let msg = format!(
                    "Node {name} has no pod CIDR and none is left in the cluster CIDR {range}"
                );
                tracing::warn!(node = %name, "{msg}");
                self.ctx
                    .recorder
                    .warning(&object_ref(&*node), "CIDRNotAvailable", msg);
                return Ok(Action::AwaitChange);
            }
        };
        let patch = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]},
        });
        let api: Api<Node> = Api::all(self.ctx.client.clone());
        match api.patch(&name, &Patch::Merge(&patch)).await {
            Ok(_) => {
                tracing::info!(node = %name, %cidr, "pod CIDR assigned");
                self.ctx.recorder.normal(
                    &object_ref(&*node),
                    "CIDRAssigned",
                    format!("Node {name} was assigned pod CIDR {cidr}"),
                );
                Ok(Action::AwaitChange)
            }
            Err(e) if e.is_not_found() => {
                self.alloc().release(&name);
                Ok(Action::AwaitChange)
            }
            // The range stays this node's: the retry (after a conflict, with the newer Node)
            // writes the same one. Freeing it here would be wrong when the cache was only
            // behind — an earlier sync may already have written it — and would let the next
            // node be given the same range (two bridges with one subnet on a host).
            Err(e) => Err(e.into()),
        }
    }
}
