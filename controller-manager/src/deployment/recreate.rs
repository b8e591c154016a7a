//! Recreate: every old pod goes before any new one starts, so versions never overlap.

use std::sync::Arc;

use api::apps::{Deployment, ReplicaSet};
use client::runtime::controller::Action;
use client::runtime::owner::is_controlled_by;

use super::DeploymentController;
use super::progress;
use super::util::*;
use crate::context::Result;

impl DeploymentController {
    pub(super) async fn rollout_recreate(
        &self,
        d: &Deployment,
        rss: Vec<Arc<ReplicaSet>>,
    ) -> Result<Action> {
        let (new, mut old) = self.get_all_replica_sets(d, &rss, false).await?;
        let mut scaled = false;
        for rs in old.iter_mut().filter(|r| replicas(r) > 0) {
            let (s, updated) = self.scale(d, rs, 0).await?;
            *rs = updated;
            scaled |= s;
        }
        let all: Vec<Arc<ReplicaSet>> = old.iter().cloned().chain(new.iter().cloned()).collect();
        if scaled || self.old_pods_running(&old) {
            return progress::sync_status(self, d, &all, new.as_ref(), true).await;
        }
        let (new, old) = match new {
            Some(n) => (n, old),
            None => {
                let (n, o) = self.get_all_replica_sets(d, &rss, true).await?;
                match n {
                    Some(n) => (n, o),
                    None => return Ok(Action::AwaitChange),
                }
            }
        };
        let (_, new) = self.scale(d, &new, d.spec.replicas.unwrap_or(1)).await?;
        let all: Vec<Arc<ReplicaSet>> = old
            .iter()
            .cloned()
            .chain(std::iter::once(new.clone()))
            .collect();
        let status = super::sync::calculate_status(d, &all, Some(&new));
        if progress::is_complete(d, &status) {
            self.cleanup(d, &old).await?;
        }
        progress::sync_status(self, d, &all, Some(&new), true).await
    }

    /// Any pod of an old ReplicaSet still there and not finished (terminating ones included).
    fn old_pods_running(&self, old: &[Arc<ReplicaSet>]) -> bool {
        if old
            .iter()
            .any(|r| r.status.as_ref().is_some_and(|s| s.replicas > 0))
        {
            return true;
        }
        let Some(ns) = old.first().map(|r| r.metadata.namespace.clone()) else {
            return false;
        };
        self.ctx.pods.list_namespace(&ns).iter().any(|p| {
            !matches!(p.phase(), "Succeeded" | "Failed")
                && old
                    .iter()
                    .any(|rs| is_controlled_by(&p.metadata, &rs.metadata.uid))
        })
    }
}
