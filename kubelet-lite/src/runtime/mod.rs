//! The container runtime interface of kubelet-lite: what a pod worker needs from "something
//! that runs containers" — a pod sandbox, images, start a container, stop it, learn when it
//! exited, run commands in it (`kubectl exec`). [`process`] runs each container as a host
//! process group ([`process_exec`]: its exec); [`fake`] runs nothing (kwok-style), for scale
//! tests; [`cri`] drives a real container runtime (containerd, CRI-O) through the Kubernetes
//! CRI, as the kubelet does.
//!
//! The process and fake runtimes have no sandboxes or images of their own: the kubelet gives
//! their pods a loopback IP and a directory, and every image is "already present".

pub mod cri;
pub mod fake;
pub mod process;
pub mod process_exec;
pub mod shim;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::core::{Container, Pod};
use api::meta::Time;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, watch};

use crate::logs::LogHandle;
use crate::state::ProcRecord;

/// Everything needed to start one container (env and command already resolved).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    pub pod_uid: String,
    /// `namespace/name`, for log lines.
    pub pod_key: String,
    pub container: String,
    /// Which run of the container this is (its `restartCount`).
    #[serde(default)]
    pub restart_count: i32,
    /// The command line: argv\[0\] is looked up in the container's `PATH`.
    pub argv: Vec<String>,
    /// The complete environment of the process.
    pub env: Vec<(String, String)>,
    pub working_dir: PathBuf,
    /// Where stdout and stderr go, CRI-style.
    pub log_path: PathBuf,
    /// Rotate the log at this size (`--container-log-max-size`).
    pub log_max_size: u64,
    /// The memory cgroup the process joins before it execs (see [`crate::cgroups`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<PathBuf>,
}

/// How a container ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitInfo {
    /// The exit status, or 128 + the signal's number for a process killed by a signal.
    pub exit_code: i32,
    /// The signal that killed it (0 if it exited).
    pub signal: i32,
    pub finished_at: Time,
    pub finished: Instant,
    /// Why, when the runtime says (`OOMKilled`, `Error`, `Completed`); `None`: derived from
    /// the exit code.
    pub reason: Option<String>,
}

/// A started container. `pid`, `pgid`, `start_ticks`, `reaped`, `shim` and `cgroup` are the
/// process runtime's (zero or empty for the others, which know their containers by `id`).
#[derive(Debug)]
pub struct Running {
    /// Runtime-specific id: the pid for the process runtime, the container id for CRI; the
    /// status shows it as [`Runtime::status_id`] says (`kube-lite://…`, `containerd://…`).
    pub id: String,
    pub pid: i32,
    /// The process group every process of the container is in.
    pub pgid: i32,
    /// The leader's start time in clock ticks since boot (`/proc/<pid>/stat` field 22): with
    /// the pid it identifies the process across a kubelet restart, despite pid reuse.
    pub start_ticks: u64,
    pub started_at: Time,
    pub started: Instant,
    /// Becomes `Some` when the container has exited (and every process of it is gone).
    pub exit: watch::Receiver<Option<ExitInfo>>,
    pub log: Arc<LogHandle>,
    /// Held while signalling and while reaping, and true once reaped: a signal never reaches
    /// a process group id that was reused after the container was gone.
    pub reaped: Arc<std::sync::Mutex<bool>>,
    /// The container's shim, when one runs it (signals go through it).
    pub shim: Option<ShimHandle>,
    /// The container's memory cgroup, if it has a limit.
    pub cgroup: Option<PathBuf>,
}

/// The kubelet's end of a container shim.
#[derive(Debug)]
pub struct ShimHandle {
    /// The shim's directory: its spec, socket name, log and exit status.
    pub dir: PathBuf,
    pub signals: mpsc::UnboundedSender<StopSignal>,
}

/// A pod found in the runtime at start-up, with its sandbox and containers.
#[derive(Debug)]
pub struct Discovered {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub sandbox: Option<Sandbox>,
    /// The latest run of each container, by name: running, or exited while no kubelet watched.
    pub containers: Vec<(String, Running, ContainerSpec)>,
}

/// Run `command` on the host in the container's directory with its environment: what an exec
/// probe is for a runtime without containers of its own.
pub async fn host_exec_sync(
    target: &ExecTarget,
    command: &[String],
    timeout: Duration,
) -> Result<ExecOutput, String> {
    let Some((prog, args)) = command.split_first() else {
        return Err("exec probe has no command".into());
    };
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args)
        .env_clear()
        .envs(target.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&target.working_dir)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(timeout, cmd.output()).await {
        Err(_) => Err(format!("command {command:?} timed out")),
        Ok(Err(e)) => Err(format!("command {command:?} could not run: {e}")),
        Ok(Ok(o)) => Ok(ExecOutput {
            exit_code: o.status.code().unwrap_or(-1),
            stdout: o.stdout,
            stderr: o.stderr,
        }),
    }
}

