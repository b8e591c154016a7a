//! A private containerd for one node: kube-lite runs its own `containerd --config <dir>/config.toml`
//! with its root, state, socket, CNI configuration and log under the node's directory, so it never
//! touches the system's containerd (`/run/containerd/containerd.sock`) nor Docker's.
//!
//! [`Containerd::start`] writes the configuration, starts containerd and waits until its CRI
//! plugin answers `Version`; [`Containerd::stop`] (or dropping the handle) stops it with SIGTERM,
//! then SIGKILL. [`preflight`] says in one line why this cannot work on a machine (not root, a
//! binary or the CNI plugins missing). [`cleanup_all_pods`] and [`unmount_all_under`] are for
//! leaving nothing behind (containerd's shims outlive containerd, and each pod sandbox holds a
//! network namespace and mounts).
//!
//! A containerd left running on the node's directory by an earlier run (e.g. after `kill -9` of
//! the kubelet) is **replaced**, not reused: [`Containerd::start`] finds it by its command line
//! (`containerd --config <dir>/config.toml`), stops it and starts a new one, so the handle always
//! owns the process it stops and the configuration written is the one in force. Pods survive
//! this: their shims (`containerd-shim-runc-v2`) are separate processes that the new containerd
//! re-adopts from `<dir>/state`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

use crate::{Client, describe, v1};

/// The longest path of a Unix socket that `bind` takes (`sun_path` is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Where sockets go whose path under the node's directory would be too long.
pub const SHORT_SOCKET_DIR: &str = "/run/kube-lite";

/// The sandbox (pause) image a node's containerd uses unless told otherwise.
pub const DEFAULT_SANDBOX_IMAGE: &str = crate::image::PAUSE_IMAGE;

/// Where the CNI plugins may be: upstream's default first, then Debian's
/// `containernetworking-plugins`.
pub const CNI_BIN_DIRS: [&str; 2] = ["/opt/cni/bin", "/usr/lib/cni"];

/// How to run a node's containerd.
#[derive(Clone, Debug)]
pub struct Config {
    /// The node's directory: `config.toml`, `root/`, `state/`, `cni/net.d/`, `containerd.log`,
    /// `containerd.pid`, `socket` (the socket's path) all live here. Created if missing.
    pub dir: PathBuf,
    /// The CRI `sandbox_image` (the pod's pause container), e.g. `kube-lite/pause:1`.
    pub sandbox_image: String,
    /// Where the CNI plugin binaries are (see [`find_cni_bin_dir`]).
    pub cni_bin_dir: PathBuf,
    /// How long to wait for the CRI plugin to answer after spawning containerd.
    pub start_timeout: Duration,
    /// TOML appended to the generated configuration (more tables, e.g.
    /// `[plugins."io.containerd.grpc.v1.cri".registry]`; tables the configuration already has,
    /// such as the runc options, cannot be repeated).
    pub extra_config: String,
}

impl Config {
    /// A configuration with the defaults: the built-in pause image, the first CNI plugin
    /// directory found (else `/opt/cni/bin`), 30 s to start.
    pub fn new(dir: impl Into<PathBuf>) -> Config {
        Config {
            dir: dir.into(),
            sandbox_image: DEFAULT_SANDBOX_IMAGE.to_string(),
            cni_bin_dir: find_cni_bin_dir().unwrap_or_else(|| PathBuf::from(CNI_BIN_DIRS[0])),
            start_timeout: Duration::from_secs(30),
            extra_config: String::new(),
        }
    }
}

/// The socket of the containerd of node directory `dir` (an absolute path): `<dir>/containerd.sock`
/// when that path is short enough for a Unix socket (with its `.ttrpc` sibling), else
/// `/run/kube-lite/<hash of dir>.sock`. Deterministic, so other commands (`kube-lite load`) find
/// it from the directory alone; [`Containerd::start`] also writes it to `<dir>/socket`.
pub fn socket_for_dir(dir: &Path) -> PathBuf {
    let inside = dir.join("containerd.sock");
    if inside.as_os_str().len() + ".ttrpc".len() <= MAX_SOCKET_PATH {
        return inside;
    }
    let hash = Sha256::digest(dir.as_os_str().as_encoded_bytes());
    let short: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Path::new(SHORT_SOCKET_DIR).join(format!("{short}.sock"))
}

