//! The process runtime: a container is a process group on the host. The leader is started with
//! `command` + `args` in its own group (`setpgid`), stdin from /dev/null, stdout and stderr
//! piped into the CRI-style log; a waiter thread per container waits for the leader to exit
//! *without reaping it* (`waitid(WNOWAIT)`), kills what is left of the group while the zombie
//! still pins the group id, then reaps it. So a container's exit takes every process it started
//! with it, as when a container's PID 1 exits, and no signal can hit a reused group id.
//!
//! The kubelet binaries run each container under a [`shim`](super::shim) (the same binary,
//! re-executed), which owns the process and its log, so a container outlives a kubelet crash
//! or restart and the next kubelet re-adopts it; library users without a shim binary get the
//! container as a direct child instead. A container with a memory limit joins its cgroup
//! between `fork` and `exec` ([`crate::cgroups`]).
//!
//! Limits (documented, not hidden): a process that leaves its group (`setsid`, daemons) escapes;
//! there is no filesystem or network isolation.

use std::future::Future;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::meta::Time;
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;
use tokio::net::unix::pipe;
use tokio::sync::{Notify, watch};

use super::shim::{self, ShimConfig};
use super::{
    BoxFuture, ContainerSpec, ExecIo, ExecRequest, ExecTarget, ExitInfo, Recovered, Running,
    Runtime, StartRequest, StopSignal,
};
use crate::logs;
use crate::state::{ProcRecord, boot_id};

#[derive(Clone, Debug, Default)]
pub struct ProcessRuntime {
    /// Run containers under a shim (see the module docs); `None`: as direct children.
    pub shim: Option<ShimConfig>,
}

impl Runtime for ProcessRuntime {
    fn version(&self) -> String {
        "kube-lite-process://0.1".into()
    }

    fn start<'a>(
        &'a self,
        req: &'a StartRequest,
        wake: Arc<Notify>,
    ) -> Pin<Box<dyn Future<Output = Result<Running, String>> + Send + 'a>> {
        let spec = &req.spec;
        Box::pin(async move {
            match &self.shim {
                Some(cfg) => shim::start(cfg, spec, wake).await,
                None => start_direct(spec, wake),
            }
        })
    }

    fn recover<'a>(
        &'a self,
        record: &'a ProcRecord,
    ) -> Pin<Box<dyn Future<Output = Recovered> + Send + 'a>> {
        Box::pin(async move {
            if record.boot_id != boot_id() {
                // Recorded before a reboot: those pids are not ours, and nothing survived.
                return Recovered::Gone { stopped: false };
            }
            if !record.shim_dir.is_empty()
                && let Some((running, spec)) = shim::reattach(record).await
            {
                return Recovered::Adopted {
                    running,
                    spec: Box::new(spec),
                };
            }
            let stopped = stop_recorded(
                record.pid,
                record.pgid,
                record.start_ticks,
                Duration::from_secs(2),
            )
            .await;
            Recovered::Gone { stopped }
        })
    }

    fn signal(&self, c: &Running, sig: StopSignal) {
        if let Some(s) = &c.shim {
            // The shim signals the group under its own reaped-guard.
            let _ = s.signals.send(sig);
            return;
        }
        let reaped = c.reaped.lock().unwrap_or_else(|p| p.into_inner());
        if *reaped {
            return;
        }
        let sig = match sig {
            StopSignal::Term => Signal::SIGTERM,
            StopSignal::Kill => Signal::SIGKILL,
        };
        if let Err(e) = killpg(Pid::from_raw(c.pgid), sig)
            && e != Errno::ESRCH
        {
            tracing::warn!(pgid = c.pgid, error = %e, "cannot signal process group");
        }
    }

    fn exec<'a>(
        &'a self,
        target: &'a ExecTarget,
        req: ExecRequest,
        io: ExecIo,
    ) -> BoxFuture<'a, Result<i32, String>> {
        Box::pin(super::process_exec::exec(target, req, io))
    }

    fn release(&self, c: &Running) {
        if let Some(s) = &c.shim
            && let Err(e) = std::fs::remove_dir_all(&s.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %s.dir.display(), error = %e, "cannot remove a shim's directory");
        }
    }
}

