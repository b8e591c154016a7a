//! A recorded concurrent history on a 3-member cluster under faults, checked for
//! linearizability with a real checker (todc-utils' Wing–Gong–Lowe checker), and the watch
//! streams of the same run checked for etcd's watch guarantees.
//!
//! Clients run puts, linearizable gets and compare-and-swaps (txn on the value) on a few keys
//! through different members while the leader is killed and restarted, then paused and
//! resumed, then a follower is killed and restarted. A write whose outcome is unknown counts as
//! still running at the end of the history (it may or may not have happened); a write refused
//! as not applied is left out. Linearizability is checked per key (it is compositional).
//!
//! Watchers, one starting on each member, watch the key prefix from revision 1 with prev_kv and
//! resume after any break from the last revision they saw + 1. Each must see exactly revisions
//! 1..=final (every write in this test is under the prefix), in order, each revision whole and
//! equal to a reference read of the history afterwards.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kvclient::KvClient;
use kvclient::proto::*;
use testkit::kvcluster::KvCluster;
use todc_utils::linearizability::WGLChecker;
use todc_utils::linearizability::history::{Action, History};
use todc_utils::specifications::Specification;

const KEYS: [&str; 3] = ["/lin/a", "/lin/b", "/lin/c"];
const CLIENTS: usize = 6;
const T: Duration = Duration::from_secs(60);

/// One operation on a register, as the checker sees it (its result included).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Op {
    Read(Option<String>),
    Write(String),
    /// Compare-and-swap; `ok: None` when its outcome is unknown.
    Cas {
        expect: String,
        new: String,
        ok: Option<bool>,
    },
}

struct Register;

impl Specification for Register {
    type State = Option<String>;
    type Operation = Op;

    fn init() -> Self::State {
        None
    }

    fn apply(op: &Op, state: &Self::State) -> (bool, Self::State) {
        match op {
            Op::Read(v) => (v == state, state.clone()),
            Op::Write(v) => (true, Some(v.clone())),
            Op::Cas { expect, new, ok } => {
                let matches = state.as_deref() == Some(expect.as_str());
                let next = if matches {
                    Some(new.clone())
                } else {
                    state.clone()
                };
                match ok {
                    Some(ok) => (*ok == matches, next),
                    None => (true, next),
                }
            }
        }
    }
}

/// A completed (or unknown-outcome) operation.
#[derive(Clone, Debug)]
struct Record {
    process: usize,
    key: usize,
    op: Op,
    call: Instant,
    /// `None`: outcome unknown — it responds after everything else.
    ret: Option<Instant>,
}

fn checker_accepts(records: &[Record]) -> bool {
    // Compact process ids; unknown-outcome responses go last.
    let mut procs: BTreeMap<usize, usize> = BTreeMap::new();
    let mut events: Vec<(Instant, u8, usize, Action<Op>)> = Vec::new();
    let end = records
        .iter()
        .filter_map(|r| r.ret)
        .chain(records.iter().map(|r| r.call))
        .max()
        .map(|t| t + Duration::from_secs(3600));
    let Some(end) = end else { return true };
    for r in records {
        let n = procs.len();
        let p = *procs.entry(r.process).or_insert(n);
        events.push((r.call, 0, p, Action::Call(r.op.clone())));
        events.push((r.ret.unwrap_or(end), 1, p, Action::Response(r.op.clone())));
    }
    // Calls before responses at equal times: overlapping is the lenient reading.
    events.sort_by_key(|a| (a.0, a.1));
    let actions = events.into_iter().map(|(_, _, p, a)| (p, a)).collect();
    WGLChecker::<Register>::is_linearizable(History::from_actions(actions))
}

#[test]
fn the_checker_rejects_a_stale_read() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let rec = |process, op, call, ret| Record {
        process,
        key: 0,
        op,
        call: at(call),
        ret: Some(at(ret)),
    };
    let ok = vec![
        rec(0, Op::Write("x".into()), 0, 10),
        rec(1, Op::Read(Some("x".into())), 20, 30),
    ];
    assert!(checker_accepts(&ok));
    let stale = vec![
        rec(0, Op::Write("x".into()), 0, 10),
        rec(1, Op::Read(None), 20, 30),
    ];
    assert!(!checker_accepts(&stale));
    // An unknown-outcome write may explain a read, or never happen.
    let unknown = vec![
        Record {
            process: 0,
            key: 0,
            op: Op::Write("y".into()),
            call: at(0),
            ret: None,
        },
        rec(1, Op::Read(Some("y".into())), 20, 30),
        rec(2, Op::Read(Some("y".into())), 40, 50),
    ];
    assert!(checker_accepts(&unknown));
    let lost_cas = vec![
        rec(0, Op::Write("a".into()), 0, 10),
        rec(
            1,
            Op::Cas {
                expect: "a".into(),
                new: "b".into(),
                ok: Some(true),
            },
            20,
            30,
        ),
        rec(2, Op::Read(Some("a".into())), 40, 50),
    ];
    assert!(!checker_accepts(&lost_cas));
}

