//! One pod worker per pod (by uid): a task that converges the real processes to the pod
//! object and reports what it sees. It wakes on a new version of the pod, on a container exit,
//! on a timer (backoff over, retry due) and on shutdown, and each time runs one `sync`:
//!
//! 1. reap exits (record the termination, decide about a restart);
//! 2. pod being deleted → stop the containers (SIGTERM, grace, SIGKILL), write the final
//!    status, delete the pod object (grace 0, uid precondition);
//! 3. otherwise give the pod its IP and sandbox, start every container that should run (env
//!    resolved, `$(VAR)`s expanded) unless it is in crash-loop backoff;
//! 4. write the status if it changed (JSON merge patch with a resourceVersion precondition).
//!
//! Gone from the API → kill at once, free the IP, remove the sandbox and logs.
//! Kubelet shutdown → stop the processes (short grace), keep the state for the next start.
//!
//! # Layout
//! One `Worker`, its methods grouped by step: this file (state, the wake-up loop, `sync`),
//! `exits.rs` (step 1), `stop.rs` (step 2, and pod gone / kubelet shutdown), `sandbox.rs`,
//! `volume_sync.rs`, `images.rs` and `start.rs` (step 3), `probes.rs`, `report.rs` (step 4:
//! status, state file, logs registry).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::core::{
    ConfigMap, Container as ApiContainer, ContainerStateTerminated, ObjectReference, Pod,
};
use api::meta::{DeleteOptions, Preconditions, Time};
use client::runtime::events::object_ref;
use client::{Api, Patch};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use api::duration::format as go_duration;

use crate::backoff::Backoff;
use crate::cgroups;
use crate::context::Context;
use crate::env::{self, ConfigMaps, PodFacts};
use crate::logs::LogHandle;
use crate::prober::{self, Action, Kind, Probes};
use crate::registry::{ContainerEntry, PodEntry};
use crate::runtime::{ContainerSpec, ExecTarget, Running, Sandbox, StartRequest};
use crate::state::{PodRecord, ProcRecord};
use crate::status::{self, ContainerView, Current, PodFactsForStatus};
use crate::volumes;

mod exits;
mod hooks;
mod images;
mod probes;
mod report;
mod sandbox;
mod start;
mod stop;
mod volume_sync;

/// What the pod manager tells a worker.
#[derive(Clone, Debug)]
pub enum PodUpdate {
    /// The latest version of the pod.
    Present(Arc<Pod>),
    /// The pod is gone from the API server.
    Gone,
}

/// Default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE: i64 = 30;
/// How long to wait for processes to go after SIGKILL before giving up on them.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Start a worker for `pod`. `restored`: what an earlier kubelet recorded for it.
pub fn spawn(
    ctx: Arc<Context>,
    pod: Arc<Pod>,
    shutdown: CancellationToken,
) -> (watch::Sender<PodUpdate>, JoinHandle<()>) {
    let (tx, rx) = watch::channel(PodUpdate::Present(pod.clone()));
    let worker = Worker::new(ctx, pod);
    let handle = tokio::spawn(worker.run(rx, shutdown));
    (tx, handle)
}

struct Container {
    name: String,
    image: String,
    /// The image as the runtime resolved it (`imageID`), once known.
    image_id: String,
    /// The last failed pull, when the next may be tried, and the delay that led there.
    pull_error: Option<String>,
    pull_retry_at: Option<Instant>,
    pull_delay: Duration,
    restart_count: i32,
    /// Started at least once (by this kubelet or, per the pod's status, an earlier one).
    ever_started: bool,
    running: Option<Running>,
    current: Current,
    last_term: Option<ContainerStateTerminated>,
    prev_term: Option<ContainerStateTerminated>,
    backoff: Backoff,
    /// Waiting on an error (config, create): when to try again, and how many in a row.
    retry_at: Option<Instant>,
    error_streak: u32,
    /// The backoff deadline a BackOff event was already recorded for.
    backoff_event_for: Option<Instant>,
    /// The log of the last run, for the logs endpoint once it has exited.
    last_log: Option<Arc<LogHandle>>,
    /// The running container's probes, and where they run.
    probes: Option<Probes>,
    probe_target: prober::Target,
    /// Killed for failing a probe: when SIGTERM turns into SIGKILL.
    kill_at: Option<Instant>,
}

impl Container {
    fn view(&self) -> ContainerView {
        ContainerView {
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            restart_count: self.restart_count,
            current: self.current.clone(),
            last_term: self.last_term.clone(),
            prev_term: self.prev_term.clone(),
            ready: self.probes.as_ref().is_none_or(Probes::ready),
            started: self.probes.as_ref().is_none_or(Probes::started),
        }
    }

    fn set_waiting(&mut self, reason: &str, message: String) {
        self.current = Current::Waiting {
            reason: reason.into(),
            message,
        };
    }
}

enum Flow {
    Continue,
    Gone,
    Shutdown,
}

