//! The garbage collector: dependents whose owners are gone are deleted (background
//! propagation); an owner deleted with the `orphan` finalizer has its dependents released; one
//! deleted with `foregroundDeletion` waits until its dependents are gone.
//!
//! The owner graph is read from the informer caches: an object's `ownerReferences` are its
//! edges. An owner missing from the cache is confirmed missing with a live GET before anything
//! is deleted, so a lagging watch never deletes a live object's dependents.

use std::sync::Arc;
use std::time::Duration;

use api::meta::{DeleteOptions, OwnerReference, Preconditions};
use api::resource::lookup_kind;
use api::{ObjectMeta, Resource};
use client::client::Body;
use client::runtime::controller::Action;
use client::runtime::key_of;
use client::runtime::queue::WorkQueue;
use client::runtime::reflector::Change;
use reqwest::Method;
use serde_json::{Value, json};

use crate::context::{Ctx, Error, Result};

pub struct GarbageCollector {
    ctx: Ctx,
    pub queue: WorkQueue,
}

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

/// Queue keys are `Kind|namespace/name`.
fn gc_key(kind: &str, meta: &ObjectMeta) -> String {
    format!("{kind}|{}", key_of(meta))
}

impl GarbageCollector {
    pub fn new(ctx: Ctx) -> Arc<Self> {
        Arc::new(GarbageCollector {
            ctx,
            queue: WorkQueue::default(),
        })
    }

    fn on_change<K: Resource>(&self, c: &Change<K>) {
        match c {
            Change::Applied { new, .. } => {
                let m = new.meta();
                let owner_finalizing = m.deletion_timestamp.is_some()
                    && m.finalizers.iter().any(|f| f == ORPHAN || f == FOREGROUND);
                if !m.owner_references.is_empty() || owner_finalizing {
                    self.queue.add(gc_key(K::INFO.kind, m));
                }
            }
            Change::Deleted(obj) => self.enqueue_dependents(&obj.meta().uid),
        }
    }

    pub fn on_pod(&self, c: &Change<api::Pod>) {
        self.on_change(c);
        // A dependent going away may complete an owner's foreground deletion.
        if let Change::Deleted(p) = c {
            self.enqueue_owners(p.meta());
        }
    }

    pub fn on_replica_set(&self, c: &Change<api::ReplicaSet>) {
        self.on_change(c);
        if let Change::Deleted(r) = c {
            self.enqueue_owners(r.meta());
        }
    }

    pub fn on_deployment(&self, c: &Change<api::Deployment>) {
        self.on_change(c);
    }

    pub fn on_service(&self, c: &Change<api::Service>) {
        self.on_change(c);
    }

    pub fn on_endpoint_slice(&self, c: &Change<api::EndpointSlice>) {
        self.on_change(c);
        if let Change::Deleted(s) = c {
            self.enqueue_owners(s.meta());
        }
    }

    fn enqueue_owners(&self, meta: &ObjectMeta) {
        for r in &meta.owner_references {
            self.queue
                .add(format!("{}|{}/{}", r.kind, meta.namespace, r.name));
        }
    }

    /// Every cached object that names `uid` as an owner: (kind, meta).
    fn dependents(&self, uid: &str) -> Vec<(&'static str, ObjectMeta)> {
        let refers = |m: &ObjectMeta| m.owner_references.iter().any(|r| r.uid == uid);
        let mut out = Vec::new();
        out.extend(
            self.ctx
                .pods
                .list()
                .iter()
                .filter(|o| refers(&o.metadata))
                .map(|o| ("Pod", o.metadata.clone())),
        );
        out.extend(
            self.ctx
                .replica_sets
                .list()
                .iter()
                .filter(|o| refers(&o.metadata))
                .map(|o| ("ReplicaSet", o.metadata.clone())),
        );
        out.extend(
            self.ctx
                .deployments
                .list()
                .iter()
                .filter(|o| refers(&o.metadata))
                .map(|o| ("Deployment", o.metadata.clone())),
        );
        out.extend(
            self.ctx
                .services
                .list()
                .iter()
                .filter(|o| refers(&o.metadata))
                .map(|o| ("Service", o.metadata.clone())),
        );
        out.extend(
            self.ctx
                .endpoint_slices
                .list()
                .iter()
                .filter(|o| refers(&o.metadata))
                .map(|o| ("EndpointSlice", o.metadata.clone())),
        );
        out
    }

    fn enqueue_dependents(&self, uid: &str) {
        for (kind, meta) in self.dependents(uid) {
            self.queue.add(gc_key(kind, &meta));
        }
    }

    fn cached(&self, kind: &str, key: &str) -> Option<ObjectMeta> {
        match kind {
            "Pod" => self.ctx.pods.get(key).map(|o| o.metadata.clone()),
            "ReplicaSet" => self.ctx.replica_sets.get(key).map(|o| o.metadata.clone()),
            "Deployment" => self.ctx.deployments.get(key).map(|o| o.metadata.clone()),
            "Service" => self.ctx.services.get(key).map(|o| o.metadata.clone()),
            "EndpointSlice" => self
                .ctx
                .endpoint_slices
                .get(key)
                .map(|o| o.metadata.clone()),
            _ => None,
        }
    }

