//! MVCC semantics, checked against etcd v3's behaviour.

use kvclient::proto::*;

use super::*;
use crate::command::{CmdResponse, CmdResult, Command};

struct T {
    store: Store,
    seed: u64,
}

impl T {
    fn new() -> T {
        T {
            store: Store::new(),
            seed: 0,
        }
    }

    fn apply(&mut self, cmd: Command) -> CmdResult {
        self.seed += 1;
        let mut tables = self.store.write();
        // Alternate event collection on and off: results must not depend on it.
        let mut a = Applier::new(&mut tables, self.seed.is_multiple_of(2));
        let r = a.apply(&cmd, self.seed).unwrap();
        a.finish().unwrap();
        r
    }

    fn put(&mut self, k: &str, v: &str) -> i64 {
        match self.apply(Command::Put(PutRequest {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        })) {
            Ok(CmdResponse::Put(p)) => p.header.revision,
            other => panic!("put: {other:?}"),
        }
    }

    fn del(&mut self, req: DeleteRangeRequest) -> DeleteRangeResponse {
        match self.apply(Command::DeleteRange(req)) {
            Ok(CmdResponse::DeleteRange(d)) => d,
            other => panic!("delete: {other:?}"),
        }
    }

    fn txn(&mut self, req: TxnRequest) -> Result<TxnResponse, KvError> {
        match self.apply(Command::Txn(req)) {
            Ok(CmdResponse::Txn(t)) => Ok(t),
            Ok(other) => panic!("txn: {other:?}"),
            Err(e) => Err(e),
        }
    }

    fn range(&self, req: RangeRequest) -> Result<RangeResponse, KvError> {
        self.store.read().unwrap().range(&req)
    }

    fn get(&self, k: &str) -> Option<KeyValue> {
        self.range(RangeRequest {
            key: k.into(),
            ..Default::default()
        })
        .unwrap()
        .kvs
        .into_iter()
        .next()
    }

    fn all_at(&self, rev: i64) -> Result<RangeResponse, KvError> {
        self.range(RangeRequest {
            key: "".into(),
            range_end: Some("\0".into()),
            revision: rev,
            ..Default::default()
        })
    }

    fn revision(&self) -> i64 {
        self.store.read().unwrap().revision()
    }
}

fn put_op(k: &str, v: &str) -> RequestOp {
    RequestOp::Put(PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    })
}

fn range_op(k: &str) -> RequestOp {
    RequestOp::Range(RangeRequest {
        key: k.into(),
        ..Default::default()
    })
}

use crate::error::KvError;

#[test]
fn revisions_and_versions_across_put_delete_recreate() {
    let mut t = T::new();
    assert_eq!(t.revision(), 0);
    assert_eq!(t.put("a", "1"), 1);
    assert_eq!(t.put("a", "2"), 2);
    assert_eq!(t.put("b", "x"), 3);
    let a = t.get("a").unwrap();
    assert_eq!(
        (
            a.create_revision,
            a.mod_revision,
            a.version,
            a.value.as_str()
        ),
        (1, 2, 2, "2")
    );
    let d = t.del(DeleteRangeRequest {
        key: "a".into(),
        ..Default::default()
    });
    assert_eq!((d.header.revision, d.deleted), (4, 1));
    assert!(t.get("a").is_none());
    // Deleting nothing does not bump the revision.
    let d = t.del(DeleteRangeRequest {
        key: "a".into(),
        ..Default::default()
    });
    assert_eq!((d.header.revision, d.deleted), (4, 0));
    assert_eq!(t.put("a", "3"), 5);
    let a = t.get("a").unwrap();
    assert_eq!((a.create_revision, a.mod_revision, a.version), (5, 5, 1));
    assert_eq!(t.revision(), 5);
}

#[test]
fn put_returns_prev_kv() {
    let mut t = T::new();
    t.put("k", "old");
    let r = t
        .apply(Command::Put(PutRequest {
            key: "k".into(),
            value: "new".into(),
            prev_kv: true,
            ..Default::default()
        }))
        .unwrap();
    let CmdResponse::Put(p) = r else { panic!() };
    assert_eq!(p.prev_kv.unwrap().value, "old");
    assert_eq!(p.header.revision, 2);
}

