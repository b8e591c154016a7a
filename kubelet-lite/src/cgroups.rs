//! Memory limits through cgroups, as the kubelet's container manager does, in miniature: a
//! container with `resources.limits.memory` runs in its own memory cgroup
//! (`<kubelet's cgroup>/kube-lite/<pod uid>_<container>_<restart>`) whose limit is the
//! container's; the kernel OOM-kills it when it goes over, and the exit is reported as
//! `OOMKilled`. cgroup v2 (`memory.max`, `memory.events`) where the unified hierarchy has the
//! memory controller, else v1 (`memory.limit_in_bytes`, `memory.oom_control`). Where neither
//! can be written (a read-only /sys/fs/cgroup in a container, no permission), limits are not
//! enforced and the Node's `MemoryLimitsEnforced` condition says why.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Which hierarchy, and where kube-lite's cgroups go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cgroups {
    V2 {
        base: PathBuf,
    },
    V1 {
        base: PathBuf,
    },
    /// Limits are not enforced, for this reason.
    Unavailable {
        reason: String,
    },
}

impl Cgroups {
    /// Find a writable memory hierarchy and prepare `<own cgroup>/kube-lite` in it.
    pub fn detect() -> Cgroups {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mut reasons = Vec::new();
        if let Some(mount) = v2_mount(&mounts) {
            let controllers =
                std::fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
            if controllers.split_whitespace().any(|c| c == "memory") {
                match prepare_v2(&mount, own_path(&own, None).as_deref().unwrap_or("/")) {
                    Ok(base) => return Cgroups::V2 { base },
                    Err(e) => reasons.push(format!("cgroup v2: {e}")),
                }
            }
        }
        match v1_memory_mount(&mounts) {
            Some(mount) => {
                let own = own_path(&own, Some("memory")).unwrap_or_else(|| "/".into());
                let base = join_cgroup(&mount, &own).join("kube-lite");
                match std::fs::create_dir_all(&base) {
                    Ok(()) => return Cgroups::V1 { base },
                    Err(e) => reasons.push(format!("cannot create {}: {e}", base.display())),
                }
            }
            None if reasons.is_empty() => {
                reasons.push("no cgroup hierarchy with the memory controller is mounted".into())
            }
            None => {}
        }
        Cgroups::Unavailable {
            reason: reasons.join("; "),
        }
    }

    pub fn enforced(&self) -> bool {
        !matches!(self, Cgroups::Unavailable { .. })
    }

    /// For the Node condition: (status, reason, message).
    pub fn condition(&self) -> (&'static str, &'static str, String) {
        match self {
            Cgroups::V2 { base } => (
                "True",
                "CgroupV2",
                format!(
                    "container memory limits are enforced with cgroup v2 under {}",
                    base.display()
                ),
            ),
            Cgroups::V1 { base } => (
                "True",
                "CgroupV1",
                format!(
                    "container memory limits are enforced with cgroup v1 under {}",
                    base.display()
                ),
            ),
            Cgroups::Unavailable { reason } => (
                "False",
                "CgroupsUnavailable",
                format!("container memory limits are not enforced: {reason}"),
            ),
        }
    }

    /// Create a container's cgroup with `limit` bytes of memory. The process joins it by
    /// writing its pid to `cgroup.procs` before it execs (see the process runtime).
    pub fn create(&self, name: &str, limit: i64) -> Result<PathBuf, String> {
        let (dir, files): (PathBuf, &[&str]) = match self {
            Cgroups::V2 { base } => (base.join(name), &["memory.max", "memory.swap.max"]),
            Cgroups::V1 { base } => (
                base.join(name),
                &["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"],
            ),
            Cgroups::Unavailable { reason } => return Err(reason.clone()),
        };
        if let Err(e) = std::fs::create_dir(&dir)
            && e.kind() != std::io::ErrorKind::AlreadyExists
        {
            return Err(format!("cannot create cgroup {}: {e}", dir.display()));
        }
        let swap_value = match self {
            Cgroups::V2 { .. } => "0".to_string(),
            _ => limit.to_string(),
        };
        write(&dir.join(files[0]), &limit.to_string())?;
        // No swapping around the limit (optional: the swap file exists only with swap accounting).
        if dir.join(files[1]).exists() {
            let _ = write(&dir.join(files[1]), &swap_value);
        }
        Ok(dir)
    }
}

