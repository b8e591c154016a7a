//! The kube-lite scheduler: binds each pending pod to a node that can run it, and says why.
//!
//! # Layout
//! - [`scheduler`]: informers → cache and queue → one decision at a time → asynchronous binding.
//! - [`schedule_one`]: the pure decision: filters, scores, Kubernetes' FitError message.
//! - [`plugins`]: the filter and score plugins, in kube-scheduler's order.
//! - [`cache`]: per-node requested resources, counting assumed pods.

pub mod cache;
pub mod plugins;
pub mod schedule_one;
pub mod scheduler;

use tokio_util::sync::CancellationToken;

pub struct Config {
    /// API server URL.
    pub server: String,
    /// Pods whose `spec.schedulerName` is this (or empty) are ours.
    pub scheduler_name: String,
}

impl Config {
    pub fn new(server: impl Into<String>) -> Self {
        Config {
            server: server.into(),
            scheduler_name: "default-scheduler".into(),
        }
    }
}

/// Schedule pods until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = client::Client::new(&config.server, "kube-lite-scheduler")?;
    tracing::info!(server = %config.server, "scheduler starting");
    scheduler::run_scheduler(client, &config.scheduler_name, shutdown).await;
    Ok(())
}
