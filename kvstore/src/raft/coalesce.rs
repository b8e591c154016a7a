//! Coalescing of concurrent read barriers: callers that arrive while a round is running wait
//! for the next round, which starts after they arrived — so every caller gets the answer of a
//! round that began after its call, which is what a linearizable read needs — and one round
//! serves all of them.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::ProposeError;

type Waiter = oneshot::Sender<Result<u64, ProposeError>>;

/// A handle to a coalescing loop; cheap to clone.
#[derive(Clone)]
pub(super) struct Coalescer {
    tx: mpsc::Sender<Waiter>,
}

impl Coalescer {
    /// Start a loop running `round` whenever callers wait; each round's result goes to every
    /// caller queued before it started.
    pub fn spawn<F, Fut>(round: F) -> Coalescer
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, ProposeError>> + Send,
    {
        let (tx, mut rx) = mpsc::channel::<Waiter>(1 << 16);
        tokio::spawn(async move {
            let mut waiters = Vec::new();
            while let Some(first) = rx.recv().await {
                waiters.push(first);
                while let Ok(w) = rx.try_recv() {
                    waiters.push(w);
                }
                let res = round().await;
                for w in waiters.drain(..) {
                    let _ = w.send(res.clone());
                }
            }
        });
        Coalescer { tx }
    }

    /// Join the next round and wait (at most `timeout`) for its result.
    pub async fn wait(&self, timeout: Duration) -> Result<u64, ProposeError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(tx)
            .await
            .map_err(|_| ProposeError::Unavailable("raft stopped".into()))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ProposeError::Unavailable("raft stopped".into())),
            Err(_) => Err(ProposeError::Unavailable(
                "timed out confirming leadership".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[tokio::test]
    async fn callers_share_rounds_that_start_after_them() {
        let rounds = Arc::new(AtomicU64::new(0));
        let r = rounds.clone();
        let c = Coalescer::spawn(move || {
            let r = r.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(r.fetch_add(1, Ordering::SeqCst) + 1)
            }
        });
        let first = c.wait(Duration::from_secs(5)).await.unwrap();
        assert_eq!(first, 1);
        let many: Vec<_> = (0..50)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.wait(Duration::from_secs(5)).await.unwrap() })
            })
            .collect();
        let mut got = Vec::new();
        for h in many {
            got.push(h.await.unwrap());
        }
        // 50 callers needed far fewer rounds than calls, and none reused round 1.
        assert!(got.iter().all(|&g| g >= 2));
        assert!(rounds.load(Ordering::SeqCst) <= 4, "{got:?}");
    }
}
