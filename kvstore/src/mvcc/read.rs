//! Reads: ranges at the current or an old revision, history scans for watches, leases, members.
//! The scan functions take the tables themselves, so a txn's reads see its earlier writes.

use std::ops::Bound;

use imbl::OrdMap;
use kvclient::proto::{Event, EventType, KeyValue, RangeRequest, RangeResponse, ResponseHeader};

use super::codec::{self, HistEvent, corrupt, split_rev_pointer};
use super::range::{End, KeyRange};
use super::{Bytes, Key, KeyIndex, KeyRef, MemberAttrs, Tables};
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

/// The entries of `keys` that `kr` covers, in key order.
fn covered<'a>(
    keys: &'a OrdMap<Key, KeyIndex>,
    kr: &'a KeyRange,
) -> Box<dyn Iterator<Item = (&'a Key, &'a KeyIndex)> + 'a> {
    let start = kr.start.as_str();
    let from = Bound::Included(KeyRef::new(start));
    match &kr.end {
        End::One => Box::new(keys.get_key_value(&KeyRef::new(start)).into_iter()),
        End::Until(e) => Box::new(keys.range((from, Bound::Excluded(KeyRef::new(e))))),
        End::All => Box::new(keys.range((from, Bound::Unbounded))),
        End::Prefix => Box::new(
            keys.range((from, Bound::Unbounded))
                .take_while(move |(k, _)| k.starts_with(start)),
        ),
    }
}

/// Visit the live keys of `kr`.
pub(crate) fn scan_latest(
    keys: &OrdMap<Key, KeyIndex>,
    kr: &KeyRange,
    f: Visit<'_>,
) -> Result<(), KvError> {
    for (key, ki) in covered(keys, kr) {
        if let Some(rec) = &ki.live {
            f(key, rec)?;
        }
    }
    Ok(())
}

/// Visit the keys of `kr` as they were at revision `at`.
pub(crate) fn scan_at(
    keys: &OrdMap<Key, KeyIndex>,
    hist: &OrdMap<(u64, u32), Bytes>,
    kr: &KeyRange,
    at: i64,
    f: Visit<'_>,
) -> Result<(), KvError> {
    for (key, ki) in covered(keys, kr) {
        if let Some(rec) = record_of(hist, ki.at(at as u64))? {
            f(key, rec)?;
        }
    }
    Ok(())
}

/// The record a change wrote, `None` for a delete (or no change).
fn record_of(
    hist: &OrdMap<(u64, u32), Bytes>,
    change: Option<(u64, u64)>,
) -> Result<Option<&[u8]>, KvError> {
    let Some((rev, ptr)) = change else {
        return Ok(None);
    };
    let (sub, tombstone) = split_rev_pointer(ptr);
    if tombstone {
        return Ok(None);
    }
    let ev = hist
        .get(&(rev, sub))
        .ok_or_else(|| corrupt("revision without history event"))?;
    event_record(ev).map(Some)
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
    keys: &OrdMap<Key, KeyIndex>,
    hist: &OrdMap<(u64, u32), Bytes>,
    key: &str,
    rev: i64,
) -> Result<Option<KeyValue>, KvError> {
    let Some(ki) = keys.get(&KeyRef::new(key)) else {
        return Ok(None);
    };
    let before = (rev as u64).checked_sub(1).and_then(|r| ki.at(r));
    record_of(hist, before)?
        .map(|rec| codec::decode_kv(key, rec, false))
        .transpose()
}

/// Events of revisions `[from, to]` on keys in `kr`, grouped by revision (revisions without a
/// matching event are left out). Stops at a revision boundary once `max_events` were collected;
/// returns the groups and the next revision to scan from.
pub(crate) fn history(
    keys: &OrdMap<Key, KeyIndex>,
    hist: &OrdMap<(u64, u32), Bytes>,
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
    for ((rev, _), v) in hist.range((from as u64, 0)..((to + 1) as u64, 0)) {
        let rev = *rev as i64;
        let last_rev = out.last().map(|(r, _)| *r);
        if last_rev != Some(rev) && total >= max_events {
            return Ok((out, rev));
        }
        let (_, key) = codec::event_key(v)?;
        if !kr.contains(key) {
            continue;
        }
        let ev = codec::decode_event(v)?;
        let event = to_event(ev, rev, |key| {
            if want_prev {
                prev_kv(keys, hist, key, rev)
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

/// A consistent read view of the store: a clone of its tables, unchanged by later writes.
pub struct Reader {
    pub(super) t: Tables,
}

impl Reader {
    pub(crate) fn new(t: Tables) -> Reader {
        Reader { t }
    }

    pub fn revision(&self) -> i64 {
        self.t.revision
    }

    pub fn compact_revision(&self) -> i64 {
        self.t.compact_revision
    }

    /// A range request, answered as of this view. The header carries only the revision.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, KvError> {
        let t = &self.t;
        let plan = plan(req, t.revision, t.compact_revision)?;
        let (kvs, count, more) = match plan.at {
            None => collect(&plan, |f| scan_latest(&t.keys, &plan.kr, f))?,
            Some(at) => collect(&plan, |f| scan_at(&t.keys, &t.hist, &plan.kr, at, f))?,
        };
        Ok(RangeResponse {
            header: ResponseHeader {
                revision: t.revision,
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
        let t = &self.t;
        history(
            &t.keys, &t.hist, kr, from, t.revision, want_prev, max_events,
        )
    }

    /// Every lease and its TTL.
    pub fn leases(&self) -> Result<Vec<(i64, i64)>, KvError> {
        Ok(self.t.leases.iter().map(|(k, v)| (*k, *v)).collect())
    }

    pub fn lease_ttl(&self, id: i64) -> Result<Option<i64>, KvError> {
        Ok(self.t.leases.get(&id).copied())
    }

    pub fn lease_keys(&self, id: i64) -> Result<Vec<String>, KvError> {
        Ok(lease_keys(&self.t.lease_keys, id))
    }

    pub fn members(&self) -> Result<Vec<(u64, MemberAttrs)>, KvError> {
        let mut out = Vec::new();
        for (id, v) in self.t.members.iter() {
            let attrs =
                serde_json::from_slice(v).map_err(|_| corrupt("member attributes are not JSON"))?;
            out.push((*id, attrs));
        }
        Ok(out)
    }

    /// An opaque `meta` entry (the state machine keeps its Raft bookkeeping there).
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.t.meta.get(key).cloned())
    }
}

/// The keys attached to lease `id`.
pub(crate) fn lease_keys(table: &OrdMap<(i64, Key), ()>, id: i64) -> Vec<String> {
    table
        .range((id, Key::from(""))..)
        .take_while(|((lid, _), _)| *lid == id)
        .map(|((_, key), _)| key.to_string())
        .collect()
}
