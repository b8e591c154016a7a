//! Writes: applying commands (put, deleterange, txn, compaction, leases, members) to the
//! tables, one revision per writing command.
//!
//! Every request error is found before the command writes anything, so a failed command leaves
//! no trace; an error with code `internal` means the stored data is corrupt, and stops Raft.

use kvclient::proto::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, ErrorCode,
    Event, EventType, KeyValue, PutRequest, PutResponse, RangeResponse, RequestOp, ResponseHeader,
    ResponseOp, TxnRequest, TxnResponse,
};

use super::codec::{self, RecordRef, rev_pointer};
use super::range::KeyRange;
use super::read::{self, collect, scan_at, scan_latest};
use super::validate;
use super::{Key, KeyIndex, KeyRef, Tables};
use crate::command::{CmdResponse, CmdResult, Command};
use crate::error::KvError;

/// The events of one revision, with `prev_kv` always filled (watchers drop it if unwanted).
#[derive(Clone, Debug)]
pub struct RevisionEvents {
    pub revision: i64,
    pub events: Vec<Event>,
}

/// A lease created or removed by an applied command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseChange {
    Granted { id: i64, ttl: i64 },
    Revoked { id: i64 },
}

/// Applies commands to the tables.
pub struct Applier<'t> {
    t: &'t mut Tables,
    collect_events: bool,
    /// Events of the revisions written so far (only when collecting).
    pub events: Vec<RevisionEvents>,
    pub lease_changes: Vec<LeaseChange>,
}

/// Per-command write state: the revision being written and the next sub-index in it.
struct Rev {
    rev: i64,
    sub: u32,
    events: Vec<Event>,
}

impl<'t> Applier<'t> {
    /// `collect_events`: build watch events (with prev_kv) for what is written.
    pub fn new(t: &'t mut Tables, collect_events: bool) -> Self {
        Applier {
            t,
            collect_events,
            events: Vec::new(),
            lease_changes: Vec::new(),
        }
    }

    pub fn revision(&self) -> i64 {
        self.t.revision
    }

    pub fn compact_revision(&self) -> i64 {
        self.t.compact_revision
    }

