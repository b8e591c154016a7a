//! A follower's writes go to the leader in batches: concurrent commands share one
//! `POST /raft/propose` (one HTTP round trip), and the leader's proposer packs them into its
//! next Raft entry. While the batches in flight fill their slots, new commands queue up and
//! leave together.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::ProposeError;
use super::network::{PROPOSE_PATH, propose_remote};
use crate::command::{CmdResult, Command};

/// Batches on the wire at once, per member.
const MAX_IN_FLIGHT: usize = 4;
/// Commands per batch.
const MAX_BATCH: usize = 1024;
/// Approximate bytes per batch.
const MAX_BATCH_BYTES: usize = 4 << 20;

pub(super) struct Fwd {
    pub cmd: Command,
    pub leader_url: String,
    pub tx: oneshot::Sender<Result<CmdResult, ProposeError>>,
}

pub(super) fn spawn(http: reqwest::Client, timeout: Duration) -> mpsc::Sender<Fwd> {
    let (tx, rx) = mpsc::channel(16 * MAX_BATCH);
    tokio::spawn(run(http, rx, timeout));
    tx
}

async fn run(http: reqwest::Client, mut rx: mpsc::Receiver<Fwd>, timeout: Duration) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    // A command for another leader than the batch being formed waits for the next batch.
    let mut held: Option<Fwd> = None;
    loop {
        let first = match held.take() {
            Some(f) => f,
            None => match rx.recv().await {
                Some(f) => f,
                None => return,
            },
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let url = first.leader_url.clone();
        let mut bytes = first.cmd.approx_size();
        let mut cmds = vec![first.cmd];
        let mut txs = vec![first.tx];
        while cmds.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(f) if f.leader_url == url => {
                    bytes += f.cmd.approx_size();
                    cmds.push(f.cmd);
                    txs.push(f.tx);
                }
                Ok(f) => {
                    held = Some(f);
                    break;
                }
                Err(_) => break,
            }
        }
        let http = http.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let n = cmds.len();
            let res: Result<Vec<Result<CmdResult, ProposeError>>, ProposeError> =
                propose_remote(&http, &url, PROPOSE_PATH, &cmds, timeout).await;
            match res {
                Ok(results) if results.len() == n => {
                    for (tx, r) in txs.into_iter().zip(results) {
                        let _ = tx.send(r);
                    }
                }
                Ok(results) => {
                    let e = ProposeError::Unknown(format!(
                        "the leader answered {} results for {n} commands",
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
