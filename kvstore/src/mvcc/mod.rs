//! The revisioned key space (etcd's MVCC) in memory: current values, per-key revisions and the
//! revision-ordered history that old reads and watches scan.
//!
//! Tables (persistent ordered maps, so a read view is a cheap clone that later writes do not
//! disturb):
//! - `keys`: key → its [`KeyIndex`]: the live [`codec::Record`] (none once deleted) and every
//!   revision that changed it, so a read at an old revision finds each key's latest change at
//!   or before it (etcd's in-memory key index; one lookup per put);
//! - `hist`: (revision, sub-index) → the event (key, put/delete, record written);
//! - `meta`: opaque entries for the state machine (last applied log id, membership, cluster id);
//! - `leases`: lease id → TTL; `lease_keys`: (lease id, key) for keys attached to a lease;
//! - `members`: member id → published name and client URLs.
//!
//! Nothing here touches the disk: the Raft log (fsync'ed before anything is applied) and the
//! snapshots ([`Reader::dump`]) are what make the state durable — a restarted member restores
//! its latest snapshot and re-applies the log after it (see `state_machine`).

pub mod codec;
mod compact;
mod key;
pub mod range;
mod read;
mod snapshot;
pub mod validate;
mod write;

use std::sync::{Arc, Mutex, MutexGuard};

use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use crate::error::KvError;
pub(crate) use key::{Key, KeyRef};
pub use range::KeyRange;
pub use read::Reader;
pub use write::{Applier, LeaseChange, RevisionEvents};

/// Encoded records and events.
pub(crate) type Bytes = Arc<[u8]>;

pub(crate) const META_REVISION: &str = "revision";
pub(crate) const META_COMPACT: &str = "compact_revision";

/// One key's entry in `keys`. A deleted key stays until compaction drops its last revision.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyIndex {
    /// The live record, `None` once deleted.
    pub live: Option<Bytes>,
    /// (revision, [`codec::rev_pointer`]) of every change kept, ascending.
    pub revs: Vec<(u64, u64)>,
}

impl KeyIndex {
    /// Record a change at `rev` (a second change in one revision replaces the first).
    pub fn push(&mut self, rev: u64, ptr: u64) {
        match self.revs.last_mut() {
            Some(last) if last.0 == rev => last.1 = ptr,
            _ => self.revs.push((rev, ptr)),
        }
    }

    /// The latest change at or before `rev`.
    pub fn at(&self, rev: u64) -> Option<(u64, u64)> {
        let n = self.revs.partition_point(|(r, _)| *r <= rev);
        n.checked_sub(1).map(|i| self.revs[i])
    }
}

/// Every table of the store. Cloning is O(1): the maps share their nodes until one is changed.
#[derive(Clone, Default)]
pub struct Tables {
    pub(crate) keys: OrdMap<Key, KeyIndex>,
    pub(crate) hist: OrdMap<(u64, u32), Bytes>,
    pub(crate) meta: OrdMap<String, Vec<u8>>,
    pub(crate) leases: OrdMap<i64, i64>,
    pub(crate) lease_keys: OrdMap<(i64, Key), ()>,
    pub(crate) members: OrdMap<u64, Vec<u8>>,
    pub(crate) revision: i64,
    pub(crate) compact_revision: i64,
}

/// A member's published attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAttrs {
    pub name: String,
    pub client_urls: Vec<String>,
}

/// The state. Reads take a consistent view ([`Store::read`]); writes go through an [`Applier`]
/// over [`Store::write`], only from the Raft state machine.
#[derive(Default)]
pub struct Store {
    tables: Mutex<Tables>,
}

impl Store {
    /// An empty store (revision 0).
    pub fn new() -> Store {
        Store::default()
    }

    /// A consistent read view of the whole store, as of now.
    pub fn read(&self) -> Result<Reader, KvError> {
        Ok(Reader::new(self.write().clone()))
    }

    /// The tables, to change in place (readers keep the views they took).
    pub fn write(&self) -> MutexGuard<'_, Tables> {
        // A panic while applying stops Raft's state machine anyway.
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests;
