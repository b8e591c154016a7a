//! A one-node `kube-lite up` (the real binary) for the Service benchmarks: the process runtime
//! for the user-space proxy, `--runtime cri` (root) for nftables. Stopped with SIGINT when
//! dropped, so it removes its containerd, bridge and rules as a user's Ctrl-C would.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::scheduler::{free_port, sibling_bin};

pub(crate) struct Up {
    child: std::process::Child,
    /// The API server's URL.
    pub server: String,
}

impl Up {
    /// Start it with its data and log under `root`, named after `mode`.
    pub fn start(root: &Path, mode: &str) -> anyhow::Result<Up> {
        let port = free_port()?;
        let log = std::fs::File::create(root.join(format!("kube-lite-{mode}.log")))?;
        let mut args = vec![
            "up".to_string(),
            "--data-dir".into(),
            root.join(mode).display().to_string(),
            "--api-port".into(),
            port.to_string(),
            "--nodes".into(),
            "1".into(),
        ];
        if mode == "nftables" {
            args.extend(["--runtime".into(), "cri".into()]);
        }
        let child = std::process::Command::new(sibling_bin("kube-lite")?)
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::from(log.try_clone()?))
            .stderr(std::process::Stdio::from(log))
            .spawn()
            .context("starting kube-lite up")?;
        Ok(Up {
            child,
            server: format!("http://127.0.0.1:{port}"),
        })
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `f` every 50 ms until it gives a value, or fail after `secs` seconds.
pub(crate) async fn wait<T, F, Fut>(what: &str, secs: u64, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
