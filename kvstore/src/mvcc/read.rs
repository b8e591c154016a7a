//! Reads: ranges at the current or an old revision, history scans for watches, leases, members.
//! The scan functions are generic over redb's `ReadableTable`, so a txn's reads inside a write
//! transaction see its earlier writes.

use client::kv::proto::{Event, EventType, KeyValue, RangeRequest, RangeResponse, ResponseHeader};
use redb::{ReadTransaction, ReadableTable};

use super::codec::{self, HistEvent, corrupt, split_rev_pointer};
use super::range::{End, KeyRange};
use super::{HISTORY, KV, LEASE_KEYS, LEASES, MEMBERS, META, MemberAttrs, REVS};
use crate::error::KvError;

/// What a range request asks for, validated against the store's revisions.
pub(crate) struct RangePlan {
    pub kr: KeyRange,
    /// The revision to read at; `None` for the current one.
    pub at: Option<i64>,
    pub limit: usize,
    pub keys_only: bool,
    pub count_only: bool,
}

pub(crate) fn plan(req: &RangeRequest, current: i64, compact: i64) -> Result<RangePlan, KvError> {
    let kr = KeyRange::new(&req.key, req.range_end.as_deref(), req.prefix)?;
    if req.limit < 0 {
        return Err(KvError::bad_request("limit must not be negative"));
    }
    let at = check_revision(req.revision, current, compact)?;
    Ok(RangePlan {
        kr,
        at: (at != current).then_some(at),
        limit: if req.limit > 0 {
            req.limit as usize
        } else {
            usize::MAX
        },
        keys_only: req.keys_only,
        count_only: req.count_only,
    })
}

/// The revision a read at `rev` (0 = current) is served at.
pub(crate) fn check_revision(rev: i64, current: i64, compact: i64) -> Result<i64, KvError> {
    if rev < 0 {
        return Err(KvError::bad_request("revision must not be negative"));
    }
    if rev == 0 {
        return Ok(current);
    }
    if rev > current {
        return Err(KvError::future_revision(rev, current));
    }
    if rev < compact {
        return Err(KvError::compacted(compact));
    }
    Ok(rev)
}

/// History events grouped by revision, in revision order.
pub type RevGroups = Vec<(i64, Vec<Event>)>;

pub(crate) type Visit<'f> = &'f mut dyn FnMut(&str, &[u8]) -> Result<(), KvError>;