/// The socket of the containerd of node directory `dir` as a running one recorded it in
/// `<dir>/socket`, else as [`socket_for_dir`] computes it.
pub fn recorded_socket(dir: &Path) -> PathBuf {
    match std::fs::read_to_string(dir.join("socket")) {
        Ok(s) if !s.trim().is_empty() => PathBuf::from(s.trim()),
        _ => socket_for_dir(dir),
    }
}

/// The first directory of [`CNI_BIN_DIRS`] that holds the plugins a bridge network needs
/// (`bridge`, `host-local`, `loopback`).
pub fn find_cni_bin_dir() -> Option<PathBuf> {
    CNI_BIN_DIRS.iter().map(PathBuf::from).find(|d| {
        ["bridge", "host-local", "loopback"]
            .iter()
            .all(|p| is_executable(&d.join(p)))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `name` found in `PATH` (plus the sbin directories, which a non-login root shell may lack).
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// Whether this machine can run pods through a private containerd, as one line saying what is
/// missing and how to get it: root, `containerd`, `runc`, `ctr`, the CNI plugins, and a static
/// busybox (the built-in images are made of it).
pub fn preflight() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("the CRI runtime needs root (containerd, network namespaces); run as root or use --runtime process".into());
    }
    for (bin, package) in [
        ("containerd", "containerd"),
        ("runc", "runc"),
        ("ctr", "containerd"),
    ] {
        if find_in_path(bin).is_none() {
            return Err(format!(
                "the CRI runtime needs `{bin}`, which is not in PATH (Debian: apt-get install {package})"
            ));
        }
    }
    if find_cni_bin_dir().is_none() {
        return Err(format!(
            "no CNI plugins (bridge, host-local, loopback) found in {}; on Debian: apt-get install containernetworking-plugins",
            CNI_BIN_DIRS.join(" or ")
        ));
    }
    crate::image::busybox_path()?;
    Ok(())
}

/// A running private containerd. Dropping it stops containerd (not the pods: their shims keep
/// running and a later containerd on the same directory adopts them).
#[derive(Debug)]
pub struct Containerd {
    dir: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
}

impl Containerd {
    /// Writes `<dir>/config.toml`, replaces a containerd left running on `dir` by an earlier run,
    /// starts containerd and waits until its CRI plugin answers `Version`.
    pub async fn start(config: Config) -> Result<Containerd, String> {
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| format!("cannot create {}: {e}", config.dir.display()))?;
        let dir = std::fs::canonicalize(&config.dir)
            .map_err(|e| format!("cannot resolve {}: {e}", config.dir.display()))?;
        let socket = socket_for_dir(&dir);
        let conf_file = dir.join("config.toml");

        // Replace, never share: a containerd of an earlier run on this directory is stopped.
        for pid in processes_running_config(&conf_file) {
            tracing::info!(pid, dir = %dir.display(), "stopping the containerd an earlier run left on this directory");
            terminate_blocking(pid, Duration::from_secs(10));
        }
        if let Some(parent) = socket.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        if socket.exists() {
            let probe = Client::new(&endpoint_of(&socket))?.with_timeout(Duration::from_secs(2));
            if probe.version().await.is_ok() {
                return Err(format!(
                    "another container runtime (not started on {}) already serves {}; stop it first",
                    dir.display(),
                    socket.display()
                ));
            }
            // A stale socket file: containerd replaces it.
        }

        for sub in ["root", "state", "cni/net.d"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| format!("cannot create {}: {e}", dir.join(sub).display()))?;
        }
        let mut toml = config_toml(&dir, &socket, &config);
        if !config.extra_config.is_empty() {
            toml.push('\n');
            toml.push_str(&config.extra_config);
            toml.push('\n');
        }
        std::fs::write(&conf_file, toml)
            .map_err(|e| format!("cannot write {}: {e}", conf_file.display()))?;
        std::fs::write(dir.join("socket"), format!("{}\n", socket.display()))
            .map_err(|e| format!("cannot write {}: {e}", dir.join("socket").display()))?;

        let log_path = dir.join("containerd.log");
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let _ = writeln!(
            log,
            "--- kube-lite: starting containerd --config {}",
            conf_file.display()
        );
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let containerd = find_in_path("containerd")
            .ok_or("containerd is not in PATH (Debian: apt-get install containerd)")?;
        use std::os::unix::process::CommandExt;
        let child = Command::new(&containerd)
            .arg("--config")
            .arg(&conf_file)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: a Ctrl-C meant for kube-lite does not reach containerd,
            // which kube-lite stops itself, after its pods.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", containerd.display()))?;
        let pid = child.id();
        std::fs::write(dir.join("containerd.pid"), format!("{pid}\n"))
            .map_err(|e| format!("cannot write {}: {e}", dir.join("containerd.pid").display()))?;
        let mut me = Containerd {
            dir,
            socket,
            child: Some(child),
        };
        tracing::info!(pid, socket = %me.socket.display(), "started containerd");

        let client = me.client()?.with_timeout(Duration::from_secs(2));
        let deadline = Instant::now() + config.start_timeout;
        loop {
            match client.version().await {
                Ok(v) => {
                    tracing::info!(
                        runtime = %v.runtime_name,
                        version = %v.runtime_version,
                        "containerd's CRI plugin answers"
                    );
                    return Ok(me);
                }
                Err(e) => {
                    if let Some(child) = me.child.as_mut()
                        && let Ok(Some(status)) = child.try_wait()
                    {
                        me.child = None;
                        return Err(format!(
                            "containerd exited ({status}) before answering on {}; its log ends with: {}",
                            me.socket.display(),
                            me.log_tail(5).replace('\n', " | ")
                        ));
                    }
                    if Instant::now() >= deadline {
                        let tail = me.log_tail(5).replace('\n', " | ");
                        me.kill_blocking();
                        return Err(format!(
                            "containerd did not answer CRI Version on {} within {:?} (last: {}); its log ends with: {tail}",
                            me.socket.display(),
                            config.start_timeout,
                            describe(&e)
                        ));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The CRI endpoint, `unix:///…/containerd.sock`.
    pub fn endpoint(&self) -> String {
        endpoint_of(&self.socket)
    }

    /// The containerd socket (for `ctr -a`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The node's directory (canonical).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where containerd's CRI plugin reads CNI network configurations (it watches it: a conflist
    /// written there makes the network ready).
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.dir.join("cni/net.d")
    }

    /// containerd's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }

    /// containerd's process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// A CRI client of this containerd.
    pub fn client(&self) -> Result<Client, String> {
        Client::new(&self.endpoint())
    }

    /// The last `n` lines of containerd's log (for error messages).
    pub fn log_tail(&self, n: usize) -> String {
        log_tail(&self.log_path(), n)
    }

    /// Stops containerd: SIGTERM, up to 10 s for it to exit, then SIGKILL. Pods keep running.
    pub async fn stop(mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id();
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Ok(None) => {
                    tracing::warn!(
                        pid,
                        "containerd did not stop within 10s of SIGTERM; killing it"
                    );
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Err(e) => return Err(format!("cannot wait for containerd (pid {pid}): {e}")),
            }
        }
        self.remove_files(pid);
        tracing::info!(pid, "stopped containerd");
        Ok(())
    }

    fn kill_blocking(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            terminate_blocking(pid, Duration::from_secs(10));
            let _ = child.wait();
            self.remove_files(pid);
        }
    }

    /// What stopped containerd `pid` leaves: its pid file and sockets (it removes neither the
    /// ttrpc socket nor, when killed, the gRPC one) — unless a newer containerd has taken the
    /// directory over since (its pid is in the file).
    fn remove_files(&self, pid: u32) {
        let pid_file = self.dir.join("containerd.pid");
        let recorded = std::fs::read_to_string(&pid_file).unwrap_or_default();
        if recorded.trim() != pid.to_string() {
            return;
        }
        let _ = std::fs::remove_file(pid_file);
        let _ = std::fs::remove_file(&self.socket);
        let mut ttrpc = self.socket.clone().into_os_string();
        ttrpc.push(".ttrpc");
        let _ = std::fs::remove_file(ttrpc);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.kill_blocking();
    }
}

fn endpoint_of(socket: &Path) -> String {
    format!("unix://{}", socket.display())
}

/// containerd's configuration (version 2) for node directory `dir`.
fn config_toml(dir: &Path, socket: &Path, config: &Config) -> String {
    let q = |p: &Path| toml_string(&p.to_string_lossy());
    format!(
        r#"# Written by kube-lite for a node's private containerd; rewritten on every start.
version = 2
root = {root}
state = {state}

[grpc]
  address = {sock}
[ttrpc]
  address = {ttrpc}

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {sandbox}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Never ask for an oom_score_adj below containerd's own (the sandbox's -998 fails where the
  # process may not lower its score, e.g. inside another container or a restricted VM).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # runc's state, else /run/containerd/runc/k8s.io, shared by every containerd.
        Root = {runc_root}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {cni_bin}
    conf_dir = {cni_conf}
"#,
        root = q(&dir.join("root")),
        state = q(&dir.join("state")),
        sock = q(socket),
        ttrpc = toml_string(&format!("{}.ttrpc", socket.display())),
        opt = q(&dir.join("opt")),
        runc_root = q(&dir.join("state/runc")),
        sandbox = toml_string(&config.sandbox_image),
        cni_bin = q(&config.cni_bin_dir),
        cni_conf = q(&dir.join("cni/net.d")),
    )
}

/// A TOML basic string (JSON's escaping is a subset TOML accepts).
fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The last `n` lines of a file (at most its last 64 KiB), or "" when unreadable.
pub fn log_tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 << 10)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The processes whose command line is `…containerd --config <conf_file>`.
fn processes_running_config(conf_file: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let want = conf_file.as_os_str().as_encoded_bytes();
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.len() >= 3
                && args[0].ends_with(b"containerd")
                && args[1] == b"--config"
                && args[2] == want
        })
        .collect()
}

