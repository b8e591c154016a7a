//! The CRI runtime (`--runtime cri`): pods run as real containers in a container runtime
//! (containerd, CRI-O) that kubelet-lite drives through the Kubernetes Container Runtime
//! Interface, the gRPC API the real kubelet uses. One pod is one sandbox (a pause container
//! holding the pod's network namespace, with its IP from CNI); each container is created in it
//! from its image, started, stopped with the grace period, and its exit noticed by relisting
//! (the kubelet's PLEG). Logs are the runtime's CRI log files, in the layout kubelet-lite's log
//! server reads. Sandboxes and containers carry the kubelet's labels (and the node's), so a
//! restarted kubelet finds and re-adopts them.
//!
//! # Layout
//! - this file: [`CriRuntime`], the [`Runtime`] implementation; the relist loop.
//! - [`config`]: pod and container → CRI configs (pure).
//! - [`cni`]: the node's CNI conflist.
//! - [`exec`]: `kubectl exec` through the runtime's streaming server.

pub mod cni;
pub mod config;
pub mod exec;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use api::Pod;
use api::meta::Time;
use cri::v1;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::{
    BoxFuture, ContainerSpec, Discovered, ExecIo, ExecOutput, ExecRequest, ExecTarget, ExitInfo,
    ImageReady, Recovered, Running, Runtime, Sandbox, StartRequest, StopSignal,
};
use crate::dirs::Dirs;
use crate::logs::{LogHandle, Progress};
use crate::state::ProcRecord;
use config::{
    LABEL_CONTAINER_NAME, LABEL_NODE, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
};

/// How a CRI node is set up.
#[derive(Clone, Debug)]
pub struct CriConfig {
    /// `--container-runtime-endpoint` (`unix:///run/containerd/containerd.sock`).
    pub endpoint: String,
    pub node: config::NodeSettings,
    /// The node's memory, for the OOM score of Burstable pods.
    pub node_memory: i64,
    pub dirs: Dirs,
    /// Where to write the node's CNI config (`--cni-conf-dir`); see [`CriRuntime::install_network`].
    pub cni_conf_dir: Option<PathBuf>,
    /// How often containers are relisted to notice exits (the kubelet's PLEG relists every
    /// second).
    pub relist_period: Duration,
    /// How long to wait for the runtime to answer at start-up.
    pub connect_timeout: Duration,
    /// Rotate a container's log at this size (`--container-log-max-size`).
    pub log_max_size: u64,
}

/// A container whose exit the relist loop waits for.
struct Tracked {
    exit: watch::Sender<Option<ExitInfo>>,
    wake: Arc<Notify>,
    log: Arc<LogHandle>,
    /// The container's sandbox, and whether its worker was told the sandbox is gone.
    sandbox: String,
    sandbox_gone: bool,
}

struct Inner {
    client: cri::Client,
    cfg: CriConfig,
    /// `containerd://1.6.20`.
    version: String,
    /// `containerd`: the scheme of container ids in pod status.
    name: String,
    tracked: Mutex<HashMap<String, Tracked>>,
    /// Wakes the relist loop early (a container was just stopped).
    relist_now: Notify,
}

pub struct CriRuntime {
    inner: Arc<Inner>,
}

/// Sandbox and pull calls may take a while (a first pull of the pause image, CNI set-up).
const SLOW_CALL: Duration = Duration::from_secs(240);

fn err(s: cri::Status) -> String {
    cri::describe(&s)
}

fn time_of(nanos: i64) -> Option<Time> {
    (nanos > 0).then(|| Time(chrono::DateTime::from_timestamp_nanos(nanos)))
}

fn instant_of(t: Time) -> Instant {
    let ago = (chrono::Utc::now() - t.0).to_std().unwrap_or_default();
    Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
}

