//! Kubernetes-shaped API types for kube-lite, with the Kubernetes JSON field names.
//!
//! # Layout
//! - [`annotations`]: well-known annotation and label keys (last-applied, revision, …).
//! - [`meta`]: `ObjectMeta`, `Status`, lists, watch events, timestamps — apimachinery's `meta/v1`.
//! - [`core`]: Pod, ConfigMap, Node, Namespace, Event, Service, Endpoints — `core/v1`.
//! - [`apps`]: ReplicaSet, Deployment — `apps/v1`.
//! - [`coordination`]: Lease — `coordination.k8s.io/v1`.
//! - [`discovery`]: EndpointSlice — `discovery.k8s.io/v1`.
//! - [`duration`]: Go durations (`1m30s`) read and written as Kubernetes does.
//! - [`resource`]: the [`Resource`] trait and the table of every kind the cluster serves.
//! - [`quantity`]: `"500m"`, `"128Mi"` → numbers.
//! - [`selector`]: label selectors (`matchLabels`/`matchExpressions`, `a=b,c in (x,y)`) and field selectors.
//! - [`validation`]: name rules and per-kind validation returning field errors.
//! - [`workload`]: Deployment rules the controller and the CLI share (the new ReplicaSet).
//! - [`defaults`]: the defaults the API server fills in, as Kubernetes does.
//! - [`codec`]: YAML/JSON documents in and out, strict decoding.
//! - [`merge_keys`]: strategic-merge list strategies and merge keys, for patch makers and appliers.
//! - [`net`]: IPv4 networks (`10.244.0.0/16`): pod CIDRs, node IPAM, service ranges.
//! - [`remotecommand`]: `kubectl exec`'s channel protocols over WebSocket (frames, statuses).
//! - [`spdy`]: SPDY/3.1 framing with its zlib header blocks (`kubectl port-forward`).

pub mod annotations;
pub mod apps;
pub mod codec;
pub mod coordination;
pub mod core;
pub mod defaults;
pub mod discovery;
pub mod duration;
pub mod merge_keys;
pub mod meta;
pub mod net;
pub mod quantity;
pub mod remotecommand;
pub mod resource;
pub mod selector;
pub mod spdy;
pub mod table;
pub mod validation;
pub mod workload;

pub use apps::{Deployment, ReplicaSet};
pub use coordination::Lease;
pub use core::{ConfigMap, Endpoints, Event, Namespace, Node, Pod, Service};
pub use discovery::EndpointSlice;
pub use meta::{List, ObjectMeta, Status, WatchEvent};
pub use quantity::Quantity;
pub use resource::{Resource, ResourceInfo};
