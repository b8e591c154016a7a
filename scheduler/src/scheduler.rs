//! The scheduling loop: informers feed the cache and the queue of pending pods; one worker
//! decides pod after pod (seeing its own earlier choices as assumed pods); bindings are sent
//! asynchronously so the next decision need not wait for the API server.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::core::{Node, Pod};
use client::runtime::events::{Recorder, object_ref};
use client::runtime::informer::Informer;
use client::runtime::queue::WorkQueue;
use client::runtime::reflector::{Change, Store};
use client::runtime::{key_of, split_key};
use client::{Api, Client, ListParams, Patch};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::metrics::Metrics;
use crate::plugins::{Filter, Score, default_filters, default_scores};
use crate::schedule_one::{Decision, schedule};

/// Bindings in flight at once: enough to keep the API server busy, not so many it drowns.
const MAX_BINDINGS_IN_FLIGHT: usize = 64;

/// Shared by the informer handlers and the worker.
pub struct Scheduler {
    client: Client,
    name: String,
    cache: Mutex<Cache>,
    queue: WorkQueue,
    /// Pods that fit nowhere last time; retried when the cluster changes.
    unschedulable: Mutex<HashSet<String>>,
    /// When each pending pod was first queued (for the e2e latency metric).
    first_seen: Mutex<HashMap<String, Instant>>,
    filters: Vec<Box<dyn Filter>>,
    scores: Vec<Box<dyn Score>>,
    recorder: Recorder,
    next_start: AtomicUsize,
    bindings: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Scheduler {
    pub fn new(client: Client, name: &str, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Scheduler {
            recorder: Recorder::new(client.clone(), name, ""),
            client,
            name: name.to_string(),
            cache: Mutex::new(Cache::default()),
            queue: WorkQueue::new(Duration::from_secs(1), Duration::from_secs(10)),
            unschedulable: Mutex::new(HashSet::new()),
            first_seen: Mutex::new(HashMap::new()),
            filters: default_filters(),
            scores: default_scores(),
            next_start: AtomicUsize::new(0),
            bindings: Arc::new(Semaphore::new(MAX_BINDINGS_IN_FLIGHT)),
            metrics,
        })
    }

    fn responsible_for(&self, pod: &Pod) -> bool {
        let s = &pod.spec.scheduler_name;
        (s.is_empty() || *s == self.name) && pod.spec.node_name.is_empty() && !pod.is_terminating()
    }

    fn enqueue(&self, key: String) {
        lock(&self.first_seen)
            .entry(key.clone())
            .or_insert_with(Instant::now);
        self.queue.add(key);
    }

    /// Something changed that may let unschedulable pods fit: try them again.
    fn retry_unschedulable(&self) {
        let keys: Vec<String> = lock(&self.unschedulable).drain().collect();
        for k in keys {
            self.queue.add(k);
        }
    }

    fn on_pod(&self, change: &Change<Pod>) {
        match change {
            Change::Applied { new, .. } => {
                lock(&self.cache).update_pod(new);
                if self.responsible_for(new) {
                    self.enqueue(key_of(&new.metadata));
                }
            }
            Change::Deleted(pod) => {
                let key = key_of(&pod.metadata);
                lock(&self.cache).delete_pod(pod);
                lock(&self.unschedulable).remove(&key);
                lock(&self.first_seen).remove(&key);
                if !pod.spec.node_name.is_empty() {
                    self.retry_unschedulable();
                }
            }
        }
    }

    fn on_node(&self, change: &Change<Node>) {
        match change {
            Change::Applied { new, .. } => lock(&self.cache).upsert_node(new.clone()),
            Change::Deleted(n) => lock(&self.cache).remove_node(&n.metadata.name),
        }
        self.retry_unschedulable();
    }