/// Start the container's leader: its own process group, output piped, in its cgroup if it has
/// one. Errors are messages for the container's status.
pub fn spawn_container(spec: &ContainerSpec) -> Result<Child, String> {
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| "no command specified".to_string())?;
    std::fs::create_dir_all(&spec.working_dir).map_err(|e| {
        format!(
            "cannot create working directory {}: {e}",
            spec.working_dir.display()
        )
    })?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.working_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let procs = join_cgroup_at_exec(&mut cmd, spec.cgroup.as_deref())?;
    let child = cmd.spawn().map_err(|e| spawn_error(program, &e));
    drop(procs);
    child
}

/// Make the process `cmd` starts join the memory cgroup `cgroup` between `fork` and `exec`.
/// The returned file must stay open until `cmd` is spawned.
pub(crate) fn join_cgroup_at_exec(
    cmd: &mut Command,
    cgroup: Option<&std::path::Path>,
) -> Result<Option<std::fs::File>, String> {
    let Some(cg) = cgroup else {
        return Ok(None);
    };
    // Opened here (close-on-exec), written by the child between fork and exec.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(cg.join("cgroup.procs"))
        .map_err(|e| format!("cannot join memory cgroup {}: {e}", cg.display()))?;
    let fd = f.as_raw_fd();
    // SAFETY: between fork and exec only async-signal-safe calls are made: getpid and
    // write on a descriptor that stays open (the caller keeps `f` until `spawn`), no
    // allocation.
    unsafe {
        cmd.pre_exec(move || {
            let mut buf = [0u8; 12];
            let text = decimal(nix::unistd::getpid().as_raw(), &mut buf);
            nix::unistd::write(BorrowedFd::borrow_raw(fd), text)
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    Ok(Some(f))
}

/// `n` in decimal, written into `buf` without allocating.
fn decimal(n: i32, buf: &mut [u8; 12]) -> &[u8] {
    let mut v = n.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// The leader's pipes as async readers.
pub fn output_pipes(child: &mut Child) -> std::io::Result<(pipe::Receiver, pipe::Receiver)> {
    match (child.stdout.take(), child.stderr.take()) {
        (Some(o), Some(e)) => Ok((
            pipe::Receiver::from_owned_fd(OwnedFd::from(o))?,
            pipe::Receiver::from_owned_fd(OwnedFd::from(e))?,
        )),
        _ => Err(std::io::Error::other("no pipes")),
    }
}

/// The container as a direct child of this process.
fn start_direct(spec: &ContainerSpec, wake: Arc<Notify>) -> Result<Running, String> {
    let mut child = spawn_container(spec)?;
    let pid = child.id() as i32;
    let started_at = Time::now();
    let started = Instant::now();
    let reaped = Arc::new(Mutex::new(false));
    let (tx, rx) = watch::channel(None);
    let log = output_pipes(&mut child)
        .and_then(|(o, e)| logs::capture(&spec.log_path, spec.log_max_size, o, e));
    let log = match log {
        Ok(l) => l,
        Err(e) => {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            spawn_waiter(child, pid, tx, wake, reaped);
            return Err(format!("cannot capture the container's output: {e}"));
        }
    };
    let start_ticks = proc_stat(pid).map(|s| s.start_ticks).unwrap_or(0);
    tracing::debug!(pod = %spec.pod_key, container = %spec.container, pid, "process started");
    spawn_waiter(child, pid, tx, wake, reaped.clone());
    Ok(Running {
        id: pid.to_string(),
        pid,
        pgid: pid,
        start_ticks,
        started_at,
        started,
        exit: rx,
        log,
        reaped,
        shim: None,
        cgroup: spec.cgroup.clone(),
    })
}

/// What `exec` failing looks like in a container status, after the container runtimes' wording.
pub(crate) fn spawn_error(program: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound if !program.contains('/') => {
            format!("exec: {program:?}: executable file not found in $PATH")
        }
        std::io::ErrorKind::NotFound => format!("exec: {program:?}: no such file or directory"),
        std::io::ErrorKind::PermissionDenied => format!("exec: {program:?}: permission denied"),
        _ => format!("exec: {program:?}: {e}"),
    }
}

pub fn spawn_waiter(
    child: Child,
    pid: i32,
    tx: watch::Sender<Option<ExitInfo>>,
    wake: Arc<Notify>,
    reaped: Arc<Mutex<bool>>,
) {
    let run = move || {
        let p = Pid::from_raw(pid);
        // 1. Wait for the leader to exit, leaving it a zombie: its pid, and so the group id,
        //    cannot be reused yet.
        loop {
            match waitid(Id::Pid(p), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
                Ok(_) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(pid, error = %e, "waitid failed");
                    break;
                }
            }
        }
        // 2. The container is over: nothing of it may outlive its leader.
        let mut guard = reaped.lock().unwrap_or_else(|p| p.into_inner());
        let _ = killpg(p, Signal::SIGKILL);
        // 3. Reap.
        let status = loop {
            match waitpid(p, None) {
                Ok(s) => break Some(s),
                Err(Errno::EINTR) => continue,
                Err(_) => break None,
            }
        };
        *guard = true;
        drop(guard);
        drop(child);
        let (exit_code, signal) = match status {
            Some(WaitStatus::Exited(_, code)) => (code, 0),
            Some(WaitStatus::Signaled(_, sig, _)) => (128 + sig as i32, sig as i32),
            _ => (255, 0),
        };
        tx.send_replace(Some(ExitInfo {
            exit_code,
            signal,
            finished_at: Time::now(),
            finished: Instant::now(),
            reason: None,
        }));
        wake.notify_one();
    };
    if let Err(e) = std::thread::Builder::new()
        .name(format!("wait-{pid}"))
        .stack_size(128 * 1024)
        .spawn(run)
    {
        // Without a waiter the container could never be seen to exit: kill it instead.
        tracing::error!(pid, error = %e, "cannot start a waiter thread; killing the container");
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The fields of `/proc/<pid>/stat` kubelet-lite needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub pgid: i32,
    pub start_ticks: u64,
}

pub fn parse_proc_stat(text: &str) -> Option<ProcStat> {
    // "pid (comm) S ppid pgrp ..." — comm may contain spaces and parentheses.
    let (_, rest) = text.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        pgid: f.get(2)?.parse().ok()?,
        start_ticks: f.get(19)?.parse().ok()?,
    })
}

pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    parse_proc_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Live (not zombie) processes in group `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            proc_stat(*pid).is_some_and(|s| s.pgid == pgid && s.state != 'Z' && s.state != 'X')
        })
        .collect()
}

/// Whether a recorded container (leader `pid` started at `start_ticks`, group `pgid`) still has
/// processes. A live leader must have the recorded start time (else the pid was reused); with
/// the leader gone, members still in the group are ours: Linux does not hand out a pid that is
/// in use as a process group id.
pub fn recorded_group_alive(pid: i32, pgid: i32, start_ticks: u64) -> bool {
    match proc_stat(pid) {
        Some(s) if s.state != 'Z' && s.state != 'X' => {
            s.start_ticks == start_ticks && s.pgid == pgid
        }
        _ => !group_members(pgid).is_empty(),
    }
}

/// Stop what is left of a container recorded by an earlier kubelet: SIGTERM the group, wait up
/// to `grace`, SIGKILL. Returns whether anything was running.
pub async fn stop_recorded(pid: i32, pgid: i32, start_ticks: u64, grace: Duration) -> bool {
    if pgid <= 1 || !recorded_group_alive(pid, pgid, start_ticks) {
        return false;
    }
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if group_members(pgid).is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !group_members(pgid).is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_without_allocating() {
        let mut b = [0u8; 12];
        assert_eq!(decimal(0, &mut b), b"0");
        assert_eq!(decimal(4194304, &mut b), b"4194304");
    }

    #[test]
    fn parses_proc_stat_with_odd_names() {
        let s = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let p = parse_proc_stat(s).unwrap();
        assert_eq!(p.state, 'S');
        assert_eq!(p.pgid, 1234);
        assert_eq!(p.start_ticks, 987654);
        assert!(parse_proc_stat("garbage").is_none());
    }

    fn spec(dir: &std::path::Path, argv: &[&str]) -> ContainerSpec {
        ContainerSpec {
            pod_uid: "u".into(),
            pod_key: "default/p".into(),
            container: "c".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![
                ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
                ("GREETING".into(), "hi".into()),
            ],
            working_dir: dir.join("work"),
            log_path: dir.join("logs/c/0.log"),
            log_max_size: u64::MAX,
            restart_count: 0,
            cgroup: None,
        }
    }

    async fn wait_exit(r: &Running) -> ExitInfo {
        let mut rx = r.exit.clone();
        let v = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|e| e.is_some()))
            .await
            .expect("exit in time")
            .expect("waiter alive");
        v.clone().expect("exit")
    }

    #[tokio::test]
    async fn runs_captures_and_reports_exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        let wake = Arc::new(Notify::new());
        let rt = ProcessRuntime::default();
        let r = rt
            .start(
                &StartRequest::from_spec(spec(
                    dir.path(),
                    &["sh", "-c", "echo $GREETING; pwd; echo err >&2; exit 3"],
                )),
                wake.clone(),
            )
            .await
            .unwrap();
        let e = wait_exit(&r).await;
        assert_eq!((e.exit_code, e.signal), (3, 0));
        r.log.subscribe().wait_for(|p| p.closed).await.unwrap();
        let text = std::fs::read_to_string(dir.path().join("logs/c/0.log")).unwrap();
        assert!(text.contains("stdout F hi\n"), "{text}");
        assert!(text.contains("stderr F err\n"), "{text}");
        assert!(text.contains(&format!("stdout F {}", dir.path().join("work").display())));
        assert!(*r.reaped.lock().unwrap());
        // A reaped container is never signalled again.
        rt.signal(&r, StopSignal::Kill);
    }

    #[tokio::test]
    async fn sigterm_reaches_the_whole_group_and_leftovers_die_with_the_leader() {
        let dir = tempfile::tempdir().unwrap();
        let rt = ProcessRuntime::default();
        // The leader ignores nothing; its background child ignores SIGTERM.
        let r = rt
            .start(
                &StartRequest::from_spec(spec(
                    dir.path(),
                    &[
                        "sh",
                        "-c",
                        "sh -c 'trap \"\" TERM; sleep 300' & echo started; wait",
                    ],
                )),
                Arc::new(Notify::new()),
            )
            .await
            .unwrap();
        let pgid = r.pgid;
        let deadline = Instant::now() + Duration::from_secs(30);
        while group_members(pgid).len() < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(group_members(pgid).len() >= 2);
        assert!(recorded_group_alive(r.pid, pgid, r.start_ticks));
        assert!(!recorded_group_alive(r.pid, pgid, r.start_ticks + 1));
        rt.signal(&r, StopSignal::Term);
        let e = wait_exit(&r).await;
        assert_eq!((e.exit_code, e.signal), (128 + 15, 15));
        // The SIGTERM-immune child was killed when the leader exited.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !group_members(pgid).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            group_members(pgid).is_empty(),
            "orphans left in group {pgid}"
        );
    }

    #[tokio::test]
    async fn missing_executables_are_start_errors() {
        let dir = tempfile::tempdir().unwrap();
        let rt = ProcessRuntime::default();
        let err = rt
            .start(
                &StartRequest::from_spec(spec(dir.path(), &["no-such-binary-kl"])),
                Arc::new(Notify::new()),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err,
            "exec: \"no-such-binary-kl\": executable file not found in $PATH"
        );
        let err = rt
            .start(
                &StartRequest::from_spec(spec(dir.path(), &[])),
                Arc::new(Notify::new()),
            )
            .await
            .unwrap_err();
        assert_eq!(err, "no command specified");
    }

    #[tokio::test]
    async fn stop_recorded_kills_a_detached_group() {
        // A group started outside any runtime, as if by a previous kubelet.
        let mut child = Command::new("sh")
            .args(["-c", "trap '' TERM; sleep 300"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut st = proc_stat(pid);
        while st.is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            st = proc_stat(pid);
        }
        let st = st.unwrap();
        assert!(!stop_recorded(pid, pid, st.start_ticks + 1, Duration::from_millis(100)).await);
        assert!(stop_recorded(pid, pid, st.start_ticks, Duration::from_millis(300)).await);
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert!(group_members(pid).is_empty());
    }
}
