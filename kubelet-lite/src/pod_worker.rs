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

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::core::{ConfigMap, ContainerStateTerminated, ObjectReference, Pod};
use api::meta::{DeleteOptions, Preconditions, Time};
use client::runtime::events::object_ref;
use client::{Api, Patch};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backoff::{Backoff, go_duration};
use crate::cgroups;
use crate::context::Context;
use crate::env::{self, ConfigMaps, PodFacts};
use crate::logs::LogHandle;
use crate::prober::{self, Action, Kind, Probes};
use crate::registry::{ContainerEntry, PodEntry};
use crate::runtime::{ContainerSpec, Running, StopSignal};
use crate::state::{PodRecord, ProcRecord};
use crate::status::{self, ContainerView, Current, PodFactsForStatus};
use crate::volumes;

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
    ip: Option<Ipv4Addr>,
    start_time: Option<Time>,
    /// The pod reached Succeeded or Failed: nothing runs or is written any more.
    terminal: bool,
    delete_sent: bool,
    /// The worker is stopping (pod gone, kubelet stopping): exits are not restarts.
    stopping: bool,
    wake: Arc<Notify>,
    next_wake: Option<Instant>,
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
        let containers = pod
            .spec
            .containers
            .iter()
            .map(|c| {
                let mut k = Container {
                    name: c.name.clone(),
                    image: c.image.clone(),
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
                        id: a.running.id.clone(),
                    };
                    k.last_term = status.and_then(|s| s.last_state.terminated.clone());
                    k.probes = Some(Probes::new(c, a.running.started));
                    k.probe_target = prober::Target {
                        pod_ip: ctx
                            .ips()
                            .get(&pod.metadata.uid)
                            .map(|i| i.to_string())
                            .unwrap_or_default(),
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
        let ip = ctx.ips().get(&pod.metadata.uid);
        Worker {
            uid: pod.metadata.uid.clone(),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            start_time: old.start_time,
            pod,
            containers,
            ip,
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

    /// Record the exits of containers that stopped since the last look.
    fn reap_exits(&mut self) {
        let policy = self.policy();
        let restarts_allowed =
            !self.terminal && !self.stopping && self.pod.metadata.deletion_timestamp.is_none();
        let key = self.key();
        let mut changed = false;
        let mut oom_events = Vec::new();
        for c in &mut self.containers {
            let Some(exit) = c.running.as_ref().and_then(Running::exited) else {
                continue;
            };
            let Some(r) = c.running.take() else { continue };
            self.ctx.runtime.release(&r);
            let oom_killed = r.cgroup.as_ref().is_some_and(|cg| {
                let killed = cgroups::oom_kills(cg) > 0;
                cgroups::remove(cg);
                killed
            });
            let mut term = status::termination(
                exit.exit_code,
                exit.signal,
                Some(r.started_at),
                exit.finished_at,
                &r.id,
            );
            if oom_killed {
                term.reason = "OOMKilled".into();
            }
            tracing::info!(pod = %key, container = %c.name, pid = r.pid, exit_code = exit.exit_code,
                signal = exit.signal, oom_killed, "container exited");
            if oom_killed {
                oom_events.push(c.name.clone());
            }
            c.prev_term = c.last_term.take();
            c.last_term = Some(term);
            c.current = Current::Exited;
            c.last_log = Some(r.log.clone());
            c.probes = None;
            c.kill_at = None;
            if restarts_allowed && status::should_restart(&policy, exit.exit_code) {
                let ran_for = exit.finished.saturating_duration_since(r.started);
                let delay = c.backoff.exited(exit.finished, ran_for);
                tracing::info!(pod = %key, container = %c.name, delay = %go_duration(delay), "container will be restarted");
            }
            changed = true;
        }
        for name in oom_events {
            self.event_warning(
                Some(&name),
                "OOMKilled",
                format!("Container {name} was killed for using more memory than its limit"),
            );
        }
        if changed {
            self.save_state();
        }
    }

    fn any_running(&self) -> bool {
        self.containers.iter().any(|c| c.running.is_some())
    }

    fn signal_all(&self, sig: StopSignal) {
        for c in &self.containers {
            if let Some(r) = &c.running {
                self.ctx.runtime.signal(r, sig);
            }
        }
    }

    fn save_state(&self) {
        let rec = PodRecord {
            uid: self.uid.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            pod_ip: self.ip.map(|i| i.to_string()).unwrap_or_default(),
            containers: self
                .containers
                .iter()
                .filter_map(|c| {
                    let r = c.running.as_ref()?;
                    Some((
                        c.name.clone(),
                        ProcRecord {
                            pid: r.pid,
                            pgid: r.pgid,
                            start_ticks: r.start_ticks,
                            boot_id: self.ctx.boot_id.clone(),
                            restart_count: c.restart_count,
                            started_at: Some(r.started_at),
                            shim_dir: r
                                .shim
                                .as_ref()
                                .map(|s| s.dir.display().to_string())
                                .unwrap_or_default(),
                        },
                    ))
                })
                .collect(),
        };
        if let Err(e) = self.ctx.state.save(&rec) {
            tracing::warn!(pod = %self.key(), error = %e, "cannot write the pod's state file");
        }
    }

    /// Tell the logs endpoint about this pod.
    fn publish(&self) {
        let containers = self
            .containers
            .iter()
            .map(|c| {
                let log = c
                    .running
                    .as_ref()
                    .map(|r| r.log.clone())
                    .or_else(|| c.last_log.clone());
                let waiting_reason = match &c.current {
                    Current::Waiting { reason, .. } => reason.clone(),
                    _ => String::new(),
                };
                (
                    c.name.clone(),
                    ContainerEntry {
                        restart_count: c.restart_count,
                        log,
                        waiting_reason,
                    },
                )
            })
            .collect();
        self.ctx.registry.publish(
            &self.namespace,
            &self.name,
            PodEntry {
                uid: self.uid.clone(),
                containers,
            },
        );
    }

    /// One convergence step for a live pod.
    async fn sync(&mut self) {
        self.next_wake = None;
        self.reap_exits();
        if self.terminal {
            self.publish();
            return;
        }
        if self.ip.is_none() {
            let r = self.ctx.ips().allocate(&self.uid);
            match r {
                Ok(ip) => {
                    tracing::info!(pod = %self.key(), ip = %ip, "pod IP allocated");
                    self.ip = Some(ip);
                    self.save_state();
                }
                Err(e) => {
                    tracing::warn!(pod = %self.key(), error = %e, "cannot allocate a pod IP");
                    self.event_warning(None, "FailedCreatePodSandBox", e);
                    self.wake_at(Instant::now() + Duration::from_secs(5));
                    self.publish();
                    self.write_status(false).await;
                    return;
                }
            }
        }
        let sandbox = self.ctx.dirs.pod(&self.uid);
        if let Err(e) = std::fs::create_dir_all(&sandbox) {
            let msg = format!("cannot create the pod's sandbox {}: {e}", sandbox.display());
            tracing::warn!(pod = %self.key(), "{msg}");
            self.event_warning(None, "FailedCreatePodSandBox", msg);
            self.wake_at(Instant::now() + Duration::from_secs(5));
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

    /// Set up or refresh the pod's volumes when due (at start, then every `--sync-frequency`,
    /// and every 2 s while they fail): ConfigMap updates reach the files of running containers.
    async fn sync_volumes(&mut self, sandbox: &std::path::Path) {
        if self.pod.spec.volumes.is_empty() {
            return;
        }
        let now = Instant::now();
        let every = if self.volume_error.is_some() {
            Duration::from_secs(2)
        } else {
            self.ctx.sync_frequency
        };
        if let Some(at) = self.volumes_synced.map(|t| t + every)
            && now < at
        {
            self.wake_at(at);
            return;
        }
        let cm_api: Api<ConfigMap> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let mut cms = std::collections::BTreeMap::new();
        for name in volumes::referenced_config_maps(&self.pod) {
            match cm_api.get_opt(&name).await {
                Ok(v) => {
                    cms.insert(name, v);
                }
                Err(e) => {
                    tracing::warn!(pod = %self.key(), configmap = %name, error = %e, "cannot read a volume's ConfigMap");
                    self.volumes_synced = Some(now);
                    self.wake_at(now + Duration::from_secs(2));
                    return;
                }
            }
        }
        let mut error = None;
        for vol in &self.pod.spec.volumes {
            let dir = volumes::volume_dir(sandbox, &vol.name);
            let files = match volumes::desired_files(vol, &cms) {
                Ok(f) => f,
                Err(msg) => {
                    error.get_or_insert(msg);
                    continue;
                }
            };
            let res = if vol.config_map.is_some() {
                volumes::write_atomic(&dir, &files)
            } else {
                std::fs::create_dir_all(&dir).map(|_| false)
            };
            match res {
                Ok(true) if self.volumes_synced.is_some() => {
                    tracing::info!(pod = %self.key(), volume = %vol.name, "volume updated");
                }
                Ok(_) => {}
                Err(e) => {
                    error.get_or_insert(format!(
                        "MountVolume.SetUp failed for volume {:?} : {e}",
                        vol.name
                    ));
                }
            }
        }
        if let Some(msg) = &error
            && self.volume_error.as_ref() != Some(msg)
        {
            tracing::warn!(pod = %self.key(), %msg, "cannot set up volumes");
            self.event_warning(None, "FailedMount", msg.clone());
        }
        self.volume_error = error;
        self.volumes_synced = Some(now);
        let every = if self.volume_error.is_some() {
            Duration::from_secs(2)
        } else {
            self.ctx.sync_frequency
        };
        self.wake_at(now + every);
    }

    /// Run the probes that are due; act on what they say (readiness, or a restart).
    async fn run_probes(&mut self) {
        for i in 0..self.containers.len() {
            let now = Instant::now();
            let key = self.key();
            let c = &mut self.containers[i];
            let Some(running) = &c.running else { continue };
            if let Some(at) = c.kill_at {
                if now >= at {
                    tracing::info!(pod = %key, container = %c.name, "grace period over; killing");
                    self.ctx.runtime.signal(running, StopSignal::Kill);
                    c.kill_at = None;
                } else {
                    self.wake_at(at);
                }
                continue;
            }
            let Some(due) = c.probes.as_ref().map(|p| p.due(now)) else {
                continue;
            };
            let target = c.probe_target.clone();
            let name = c.name.clone();
            for (kind, probe) in due {
                let result = prober::check(&probe, &target).await;
                if let Err(msg) = &result {
                    tracing::debug!(pod = %self.key(), container = %name, probe = kind.title(), %msg, "probe failed");
                    self.event_warning(
                        Some(&name),
                        "Unhealthy",
                        format!("{} probe failed: {msg}", kind.title()),
                    );
                }
                let Some(p) = self.containers[i].probes.as_mut() else {
                    break;
                };
                match p.record(kind, result.is_ok(), Instant::now()) {
                    Action::None => {}
                    Action::Ready(ready) => {
                        tracing::info!(pod = %self.key(), container = %name, ready, "container readiness changed");
                    }
                    Action::Restart => {
                        self.kill_for_probe(i, kind, &probe);
                        break;
                    }
                }
            }
            if let Some(t) = self.containers[i]
                .probes
                .as_ref()
                .and_then(Probes::next_due)
            {
                self.wake_at(t);
            }
        }
    }

    /// A failed liveness or startup probe: SIGTERM now, SIGKILL after the grace period; the
    /// exit is then a restart like any other (restart policy, backoff).
    fn kill_for_probe(&mut self, i: usize, kind: Kind, probe: &api::core::Probe) {
        let name = self.containers[i].name.clone();
        let what = if kind == Kind::Startup {
            "startup"
        } else {
            "liveness"
        };
        tracing::info!(pod = %self.key(), container = %name, probe = what, "probe failed its threshold; killing the container");
        self.event_normal(
            Some(&name),
            "Killing",
            format!("Container {name} failed {what} probe, will be restarted"),
        );
        let grace = probe
            .termination_grace_period_seconds
            .or(self.pod.spec.termination_grace_period_seconds)
            .unwrap_or(DEFAULT_GRACE)
            .max(0) as u64;
        let at = Instant::now() + Duration::from_secs(grace);
        let c = &mut self.containers[i];
        if let Some(r) = &c.running {
            self.ctx.runtime.signal(r, StopSignal::Term);
        }
        if let Some(p) = c.probes.as_mut() {
            p.stop();
        }
        c.kill_at = Some(at);
        self.wake_at(at);
    }

    async fn sync_container(&mut self, i: usize) {
        let now = Instant::now();
        let policy = self.policy();
        let pod_label = format!("{}_{}({})", self.name, self.namespace, self.uid);
        let c = &mut self.containers[i];
        if c.running.is_some() {
            return;
        }
        let want = match &c.current {
            Current::Running { .. } => true,
            Current::Exited => c
                .last_term
                .as_ref()
                .is_none_or(|t| status::should_restart(&policy, t.exit_code)),
            Current::Waiting { reason, .. } => match reason.as_str() {
                "ContainerCreating" | "CrashLoopBackOff" => true,
                _ => c.retry_at.is_none_or(|t| now >= t),
            },
        };
        if !want {
            if let Some(t) = c.retry_at {
                self.wake_at(t);
            }
            return;
        }
        if c.backoff.in_backoff(now) {
            let delay = c.backoff.waiting(now).unwrap_or_default();
            let name = c.name.clone();
            c.set_waiting(
                "CrashLoopBackOff",
                format!(
                    "back-off {} restarting failed container={name} pod={pod_label}",
                    go_duration(delay)
                ),
            );
            let until = c.backoff.ready_at();
            let first_time = c.backoff_event_for != until;
            c.backoff_event_for = until;
            if first_time {
                tracing::info!(pod = %self.key(), container = %name, delay = %go_duration(delay), "back-off restarting failed container");
                self.event_warning(
                    Some(&name),
                    "BackOff",
                    format!("Back-off restarting failed container {name} in pod {pod_label}"),
                );
            }
            if let Some(t) = until {
                self.wake_at(t);
            }
            return;
        }
        self.start_container(i).await;
    }

    /// A container cannot be created (config error …): wait, and try again soon.
    fn container_error(&mut self, i: usize, reason: &str, message: String) {
        let base = self.ctx.restart_backoff_base;
        let key = self.key();
        let c = &mut self.containers[i];
        let name = c.name.clone();
        let first = !matches!(&c.current, Current::Waiting { reason: r, message: m } if r == reason && *m == message);
        c.set_waiting(reason, message.clone());
        // 1 s, 2 s, 4 s … up to the restart backoff base: quick to notice a fix.
        let delay = Duration::from_secs(1)
            .saturating_mul(1 << c.error_streak.min(10))
            .min(base.max(Duration::from_secs(1)));
        c.error_streak += 1;
        let at = Instant::now() + delay;
        c.retry_at = Some(at);
        self.wake_at(at);
        if first {
            tracing::warn!(pod = %key, container = %name, %reason, %message, "cannot create container");
        }
        self.event_warning(Some(&name), "Failed", format!("Error: {message}"));
    }

    async fn start_container(&mut self, i: usize) {
        let key = self.key();
        let name = self.containers[i].name.clone();
        let Some(spec) = self
            .pod
            .spec
            .containers
            .iter()
            .find(|c| c.name == name)
            .cloned()
        else {
            return;
        };
        // The ConfigMaps the environment refers to, straight from the API server.
        let mut cms = ConfigMaps::new();
        let cm_api: Api<ConfigMap> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        for cm in env::referenced_config_maps(&spec) {
            match cm_api.get_opt(&cm).await {
                Ok(v) => {
                    cms.insert(cm, v);
                }
                Err(e) => {
                    return self.container_error(
                        i,
                        "CreateContainerConfigError",
                        format!("failed to sync configmap cache: {e}"),
                    );
                }
            }
        }
        let facts = PodFacts {
            pod_ip: self.ip.map(|i| i.to_string()).unwrap_or_default(),
            host_ip: self.ctx.node_ip.clone(),
            node_cpu_milli: self.ctx.allocatable.cpu_milli,
            node_memory: self.ctx.allocatable.memory,
            node_ephemeral_storage: self.ctx.allocatable.ephemeral_storage,
        };
        let resolved = match env::resolve(&self.pod, &spec, &facts, &cms) {
            Ok(r) => r,
            Err(e) => return self.container_error(i, e.reason(), e.to_string()),
        };
        if !resolved.skipped.is_empty() {
            self.event_warning(
                Some(&name),
                "InvalidEnvironmentVariableNames",
                format!(
                    "Keys [{}] from the EnvFrom configMap were skipped since they are considered invalid environment variable names.",
                    resolved.skipped.join(", ")
                ),
            );
        }
        let argv = env::command_line(&spec, &resolved.env);
        if argv.is_empty() && self.ctx.runtime.needs_command() {
            return self.container_error(
                i,
                "CreateContainerError",
                "no command specified: kube-lite runs `command` + `args` on the host (there is no image entrypoint)".into(),
            );
        }
        let sandbox = self.ctx.dirs.pod(&self.uid);
        let working_dir = match crate::dirs::working_dir(&sandbox, &spec.working_dir) {
            Ok(w) => w,
            Err(e) => return self.container_error(i, "CreateContainerError", e),
        };
        let mounts = match volumes::mount(&sandbox, &spec) {
            Ok(m) => m,
            Err(e) => return self.container_error(i, "CreateContainerError", e),
        };
        let mut process_env = std::collections::BTreeMap::new();
        process_env.extend(mounts);
        process_env.insert("PATH".to_string(), self.ctx.path_env.clone());
        process_env.insert("HOME".to_string(), sandbox.display().to_string());
        process_env.insert("HOSTNAME".to_string(), self.name.clone());
        process_env.extend(resolved.env);

        let c = &mut self.containers[i];
        if c.ever_started {
            c.restart_count += 1;
        }
        c.ever_started = true;
        c.error_streak = 0;
        c.retry_at = None;
        let restart_count = c.restart_count;
        let image = c.image.clone();
        let run = ContainerSpec {
            pod_uid: self.uid.clone(),
            pod_key: key.clone(),
            container: name.clone(),
            argv,
            env: process_env.into_iter().collect(),
            working_dir,
            log_path: self.ctx.dirs.log_file(&self.uid, &name, restart_count),
            log_max_size: self.ctx.container_log_max_size,
            restart_count,
            cgroup: None,
        };
        self.event_normal(
            Some(&name),
            "Pulled",
            format!("Container image {image:?} already present on machine"),
        );
        let mut run = run;
        run.cgroup = self.memory_cgroup(&spec, &name, restart_count);
        let started = self.ctx.runtime.start(&run, self.wake.clone()).await;
        if started.is_err()
            && let Some(cg) = &run.cgroup
        {
            cgroups::remove(cg);
        }
        match started {
            Ok(r) => {
                tracing::info!(pod = %key, container = %name, pid = r.pid, restart_count,
                    argv = ?run.argv, "container started");
                self.event_normal(Some(&name), "Created", format!("Created container {name}"));
                self.event_normal(Some(&name), "Started", format!("Started container {name}"));
                let c = &mut self.containers[i];
                c.current = Current::Running {
                    started_at: r.started_at,
                    id: r.id.clone(),
                };
                c.probes = Some(Probes::new(&spec, r.started));
                c.probe_target = prober::Target {
                    pod_ip: self.ip.map(|i| i.to_string()).unwrap_or_default(),
                    ports: spec.ports.clone(),
                    env: run.env.clone(),
                    working_dir: run.working_dir.clone(),
                };
                if let Some(t) = c.probes.as_ref().and_then(Probes::next_due) {
                    self.wake_at(t);
                }
                let c = &mut self.containers[i];
                c.running = Some(r);
                self.save_state();
            }
            Err(msg) => {
                tracing::warn!(pod = %key, container = %name, error = %msg, "container failed to start");
                self.event_warning(Some(&name), "Failed", format!("Error: {msg}"));
                let policy = self.policy();
                let c = &mut self.containers[i];
                let now = Time::now();
                c.prev_term = c.last_term.take();
                c.last_term = Some(ContainerStateTerminated {
                    exit_code: 128,
                    reason: "StartError".into(),
                    message: msg,
                    started_at: Some(now),
                    finished_at: Some(now),
                    ..Default::default()
                });
                c.current = Current::Exited;
                if status::should_restart(&policy, 128) {
                    let at = Instant::now();
                    c.backoff.exited(at, Duration::ZERO);
                    let ready = c.backoff.ready_at().unwrap_or(at);
                    self.wake_at(ready);
                }
            }
        }
    }

    /// The memory cgroup for a container with a memory limit, where cgroups can be used; a
    /// Warning event where they cannot (say so rather than pretend).
    fn memory_cgroup(
        &self,
        spec: &api::core::Container,
        name: &str,
        restart_count: i32,
    ) -> Option<std::path::PathBuf> {
        let limit = spec.resources.limits.get("memory")?;
        if !self.ctx.runtime.needs_command() {
            return None; // the fake runtime runs nothing
        }
        let bytes = match limit.value() {
            Ok(b) if b > 0 => b,
            _ => return None,
        };
        let cgroup = format!("{}_{name}_{restart_count}", self.uid);
        match self.ctx.cgroups.create(&cgroup, bytes) {
            Ok(dir) => Some(dir),
            Err(reason) => {
                if restart_count == 0 {
                    self.event_warning(
                        Some(name),
                        "MemoryLimitNotEnforced",
                        format!(
                            "memory limit {} is not enforced: {reason} (see docs/process-runtime.md)",
                            limit.0
                        ),
                    );
                }
                None
            }
        }
    }

    /// Write the status if it differs from the stored one.
    async fn write_status(&mut self, terminating: bool) {
        if self.terminal {
            return;
        }
        let views: Vec<ContainerView> = self.containers.iter().map(Container::view).collect();
        let facts = PodFactsForStatus {
            pod_ip: self.ip.map(|i| i.to_string()).unwrap_or_default(),
            host_ip: self.ctx.node_ip.clone(),
            sandbox_ready: self.ip.is_some(),
            start_time: self.start_time,
            terminating,
        };
        let old = self.pod.status.clone();
        let new = status::pod_status(&self.pod, old.as_ref(), &views, &facts, Time::now());
        let old_v = serde_json::to_value(&old).unwrap_or(Value::Null);
        let new_v = serde_json::to_value(&new).unwrap_or(Value::Null);
        let Some(diff) = status::merge_patch(&old_v, &new_v) else {
            if status::is_terminal(&new.phase) {
                self.terminal = true;
            }
            return;
        };
        let patch = json!({
            "metadata": {"resourceVersion": self.pod.metadata.resource_version},
            "status": diff,
        });
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        match api.patch_status(&self.name, &Patch::Merge(&patch)).await {
            Ok(p) => {
                tracing::debug!(pod = %self.key(), phase = %new.phase, "status written");
                if old.as_ref().map(|o| o.phase.as_str()) != Some(new.phase.as_str()) {
                    tracing::info!(pod = %self.key(), phase = %new.phase, "pod phase changed");
                }
                self.observe(Arc::new(p));
                if status::is_terminal(&new.phase) {
                    self.terminal = true;
                }
            }
            Err(e) if e.is_conflict() => {
                // Someone else wrote the pod since we last saw it: read it and try again.
                tracing::debug!(pod = %self.key(), "status conflict; re-reading the pod");
                match api.get_opt(&self.name).await {
                    Ok(Some(p)) if p.metadata.uid == self.uid => {
                        self.pod = Arc::new(p);
                        self.wake_at(Instant::now());
                    }
                    Ok(_) => {} // gone or replaced: the watch will say so
                    Err(_) => self.wake_at(Instant::now() + Duration::from_secs(1)),
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                tracing::warn!(pod = %self.key(), error = %e, "cannot write pod status; retrying");
                self.wake_at(Instant::now() + Duration::from_secs(1));
            }
        }
    }

    fn grace_period(&self) -> Duration {
        let spec = self
            .pod
            .spec
            .termination_grace_period_seconds
            .unwrap_or(DEFAULT_GRACE);
        let deletion = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .unwrap_or(spec);
        Duration::from_secs(spec.min(deletion).max(0) as u64)
    }

    /// The pod is being deleted: stop its containers gracefully, then remove the object.
    async fn terminate(
        &mut self,
        updates: &mut watch::Receiver<PodUpdate>,
        shutdown: &CancellationToken,
    ) -> Flow {
        self.next_wake = None;
        self.reap_exits();
        let mut gone = false;
        if self.any_running() {
            let started = Instant::now();
            let mut deadline = started + self.grace_period();
            tracing::info!(pod = %self.key(), grace = ?self.grace_period(), "stopping the pod's containers");
            for c in &self.containers {
                if c.running.is_some() {
                    self.event_normal(
                        Some(&c.name),
                        "Killing",
                        format!("Stopping container {}", c.name),
                    );
                }
            }
            self.signal_all(StopSignal::Term);
            let mut killed_at: Option<Instant> = None;
            loop {
                self.reap_exits();
                if !self.any_running() {
                    break;
                }
                let now = Instant::now();
                if killed_at.is_none() && now >= deadline {
                    tracing::info!(pod = %self.key(), "grace period over; killing");
                    self.signal_all(StopSignal::Kill);
                    killed_at = Some(now);
                }
                if killed_at.is_some_and(|k| now >= k + KILL_WAIT) {
                    tracing::error!(pod = %self.key(), "processes still there after SIGKILL; giving up on them");
                    break;
                }
                let until = killed_at.map_or(deadline, |k| k + KILL_WAIT);
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep_until(until.into()) => {}
                    r = updates.changed() => {
                        let latest = updates.borrow_and_update().clone();
                        match latest {
                            PodUpdate::Gone => gone = true,
                            PodUpdate::Present(p) => {
                                self.observe(p);
                                deadline = deadline.min(started + self.grace_period());
                            }
                        }
                        if (gone || r.is_err()) && killed_at.is_none() {
                            self.signal_all(StopSignal::Kill);
                            killed_at = Some(Instant::now());
                        }
                    }
                    _ = shutdown.cancelled(), if killed_at.is_none() && deadline > Instant::now() + self.ctx.shutdown_grace => {
                        deadline = Instant::now() + self.ctx.shutdown_grace;
                    }
                }
            }
        }
        self.publish();
        if gone {
            return Flow::Gone;
        }
        if !self.delete_sent {
            self.write_status(true).await;
            let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
            let opts = DeleteOptions {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(self.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(&self.name, &opts).await {
                Ok(_) => {
                    tracing::info!(pod = %self.key(), "containers stopped; pod deleted");
                    self.delete_sent = true;
                }
                Err(e) if e.is_not_found() || e.is_conflict() => return Flow::Gone,
                Err(e) => {
                    tracing::warn!(pod = %self.key(), error = %e, "cannot delete the pod; retrying");
                    self.wake_at(Instant::now() + Duration::from_secs(1));
                }
            }
        }
        if shutdown.is_cancelled() {
            return Flow::Shutdown;
        }
        Flow::Continue
    }

    /// Wait until no container runs, or `until`.
    async fn wait_all_exited(&mut self, until: Instant) {
        loop {
            self.reap_exits();
            if !self.any_running() || Instant::now() >= until {
                return;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(until.into()) => {}
            }
        }
    }

    /// The pod is gone from the API server: kill everything now and clean up.
    async fn gone(&mut self) {
        self.stopping = true;
        self.reap_exits();
        if self.any_running() {
            tracing::info!(pod = %self.key(), "pod gone from the API server; killing its containers");
            self.signal_all(StopSignal::Kill);
            self.wait_all_exited(Instant::now() + KILL_WAIT).await;
        }
        if self.any_running() {
            tracing::error!(pod = %self.key(), "containers did not exit after SIGKILL");
            self.save_state();
            return;
        }
        let ip = self.ctx.ips().release(&self.uid);
        self.ctx.state.remove(&self.uid);
        self.ctx
            .registry
            .remove(&self.namespace, &self.name, &self.uid);
        let dir = self.ctx.dirs.pod(&self.uid);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(pod = %self.key(), dir = %dir.display(), error = %e, "cannot remove the pod's sandbox");
        }
        tracing::info!(pod = %self.key(), ip = ?ip, "pod cleaned up");
    }

    /// The kubelet stops: stop the processes, keep the state (IP) for the next start.
    async fn shutdown(&mut self) {
        self.stopping = true;
        self.reap_exits();
        if self.any_running() {
            tracing::info!(pod = %self.key(), "kubelet stopping; stopping the pod's containers");
            self.signal_all(StopSignal::Term);
            self.wait_all_exited(Instant::now() + self.ctx.shutdown_grace)
                .await;
            if self.any_running() {
                self.signal_all(StopSignal::Kill);
                self.wait_all_exited(Instant::now() + KILL_WAIT).await;
            }
        }
        self.save_state();
    }
}
