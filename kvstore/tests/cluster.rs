//! A 3-member cluster of real `kvstore` processes under faults: kill -9 of the leader under
//! write load, a paused (SIGSTOP) leader, a minority that must not commit, every member killed
//! and restarted, a fourth member joining from a snapshot through `kvstore ctl`, leases across
//! a leader change, bad requests through followers, and reads through followers that hear of
//! commits in batches.
//!
//! The tests run one at a time (each is a whole cluster on a two-core machine) and wait by
//! polling with deadlines.

mod support;

use std::time::{Duration, Instant};

use kvclient::KvClient;
use kvclient::proto::*;
use support::{Writers, assert_all_acked_present, read_all};
use testkit::kvcluster::{KvCluster, member_id};
use testkit::{DEFAULT_TIMEOUT, wait_for};

/// One cluster at a time (an async mutex: it is held across the whole test).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const T: Duration = Duration::from_secs(60);

fn client_for(c: &KvCluster, members: &[usize]) -> KvClient {
    KvClient::new(
        members
            .iter()
            .map(|&i| c.members[i].client_url.clone())
            .collect(),
    )
    .unwrap()
}

fn others(n: usize, not: usize) -> Vec<usize> {
    (0..n).filter(|&i| i != not).collect()
}

/// Wait until member `i` has applied everything member `j` had applied when asked.
async fn wait_caught_up(c: &KvCluster, i: usize, j: usize) {
    let target = wait_for("a status answer", T, || async {
        c.status(j).await.map(|s| s.raft_applied_index)
    })
    .await;
    c.wait_applied(i, target, T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_leader_under_load_loses_nothing_and_a_new_leader_writes_within_2s() {
    let _g = SERIAL.lock().await;
    let mut c = KvCluster::start(3).await;
    let w = Writers::start(&c.client(), "load", 8);
    w.wait_acked(200, T).await;

    let leader = c.wait_leader(T).await;
    let survivors = others(3, leader);
    let probe = client_for(&c, &survivors);
    let killed = Instant::now();
    c.kill(leader);
    // The first write acknowledged after the kill: the new leader serves it.
    let mut n = 0;
    let failover = loop {
        n += 1;
        let r = probe
            .put(&PutRequest {
                key: format!("/probe/{n}"),
                value: "after the kill".into(),
                ..Default::default()
            })
            .await;
        if r.is_ok() {
            break killed.elapsed();
        }
        assert!(killed.elapsed() < T, "no write succeeded after the kill");
    };
    eprintln!("failover: a new leader acknowledged a write {failover:?} after the kill");
    assert!(
        failover < Duration::from_secs(2),
        "a new leader took {failover:?} to serve a write\n{}",
        c.logs_tail(30)
    );
    let before = w.acked_count();
    w.wait_acked(before + 200, T).await;
    let acked = w.stop().await;

    // Every acknowledged write is on the survivors (linearizable read)…
    let found = read_all(&probe, "load", false).await.unwrap();
    assert_all_acked_present(&acked, &found, "after the kill");
    // …and on the killed member once it is back and has caught up.
    c.start_member(leader);
    let new_leader = c.wait_leader(T).await;
    wait_caught_up(&c, leader, new_leader).await;
    let there = read_all(&c.member_client(leader), "load", true)
        .await
        .unwrap();
    assert_eq!(
        there, found,
        "the restarted member has exactly the cluster's data"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_leader_is_replaced_and_catches_up_after_resuming() {
    let _g = SERIAL.lock().await;
    let c = KvCluster::start(3).await;
    let w = Writers::start(&c.client(), "pause", 6);
    w.wait_acked(100, T).await;
    let leader = c.wait_leader(T).await;
    c.pause(leader);
    let paused_at = w.acked_count();
    // The others elect a leader and keep acknowledging writes.
    let new_leader = c.wait_leader_except(&[leader], T).await;
    assert_ne!(new_leader, leader);
    w.wait_acked(paused_at + 200, T).await;
    c.resume(leader);
    // The old leader steps down and follows the new term.
    let agreed = c.wait_leader(T).await;
    assert_ne!(
        agreed, leader,
        "a stale leader must not win back by resuming"
    );
    let acked = w.stop().await;
    for i in 0..3 {
        wait_caught_up(&c, i, agreed).await;
        let found = read_all(&c.member_client(i), "pause", true).await.unwrap();
        assert_all_acked_present(&acked, &found, &format!("member {i} after the pause"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_cannot_commit() {
    let _g = SERIAL.lock().await;
    let mut c = KvCluster::start(3).await;
    let cl = c.client();
    cl.put(&PutRequest {
        key: "/m/base".into(),
        value: "1".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    // Keep the leader, lose both followers.
    let leader = c.wait_leader(T).await;
    for i in others(3, leader) {
        c.kill(i);
    }
    let before = c.status(leader).await.unwrap();
    let lone = c.member_client(leader);
    let res = lone
        .put(&PutRequest {
            key: "/m/lost".into(),
            value: "never".into(),
            ..Default::default()
        })
        .await;
    let err = res.expect_err("a lone member must not acknowledge a write");
    assert!(
        err.outcome_unknown() || err.code() == Some(ErrorCode::Unavailable),
        "{err}"
    );
    // Nothing was applied, the write is invisible, and linearizable reads fail.
    let after = c.status(leader).await.unwrap();
    assert_eq!(after.raft_applied_index, before.raft_applied_index);
    assert_eq!(after.header.revision, before.header.revision);
    let r = lone
        .range(&RangeRequest {
            key: "/m/lost".into(),
            serializable: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(r.kvs.is_empty());
    let lin = lone
        .range(&RangeRequest {
            key: "/m/base".into(),
            ..Default::default()
        })
        .await;
    assert!(lin.is_err(), "a linearizable read needs a quorum");
    // A follower back: a quorum again, and writes go through.
    let back = others(3, leader)[0];
    c.start_member(back);
    c.wait_leader(T).await;
    cl.put(&PutRequest {
        key: "/m/again".into(),
        value: "2".into(),
        ..Default::default()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_every_member_and_restarting_loses_nothing_acknowledged() {
    let _g = SERIAL.lock().await;
    let mut c = KvCluster::start(3).await;
    let w = Writers::start(&c.client(), "all", 8);
    w.wait_acked(300, T).await;
    for i in 0..3 {
        c.kill(i);
    }
    let acked = w.stop().await;
    let max_rev = acked.values().map(|(_, r)| *r).max().unwrap();
    for i in 0..3 {
        c.start_member(i);
    }
    let leader = c.wait_leader(T).await;
    let found = read_all(&c.client(), "all", false).await.unwrap();
    assert_all_acked_present(&acked, &found, "after restarting every member");
    for i in 0..3 {
        wait_caught_up(&c, i, leader).await;
        let st = c.status(i).await.unwrap();
        assert!(st.header.revision >= max_rev);
        let there = read_all(&c.member_client(i), "all", true).await.unwrap();
        assert_eq!(there, found, "member {i} has the same data");
    }
}

fn ctl(c: &KvCluster, args: &[&str]) -> String {
    let eps = c
        .members
        .iter()
        .filter(|m| m.proc.is_some())
        .map(|m| m.client_url.clone())
        .collect::<Vec<_>>()
        .join(",");
    let mut all = vec!["ctl", "--endpoints", &eps];
    all.extend_from_slice(args);
    let (code, out, err) = testkit::run_cli("kvstore", &all, &[], None);
    assert_eq!(code, 0, "kvstore {all:?} failed: {err}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_member_joins_from_a_snapshot_and_membership_changes_through_ctl() {
    let _g = SERIAL.lock().await;
    // Snapshot every 20 entries and keep 20 behind it: the log's start is purged early.
    let mut c = KvCluster::start_with_env(3, &[("KVSTORE_SNAPSHOT_LOGS", "20")]).await;
    let cl = c.client();
    for i in 0..150 {
        cl.put(&PutRequest {
            key: format!("/join/{i:03}"),
            value: format!("v{i}"),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let n4 = c.add_member("n4");
    let peer = c.members[n4].peer_url.clone();
    let client_url = c.members[n4].client_url.clone();
    let out = ctl(
        &c,
        &[
            "member",
            "add",
            "n4",
            "--peer-urls",
            &peer,
            "--client-urls",
            &client_url,
            "--learner",
        ],
    );
    assert!(out.contains("added to cluster"), "{out}");
    let list = ctl(&c, &["member", "list"]);
    assert!(
        list.contains("IS LEARNER") && list.contains("n4") && list.contains("true"),
        "{list}"
    );
    c.start_member(n4);
    let leader = c.wait_leader(T).await;
    wait_caught_up(&c, n4, leader).await;
    let log = c.log(n4);
    assert!(
        log.contains("installed a snapshot from the leader"),
        "n4 should have caught up from a snapshot:\n{log}"
    );
    // Promote once in sync (the leader may still think it lags for a moment).
    let id = format!("{:x}", member_id("n4"));
    wait_for("n4 to be promoted", T, || async {
        let eps = c.endpoints().join(",");
        let (code, out, _) = testkit::run_cli(
            "kvstore",
            &["ctl", "--endpoints", &eps, "member", "promote", &id],
            &[],
            None,
        );
        (code == 0).then_some(out)
    })
    .await;
    let status = ctl(&c, &["endpoint", "status", "--cluster"]);
    for col in [
        "IS LEADER",
        "RAFT TERM",
        "RAFT INDEX",
        "RAFT APPLIED INDEX",
        "REVISION",
        "DB SIZE",
    ] {
        assert!(status.contains(col), "{status}");
    }
    assert_eq!(status.matches("| http://").count(), 4, "{status}");
    // n4 serves linearizable reads with everything.
    let found = read_all(&c.member_client(n4), "join", false).await.unwrap();
    assert_eq!(found.len(), 150);
    let h = c.status(n4).await.unwrap().header;
    let h1 = c.status(leader).await.unwrap().header;
    assert_eq!(
        h.cluster_id, h1.cluster_id,
        "the joiner learned the cluster id"
    );

    // Remove a member that is not the leader: it stops itself; the other three keep writing.
    let leader = c.wait_leader(T).await;
    let victim = (0..3).find(|&i| i != leader).unwrap();
    let vid = format!("{:x}", member_id(&c.members[victim].name));
    let out = ctl(&c, &["member", "remove", &vid]);
    assert!(out.contains("removed"), "{out}");
    let deadline = Instant::now() + T;
    while !c.members[victim].proc.as_mut().is_some_and(|p| p.exited()) {
        assert!(Instant::now() < deadline, "the removed member did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.kill(victim);
    let list = ctl(&c, &["member", "list"]);
    assert!(!list.contains(&vid), "{list}");
    c.client()
        .put(&PutRequest {
            key: "/join/after-remove".into(),
            value: "ok".into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_survive_a_leader_change_and_expire_through_raft() {
    let _g = SERIAL.lock().await;
    let mut c = KvCluster::start(3).await;
    let cl = c.client();
    let ttl = 3;
    let lease = cl
        .lease_grant(&LeaseGrantRequest { ttl, id: 0 })
        .await
        .unwrap()
        .id;
    cl.put(&PutRequest {
        key: "/lease/k".into(),
        value: "v".into(),
        lease,
        ..Default::default()
    })
    .await
    .unwrap();
    let leader = c.wait_leader(T).await;
    let survivors = others(3, leader);
    let sc = client_for(&c, &survivors);
    cl.lease_keep_alive(&LeaseKeepAliveRequest { id: lease })
        .await
        .unwrap();
    c.kill(leader);
    let new_leader = c.wait_leader_except(&[leader], T).await;
    let elected = Instant::now();
    // The new leader gives every lease its full TTL again: the key outlives the old deadline.
    while elected.elapsed() < Duration::from_secs(ttl as u64) - Duration::from_millis(500) {
        let r = sc
            .range(&RangeRequest {
                key: "/lease/k".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            r.kvs.len(),
            1,
            "lease expired early after the leader change"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Without keep-alives it expires, and its key is deleted on every member.
    wait_for("the lease to expire", T, || async {
        let r = sc
            .range(&RangeRequest {
                key: "/lease/k".into(),
                ..Default::default()
            })
            .await
            .ok()?;
        r.kvs.is_empty().then_some(())
    })
    .await;
    for &i in &survivors {
        wait_caught_up(&c, i, new_leader).await;
        let r = c
            .member_client(i)
            .range(&RangeRequest {
                key: "/lease/k".into(),
                serializable: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(r.kvs.is_empty());
    }
    let ttl_left = sc
        .lease_time_to_live(&LeaseTimeToLiveRequest {
            id: lease,
            keys: false,
        })
        .await
        .unwrap();
    assert_eq!(ttl_left.ttl, -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_through_any_member_get_4xx_and_change_nothing() {
    let _g = SERIAL.lock().await;
    let c = KvCluster::start(3).await;
    let leader = c.wait_leader(DEFAULT_TIMEOUT).await;
    let follower = others(3, leader)[0];
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let before = c.status(leader).await.unwrap().header.revision;
    let url = &c.members[follower].client_url;
    let big = "x".repeat(MAX_VALUE_BYTES + 1);
    let cases: Vec<(&str, String, u16)> = vec![
        ("/v3/kv/put", "{not json".into(), 400),
        ("/v3/kv/put", r#"{"key":"a","vaule":"x"}"#.into(), 400),
        (
            "/v3/kv/put",
            serde_json::json!({"key": "a", "value": big}).to_string(),
            413,
        ),
        ("/v3/kv/range", r#"{"key":"b","range_end":"a"}"#.into(), 400),
        (
            "/v3/kv/txn",
            r#"{"success":[{"put":{"key":""}}]}"#.into(),
            400,
        ),
        (
            "/v3/cluster/member/add",
            r#"{"name":"x","peerURLs":["ftp://nope"]}"#.into(),
            400,
        ),
        ("/v3/cluster/member/remove", r#"{"ID":12345}"#.into(), 404),
    ];
    for (path, body, status) in cases {
        let r = http
            .post(format!("{url}{path}"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            status,
            "{path} {}",
            &body[..body.len().min(80)]
        );
        let e: ErrorBody = r.json().await.unwrap();
        assert!(!e.error.is_empty());
    }
    let after = c.status(leader).await.unwrap().header.revision;
    assert_eq!(after, before, "bad requests wrote nothing");
}

/// Followers hear of commits in batches (`raft/pacing.rs`), yet a linearizable read through a
/// follower sees every write acknowledged before it, and a follower's own (serializable) view
/// catches up without further writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_hear_of_commits_late_but_their_reads_stay_linearizable() {
    let _g = SERIAL.lock().await;
    let c = KvCluster::start(3).await;
    let leader = c.wait_leader(DEFAULT_TIMEOUT).await;
    let to_leader = client_for(&c, &[leader]);
    let followers = others(3, leader);
    let (f1, f2) = (
        client_for(&c, &followers[..1]),
        client_for(&c, &followers[1..]),
    );
    for i in 0..50 {
        let key = format!("/paced/{i}");
        let put = to_leader
            .put(&PutRequest {
                key: key.clone(),
                value: i.to_string(),
                ..Default::default()
            })
            .await
            .unwrap();
        // At once, through either follower: the write and nothing older.
        for f in [&f1, &f2] {
            let r = f
                .range(&RangeRequest {
                    key: key.clone(),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(r.kvs.len(), 1, "{key} is visible through a follower");
            assert_eq!(r.kvs[0].mod_revision, put.header.revision);
            assert!(r.header.revision >= put.header.revision);
        }
    }
    // One more write, then no more: each follower's own state still reaches it.
    let last = to_leader
        .put(&PutRequest {
            key: "/paced/last".into(),
            value: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for f in [&f1, &f2] {
        wait_for("the follower's own view to catch up", T, || async {
            let r = f
                .range(&RangeRequest {
                    key: "/paced/last".into(),
                    serializable: true,
                    ..Default::default()
                })
                .await
                .ok()?;
            (r.kvs.len() == 1 && r.kvs[0].mod_revision == last.header.revision).then_some(())
        })
        .await;
    }
}