    fn path(kind: &str, api_version: &str, ns: &str, name: &str) -> Option<String> {
        let info = lookup_kind(api_version, kind)
            .or_else(|| api::resource::RESOURCES.iter().find(|r| r.kind == kind))?;
        Some(info.object_path(Some(ns), name))
    }

    /// Does the owner still exist (same uid)? Cache first, then the API server.
    async fn owner_exists(&self, r: &OwnerReference, ns: &str) -> Result<bool> {
        if let Some(m) = self.cached(&r.kind, &format!("{ns}/{}", r.name))
            && m.uid == r.uid
        {
            return Ok(true);
        }
        let Some(path) = Self::path(&r.kind, &r.api_version, ns, &r.name) else {
            // A kind this cluster does not serve cannot exist here.
            return Ok(false);
        };
        match self
            .ctx
            .client
            .request::<Value>(Method::GET, &path, Body::None)
            .await
        {
            Ok(v) => Ok(v.pointer("/metadata/uid").and_then(Value::as_str) == Some(r.uid.as_str())),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, kind: &str, meta: &ObjectMeta, policy: &str) -> Result<()> {
        let Some(path) = Self::path(kind, "", &meta.namespace, &meta.name) else {
            return Ok(());
        };
        let opts = DeleteOptions {
            propagation_policy: Some(policy.into()),
            preconditions: Some(Preconditions {
                uid: Some(meta.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        let body = serde_json::to_value(&opts).map_err(|e| Error::Other(e.to_string()))?;
        match self
            .ctx
            .client
            .request::<Value>(Method::DELETE, &path, Body::Json(&body))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn patch_meta(&self, kind: &str, meta: &ObjectMeta, patch: Value) -> Result<()> {
        let Some(path) = Self::path(kind, "", &meta.namespace, &meta.name) else {
            return Ok(());
        };
        match self
            .ctx
            .client
            .request::<Value>(
                Method::PATCH,
                &path,
                Body::Patch(&patch, "application/merge-patch+json"),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn remove_finalizer(&self, kind: &str, meta: &ObjectMeta, finalizer: &str) -> Result<()> {
        let rest: Vec<&String> = meta.finalizers.iter().filter(|f| *f != finalizer).collect();
        let patch =
            json!({"metadata": {"finalizers": rest, "resourceVersion": meta.resource_version}});
        tracing::info!(%kind, name = %meta.name, %finalizer, "removing finalizer");
        self.patch_meta(kind, meta, patch).await
    }

    pub async fn sync(self: Arc<Self>, key: String) -> Result<Action> {
        let Some((kind, obj_key)) = key.split_once('|') else {
            return Ok(Action::AwaitChange);
        };
        let Some(meta) = self.cached(kind, obj_key) else {
            return Ok(Action::AwaitChange);
        };
        if meta.deletion_timestamp.is_some() {
            if meta.finalizers.iter().any(|f| f == ORPHAN) {
                // Orphan: release every dependent, then let the owner go.
                for (dkind, dmeta) in self.dependents(&meta.uid) {
                    let refs: Vec<&OwnerReference> = dmeta
                        .owner_references
                        .iter()
                        .filter(|r| r.uid != meta.uid)
                        .collect();
                    tracing::info!(owner = %meta.name, dependent = %dmeta.name, "orphaning dependent");
                    self.patch_meta(
                        dkind,
                        &dmeta,
                        json!({"metadata": {"ownerReferences": refs}}),
                    )
                    .await?;
                }
                self.remove_finalizer(kind, &meta, ORPHAN).await?;
                return Ok(Action::AwaitChange);
            }
            if meta.finalizers.iter().any(|f| f == FOREGROUND) {
                // Foreground: delete dependents (foreground too), wait for them, then go.
                let deps = self.dependents(&meta.uid);
                if deps.is_empty() {
                    self.remove_finalizer(kind, &meta, FOREGROUND).await?;
                    return Ok(Action::AwaitChange);
                }
                for (dkind, dmeta) in &deps {
                    if dmeta.deletion_timestamp.is_none() {
                        tracing::info!(owner = %meta.name, dependent = %dmeta.name, "deleting dependent (foreground)");
                        self.delete(dkind, dmeta, "Foreground").await?;
                    }
                }
                return Ok(Action::RequeueAfter(Duration::from_secs(2)));
            }
        }
        if meta.owner_references.is_empty() {
            return Ok(Action::AwaitChange);
        }
        let mut dangling = Vec::new();
        for r in &meta.owner_references {
            if !self.owner_exists(r, &meta.namespace).await? {
                dangling.push(r.uid.clone());
            }
        }
        if dangling.is_empty() {
            return Ok(Action::AwaitChange);
        }
        if dangling.len() == meta.owner_references.len() {
            if meta.deletion_timestamp.is_none() {
                tracing::info!(%kind, name = %meta.name, "deleting object whose owners are gone");
                self.delete(kind, &meta, "Background").await?;
            }
        } else {
            let refs: Vec<&OwnerReference> = meta
                .owner_references
                .iter()
                .filter(|r| !dangling.contains(&r.uid))
                .collect();
            self.patch_meta(kind, &meta, json!({"metadata": {"ownerReferences": refs}}))
                .await?;
        }
        Ok(Action::AwaitChange)
    }
}
