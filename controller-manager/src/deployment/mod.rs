//! The Deployment controller (Kubernetes' `pkg/controller/deployment`): ReplicaSets named
//! `<deployment>-<pod-template-hash>`, rolled by the RollingUpdate or Recreate strategy,
//! scaled proportionally, revisions kept for rollback, conditions reported.
//!
//! One sync function per Deployment key: [`DeploymentController::sync`] picks `sync_only`
//! (paused or a pure scaling change), [`rolling`] or [`recreate`].

mod progress;
mod recreate;
mod rolling;
mod sync;
pub mod util;

use std::sync::Arc;

use api::apps::{Deployment, ReplicaSet};
use api::core::Pod;
use api::selector::Selector;
use client::runtime::controller::Action;
use client::runtime::events::object_ref;
use client::runtime::key_of;
use client::runtime::owner::controller_key;
use client::runtime::queue::WorkQueue;
use client::runtime::reflector::Change;

use crate::context::{Ctx, Result};

pub struct DeploymentController {
    ctx: Ctx,
    pub queue: WorkQueue,
}

impl DeploymentController {
    pub fn new(ctx: Ctx) -> Arc<Self> {
        Arc::new(DeploymentController {
            ctx,
            queue: WorkQueue::default(),
        })
    }

    pub fn on_deployment(&self, c: &Change<Deployment>) {
        match c {
            Change::Applied { new, .. } => self.queue.add(key_of(&new.metadata)),
            Change::Deleted(d) => self.queue.add(key_of(&d.metadata)),
        }
    }

    pub fn on_replica_set(&self, c: &Change<ReplicaSet>) {
        let rs = match c {
            Change::Applied { new, .. } => new,
            Change::Deleted(rs) => rs,
        };
        match controller_key(&rs.metadata, "Deployment") {
            Some(k) => self.queue.add(k),
            None => {
                // An orphan: deployments whose selector matches may adopt it.
                for d in self.ctx.deployments.list_namespace(&rs.metadata.namespace) {
                    if Selector::from_label_selector(&d.spec.selector)
                        .is_ok_and(|s| !s.is_everything() && s.matches(&rs.metadata.labels))
                    {
                        self.queue.add(key_of(&d.metadata));
                    }
                }
            }
        }
    }

    /// Recreate waits for old pods to be gone: a deleted pod may unblock its Deployment.
    pub fn on_pod(&self, c: &Change<Pod>) {
        if let Change::Deleted(p) = c
            && let Some(rs_key) = controller_key(&p.metadata, "ReplicaSet")
            && let Some(rs) = self.ctx.replica_sets.get(&rs_key)
            && let Some(k) = controller_key(&rs.metadata, "Deployment")
        {
            self.queue.add(k);
        }
    }

    pub async fn sync(self: Arc<Self>, key: String) -> Result<Action> {
        let Some(d) = self.ctx.deployments.get(&key) else {
            return Ok(Action::AwaitChange);
        };
        let d: Deployment = (*d).clone();
        let selector = Selector::from_label_selector(&d.spec.selector).unwrap_or_default();
        if selector.is_everything() {
            self.ctx.recorder.warning(
                &object_ref(&d),
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            );
            return Ok(Action::AwaitChange);
        }
        let rss = self.claim_replica_sets(&d, &selector).await?;
        if d.metadata.deletion_timestamp.is_some() {
            return self.sync_status_only(&d, &rss).await;
        }
        if d.spec.paused || self.is_scaling_event(&d, &rss) {
            return self.sync_only(&d, rss).await;
        }
        if util::is_recreate(&d) {
            self.rollout_recreate(&d, rss).await
        } else {
            self.rollout_rolling(&d, rss).await
        }
    }
}
