//! The container shim, after containerd-shim and conmon: a small process between the kubelet
//! and a container, so the container does not depend on the kubelet staying up. The kubelet
//! binary re-executes itself as `<binary> container-shim <dir>`; the shim starts a new session,
//! starts the container (see [`super::process`]), writes its log, waits for it, and keeps its
//! exit status in `<dir>/exit.json` for whichever kubelet asks.
//!
//! `<dir>` holds `spec.json` (the [`ContainerSpec`] and the socket's name), `shim.log` (the
//! shim's own stderr) and, once the container is gone, `exit.json`. The shim tells the kubelet
//! that started it how the start went as one JSON line on its stdout; after that the kubelet
//! talks to it over a Unix socket with an abstract name (no path-length limit, nothing to clean
//! up): the shim sends `log` progress and, once, `exited`; the kubelet sends `TERM` or `KILL`.
//! A restarted kubelet finds the directory in its state records and connects again.

use std::io::Write;
use std::os::linux::net::SocketAddrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::meta::Time;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{Notify, mpsc, watch};

use super::process::{output_pipes, proc_stat, spawn_container, spawn_waiter};
use super::{ContainerSpec, ExitInfo, Running, ShimHandle, StopSignal};
use crate::logs::{self, LogHandle, Progress};
use crate::state::ProcRecord;

/// The first argument that turns a kubelet binary into a shim.
pub const SHIM_ARG: &str = "container-shim";

/// How the kubelet runs shims.
#[derive(Clone, Debug)]
pub struct ShimConfig {
    /// The program to re-execute (the running kubelet binary).
    pub program: PathBuf,
    /// Where the shims' directories go.
    pub dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ShimSpec {
    socket: String,
    container: ContainerSpec,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Exited {
    exit_code: i32,
    signal: i32,
    finished_at: Time,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Message {
    Started {
        pid: i32,
        start_ticks: u64,
        started_at: Time,
    },
    Error(String),
    Log {
        bytes: u64,
        closed: bool,
        generation: u64,
    },
    Exited(Exited),
}

/// Call first thing in `main`: when this process was started as a shim, be one and exit.
pub fn run_if_shim() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(std::ffi::OsStr::new(SHIM_ARG)) {
        return;
    }
    let code = match args.next() {
        Some(dir) => shim_main(Path::new(&dir)),
        None => {
            eprintln!("usage: {SHIM_ARG} DIR");
            2
        }
    };
    std::process::exit(code);
}

// ---- the shim process ----

fn report(m: &Message) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, m);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn shim_main(dir: &Path) -> i32 {
    // Our own session: a Ctrl-C or a signal to the kubelet's group does not reach us.
    let _ = nix::unistd::setsid();
    let spec: ShimSpec = match std::fs::read(dir.join("spec.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            report(&Message::Error(format!("container shim: bad spec: {e}")));
            return 1;
        }
    };
    let listener = match std::os::unix::net::SocketAddr::from_abstract_name(&spec.socket)
        .and_then(|a| std::os::unix::net::UnixListener::bind_addr(&a))
    {
        Ok(l) => l,
        Err(e) => {
            report(&Message::Error(format!(
                "container shim: cannot listen on @{}: {e}",
                spec.socket
            )));
            return 1;
        }
    };
    // Started while this process has one thread: the child's pre-exec code stays safe.
    let mut child = match spawn_container(&spec.container) {
        Ok(c) => c,
        Err(msg) => {
            report(&Message::Error(msg));
            return 1;
        }
    };
    let pid = child.id() as i32;
    let started_at = Time::now();
    let start_ticks = proc_stat(pid).map(|s| s.start_ticks).unwrap_or(0);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            report(&Message::Error(format!("container shim: {e}")));
            return 1;
        }
    };
    rt.block_on(async move {
        let reaped = Arc::new(Mutex::new(false));
        let (exit_tx, exit_rx) = watch::channel(None);
        let log = output_pipes(&mut child).and_then(|(o, e)| {
            logs::capture(&spec.container.log_path, spec.container.log_max_size, o, e)
        });
        let log = match log {
            Ok(l) => l,
            Err(e) => {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                spawn_waiter(child, pid, exit_tx, Arc::new(Notify::new()), reaped);
                report(&Message::Error(format!(
                    "cannot capture the container's output: {e}"
                )));
                return 1;
            }
        };
        spawn_waiter(child, pid, exit_tx, Arc::new(Notify::new()), reaped.clone());
        report(&Message::Started {
            pid,
            start_ticks,
            started_at,
        });
        // Nobody reads our stdout any more.
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            let _ = nix::unistd::dup2_stdout(&null);
        }
        serve(dir, listener, pid, exit_rx, log, reaped).await
    })
}

