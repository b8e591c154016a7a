//! The ReplicaSet controller (Kubernetes' `pkg/controller/replicaset`): one sync function per
//! ReplicaSet key — claim pods, create or delete pods to match `replicas` in slow-start batches,
//! then write the status.

mod plan;

pub use plan::{calculate_status, pods_to_delete};

use std::sync::Arc;
use std::time::Duration;

use api::apps::ReplicaSet;
use api::core::Pod;
use api::meta::DeleteOptions;
use api::selector::Selector;
use api::{ObjectMeta, Resource};
use client::runtime::controller::Action;
use client::runtime::events::object_ref;
use client::runtime::expectations::Expectations;
use client::runtime::owner::{controller_key, controller_ref, is_controlled_by};
use client::runtime::queue::WorkQueue;
use client::runtime::reflector::Change;
use client::runtime::{key_of, split_key};
use client::{Api, Patch};
use serde_json::json;

use crate::context::{Ctx, Error, Result};

/// Never create or delete more than this many pods in one sync.
const BURST_REPLICAS: usize = 500;

pub struct ReplicaSetController {
    ctx: Ctx,
    pub queue: WorkQueue,
    expectations: Expectations,
}

/// Whether a pod still counts toward its ReplicaSet.
pub fn is_active(p: &Pod) -> bool {
    !p.is_terminating() && !matches!(p.phase(), "Succeeded" | "Failed")
}

impl ReplicaSetController {
    pub fn new(ctx: Ctx) -> Arc<Self> {
        Arc::new(ReplicaSetController {
            ctx,
            queue: WorkQueue::default(),
            expectations: Expectations::default(),
        })
    }

    pub fn on_replica_set(&self, c: &Change<ReplicaSet>) {
        match c {
            Change::Applied { new, .. } => self.queue.add(key_of(&new.metadata)),
            Change::Deleted(rs) => {
                self.expectations.forget(&key_of(&rs.metadata));
                self.queue.add(key_of(&rs.metadata));
            }
        }
    }

    /// Enqueue the ReplicaSets that may care about this pod.
    pub fn on_pod(&self, c: &Change<Pod>) {
        match c {
            Change::Applied { old, new } => {
                let owner = controller_key(&new.metadata, "ReplicaSet");
                if old.is_none()
                    && let Some(k) = &owner
                {
                    self.expectations.creation_observed(k);
                }
                if let Some(old) = old {
                    if old.is_terminating() != new.is_terminating()
                        && new.is_terminating()
                        && let Some(k) = &owner
                    {
                        // A graceful deletion counts as observed as soon as it starts.
                        self.expectations.deletion_observed(k);
                    }
                    let old_owner = controller_key(&old.metadata, "ReplicaSet");
                    if old_owner != owner
                        && let Some(k) = old_owner
                    {
                        self.queue.add(k);
                    }
                    if old.metadata.labels != new.metadata.labels {
                        self.enqueue_selecting(&new.metadata);
                    }
                }
                match owner {
                    Some(k) => self.queue.add(k),
                    None => self.enqueue_selecting(&new.metadata),
                }
            }
            Change::Deleted(p) => {
                if let Some(k) = controller_key(&p.metadata, "ReplicaSet") {
                    if !p.is_terminating() {
                        self.expectations.deletion_observed(&k);
                    }
                    self.queue.add(k);
                }
            }
        }
    }

    /// An orphan pod: every ReplicaSet in its namespace whose selector matches may adopt it.
    fn enqueue_selecting(&self, meta: &ObjectMeta) {
        for rs in self.ctx.replica_sets.list_namespace(&meta.namespace) {
            if Selector::from_label_selector(&rs.spec.selector)
                .is_ok_and(|s| !s.is_everything() && s.matches(&meta.labels))
            {
                self.queue.add(key_of(&rs.metadata));
            }
        }
    }

    pub async fn sync(self: Arc<Self>, key: String) -> Result<Action> {
        let Some(rs) = self.ctx.replica_sets.get(&key) else {
            self.expectations.forget(&key);
            return Ok(Action::AwaitChange);
        };
        let (ns, _) = split_key(&key);
        let selector = Selector::from_label_selector(&rs.spec.selector)
            .map_err(|e| Error::Other(e.to_string()))?;
        let pods = self.claim_pods(&rs, &selector).await?;
        let active: Vec<Arc<Pod>> = pods.iter().filter(|p| is_active(p)).cloned().collect();
        if self.expectations.satisfied(&key) && rs.metadata.deletion_timestamp.is_none() {
            self.manage_replicas(&rs, &key, ns, &active).await?;
        }
        let now = chrono::Utc::now();
        let status = calculate_status(&rs, &active, now);
        if rs.status.as_ref() != Some(&status) {
            let mut updated = (*rs).clone();
            updated.status = Some(status.clone());
            let api: Api<ReplicaSet> = Api::namespaced(self.ctx.client.clone(), ns);
            api.replace_status(&rs.metadata.name, &updated).await?;
        }
        // Pods that are ready but not yet available become available after minReadySeconds.
        if rs.spec.min_ready_seconds > 0 && status.ready_replicas != status.available_replicas {
            return Ok(Action::RequeueAfter(Duration::from_secs(
                rs.spec.min_ready_seconds as u64,
            )));
        }
        Ok(Action::AwaitChange)
    }

