//! The machinery controllers are built from, after kube-runtime and client-go:
//! [`watcher`] (list + watch as a state machine) → [`reflector`] (a local cache) →
//! [`informer`] (cache + change handlers) → [`queue`] (de-duplicating, rate-limited keys) →
//! [`controller`] (workers calling one `reconcile` per key). [`events`] records Events;
//! [`expectations`] and [`owner`] are what controllers that create objects need;
//! [`services`] watches Services with their EndpointSlices (proxy and DNS).

pub mod controller;
pub mod events;
pub mod expectations;
pub mod informer;
pub mod leader_election;
pub mod leader_flags;
pub mod owner;
pub mod queue;
pub mod reflector;
pub mod services;
pub mod watcher;

/// `namespace/name` (or `name` for cluster-scoped objects): how queues and caches name objects.
pub fn key_of(meta: &api::ObjectMeta) -> String {
    if meta.namespace.is_empty() {
        meta.name.clone()
    } else {
        format!("{}/{}", meta.namespace, meta.name)
    }
}

/// Split a key back into (namespace, name).
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}