    /// Decide for one pod and act on the decision.
    async fn schedule_one(self: &Arc<Self>, key: &str, pods: &Store<Pod>) {
        let Some(pod) = pods.get(key) else { return };
        if !self.responsible_for(&pod) || lock(&self.cache).is_assumed(key) {
            return;
        }
        let started = Instant::now();
        let decision = {
            let mut cache = lock(&self.cache);
            let start = self.next_start.load(Ordering::Relaxed);
            let d = schedule(&pod, &cache, &self.filters, &self.scores, start);
            let processed = match &d {
                Decision::Bind {
                    scores, rejected, ..
                } => scores.len() + rejected.len(),
                Decision::Unschedulable { reasons, .. } => reasons.len(),
            };
            let n = cache.node_count().max(1);
            self.next_start
                .store((start + processed) % n, Ordering::Relaxed);
            if let Decision::Bind { node, .. } = &d {
                cache.assume(&pod, node);
            }
            d
        };
        self.metrics
            .attempt_duration
            .observe(started.elapsed().as_secs_f64());
        match decision {
            Decision::Bind {
                node,
                scores,
                rejected,
            } => {
                if tracing::enabled!(tracing::Level::DEBUG) {
                    tracing::debug!(pod = %key, chosen = %node, scores = ?scores, filtered_out = ?rejected, "decision");
                }
                self.metrics.attempt("scheduled");
                lock(&self.unschedulable).remove(key);
                let permit = self.bindings.clone().acquire_owned().await;
                let this = self.clone();
                let key = key.to_string();
                tokio::spawn(async move {
                    let _permit = permit;
                    this.bind(&pod, &key, &node).await
                });
            }
            Decision::Unschedulable { message, reasons } => {
                tracing::debug!(pod = %key, filtered_out = ?reasons, "decision: unschedulable");
                tracing::info!(pod = %key, "{message}");
                self.metrics.attempt("unschedulable");
                lock(&self.unschedulable).insert(key.to_string());
                self.mark_unschedulable(&pod, &message).await;
                self.queue.add_rate_limited(key.to_string());
            }
        }
        self.metrics.set_pending("active", self.queue.len());
        self.metrics
            .set_pending("unschedulable", lock(&self.unschedulable).len());
    }

    async fn bind(&self, pod: &Pod, key: &str, node: &str) {
        let (ns, name) = split_key(key);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        match api.bind(name, node).await {
            Ok(()) => {
                self.queue.forget(key);
                if let Some(t) = lock(&self.first_seen).remove(key) {
                    self.metrics.e2e_latency.observe(t.elapsed().as_secs_f64());
                }
                tracing::info!(pod = %key, %node, "bound");
                self.recorder.normal(
                    &object_ref(pod),
                    "Scheduled",
                    format!("Successfully assigned {ns}/{name} to {node}"),
                );
            }
            Err(e) => {
                lock(&self.cache).forget(key);
                if e.is_conflict() || e.is_not_found() {
                    tracing::debug!(pod = %key, error = %e, "binding no longer needed");
                } else {
                    self.metrics.attempt("error");
                    tracing::warn!(pod = %key, %node, error = %e, "binding failed; will retry");
                    self.queue.add_rate_limited(key.to_string());
                }
            }
        }
    }

    /// `PodScheduled=False, Unschedulable` on the pod and a FailedScheduling event.
    async fn mark_unschedulable(&self, pod: &Pod, message: &str) {
        let already = pod.condition("PodScheduled").is_some_and(|c| {
            c.status == "False" && c.reason == "Unschedulable" && c.message == message
        });
        self.recorder
            .warning(&object_ref(pod), "FailedScheduling", message.to_string());
        if already {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.metadata.namespace);
        let patch = serde_json::json!({"status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastProbeTime": null, "lastTransitionTime": api::meta::Time::now(),
        }]}});
        if let Err(e) = api
            .patch_status(&pod.metadata.name, &Patch::Strategic(&patch))
            .await
        {
            tracing::debug!(pod = %pod.metadata.name, error = %e, "failed to record unschedulable condition");
        }
    }
}

/// Run the scheduler until `shutdown`.
pub async fn run_scheduler(
    client: Client,
    name: &str,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let sched = Scheduler::new(client.clone(), name, metrics.clone());
    let pod_informer = Informer::new(Api::<Pod>::all(client.clone()), ListParams::default());
    let node_informer = Informer::new(Api::<Node>::all(client.clone()), ListParams::default());
    {
        let s = sched.clone();
        pod_informer.on_change(move |c| s.on_pod(c));
        let s = sched.clone();
        node_informer.on_change(move |c| s.on_node(c));
    }
    let pods = pod_informer.spawn(shutdown.clone());
    let nodes = node_informer.spawn(shutdown.clone());
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = async { pods.wait_ready().await; nodes.wait_ready().await } => {}
    }
    metrics.ready.store(true, Ordering::Relaxed);
    tracing::info!(
        nodes = nodes.len(),
        pods = pods.len(),
        "scheduler caches synced"
    );
    let worker = {
        let sched = sched.clone();
        tokio::spawn(async move {
            while let Some(key) = sched.queue.get().await {
                sched.schedule_one(&key, &pods).await;
                sched.queue.done(&key);
            }
        })
    };
    shutdown.cancelled().await;
    metrics.ready.store(false, Ordering::Relaxed);
    sched.queue.shut_down();
    let _ = worker.await;
}