    /// Pods this ReplicaSet owns: adopt matching orphans, release owned pods that stopped matching.
    async fn claim_pods(&self, rs: &ReplicaSet, selector: &Selector) -> Result<Vec<Arc<Pod>>> {
        let mut owned = Vec::new();
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &rs.metadata.namespace);
        for pod in self.ctx.pods.list_namespace(&rs.metadata.namespace) {
            let matches = !selector.is_everything() && selector.matches(&pod.metadata.labels);
            if is_controlled_by(&pod.metadata, &rs.metadata.uid) {
                if matches {
                    owned.push(pod);
                } else {
                    // Release: drop our controller reference.
                    let refs: Vec<_> = pod
                        .metadata
                        .owner_references
                        .iter()
                        .filter(|r| r.uid != rs.metadata.uid)
                        .collect();
                    let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": pod.metadata.resource_version}});
                    api.patch(&pod.metadata.name, &Patch::Merge(&patch))
                        .await
                        .or_else(ignore_not_found)?;
                    tracing::info!(replicaset = %rs.metadata.name, pod = %pod.metadata.name, "released pod whose labels no longer match");
                }
            } else if matches
                && pod.metadata.controller_ref().is_none()
                && is_active(&pod)
                && rs.metadata.deletion_timestamp.is_none()
            {
                let mut refs = pod.metadata.owner_references.clone();
                refs.push(controller_ref(rs));
                let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": pod.metadata.resource_version}});
                match api.patch(&pod.metadata.name, &Patch::Merge(&patch)).await {
                    Ok(p) => {
                        tracing::info!(replicaset = %rs.metadata.name, pod = %pod.metadata.name, "adopted orphan pod");
                        owned.push(Arc::new(p));
                    }
                    Err(e) if e.is_not_found() || e.is_conflict() => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(owned)
    }

    async fn manage_replicas(
        &self,
        rs: &Arc<ReplicaSet>,
        key: &str,
        ns: &str,
        active: &[Arc<Pod>],
    ) -> Result<()> {
        let want = rs.spec.replicas.unwrap_or(1).max(0) as usize;
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
        let rs_ref = object_ref(rs.as_ref());
        if active.len() < want {
            let n = (want - active.len()).min(BURST_REPLICAS);
            self.expectations.expect(key, n as i64, 0);
            tracing::info!(replicaset = %key, have = active.len(), want, creating = n, "too few replicas");
            let template = new_pod(rs);
            let mut remaining = n;
            for size in slow_start_batches(n) {
                let results =
                    futures::future::join_all((0..size).map(|_| api.create(&template))).await;
                let mut failed = None;
                for r in results {
                    match r {
                        Ok(p) => self.ctx.recorder.normal(
                            &rs_ref,
                            "SuccessfulCreate",
                            format!("Created pod: {}", p.metadata.name),
                        ),
                        Err(e) => {
                            self.expectations.creation_observed(key);
                            self.ctx.recorder.warning(
                                &rs_ref,
                                "FailedCreate",
                                format!("Error creating: {e}"),
                            );
                            failed = Some(e);
                        }
                    }
                }
                remaining -= size;
                if let Some(e) = failed {
                    for _ in 0..remaining {
                        self.expectations.creation_observed(key);
                    }
                    return Err(e.into());
                }
            }
        } else if active.len() > want {
            let n = (active.len() - want).min(BURST_REPLICAS);
            let victims = pods_to_delete(active, n, chrono::Utc::now());
            self.expectations.expect(key, 0, victims.len() as i64);
            tracing::info!(replicaset = %key, have = active.len(), want, deleting = victims.len(), "too many replicas");
            let opts = DeleteOptions::default();
            let results = futures::future::join_all(
                victims.iter().map(|p| api.delete(&p.metadata.name, &opts)),
            )
            .await;
            for (p, r) in victims.iter().zip(results) {
                match r {
                    Ok(_) => self.ctx.recorder.normal(
                        &rs_ref,
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", p.metadata.name),
                    ),
                    Err(e) if e.is_not_found() => self.expectations.deletion_observed(key),
                    Err(e) => {
                        self.expectations.deletion_observed(key);
                        self.ctx.recorder.warning(
                            &rs_ref,
                            "FailedDelete",
                            format!("Error deleting: {e}"),
                        );
                        return Err(e.into());
                    }
                }
            }
        }
        Ok(())
    }
}

/// The pod a ReplicaSet creates from its template.
fn new_pod(rs: &ReplicaSet) -> Pod {
    let t = &rs.spec.template;
    let mut pod = Pod {
        metadata: ObjectMeta {
            generate_name: format!("{}-", rs.metadata.name),
            namespace: rs.metadata.namespace.clone(),
            labels: t.metadata.labels.clone(),
            annotations: t.metadata.annotations.clone(),
            owner_references: vec![controller_ref(rs)],
            finalizers: t.metadata.finalizers.clone(),
            ..Default::default()
        },
        spec: t.spec.clone(),
        ..Default::default()
    };
    pod.set_type_meta();
    pod
}

fn ignore_not_found<T: Default>(e: client::Error) -> std::result::Result<T, client::Error> {
    if e.is_not_found() || e.is_conflict() {
        Ok(T::default())
    } else {
        Err(e)
    }
}

/// Slow start: create `n` pods in batches of 1, 2, 4, … (the last one what is left), stopping
/// at the first batch with an error — so a template the API server refuses costs one error,
/// not `n`.
pub fn slow_start_batches(n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let (mut left, mut batch) = (n, 1);
    while left > 0 {
        let size = batch.min(left);
        out.push(size);
        left -= size;
        batch *= 2;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn slow_start_doubles_batches() {
        assert_eq!(super::slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(super::slow_start_batches(1), [1]);
        assert_eq!(super::slow_start_batches(10), [1, 2, 4, 3]);
        assert_eq!(super::slow_start_batches(500).iter().sum::<usize>(), 500);
    }
}
