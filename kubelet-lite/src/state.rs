//! What must survive a kubelet restart, one JSON file per pod under `<root>/state/pods/`: the
//! pod's identity and IP, and each running container's process group (pid, group, start time,
//! boot id, shim). On start the kubelet re-adopts what an earlier instance left running under
//! a shim and stops anything else it finds (see [`crate::pod_manager`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use api::meta::Time;
use serde::{Deserialize, Serialize};

/// A container process recorded while it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcRecord {
    pub pid: i32,
    pub pgid: i32,
    /// `/proc/<pid>/stat` start time: tells our process from a later one with the same pid.
    pub start_ticks: u64,
    /// `/proc/sys/kernel/random/boot_id` when it was started: pids mean nothing after a reboot.
    pub boot_id: String,
    pub restart_count: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// The directory of the shim that runs it (empty: no shim; see `runtime::shim`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub shim_dir: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRecord {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    #[serde(default, rename = "podIP", skip_serializing_if = "String::is_empty")]
    pub pod_ip: String,
    /// Running containers, by name.
    #[serde(default)]
    pub containers: BTreeMap<String, ProcRecord>,
}

/// The state directory.
#[derive(Clone, Debug)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    pub fn new(state_dir: &Path) -> std::io::Result<Self> {
        let dir = state_dir.join("pods");
        std::fs::create_dir_all(&dir)?;
        Ok(StateStore { dir })
    }

    fn path(&self, uid: &str) -> PathBuf {
        self.dir.join(format!("{uid}.json"))
    }

    /// Every record; unreadable files are reported and skipped.
    pub fn load_all(&self) -> Vec<PodRecord> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return vec![];
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&p).map(|b| serde_json::from_slice::<PodRecord>(&b)) {
                Ok(Ok(r)) => out.push(r),
                Ok(Err(err)) => {
                    tracing::warn!(path = %p.display(), error = %err, "ignoring a corrupt state file")
                }
                Err(err) => {
                    tracing::warn!(path = %p.display(), error = %err, "cannot read state file")
                }
            }
        }
        out.sort_by(|a, b| a.uid.cmp(&b.uid));
        out
    }

    /// Write atomically (temporary file + rename), so a crash never leaves half a record.
    pub fn save(&self, r: &PodRecord) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(".{}.json.tmp", r.uid));
        let bytes = serde_json::to_vec_pretty(r).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, self.path(&r.uid))
    }

    pub fn remove(&self, uid: &str) {
        match std::fs::remove_file(self.path(uid)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(uid, error = %e, "cannot remove state file"),
        }
    }
}

/// This boot's id (empty if unknown).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_loads_and_removes() {
        let d = tempfile::tempdir().unwrap();
        let s = StateStore::new(d.path()).unwrap();
        let mut r = PodRecord {
            uid: "u1".into(),
            namespace: "default".into(),
            name: "web".into(),
            pod_ip: "127.11.0.2".into(),
            ..Default::default()
        };
        r.containers.insert(
            "web".into(),
            ProcRecord {
                pid: 42,
                pgid: 42,
                start_ticks: 7,
                boot_id: "b".into(),
                restart_count: 1,
                started_at: None,
                shim_dir: "/x/shims/u1_web_1".into(),
            },
        );
        s.save(&r).unwrap();
        std::fs::write(d.path().join("pods/bad.json"), "{").unwrap();
        assert_eq!(s.load_all(), vec![r.clone()]);
        r.containers.clear();
        s.save(&r).unwrap();
        assert_eq!(s.load_all(), vec![r]);
        s.remove("u1");
        s.remove("u1");
        assert!(s.load_all().is_empty());
    }
}
