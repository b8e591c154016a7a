//! The EndpointSlice controller (Kubernetes' `pkg/controller/endpointslice`, with the legacy
//! endpoints controller folded in): for every Service with a selector, keep its EndpointSlices
//! — and its `Endpoints` of the same name — listing the selected pods that have an IP, each
//! with its `ready`/`serving`/`terminating` conditions and the ports its `targetPort`s resolve
//! to in that pod.
//!
//! One sync per Service key: read the Service, its pods and its slices from the caches, plan
//! the slices ([`plan`]), write the difference, then the Endpoints ([`endpoints`]). Services
//! without a selector are left alone (someone else writes their endpoints), and so are
//! ExternalName Services. A deleted Service's slices are removed by the garbage collector
//! (they carry a controller owner reference); its Endpoints are deleted here.

mod endpoints;
mod plan;
mod tracker;

pub use endpoints::desired_endpoints;
pub use plan::{DesiredSlice, SlicePlan, desired_slices, plan_slices, pod_endpoint};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use api::ObjectMeta;
use api::core::{Endpoints, Pod, Service};
use api::discovery::{EndpointSlice, LABEL_SERVICE_NAME};
use api::meta::DeleteOptions;
use client::Api;
use client::runtime::controller::Action;
use client::runtime::events::object_ref;
use client::runtime::key_of;
use client::runtime::queue::WorkQueue;
use client::runtime::reflector::Change;

use crate::context::{Ctx, Result};
use tracker::Tracker;

/// How soon to look again when the cache has not caught up with this controller's writes.
const STALE_CACHE_RETRY: Duration = Duration::from_millis(200);

pub struct EndpointSliceController {
    ctx: Ctx,
    pub queue: WorkQueue,
    tracker: Tracker,
}

/// Whether the Service selects pods with these labels.
fn selects(svc: &Service, labels: &BTreeMap<String, String>) -> bool {
    !svc.spec.selector.is_empty()
        && svc
            .spec
            .selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
}

/// Whether a pod change can change any endpoint: its labels, IP, readiness, deletion, phase,
/// node or ports.
fn endpoint_relevant(old: &Pod, new: &Pod) -> bool {
    let view = |p: &Pod| {
        (
            plan::ipv4_of(p),
            p.is_ready(),
            p.is_terminating(),
            p.phase().to_string(),
            p.spec.node_name.clone(),
            p.spec.hostname.clone(),
            p.spec.subdomain.clone(),
        )
    };
    old.metadata.labels != new.metadata.labels
        || view(old) != view(new)
        || old.spec.containers.iter().map(|c| &c.ports).ne(new
            .spec
            .containers
            .iter()
            .map(|c| &c.ports))
}

impl EndpointSliceController {
    pub fn new(ctx: Ctx) -> Arc<Self> {
        Arc::new(EndpointSliceController {
            ctx,
            queue: WorkQueue::default(),
            tracker: Tracker::default(),
        })
    }

    pub fn on_service(&self, c: &Change<Service>) {
        match c {
            Change::Applied { new, .. } => self.queue.add(key_of(&new.metadata)),
            Change::Deleted(s) => self.queue.add(key_of(&s.metadata)),
        }
    }

    /// Enqueue the Services that select (or selected) the pod.
    pub fn on_pod(&self, c: &Change<Pod>) {
        let (old, new) = match c {
            Change::Applied { old, new } => {
                if let Some(o) = old
                    && !endpoint_relevant(o, new)
                {
                    return;
                }
                (old.as_deref(), new.as_ref())
            }
            Change::Deleted(p) => (None, p.as_ref()),
        };
        for svc in self.ctx.services.list_namespace(&new.metadata.namespace) {
            let before = old.is_some_and(|o| selects(&svc, &o.metadata.labels));
            if before || selects(&svc, &new.metadata.labels) {
                self.queue.add(key_of(&svc.metadata));
            }
        }
    }

    /// A slice changed or went (perhaps by someone else's hand): its Service is looked at again.
    pub fn on_endpoint_slice(&self, c: &Change<EndpointSlice>) {
        let s = match c {
            Change::Applied { new, .. } => new,
            Change::Deleted(s) => s,
        };
        if let Some(svc) = s.metadata.labels.get(LABEL_SERVICE_NAME) {
            self.queue.add(format!("{}/{}", s.metadata.namespace, svc));
        }
    }

    pub fn on_endpoints(&self, c: &Change<Endpoints>) {
        let m = match c {
            Change::Applied { new, .. } => &new.metadata,
            Change::Deleted(e) => &e.metadata,
        };
        let key = key_of(m);
        if self.ctx.services.get(&key).is_some() {
            self.queue.add(key);
        }
    }

