//! The scheduler's Prometheus metrics, with kube-scheduler's names, and its `/healthz` +
//! `/metrics` HTTP endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// scheduled, unschedulable or error.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    /// active (waiting for a decision) or unschedulable (waiting for the cluster to change).
    pub queue: String,
}

pub struct Metrics {
    pub attempts: Family<ResultLabel, Counter>,
    /// From a pod first entering the queue to its binding being written.
    pub e2e_latency: Histogram,
    /// One decision (filters and scores).
    pub attempt_duration: Histogram,
    pub pending: Family<QueueLabel, Gauge>,
    pub leader: Gauge,
    pub ready: AtomicBool,
    registry: Registry,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let attempts = Family::<ResultLabel, Counter>::default();
        let e2e_latency = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let attempt_duration = Histogram::new(exponential_buckets(0.00001, 2.0, 16));
        let pending = Family::<QueueLabel, Gauge>::default();
        let leader = Gauge::default();
        let mut registry = Registry::with_prefix("scheduler");
        registry.register(
            "schedule_attempts",
            "Scheduling attempts by result",
            attempts.clone(),
        );
        registry.register(
            "e2e_scheduling_duration_seconds",
            "Time from a pod entering the scheduling queue to its binding",
            e2e_latency.clone(),
        );
        registry.register(
            "scheduling_attempt_duration_seconds",
            "Time of one scheduling decision (filters and scores)",
            attempt_duration.clone(),
        );
        registry.register(
            "pending_pods",
            "Pods waiting to be scheduled, by queue",
            pending.clone(),
        );
        registry.register(
            "leader_election_master_status",
            "1 while this scheduler is the leader",
            leader.clone(),
        );
        Arc::new(Metrics {
            attempts,
            e2e_latency,
            attempt_duration,
            pending,
            leader,
            ready: AtomicBool::new(false),
            registry,
        })
    }

    pub fn attempt(&self, result: &str) {
        self.attempts
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }

    pub fn set_pending(&self, queue: &str, n: usize) {
        self.pending
            .get_or_create(&QueueLabel {
                queue: queue.into(),
            })
            .set(n as i64);
    }

    fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

async fn metrics_text(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

/// Serve `/healthz`, `/readyz` and `/metrics` until `shutdown`.
pub async fn serve(
    listener: std::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
