//! The kube-lite API server: the Kubernetes REST API over the kvstore. The only component that
//! talks to the kvstore; everything else talks to it.
//!
//! # Layout
//! - [`server`]: the HTTP server and routing of Kubernetes paths.
//! - [`request`]: parsing paths (`/apis/apps/v1/namespaces/x/deployments/web/scale`) and queries.
//! - [`handlers`]: get/list, create/update/patch, delete, watch, subresources (binding, scale,
//!   log, eviction, finalize).
//! - [`strategy`]: per-kind decode, defaulting, validation and update rules.
//! - [`storage`]: objects in the kvstore; compare-and-swap on resourceVersion.
//! - [`cache`]: the watch cache — one kvstore watch per resource type fans out to every client
//!   watch, and serves lists at recent resourceVersions.
//! - [`services`]: ClusterIP and node port allocation (`--service-cluster-ip-range`,
//!   `--service-node-port-range`), in the same transaction as the Service's write.
//! - [`leases`]: TTL leases for events (`--event-ttl`).
//! - [`compaction`]: periodic kvstore compaction (`--etcd-compaction-interval`).
//! - [`filter`]: label and field selectors.
//! - [`patch`]: merge, JSON and strategic merge patches.
//! - [`protobuf`]: the few protobuf request bodies kubectl sends (`create configmap`, `drain`).
//! - [`table`]: `as=Table` responses.
//! - [`discovery`]: `/api`, `/apis`, `/version` (legacy and aggregated v2).
//! - [`openapi`]: `/openapi/v3` (what `kubectl apply --validate=strict` checks).
//! - [`metrics`]: Prometheus metrics at `/metrics`.
//! - [`bootstrap`]: the system namespaces.
//! - [`error`]: errors as Kubernetes `Status` objects.

pub mod bootstrap;
pub mod cache;
pub mod compaction;
pub mod discovery;
pub mod error;
pub mod filter;
pub mod handlers;
pub mod leases;
pub mod metrics;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod protobuf_wire;
pub mod request;
pub mod server;
pub mod services;
pub mod storage;
pub mod strategy;
pub mod table;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kvclient::KvClient;
use tokio_util::sync::CancellationToken;

pub struct Config {
    /// kvstore client URLs; any member will do, the client moves on when one is down.
    pub kvstore_servers: Vec<String>,
    /// Already bound, so callers can pass port 0 and learn the port before `run`.
    pub listener: std::net::TcpListener,
}

/// Tunables, with Kubernetes' defaults.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--etcd-compaction-interval`: compact the kvstore this often (zero: never).
    pub compaction_interval: Duration,
    /// `--event-ttl`: events are removed this long after their last write.
    pub event_ttl: Duration,
    /// `--service-cluster-ip-range`: the IPv4 CIDR ClusterIPs come from.
    pub service_cluster_ip_range: String,
    /// `--service-node-port-range`: where NodePort Services' node ports come from.
    pub service_node_port_range: String,
}

/// kube-apiserver's defaults.
pub const DEFAULT_SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/12";
pub const DEFAULT_SERVICE_NODE_PORT_RANGE: &str = "30000-32767";

impl Default for Options {
    fn default() -> Self {
        Options {
            compaction_interval: Duration::from_secs(5 * 60),
            event_ttl: Duration::from_secs(60 * 60),
            service_cluster_ip_range: DEFAULT_SERVICE_CLUSTER_IP_RANGE.into(),
            service_node_port_range: DEFAULT_SERVICE_NODE_PORT_RANGE.into(),
        }
    }
}

/// Serve until `shutdown` is cancelled, with the default [`Options`].
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_with(config, Options::default(), shutdown).await
}

/// Serve until `shutdown` is cancelled.
pub async fn run_with(
    config: Config,
    options: Options,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let services = services::Allocator::new(
        &options.service_cluster_ip_range,
        &options.service_node_port_range,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let kv = KvClient::new(config.kvstore_servers.clone()).context("kvstore client")?;
    let storage = storage::Storage::new(kv).with_event_ttl(options.event_ttl);
    let addr = config.listener.local_addr()?;
    // Wait for the store, then make sure the system namespaces exist.
    loop {
        match bootstrap::ensure_namespaces(&storage).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e.status().message, "waiting for the kvstore");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let caches = Arc::new(cache::Caches::start(&storage, &shutdown));
    let metrics = Arc::new(metrics::Metrics::default());
    tokio::spawn(compaction::run(
        storage.clone(),
        caches.clone(),
        metrics.clone(),
        options.compaction_interval,
        shutdown.clone(),
    ));
    let state = Arc::new(server::AppState {
        storage,
        caches,
        metrics,
        services,
        http,
        shutdown: shutdown.clone(),
        server_address: addr.to_string(),
    });
    config.listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(config.listener)?;
    tracing::info!(%addr, kvstore = ?config.kvstore_servers, service_cluster_ip_range = %options.service_cluster_ip_range, service_node_port_range = %options.service_node_port_range, "apiserver serving");
    axum::serve(listener, server::router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
