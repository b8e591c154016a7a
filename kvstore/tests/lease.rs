//! Leases against an in-process member: expiry deletes attached keys, keep-alive prevents it,
//! revoke deletes at once, time-to-live reports -1 for unknown leases.

mod common;

use std::time::{Duration, Instant};

use common::{Member, eventually};
use kvclient::KvClient;
use kvclient::proto::*;

async fn grant(c: &KvClient, ttl: i64) -> i64 {
    let r = c
        .lease_grant(&LeaseGrantRequest { ttl, id: 0 })
        .await
        .unwrap();
    assert_eq!(r.ttl, ttl);
    assert!(r.id > 0);
    r.id
}

async fn put_with(c: &KvClient, key: &str, lease: i64) -> i64 {
    c.put(&PutRequest {
        key: key.into(),
        value: "v".into(),
        lease,
        ..Default::default()
    })
    .await
    .unwrap()
    .header
    .revision
}

async fn exists(c: &KvClient, key: &str) -> bool {
    c.get(key).await.unwrap().0.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_lease_deletes_its_keys() {
    let m = Member::start().await;
    let c = &m.client;
    let id = grant(c, 1).await;
    let granted = Instant::now();
    let rev = put_with(c, "l/a", id).await;
    put_with(c, "l/b", id).await;
    put_with(c, "free", 0).await;
    let ttl = c
        .lease_time_to_live(&LeaseTimeToLiveRequest { id, keys: true })
        .await
        .unwrap();
    assert_eq!(ttl.granted_ttl, 1);
    assert!(ttl.ttl >= 0 && ttl.ttl <= 1, "{ttl:?}");
    assert_eq!(ttl.keys, ["l/a", "l/b"]);
    eventually(Duration::from_secs(10), || async {
        !exists(c, "l/a").await
    })
    .await
    .expect("the key goes when its lease expires");
    assert!(granted.elapsed() >= Duration::from_millis(900), "not early");
    assert!(!exists(c, "l/b").await);
    assert!(exists(c, "free").await);
    // Both keys went in one revision.
    let (_, h) = c.get("free").await.unwrap();
    assert_eq!(h.revision, rev + 3);
    let ttl = c
        .lease_time_to_live(&LeaseTimeToLiveRequest { id, keys: false })
        .await
        .unwrap();
    assert_eq!(ttl.ttl, -1);
    let e = c
        .lease_keep_alive(&LeaseKeepAliveRequest { id })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::LeaseNotFound));
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_keeps_the_lease() {
    let m = Member::start().await;
    let c = &m.client;
    let id = grant(c, 1).await;
    put_with(c, "kept", id).await;
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        let r = c
            .lease_keep_alive(&LeaseKeepAliveRequest { id })
            .await
            .unwrap();
        assert_eq!((r.id, r.ttl), (id, 1));
        assert!(exists(c, "kept").await, "alive while kept alive");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Once keep-alives stop, it expires.
    eventually(Duration::from_secs(10), || async {
        !exists(c, "kept").await
    })
    .await
    .expect("expires after keep-alives stop");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_deletes_keys_at_once() {
    let m = Member::start().await;
    let c = &m.client;
    let id = grant(c, 60).await;
    put_with(c, "r/1", id).await;
    let rev = put_with(c, "r/2", id).await;
    let r = c.lease_revoke(&LeaseRevokeRequest { id }).await.unwrap();
    assert_eq!(r.header.revision, rev + 1);
    assert!(!exists(c, "r/1").await && !exists(c, "r/2").await);
    let e = c
        .lease_revoke(&LeaseRevokeRequest { id })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::LeaseNotFound));
    // A put with an unknown lease is refused and changes nothing.
    let e = c
        .put(&PutRequest {
            key: "x".into(),
            lease: id,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::LeaseNotFound));
    let (_, h) = c.get("x").await.unwrap();
    assert_eq!(h.revision, rev + 1);
    // A requested id is used as is; granting it twice fails.
    let r = c
        .lease_grant(&LeaseGrantRequest { ttl: 30, id: 4242 })
        .await
        .unwrap();
    assert_eq!(r.id, 4242);
    let e = c
        .lease_grant(&LeaseGrantRequest { ttl: 30, id: 4242 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::BadRequest));
    let e = c
        .lease_grant(&LeaseGrantRequest { ttl: 0, id: 0 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::BadRequest));
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_survive_a_restart_with_a_fresh_ttl() {
    let m = Member::start().await;
    let id = grant(&m.client, 30).await;
    put_with(&m.client, "durable", id).await;
    let dir = m.stop().await;
    let m = Member::start_in(dir).await;
    let ttl = m
        .client
        .lease_time_to_live(&LeaseTimeToLiveRequest { id, keys: true })
        .await
        .unwrap();
    assert_eq!(ttl.granted_ttl, 30);
    assert!(ttl.ttl >= 29, "{ttl:?}");
    assert_eq!(ttl.keys, ["durable"]);
    m.stop().await;
}
