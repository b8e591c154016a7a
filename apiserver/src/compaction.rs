//! Periodic compaction of the kvstore's history, as Kubernetes' `--etcd-compaction-interval`
//! (default 5 minutes): every interval, compact to the revision seen one interval earlier, so
//! a watcher or a paginated list always has at least one interval to catch up.
//!
//! Several API servers may share a store: as Kubernetes does, they coordinate through the
//! version of the key `compact_rev_key` — each round is a transaction "if its version is still
//! the one I saw, write the current revision", so only one of them compacts per round, and
//! the others learn the new version and go on from there.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kvclient::proto::*;
use tokio_util::sync::CancellationToken;

use crate::cache::Caches;
use crate::error::ApiResult;
use crate::metrics::Metrics;
use crate::storage::Storage;

/// The coordination key, as Kubernetes names it.
pub const COMPACT_REV_KEY: &str = "compact_rev_key";

/// One round. `t` is the version of the coordination key last seen, `rev` the revision seen
/// one interval ago (0 on the first round). Returns the next `(t, rev)` and the revision
/// compacted to, if this round compacted.
pub async fn compact_once(
    storage: &Storage,
    t: i64,
    rev: i64,
) -> ApiResult<((i64, i64), Option<i64>)> {
    let txn = TxnRequest {
        compare: vec![Compare {
            key: COMPACT_REV_KEY.into(),
            range_end: None,
            result: CompareResult::Equal,
            target: CompareTarget::Version(t),
        }],
        success: vec![RequestOp::Put(PutRequest {
            key: COMPACT_REV_KEY.into(),
            value: rev.to_string(),
            lease: 0,
            prev_kv: false,
        })],
        failure: vec![RequestOp::Range(RangeRequest {
            key: COMPACT_REV_KEY.into(),
            ..Default::default()
        })],
    };
    let resp = storage.kv().txn(&txn).await?;
    let cur_rev = resp.header.revision;
    if !resp.succeeded {
        // Another API server compacted this round; follow its count.
        let cur_t = resp
            .responses
            .iter()
            .find_map(|r| match r {
                ResponseOp::Range(rr) => rr.kvs.first().map(|kv| kv.version),
                _ => None,
            })
            .unwrap_or(t);
        return Ok(((cur_t, cur_rev), None));
    }
    let cur_t = t + 1;
    if rev == 0 {
        // Nothing to compact on the first round: just remember where we are.
        return Ok(((cur_t, cur_rev), None));
    }
    match storage
        .kv()
        .compact(&CompactionRequest {
            revision: rev,
            physical: false,
        })
        .await
    {
        Ok(_) => Ok(((cur_t, cur_rev), Some(rev))),
        // Someone compacted further already: fine.
        Err(e) if e.code() == Some(ErrorCode::Compacted) => Ok(((cur_t, cur_rev), None)),
        Err(e) => Err(e.into()),
    }
}

/// Compact every `interval` until `shutdown`. A zero interval disables compaction.
pub async fn run(
    storage: Storage,
    caches: Arc<Caches>,
    metrics: Arc<Metrics>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    if interval.is_zero() {
        return;
    }
    let (mut t, mut rev) = (0i64, 0i64);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        match compact_once(&storage, t, rev).await {
            Ok(((nt, nrev), compacted)) => {
                t = nt;
                rev = nrev;
                if let Some(c) = compacted {
                    tracing::info!(revision = c, "compacted the kvstore");
                    metrics.compactions.fetch_add(1, Ordering::Relaxed);
                    metrics.compacted_revision.store(c, Ordering::Relaxed);
                    caches.compacted(c);
                }
            }
            Err(e) => {
                metrics.compaction_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e.status().message, "compaction failed");
            }
        }
    }
}