/// How many times the kernel OOM-killed a process of this cgroup.
pub fn oom_kills(dir: &Path) -> u64 {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let text = if dir.join("memory.events").exists() {
        read("memory.events")
    } else {
        read("memory.oom_control")
    };
    text.lines()
        .filter_map(|l| l.strip_prefix("oom_kill "))
        .filter_map(|v| v.trim().parse().ok())
        .next()
        .unwrap_or(0)
}

/// Remove a container's cgroup once its processes are gone (a cgroup with processes cannot be
/// removed; the last ones may take a moment to leave).
pub fn remove(dir: &Path) {
    for _ in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    tracing::warn!(cgroup = %dir.display(), "cannot remove a container's cgroup");
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| format!("cannot write {value} to {}: {e}", path.display()))
}

fn v2_mount(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
    })
}

fn v1_memory_mount(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&"cgroup") && f.get(3)?.split(',').any(|o| o == "memory"))
            .then(|| PathBuf::from(f[1]))
    })
}

/// This process's cgroup path: in the v1 hierarchy with `controller`, or v2's (`0::/path`).
fn own_path(proc_cgroup: &str, controller: Option<&str>) -> Option<String> {
    proc_cgroup.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (id, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        let hit = match controller {
            None => id == "0" && ctrls.is_empty(),
            Some(c) => ctrls.split(',').any(|x| x == c),
        };
        hit.then(|| path.to_string())
    })
}

fn join_cgroup(mount: &Path, path: &str) -> PathBuf {
    mount.join(path.trim_start_matches('/'))
}

/// v2 lets a cgroup hand the memory controller to its children only if it has no processes
/// itself, so the kubelet's own cgroup must already delegate memory, or be the root.
fn prepare_v2(mount: &Path, own: &str) -> Result<PathBuf, String> {
    let own_dir = join_cgroup(mount, own);
    let enabled = |dir: &Path| {
        std::fs::read_to_string(dir.join("cgroup.subtree_control"))
            .unwrap_or_default()
            .split_whitespace()
            .any(|c| c == "memory")
    };
    if !enabled(&own_dir) {
        write(&own_dir.join("cgroup.subtree_control"), "+memory")?;
    }
    let base = own_dir.join("kube-lite");
    std::fs::create_dir_all(&base).map_err(|e| format!("cannot create {}: {e}", base.display()))?;
    if !enabled(&base) {
        write(&base.join("cgroup.subtree_control"), "+memory")?;
    }
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mounts_and_own_paths() {
        let mounts = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
            cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n\
            cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n\
            cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
        assert_eq!(
            v1_memory_mount(mounts),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        assert_eq!(
            v2_mount(mounts),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let own = "4:memory:/process_api/abc\n1:cpu,cpuacct:/\n0::/user.slice\n";
        assert_eq!(own_path(own, Some("memory")).unwrap(), "/process_api/abc");
        assert_eq!(own_path(own, Some("cpuacct")).unwrap(), "/");
        assert_eq!(own_path(own, None).unwrap(), "/user.slice");
        assert_eq!(
            join_cgroup(Path::new("/sys/fs/cgroup/memory"), "/process_api/abc"),
            PathBuf::from("/sys/fs/cgroup/memory/process_api/abc")
        );
    }

    #[test]
    fn reads_oom_kill_counters_of_both_versions() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(oom_kills(d.path()), 2);
        std::fs::write(
            d.path().join("memory.events"),
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert_eq!(oom_kills(d.path()), 1);
        assert_eq!(oom_kills(&d.path().join("missing")), 0);
    }

    #[test]
    fn unavailable_says_why() {
        let c = Cgroups::Unavailable {
            reason: "read-only".into(),
        };
        assert!(!c.enforced());
        assert_eq!(c.condition().0, "False");
        assert!(c.create("x", 1).is_err());
    }
}
