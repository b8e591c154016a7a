//! The local terminal for `exec -t`: raw mode while the session runs (restored however it
//! ends), the window size, and its changes (SIGWINCH) as a stream of sizes.

use std::io::IsTerminal;
use std::os::fd::{AsFd, AsRawFd};

use api::remotecommand::TerminalSize;
use nix::sys::termios::{self, SetArg, Termios};
use tokio::sync::mpsc;

/// Whether stdin is a terminal (kubectl's `IsTerminalIn`).
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// The terminal in raw mode until dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Put stdin's terminal in raw mode: keys go to the remote side as typed (Ctrl-C too).
    pub fn enable() -> std::io::Result<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// The size of the terminal on stdout (else stdin), if there is one.
pub fn size() -> Option<TerminalSize> {
    for fd in [
        std::io::stdout().as_fd().as_raw_fd(),
        std::io::stdin().as_fd().as_raw_fd(),
    ] {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one winsize to the pointer, valid for the call.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0 {
            return Some(TerminalSize {
                width: ws.ws_col,
                height: ws.ws_row,
            });
        }
    }
    None
}

/// The current size, then one per change of the window (kubectl's `MonitorSize`). Ends with
/// the receiver.
pub fn monitor_size() -> mpsc::Receiver<TerminalSize> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut last = size();
        if let Some(s) = last
            && tx.send(s).await.is_err()
        {
            return;
        }
        let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while winch.recv().await.is_some() {
            let now = size();
            if now != last
                && let Some(s) = now
            {
                last = now;
                if tx.send(s).await.is_err() {
                    return;
                }
            }
        }
    });
    rx
}
