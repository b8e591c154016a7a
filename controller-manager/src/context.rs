//! What every controller shares: the API client, the informer caches and the event recorder.

use std::sync::Arc;

use api::apps::{Deployment, ReplicaSet};
use api::coordination::Lease;
use api::core::{Endpoints, Namespace, Node, Pod, Service};
use api::discovery::EndpointSlice;
use client::Client;
use client::runtime::events::Recorder;
use client::runtime::reflector::Store;

pub struct Context {
    pub client: Client,
    pub pods: Store<Pod>,
    pub replica_sets: Store<ReplicaSet>,
    pub deployments: Store<Deployment>,
    pub namespaces: Store<Namespace>,
    pub nodes: Store<Node>,
    /// Node heartbeats: the Leases in `kube-node-lease`.
    pub leases: Store<Lease>,
    pub services: Store<Service>,
    pub endpoint_slices: Store<EndpointSlice>,
    pub endpoints: Store<Endpoints>,
    pub recorder: Recorder,
}

pub type Ctx = Arc<Context>;

/// A controller's error: logged, and the key retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Api(#[from] client::Error),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