    /// An opaque `meta` entry.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.t.meta.get(key).cloned())
    }

    /// Store an opaque `meta` entry.
    pub fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.t.meta.insert(key.to_string(), value.to_vec());
        Ok(())
    }

    /// The events and lease changes of what was applied.
    pub fn finish(self) -> Result<(Vec<RevisionEvents>, Vec<LeaseChange>), KvError> {
        Ok((self.events, self.lease_changes))
    }

    /// Apply one command. `seed` (unique per command in the log) picks server-chosen lease IDs.
    /// `Ok(Err(_))` is a request error (nothing written); `Err(_)` a storage failure.
    pub fn apply(&mut self, cmd: &Command, seed: u64) -> Result<CmdResult, KvError> {
        let res = match cmd {
            Command::Put(p) => self.put_cmd(p).map(CmdResponse::Put),
            Command::DeleteRange(d) => self.delete_cmd(d).map(CmdResponse::DeleteRange),
            Command::Txn(t) => self.txn(t).map(CmdResponse::Txn),
            Command::Compact { revision } => self.compact(*revision),
            Command::LeaseGrant { id, ttl } => self.lease_grant(*id, *ttl, seed),
            Command::LeaseRevoke { id } => self.lease_revoke(*id),
            Command::PublishMember {
                id,
                name,
                client_urls,
            } => {
                let attrs = super::MemberAttrs {
                    name: name.clone(),
                    client_urls: client_urls.clone(),
                };
                let json = serde_json::to_vec(&attrs)
                    .map_err(|e| KvError::internal(format!("encoding member: {e}")))?;
                self.t.members.insert(*id, json);
                Ok(CmdResponse::Published)
            }
        };
        match res {
            Err(e) if e.code == ErrorCode::Internal => Err(e),
            other => Ok(other),
        }
    }

    fn header(rev: i64) -> ResponseHeader {
        ResponseHeader {
            revision: rev,
            ..Default::default()
        }
    }

    fn begin(&self) -> Rev {
        Rev {
            rev: self.t.revision + 1,
            sub: 0,
            events: Vec::new(),
        }
    }

    /// Make `w`'s revision current if it wrote anything; returns the revision now current.
    fn end(&mut self, w: Rev) -> i64 {
        if w.sub > 0 {
            self.t.revision = w.rev;
            if self.collect_events {
                self.events.push(RevisionEvents {
                    revision: w.rev,
                    events: w.events,
                });
            }
        }
        self.t.revision
    }

    fn lease_exists(&mut self, id: i64) -> Result<bool, KvError> {
        Ok(self.t.leases.contains_key(&id))
    }

    fn put_cmd(&mut self, req: &PutRequest) -> Result<PutResponse, KvError> {
        validate::put(req)?;
        if req.lease != 0 && !self.lease_exists(req.lease)? {
            return Err(KvError::lease_not_found(req.lease));
        }
        let mut w = self.begin();
        let prev = self.put(req, &mut w)?;
        let rev = self.end(w);
        Ok(PutResponse {
            header: Self::header(rev),
            prev_kv: if req.prev_kv { prev } else { None },
        })
    }

    /// Write a put at `w.rev`; returns the previous value.
    fn put(&mut self, req: &PutRequest, w: &mut Rev) -> Result<Option<KeyValue>, KvError> {
        let want_prev = req.prev_kv || self.collect_events;
        let rev = w.rev as u64;
        let ptr = rev_pointer(w.sub, false);
        // One lookup: update the key's entry in place, or add it.
        let (key, old, prev, rec) = match self.t.keys.get_key_value_mut(&KeyRef::new(&req.key)) {
            Some((k, ki)) => {
                // [create, mod, version, lease] of the live value.
                let old = ki.live.as_deref().map(codec::record_numbers).transpose()?;
                let prev = match (&ki.live, want_prev) {
                    (Some(v), true) => Some(codec::decode_kv(k, v, false)?),
                    _ => None,
                };
                let rec = new_record(old, req, w.rev);
                ki.live = Some(rec.encode().into());
                ki.push(rev, ptr);
                (k.clone(), old, prev, rec)
            }
            None => {
                let key = Key::from(req.key.as_str());
                let rec = new_record(None, req, w.rev);
                let ki = KeyIndex {
                    live: Some(rec.encode().into()),
                    revs: vec![(rev, ptr)],
                };
                self.t.keys.insert(key.clone(), ki);
                (key, None, None, rec)
            }
        };
        let ev = codec::encode_event(EventType::Put, &key, Some(rec));
        self.t.hist.insert((rev, w.sub), ev.into());
        w.sub += 1;
        let old_lease = old.map_or(0, |o| o[3]);
        if old_lease != 0 && old_lease != req.lease {
            self.t.lease_keys.remove(&(old_lease, key.clone()));
        }
        if req.lease != 0 && old_lease != req.lease {
            self.t.lease_keys.insert((req.lease, key.clone()), ());
        }
        if self.collect_events {
            w.events.push(Event {
                type_: EventType::Put,
                kv: rec.to_kv(&key),
                prev_kv: prev.clone(),
            });
        }
        Ok(prev)
    }

    fn delete_cmd(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse, KvError> {
        let kr = validate::delete_range(req)?;
        let mut w = self.begin();
        let (deleted, prev_kvs) = self.delete(&kr, req.prev_kv, &mut w)?;
        let rev = self.end(w);
        Ok(DeleteRangeResponse {
            header: Self::header(rev),
            deleted,
            prev_kvs,
        })
    }

    /// Delete the live keys of `kr` at `w.rev`.
    fn delete(
        &mut self,
        kr: &KeyRange,
        want_prev: bool,
        w: &mut Rev,
    ) -> Result<(i64, Vec<KeyValue>), KvError> {
        let mut victims: Vec<String> = Vec::new();
        scan_latest(&self.t.keys, kr, &mut |k, _| {
            victims.push(k.to_string());
            Ok(())
        })?;
        let mut prevs = Vec::new();
        for key in &victims {
            let Some((key, ki)) = self.t.keys.get_key_value_mut(&KeyRef::new(key)) else {
                continue;
            };
            let Some(bytes) = ki.live.take() else {
                continue;
            };
            ki.push(w.rev as u64, rev_pointer(w.sub, true));
            let key = key.clone();
            let ev = codec::encode_event(EventType::Delete, &key, None);
            self.t.hist.insert((w.rev as u64, w.sub), ev.into());
            w.sub += 1;
            let lease = codec::record_lease(&bytes)?;
            if lease != 0 {
                self.t.lease_keys.remove(&(lease, key.clone()));
            }
            if want_prev || self.collect_events {
                let prev = codec::decode_kv(&key, &bytes, false)?;
                if self.collect_events {
                    w.events.push(Event {
                        type_: EventType::Delete,
                        kv: KeyValue {
                            key: key.to_string(),
                            mod_revision: w.rev,
                            ..Default::default()
                        },
                        prev_kv: Some(prev.clone()),
                    });
                }
                if want_prev {
                    prevs.push(prev);
                }
            }
        }
        Ok((victims.len() as i64, prevs))
    }

    fn txn(&mut self, req: &TxnRequest) -> Result<TxnResponse, KvError> {
        validate::txn(req)?;
        let mut succeeded = true;
        for c in &req.compare {
            if !self.compare(c)? {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        // Everything that can fail is checked before the first write.
        for op in ops {
            match op {
                RequestOp::Range(r) => {
                    read::plan(r, self.t.revision, self.t.compact_revision)?;
                }
                RequestOp::Put(p) if p.lease != 0 && !self.lease_exists(p.lease)? => {
                    return Err(KvError::lease_not_found(p.lease));
                }
                _ => {}
            }
        }
        let mut w = self.begin();
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                RequestOp::Range(r) => {
                    // Reads see this txn's earlier writes, as in etcd.
                    let current = if w.sub > 0 { w.rev } else { self.t.revision };
                    let plan = read::plan(r, current, self.t.compact_revision)?;
                    let t = &*self.t;
                    let (kvs, count, more) = match plan.at {
                        None => collect(&plan, |f| scan_latest(&t.keys, &plan.kr, f))?,
                        Some(at) => collect(&plan, |f| scan_at(&t.keys, &t.hist, &plan.kr, at, f))?,
                    };
                    ResponseOp::Range(RangeResponse {
                        header: ResponseHeader::default(),
                        kvs,
                        more,
                        count,
                    })
                }
                RequestOp::Put(p) => {
                    let prev = self.put(p, &mut w)?;
                    ResponseOp::Put(PutResponse {
                        header: ResponseHeader::default(),
                        prev_kv: if p.prev_kv { prev } else { None },
                    })
                }
                RequestOp::DeleteRange(d) => {
                    let kr = validate::delete_range(d)?;
                    let (deleted, prev_kvs) = self.delete(&kr, d.prev_kv, &mut w)?;
                    ResponseOp::DeleteRange(DeleteRangeResponse {
                        header: ResponseHeader::default(),
                        deleted,
                        prev_kvs,
                    })
                }
            });
        }
        let rev = self.end(w);
        for r in &mut responses {
            let h = match r {
                ResponseOp::Range(x) => &mut x.header,
                ResponseOp::Put(x) => &mut x.header,
                ResponseOp::DeleteRange(x) => &mut x.header,
            };
            *h = Self::header(rev);
        }
        Ok(TxnResponse {
            header: Self::header(rev),
            succeeded,
            responses,
        })
    }

    /// `key <result> <target>` for every key of the compare's range; a missing key compares as
    /// zeros, except that a value compare on it is false.
    fn compare(&self, c: &Compare) -> Result<bool, KvError> {
        let kr = validate::compare(c)?;
        let value_target = matches!(c.target, CompareTarget::Value(_));
        let mut kvs = Vec::new();
        scan_latest(&self.t.keys, &kr, &mut |k, v| {
            kvs.push(codec::decode_kv(k, v, !value_target)?);
            Ok(())
        })?;
        if kvs.is_empty() {
            return Ok(!value_target && compare_one(&KeyValue::default(), c));
        }
        Ok(kvs.iter().all(|kv| compare_one(kv, c)))
    }

    fn compact(&mut self, rev: i64) -> Result<CmdResponse, KvError> {
        if rev <= self.t.compact_revision {
            return Err(KvError::compacted(self.t.compact_revision));
        }
        if rev > self.t.revision {
            return Err(KvError::future_revision(rev, self.t.revision));
        }
        super::compact::compact(self.t, rev)?;
        self.t.compact_revision = rev;
        Ok(CmdResponse::Compact {
            revision: self.t.revision,
        })
    }

    fn lease_grant(&mut self, id: i64, ttl: i64, seed: u64) -> Result<CmdResponse, KvError> {
        validate::lease_ttl(ttl)?;
        if id < 0 {
            return Err(KvError::bad_request("lease ID must not be negative"));
        }
        let id = if id == 0 {
            let mut x = seed;
            loop {
                x = splitmix64(x);
                let cand = (x >> 1) as i64;
                if cand != 0 && !self.lease_exists(cand)? {
                    break cand;
                }
            }
        } else if self.lease_exists(id)? {
            return Err(KvError::bad_request(format!(
                "lease already exists (ID {id})"
            )));
        } else {
            id
        };
        self.t.leases.insert(id, ttl);
        self.lease_changes.push(LeaseChange::Granted { id, ttl });
        Ok(CmdResponse::LeaseGrant {
            id,
            ttl,
            revision: self.t.revision,
        })
    }

    /// Remove the lease and delete its keys (one revision, if it had any).
    fn lease_revoke(&mut self, id: i64) -> Result<CmdResponse, KvError> {
        if !self.lease_exists(id)? {
            return Err(KvError::lease_not_found(id));
        }
        let keys = read::lease_keys(&self.t.lease_keys, id);
        let mut w = self.begin();
        for key in &keys {
            self.delete(&KeyRange::one(key), false, &mut w)?;
        }
        for key in keys {
            self.t.lease_keys.remove(&(id, Key::from(key.as_str())));
        }
        self.t.leases.remove(&id);
        self.lease_changes.push(LeaseChange::Revoked { id });
        let rev = self.end(w);
        Ok(CmdResponse::LeaseRevoke { revision: rev })
    }
}

/// The record a put writes at `rev` over the live value's `old` [create, mod, version, lease].
fn new_record(old: Option<[i64; 4]>, req: &PutRequest, rev: i64) -> RecordRef<'_> {
    RecordRef {
        create_revision: old.map_or(rev, |o| o[0]),
        mod_revision: rev,
        version: old.map_or(1, |o| o[2] + 1),
        lease: req.lease,
        value: &req.value,
    }
}

fn compare_one(kv: &KeyValue, c: &Compare) -> bool {
    use std::cmp::Ordering;
    let ord: Ordering = match &c.target {
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::CreateRevision(v) => kv.create_revision.cmp(v),
        CompareTarget::ModRevision(v) => kv.mod_revision.cmp(v),
        CompareTarget::Lease(v) => kv.lease.cmp(v),
        CompareTarget::Value(v) => kv.value.as_bytes().cmp(v.as_bytes()),
    };
    match c.result {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::NotEqual => ord != Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