#[test]
fn range_limit_more_count_keys_only_count_only() {
    let mut t = T::new();
    for k in ["d", "b", "a", "c", "e/1", "e/2"] {
        t.put(k, &format!("v-{k}"));
    }
    let r = t
        .range(RangeRequest {
            key: "a".into(),
            range_end: Some("e".into()),
            limit: 2,
            ..Default::default()
        })
        .unwrap();
    let keys: Vec<_> = r.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["a", "b"]);
    assert!(r.more);
    assert_eq!(r.count, 4);
    assert_eq!(r.header.revision, 6);
    assert_eq!(r.kvs[0].value, "v-a");

    let r = t
        .range(RangeRequest {
            key: "a".into(),
            range_end: Some("e".into()),
            keys_only: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.kvs.len(), 4);
    assert!(!r.more);
    assert!(
        r.kvs
            .iter()
            .all(|kv| kv.value.is_empty() && kv.version == 1)
    );

    let r = t
        .range(RangeRequest {
            key: "a".into(),
            range_end: Some("\0".into()),
            count_only: true,
            ..Default::default()
        })
        .unwrap();
    assert!(r.kvs.is_empty() && !r.more);
    assert_eq!(r.count, 6);

    let r = t
        .range(RangeRequest {
            key: "e/".into(),
            prefix: true,
            ..Default::default()
        })
        .unwrap();
    let keys: Vec<_> = r.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["e/1", "e/2"]);

    let r = t
        .range(RangeRequest {
            key: "c".into(),
            range_end: Some("\0".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.count, 4);
    assert!(!r.more);

    // Malformed ranges are rejected.
    for bad in [
        RangeRequest {
            key: "b".into(),
            range_end: Some("a".into()),
            ..Default::default()
        },
        RangeRequest {
            key: "".into(),
            ..Default::default()
        },
        RangeRequest {
            key: "a".into(),
            limit: -1,
            ..Default::default()
        },
        RangeRequest {
            key: "a".into(),
            prefix: true,
            range_end: Some("b".into()),
            ..Default::default()
        },
    ] {
        assert_eq!(t.range(bad).unwrap_err().code, ErrorCode::BadRequest);
    }
}

#[test]
fn reads_at_old_revisions_match_what_was_read_then() {
    let mut t = T::new();
    let mut seen = vec![t.all_at(0).unwrap()];
    type Step = Box<dyn Fn(&mut T)>;
    let steps: Vec<Step> = vec![
        Box::new(|t| {
            t.put("a", "1");
        }),
        Box::new(|t| {
            t.put("b", "1");
        }),
        Box::new(|t| {
            t.put("a", "2");
        }),
        Box::new(|t| {
            t.del(DeleteRangeRequest {
                key: "b".into(),
                ..Default::default()
            });
        }),
        Box::new(|t| {
            t.put("c", "1");
        }),
        Box::new(|t| {
            t.put("b", "again");
        }),
        Box::new(|t| {
            t.del(DeleteRangeRequest {
                key: "".into(),
                range_end: Some("\0".into()),
                ..Default::default()
            });
        }),
        Box::new(|t| {
            t.put("a", "3");
        }),
    ];
    for step in &steps {
        step(&mut t);
        seen.push(t.all_at(0).unwrap());
    }
    let current = t.revision();
    assert_eq!(current, 8);
    for (rev, then) in seen.iter().enumerate().skip(1) {
        let now = t.all_at(rev as i64).unwrap();
        assert_eq!(now.kvs, then.kvs, "at revision {rev}");
        assert_eq!(now.count, then.count);
        assert_eq!(now.header.revision, current);
        // Single-key reads at old revisions agree too.
        for k in ["a", "b", "c"] {
            let one = t
                .range(RangeRequest {
                    key: k.into(),
                    revision: rev as i64,
                    ..Default::default()
                })
                .unwrap();
            let expect: Vec<_> = then.kvs.iter().filter(|kv| kv.key == k).cloned().collect();
            assert_eq!(one.kvs, expect, "key {k} at {rev}");
        }
        // Limits apply to old reads as well.
        let lim = t
            .range(RangeRequest {
                key: "a".into(),
                range_end: Some("\0".into()),
                revision: rev as i64,
                limit: 1,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(lim.count, then.count);
        assert_eq!(lim.more, then.count > 1);
    }
    let e = t.all_at(current + 1).unwrap_err();
    assert_eq!(e.code, ErrorCode::FutureRevision);
}

#[test]
fn compaction_keeps_reads_at_and_after_it_and_rejects_older() {
    let mut t = T::new();
    t.put("a", "1"); // 1
    t.put("b", "1"); // 2
    t.put("a", "2"); // 3
    t.del(DeleteRangeRequest {
        key: "b".into(),
        ..Default::default()
    }); // 4
    t.put("c", "1"); // 5
    t.put("a", "3"); // 6
    let before: Vec<_> = (3..=6).map(|r| t.all_at(r).unwrap()).collect();

    let r = t.apply(Command::Compact { revision: 4 }).unwrap();
    assert_eq!(r, CmdResponse::Compact { revision: 6 });
    for (i, r) in (3..=6).enumerate() {
        if r < 4 {
            let e = t.all_at(r).unwrap_err();
            assert_eq!(e.code, ErrorCode::Compacted);
            assert_eq!(e.compact_revision, 4);
        } else {
            assert_eq!(t.all_at(r).unwrap().kvs, before[i].kvs, "at {r}");
        }
    }
    let e = t.apply(Command::Compact { revision: 4 }).unwrap_err();
    assert_eq!((e.code, e.compact_revision), (ErrorCode::Compacted, 4));
    let e = t.apply(Command::Compact { revision: 3 }).unwrap_err();
    assert_eq!(e.code, ErrorCode::Compacted);
    let e = t.apply(Command::Compact { revision: 7 }).unwrap_err();
    assert_eq!(e.code, ErrorCode::FutureRevision);
    // Compacting at the current revision is allowed; the latest values stay.
    t.apply(Command::Compact { revision: 6 }).unwrap();
    assert_eq!(t.all_at(0).unwrap().kvs, before[3].kvs);
    assert_eq!(t.all_at(6).unwrap().kvs, before[3].kvs);
    assert_eq!(t.store.read().unwrap().compact_revision(), 6);
    // History below the compact revision is gone except each key's latest put below it (a@3,
    // the prev_kv of a@6).
    let reader = t.store.read().unwrap();
    let (hist, _) = reader
        .history(
            &KeyRange::new("", Some("\0"), false).unwrap(),
            1,
            false,
            100,
        )
        .unwrap();
    let revs: Vec<i64> = hist.iter().map(|(r, _)| *r).collect();
    assert_eq!(revs, [3, 5, 6]);
}

#[test]
fn deleterange_returns_prev_kvs_in_key_order() {
    let mut t = T::new();
    t.put("p/b", "2");
    t.put("p/a", "1");
    t.put("q", "x");
    let d = t.del(DeleteRangeRequest {
        key: "p/".into(),
        prefix: true,
        prev_kv: true,
        ..Default::default()
    });
    assert_eq!(d.deleted, 2);
    assert_eq!(d.header.revision, 4);
    let prev: Vec<_> = d
        .prev_kvs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_str(), kv.mod_revision))
        .collect();
    assert_eq!(prev, [("p/a", "1", 2), ("p/b", "2", 1)]);
    // Both deletes share revision 4.
    let r = t.all_at(3).unwrap();
    assert_eq!(r.kvs.len(), 3);
    assert_eq!(t.all_at(4).unwrap().kvs.len(), 1);
    // Without prev_kv nothing is returned.
    let d = t.del(DeleteRangeRequest {
        key: "q".into(),
        ..Default::default()
    });
    assert_eq!((d.deleted, d.prev_kvs.len()), (1, 0));
}

#[test]
fn txn_compares_every_target_and_result_including_missing_keys() {
    let mut t = T::new();
    let lease = match t.apply(Command::LeaseGrant { id: 7, ttl: 60 }).unwrap() {
        CmdResponse::LeaseGrant { id, .. } => id,
        other => panic!("{other:?}"),
    };
    t.put("other", "x"); // 1
    t.apply(Command::Put(PutRequest {
        key: "k".into(),
        value: "m".into(),
        lease,
        ..Default::default()
    }))
    .unwrap(); // 2
    t.put("k2", "y"); // 3
    t.apply(Command::Put(PutRequest {
        key: "k".into(),
        value: "m".into(),
        lease,
        ..Default::default()
    }))
    .unwrap(); // 4: k has create 2, mod 4, version 2, lease 7, value "m"

    use CompareResult::*;
    let results = [Equal, NotEqual, Greater, Less];
    // (target, expectations for [Equal, NotEqual, Greater, Less]) on key "k".
    let cases: Vec<(CompareTarget, [bool; 4])> = vec![
        (CompareTarget::Version(2), [true, false, false, false]),
        (CompareTarget::Version(1), [false, true, true, false]),
        (CompareTarget::Version(3), [false, true, false, true]),
        (
            CompareTarget::CreateRevision(2),
            [true, false, false, false],
        ),
        (CompareTarget::CreateRevision(1), [false, true, true, false]),
        (CompareTarget::CreateRevision(3), [false, true, false, true]),
        (CompareTarget::ModRevision(4), [true, false, false, false]),
        (CompareTarget::ModRevision(3), [false, true, true, false]),
        (CompareTarget::ModRevision(5), [false, true, false, true]),
        (CompareTarget::Lease(7), [true, false, false, false]),
        (CompareTarget::Lease(6), [false, true, true, false]),
        (CompareTarget::Lease(8), [false, true, false, true]),
        (
            CompareTarget::Value("m".into()),
            [true, false, false, false],
        ),
        (CompareTarget::Value("a".into()), [false, true, true, false]),
        (CompareTarget::Value("z".into()), [false, true, false, true]),
    ];
    // A missing key: version/create/mod/lease are 0; a value compare is always false.
    let missing: Vec<(CompareTarget, [bool; 4])> = vec![
        (CompareTarget::Version(0), [true, false, false, false]),
        (CompareTarget::Version(1), [false, true, false, true]),
        (
            CompareTarget::CreateRevision(0),
            [true, false, false, false],
        ),
        (CompareTarget::ModRevision(0), [true, false, false, false]),
        (CompareTarget::ModRevision(-1), [false, true, true, false]),
        (CompareTarget::Lease(0), [true, false, false, false]),
        (
            CompareTarget::Value("".into()),
            [false, false, false, false],
        ),
        (
            CompareTarget::Value("m".into()),
            [false, false, false, false],
        ),
    ];
    let rev_before = t.revision();
    for (key, table) in [("k", &cases), ("missing", &missing)] {
        for (target, expect) in table.iter() {
            for (result, want) in results.iter().zip(expect) {
                let r = t
                    .txn(TxnRequest {
                        compare: vec![Compare {
                            key: key.into(),
                            range_end: None,
                            result: *result,
                            target: target.clone(),
                        }],
                        success: vec![range_op("k")],
                        failure: vec![],
                    })
                    .unwrap();
                assert_eq!(
                    r.succeeded, *want,
                    "{key} {result:?} {target:?} should be {want}"
                );
                assert_eq!(r.responses.len(), usize::from(*want));
                assert_eq!(r.header.revision, rev_before);
            }
        }
    }
    // A compare over a range must hold for every key in it.
    let over = |result, v| Compare {
        key: "k".into(),
        range_end: Some("l".into()),
        result,
        target: CompareTarget::Version(v),
    };
    assert!(t.txn(tx(vec![over(Greater, 0)])).unwrap().succeeded);
    assert!(!t.txn(tx(vec![over(Equal, 2)])).unwrap().succeeded);
    assert_eq!(t.revision(), rev_before);
}

fn tx(compare: Vec<Compare>) -> TxnRequest {
    TxnRequest {
        compare,
        success: vec![],
        failure: vec![],
    }
}

#[test]
fn txn_writes_share_one_revision_and_reads_see_earlier_writes() {
    let mut t = T::new();
    t.put("gone", "x"); // 1
    let r = t
        .txn(TxnRequest {
            compare: vec![Compare::mod_revision("a", CompareResult::Equal, 0)],
            success: vec![
                put_op("a", "1"),
                range_op("a"),
                put_op("b", "2"),
                RequestOp::DeleteRange(DeleteRangeRequest {
                    key: "gone".into(),
                    prev_kv: true,
                    ..Default::default()
                }),
                RequestOp::Range(RangeRequest {
                    key: "a".into(),
                    range_end: Some("\0".into()),
                    ..Default::default()
                }),
            ],
            failure: vec![],
        })
        .unwrap();
    assert!(r.succeeded);
    assert_eq!(r.header.revision, 2);
    let ResponseOp::Range(seen) = &r.responses[1] else {
        panic!()
    };
    assert_eq!(seen.kvs[0].value, "1");
    assert_eq!(seen.kvs[0].mod_revision, 2);
    let ResponseOp::DeleteRange(d) = &r.responses[3] else {
        panic!()
    };
    assert_eq!((d.deleted, d.prev_kvs[0].value.as_str()), (1, "x"));
    let ResponseOp::Range(all) = &r.responses[4] else {
        panic!()
    };
    let keys: Vec<_> = all.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["a", "b"]);
    for resp in &r.responses {
        let h = match resp {
            ResponseOp::Range(x) => &x.header,
            ResponseOp::Put(x) => &x.header,
            ResponseOp::DeleteRange(x) => &x.header,
        };
        assert_eq!(h.revision, 2);
    }
    assert_eq!(t.get("a").unwrap().mod_revision, 2);
    assert_eq!(t.get("b").unwrap().mod_revision, 2);
    assert_eq!(t.revision(), 2);

    // The same compare now fails: the failure branch runs.
    let r = t
        .txn(TxnRequest {
            compare: vec![Compare::mod_revision("a", CompareResult::Equal, 0)],
            success: vec![put_op("a", "never")],
            failure: vec![range_op("a")],
        })
        .unwrap();
    assert!(!r.succeeded);
    assert_eq!(r.header.revision, 2);
    assert_eq!(t.get("a").unwrap().value, "1");

    // A txn that writes nothing does not bump the revision.
    let r = t
        .txn(TxnRequest {
            compare: vec![],
            success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                key: "nothing".into(),
                ..Default::default()
            })],
            failure: vec![],
        })
        .unwrap();
    assert_eq!(r.header.revision, 2);
}

