//! What every part of one kubelet shares: its node's identity, the API client, the runtime,
//! directories, IP allocator and log registry. One value per `run` call, never global, so two
//! kubelets can run in one process (`kube-lite up`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use client::Client;
use client::runtime::events::Recorder;

use crate::cgroups::Cgroups;
use crate::dirs::Dirs;
use crate::ip_alloc::IpAllocator;
use crate::registry::Registry;
use crate::runtime::{ContainerSpec, Running, Runtime, Sandbox};
use crate::state::{ProcRecord, StateStore};

/// A container an earlier kubelet started that this one re-attached to.
#[derive(Debug)]
pub struct Adopted {
    pub running: Running,
    pub spec: ContainerSpec,
    pub record: ProcRecord,
}

/// Node allocatable amounts: what `limits.*` in a `resourceFieldRef` means when unset.
#[derive(Clone, Copy, Debug, Default)]
pub struct Allocatable {
    pub cpu_milli: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
}

pub struct Context {
    pub node_name: String,
    pub node_ip: String,
    pub client: Client,
    pub recorder: Recorder,
    pub runtime: Arc<dyn Runtime>,
    pub dirs: Dirs,
    pub state: StateStore,
    pub ips: Mutex<IpAllocator>,
    pub registry: Registry,
    pub allocatable: Allocatable,
    pub restart_backoff_base: Duration,
    pub restart_backoff_max: Duration,
    /// SIGTERM → SIGKILL delay for pod processes when the kubelet itself stops.
    pub shutdown_grace: Duration,
    /// `PATH` of every container: the kubelet's own.
    pub path_env: String,
    pub boot_id: String,
    /// How often ConfigMap volumes are refreshed from the API server.
    pub sync_frequency: Duration,
    /// A container's log file is rotated at this size.
    pub container_log_max_size: u64,
    /// Where memory limits are enforced, if anywhere.
    pub cgroups: Cgroups,
    /// Re-adopted containers by pod uid and container name, until their pod's worker (or the
    /// garbage collection of pods that are gone) takes them.
    pub adopted: Mutex<HashMap<String, HashMap<String, Adopted>>>,
    /// Pod sandboxes found in the runtime at start-up, by pod uid, until their pod's worker
    /// (or the garbage collection of pods that are gone) takes them.
    pub adopted_sandboxes: Mutex<HashMap<String, Sandbox>>,
}

impl Context {
    pub fn ips(&self) -> MutexGuard<'_, IpAllocator> {
        self.ips.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn take_adopted_sandbox(&self, uid: &str) -> Option<Sandbox> {
        self.adopted_sandboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid)
    }

    pub fn take_adopted(&self, uid: &str) -> HashMap<String, Adopted> {
        self.adopted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid)
            .unwrap_or_default()
    }
}
