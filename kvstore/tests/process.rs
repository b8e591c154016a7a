//! The real `kvstore` binary as a separate process: acknowledged writes and the revision survive
//! SIGTERM and SIGKILL restarts on the same data dir; bad flags fail with one line.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{eventually, wait_healthy};
use futures::StreamExt;
use kvclient::KvClient;
use kvclient::proto::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

struct Proc {
    child: Child,
    url: String,
}

use testkit::free_port;

fn spawn(dir: &Path, client_port: u16, peer_port: u16) -> Proc {
    spawn_with(dir, client_port, peer_port, &[])
}

fn spawn_with(dir: &Path, client_port: u16, peer_port: u16, env: &[(&str, &str)]) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("kvstore.log"))
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_kvstore"))
        .args(["--name", "solo", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--listen-client-urls")
        .arg(format!("http://127.0.0.1:{client_port}"))
        .arg("--listen-peer-urls")
        .arg(format!("http://127.0.0.1:{peer_port}"))
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Proc {
        child,
        url: format!("http://127.0.0.1:{client_port}"),
    }
}

impl Proc {
    async fn signal_and_wait(mut self, sig: Signal) -> std::process::ExitStatus {
        kill(Pid::from_raw(self.child.id() as i32), sig).unwrap();
        let mut status = None;
        eventually(Duration::from_secs(20), || {
            status = self.child.try_wait().unwrap();
            std::future::ready(status.is_some())
        })
        .await
        .expect("kvstore exits after the signal");
        status.unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn all() -> RangeRequest {
    RangeRequest {
        key: "".into(),
        range_end: Some("\0".into()),
        ..Default::default()
    }
}

/// Write a mix of requests; returns what a full range showed afterwards.
async fn write_workload(c: &KvClient, tag: &str) -> RangeResponse {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let c = c.clone();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                c.put(&PutRequest {
                    key: format!("/{tag}/{t}/{i}"),
                    value: format!("value {i}"),
                    ..Default::default()
                })
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    c.txn(&TxnRequest {
        compare: vec![Compare::mod_revision(
            format!("/{tag}/txn"),
            CompareResult::Equal,
            0,
        )],
        success: vec![RequestOp::Put(PutRequest {
            key: format!("/{tag}/txn"),
            value: "created".into(),
            ..Default::default()
        })],
        failure: vec![],
    })
    .await
    .unwrap();
    c.delete_range(&DeleteRangeRequest {
        key: format!("/{tag}/0/"),
        prefix: true,
        ..Default::default()
    })
    .await
    .unwrap();
    c.range(&all()).await.unwrap()
}

async fn restart_keeps_acknowledged_writes(sig: Signal) {
    let dir = tempfile::tempdir().unwrap();
    let (cp, pp) = (free_port(), free_port());
    let p = spawn(dir.path(), cp, pp);
    wait_healthy(&p.url, Duration::from_secs(30)).await;
    let c = KvClient::new(vec![p.url.clone()]).unwrap();
    let before = write_workload(&c, "one").await;
    assert_eq!(before.count, 8 * 25 - 25 + 1);
    assert_eq!(before.header.revision, 8 * 25 + 2);

    // A watch from the first revision sees every write, in order.
    let mut w = Box::pin(
        c.watch(&WatchCreateRequest {
            key: "/".into(),
            prefix: true,
            start_revision: 1,
            ..Default::default()
        })
        .await
        .unwrap(),
    );
    let mut seen = Vec::new();
    while seen.last() != Some(&before.header.revision) {
        let m = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("watch message")
            .expect("stream open")
            .unwrap();
        if !m.events.is_empty() {
            seen.push(m.events[0].kv.mod_revision);
        }
    }
    assert_eq!(seen, (1..=before.header.revision).collect::<Vec<_>>());

    let status = p.signal_and_wait(sig).await;
    if sig == Signal::SIGTERM {
        assert!(
            status.success(),
            "clean exit on SIGTERM: {status:?}\n{}",
            log(dir.path())
        );
    }
    drop(w);

    let p = spawn(dir.path(), cp, pp);
    wait_healthy(&p.url, Duration::from_secs(30)).await;
    let after = match c.range(&all()).await {
        Ok(a) => a,
        Err(e) => panic!("{e}\n{}", log(dir.path())),
    };
    assert_eq!(after.kvs, before.kvs);
    assert_eq!(after.header.revision, before.header.revision);
    // History survived too: a read just before the final delete still sees its keys.
    let old = c
        .range(&RangeRequest {
            revision: before.header.revision - 1,
            count_only: true,
            ..all()
        })
        .await
        .unwrap();
    assert_eq!(old.count, 8 * 25 + 1);
    // And the store keeps going from there.
    let next = c
        .put(&PutRequest {
            key: "/after".into(),
            value: "restart".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(next.header.revision, before.header.revision + 1);
    let status = p.signal_and_wait(Signal::SIGTERM).await;
    assert!(status.success(), "{status:?}\n{}", log(dir.path()));
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("kvstore.log")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_restart_keeps_every_acknowledged_write() {
    restart_keeps_acknowledged_writes(Signal::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_restart_keeps_every_acknowledged_write() {
    restart_keeps_acknowledged_writes(Signal::SIGKILL).await;
}

/// With a snapshot every few entries, logs are purged behind snapshots; a crash right after
/// must still lose nothing acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_snapshots_and_log_purges_keeps_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let (cp, pp) = (free_port(), free_port());
    let env = [("KVSTORE_SNAPSHOT_LOGS", "7")];
    let p = spawn_with(dir.path(), cp, pp, &env);
    wait_healthy(&p.url, Duration::from_secs(30)).await;
    let c = KvClient::new(vec![p.url.clone()]).unwrap();
    // Sequential writes: one Raft entry each, so many snapshots and purges happen.
    for i in 0..60 {
        c.put(&PutRequest {
            key: format!("/s/{}", i % 13),
            value: i.to_string(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let before = c.range(&all()).await.unwrap();
    assert_eq!(before.header.revision, 60);
    let snapshot = dir.path().join("data/snapshot/snapshot");
    assert!(snapshot.exists(), "a snapshot was written");
    p.signal_and_wait(Signal::SIGKILL).await;

    let p = spawn_with(dir.path(), cp, pp, &env);
    wait_healthy(&p.url, Duration::from_secs(30)).await;
    let after = c.range(&all()).await.unwrap();
    assert_eq!(after.kvs, before.kvs, "{}", log(dir.path()));
    assert_eq!(after.header.revision, 60);
    // The state lives in memory: it came back from the snapshot plus the log after it.
    assert!(
        log(dir.path()).contains("restored the latest snapshot"),
        "{}",
        log(dir.path())
    );
    let old = c
        .range(&RangeRequest {
            key: "/s/0".into(),
            revision: 14,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(old.kvs[0].value, "13");
    let status = p.signal_and_wait(Signal::SIGTERM).await;
    assert!(status.success(), "{status:?}\n{}", log(dir.path()));
}

#[test]
fn bad_flags_fail_with_one_line() {
    for args in [
        vec!["--bogus"],
        vec!["--listen-client-urls", "not a url"],
        vec!["--listen-client-urls", "https://127.0.0.1:1"],
        vec!["--listen-client-urls", "http://127.0.0.1"],
        vec!["--initial-cluster", "a=http://127.0.0.1:1,b"],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_kvstore"))
            .args(&args)
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--listen-peer-urls")
            .arg(format!("http://127.0.0.1:{}", free_port()))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("kvstore: "), "{args:?}: {err}");
    }
}

/// Few entries but many bytes: snapshots are also taken by log size (at 256 clients an entry
/// is a batch of a few hundred KiB), and a restart comes back from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_also_taken_by_log_size() {
    let dir = tempfile::tempdir().unwrap();
    let (cp, pp) = (free_port(), free_port());
    let env = [("KVSTORE_SNAPSHOT_BYTES", "20000")];
    let p = spawn_with(dir.path(), cp, pp, &env);
    wait_healthy(&p.url, Duration::from_secs(30)).await;
    let c = KvClient::new(vec![p.url.clone()]).unwrap();
    // ~2 KB per entry: far below the 10 000 entries of the count policy, past 20 000 bytes.
    for i in 0..40 {
        c.put(&PutRequest {
            key: format!("/big/{i}"),
            value: "x".repeat(2000),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let snapshot = dir.path().join("data/snapshot/snapshot");
    eventually(Duration::from_secs(20), || {
        std::future::ready(snapshot.exists() && log(dir.path()).contains("snapshot built"))
    })
    .await
    .unwrap_or_else(|| panic!("no snapshot by size:\n{}", log(dir.path())));
    assert!(
        log(dir.path()).contains("that much log appended"),
        "{}",
        log(dir.path())
    );
    let before = c.range(&all()).await.unwrap();
    assert_eq!(before.kvs.len(), 40);
    p.signal_and_wait(Signal::SIGKILL).await;

    let p = spawn_with(dir.path(), cp, pp, &env);
    wait_healthy(&p.url, Duration::from_secs(30)).await;
    let after = c.range(&all()).await.unwrap();
    assert_eq!(after.kvs, before.kvs, "{}", log(dir.path()));
    assert!(
        log(dir.path()).contains("restored the latest snapshot"),
        "{}",
        log(dir.path())
    );
    let status = p.signal_and_wait(Signal::SIGTERM).await;
    assert!(status.success(), "{status:?}\n{}", log(dir.path()));
}
