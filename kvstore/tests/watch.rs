//! Watch streams against an in-process member: catch-up from history then live without gaps
//! or duplicates, start at 0, prefix filters, prev_kv, compacted starts, progress requests.

mod common;

use std::time::Duration;

use common::Member;
use futures::{Stream, StreamExt};
use kvclient::KvClient;
use kvclient::proto::*;

type Watch = std::pin::Pin<Box<dyn Stream<Item = Result<WatchResponse, kvclient::KvError>> + Send>>;

async fn open(c: &KvClient, req: WatchCreateRequest) -> (Watch, i64) {
    let mut w: Watch = Box::pin(c.watch(&req).await.unwrap());
    let first = next(&mut w).await;
    assert!(first.created, "first message is created: {first:?}");
    (w, first.watch_id)
}

async fn next(w: &mut Watch) -> WatchResponse {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("watch message within 10 s")
        .expect("stream open")
        .expect("valid message")
}

async fn put(c: &KvClient, k: &str, v: &str) -> i64 {
    c.put(&PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .header
    .revision
}

/// Read messages until one reaches revision `upto`; returns (revision, events) per message.
async fn collect_until(w: &mut Watch, upto: i64) -> Vec<(i64, Vec<Event>)> {
    let mut out = Vec::new();
    loop {
        let m = next(w).await;
        assert!(!m.canceled, "unexpected cancel: {m:?}");
        if m.events.is_empty() {
            continue;
        }
        let rev = m.events[0].kv.mod_revision;
        assert!(
            m.events.iter().all(|e| e.kv.mod_revision == rev),
            "one revision per message"
        );
        out.push((rev, m.events));
        if rev >= upto {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_past_revision_history_then_live_without_gaps_or_duplicates() {
    let m = Member::start().await;
    let c = &m.client;
    for i in 1..=20 {
        assert_eq!(put(c, &format!("k/{}", i % 3), &i.to_string()).await, i);
    }
    let (mut w, _) = open(
        c,
        WatchCreateRequest {
            key: "k/".into(),
            prefix: true,
            start_revision: 5,
            ..Default::default()
        },
    )
    .await;
    // Writers run while the watcher catches up.
    let writer = {
        let c = c.clone();
        tokio::spawn(async move {
            let mut last = 0;
            for i in 21..=120 {
                last = put(&c, &format!("k/{}", i % 7), &i.to_string()).await;
            }
            last
        })
    };
    let last = writer.await.unwrap();
    assert_eq!(last, 120);
    let got = collect_until(&mut w, last).await;
    let revs: Vec<i64> = got.iter().map(|(r, _)| *r).collect();
    assert_eq!(revs, (5..=120).collect::<Vec<_>>());
    for (rev, evs) in &got {
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].type_, EventType::Put);
        assert_eq!(evs[0].kv.value, rev.to_string());
        assert!(evs[0].prev_kv.is_none(), "prev_kv only when asked");
    }
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_are_seen_once_each_in_revision_order() {
    let m = Member::start().await;
    let (mut w, _) = open(
        &m.client,
        WatchCreateRequest {
            key: "c/".into(),
            prefix: true,
            start_revision: 1,
            ..Default::default()
        },
    )
    .await;
    let mut writers = Vec::new();
    for t in 0..32 {
        let c = m.client.clone();
        writers.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..10 {
                revs.push(put(&c, &format!("c/{t}/{i}"), "v").await);
            }
            revs
        }));
    }
    let mut acked: Vec<i64> = Vec::new();
    for wr in writers {
        acked.extend(wr.await.unwrap());
    }
    acked.sort_unstable();
    assert_eq!(acked, (1..=320).collect::<Vec<_>>(), "one revision per put");
    let got = collect_until(&mut w, 320).await;
    let revs: Vec<i64> = got.iter().map(|(r, _)| *r).collect();
    assert_eq!(revs, (1..=320).collect::<Vec<_>>());
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_zero_prefix_filter_and_prev_kv() {
    let m = Member::start().await;
    let c = &m.client;
    put(c, "p/a", "old").await;
    put(c, "q/a", "other").await;
    let (mut w, id) = open(
        c,
        WatchCreateRequest {
            key: "p/".into(),
            prefix: true,
            prev_kv: true,
            ..Default::default()
        },
    )
    .await;
    assert!(id > 0);
    put(c, "q/b", "ignored").await; // 3: not under p/
    put(c, "p/a", "new").await; // 4
    c.delete_range(&DeleteRangeRequest {
        key: "p/".into(),
        prefix: true,
        ..Default::default()
    })
    .await
    .unwrap(); // 5
    let got = collect_until(&mut w, 5).await;
    assert_eq!(got.len(), 2, "only p/ events, from now on: {got:?}");
    let (r4, e4) = &got[0];
    assert_eq!(*r4, 4);
    assert_eq!(e4[0].kv.value, "new");
    assert_eq!(e4[0].prev_kv.as_ref().unwrap().value, "old");
    let (r5, e5) = &got[1];
    assert_eq!(*r5, 5);
    assert_eq!(e5[0].type_, EventType::Delete);
    assert_eq!(e5[0].kv.key, "p/a");
    assert_eq!(e5[0].kv.mod_revision, 5);
    assert_eq!(e5[0].prev_kv.as_ref().unwrap().value, "new");

    // A second watch gets a different id.
    let (_w2, id2) = open(
        c,
        WatchCreateRequest {
            key: "x".into(),
            ..Default::default()
        },
    )
    .await;
    assert_ne!(id, id2);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_start_is_canceled_with_the_compact_revision() {
    let m = Member::start().await;
    let c = &m.client;
    for i in 0..6 {
        put(c, "k", &i.to_string()).await;
    }
    c.compact(&CompactionRequest {
        revision: 4,
        physical: false,
    })
    .await
    .unwrap();
    let mut w: Watch = Box::pin(
        c.watch(&WatchCreateRequest {
            key: "k".into(),
            start_revision: 2,
            ..Default::default()
        })
        .await
        .unwrap(),
    );
    let first = next(&mut w).await;
    assert!(first.created);
    let cancel = next(&mut w).await;
    assert!(cancel.canceled);
    assert_eq!(cancel.compact_revision, 4);
    assert!(cancel.cancel_reason.contains("compacted"), "{cancel:?}");
    let end = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("stream ends");
    assert!(end.is_none(), "stream ends after cancel: {end:?}");

    // Watching from the compact revision itself works.
    let (mut w, _) = open(
        c,
        WatchCreateRequest {
            key: "k".into(),
            start_revision: 4,
            ..Default::default()
        },
    )
    .await;
    let got = collect_until(&mut w, 6).await;
    let revs: Vec<i64> = got.iter().map(|(r, _)| *r).collect();
    assert_eq!(revs, [4, 5, 6]);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_request_reports_the_current_revision() {
    let m = Member::start().await;
    let c = &m.client;
    let (mut w, id) = open(
        c,
        WatchCreateRequest {
            key: "nothing-here".into(),
            ..Default::default()
        },
    )
    .await;
    for i in 0..3 {
        put(c, "elsewhere", &i.to_string()).await;
    }
    let resp = c.watch_progress(id).await.unwrap();
    assert_eq!(resp.header.revision, 3);
    let p = next(&mut w).await;
    assert!(p.is_progress_notify(), "{p:?}");
    assert_eq!(p.watch_id, id);
    assert!(p.header.revision >= 3);
    let e = c.watch_progress(id + 1000).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::BadRequest));
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_watch_requests_are_rejected() {
    let m = Member::start().await;
    let e = match m
        .client
        .watch(&WatchCreateRequest {
            key: "b".into(),
            range_end: Some("a".into()),
            ..Default::default()
        })
        .await
    {
        Err(e) => e,
        Ok(_) => panic!("bad range accepted"),
    };
    assert_eq!(e.code(), Some(ErrorCode::BadRequest));
    m.stop().await;
}