/// What became of a container an earlier kubelet recorded.
#[derive(Debug)]
pub enum Recovered {
    /// Nothing of it runs any more; `stopped`: a leftover was found and stopped.
    Gone { stopped: bool },
    /// Re-attached through its shim: it still runs, or it exited while no kubelet was there
    /// (then its exit is already set).
    Adopted {
        running: Running,
        spec: Box<ContainerSpec>,
    },
}

impl Running {
    pub fn exited(&self) -> Option<ExitInfo> {
        self.exit.borrow().clone()
    }
}

/// Where `kubectl exec` and exec probes run a command: a running container, as the runtime
/// knows it, with what the process runtime needs to imitate one (its environment, directory,
/// memory cgroup, and when it exits).
#[derive(Clone, Debug, Default)]
pub struct ExecTarget {
    /// The runtime's id of the container ([`Running::id`]).
    pub container_id: String,
    pub env: Vec<(String, String)>,
    pub working_dir: PathBuf,
    /// The container's memory cgroup ([`Running::cgroup`]): an exec'd command joins it.
    pub cgroup: Option<PathBuf>,
    /// Becomes `Some` when the container exits ([`Running::exit`]): an exec'd command ends with
    /// its container, as in a container's PID namespace.
    pub container_exit: Option<watch::Receiver<Option<ExitInfo>>>,
}

/// What to run, and which streams the client wants (as `pods/exec`'s query says).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecRequest {
    pub command: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// A terminal's size, as `kubectl exec -t` sends it on the resize channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TermSize {
    pub width: u16,
    pub height: u16,
}

/// The runtime's end of an exec session's streams. `stdin` ends (the sender is dropped) when
/// the client closes its input; output senders are dropped by the runtime when the command is
/// done. With a TTY, stderr is merged into stdout (as in Kubernetes). Every channel is bounded:
/// a slow reader slows the command down (backpressure), nothing piles up in memory.
pub struct ExecIo {
    pub stdin: mpsc::Receiver<bytes::Bytes>,
    pub stdout: mpsc::Sender<bytes::Bytes>,
    pub stderr: mpsc::Sender<bytes::Bytes>,
    pub resize: mpsc::Receiver<TermSize>,
}

/// What a command run to completion printed, and how it ended (an exec probe).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A pod's sandbox, made by a runtime that has them (CRI: the pause container holding the
/// pod's network namespace).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sandbox {
    pub id: String,
    /// The pod's IP, from the network plugin (CNI); empty with the host's network.
    pub ip: String,
    /// Which sandbox of the pod this is (a new one is made when one dies).
    pub attempt: u32,
}

/// What a container is started with beyond [`ContainerSpec`]: the pod and container as the API
/// has them, their sandbox, the image and mounts. A CRI runtime builds its configs from these;
/// the process runtime needs only the spec.
#[derive(Clone, Debug)]
pub struct StartRequest {
    pub spec: ContainerSpec,
    pub pod: Arc<Pod>,
    pub container: Container,
    pub sandbox: Option<Sandbox>,
    /// The image as resolved by [`Runtime::image_status`] or [`Runtime::pull_image`].
    pub image_ref: String,
    /// `command` and `args` with `$(VAR)` references expanded, apart: an image runtime
    /// combines them with the image's entrypoint and cmd.
    pub command: Vec<String>,
    pub args: Vec<String>,
    /// Only the container's own environment (`env`, `envFrom`), resolved.
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
}

impl StartRequest {
    /// A request with nothing but the spec (what the process and fake runtimes use).
    pub fn from_spec(spec: ContainerSpec) -> StartRequest {
        StartRequest {
            container: Container {
                name: spec.container.clone(),
                ..Default::default()
            },
            spec,
            pod: Arc::new(Pod::default()),
            sandbox: None,
            image_ref: String::new(),
            command: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            mounts: Vec::new(),
        }
    }
}

/// A volume mount as a runtime makes it: a host directory or file bound into the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub container_path: String,
    pub host_path: PathBuf,
    pub readonly: bool,
}

/// An image ready to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageReady {
    /// What containers are created from (the runtime's image id or reference).
    pub image_ref: String,
    /// For the status' `imageID` (`docker.io/library/nginx@sha256:…`).
    pub image_id: String,
    /// `None`: it was already present; `Some(d)`: pulled now, in `d`.
    pub pulled_in: Option<Duration>,
}

/// A boxed future, as the runtime trait's async methods return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Signals a pod worker sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopSignal {
    /// Please stop (SIGTERM).
    Term,
    /// Stop now (SIGKILL).
    Kill,
}

