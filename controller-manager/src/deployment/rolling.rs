//! RollingUpdate: scale the new ReplicaSet up within `maxSurge`, old ones down within
//! `maxUnavailable` (Kubernetes' `rolling.go`).

use std::sync::Arc;

use api::apps::{Deployment, ReplicaSet};
use client::runtime::controller::Action;

use super::DeploymentController;
use super::progress;
use super::util::*;
use crate::context::Result;

impl DeploymentController {
    pub(super) async fn rollout_rolling(
        &self,
        d: &Deployment,
        rss: Vec<Arc<ReplicaSet>>,
    ) -> Result<Action> {
        let (new, mut old) = self.get_all_replica_sets(d, &rss, true).await?;
        let Some(mut new) = new else {
            return Ok(Action::AwaitChange);
        };
        let all = |old: &[Arc<ReplicaSet>], new: &Arc<ReplicaSet>| -> Vec<Arc<ReplicaSet>> {
            old.iter()
                .cloned()
                .chain(std::iter::once(new.clone()))
                .collect()
        };
        // Scale up the new ReplicaSet.
        let (scaled, updated) = self
            .reconcile_new_replica_set(d, &all(&old, &new), &new)
            .await?;
        new = updated;
        if scaled {
            return progress::sync_status(self, d, &all(&old, &new), Some(&new), true).await;
        }
        // Scale down old ones.
        let scaled = self.reconcile_old_replica_sets(d, &mut old, &new).await?;
        if scaled {
            return progress::sync_status(self, d, &all(&old, &new), Some(&new), true).await;
        }
        let everything = all(&old, &new);
        let status = super::sync::calculate_status(d, &everything, Some(&new));
        if progress::is_complete(d, &status) {
            self.cleanup(d, &old).await?;
        }
        progress::sync_status(self, d, &everything, Some(&new), true).await
    }

    async fn reconcile_new_replica_set(
        &self,
        d: &Deployment,
        all: &[Arc<ReplicaSet>],
        new: &Arc<ReplicaSet>,
    ) -> Result<(bool, Arc<ReplicaSet>)> {
        let want = d.spec.replicas.unwrap_or(1);
        let have = replicas(new);
        if have == want {
            return Ok((false, new.clone()));
        }
        if have > want {
            return self.scale(d, new, want).await;
        }
        let n = new_rs_new_replicas(d, all, Some(new));
        self.scale(d, new, n).await
    }

    async fn reconcile_old_replica_sets(
        &self,
        d: &Deployment,
        old: &mut [Arc<ReplicaSet>],
        new: &Arc<ReplicaSet>,
    ) -> Result<bool> {
        let old_count = total_replicas(old);
        if old_count == 0 {
            return Ok(false);
        }
        let want = d.spec.replicas.unwrap_or(1);
        let all_count = old_count + replicas(new);
        let min_available = want - max_unavailable(d);
        let new_unavailable = replicas(new)
            - new
                .status
                .as_ref()
                .map(|s| s.available_replicas)
                .unwrap_or(0);
        let max_scaled_down = all_count - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        // First drop old replicas that are not available anyway: they cost no availability.
        let mut cleaned = 0;
        for rs in old.iter_mut() {
            if cleaned >= max_scaled_down {
                break;
            }
            let r = replicas(rs);
            let available = rs
                .status
                .as_ref()
                .map(|s| s.available_replicas)
                .unwrap_or(0);
            if r == 0 || r <= available {
                continue;
            }
            let down = (max_scaled_down - cleaned).min(r - available);
            let (_, updated) = self.scale(d, rs, r - down).await?;
            *rs = updated;
            cleaned += down;
        }
        // Then scale down as far as availability allows.
        let all: Vec<Arc<ReplicaSet>> = old
            .iter()
            .cloned()
            .chain(std::iter::once(new.clone()))
            .collect();
        let available = available_for_scale_down(&all);
        let mut scaled_down = 0;
        if available > min_available {
            let total_down = available - min_available;
            for rs in old.iter_mut() {
                if scaled_down >= total_down {
                    break;
                }
                let r = replicas(rs);
                if r == 0 {
                    continue;
                }
                let down = r.min(total_down - scaled_down);
                let (_, updated) = self.scale(d, rs, r - down).await?;
                *rs = updated;
                scaled_down += down;
            }
        }
        Ok(cleaned + scaled_down > 0)
    }
}
