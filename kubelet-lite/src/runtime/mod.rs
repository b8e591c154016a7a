//! The container runtime interface of kubelet-lite: what a pod worker needs from "something
//! that runs containers" — start one, signal it, learn when it exited, run a command in it
//! (`kubectl exec`). [`process`] runs each container as a host process group ([`process_exec`]:
//! its exec); [`fake`] runs nothing (kwok-style), for scale tests.

pub mod fake;
pub mod process;
pub mod process_exec;
pub mod shim;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

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
}

/// A started container.
#[derive(Debug)]
pub struct Running {
    /// Runtime-specific id (the pid for the process runtime); shown as `kube-lite://<id>`.
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
    fn version(&self) -> &'static str;

    /// Start a container. `wake` is notified when it exits. Errors are messages for the
    /// container's status (`StartError`).
    fn start<'a>(
        &'a self,
        spec: &'a ContainerSpec,
        wake: Arc<Notify>,
    ) -> Pin<Box<dyn Future<Output = Result<Running, String>> + Send + 'a>>;

    /// Signal every process of the container.
    fn signal(&self, c: &Running, sig: StopSignal);

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