async fn serve(
    dir: &Path,
    listener: std::os::unix::net::UnixListener,
    pgid: i32,
    exit_rx: watch::Receiver<Option<ExitInfo>>,
    log: Arc<LogHandle>,
    reaped: Arc<Mutex<bool>>,
) -> i32 {
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|_| tokio::net::UnixListener::from_std(listener))
    {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!("container shim: cannot accept connections: {e}");
            None
        }
    };
    let (final_tx, final_rx) = watch::channel::<Option<Exited>>(None);
    let mut conns = tokio::task::JoinSet::new();
    let mut exit_wait = exit_rx.clone();
    let done = async {
        let _ = exit_wait.wait_for(|e| e.is_some()).await;
        // The log closes when the last writer is gone; a process that left the group could
        // hold it open, so do not wait for ever.
        let mut p = log.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(2), p.wait_for(|p| p.closed)).await;
    };
    tokio::pin!(done);
    loop {
        tokio::select! {
            _ = &mut done => break,
            acc = async {
                match &listener {
                    Some(l) => l.accept().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Ok((s, _)) = acc {
                    conns.spawn(connection(s, log.subscribe(), final_rx.clone(), reaped.clone(), pgid));
                }
            }
        }
    }
    let exit = exit_rx.borrow().clone().map_or(
        Exited {
            exit_code: 255,
            signal: 0,
            finished_at: Time::now(),
        },
        |e| Exited {
            exit_code: e.exit_code,
            signal: e.signal,
            finished_at: e.finished_at,
        },
    );
    if let Err(e) = write_atomic(&dir.join("exit.json"), &exit) {
        eprintln!("container shim: cannot record the exit status: {e}");
    }
    final_tx.send_replace(Some(exit));
    // Let connected kubelets read it; later ones find exit.json.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    0
}

fn write_atomic<T: Serialize>(path: &Path, v: &T) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(v).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

/// One kubelet's connection: log progress and the exit out, signals in.
async fn connection(
    stream: UnixStream,
    mut log_rx: watch::Receiver<Progress>,
    mut final_rx: watch::Receiver<Option<Exited>>,
    reaped: Arc<Mutex<bool>>,
    pgid: i32,
) {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    let mut log_open = true;
    loop {
        let p = *log_rx.borrow_and_update();
        let fin = final_rx.borrow_and_update().clone();
        let mut out = Vec::new();
        let msg = Message::Log {
            bytes: p.bytes,
            closed: p.closed,
            generation: p.generation,
        };
        let _ = serde_json::to_writer(&mut out, &msg);
        out.push(b'\n');
        if let Some(e) = fin {
            let _ = serde_json::to_writer(&mut out, &Message::Exited(e));
            out.push(b'\n');
            let _ = w.write_all(&out).await;
            return;
        }
        if w.write_all(&out).await.is_err() {
            return;
        }
        tokio::select! {
            r = log_rx.changed(), if log_open => log_open = r.is_ok(),
            _ = final_rx.changed() => {}
            l = lines.next_line() => match l {
                Ok(Some(cmd)) => {
                    let sig = match cmd.trim() {
                        "TERM" => Signal::SIGTERM,
                        "KILL" => Signal::SIGKILL,
                        _ => continue,
                    };
                    let guard = reaped.lock().unwrap_or_else(|p| p.into_inner());
                    if !*guard {
                        let _ = killpg(Pid::from_raw(pgid), sig);
                    }
                }
                _ => return, // the kubelet went away
            },
        }
    }
}