fn label_filter(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl CriRuntime {
    /// Connect to the runtime (waiting up to `connect_timeout` for it to answer) and start the
    /// relist loop (it ends with `shutdown`). The pod network comes with
    /// [`CriRuntime::install_network`], once the node's pod CIDR is known.
    pub async fn connect(
        cfg: CriConfig,
        shutdown: CancellationToken,
    ) -> Result<CriRuntime, String> {
        let client = cri::Client::new(&cfg.endpoint)?;
        let deadline = Instant::now() + cfg.connect_timeout;
        let version = loop {
            match client.version().await {
                Ok(v) => break v,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(endpoint = %cfg.endpoint, error = %err(e), "container runtime not answering yet");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    return Err(format!(
                        "cannot reach the container runtime at {}: {}",
                        cfg.endpoint,
                        err(e)
                    ));
                }
            }
        };
        let name = version.runtime_name.clone();
        let inner = Arc::new(Inner {
            version: format!("{}://{}", version.runtime_name, version.runtime_version),
            name,
            client,
            cfg,
            tracked: Mutex::new(HashMap::new()),
            relist_now: Notify::new(),
        });
        tracing::info!(endpoint = %inner.cfg.endpoint, runtime = %inner.version,
            api = %version.runtime_api_version, "connected to the container runtime");
        tokio::spawn(relist_loop(Arc::downgrade(&inner), shutdown));
        Ok(CriRuntime { inner })
    }

    pub fn client(&self) -> &cri::Client {
        &self.inner.client
    }

    /// Write the node's CNI config for pod CIDR `cidr` into `--cni-conf-dir` (nothing without
    /// one: the network is someone else's then). Until it is there, the runtime reports its
    /// network not ready, and so does the node.
    pub fn install_network(&self, cidr: &str) -> Result<(), String> {
        let cfg = &self.inner.cfg;
        let Some(dir) = &cfg.cni_conf_dir else {
            return Ok(());
        };
        let bridge = cri::cni::bridge_name(&cfg.node.node_name);
        match cri::cni::remove_stale_bridge(&bridge, cidr) {
            Ok(true) => {
                tracing::warn!(%bridge, %cidr, "removed a bridge left with another node range")
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(%bridge, error = %e, "cannot remove a stale bridge"),
        }
        let ipam = cfg.dirs.root().join("cni-ipam");
        let path = cni::install(dir, &cfg.node.node_name, cidr, &ipam)
            .map_err(|e| format!("cannot install the node's CNI config: {e}"))?;
        tracing::info!(path = %path.display(), %cidr, bridge = %cri::cni::bridge_name(&cfg.node.node_name), "CNI config installed");
        Ok(())
    }
}

impl Inner {
    fn log_dir(&self, uid: &str) -> PathBuf {
        self.cfg.dirs.pod(uid).join("logs")
    }

    fn tracked(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tracked>> {
        self.tracked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follow `id` until it exits: a [`Running`] whose exit the relist loop sets.
    fn track(
        &self,
        id: &str,
        sandbox: &str,
        started_at: Time,
        log_path: &Path,
        wake: Arc<Notify>,
    ) -> Running {
        let (tx, rx) = watch::channel(None);
        let bytes = std::fs::metadata(log_path).map(|m| m.len()).unwrap_or(0);
        let log = LogHandle::mirror(log_path.to_path_buf(), bytes);
        self.tracked().insert(
            id.to_string(),
            Tracked {
                exit: tx,
                wake,
                log: log.clone(),
                sandbox: sandbox.to_string(),
                sandbox_gone: false,
            },
        );
        Running {
            id: id.to_string(),
            pid: 0,
            pgid: 0,
            start_ticks: 0,
            started: instant_of(started_at),
            started_at,
            exit: rx,
            log,
            reaped: Arc::new(std::sync::Mutex::new(false)),
            shim: None,
            cgroup: None,
        }
    }

    async fn container_status(&self, id: &str) -> Result<v1::ContainerStatus, cri::Status> {
        let r = self
            .client
            .runtime()
            .container_status(self.client.req(v1::ContainerStatusRequest {
                container_id: id.to_string(),
                verbose: false,
            }))
            .await?;
        Ok(r.into_inner().status.unwrap_or_default())
    }

    async fn sandbox_status(&self, id: &str) -> Result<v1::PodSandboxStatus, cri::Status> {
        let r = self
            .client
            .runtime()
            .pod_sandbox_status(self.client.req(v1::PodSandboxStatusRequest {
                pod_sandbox_id: id.to_string(),
                verbose: false,
            }))
            .await?;
        Ok(r.into_inner().status.unwrap_or_default())
    }

    /// This node's sandboxes (a runtime may hold other nodes' too).
    async fn list_sandboxes(&self) -> Result<Vec<v1::PodSandbox>, cri::Status> {
        let r = self
            .client
            .runtime()
            .list_pod_sandbox(self.client.req(v1::ListPodSandboxRequest {
                filter: Some(v1::PodSandboxFilter {
                    label_selector: label_filter(&[(LABEL_NODE, &self.cfg.node.node_name)]),
                    ..Default::default()
                }),
            }))
            .await?;
        Ok(r.into_inner().items)
    }

    /// The exit of a container, from its status (`None`: it is not exited).
    async fn exit_of(&self, id: &str) -> Result<Option<ExitInfo>, String> {
        let s = match self.container_status(id).await {
            Ok(s) => s,
            Err(e) if e.code() == cri::Code::NotFound => {
                return Ok(Some(ExitInfo {
                    exit_code: 255,
                    signal: 0,
                    finished_at: Time::now(),
                    finished: Instant::now(),
                    reason: Some("ContainerStatusUnknown".into()),
                }));
            }
            Err(e) => return Err(err(e)),
        };
        if s.state != v1::ContainerState::ContainerExited as i32 {
            return Ok(None);
        }
        Ok(Some(exit_info(&s)))
    }

    /// A tracked container has exited: say so to its worker.
    fn finish(&self, id: &str, info: ExitInfo) {
        let Some(t) = self.tracked().remove(id) else {
            return;
        };
        let mut p = *t.log.subscribe().borrow();
        p.closed = true;
        if let Ok(m) = std::fs::metadata(&t.log.path) {
            p.bytes = p.bytes.max(m.len());
        }
        t.log.set_progress(p);
        t.exit.send_replace(Some(info));
        t.wake.notify_one();
    }

    /// Check the exits of every tracked container once; keep their logs' progress current.
    async fn relist(&self, list: bool) {
        let ids: Vec<String> = self.tracked().keys().cloned().collect();
        if ids.is_empty() {
            return;
        }
        if list {
            let filter = v1::ContainerFilter {
                label_selector: label_filter(&[(LABEL_NODE, &self.cfg.node.node_name)]),
                ..Default::default()
            };
            let listed = self
                .client
                .runtime()
                .list_containers(self.client.req(v1::ListContainersRequest {
                    filter: Some(filter),
                }))
                .await;
            match listed {
                Ok(r) => {
                    let states: HashMap<String, i32> = r
                        .into_inner()
                        .containers
                        .into_iter()
                        .map(|c| (c.id, c.state))
                        .collect();
                    for id in &ids {
                        let exited = states
                            .get(id)
                            .is_none_or(|s| *s == v1::ContainerState::ContainerExited as i32);
                        if !exited {
                            continue;
                        }
                        match self.exit_of(id).await {
                            Ok(Some(info)) => self.finish(id, info),
                            Ok(None) => {}
                            Err(e) => {
                                tracing::debug!(container = %id, error = %e, "cannot read a container's status")
                            }
                        }
                    }
                }
                Err(e) => {
                    // The runtime is down or restarting: containers keep running in their
                    // shims; the node's Ready condition says so (see `health`).
                    tracing::debug!(error = %err(e), "cannot list containers");
                }
            }
            self.notice_dead_sandboxes().await;
        }
        self.update_logs();
    }

    /// A sandbox that is no longer ready (its pause container died) while containers run in
    /// it: wake their workers, which make the pod a new sandbox ("SandboxChanged").
    async fn notice_dead_sandboxes(&self) {
        let Ok(items) = self.list_sandboxes().await else {
            return;
        };
        let ready: std::collections::HashSet<String> = items
            .into_iter()
            .filter(|s| s.state == v1::PodSandboxState::SandboxReady as i32)
            .map(|s| s.id)
            .collect();
        for t in self.tracked().values_mut() {
            if !t.sandbox_gone && !ready.contains(&t.sandbox) {
                t.sandbox_gone = true;
                t.wake.notify_one();
            }
        }
    }

    /// Move each running container's log progress on (followers of `kubectl logs -f` wait on
    /// it); rotate a log that grew past the maximum (the runtime reopens it).
    fn update_logs(&self) {
        let mut rotate = Vec::new();
        for (id, t) in self.tracked().iter() {
            let Ok(m) = std::fs::metadata(&t.log.path) else {
                continue;
            };
            let cur = *t.log.subscribe().borrow();
            if m.len() > self.cfg.log_max_size && self.cfg.log_max_size > 0 {
                rotate.push((id.clone(), t.log.clone()));
            } else if m.len() != cur.bytes {
                t.log.set_progress(Progress {
                    bytes: m.len(),
                    ..cur
                });
            }
        }
        for (id, log) in rotate {
            let rotated = crate::logs::rotated_path(&log.path);
            if std::fs::rename(&log.path, &rotated).is_err() {
                continue;
            }
            let cur = *log.subscribe().borrow();
            log.set_progress(Progress {
                bytes: 0,
                closed: false,
                generation: cur.generation + 1,
            });
            let client = self.client.clone();
            tokio::spawn(async move {
                let r = client
                    .runtime()
                    .reopen_container_log(client.req(v1::ReopenContainerLogRequest {
                        container_id: id.clone(),
                    }))
                    .await;
                if let Err(e) = r {
                    tracing::warn!(container = %id, error = %err(e), "cannot reopen a rotated container log");
                }
            });
        }
    }

    async fn stop_container(&self, id: &str, grace: Duration) {
        let timeout = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
        let r = self
            .client
            .runtime()
            .stop_container(self.client.req_within(
                v1::StopContainerRequest {
                    container_id: id.to_string(),
                    timeout,
                },
                grace + Duration::from_secs(30),
            ))
            .await;
        match r {
            Ok(_) => {}
            Err(e) if e.code() == cri::Code::NotFound => {}
            Err(e) => tracing::warn!(container = %id, error = %err(e), "cannot stop a container"),
        }
        self.relist_now.notify_one();
    }

    async fn remove_container(&self, id: &str) {
        let r = self
            .client
            .runtime()
            .remove_container(self.client.req(v1::RemoveContainerRequest {
                container_id: id.to_string(),
            }))
            .await;
        if let Err(e) = r
            && e.code() != cri::Code::NotFound
        {
            tracing::warn!(container = %id, error = %err(e), "cannot remove a container");
        }
    }

    async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<v1::Container>, String> {
        let r = self
            .client
            .runtime()
            .list_containers(self.client.req(v1::ListContainersRequest {
                filter: Some(v1::ContainerFilter {
                    label_selector: label_filter(labels),
                    ..Default::default()
                }),
            }))
            .await
            .map_err(err)?;
        Ok(r.into_inner().containers)
    }

    async fn image_ready(&self, image: &str) -> Result<Option<ImageReady>, String> {
        let r = self
            .client
            .image()
            .image_status(self.client.req(v1::ImageStatusRequest {
                image: Some(v1::ImageSpec {
                    image: image.to_string(),
                    ..Default::default()
                }),
                verbose: false,
            }))
            .await
            .map_err(err)?;
        Ok(r.into_inner().image.map(|i| ImageReady {
            image_id: i.repo_digests.first().cloned().unwrap_or(i.id.clone()),
            image_ref: i.id,
            pulled_in: None,
        }))
    }
}

/// A container's exit, from its CRI status.
fn exit_info(s: &v1::ContainerStatus) -> ExitInfo {
    let finished_at = time_of(s.finished_at).unwrap_or_else(Time::now);
    ExitInfo {
        exit_code: s.exit_code,
        signal: if (129..160).contains(&s.exit_code) {
            s.exit_code - 128
        } else {
            0
        },
        finished: instant_of(finished_at),
        finished_at,
        reason: (!s.reason.is_empty()).then(|| s.reason.clone()),
    }
}

/// Relist every `relist_period`, and at once when asked; watch logs four times as often.
async fn relist_loop(inner: Weak<Inner>, shutdown: CancellationToken) {
    let period = match inner.upgrade() {
        Some(i) => i.cfg.relist_period,
        None => return,
    };
    let tick = (period / 4).max(Duration::from_millis(50));
    let mut last_list = Instant::now();
    loop {
        let Some(i) = inner.upgrade() else { return };
        let woken = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = i.relist_now.notified() => true,
            _ = tokio::time::sleep(tick) => false,
        };
        let list = woken || last_list.elapsed() >= period;
        if list {
            last_list = Instant::now();
        }
        i.relist(list).await;
    }
}

impl Runtime for CriRuntime {
    fn version(&self) -> String {
        self.inner.version.clone()
    }

    fn status_id(&self, id: &str) -> String {
        format!("{}://{id}", self.inner.name)
    }

    fn isolated(&self) -> bool {
        true
    }

    fn needs_command(&self) -> bool {
        false
    }

    fn health(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let c = &self.inner.client;
            let r = c
                .runtime()
                .status(c.req_within(v1::StatusRequest { verbose: false }, Duration::from_secs(5)))
                .await
                .map_err(|e| format!("container runtime is down: {}", err(e)))?;
            let conditions = r.into_inner().status.unwrap_or_default().conditions;
            for cond in conditions {
                if !cond.status {
                    let what = if cond.r#type == "NetworkReady" {
                        "container runtime network not ready"
                    } else {
                        "container runtime not ready"
                    };
                    return Err(format!(
                        "{what}: {}=false reason:{} message:{}",
                        cond.r#type, cond.reason, cond.message
                    ));
                }
            }
            Ok(())
        })
    }

    fn run_sandbox<'a>(
        &'a self,
        pod: &'a Pod,
        attempt: u32,
    ) -> BoxFuture<'a, Result<Option<Sandbox>, String>> {
        Box::pin(async move {
            let i = &self.inner;
            let log_dir = i.log_dir(&pod.metadata.uid);
            std::fs::create_dir_all(&log_dir)
                .map_err(|e| format!("cannot create {}: {e}", log_dir.display()))?;
            let config = config::sandbox_config(pod, attempt, &log_dir, &i.cfg.node);
            let id = i
                .client
                .runtime()
                .run_pod_sandbox(i.client.req_within(
                    v1::RunPodSandboxRequest {
                        config: Some(config),
                        runtime_handler: String::new(),
                    },
                    SLOW_CALL,
                ))
                .await
                .map_err(err)?
                .into_inner()
                .pod_sandbox_id;
            let status = i.sandbox_status(&id).await.map_err(err)?;
            let ip = status.network.map(|n| n.ip).unwrap_or_default();
            Ok(Some(Sandbox { id, ip, attempt }))
        })
    }

    fn sandbox_ready<'a>(&'a self, sandbox: &'a Sandbox) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            match self.inner.sandbox_status(&sandbox.id).await {
                Ok(s) => Ok(s.state == v1::PodSandboxState::SandboxReady as i32),
                Err(e) if e.code() == cri::Code::NotFound => Ok(false),
                Err(e) => Err(err(e)),
            }
        })
    }

    fn stop_sandbox<'a>(&'a self, sandbox: &'a Sandbox) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let c = &self.inner.client;
            match c
                .runtime()
                .stop_pod_sandbox(c.req_within(
                    v1::StopPodSandboxRequest {
                        pod_sandbox_id: sandbox.id.clone(),
                    },
                    SLOW_CALL,
                ))
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if e.code() == cri::Code::NotFound => Ok(()),
                Err(e) => Err(err(e)),
            }
        })
    }

    fn remove_sandbox<'a>(&'a self, sandbox: &'a Sandbox) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.stop_sandbox(sandbox).await?;
            let c = &self.inner.client;
            match c
                .runtime()
                .remove_pod_sandbox(c.req_within(
                    v1::RemovePodSandboxRequest {
                        pod_sandbox_id: sandbox.id.clone(),
                    },
                    SLOW_CALL,
                ))
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if e.code() == cri::Code::NotFound => Ok(()),
                Err(e) => Err(err(e)),
            }
        })
    }

    fn image_status<'a>(
        &'a self,
        image: &'a str,
    ) -> BoxFuture<'a, Result<Option<ImageReady>, String>> {
        Box::pin(self.inner.image_ready(image))
    }

    fn pull_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<ImageReady, String>> {
        Box::pin(async move {
            let i = &self.inner;
            let started = Instant::now();
            let image_ref = i
                .client
                .image()
                .pull_image(i.client.req_within(
                    v1::PullImageRequest {
                        image: Some(v1::ImageSpec {
                            image: image.to_string(),
                            ..Default::default()
                        }),
                        auth: None,
                        sandbox_config: None,
                    },
                    SLOW_CALL,
                ))
                .await
                .map_err(err)?
                .into_inner()
                .image_ref;
            let took = started.elapsed();
            let mut ready = i.image_ready(&image_ref).await?.unwrap_or(ImageReady {
                image_id: image_ref.clone(),
                image_ref,
                pulled_in: None,
            });
            ready.pulled_in = Some(took);
            Ok(ready)
        })
    }

    fn start<'a>(
        &'a self,
        req: &'a StartRequest,
        wake: Arc<Notify>,
    ) -> BoxFuture<'a, Result<Running, String>> {
        Box::pin(async move {
            let i = &self.inner;
            let Some(sandbox) = &req.sandbox else {
                return Err("the pod has no sandbox".into());
            };
            let uid = &req.spec.pod_uid;
            let name = &req.container.name;
            let attempt = req.spec.restart_count.to_string();
            // One left by a kubelet that crashed between creating and recording it would
            // hold the name: the runtime refuses a second container of the same attempt.
            let stale = i
                .list_containers(&[
                    (LABEL_POD_UID, uid),
                    (LABEL_CONTAINER_NAME, name),
                    (LABEL_NODE, &i.cfg.node.node_name),
                ])
                .await?;
            for c in stale {
                let same_attempt = c
                    .metadata
                    .as_ref()
                    .is_some_and(|m| m.attempt.to_string() == attempt);
                if same_attempt || c.state == v1::ContainerState::ContainerExited as i32 {
                    if c.state != v1::ContainerState::ContainerExited as i32 {
                        i.stop_container(&c.id, Duration::ZERO).await;
                    }
                    i.remove_container(&c.id).await;
                }
            }
            let log_dir = i.log_dir(uid);
            let rel = format!("{name}/{}.log", req.spec.restart_count);
            std::fs::create_dir_all(log_dir.join(name))
                .map_err(|e| format!("cannot create the log directory: {e}"))?;
            let sandbox_config =
                config::sandbox_config(&req.pod, sandbox.attempt, &log_dir, &i.cfg.node);
            let config = config::container_config(req, rel.clone(), &i.cfg.node, i.cfg.node_memory);
            let id = i
                .client
                .runtime()
                .create_container(i.client.req_within(
                    v1::CreateContainerRequest {
                        pod_sandbox_id: sandbox.id.clone(),
                        config: Some(config),
                        sandbox_config: Some(sandbox_config),
                    },
                    SLOW_CALL,
                ))
                .await
                .map_err(err)?
                .into_inner()
                .container_id;
            let started = i
                .client
                .runtime()
                .start_container(i.client.req_within(
                    v1::StartContainerRequest {
                        container_id: id.clone(),
                    },
                    SLOW_CALL,
                ))
                .await;
            if let Err(e) = started {
                i.remove_container(&id).await;
                return Err(err(e));
            }
            let started_at = match i.container_status(&id).await {
                Ok(s) => time_of(s.started_at).unwrap_or_else(Time::now),
                Err(_) => Time::now(),
            };
            Ok(i.track(&id, &sandbox.id, started_at, &log_dir.join(&rel), wake))
        })
    }

    fn signal(&self, c: &Running, sig: StopSignal) {
        let grace = match sig {
            StopSignal::Term => Duration::from_secs(30),
            StopSignal::Kill => Duration::ZERO,
        };
        self.stop(c, grace);
    }

    fn stop(&self, c: &Running, grace: Duration) {
        let inner = self.inner.clone();
        let id = c.id.clone();
        tokio::spawn(async move { inner.stop_container(&id, grace).await });
    }

    fn release(&self, c: &Running) {
        self.inner.tracked().remove(&c.id);
    }

    fn exec_sync<'a>(
        &'a self,
        target: &'a ExecTarget,
        command: &'a [String],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecOutput, String>> {
        Box::pin(async move {
            let c = &self.inner.client;
            let r = c
                .runtime()
                .exec_sync(c.req_within(
                    v1::ExecSyncRequest {
                        container_id: target.container_id.clone(),
                        cmd: command.to_vec(),
                        timeout: i64::try_from(timeout.as_secs().max(1)).unwrap_or(i64::MAX),
                    },
                    timeout + Duration::from_secs(5),
                ))
                .await;
            match r {
                Ok(r) => {
                    let r = r.into_inner();
                    Ok(ExecOutput {
                        exit_code: r.exit_code,
                        stdout: r.stdout,
                        stderr: r.stderr,
                    })
                }
                Err(e) if e.code() == cri::Code::DeadlineExceeded => {
                    Err(format!("command {command:?} timed out"))
                }
                Err(e) => Err(err(e)),
            }
        })
    }

    fn exec<'a>(
        &'a self,
        target: &'a ExecTarget,
        req: ExecRequest,
        io: ExecIo,
    ) -> BoxFuture<'a, Result<i32, String>> {
        Box::pin(exec::exec(&self.inner.client, target, req, io))
    }

    fn recover<'a>(&'a self, _record: &'a ProcRecord) -> BoxFuture<'a, Recovered> {
        // CRI containers are found by their labels ([`Runtime::discover`]), not by records.
        Box::pin(std::future::ready(Recovered::Gone { stopped: false }))
    }

    fn discover(&self) -> BoxFuture<'_, Vec<Discovered>> {
        Box::pin(async move {
            match self.discover_pods().await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list what the container runtime holds for this node");
                    Vec::new()
                }
            }
        })
    }
}

