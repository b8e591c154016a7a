//! Group commit: concurrent write commands are collected into one Raft entry (one log append,
//! one fsync, one apply transaction).
//!
//! openraft 0.9 appends each `client_write` as its own entry and waits for its flush before the
//! next, so batching has to happen here. The proposer submits an entry, then waits until the
//! log store has flushed it (or it finished) before forming the next one from everything that
//! queued up meanwhile: the disk is always busy with the largest possible batch, and applying
//! an entry overlaps with flushing the next.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use super::{ProposeError, Raft};
use crate::command::{Answer, Batch, CmdResult, Command};

/// Entries submitted but not yet applied.
const MAX_UNAPPLIED: usize = 8;
/// Commands per entry.
const MAX_BATCH: usize = 1024;
/// Approximate bytes per entry.
const MAX_BATCH_BYTES: usize = 8 << 20;
/// Give up waiting for a flush signal after this long (e.g. an append that failed).
const FLUSH_WAIT: Duration = Duration::from_millis(500);

pub(super) struct Pending {
    pub cmd: Command,
    pub tx: oneshot::Sender<Result<CmdResult, ProposeError>>,
}

pub(super) fn spawn(raft: Raft, flushed: watch::Receiver<u64>) -> mpsc::Sender<Pending> {
    let (tx, rx) = mpsc::channel(16 * MAX_BATCH);
    tokio::spawn(run(raft, rx, flushed));
    tx
}

/// What the previous entry is waiting on.
struct InFlight {
    /// The flush counter value that means "it was flushed".
    flushed_at: u64,
    /// Fires when its results are in (or it failed).
    done: oneshot::Receiver<()>,
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Pending>, mut flushed: watch::Receiver<u64>) {
    let slots = Arc::new(Semaphore::new(MAX_UNAPPLIED));
    let mut prev: Option<InFlight> = None;
    while let Some(first) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        // Let the previous entry reach the disk first; commands queue up meanwhile.
        if let Some(mut p) = prev.take() {
            let target = p.flushed_at;
            tokio::select! {
                _ = flushed.wait_for(|n| *n >= target) => {}
                _ = &mut p.done => {}
                _ = tokio::time::sleep(FLUSH_WAIT) => {}
            }
        }
        let mut bytes = first.cmd.approx_size();
        let mut cmds = vec![first.cmd];
        let mut txs = vec![first.tx];
        while cmds.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.cmd.approx_size();
                    cmds.push(p.cmd);
                    txs.push(p.tx);
                }
                Err(_) => break,
            }
        }
        let n = cmds.len();
        let flushed_at = *flushed.borrow() + 1;
        // Submitting here (not in the spawned task) keeps entries in queue order.
        tracing::trace!(n, "write path: proposer submits");
        let answer = Answer::new(txs);
        let submitted = raft
            .client_write_ff(Batch(Arc::new(cmds), answer.clone()))
            .await;
        let (done_tx, done) = oneshot::channel();
        prev = Some(InFlight { flushed_at, done });
        tokio::spawn(async move {
            let _permit = permit;
            let result = match submitted {
                Ok(rx) => match rx.await {
                    Ok(Ok(resp)) => Ok(resp.data.0),
                    // Rejected, or truncated by a new leader: never applied.
                    Ok(Err(e)) => Err(super::write_error(e)),
                    // Raft stopped with the entry possibly in the log.
                    Err(_) => Err(ProposeError::Unknown(
                        "raft stopped before the write committed".into(),
                    )),
                },
                // Not submitted at all.
                Err(e) => Err(ProposeError::Unavailable(format!("raft: {e}"))),
            };
            let _ = done_tx.send(());
            // The state machine answered already, unless it never applied the entry here or
            // applied it as read back from disk.
            let Some(txs) = answer.take() else {
                return;
            };
            match result {
                Ok(results) if results.len() == n => {
                    tracing::trace!("write path: proposer results");
                    for (tx, r) in txs.into_iter().zip(results) {
                        let _ = tx.send(Ok(r));
                    }
                }
                Ok(results) => {
                    let e = ProposeError::Unknown(format!(
                        "state machine answered {} results for {n} commands",
                        results.len()
                    ));
                    for tx in txs {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
                Err(e) => {
                    for tx in txs {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
            }
        });
    }
}
