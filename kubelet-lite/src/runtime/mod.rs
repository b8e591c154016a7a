//! The container runtime interface of kubelet-lite: what a pod worker needs from "something
//! that runs containers" — start one, signal it, learn when it exited. [`process`] runs each
//! container as a host process group; [`fake`] runs nothing (kwok-style), for scale tests.

pub mod fake;
pub mod process;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use api::meta::Time;
use tokio::sync::{Notify, watch};

use crate::logs::LogHandle;
use crate::state::ProcRecord;

/// Everything needed to start one container (env and command already resolved).
#[derive(Clone, Debug)]
pub struct ContainerSpec {
    pub pod_uid: String,
    /// `namespace/name`, for log lines.
    pub pod_key: String,
    pub container: String,
    /// The command line: argv\[0\] is looked up in the container's `PATH`.
    pub argv: Vec<String>,
    /// The complete environment of the process.
    pub env: Vec<(String, String)>,
    pub working_dir: PathBuf,
    /// Where stdout and stderr go, CRI-style.
    pub log_path: PathBuf,
    /// Rotate the log at this size (`--container-log-max-size`).
    pub log_max_size: u64,
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
}

impl Running {
    pub fn exited(&self) -> Option<ExitInfo> {
        self.exit.borrow().clone()
    }
}

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
    fn start(&self, spec: &ContainerSpec, wake: Arc<Notify>) -> Result<Running, String>;

    /// Signal every process of the container.
    fn signal(&self, c: &Running, sig: StopSignal);

    /// Whether a container needs `command` (the process runtime has no image entrypoint).
    fn needs_command(&self) -> bool {
        true
    }

    /// A container recorded by an earlier kubelet on this node: make sure nothing of it runs
    /// any more (the process runtime stops the group). Resolves to whether something was
    /// stopped. Re-adopting running containers instead will hook in here.
    fn stop_leftover<'a>(
        &'a self,
        record: &'a ProcRecord,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
}
