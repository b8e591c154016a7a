//! Workers that drain a [`WorkQueue`] through one `reconcile(key)` function: success forgets
//! the key's backoff, failure requeues it rate-limited (the `error_policy`).

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::queue::WorkQueue;

/// What a reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the object changes again.
    AwaitChange,
    /// Look again after this long (e.g. a pod becomes available after minReadySeconds).
    RequeueAfter(Duration),
}

/// Run `workers` workers until `shutdown`. `name` prefixes log lines.
pub async fn run_workers<F, Fut, E>(
    name: &'static str,
    queue: WorkQueue,
    workers: usize,
    shutdown: CancellationToken,
    reconcile: F,
) where
    F: Fn(String) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let mut handles = Vec::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let reconcile = reconcile.clone();
        handles.push(tokio::spawn(async move {
            while let Some(key) = queue.get().await {
                match reconcile(key.clone()).await {
                    Ok(action) => {
                        queue.forget(&key);
                        if let Action::RequeueAfter(d) = action {
                            queue.add_after(key.clone(), d);
                        }
                    }
                    Err(e) => {
                        let n = queue.failures(&key);
                        if n < 3 {
                            tracing::debug!(controller = name, %key, error = %e, "sync failed; requeueing");
                        } else {
                            tracing::warn!(controller = name, %key, error = %e, failures = n, "sync failed; requeueing");
                        }
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        }));
    }
    shutdown.cancelled().await;
    queue.shut_down();
    for h in handles {
        let _ = h.await;
    }
}
