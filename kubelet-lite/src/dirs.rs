//! Where everything lives under `--root-dir`, in one place:
//!
//! ```text
//! <root>/state/pods/<uid>.json                  what survives a kubelet restart (state.rs)
//! <root>/pods/<uid>/                            the pod's sandbox: working dir and HOME
//! <root>/pods/<uid>/logs/<container>/<n>.log    output of the n-th run (restartCount n)
//! <root>/shims/<uid>_<container>_<n>/           the n-th run's shim: spec, exit status
//! ```

use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Dirs {
    root: PathBuf,
}

impl Dirs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Dirs { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    /// Container shims' directories (see `runtime::shim`).
    pub fn shims(&self) -> PathBuf {
        self.root.join("shims")
    }

    pub fn pods(&self) -> PathBuf {
        self.root.join("pods")
    }

    /// The pod's sandbox directory.
    pub fn pod(&self, uid: &str) -> PathBuf {
        self.pods().join(uid)
    }

    pub fn container_logs(&self, uid: &str, container: &str) -> PathBuf {
        self.pod(uid).join("logs").join(container)
    }

    pub fn log_file(&self, uid: &str, container: &str, restart_count: i32) -> PathBuf {
        self.container_logs(uid, container)
            .join(format!("{restart_count}.log"))
    }
}

/// The log files of a container's runs, as (restart count, path), oldest first.
pub fn log_files(dir: &Path) -> Vec<(i32, PathBuf)> {
    let mut out: Vec<(i32, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let n: i32 = name.strip_suffix(".log")?.parse().ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by_key(|(n, _)| *n);
    out
}

/// Resolve a container's `workingDir` inside the sandbox: the process runtime has no mount
/// namespace, so `/app` and `app` both mean `<sandbox>/app`. `..` may not leave the sandbox.
pub fn working_dir(sandbox: &Path, working_dir: &str) -> Result<PathBuf, String> {
    let mut out = sandbox.to_path_buf();
    for part in working_dir.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "workingDir {working_dir:?} may not contain \"..\" (it is resolved inside the pod's sandbox)"
                ));
            }
            p => out.push(p),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_dirs_stay_in_the_sandbox() {
        let s = Path::new("/r/pods/u");
        assert_eq!(working_dir(s, "").unwrap(), PathBuf::from("/r/pods/u"));
        assert_eq!(
            working_dir(s, "/app").unwrap(),
            PathBuf::from("/r/pods/u/app")
        );
        assert_eq!(
            working_dir(s, "app/./x/").unwrap(),
            PathBuf::from("/r/pods/u/app/x")
        );
        assert!(working_dir(s, "/app/../../etc").is_err());
    }

    #[test]
    fn log_files_sorted_by_run() {
        let d = tempfile::tempdir().unwrap();
        for n in [10, 2, 0] {
            std::fs::write(d.path().join(format!("{n}.log")), "").unwrap();
        }
        std::fs::write(d.path().join("junk"), "").unwrap();
        let runs: Vec<i32> = log_files(d.path()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(runs, vec![0, 2, 10]);
        let dirs = Dirs::new("/r");
        assert_eq!(
            dirs.log_file("u", "web", 3),
            PathBuf::from("/r/pods/u/logs/web/3.log")
        );
    }
}
