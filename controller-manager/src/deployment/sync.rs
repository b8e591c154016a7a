//! Shared steps: claiming ReplicaSets, finding or creating the new one (revisions, hash
//! collisions), scaling with events, proportional scaling, history cleanup, status.

use std::sync::Arc;

use api::apps::{Deployment, DeploymentStatus, ReplicaSet};
use api::meta::DeleteOptions;
use api::selector::Selector;
use api::{ObjectMeta, Resource};
use client::runtime::controller::Action;
use client::runtime::events::object_ref;
use client::runtime::owner::{controller_ref, is_controlled_by};
use client::{Api, Patch};
use serde_json::json;

use super::DeploymentController;
use super::progress;
use super::util::*;
use crate::context::{Error, Result};

impl DeploymentController {
    /// ReplicaSets this Deployment owns: adopt matching orphans, release owned ones that stopped matching.
    pub(super) async fn claim_replica_sets(
        &self,
        d: &Deployment,
        selector: &Selector,
    ) -> Result<Vec<Arc<ReplicaSet>>> {
        let api: Api<ReplicaSet> = Api::namespaced(self.ctx.client.clone(), &d.metadata.namespace);
        let mut owned = Vec::new();
        for rs in self.ctx.replica_sets.list_namespace(&d.metadata.namespace) {
            let matches = selector.matches(&rs.metadata.labels);
            if is_controlled_by(&rs.metadata, &d.metadata.uid) {
                if matches {
                    owned.push(rs);
                } else {
                    let refs: Vec<_> = rs
                        .metadata
                        .owner_references
                        .iter()
                        .filter(|r| r.uid != d.metadata.uid)
                        .collect();
                    let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": rs.metadata.resource_version}});
                    if let Err(e) = api.patch(&rs.metadata.name, &Patch::Merge(&patch)).await
                        && !(e.is_not_found() || e.is_conflict())
                    {
                        return Err(e.into());
                    }
                }
            } else if matches
                && rs.metadata.controller_ref().is_none()
                && d.metadata.deletion_timestamp.is_none()
            {
                let mut refs = rs.metadata.owner_references.clone();
                refs.push(controller_ref(d));
                let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": rs.metadata.resource_version}});
                match api.patch(&rs.metadata.name, &Patch::Merge(&patch)).await {
                    Ok(r) => owned.push(Arc::new(r)),
                    Err(e) if e.is_not_found() || e.is_conflict() => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(owned)
    }

    /// Split into (new, old); make sure the new one carries the next revision; create it if asked.
    pub(super) async fn get_all_replica_sets(
        &self,
        d: &Deployment,
        rss: &[Arc<ReplicaSet>],
        create: bool,
    ) -> Result<(Option<Arc<ReplicaSet>>, Vec<Arc<ReplicaSet>>)> {
        let new = find_new_replica_set(d, rss);
        let mut old: Vec<Arc<ReplicaSet>> = rss
            .iter()
            .filter(|r| {
                new.as_ref()
                    .is_none_or(|n| n.metadata.uid != r.metadata.uid)
            })
            .cloned()
            .collect();
        sort_by_creation(&mut old);
        let next_revision = max_revision(&old) + 1;
        let new = match new {
            Some(rs) => Some(self.sync_revision(d, rs, next_revision).await?),
            None if create => Some(self.create_new_replica_set(d, &old, next_revision).await?),
            None => None,
        };
        if let Some(rs) = &new {
            self.sync_deployment_revision(d, &revision(rs).to_string())
                .await?;
        }
        Ok((new, old))
    }

    /// A reused (rolled-back-to) ReplicaSet becomes the newest revision; the revisions it had
    /// are kept in `revision-history`.
    async fn sync_revision(
        &self,
        d: &Deployment,
        rs: Arc<ReplicaSet>,
        next: i64,
    ) -> Result<Arc<ReplicaSet>> {
        let current = revision(&rs);
        if current >= next && rs.spec.min_ready_seconds == d.spec.min_ready_seconds {
            return Ok(rs);
        }
        let mut updated = (*rs).clone();
        if current < next {
            let ann = &mut updated.metadata.annotations;
            if current > 0 {
                let mut history: Vec<String> = ann
                    .get(REVISION_HISTORY)
                    .map(|h| {
                        h.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                history.push(current.to_string());
                ann.insert(REVISION_HISTORY.into(), history.join(","));
            }
            ann.insert(REVISION.into(), next.to_string());
        }
        updated.spec.min_ready_seconds = d.spec.min_ready_seconds;
        let api: Api<ReplicaSet> = Api::namespaced(self.ctx.client.clone(), &d.metadata.namespace);
        Ok(Arc::new(api.replace(&rs.metadata.name, &updated).await?))
    }

    /// The Deployment's own `deployment.kubernetes.io/revision` follows its new ReplicaSet's.
    async fn sync_deployment_revision(&self, d: &Deployment, rev: &str) -> Result<()> {
        if d.metadata.annotations.get(REVISION).map(String::as_str) == Some(rev) {
            return Ok(());
        }
        let api: Api<Deployment> = Api::namespaced(self.ctx.client.clone(), &d.metadata.namespace);
        let patch = json!({"metadata": {"annotations": {REVISION: rev}}});
        api.patch(&d.metadata.name, &Patch::Merge(&patch)).await?;
        Ok(())
    }

    async fn create_new_replica_set(
        &self,
        d: &Deployment,
        old: &[Arc<ReplicaSet>],
        revision: i64,
    ) -> Result<Arc<ReplicaSet>> {
        let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = pod_template_hash(&d.spec.template, collision_count);
        let mut template = d.spec.template.clone();
        template
            .metadata
            .labels
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = d.spec.selector.clone();
        selector
            .match_labels
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let want = d.spec.replicas.unwrap_or(1);
        let mut annotations = copied_annotations(d);
        annotations.insert(REVISION.into(), revision.to_string());
        annotations.insert(DESIRED_REPLICAS.into(), want.to_string());
        annotations.insert(MAX_REPLICAS.into(), (want + max_surge(d)).to_string());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: format!("{}-{}", d.metadata.name, hash),
                namespace: d.metadata.namespace.clone(),
                labels: template.metadata.labels.clone(),
                annotations,
                owner_references: vec![controller_ref(d)],
                ..Default::default()
            },
            ..Default::default()
        };
        rs.spec.min_ready_seconds = d.spec.min_ready_seconds;
        rs.spec.selector = selector;
        rs.spec.template = template;
        rs.spec.replicas = Some(new_rs_new_replicas(d, old, None));
        rs.set_type_meta();
        let api: Api<ReplicaSet> = Api::namespaced(self.ctx.client.clone(), &d.metadata.namespace);
        match api.create(&rs).await {
            Ok(created) => {
                let n = replicas(&created);
                tracing::info!(deployment = %d.metadata.name, replicaset = %created.metadata.name, replicas = n, "created new replica set");
                if n > 0 {
                    self.ctx.recorder.normal(
                        &object_ref(d),
                        "ScalingReplicaSet",
                        format!(
                            "Scaled up replica set {} to {n} from 0",
                            created.metadata.name
                        ),
                    );
                }
                progress::record_new_replica_set(self, d, &created.metadata.name).await?;
                Ok(Arc::new(created))
            }
            Err(e) if e.is_already_exists() => {
                let existing = api.get(&rs.metadata.name).await?;
                if is_controlled_by(&existing.metadata, &d.metadata.uid)
                    && equal_ignore_hash(&existing.spec.template, &d.spec.template)
                {
                    return Ok(Arc::new(existing));
                }
                // A different template hashed to the same name: salt the hash and try again.
                let mut status = d.status.clone().unwrap_or_default();
                status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                let mut updated = d.clone();
                updated.status = Some(status);
                Api::<Deployment>::namespaced(self.ctx.client.clone(), &d.metadata.namespace)
                    .replace_status(&d.metadata.name, &updated)
                    .await?;
                Err(Error::Other(format!(
                    "hash collision for replica set {}",
                    rs.metadata.name
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Set a ReplicaSet's replicas (and our annotations), with a ScalingReplicaSet event.
    pub(super) async fn scale(
        &self,
        d: &Deployment,
        rs: &Arc<ReplicaSet>,
        n: i32,
    ) -> Result<(bool, Arc<ReplicaSet>)> {
        let n = n.max(0);
        let want = d.spec.replicas.unwrap_or(1);
        let desired = want.to_string();
        let max = (want + max_surge(d)).to_string();
        let ann = &rs.metadata.annotations;
        let annotations_ok =
            ann.get(DESIRED_REPLICAS) == Some(&desired) && ann.get(MAX_REPLICAS) == Some(&max);
        let from = replicas(rs);
        if from == n && annotations_ok {
            return Ok((false, rs.clone()));
        }
        let mut updated = (**rs).clone();
        updated.spec.replicas = Some(n);
        updated
            .metadata
            .annotations
            .insert(DESIRED_REPLICAS.into(), desired);
        updated
            .metadata
            .annotations
            .insert(MAX_REPLICAS.into(), max);
        let api: Api<ReplicaSet> = Api::namespaced(self.ctx.client.clone(), &d.metadata.namespace);
        let updated = api.replace(&rs.metadata.name, &updated).await?;
        if from != n {
            let dir = if n > from { "up" } else { "down" };
            tracing::info!(deployment = %d.metadata.name, replicaset = %rs.metadata.name, from, to = n, "scaled {dir}");
            self.ctx.recorder.normal(
                &object_ref(d),
                "ScalingReplicaSet",
                format!(
                    "Scaled {dir} replica set {} to {n} from {from}",
                    rs.metadata.name
                ),
            );
        }
        Ok((from != n, Arc::new(updated)))
    }

    /// A change of `replicas` only: some active ReplicaSet was sized for another count.
    pub(super) fn is_scaling_event(&self, d: &Deployment, rss: &[Arc<ReplicaSet>]) -> bool {
        let want = d.spec.replicas.unwrap_or(1).to_string();
        let new = find_new_replica_set(d, rss);
        if new.is_none() {
            return false;
        }
        rss.iter().filter(|r| replicas(r) > 0).any(|r| {
            r.metadata
                .annotations
                .get(DESIRED_REPLICAS)
                .is_some_and(|v| *v != want)
        })
    }

    /// Paused, or only `replicas` changed: scale without rolling.
    pub(super) async fn sync_only(
        &self,
        d: &Deployment,
        rss: Vec<Arc<ReplicaSet>>,
    ) -> Result<Action> {
        let (new, old) = self.get_all_replica_sets(d, &rss, false).await?;
        let (new, old) = self.scale_proportionally(d, new, old).await?;
        if d.spec.paused {
            self.cleanup(d, &old).await?;
        }
        let all: Vec<Arc<ReplicaSet>> = old.iter().cloned().chain(new.iter().cloned()).collect();
        progress::sync_status(self, d, &all, new.as_ref(), false).await
    }

    /// Kubernetes' `scale`: one active ReplicaSet takes all; otherwise the difference is
    /// spread over the active ones in proportion to their size.
    async fn scale_proportionally(
        &self,
        d: &Deployment,
        new: Option<Arc<ReplicaSet>>,
        mut old: Vec<Arc<ReplicaSet>>,
    ) -> Result<(Option<Arc<ReplicaSet>>, Vec<Arc<ReplicaSet>>)> {
        let want = d.spec.replicas.unwrap_or(1);
        let mut all: Vec<Arc<ReplicaSet>> =
            old.iter().cloned().chain(new.iter().cloned()).collect();
        let active: Vec<usize> = (0..all.len()).filter(|i| replicas(&all[*i]) > 0).collect();
        let target = match active.len() {
            0 => new.as_ref().map(|_| all.len() - 1).or(if all.is_empty() {
                None
            } else {
                Some(all.len() - 1)
            }),
            1 => Some(active[0]),
            _ => None,
        };
        if let Some(i) = target {
            let (_, rs) = self.scale(d, &all[i], want).await?;
            all[i] = rs;
        } else if is_recreate(d) {
            // Recreate never runs two versions: the rollout sorts it out.
        } else {
            let allowed = if want > 0 { want + max_surge(d) } else { 0 };
            let current: i32 = active.iter().map(|i| replicas(&all[*i])).sum();
            let to_add = allowed - current;
            if to_add != 0 {
                let mut order = active.clone();
                // Largest first; on ties the newest first.
                order.sort_by(|a, b| replicas(&all[*b]).cmp(&replicas(&all[*a])).then(b.cmp(a)));
                let mut added = 0;
                let mut shares = vec![0; all.len()];
                for i in &order {
                    let share =
                        (replicas(&all[*i]) as i64 * to_add as i64 / current.max(1) as i64) as i32;
                    shares[*i] = share;
                    added += share;
                }
                if let Some(first) = order.first() {
                    shares[*first] += to_add - added;
                }
                for i in order {
                    let (_, rs) = self
                        .scale(d, &all[i], replicas(&all[i]) + shares[i])
                        .await?;
                    all[i] = rs;
                }
            }
        }
        let new = new.and_then(|_| all.pop());
        old = all;
        Ok((new, old))
    }

    /// Keep at most `revisionHistoryLimit` old, empty ReplicaSets.
    pub(super) async fn cleanup(&self, d: &Deployment, old: &[Arc<ReplicaSet>]) -> Result<()> {
        let limit = d.spec.revision_history_limit.unwrap_or(10).max(0) as usize;
        let mut cleanable: Vec<&Arc<ReplicaSet>> = old
            .iter()
            .filter(|r| {
                replicas(r) == 0
                    && r.status.as_ref().is_none_or(|s| {
                        s.replicas == 0 && s.observed_generation >= r.metadata.generation
                    })
                    && r.metadata.deletion_timestamp.is_none()
            })
            .collect();
        if cleanable.len() <= limit {
            return Ok(());
        }
        cleanable.sort_by_key(|r| revision(r));
        let api: Api<ReplicaSet> = Api::namespaced(self.ctx.client.clone(), &d.metadata.namespace);
        for rs in &cleanable[..cleanable.len() - limit] {
            tracing::info!(deployment = %d.metadata.name, replicaset = %rs.metadata.name, "deleting old replica set beyond revisionHistoryLimit");
            match api
                .delete(&rs.metadata.name, &DeleteOptions::default())
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// A Deployment being deleted only reports status.
    pub(super) async fn sync_status_only(
        &self,
        d: &Deployment,
        rss: &[Arc<ReplicaSet>],
    ) -> Result<Action> {
        let (new, old) = self.get_all_replica_sets(d, rss, false).await?;
        let all: Vec<Arc<ReplicaSet>> = old.iter().cloned().chain(new.iter().cloned()).collect();
        progress::sync_status(self, d, &all, new.as_ref(), false).await
    }
}

/// The status figures of a Deployment from its ReplicaSets (Kubernetes' `calculateStatus`,
/// conditions aside).
pub fn calculate_status(
    d: &Deployment,
    all: &[Arc<ReplicaSet>],
    new: Option<&Arc<ReplicaSet>>,
) -> DeploymentStatus {
    let available = available_replicas(all);
    let total = total_replicas(all);
    let prev = d.status.clone().unwrap_or_default();
    DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: status_replicas(all, |s| s.replicas),
        updated_replicas: new
            .map(|n| n.status.as_ref().map(|s| s.replicas).unwrap_or(0))
            .unwrap_or(0),
        ready_replicas: status_replicas(all, |s| s.ready_replicas),
        available_replicas: available,
        unavailable_replicas: (total - available).max(0),
        conditions: prev.conditions,
        collision_count: prev.collision_count,
    }
}
