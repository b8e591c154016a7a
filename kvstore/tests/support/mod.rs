//! Load for fault tests: writers that put unique keys and remember which writes were
//! acknowledged, and checks that every acknowledged write is readable.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvclient::KvClient;
use kvclient::proto::{PutRequest, RangeRequest};

/// Acknowledged writes: key → (value, revision).
pub type Acked = BTreeMap<String, (String, i64)>;

/// `n` tasks each putting `/<tag>/<task>/<seq>` keys as fast as acknowledgments allow.
pub struct Writers {
    stop: Arc<AtomicBool>,
    pub acked: Arc<Mutex<Acked>>,
    /// Writes whose outcome is unknown (connection lost, timed out): may or may not exist.
    pub unknown: Arc<Mutex<Vec<String>>>,
    /// Writes refused as not applied.
    pub refused: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    pub fn start(client: &KvClient, tag: &str, n: usize) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Acked::new()));
        let unknown = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicU64::new(0));
        let tasks = (0..n)
            .map(|t| {
                let (client, stop, acked, unknown, refused) = (
                    client.clone(),
                    stop.clone(),
                    acked.clone(),
                    unknown.clone(),
                    refused.clone(),
                );
                let tag = tag.to_string();
                tokio::spawn(async move {
                    let mut seq = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        seq += 1;
                        let key = format!("/{tag}/{t}/{seq:06}");
                        let value = format!("v{t}-{seq}");
                        let res = client
                            .put(&PutRequest {
                                key: key.clone(),
                                value: value.clone(),
                                ..Default::default()
                            })
                            .await;
                        match res {
                            Ok(r) => {
                                acked
                                    .lock()
                                    .unwrap()
                                    .insert(key, (value, r.header.revision));
                            }
                            Err(e) if e.outcome_unknown() => unknown.lock().unwrap().push(key),
                            Err(_) => {
                                refused.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        Writers {
            stop,
            acked,
            unknown,
            refused,
            tasks,
        }
    }

    pub fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Wait until at least `n` writes are acknowledged (panics after `timeout`).
    pub async fn wait_acked(&self, n: usize, timeout: Duration) {
        let what = format!("{n} acknowledged writes");
        testkit::wait_for(&what, timeout, || async {
            (self.acked_count() >= n).then_some(())
        })
        .await;
    }

    /// Stop and return what was acknowledged.
    pub async fn stop(self) -> Acked {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
        self.acked.lock().unwrap().clone()
    }
}

/// Every key under `/<tag>/` with its value and mod revision, read from `client`.
pub async fn read_all(
    client: &KvClient,
    tag: &str,
    serializable: bool,
) -> Result<BTreeMap<String, (String, i64)>, kvclient::KvError> {
    let r = client
        .range(&RangeRequest {
            key: format!("/{tag}/"),
            prefix: true,
            serializable,
            ..Default::default()
        })
        .await?;
    Ok(r.kvs
        .into_iter()
        .map(|kv| (kv.key, (kv.value, kv.mod_revision)))
        .collect())
}

/// Assert every acknowledged write is in `found` with its value and revision.
pub fn assert_all_acked_present(
    acked: &Acked,
    found: &BTreeMap<String, (String, i64)>,
    what: &str,
) {
    let missing: Vec<&String> = acked
        .iter()
        .filter(|(k, v)| found.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty(),
        "{what}: {} of {} acknowledged writes missing or changed, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
}
