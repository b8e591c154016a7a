//! `kubectl exec` in the process runtime: the command runs on the host as a child of the
//! kubelet, as close to "inside the container" as a process runtime gets — the container's
//! environment and working directory, its memory cgroup when it has one.
//!
//! - Without a TTY: stdin, stdout and stderr are pipes (stdout or stderr the client did not ask
//!   for go to /dev/null; no stdin is /dev/null). The command leads its own process group.
//! - With a TTY: a pseudo-terminal; the command leads a new session with the terminal as its
//!   controlling terminal, stdout and stderr both go to it (merged, as in Kubernetes), `TERM`
//!   is `xterm` unless the container sets it, and resizes set the terminal's window size.
//! - When the command exits, what it left running in its process group (or session) is killed,
//!   as when a container's leader exits; then its remaining output is handed over (reads stop
//!   once nothing more arrives for [`DRAIN_IDLE`], for a process that escaped the group still
//!   holding the output open). Kubernetes keeps such leftovers running in the container; here
//!   nothing would ever stop them.
//! - The command is killed (SIGKILL to its group) when its container exits, or when the session
//!   is abandoned (the future is dropped: the client went away).
//! - A command that cannot be started is an `Err` with the runtimes' wording
//!   (`exec: "nope": executable file not found in $PATH`), not an exit code.
//!
//! Memory stays bounded: output is read in [`CHUNK`]-sized pieces into bounded channels, so a
//! slow client slows the command down (its pipe fills) instead of filling the kubelet's memory.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{Notify, mpsc, watch};

use super::process::{join_cgroup_at_exec, spawn_error, spawn_waiter};
use super::{ExecIo, ExecRequest, ExecTarget, ExitInfo, TermSize};

/// Output is read in pieces of at most this size.
pub const CHUNK: usize = 32 * 1024;
/// After the command exited, output still arriving is handed over; a read that waits this long
/// for more ends the session (something outside the group still holds the output open).
pub const DRAIN_IDLE: Duration = Duration::from_secs(2);