/// Run one client until `stop`, recording its operations.
async fn client_loop(
    id: usize,
    client: KvClient,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Vec<Record>>>,
) {
    // A process id per logical client; it changes after an unknown outcome (that operation
    // stays "in flight" to the end).
    let mut process = id * 1_000_000;
    let mut seen: [Option<String>; 3] = Default::default();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        // A small deterministic mix: reads, writes and CASes over the keys.
        let key = ((n as usize).wrapping_mul(7) + id) % KEYS.len();
        let kind = (n as usize + id * 3) % 10;
        let call = Instant::now();
        let (op, ret) = if kind < 4 || (kind >= 7 && seen[key].is_none()) {
            match client.get(KEYS[key]).await {
                Ok((kv, _)) => {
                    let v = kv.map(|kv| kv.value);
                    seen[key] = v.clone();
                    (Op::Read(v), Some(Instant::now()))
                }
                Err(_) => continue,
            }
        } else if kind < 7 {
            let v = format!("c{id}-{n}");
            let r = client
                .put(&PutRequest {
                    key: KEYS[key].into(),
                    value: v.clone(),
                    ..Default::default()
                })
                .await;
            match r {
                Ok(_) => (Op::Write(v), Some(Instant::now())),
                Err(e) if e.outcome_unknown() => (Op::Write(v), None),
                Err(_) => continue,
            }
        } else {
            let expect = seen[key].clone().unwrap_or_default();
            let new = format!("c{id}-{n}");
            let r = client
                .txn(&TxnRequest {
                    compare: vec![Compare {
                        key: KEYS[key].into(),
                        range_end: None,
                        result: CompareResult::Equal,
                        target: CompareTarget::Value(expect.clone()),
                    }],
                    success: vec![RequestOp::Put(PutRequest {
                        key: KEYS[key].into(),
                        value: new.clone(),
                        ..Default::default()
                    })],
                    failure: vec![],
                })
                .await;
            match r {
                Ok(t) => {
                    if t.succeeded {
                        seen[key] = Some(new.clone());
                    }
                    (
                        Op::Cas {
                            expect,
                            new,
                            ok: Some(t.succeeded),
                        },
                        Some(Instant::now()),
                    )
                }
                Err(e) if e.outcome_unknown() => (
                    Op::Cas {
                        expect,
                        new,
                        ok: None,
                    },
                    None,
                ),
                Err(_) => continue,
            }
        };
        out.lock().unwrap().push(Record {
            process,
            key,
            op,
            call,
            ret,
        });
        if ret.is_none() {
            process += 1;
        }
    }
}

/// One watch message with events: its revision and events.
type Seen = Vec<(i64, Vec<Event>)>;