/// SIGTERM, wait up to `grace` (polling), SIGKILL. For a process that may not be our child
/// (then `kill(pid, 0)` tells when it is gone; a zombie child is reaped by its `Child`).
fn terminate_blocking(pid: u32, grace: Duration) {
    let p = Pid::from_raw(pid as i32);
    if kill(p, Signal::SIGTERM).is_err() {
        return;
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::warn!(
        pid,
        "containerd did not stop within {grace:?} of SIGTERM; killing it"
    );
    let _ = kill(p, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `pid` is a live process (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses: "123 (containerd) Z …".
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().chars().next()),
            Some(Some('Z' | 'X'))
        ),
        Err(_) => false,
    }
}

/// Stops and removes every pod sandbox (and so its containers) and any container left over,
/// through CRI. Returns how many sandboxes it removed. For tests and for tearing a node down:
/// a sandbox holds a network namespace, an IP lease and mounts that only CRI releases.
pub async fn cleanup_all_pods(client: &Client) -> Result<usize, String> {
    let long = Duration::from_secs(60);
    let sandboxes = client
        .runtime()
        .list_pod_sandbox(client.req(v1::ListPodSandboxRequest { filter: None }))
        .await
        .map_err(|e| format!("ListPodSandbox: {}", describe(&e)))?
        .into_inner()
        .items;
    for s in &sandboxes {
        client
            .runtime()
            .stop_pod_sandbox(client.req_within(
                v1::StopPodSandboxRequest {
                    pod_sandbox_id: s.id.clone(),
                },
                long,
            ))
            .await
            .map_err(|e| format!("StopPodSandbox {}: {}", s.id, describe(&e)))?;
        client
            .runtime()
            .remove_pod_sandbox(client.req_within(
                v1::RemovePodSandboxRequest {
                    pod_sandbox_id: s.id.clone(),
                },
                long,
            ))
            .await
            .map_err(|e| format!("RemovePodSandbox {}: {}", s.id, describe(&e)))?;
    }
    let containers = client
        .runtime()
        .list_containers(client.req(v1::ListContainersRequest { filter: None }))
        .await
        .map_err(|e| format!("ListContainers: {}", describe(&e)))?
        .into_inner()
        .containers;
    for c in containers {
        let _ = client
            .runtime()
            .stop_container(client.req_within(
                v1::StopContainerRequest {
                    container_id: c.id.clone(),
                    timeout: 0,
                },
                long,
            ))
            .await;
        client
            .runtime()
            .remove_container(client.req_within(
                v1::RemoveContainerRequest {
                    container_id: c.id.clone(),
                },
                long,
            ))
            .await
            .map_err(|e| format!("RemoveContainer {}: {}", c.id, describe(&e)))?;
    }
    Ok(sandboxes.len())
}