impl CriRuntime {
    /// This node's pods in the runtime: the newest ready sandbox of each, and the latest run of
    /// each of its containers (re-adopted: running, or exited while no kubelet watched). Older
    /// sandboxes and runs are removed.
    async fn discover_pods(&self) -> Result<Vec<Discovered>, String> {
        let i = &self.inner;
        let node = i.cfg.node.node_name.clone();
        let sandboxes = i.list_sandboxes().await.map_err(err)?;
        let mut pods: HashMap<String, Discovered> = HashMap::new();
        let mut newest: HashMap<String, v1::PodSandbox> = HashMap::new();
        let mut old = Vec::new();
        for s in sandboxes {
            let Some(uid) = s.labels.get(LABEL_POD_UID).cloned() else {
                continue;
            };
            if s.state != v1::PodSandboxState::SandboxReady as i32 {
                old.push(s.id);
                continue;
            }
            match newest.get(&uid) {
                Some(n) if n.created_at >= s.created_at => old.push(s.id),
                _ => {
                    if let Some(prev) = newest.insert(uid, s) {
                        old.push(prev.id);
                    }
                }
            }
        }
        for (uid, s) in newest {
            let status = i.sandbox_status(&s.id).await.map_err(err)?;
            pods.insert(
                uid.clone(),
                Discovered {
                    uid,
                    namespace: s
                        .labels
                        .get(LABEL_POD_NAMESPACE)
                        .cloned()
                        .unwrap_or_default(),
                    name: s.labels.get(LABEL_POD_NAME).cloned().unwrap_or_default(),
                    sandbox: Some(Sandbox {
                        id: s.id.clone(),
                        ip: status.network.map(|n| n.ip).unwrap_or_default(),
                        attempt: s.metadata.map(|m| m.attempt).unwrap_or(0),
                    }),
                    containers: Vec::new(),
                },
            );
        }
        for id in old {
            tracing::info!(sandbox = %id, "removing a stale pod sandbox");
            let sb = Sandbox {
                id,
                ..Default::default()
            };
            if let Err(e) = self.remove_sandbox(&sb).await {
                tracing::warn!(sandbox = %sb.id, error = %e, "cannot remove a stale sandbox");
            }
        }
        // The latest run of each container of a live sandbox; older runs go.
        let containers = i.list_containers(&[(LABEL_NODE, &node)]).await?;
        let mut latest: HashMap<(String, String), v1::Container> = HashMap::new();
        let mut stale = Vec::new();
        for c in containers {
            let (Some(uid), Some(name)) = (
                c.labels.get(LABEL_POD_UID).cloned(),
                c.labels.get(LABEL_CONTAINER_NAME).cloned(),
            ) else {
                continue;
            };
            let in_sandbox = pods
                .get(&uid)
                .and_then(|p| p.sandbox.as_ref())
                .is_some_and(|s| s.id == c.pod_sandbox_id);
            if !in_sandbox {
                stale.push(c.id);
                continue;
            }
            let attempt = |c: &v1::Container| c.metadata.as_ref().map_or(0, |m| m.attempt);
            let key = (uid, name);
            match latest.get(&key) {
                Some(l) if attempt(l) >= attempt(&c) => stale.push(c.id),
                _ => {
                    if let Some(prev) = latest.insert(key, c) {
                        stale.push(prev.id);
                    }
                }
            }
        }
        for id in stale {
            i.stop_container(&id, Duration::ZERO).await;
            i.remove_container(&id).await;
        }
        for ((uid, name), c) in latest {
            let status = i.container_status(&c.id).await.map_err(err)?;
            let restart_count = status.metadata.as_ref().map_or(0, |m| m.attempt) as i32;
            let log_path = i.log_dir(&uid).join(&status.log_path);
            let started_at = time_of(status.started_at).unwrap_or_else(Time::now);
            let wake = Arc::new(Notify::new());
            let running = i.track(&c.id, &c.pod_sandbox_id, started_at, &log_path, wake);
            if status.state != v1::ContainerState::ContainerRunning as i32 {
                i.finish(&c.id, exit_info(&status));
            }
            let Some(pod) = pods.get_mut(&uid) else {
                continue;
            };
            let spec = ContainerSpec {
                pod_uid: uid.clone(),
                pod_key: format!("{}/{}", pod.namespace, pod.name),
                container: name.clone(),
                restart_count,
                argv: Vec::new(),
                env: Vec::new(),
                working_dir: PathBuf::new(),
                log_path,
                log_max_size: i.cfg.log_max_size,
                cgroup: None,
            };
            pod.containers.push((name, running, spec));
        }
        Ok(pods.into_values().collect())
    }
}