/// Watch the prefix from revision 1, resuming after breaks, until `done` and caught up to
/// the revision it holds.
async fn watch_loop(client: KvClient, done: Arc<Mutex<Option<i64>>>) -> Seen {
    let mut seen: Seen = Vec::new();
    let mut next = 1;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(end) = *done.lock().unwrap()
            && next > end
        {
            return seen;
        }
        assert!(Instant::now() < deadline, "watcher never caught up");
        let req = WatchCreateRequest {
            key: "/lin/".into(),
            prefix: true,
            start_revision: next,
            prev_kv: true,
            ..Default::default()
        };
        let Ok(stream) = client.watch(&req).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut stream = Box::pin(stream);
        loop {
            // Stop waiting on a stalled (paused) member once the run is over.
            let msg = match tokio::time::timeout(Duration::from_secs(3), stream.next()).await {
                Ok(Some(Ok(m))) => m,
                Ok(_) => break,
                Err(_) => {
                    if done.lock().unwrap().is_some() {
                        break;
                    }
                    continue;
                }
            };
            assert!(!msg.canceled, "watch canceled: {}", msg.cancel_reason);
            if msg.events.is_empty() {
                continue;
            }
            let rev = msg.header.revision;
            assert_eq!(rev, next, "watch messages must be gapless and ordered");
            next = rev + 1;
            seen.push((rev, msg.events));
            if let Some(end) = *done.lock().unwrap()
                && next > end
            {
                return seen;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_under_faults_are_linearizable_and_watches_keep_their_guarantees() {
    let mut c = KvCluster::start(3).await;
    let eps = c.endpoints();
    let rotated = |k: usize| {
        let mut e = eps.clone();
        e.rotate_left(k % eps.len());
        KvClient::new(e).unwrap()
    };

    let done: Arc<Mutex<Option<i64>>> = Arc::default();
    let watchers: Vec<_> = (0..3)
        .map(|k| tokio::spawn(watch_loop(rotated(k), done.clone())))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let records: Arc<Mutex<Vec<Record>>> = Arc::default();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(client_loop(id, rotated(id), stop.clone(), records.clone())))
        .collect();

    // The nemesis.
    let phase = Duration::from_millis(2500);
    tokio::time::sleep(phase).await;
    let leader = c.wait_leader(T).await;
    c.kill(leader);
    tokio::time::sleep(phase).await;
    c.start_member(leader);
    c.wait_leader(T).await;
    tokio::time::sleep(phase).await;
    let leader = c.wait_leader(T).await;
    c.pause(leader);
    tokio::time::sleep(phase).await;
    c.resume(leader);
    c.wait_leader(T).await;
    tokio::time::sleep(phase).await;
    let leader = c.wait_leader(T).await;
    let follower = (leader + 1) % 3;
    c.kill(follower);
    tokio::time::sleep(phase).await;
    c.start_member(follower);
    c.wait_leader(T).await;
    tokio::time::sleep(phase).await;

    stop.store(true, Ordering::Relaxed);
    for h in clients {
        h.await.unwrap();
    }
    // The final revision, read linearizably; then every watcher must reach it.
    let end = c
        .client()
        .range(&RangeRequest {
            key: "/lin/".into(),
            prefix: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .header
        .revision;
    *done.lock().unwrap() = Some(end);
    let mut streams = Vec::new();
    for w in watchers {
        streams.push(w.await.unwrap());
    }

    // Reference: the whole history, read afterwards in one watch.
    let reference = watch_loop(c.client(), Arc::new(Mutex::new(Some(end)))).await;
    let reference: BTreeMap<i64, Vec<Event>> = reference.into_iter().collect();
    assert_eq!(
        reference.keys().copied().collect::<Vec<_>>(),
        (1..=end).collect::<Vec<_>>(),
        "every revision of this run wrote under the prefix"
    );
    for (k, s) in streams.iter().enumerate() {
        let revs: Vec<i64> = s.iter().map(|(r, _)| *r).collect();
        assert_eq!(
            revs,
            (1..=end).collect::<Vec<_>>(),
            "watcher {k}: ordered, no duplicates, no gaps"
        );
        for (rev, events) in s {
            assert_eq!(
                Some(events),
                reference.get(rev),
                "watcher {k}: revision {rev} whole and as in the history"
            );
        }
    }

    // Acknowledged writes are in the history; then linearizability, key by key.
    let records = records.lock().unwrap().clone();
    let by_value: BTreeMap<&str, &Event> = reference
        .values()
        .flatten()
        .map(|e| (e.kv.value.as_str(), e))
        .collect();
    let mut counts = [0usize; 4];
    for r in &records {
        let (written, known) = match &r.op {
            Op::Write(v) => (Some(v), r.ret.is_some()),
            Op::Cas {
                new,
                ok: Some(true),
                ..
            } => (Some(new), true),
            _ => (None, false),
        };
        if let (Some(v), true) = (written, known) {
            let e = by_value
                .get(v.as_str())
                .unwrap_or_else(|| panic!("acknowledged write {v:?} is not in the history"));
            assert_eq!(e.kv.key, KEYS[r.key]);
        }
        counts[match (&r.op, r.ret) {
            (_, None) => 3,
            (Op::Read(_), _) => 0,
            (Op::Write(_), _) => 1,
            (Op::Cas { .. }, _) => 2,
        }] += 1;
    }
    eprintln!(
        "history: {} reads, {} writes, {} CAS, {} unknown outcomes; {end} revisions",
        counts[0], counts[1], counts[2], counts[3]
    );
    assert!(
        counts[0] > 50 && counts[1] > 50 && counts[2] > 20,
        "{counts:?}"
    );
    for (key, name) in KEYS.iter().enumerate() {
        let ops: Vec<Record> = records.iter().filter(|r| r.key == key).cloned().collect();
        let started = Instant::now();
        assert!(
            checker_accepts(&ops),
            "the history of {name} is not linearizable ({} operations)",
            ops.len()
        );
        eprintln!(
            "{name}: {} operations linearizable (checked in {:?})",
            ops.len(),
            started.elapsed()
        );
    }
}