struct Worker {
    ctx: Arc<Context>,
    uid: String,
    namespace: String,
    name: String,
    pod: Arc<Pod>,
    containers: Vec<Container>,
    ip: Option<IpAddr>,
    /// The pod's sandbox, with a runtime that makes them (CRI).
    sandbox: Option<Sandbox>,
    /// Sandboxes made for this pod so far (a new one gets the next attempt number).
    sandbox_attempts: u32,
    start_time: Option<Time>,
    /// The pod reached Succeeded or Failed: nothing runs or is written any more.
    terminal: bool,
    delete_sent: bool,
    /// The worker is stopping (pod gone, kubelet stopping): exits are not restarts.
    stopping: bool,
    wake: Arc<Notify>,
    next_wake: Option<Instant>,
    /// Failed sandbox creations in a row (the retry delay doubles).
    sandbox_failures: u32,
    /// The sandbox of a finished pod was stopped.
    sandbox_released: bool,
    /// Volumes: when they were last refreshed, and why they could not be set up.
    volumes_synced: Option<Instant>,
    volume_error: Option<String>,
}

fn rv(p: &Pod) -> u64 {
    p.metadata.resource_version_u64()
}

impl Worker {
    fn new(ctx: Arc<Context>, pod: Arc<Pod>) -> Self {
        let old = pod.status.clone().unwrap_or_default();
        let terminal = status::is_terminal(&old.phase);
        let base = ctx.restart_backoff_base;
        let max = ctx.restart_backoff_max;
        let mut adopted = ctx.take_adopted(&pod.metadata.uid);
        let sandbox = ctx.take_adopted_sandbox(&pod.metadata.uid);
        let containers = pod
            .spec
            .containers
            .iter()
            .map(|c| {
                let mut k = Container {
                    name: c.name.clone(),
                    image: c.image.clone(),
                    image_id: String::new(),
                    pull_error: None,
                    pull_retry_at: None,
                    pull_delay: Duration::ZERO,
                    restart_count: 0,
                    ever_started: false,
                    running: None,
                    current: Current::Waiting {
                        reason: "ContainerCreating".into(),
                        message: String::new(),
                    },
                    last_term: None,
                    prev_term: None,
                    backoff: Backoff::new(base, max),
                    retry_at: None,
                    error_streak: 0,
                    backoff_event_for: None,
                    last_log: None,
                    probes: None,
                    probe_target: prober::Target::default(),
                    kill_at: None,
                };
                let status = old.container_statuses.iter().find(|s| s.name == c.name);
                // Still running under its shim: carry on with it where the last kubelet was.
                if let Some(a) = adopted.remove(&c.name) {
                    k.restart_count = a.record.restart_count;
                    k.ever_started = true;
                    k.current = Current::Running {
                        started_at: a.running.started_at,
                        id: ctx.runtime.status_id(&a.running.id),
                    };
                    k.image_id = status.map(|s| s.image_id.clone()).unwrap_or_default();
                    k.last_term = status.and_then(|s| s.last_state.terminated.clone());
                    k.probes = Some(Probes::new(c, a.running.started));
                    k.probe_target = prober::Target {
                        container_id: a.running.id.clone(),
                        pod_ip: match &sandbox {
                            Some(s) => s.ip.clone(),
                            None => ctx
                                .ips()
                                .get(&pod.metadata.uid)
                                .map(|i| i.to_string())
                                .unwrap_or_default(),
                        },
                        ports: c.ports.clone(),
                        env: a.spec.env.clone(),
                        working_dir: a.spec.working_dir.clone(),
                    };
                    k.running = Some(a.running);
                    return k;
                }
                // A pod an earlier kubelet ran: carry its history on (no shim held its
                // processes, so a running container ended, as after a node reboot).
                if let Some(s) = status {
                    k.restart_count = s.restart_count;
                    k.ever_started = !s.container_id.is_empty();
                    if let Some(r) = &s.state.running {
                        k.last_term = Some(ContainerStateTerminated {
                            exit_code: 255,
                            reason: "Unknown".into(),
                            message:
                                "The container could not be located when the pod was terminated"
                                    .into(),
                            started_at: r.started_at,
                            finished_at: Some(Time::now()),
                            container_id: s.container_id.clone(),
                            ..Default::default()
                        });
                    } else if let Some(t) = &s.state.terminated {
                        k.last_term = Some(t.clone());
                        k.prev_term = s.last_state.terminated.clone();
                        k.current = Current::Exited;
                    } else if let Some(t) = &s.last_state.terminated {
                        k.last_term = Some(t.clone());
                    }
                }
                k
            })
            .collect();
        let ip = match &sandbox {
            Some(s) => s.ip.parse().ok(),
            None => ctx.ips().get(&pod.metadata.uid).map(IpAddr::V4),
        };
        Worker {
            uid: pod.metadata.uid.clone(),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            start_time: old.start_time,
            pod,
            containers,
            ip,
            sandbox_attempts: sandbox.as_ref().map_or(0, |s| s.attempt + 1),
            sandbox_failures: 0,
            sandbox_released: false,
            sandbox,
            terminal,
            delete_sent: false,
            stopping: false,
            wake: Arc::new(Notify::new()),
            next_wake: None,
            volumes_synced: None,
            volume_error: None,
            ctx,
        }
    }