// ---- the kubelet's side ----

fn shim_dir(cfg: &ShimConfig, spec: &ContainerSpec) -> PathBuf {
    cfg.dir.join(format!(
        "{}_{}_{}",
        spec.pod_uid, spec.container, spec.restart_count
    ))
}

fn socket_name(dir: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    std::process::id().hash(&mut h);
    Instant::now().hash(&mut h);
    format!("kube-lite-shim-{:016x}", h.finish())
}

/// Start a container under a new shim.
pub async fn start(
    cfg: &ShimConfig,
    spec: &ContainerSpec,
    wake: Arc<Notify>,
) -> Result<Running, String> {
    let dir = shim_dir(cfg, spec);
    // A directory left from an earlier attempt of the same run is stale.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create shim directory {}: {e}", dir.display()))?;
    let shim_spec = ShimSpec {
        socket: socket_name(&dir),
        container: spec.clone(),
    };
    write_atomic(&dir.join("spec.json"), &shim_spec)
        .map_err(|e| format!("cannot write {}: {e}", dir.join("spec.json").display()))?;
    let stderr = std::fs::File::create(dir.join("shim.log"))
        .map_err(|e| format!("cannot create {}: {e}", dir.join("shim.log").display()))?;
    let mut child = tokio::process::Command::new(&cfg.program)
        .arg(SHIM_ARG)
        .arg(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start the container shim {}: {e}",
                cfg.program.display()
            )
        })?;
    let Some(out) = child.stdout.take() else {
        return Err("the container shim has no stdout".into());
    };
    let mut line = String::new();
    let read = tokio::time::timeout(
        Duration::from_secs(30),
        BufReader::new(out).read_line(&mut line),
    )
    .await;
    // Dropped, the shim is reaped in the background when it exits (tokio's orphan queue).
    drop(child);
    if !matches!(read, Ok(Ok(_))) {
        return Err(format!(
            "the container shim did not report the start (see {})",
            dir.join("shim.log").display()
        ));
    }
    match serde_json::from_str::<Message>(line.trim()) {
        Ok(Message::Started {
            pid,
            start_ticks,
            started_at,
        }) => {
            tracing::debug!(pod = %spec.pod_key, container = %spec.container, pid, dir = %dir.display(), "process started under a shim");
            let started = Instant::now();
            let stream = connect(&shim_spec.socket).await.ok();
            Ok(attach(
                dir,
                &shim_spec,
                (pid, start_ticks, started_at, started),
                stream,
                wake,
            ))
        }
        Ok(Message::Error(msg)) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(msg)
        }
        _ => Err(format!(
            "the container shim said something unexpected: {:?}",
            line.trim()
        )),
    }
}

async fn connect(socket: &str) -> std::io::Result<UnixStream> {
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(socket)?;
    let s = std::os::unix::net::UnixStream::connect_addr(&addr)?;
    s.set_nonblocking(true)?;
    UnixStream::from_std(s)
}

/// Re-attach to a container an earlier kubelet started under a shim: through its socket while
/// the shim lives, or from the exit status it left. `None`: nothing to attach to.
pub async fn reattach(record: &ProcRecord) -> Option<(Running, ContainerSpec)> {
    let dir = PathBuf::from(&record.shim_dir);
    let spec: ShimSpec =
        serde_json::from_slice(&std::fs::read(dir.join("spec.json")).ok()?).ok()?;
    let stream = connect(&spec.socket).await.ok();
    if stream.is_none() && !dir.join("exit.json").exists() {
        return None;
    }
    let started_at = record.started_at.unwrap_or_else(Time::now);
    let started = instant_of(started_at);
    let running = attach(
        dir,
        &spec,
        (record.pid, record.start_ticks, started_at, started),
        stream,
        Arc::new(Notify::new()),
    );
    Some((running, spec.container))
}

