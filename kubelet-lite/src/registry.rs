//! What the kubelet's HTTP server knows of the pods on this node: pod workers publish, per
//! pod, its uid and, per container, the log being written now and why it is waiting; the
//! `/containerLogs` handler looks them up by namespace and name.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::logs::LogHandle;
use crate::runtime::ExecTarget;

#[derive(Clone, Debug, Default)]
pub struct ContainerEntry {
    /// The restart count of the current (or last) run; its log is `<n>.log`.
    pub restart_count: i32,
    /// The log of the current or last run, while this kubelet has one.
    pub log: Option<Arc<LogHandle>>,
    /// Why the container is not running (`ContainerCreating`, `CreateContainerConfigError`…).
    pub waiting_reason: String,
    /// Where `kubectl exec` runs commands, while the container runs.
    pub exec: Option<ExecTarget>,
}

#[derive(Clone, Debug, Default)]
pub struct PodEntry {
    pub uid: String,
    /// The pod's IP once it has one (port-forward connects there).
    pub ip: Option<std::net::IpAddr>,
    /// In spec order.
    pub containers: Vec<(String, ContainerEntry)>,
}

/// Shared between pod workers (writers) and the HTTP server (reader). Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    pods: Arc<RwLock<HashMap<(String, String), PodEntry>>>,
}

impl Registry {
    pub fn publish(&self, namespace: &str, name: &str, entry: PodEntry) {
        if let Ok(mut m) = self.pods.write() {
            m.insert((namespace.to_string(), name.to_string()), entry);
        }
    }

    /// Forget a pod, unless the name now belongs to another pod (uid).
    pub fn remove(&self, namespace: &str, name: &str, uid: &str) {
        if let Ok(mut m) = self.pods.write() {
            let key = (namespace.to_string(), name.to_string());
            if m.get(&key).is_some_and(|e| e.uid == uid) {
                m.remove(&key);
            }
        }
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<PodEntry> {
        self.pods
            .read()
            .ok()?
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.pods.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