#[test]
fn rejected_txns_change_nothing() {
    let mut t = T::new();
    t.put("a", "1");
    let bad = [
        // Duplicate put.
        TxnRequest {
            success: vec![put_op("x", "1"), put_op("x", "2")],
            ..Default::default()
        },
        // Put inside a deleted range.
        TxnRequest {
            success: vec![
                put_op("p/x", "1"),
                RequestOp::DeleteRange(DeleteRangeRequest {
                    key: "p/".into(),
                    prefix: true,
                    ..Default::default()
                }),
            ],
            ..Default::default()
        },
        // Bad range in an op.
        TxnRequest {
            success: vec![
                put_op("y", "1"),
                RequestOp::Range(RangeRequest {
                    key: "z".into(),
                    range_end: Some("a".into()),
                    ..Default::default()
                }),
            ],
            ..Default::default()
        },
    ];
    for req in bad {
        let e = t.txn(req).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest, "{e}");
    }
    // A put with an unknown lease fails the whole txn, including earlier puts.
    let e = t
        .txn(TxnRequest {
            success: vec![
                put_op("y", "1"),
                RequestOp::Put(PutRequest {
                    key: "z".into(),
                    lease: 99,
                    ..Default::default()
                }),
            ],
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::LeaseNotFound);
    // A future revision in a range op fails before anything is written.
    let e = t
        .txn(TxnRequest {
            success: vec![
                put_op("y", "1"),
                RequestOp::Range(RangeRequest {
                    key: "a".into(),
                    revision: 5,
                    ..Default::default()
                }),
            ],
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::FutureRevision);
    assert_eq!(t.revision(), 1);
    assert_eq!(t.all_at(0).unwrap().count, 1);
}

#[test]
fn leases_attach_and_revoke_in_one_revision() {
    let mut t = T::new();
    let e = t
        .apply(Command::Put(PutRequest {
            key: "k".into(),
            lease: 5,
            ..Default::default()
        }))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::LeaseNotFound);
    assert_eq!(t.revision(), 0);
    let CmdResponse::LeaseGrant { id, ttl, revision } =
        t.apply(Command::LeaseGrant { id: 0, ttl: 10 }).unwrap()
    else {
        panic!()
    };
    assert!(id > 0);
    assert_eq!((ttl, revision), (10, 0));
    let e = t.apply(Command::LeaseGrant { id, ttl: 10 }).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest);
    for k in ["l/1", "l/2"] {
        t.apply(Command::Put(PutRequest {
            key: k.into(),
            value: "v".into(),
            lease: id,
            ..Default::default()
        }))
        .unwrap();
    }
    t.put("free", "v");
    // Re-putting without the lease detaches the key.
    t.put("l/2", "detached");
    assert_eq!(t.store.read().unwrap().lease_keys(id).unwrap(), ["l/1"]);
    t.apply(Command::Put(PutRequest {
        key: "l/3".into(),
        lease: id,
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(t.revision(), 5);
    let r = t.apply(Command::LeaseRevoke { id }).unwrap();
    assert_eq!(r, CmdResponse::LeaseRevoke { revision: 6 });
    let keys: Vec<_> = t
        .all_at(0)
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, ["free", "l/2"]);
    let reader = t.store.read().unwrap();
    assert_eq!(reader.lease_ttl(id).unwrap(), None);
    assert!(reader.lease_keys(id).unwrap().is_empty());
    let e = t.apply(Command::LeaseRevoke { id }).unwrap_err();
    assert_eq!(e.code, ErrorCode::LeaseNotFound);
    // Revoking a lease without keys does not bump the revision.
    t.apply(Command::LeaseGrant { id: 3, ttl: 5 }).unwrap();
    let r = t.apply(Command::LeaseRevoke { id: 3 }).unwrap();
    assert_eq!(r, CmdResponse::LeaseRevoke { revision: 6 });
}

#[test]
fn history_carries_events_with_prev_kv() {
    let mut t = T::new();
    t.put("w/a", "1");
    t.put("x", "1");
    t.put("w/a", "2");
    t.del(DeleteRangeRequest {
        key: "w/".into(),
        prefix: true,
        ..Default::default()
    });
    let reader = t.store.read().unwrap();
    let kr = KeyRange::new("w/", None, true).unwrap();
    let (groups, next) = reader.history(&kr, 1, true, 100).unwrap();
    assert_eq!(next, 5);
    let flat: Vec<_> = groups
        .iter()
        .map(|(r, evs)| {
            let e = &evs[0];
            (
                *r,
                e.type_,
                e.kv.value.clone(),
                e.kv.mod_revision,
                e.prev_kv.as_ref().map(|p| p.value.clone()),
            )
        })
        .collect();
    assert_eq!(
        flat,
        [
            (1, EventType::Put, "1".to_string(), 1, None),
            (3, EventType::Put, "2".to_string(), 3, Some("1".to_string())),
            (
                4,
                EventType::Delete,
                "".to_string(),
                4,
                Some("2".to_string())
            ),
        ]
    );
    // Chunking stops at revision boundaries.
    let (groups, next) = reader.history(&kr, 1, false, 1).unwrap();
    assert_eq!((groups.len(), next), (1, 2));
}

#[test]
fn snapshot_image_round_trips() {
    let mut t = T::new();
    t.put("a", "1");
    t.apply(Command::LeaseGrant { id: 9, ttl: 30 }).unwrap();
    t.apply(Command::Put(PutRequest {
        key: "b".into(),
        value: "2".into(),
        lease: 9,
        ..Default::default()
    }))
    .unwrap();
    t.put("a", "3");
    let image = t.store.read().unwrap().dump().unwrap();
    let other = T::new();
    other.store.restore(&image, &[("extra", vec![1])]).unwrap();
    for rev in 1..=3 {
        assert_eq!(other.all_at(rev).unwrap(), t.all_at(rev).unwrap());
    }
    let r = other.store.read().unwrap();
    assert_eq!(r.lease_keys(9).unwrap(), ["b"]);
    assert_eq!(r.meta("extra").unwrap(), Some(vec![1]));
    assert!(other.store.restore(b"garbage", &[]).is_err());
    assert_eq!(
        other.all_at(3).unwrap(),
        t.all_at(3).unwrap(),
        "a bad image changes nothing"
    );
}

/// A read view is a snapshot: writes after it was taken do not show in it.
#[test]
fn a_read_view_does_not_change_under_later_writes() {
    let mut t = T::new();
    t.put("a", "1");
    let view = t.store.read().unwrap();
    t.put("a", "2");
    t.put("b", "3");
    let r = view.range(&RangeRequest {
        key: "\0".into(),
        range_end: Some("\0".into()),
        ..Default::default()
    });
    let r = r.unwrap();
    assert_eq!(r.header.revision, 1);
    assert_eq!(r.kvs.len(), 1);
    assert_eq!(r.kvs[0].value, "1");
    assert_eq!(t.store.read().unwrap().revision(), 3);
}

/// A deleted key stays in the key index for reads at older revisions until compaction drops
/// its last revision; then it is gone from every table.
#[test]
fn compaction_drops_deleted_keys_from_the_key_index() {
    let mut t = T::new();
    t.put("a", "1");
    t.put("b", "1");
    t.apply(Command::DeleteRange(DeleteRangeRequest {
        key: "a".into(),
        ..Default::default()
    }))
    .unwrap();
    assert!(t.store.write().keys.contains_key("a"));
    t.put("b", "2");
    t.apply(Command::Compact { revision: 4 }).unwrap();
    let tables = t.store.write();
    assert!(!tables.keys.contains_key("a"));
    // b's put at 2 is the latest below 4 and stays; nothing of a's remains in the history.
    assert_eq!(tables.keys.get("b").unwrap().revs.len(), 2);
    assert_eq!(tables.hist.len(), 2);
}