/// Run `scan` (which calls its visitor with each key and encoded record in key order) and build
/// the response's kvs, count and more.
pub(crate) fn collect(
    plan: &RangePlan,
    scan: impl FnOnce(Visit<'_>) -> Result<(), KvError>,
) -> Result<(Vec<KeyValue>, i64, bool), KvError> {
    let mut kvs = Vec::new();
    let mut count: i64 = 0;
    let mut visit = |key: &str, rec: &[u8]| -> Result<(), KvError> {
        count += 1;
        if !plan.count_only && kvs.len() < plan.limit {
            kvs.push(codec::decode_kv(key, rec, plan.keys_only)?);
        }
        Ok(())
    };
    scan(&mut visit)?;
    let more = !plan.count_only && count > kvs.len() as i64;
    Ok((kvs, count, more))
}

/// Visit the live keys of `kr` from the `kv` table.
pub(crate) fn scan_latest(
    kv: &impl ReadableTable<&'static str, &'static [u8]>,
    kr: &KeyRange,
    f: Visit<'_>,
) -> Result<(), KvError> {
    let start = kr.start.as_str();
    let iter = match &kr.end {
        End::One => {
            if let Some(v) = kv.get(start)? {
                f(start, v.value())?;
            }
            return Ok(());
        }
        End::Until(e) => kv.range::<&str>(start..e.as_str())?,
        End::All | End::Prefix => kv.range::<&str>(start..)?,
    };
    let prefix = kr.end == End::Prefix;
    for item in iter {
        let (k, v) = item?;
        let key = k.value();
        if prefix && !key.starts_with(start) {
            break;
        }
        f(key, v.value())?;
    }
    Ok(())
}

/// Visit the keys of `kr` as they were at revision `at`, from `revs` and `history`.
pub(crate) fn scan_at(
    revs: &impl ReadableTable<(&'static str, u64), u64>,
    hist: &impl ReadableTable<(u64, u32), &'static [u8]>,
    kr: &KeyRange,
    at: i64,
    f: Visit<'_>,
) -> Result<(), KvError> {
    let at = at as u64;
    let start = kr.start.as_str();
    let emit = |key: &str, found: Option<(u64, u64)>, f: Visit<'_>| -> Result<(), KvError> {
        if let Some((rev, ptr)) = found {
            let (sub, tombstone) = split_rev_pointer(ptr);
            if !tombstone {
                let ev = hist
                    .get((rev, sub))?
                    .ok_or_else(|| corrupt("revision without history event"))?;
                f(key, event_record(ev.value())?)?;
            }
        }
        Ok(())
    };
    let iter = match &kr.end {
        End::One => {
            let mut it = revs.range::<(&str, u64)>((start, 0)..=(start, at))?;
            let found = match it.next_back() {
                Some(item) => {
                    let (k, v) = item?;
                    Some((k.value().1, v.value()))
                }
                None => None,
            };
            return emit(start, found, f);
        }
        End::Until(e) => revs.range::<(&str, u64)>((start, 0)..(e.as_str(), 0))?,
        End::All | End::Prefix => revs.range::<(&str, u64)>((start, 0)..)?,
    };
    let prefix = kr.end == End::Prefix;
    let mut cur_key: Option<String> = None;
    let mut found: Option<(u64, u64)> = None;
    for item in iter {
        let (k, v) = item?;
        let (key, rev) = k.value();
        if prefix && !key.starts_with(start) {
            break;
        }
        if cur_key.as_deref() != Some(key) {
            if let Some(prev) = &cur_key {
                emit(prev, found.take(), f)?;
            }
            cur_key = Some(key.to_string());
        }
        if rev <= at {
            found = Some((rev, v.value()));
        }
    }
    if let Some(prev) = &cur_key {
        emit(prev, found, f)?;
    }
    Ok(())
}

/// The encoded record inside an encoded put event.
fn event_record(ev: &[u8]) -> Result<&[u8], KvError> {
    let (kind, key) = codec::event_key(ev)?;
    if kind != EventType::Put {
        return Err(corrupt("revision points at a delete event"));
    }
    Ok(&ev[5 + key.len()..])
}

/// The key's value just before revision `rev`, if it existed then.
pub(crate) fn prev_kv(
    revs: &impl ReadableTable<(&'static str, u64), u64>,
    hist: &impl ReadableTable<(u64, u32), &'static [u8]>,
    key: &str,
    rev: i64,
) -> Result<Option<KeyValue>, KvError> {
    let mut it = revs.range::<(&str, u64)>((key, 0)..(key, rev as u64))?;
    let Some(item) = it.next_back() else {
        return Ok(None);
    };
    let (k, v) = item?;
    let (sub, tombstone) = split_rev_pointer(v.value());
    if tombstone {
        return Ok(None);
    }
    let ev = hist
        .get((k.value().1, sub))?
        .ok_or_else(|| corrupt("revision without history event"))?;
    Ok(Some(codec::decode_kv(
        key,
        event_record(ev.value())?,
        false,
    )?))
}

/// Events of revisions `[from, to]` on keys in `kr`, grouped by revision (revisions without a
/// matching event are left out). Stops at a revision boundary once `max_events` were collected;
/// returns the groups and the next revision to scan from.
pub(crate) fn history(
    revs: &impl ReadableTable<(&'static str, u64), u64>,
    hist: &impl ReadableTable<(u64, u32), &'static [u8]>,
    kr: &KeyRange,
    from: i64,
    to: i64,
    want_prev: bool,
    max_events: usize,
) -> Result<(RevGroups, i64), KvError> {
    let mut out: RevGroups = Vec::new();
    let mut total = 0usize;
    if from > to {
        return Ok((out, from));
    }
    for item in hist.range::<(u64, u32)>((from as u64, 0)..((to + 1) as u64, 0))? {
        let (k, v) = item?;
        let rev = k.value().0 as i64;
        let last_rev = out.last().map(|(r, _)| *r);
        if last_rev != Some(rev) && total >= max_events {
            return Ok((out, rev));
        }
        let (_, key) = codec::event_key(v.value())?;
        if !kr.contains(key) {
            continue;
        }
        let ev = codec::decode_event(v.value())?;
        let event = to_event(ev, rev, |key| {
            if want_prev {
                prev_kv(revs, hist, key, rev)
            } else {
                Ok(None)
            }
        })?;
        total += 1;
        match out.last_mut() {
            Some((r, evs)) if *r == rev => evs.push(event),
            _ => out.push((rev, vec![event])),
        }
    }
    Ok((out, to + 1))
}

/// The wire event for a stored one: a delete's kv has only the key and the delete's revision.
pub(crate) fn to_event(
    ev: HistEvent,
    rev: i64,
    prev: impl FnOnce(&str) -> Result<Option<KeyValue>, KvError>,
) -> Result<Event, KvError> {
    let prev_kv = prev(&ev.key)?;
    let kv = match ev.record {
        Some(r) => r.into_kv(ev.key),
        None => KeyValue {
            key: ev.key,
            mod_revision: rev,
            ..Default::default()
        },
    };
    Ok(Event {
        type_: ev.kind,
        kv,
        prev_kv,
    })
}

/// A consistent read view (one redb read transaction) of the store.
pub struct Reader {
    revision: i64,
    compact_revision: i64,
    pub(super) txn: ReadTransaction,
}

impl Reader {
    pub(crate) fn new(txn: ReadTransaction) -> Result<Reader, KvError> {
        let (revision, compact_revision) = super::meta_revisions(&txn.open_table(META)?)?;
        Ok(Reader {
            revision,
            compact_revision,
            txn,
        })
    }

    pub fn revision(&self) -> i64 {
        self.revision
    }

    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// A range request, answered as of this view. The header carries only the revision.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, KvError> {
        let plan = plan(req, self.revision, self.compact_revision)?;
        let (kvs, count, more) = match plan.at {
            None => {
                let kv = self.txn.open_table(KV)?;
                collect(&plan, |f| scan_latest(&kv, &plan.kr, f))?
            }
            Some(at) => {
                let revs = self.txn.open_table(REVS)?;
                let hist = self.txn.open_table(HISTORY)?;
                collect(&plan, |f| scan_at(&revs, &hist, &plan.kr, at, f))?
            }
        };
        Ok(RangeResponse {
            header: ResponseHeader {
                revision: self.revision,
                ..Default::default()
            },
            kvs,
            more,
            count,
        })
    }

    /// See [`history`]; `to` is capped at this view's revision.
    pub fn history(
        &self,
        kr: &KeyRange,
        from: i64,
        want_prev: bool,
        max_events: usize,
    ) -> Result<(RevGroups, i64), KvError> {
        let revs = self.txn.open_table(REVS)?;
        let hist = self.txn.open_table(HISTORY)?;
        history(&revs, &hist, kr, from, self.revision, want_prev, max_events)
    }

    /// Every lease and its TTL.
    pub fn leases(&self) -> Result<Vec<(i64, i64)>, KvError> {
        let t = self.txn.open_table(LEASES)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            out.push((k.value(), v.value()));
        }
        Ok(out)
    }

    pub fn lease_ttl(&self, id: i64) -> Result<Option<i64>, KvError> {
        Ok(self.txn.open_table(LEASES)?.get(id)?.map(|v| v.value()))
    }

    pub fn lease_keys(&self, id: i64) -> Result<Vec<String>, KvError> {
        let t = self.txn.open_table(LEASE_KEYS)?;
        let mut out = Vec::new();
        for item in t.range::<(i64, &str)>((id, "")..)? {
            let (k, _) = item?;
            let (lid, key) = k.value();
            if lid != id {
                break;
            }
            out.push(key.to_string());
        }
        Ok(out)
    }

    pub fn members(&self) -> Result<Vec<(u64, MemberAttrs)>, KvError> {
        let t = self.txn.open_table(MEMBERS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            let attrs = serde_json::from_slice(v.value())
                .map_err(|_| corrupt("member attributes are not JSON"))?;
            out.push((k.value(), attrs));
        }
        Ok(out)
    }

    /// An opaque `meta` entry (the state machine keeps its Raft bookkeeping there).
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self
            .txn
            .open_table(META)?
            .get(key)?
            .map(|v| v.value().to_vec()))
    }
}