/// The mount points at or under `dir` (from `/proc/self/mountinfo`), deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// Lazily unmounts everything mounted at or under `dir` (what containerd leaves when it is
/// killed with pods running: overlay root filesystems, the sandboxes' `/dev/shm`). Only for
/// tearing a node down for good: running pods lose their files. Returns how many it unmounted.
pub fn unmount_all_under(dir: &Path) -> Result<usize, String> {
    let mut n = 0;
    for m in mounts_under(dir) {
        match nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => n += 1,
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(format!("cannot unmount {}: {e}", m.display())),
        }
    }
    Ok(n)
}

/// `/proc/self/mountinfo` escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_dirs_keep_their_socket_long_ones_get_a_hashed_one() {
        let short = Path::new("/tmp/node-1");
        assert_eq!(
            socket_for_dir(short),
            PathBuf::from("/tmp/node-1/containerd.sock")
        );
        let long = PathBuf::from(format!("/tmp/{}", "x".repeat(120)));
        let s = socket_for_dir(&long);
        assert!(s.starts_with(SHORT_SOCKET_DIR), "{}", s.display());
        assert_eq!(s, socket_for_dir(&long), "deterministic");
        let other = PathBuf::from(format!("/tmp/{}", "y".repeat(120)));
        assert_ne!(s, socket_for_dir(&other));
        assert!(s.as_os_str().len() + 6 <= MAX_SOCKET_PATH);
    }

    #[test]
    fn config_names_the_node_paths() {
        let dir = Path::new("/var/lib/kl/containerd/node-1");
        let mut c = Config::new(dir);
        c.cni_bin_dir = PathBuf::from("/usr/lib/cni");
        let toml = config_toml(dir, &socket_for_dir(dir), &c);
        assert!(toml.contains(r#"root = "/var/lib/kl/containerd/node-1/root""#));
        assert!(toml.contains(r#"address = "/var/lib/kl/containerd/node-1/containerd.sock""#));
        assert!(
            toml.contains(r#"address = "/var/lib/kl/containerd/node-1/containerd.sock.ttrpc""#)
        );
        assert!(toml.contains(r#"sandbox_image = "kube-lite/pause:1""#));
        assert!(toml.contains(r#"conf_dir = "/var/lib/kl/containerd/node-1/cni/net.d""#));
        assert!(toml.contains(r#"bin_dir = "/usr/lib/cni""#));
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b/c"), "/a b/c");
        assert_eq!(unescape_mountinfo(r"/plain"), "/plain");
        assert_eq!(unescape_mountinfo(r"/end\04"), r"/end\04");
    }

    #[test]
    fn log_tail_takes_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, "a\nb\nc\nd\n").unwrap();
        assert_eq!(log_tail(&p, 2), "c\nd");
        assert_eq!(log_tail(&p, 10), "a\nb\nc\nd");
        assert_eq!(log_tail(&dir.path().join("none"), 3), "");
    }
}