/// The monotonic instant of a wall-clock time in the past (for backoff arithmetic).
fn instant_of(t: Time) -> Instant {
    let ago = (chrono::Utc::now() - t.0).to_std().unwrap_or_default();
    Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
}

fn read_exit(dir: &Path) -> Option<Exited> {
    serde_json::from_slice(&std::fs::read(dir.join("exit.json")).ok()?).ok()
}

fn attach(
    dir: PathBuf,
    spec: &ShimSpec,
    (pid, start_ticks, started_at, started): (i32, u64, Time, Instant),
    stream: Option<UnixStream>,
    wake: Arc<Notify>,
) -> Running {
    let (exit_tx, exit_rx) = watch::channel(None);
    let start = std::fs::metadata(&spec.container.log_path).map_or(0, |m| m.len());
    let log = LogHandle::mirror(spec.container.log_path.clone(), start);
    let (sig_tx, sig_rx) = mpsc::unbounded_channel();
    tokio::spawn(follow(
        stream,
        dir.clone(),
        log.clone(),
        exit_tx,
        sig_rx,
        wake,
    ));
    Running {
        id: pid.to_string(),
        pid,
        pgid: pid,
        start_ticks,
        started_at,
        started,
        exit: exit_rx,
        log,
        reaped: Arc::new(Mutex::new(false)),
        shim: Some(ShimHandle {
            dir,
            signals: sig_tx,
        }),
        cgroup: spec.container.cgroup.clone(),
    }
}

/// Mirror what the shim says into the kubelet's log and exit watches; pass signals on.
async fn follow(
    stream: Option<UnixStream>,
    dir: PathBuf,
    log: Arc<LogHandle>,
    exit_tx: watch::Sender<Option<ExitInfo>>,
    mut signals: mpsc::UnboundedReceiver<StopSignal>,
    wake: Arc<Notify>,
) {
    let mut exited = None;
    if let Some(stream) = stream {
        let (r, mut w) = stream.into_split();
        let mut lines = BufReader::new(r).lines();
        let mut signals_open = true;
        loop {
            tokio::select! {
                l = lines.next_line() => match l {
                    Ok(Some(l)) => match serde_json::from_str::<Message>(&l) {
                        Ok(Message::Log { bytes, closed, generation }) => {
                            log.set_progress(Progress { bytes, closed, generation });
                        }
                        Ok(Message::Exited(e)) => {
                            exited = Some(e);
                            break;
                        }
                        _ => tracing::warn!(dir = %dir.display(), line = %l, "unexpected message from a container shim"),
                    },
                    _ => break,
                },
                s = signals.recv(), if signals_open => match s {
                    Some(s) => {
                        let cmd: &[u8] = match s {
                            StopSignal::Term => b"TERM\n",
                            StopSignal::Kill => b"KILL\n",
                        };
                        let _ = w.write_all(cmd).await;
                    }
                    None => signals_open = false,
                },
            }
        }
    }
    // The shim is gone: what it recorded, or the exit is unknown.
    let exit = exited.or_else(|| read_exit(&dir));
    let mut p = *log.subscribe().borrow();
    p.closed = true;
    if let Ok(m) = std::fs::metadata(&log.path) {
        p.bytes = p.bytes.max(m.len());
    }
    log.set_progress(p);
    let info = match exit {
        Some(e) => ExitInfo {
            exit_code: e.exit_code,
            signal: e.signal,
            finished: instant_of(e.finished_at),
            reason: None,
            finished_at: e.finished_at,
        },
        None => {
            tracing::warn!(dir = %dir.display(), "a container shim went away without an exit status");
            ExitInfo {
                exit_code: 255,
                signal: 0,
                finished_at: Time::now(),
                finished: Instant::now(),
                reason: None,
            }
        }
    };
    exit_tx.send_replace(Some(info));
    wake.notify_one();
}