/// Run `req.command` as described in the module docs; its exit code (128 + n when killed by
/// signal n).
pub async fn exec(target: &ExecTarget, req: ExecRequest, io: ExecIo) -> Result<i32, String> {
    let Some((program, args)) = req.command.split_first() else {
        return Err("no command specified".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    let program = program.clone();
    if !target.working_dir.is_dir() {
        return Err(format!(
            "working directory {} does not exist",
            target.working_dir.display()
        ));
    }
    cmd.env_clear()
        .envs(target.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&target.working_dir);
    if req.tty {
        exec_tty(cmd, &program, target, req, io).await
    } else {
        exec_pipes(cmd, &program, target, req, io).await
    }
}

/// Kills the command's process group when the session is abandoned before it was reaped.
struct KillOnDrop {
    pgid: i32,
    reaped: Arc<Mutex<bool>>,
}

impl KillOnDrop {
    fn kill(&self) {
        let reaped = self.reaped.lock().unwrap_or_else(|p| p.into_inner());
        if !*reaped
            && let Err(e) = killpg(Pid::from_raw(self.pgid), Signal::SIGKILL)
            && e != Errno::ESRCH
        {
            tracing::warn!(pgid = self.pgid, error = %e, "cannot kill an exec'd command");
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A started command: its pipes (those set up), its exit, and the guard that kills it if the
/// session is dropped.
struct Started {
    stdin: Option<std::process::ChildStdin>,
    stdout: Option<std::process::ChildStdout>,
    stderr: Option<std::process::ChildStderr>,
    exit: watch::Receiver<Option<ExitInfo>>,
    guard: KillOnDrop,
}

/// Spawn `cmd` (its stdio already set up) and wait for it on a waiter thread, which kills what
/// is left of its group when it exits, then reaps it.
fn start(mut cmd: Command, program: &str, target: &ExecTarget) -> Result<Started, String> {
    let procs = join_cgroup_at_exec(&mut cmd, target.cgroup.as_deref())?;
    let child = cmd.spawn().map_err(|e| spawn_error(program, &e));
    drop(procs);
    // The command's copies of the terminal or pipe ends are closed here.
    drop(cmd);
    let mut child = child?;
    let pid = child.id() as i32;
    let reaped = Arc::new(Mutex::new(false));
    let (tx, rx) = watch::channel(None);
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    spawn_waiter(child, pid, tx, Arc::new(Notify::new()), reaped.clone());
    tracing::debug!(pid, program, "exec'd command started");
    Ok(Started {
        stdin,
        stdout,
        stderr,
        exit: rx,
        guard: KillOnDrop { pgid: pid, reaped },
    })
}

/// Exit code of a finished command.
async fn wait_exit(exit: &mut watch::Receiver<Option<ExitInfo>>) -> i32 {
    match exit.wait_for(Option::is_some).await {
        Ok(e) => e.as_ref().map(|e| e.exit_code).unwrap_or(255),
        // The waiter could not run: the command was killed.
        Err(_) => 128 + Signal::SIGKILL as i32,
    }
}

async fn exec_pipes(
    mut cmd: Command,
    program: &str,
    target: &ExecTarget,
    req: ExecRequest,
    io: ExecIo,
) -> Result<i32, String> {
    let piped = |yes: bool| if yes { Stdio::piped() } else { Stdio::null() };
    cmd.stdin(piped(req.stdin))
        .stdout(piped(req.stdout))
        .stderr(piped(req.stderr))
        .process_group(0);
    let Started {
        stdin,
        stdout,
        stderr,
        mut exit,
        guard,
    } = start(cmd, program, target)?;
    let stdin = stdin
        .map(|p| pipe::Sender::from_owned_fd(OwnedFd::from(p)))
        .transpose()
        .map_err(|e| format!("cannot set up the command's input: {e}"))?;
    let stdout = stdout
        .map(|p| pipe::Receiver::from_owned_fd(OwnedFd::from(p)))
        .transpose()
        .map_err(|e| format!("cannot set up the command's output: {e}"))?;
    let stderr = stderr
        .map(|p| pipe::Receiver::from_owned_fd(OwnedFd::from(p)))
        .transpose()
        .map_err(|e| format!("cannot set up the command's output: {e}"))?;
    let ExecIo {
        stdin: input,
        stdout: out_tx,
        stderr: err_tx,
        resize: _,
    } = io;
    let pump_in = async move {
        match stdin {
            // Dropping the pipe's write end is the command's end of input.
            Some(w) => pump_input(input, w).await,
            None => drain(input).await,
        }
    };
    let (exit_out, exit_err) = (exit.clone(), exit.clone());
    let output = async move {
        tokio::join!(
            pump_output(stdout, out_tx, exit_out),
            pump_output(stderr, err_tx, exit_err)
        );
    };
    let code = run_session(&mut exit, output, pump_in, container_exit(target, &guard)).await;
    drop(guard);
    Ok(code)
}

async fn exec_tty(
    mut cmd: Command,
    program: &str,
    target: &ExecTarget,
    req: ExecRequest,
    io: ExecIo,
) -> Result<i32, String> {
    let size = nix::pty::Winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None)
        .map_err(|e| format!("cannot allocate a terminal: {e}"))?;
    // The terminal's slave side is the command's stdin, stdout and stderr.
    let slave = || -> Result<Stdio, String> {
        pty.slave
            .try_clone()
            .map(Stdio::from)
            .map_err(|e| format!("cannot allocate a terminal: {e}"))
    };
    cmd.stdin(slave()?).stdout(slave()?).stderr(slave()?);
    if !target.env.iter().any(|(k, _)| k == "TERM") {
        cmd.env("TERM", "xterm");
    }
    // SAFETY: only async-signal-safe calls between fork and exec (setsid, ioctl), no
    // allocation. The terminal is the child's fd 0 by then.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = start(cmd, program, target);
    // Only the child keeps the terminal's slave side open: the master reads EOF (EIO) when
    // the child and everything it started have closed it.
    drop(pty.slave);
    let Started {
        mut exit, guard, ..
    } = started?;
    let master = Arc::new(
        PtyMaster::new(pty.master).map_err(|e| format!("cannot set up the terminal: {e}"))?,
    );
    let ExecIo {
        stdin: input,
        stdout: out_tx,
        stderr: err_tx,
        resize,
    } = io;
    // stderr is merged into the terminal's output.
    drop(err_tx);
    let terminal_in = terminal_input(input, resize, req.stdin, master.clone());
    let reader = PtyIo(master.clone());
    let output = pump_output(Some(reader), out_tx, exit.clone());
    let code = run_session(
        &mut exit,
        output,
        terminal_in,
        container_exit(target, &guard),
    )
    .await;
    drop(guard);
    Ok(code)
}

/// Drive a session: `output` and `exit` to their ends while `background` (input, resizes) and
/// `container` (the container's exit) run alongside; the exit code.
async fn run_session(
    exit: &mut watch::Receiver<Option<ExitInfo>>,
    output: impl Future<Output = ()>,
    background: impl Future,
    container: impl Future<Output = ()>,
) -> i32 {
    let main = async {
        let (code, ()) = tokio::join!(wait_exit(exit), output);
        code
    };
    let side = async {
        tokio::join!(background, container);
        std::future::pending::<std::convert::Infallible>().await
    };
    tokio::select! {
        code = main => code,
        never = side => match never {},
    }
}

/// Kill the command when the container it runs in exits; never returns otherwise.
async fn container_exit(target: &ExecTarget, guard: &KillOnDrop) {
    let Some(mut exit) = target.container_exit.clone() else {
        return;
    };
    if exit.wait_for(Option::is_some).await.is_ok() {
        tracing::debug!(
            pgid = guard.pgid,
            "the container exited: killing its exec'd command"
        );
        guard.kill();
    }
}

/// Write input to `w` until the client ends it. After a failed write (the command closed its
/// input) the rest is read and dropped, so the client is never blocked on it.
async fn pump_input<W: AsyncWrite + Unpin>(mut input: mpsc::Receiver<Bytes>, mut w: W) {
    while let Some(b) = input.recv().await {
        if let Err(e) = w.write_all(&b).await {
            tracing::debug!(error = %e, "the exec'd command's input is closed");
            break;
        }
    }
    drain(input).await;
}

/// Read and drop everything until the sender is gone.
async fn drain(mut input: mpsc::Receiver<Bytes>) {
    while input.recv().await.is_some() {}
}

/// A terminal's input: keys (when the client sends stdin) and window sizes, in the order the
/// client sent them — a resize that arrived before some input is applied before it is
/// written. A terminal has no end of input to give: the command reads on until it is done.
async fn terminal_input(
    mut input: mpsc::Receiver<Bytes>,
    mut resize: mpsc::Receiver<TermSize>,
    stdin: bool,
    master: Arc<PtyMaster>,
) {
    let mut writer = stdin.then(|| PtyIo(master.clone()));
    let (mut input_open, mut resize_open) = (true, true);
    while input_open || resize_open {
        tokio::select! {
            biased;
            s = resize.recv(), if resize_open => match s {
                Some(s) => master.set_size(s),
                None => resize_open = false,
            },
            b = input.recv(), if input_open => match b {
                Some(b) => {
                    if let Some(w) = writer.as_mut()
                        && let Err(e) = w.write_all(&b).await
                    {
                        tracing::debug!(error = %e, "the exec'd command's terminal is closed");
                        // The rest is read and dropped, so the client is never blocked on it.
                        writer = None;
                    }
                }
                None => input_open = false,
            },
        }
    }
}

/// Copy `reader` to `tx` in [`CHUNK`]s until its end, the receiver going away, or — once the
/// command exited — [`DRAIN_IDLE`] without anything to read.
async fn pump_output<R: AsyncRead + Unpin>(
    reader: Option<R>,
    tx: mpsc::Sender<Bytes>,
    mut exit: watch::Receiver<Option<ExitInfo>>,
) {
    let Some(mut reader) = reader else {
        return;
    };
    let mut buf = vec![0u8; CHUNK];
    let mut exited = false;
    loop {
        let read = if exited || exit.borrow().is_some() {
            exited = true;
            match tokio::time::timeout(DRAIN_IDLE, reader.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::debug!("output still open after the command exited; ending");
                    break;
                }
            }
        } else {
            tokio::select! {
                r = reader.read(&mut buf) => r,
                w = exit.wait_for(Option::is_some) => {
                    // Exited (or the waiter is gone, which only a kill causes): drain.
                    let _ = w;
                    exited = true;
                    continue;
                }
            }
        };
        match read {
            Ok(0) => break,
            Ok(n) => {
                let chunk = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "reading an exec'd command's output failed");
                break;
            }
        }
    }
}

/// The master side of a pseudo-terminal, non-blocking, read and written concurrently.
struct PtyMaster(AsyncFd<OwnedFd>);

impl PtyMaster {
    fn new(fd: OwnedFd) -> std::io::Result<PtyMaster> {
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)?;
        let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
        // SAFETY: the AsyncFd owns the descriptor, which stays open (and the same) until the
        // AsyncFd is dropped.
        let fd = unsafe { AsyncFd::register(fd) }?;
        Ok(PtyMaster(fd))
    }

    fn set_size(&self, s: TermSize) {
        if s.width == 0 || s.height == 0 {
            return;
        }
        let size = libc::winsize {
            ws_row: s.height,
            ws_col: s.width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which is valid for the call.
        let r = unsafe { libc::ioctl(self.0.as_fd().as_raw_fd(), libc::TIOCSWINSZ, &size) };
        if r < 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot resize the terminal");
        }
    }
}

/// A handle on a [`PtyMaster`] to read or write it. EIO on reading (every slave side closed)
/// is the end of the output.
struct PtyIo(Arc<PtyMaster>);

impl AsyncRead for PtyIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            let mut guard = match self.0.0.poll_read_ready(cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| {
                nix::unistd::read(fd.get_ref(), unfilled).map_err(std::io::Error::from)
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            let mut guard = match self.0.0.poll_write_ready(cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            match guard
                .try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(std::io::Error::from))
            {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn target(dir: &std::path::Path) -> ExecTarget {
        ExecTarget {
            container_id: "1".into(),
            env: vec![
                ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
                ("GREETING".into(), "hi there".into()),
            ],
            working_dir: dir.to_path_buf(),
            cgroup: None,
            container_exit: None,
        }
    }

    fn request(command: &[&str], stdin: bool, tty: bool) -> ExecRequest {
        ExecRequest {
            command: command.iter().map(|s| s.to_string()).collect(),
            tty,
            stdin,
            stdout: true,
            stderr: !tty,
        }
    }

    /// The client's ends of a session's channels.
    struct Client {
        stdin: Option<mpsc::Sender<Bytes>>,
        stdout: mpsc::Receiver<Bytes>,
        stderr: mpsc::Receiver<Bytes>,
        resize: mpsc::Sender<TermSize>,
    }

    fn channels() -> (ExecIo, Client) {
        let (i_tx, i_rx) = mpsc::channel(4);
        let (o_tx, o_rx) = mpsc::channel(4);
        let (e_tx, e_rx) = mpsc::channel(4);
        let (r_tx, r_rx) = mpsc::channel(4);
        (
            ExecIo {
                stdin: i_rx,
                stdout: o_tx,
                stderr: e_tx,
                resize: r_rx,
            },
            Client {
                stdin: Some(i_tx),
                stdout: o_rx,
                stderr: e_rx,
                resize: r_tx,
            },
        )
    }

    async fn collect(mut rx: mpsc::Receiver<Bytes>) -> String {
        let mut s = Vec::new();
        while let Some(b) = rx.recv().await {
            s.extend_from_slice(&b);
        }
        String::from_utf8_lossy(&s).into_owned()
    }

    /// Run to the end: (result, stdout, stderr).
    async fn run(
        t: ExecTarget,
        req: ExecRequest,
        input: &[u8],
    ) -> (Result<i32, String>, String, String) {
        let (io, mut c) = channels();
        let input = input.to_vec();
        let feed = async move {
            if let Some(tx) = c.stdin.take()
                && !input.is_empty()
            {
                let _ = tx.send(Bytes::from(input)).await;
            }
        };
        let (r, (), out, err) = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(
                exec(&t, req, io),
                feed,
                collect(c.stdout),
                collect(c.stderr)
            )
        })
        .await
        .expect("the command ends in time");
        (r, out, err)
    }

    async fn wait_gone(pid: i32) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while super::super::process::proc_stat(pid).is_some_and(|s| s.state != 'Z') {
            assert!(Instant::now() < deadline, "process {pid} still alive");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn pipes_keep_stdout_and_stderr_apart_with_the_containers_env_and_dir() {
        let dir = tempfile::tempdir().unwrap();
        let req = request(
            &["sh", "-c", "echo \"$GREETING\"; pwd; echo err >&2; exit 3"],
            false,
            false,
        );
        let (r, out, err) = run(target(dir.path()), req, b"").await;
        assert_eq!(r, Ok(3));
        assert_eq!(out, format!("hi there\n{}\n", dir.path().display()));
        assert_eq!(err, "err\n");
    }

    #[tokio::test]
    async fn stdin_is_piped_and_its_end_is_eof() {
        let dir = tempfile::tempdir().unwrap();
        let (r, out, _) = run(
            target(dir.path()),
            request(&["cat"], true, false),
            b"one\ntwo",
        )
        .await;
        assert_eq!((r, out.as_str()), (Ok(0), "one\ntwo"));
        // Input the command never reads is dropped, and does not block the session.
        let big = vec![b'x'; 1 << 20];
        let (r, out, _) = run(
            target(dir.path()),
            request(&["sh", "-c", "exec 0<&-; echo closed"], true, false),
            &big,
        )
        .await;
        assert_eq!((r, out.as_str()), (Ok(0), "closed\n"));
    }

    #[tokio::test]
    async fn a_missing_command_is_an_error_not_an_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let (r, _, _) = run(target(dir.path()), request(&["nope-kl"], false, false), b"").await;
        assert_eq!(
            r,
            Err("exec: \"nope-kl\": executable file not found in $PATH".into())
        );
        let (r, _, _) = run(target(dir.path()), request(&[], false, false), b"").await;
        assert_eq!(r, Err("no command specified".into()));
        let (r, _, _) = run(
            target(&dir.path().join("gone")),
            request(&["true"], false, false),
            b"",
        )
        .await;
        assert!(r.unwrap_err().contains("does not exist"));
    }

    #[tokio::test]
    async fn a_tty_merges_output_and_takes_resizes() {
        let dir = tempfile::tempdir().unwrap();
        let (io, mut c) = channels();
        let t = target(dir.path());
        let req = request(
            &["sh", "-c", "tty; read x; stty size; echo \"$TERM\" >&2"],
            true,
            true,
        );
        let stdin = c.stdin.take().unwrap();
        let drive = async move {
            c.resize
                .send(TermSize {
                    width: 100,
                    height: 30,
                })
                .await
                .unwrap();
            let mut seen = String::new();
            // Wait for the command to be at `read` (it printed its tty), then let it go on.
            while !seen.contains("/dev/pts/") {
                match c.stdout.recv().await {
                    Some(b) => seen.push_str(&String::from_utf8_lossy(&b)),
                    None => break,
                }
            }
            stdin.send(Bytes::from_static(b"go\n")).await.unwrap();
            seen.push_str(&collect(c.stdout).await);
            let err = collect(c.stderr).await;
            (seen, err)
        };
        let (r, (out, err)) = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(exec(&t, req, io), drive)
        })
        .await
        .expect("in time");
        assert_eq!(r, Ok(0));
        assert!(out.contains("/dev/pts/"), "{out:?}");
        assert!(out.contains("30 100"), "{out:?}");
        assert!(
            out.contains("xterm"),
            "stderr goes to the terminal: {out:?}"
        );
        assert_eq!(err, "");
    }

    #[tokio::test]
    async fn leftovers_die_with_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let (r, out, _) = run(
            target(dir.path()),
            request(
                &["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"],
                false,
                false,
            ),
            b"",
        )
        .await;
        assert_eq!(r, Ok(0));
        let pid: i32 = out.trim().parse().unwrap();
        wait_gone(pid).await;
    }

    #[tokio::test]
    async fn an_abandoned_session_kills_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let (io, mut c) = channels();
        let t = target(dir.path());
        let req = request(&["sh", "-c", "echo $$; exec sleep 300"], false, false);
        let mut fut = Box::pin(exec(&t, req, io));
        let pid = tokio::select! {
            _ = &mut fut => panic!("sleep 300 ended"),
            b = c.stdout.recv() => String::from_utf8_lossy(&b.unwrap()).trim().parse::<i32>().unwrap(),
        };
        drop(fut);
        wait_gone(pid).await;
    }

    #[tokio::test]
    async fn the_command_ends_with_its_container() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = watch::channel(None);
        let mut t = target(dir.path());
        t.container_exit = Some(rx);
        let (io, mut c) = channels();
        let req = request(&["sh", "-c", "echo started; exec sleep 300"], false, false);
        let fut = exec(&t, req, io);
        tokio::pin!(fut);
        tokio::select! {
            _ = &mut fut => panic!("sleep 300 ended"),
            b = c.stdout.recv() => assert_eq!(b.unwrap(), "started\n"),
        };
        tx.send_replace(Some(ExitInfo {
            exit_code: 0,
            signal: 0,
            finished_at: api::meta::Time::now(),
            finished: Instant::now(),
            reason: None,
        }));
        let r = tokio::time::timeout(Duration::from_secs(30), fut)
            .await
            .unwrap();
        assert_eq!(r, Ok(137));
    }
}