    pub async fn sync(self: Arc<Self>, key: String) -> Result<Action> {
        let Some(svc) = self.ctx.services.get(&key) else {
            self.tracker.forget(&key);
            self.delete_endpoints(&key).await?;
            return Ok(Action::AwaitChange);
        };
        // Without a selector someone else writes the endpoints; an ExternalName Service is a
        // DNS alias and has none (as Kubernetes' controller).
        if svc.spec.selector.is_empty()
            || svc.spec.type_ == api::core::service::TYPE_EXTERNAL_NAME
            || svc.metadata.deletion_timestamp.is_some()
        {
            return Ok(Action::AwaitChange);
        }
        let ns = svc.metadata.namespace.clone();
        let pods: Vec<Arc<Pod>> = self
            .ctx
            .pods
            .list_namespace(&ns)
            .into_iter()
            .filter(|p| selects(&svc, &p.metadata.labels))
            .collect();
        let existing: Vec<Arc<EndpointSlice>> = self
            .ctx
            .endpoint_slices
            .list_namespace(&ns)
            .into_iter()
            .filter(|s| plan::is_managed_slice_of(s, &svc.metadata.name))
            .collect();
        if self.tracker.is_stale(&key, &existing) {
            tracing::debug!(service = %key, "slice cache behind our writes; looking again shortly");
            return Ok(Action::RequeueAfter(STALE_CACHE_RETRY));
        }
        let nodes = self
            .ctx
            .nodes
            .list()
            .into_iter()
            .map(|n| (n.metadata.name.clone(), n))
            .collect();
        let desired = desired_slices(&svc, &pods, &nodes);
        let plan = plan_slices(&svc, desired, &existing);
        if let Err(e) = self.apply(&key, &ns, plan).await {
            self.ctx.recorder.warning(
                &object_ref(svc.as_ref()),
                "FailedToUpdateEndpointSlices",
                format!("Error updating Endpoint Slices for Service {key}: {e}"),
            );
            return Err(e);
        }
        if let Err(e) = self.sync_endpoints(&key, &svc, &pods).await {
            self.ctx.recorder.warning(
                &object_ref(svc.as_ref()),
                "FailedToUpdateEndpoint",
                format!("Failed to update endpoint {key}: {e}"),
            );
            return Err(e);
        }
        Ok(Action::AwaitChange)
    }

    async fn apply(&self, key: &str, ns: &str, plan: SlicePlan) -> Result<()> {
        if plan.is_empty() {
            return Ok(());
        }
        let api: Api<EndpointSlice> = Api::namespaced(self.ctx.client.clone(), ns);
        for s in &plan.delete {
            match api
                .delete(&s.metadata.name, &DeleteOptions::default())
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            self.tracker.deleted(key, &s.metadata.name);
            tracing::info!(service = %key, slice = %s.metadata.name, "deleted endpoint slice");
        }
        for s in &plan.update {
            let written = api.replace(&s.metadata.name, s).await?;
            self.tracker.wrote(key, &written);
            tracing::info!(service = %key, slice = %written.metadata.name, endpoints = %summary(&written), "updated endpoint slice");
        }
        for s in &plan.create {
            let written = api.create(s).await?;
            self.tracker.wrote(key, &written);
            tracing::info!(service = %key, slice = %written.metadata.name, endpoints = %summary(&written), "created endpoint slice");
        }
        Ok(())
    }

    /// The legacy Endpoints: written when they differ from what the pods say.
    async fn sync_endpoints(&self, key: &str, svc: &Service, pods: &[Arc<Pod>]) -> Result<()> {
        let mut want = desired_endpoints(svc, pods);
        let api: Api<Endpoints> = Api::namespaced(self.ctx.client.clone(), &svc.metadata.namespace);
        match self.ctx.endpoints.get(key) {
            None => {
                api.create(&want).await?;
                tracing::info!(service = %key, "created endpoints");
            }
            Some(cur) => {
                if cur.subsets == want.subsets && cur.metadata.labels == want.metadata.labels {
                    return Ok(());
                }
                want.metadata = ObjectMeta {
                    labels: want.metadata.labels,
                    ..cur.metadata.clone()
                };
                api.replace(&svc.metadata.name, &want).await?;
                tracing::info!(service = %key, "updated endpoints");
            }
        }
        Ok(())
    }

    /// The Service is gone: so are its Endpoints (Kubernetes' endpoints controller does the
    /// same). Asked of the API server, not the cache: Endpoints written a moment before the
    /// Service was deleted may not be in the cache yet.
    async fn delete_endpoints(&self, key: &str) -> Result<()> {
        let (ns, name) = client::runtime::split_key(key);
        let api: Api<Endpoints> = Api::namespaced(self.ctx.client.clone(), ns);
        match api.delete(name, &DeleteOptions::default()).await {
            Ok(_) => {
                tracing::info!(service = %key, "deleted endpoints of a deleted service");
                Ok(())
            }
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// `2 ready, 1 not ready, 1 terminating` for the logs.
fn summary(s: &EndpointSlice) -> String {
    let count = |f: fn(&api::discovery::EndpointConditions) -> bool| {
        s.endpoints.iter().filter(|e| f(&e.conditions)).count()
    };
    format!(
        "{} ready, {} not ready, {} terminating",
        count(|c| c.ready == Some(true)),
        count(|c| c.ready == Some(false) && c.terminating != Some(true)),
        count(|c| c.terminating == Some(true)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan::tests::pod;

    #[test]
    fn only_endpoint_changes_wake_services() {
        let a = pod("a", "127.11.0.2", false, "http", 8000);
        let mut b = (*a).clone();
        b.metadata.annotations.insert("note".into(), "x".into());
        assert!(
            !endpoint_relevant(&a, &b),
            "an annotation changes no endpoint"
        );
        let ready = pod("a", "127.11.0.2", true, "http", 8000);
        assert!(endpoint_relevant(&a, &ready));
        let mut relabelled = (*a).clone();
        relabelled
            .metadata
            .labels
            .insert("app".into(), "other".into());
        assert!(endpoint_relevant(&a, &relabelled));
    }
}
