//! Compaction: dropping history that no read at or after the compact revision can need.

use client::kv::proto::EventType;
use redb::{ReadableTable, Table};

use super::codec;
use crate::error::KvError;

/// Drop every revision below `at` except, per key, the latest one below `at` when it is a put
/// (reads at `at` and later, and `prev_kv` of events at `at` and later, need it). Revisions at
/// or above `at` are all kept, so a watch from `at` misses nothing.
pub(crate) fn compact(
    hist: &mut Table<'_, (u64, u32), &'static [u8]>,
    revs: &mut Table<'_, (&'static str, u64), u64>,
    at: i64,
) -> Result<(), KvError> {
    let at = at as u64;
    let mut doomed: Vec<(u64, u32, String)> = Vec::new();
    for item in hist.range::<(u64, u32)>(..(at, 0))? {
        let (k, v) = item?;
        let (rev, sub) = k.value();
        let (kind, key) = codec::event_key(v.value())?;
        let superseded = revs
            .range::<(&str, u64)>((key, rev + 1)..(key, at))?
            .next()
            .is_some();
        if superseded || kind == EventType::Delete {
            doomed.push((rev, sub, key.to_string()));
        }
    }
    for (rev, sub, key) in doomed {
        hist.remove((rev, sub))?;
        revs.remove((key.as_str(), rev))?;
    }
    Ok(())
}
