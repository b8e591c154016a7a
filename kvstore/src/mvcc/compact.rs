//! Compaction: dropping history that no read at or after the compact revision can need.

use kvclient::proto::EventType;

use super::{Key, KeyRef, Tables, codec};
use crate::error::KvError;

/// Drop every revision below `at` except, per key, the latest one below `at` when it is a put
/// (reads at `at` and later, and `prev_kv` of events at `at` and later, need it). Revisions at
/// or above `at` are all kept, so a watch from `at` misses nothing. A deleted key whose last
/// revision goes leaves the key index.
pub(crate) fn compact(t: &mut Tables, at: i64) -> Result<(), KvError> {
    let at = at as u64;
    let mut doomed: Vec<(u64, u32, Key)> = Vec::new();
    for ((rev, sub), v) in t.hist.range(..(at, 0)) {
        let (kind, key) = codec::event_key(v)?;
        let superseded = t
            .keys
            .get(&KeyRef::new(key))
            .is_some_and(|ki| ki.revs.iter().any(|(r, _)| *r > *rev && *r < at));
        if superseded || kind == EventType::Delete {
            doomed.push((*rev, *sub, Key::from(key)));
        }
    }
    for (rev, sub, key) in doomed {
        t.hist.remove(&(rev, sub));
        let gone = match t.keys.get_mut(&*key) {
            Some(ki) => {
                ki.revs.retain(|(r, _)| *r != rev);
                ki.revs.is_empty() && ki.live.is_none()
            }
            None => false,
        };
        if gone {
            t.keys.remove(&*key);
        }
    }
    Ok(())
}