pub trait Runtime: Send + Sync + 'static {
    /// `runtime://version`, for the node's `containerRuntimeVersion`.
    fn version(&self) -> String;

    /// A container's id as the status shows it: `<runtime>://<id>`.
    fn status_id(&self, id: &str) -> String {
        format!("kube-lite://{id}")
    }

    /// Whether the runtime can run pods now; `Err`: why not (for the node's Ready condition).
    fn health(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Make the pod's sandbox. `Ok(None)`: this runtime has none, the kubelet gives the pod a
    /// loopback IP and a directory.
    fn run_sandbox<'a>(
        &'a self,
        _pod: &'a Pod,
        _attempt: u32,
    ) -> BoxFuture<'a, Result<Option<Sandbox>, String>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    /// Whether the pod's sandbox is still there and ready (`false`: it must be made again).
    fn sandbox_ready<'a>(&'a self, _sandbox: &'a Sandbox) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(std::future::ready(Ok(true)))
    }

    /// Stop the sandbox's processes and release its network (idempotent).
    fn stop_sandbox<'a>(&'a self, _sandbox: &'a Sandbox) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Remove the sandbox and every container in it (idempotent).
    fn remove_sandbox<'a>(&'a self, _sandbox: &'a Sandbox) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Whether `image` is present, and as what. The process and fake runtimes have every image.
    fn image_status<'a>(
        &'a self,
        image: &'a str,
    ) -> BoxFuture<'a, Result<Option<ImageReady>, String>> {
        Box::pin(std::future::ready(Ok(Some(ImageReady {
            image_ref: image.to_string(),
            image_id: format!("kube-lite://{image}"),
            pulled_in: None,
        }))))
    }

    /// Pull `image`. Errors are the runtime's words (the `Failed to pull image` event).
    fn pull_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<ImageReady, String>> {
        Box::pin(std::future::ready(Ok(ImageReady {
            image_ref: image.to_string(),
            image_id: format!("kube-lite://{image}"),
            pulled_in: Some(Duration::ZERO),
        })))
    }

    /// Whether containers have a filesystem and network of their own (an image, mounts, the
    /// sandbox's IP). `false` (process runtime): the kubelet lays out the pod's directory as
    /// the container's working directory, with volumes as symlinks and its own `PATH`.
    fn isolated(&self) -> bool {
        false
    }

    /// Start a container. `wake` is notified when it exits. Errors are messages for the
    /// container's status (`StartError`).
    fn start<'a>(
        &'a self,
        req: &'a StartRequest,
        wake: Arc<Notify>,
    ) -> BoxFuture<'a, Result<Running, String>>;

    /// Signal every process of the container.
    fn signal(&self, c: &Running, sig: StopSignal);

    /// Stop the container: ask it to stop, and kill it after `grace` (zero: kill now). The
    /// process runtime only signals; the pod worker sends the kill when the grace is over.
    fn stop(&self, c: &Running, grace: Duration) {
        let sig = if grace.is_zero() {
            StopSignal::Kill
        } else {
            StopSignal::Term
        };
        self.signal(c, sig);
    }

    /// Run a command in the container to completion (an exec probe), within `timeout`.
    fn exec_sync<'a>(
        &'a self,
        target: &'a ExecTarget,
        command: &'a [String],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecOutput, String>> {
        Box::pin(host_exec_sync(target, command, timeout))
    }

    /// Containers this runtime holds for pods of this node that no record mentions (found by
    /// their labels, CRI): re-adopted at start-up. The process runtime finds its containers
    /// through records only.
    fn discover(&self) -> BoxFuture<'_, Vec<Discovered>> {
        Box::pin(std::future::ready(Vec::new()))
    }

    /// Whether a container needs `command` (the process runtime has no image entrypoint).
    fn needs_command(&self) -> bool {
        true
    }

    /// A container recorded by an earlier kubelet on this node: re-attach to it if its shim
    /// still holds it, else make sure nothing of it runs any more.
    fn recover<'a>(
        &'a self,
        record: &'a ProcRecord,
    ) -> Pin<Box<dyn Future<Output = Recovered> + Send + 'a>>;

    /// The container's exit has been recorded: forget what the runtime kept for it.
    fn release(&self, _c: &Running) {}

    /// Run a command in a running container with its streams attached (`kubectl exec`).
    /// Returns the command's exit code once it exited and its output was handed over; `Err`
    /// when it could not be run at all (the message says why, e.g. `exec: "nope": executable
    /// file not found in $PATH`). Dropping the future abandons the session (the client went
    /// away): the runtime then stops what it started.
    fn exec<'a>(
        &'a self,
        _target: &'a ExecTarget,
        _req: ExecRequest,
        _io: ExecIo,
    ) -> BoxFuture<'a, Result<i32, String>> {
        Box::pin(std::future::ready(Err(format!(
            "exec is not supported by the {} runtime",
            self.version()
        ))))
    }
}
