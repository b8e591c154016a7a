//! The kube-lite scheduler: binds each pending pod to a node that can run it, and says why.
//!
//! # Layout
//! - [`scheduler`]: informers → cache and queue → one decision at a time → asynchronous binding.
//! - [`schedule_one`]: the pure decision: filters, scores, Kubernetes' FitError message.
//! - [`plugins`]: the filter and score plugins, in kube-scheduler's order.
//! - [`cache`]: per-node requested resources, counting assumed pods.
//! - [`metrics`]: Prometheus metrics and the `/healthz`, `/metrics` endpoint.

pub mod cache;
pub mod metrics;
pub mod plugins;
pub mod schedule_one;
pub mod scheduler;

use client::runtime::leader_election::{self, LeaderElectionConfig, default_identity};
use tokio_util::sync::CancellationToken;

pub struct Config {
    /// API server URL.
    pub server: String,
    /// Pods whose `spec.schedulerName` is this (or empty) are ours.
    pub scheduler_name: String,
    /// Lease-based leader election (None: act at once, alone).
    pub leader_election: Option<LeaderElectionConfig>,
    /// Where `/healthz` and `/metrics` are served (None: not served).
    pub listener: Option<std::net::TcpListener>,
}

impl Config {
    /// Defaults: `default-scheduler`, leader election through Lease `kube-system/kube-scheduler`.
    pub fn new(server: impl Into<String>) -> Self {
        Config {
            server: server.into(),
            scheduler_name: "default-scheduler".into(),
            leader_election: Some(LeaderElectionConfig::new(
                "kube-scheduler",
                &default_identity(),
            )),
            listener: None,
        }
    }
}

/// Schedule pods until `shutdown` (while leader, when leader election is on).
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = client::Client::new(&config.server, "kube-lite-scheduler")?;
    tracing::info!(server = %config.server, "scheduler starting");
    let metrics = metrics::Metrics::new();
    let server = config
        .listener
        .map(|l| tokio::spawn(metrics::serve(l, metrics.clone(), shutdown.clone())));
    let name = config.scheduler_name.clone();
    match config.leader_election {
        None => scheduler::run_scheduler(client, &name, metrics.clone(), shutdown).await,
        Some(le) => {
            let (tx, mut rx) = tokio::sync::watch::channel(false);
            let m = metrics.clone();
            tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    m.leader.set(*rx.borrow() as i64);
                }
            });
            let c = client.clone();
            leader_election::run(client, le, shutdown, tx, move |lead| {
                let (c, name, m) = (c.clone(), name.clone(), metrics.clone());
                async move { scheduler::run_scheduler(c, &name, m, lead).await }
            })
            .await
        }
    }
    if let Some(s) = server {
        s.await??;
    }
    Ok(())
}