    async fn run(mut self, mut updates: watch::Receiver<PodUpdate>, shutdown: CancellationToken) {
        tracing::info!(pod = %self.key(), uid = %self.uid, "pod worker started");
        for r in self.containers.iter().filter_map(|c| c.running.as_ref()) {
            // Adopted containers were attached before this worker existed: wake it on exit.
            let mut exit = r.exit.clone();
            let wake = self.wake.clone();
            tokio::spawn(async move {
                let _ = exit.wait_for(|e| e.is_some()).await;
                wake.notify_one();
            });
        }
        if !self.pod.spec.init_containers.is_empty() {
            self.event_warning(
                None,
                "FailedInitContainers",
                "init containers are not supported by kube-lite yet; they are skipped".into(),
            );
        }
        loop {
            let update = updates.borrow_and_update().clone();
            match update {
                PodUpdate::Gone => {
                    self.gone().await;
                    return;
                }
                PodUpdate::Present(p) => self.observe(p),
            }
            if shutdown.is_cancelled() {
                self.shutdown().await;
                return;
            }
            if self.pod.metadata.deletion_timestamp.is_some() {
                match self.terminate(&mut updates, &shutdown).await {
                    Flow::Continue => {}
                    Flow::Gone => {
                        self.gone().await;
                        return;
                    }
                    Flow::Shutdown => {
                        self.shutdown().await;
                        return;
                    }
                }
            } else {
                self.sync().await;
            }
            let next = self.next_wake;
            let sleep = async move {
                match next {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => {}
                r = updates.changed() => {
                    if r.is_err() {
                        // The pod manager is gone: nobody can tell us about this pod any more.
                        self.shutdown().await;
                        return;
                    }
                }
                _ = self.wake.notified() => {}
                _ = sleep => {}
            }
        }
    }

    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Take a newer version of the pod (never an older one: our own writes may be ahead of
    /// the watch).
    fn observe(&mut self, p: Arc<Pod>) {
        if p.metadata.uid == self.uid && rv(&p) >= rv(&self.pod) {
            self.pod = p;
        }
    }

    fn obj_ref(&self, container: Option<&str>) -> ObjectReference {
        let mut r = object_ref(&*self.pod);
        if let Some(c) = container {
            r.field_path = format!("spec.containers{{{c}}}");
        }
        r
    }

    fn event_normal(&self, container: Option<&str>, reason: &str, message: String) {
        self.ctx
            .recorder
            .normal(&self.obj_ref(container), reason, message);
    }

    fn event_warning(&self, container: Option<&str>, reason: &str, message: String) {
        self.ctx
            .recorder
            .warning(&self.obj_ref(container), reason, message);
    }

    fn wake_at(&mut self, t: Instant) {
        self.next_wake = Some(self.next_wake.map_or(t, |n| n.min(t)));
    }

    fn policy(&self) -> String {
        self.pod.spec.restart_policy.clone()
    }

    fn any_running(&self) -> bool {
        self.containers.iter().any(|c| c.running.is_some())
    }

    /// Stop every running container: ask, and kill after `grace` (zero: kill now).
    fn stop_all(&self, grace: Duration) {
        for c in &self.containers {
            if let Some(r) = &c.running {
                self.ctx.runtime.stop(r, grace);
            }
        }
    }

    /// One convergence step for a live pod.
    async fn sync(&mut self) {
        self.next_wake = None;
        self.reap_exits();
        if self.terminal {
            // Nothing runs in a finished pod any more: its sandbox gives its network back (the
            // object, logs and sandbox record stay until the pod is deleted).
            if !self.sandbox_released && !self.any_running() {
                self.stop_sandbox().await;
                self.sandbox_released = true;
            }
            self.publish();
            return;
        }
        let sandbox = self.ctx.dirs.pod(&self.uid);
        if let Err(e) = std::fs::create_dir_all(&sandbox) {
            let msg = format!("cannot create the pod's sandbox {}: {e}", sandbox.display());
            tracing::warn!(pod = %self.key(), "{msg}");
            self.event_warning(None, "FailedCreatePodSandBox", msg);
            self.wake_at(Instant::now() + Duration::from_secs(5));
            return;
        }
        if !self.ensure_sandbox().await {
            self.publish();
            self.write_status(false).await;
            return;
        }
        if self.start_time.is_none() {
            self.start_time = Some(Time::now());
        }
        self.sync_volumes(&sandbox).await;
        if let Some(msg) = self.volume_error.clone() {
            // Containers wait in ContainerCreating until their volumes can be set up.
            for c in self.containers.iter_mut().filter(|c| c.running.is_none()) {
                if !c.ever_started {
                    c.set_waiting("ContainerCreating", String::new());
                }
            }
            tracing::debug!(pod = %self.key(), %msg, "volumes not ready");
            self.run_probes().await;
            self.publish();
            self.write_status(false).await;
            return;
        }
        for i in 0..self.containers.len() {
            self.sync_container(i).await;
        }
        self.run_probes().await;
        self.publish();
        self.write_status(false).await;
    }
}
