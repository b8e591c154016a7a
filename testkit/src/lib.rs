//! Test harness for kube-lite's integration tests: the real binaries as separate processes on
//! free loopback ports, and waiting by polling a condition with a deadline (never a bare sleep).
//!
//! Binaries are looked up next to the test executable (`target/<profile>/`). `cargo test
//! --workspace` builds them all first, because every package with a binary has integration tests.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub mod cri;
pub mod kvcluster;
pub mod up;
pub mod venv;

/// Generous: CI runs on two loaded cores.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);

/// Path of a workspace binary built alongside the tests.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "binary {} not found; build it with `cargo build --workspace --bins` (cargo test --workspace does)",
        p.display()
    );
    p
}

/// A free TCP port on 127.0.0.1 (bound then released: a tiny race, never a fixed port).
///
/// Never the same port twice in one test process: tests of one binary run concurrently, and
/// the kernel may hand a just-released port to the next `bind(0)`, which let two tests' API
/// servers be given one port — the loser's client then talked to the other test's cluster.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind 127.0.0.1:0");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A child process that is stopped (SIGTERM, then SIGKILL after 10 s) when dropped.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    /// Start `bin(name)` with `args`; stdout and stderr go to `<log_dir>/<label>.log`.
    pub fn start(
        name: &str,
        label: &str,
        args: &[String],
        log_dir: &Path,
        envs: &[(&str, &str)],
    ) -> Proc {
        let log = log_dir.join(format!("{label}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new(bin(name));
        cmd.args(args)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .stdin(Stdio::null());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {name}: {e}"));
        Proc {
            name: label.to_string(),
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Send a signal (SIGKILL to crash it, SIGSTOP to pause it, …).
    pub fn signal(&self, sig: Signal) {
        if let Some(pid) = self.pid() {
            let _ = kill(Pid::from_raw(pid as i32), sig);
        }
    }

    /// Whether it has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            None => true,
            Some(c) => c.try_wait().ok().flatten().is_some(),
        }
    }

    /// SIGTERM and wait up to `grace`, then SIGKILL. Returns true if it exited on SIGTERM.
    pub fn stop_within(&mut self, grace: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub fn stop(&mut self) -> bool {
        self.stop_within(Duration::from_secs(10))
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process's log so far (for assertion messages).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Poll `f` every 100 ms until it returns `Some`, or panic with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GET a URL; Some(body) on 2xx.
pub async fn http_get(url: &str) -> Option<String> {
    let c = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let r = c.get(url).send().await.ok()?;
    if r.status().is_success() {
        r.text().await.ok()
    } else {
        None
    }
}

/// A kvstore and an API server, as separate processes.
pub struct ControlPlane {
    pub dir: tempfile::TempDir,
    pub kvstore: Proc,
    pub apiserver: Proc,
    pub kv_url: String,
    pub server: String,
}

impl ControlPlane {
    /// Start both and wait for the API server to be ready. A port [`free_port`] picked may be
    /// taken before the binary binds it (by any process's outgoing connection, which draws
    /// from the same range): a binary that exits at startup is started again on new ports.
    pub async fn start() -> ControlPlane {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let mut cp = ControlPlane::spawn();
            match cp.ready_or_exited().await {
                Ok(()) => return cp,
                Err(who) if attempt < ATTEMPTS => {
                    eprintln!(
                        "testkit: {who} exited at startup (attempt {attempt}), starting again:\n{}",
                        cp.log_tails()
                    );
                }
                Err(who) => panic!("{who} exited at startup:\n{}", cp.log_tails()),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn spawn() -> ControlPlane {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kvstore, kv_url) = start_kvstore(dir.path(), "kv");
        let api_port = free_port();
        let server = format!("http://127.0.0.1:{api_port}");
        let apiserver = Proc::start(
            "apiserver",
            "apiserver",
            &[
                "--kvstore-servers".into(),
                kv_url.clone(),
                "--port".into(),
                api_port.to_string(),
            ],
            dir.path(),
            &[],
        );
        ControlPlane {
            dir,
            kvstore,
            apiserver,
            kv_url,
            server,
        }
    }

    /// Ready, or which process exited; panics with both logs after [`DEFAULT_TIMEOUT`].
    async fn ready_or_exited(&mut self) -> Result<(), &'static str> {
        let url = format!("{}/readyz", self.server);
        let deadline = tokio::time::Instant::now() + DEFAULT_TIMEOUT;
        loop {
            if http_get(&url).await.is_some() {
                return Ok(());
            }
            if self.kvstore.exited() {
                return Err("kvstore");
            }
            if self.apiserver.exited() {
                return Err("apiserver");
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "timed out after {DEFAULT_TIMEOUT:?} waiting for apiserver /readyz:\n{}",
                    self.log_tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of both logs, for a failure message.
    pub fn log_tails(&self) -> String {
        format!(
            "--- kvstore ---\n{}\n--- apiserver ---\n{}",
            self.kvstore.log_tail(30),
            self.apiserver.log_tail(30)
        )
    }

    pub fn client(&self) -> client::Client {
        client::Client::new(&self.server, "testkit").expect("client")
    }

    /// Start another component binary pointed at this API server (`--server` is added).
    pub fn start_component(&self, bin_name: &str, label: &str, extra: &[String]) -> Proc {
        let mut args = vec!["--server".to_string(), self.server.clone()];
        args.extend(extra.iter().cloned());
        Proc::start(bin_name, label, &args, self.dir.path(), &[])
    }
}

/// Start a single-member kvstore with data in `<dir>/<name>`; returns it and its client URL.
pub fn start_kvstore(dir: &Path, name: &str) -> (Proc, String) {
    let client_port = free_port();
    let peer_port = free_port();
    let kv_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let data = dir.join(name);
    let proc = Proc::start(
        "kvstore",
        name,
        &[
            "--name".into(),
            name.into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--listen-client-urls".into(),
            kv_url.clone(),
            "--listen-peer-urls".into(),
            peer_url.clone(),
            "--initial-cluster".into(),
            format!("{name}={peer_url}"),
        ],
        dir,
        &[],
    );
    (proc, kv_url)
}

/// Whether a process id is alive (not a zombie).
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Run a command-line binary to completion; returns (exit code, stdout, stderr).
pub fn run_cli(
    name: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    stdin: Option<&str>,
) -> (i32, String, String) {
    use std::io::Write;
    let mut cmd = Command::new(bin(name));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("failed to run {name}: {e}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub use serde_json;
