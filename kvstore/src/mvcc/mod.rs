//! The revisioned key space (etcd's MVCC) on redb tables: current values, per-key revisions and
//! the revision-ordered history that old reads and watches scan.
//!
//! Tables:
//! - `kv`: key → the live key's [`codec::Record`] (deleted keys are absent);
//! - `revs`: (key, revision) → the event's sub-index and a tombstone flag, so a read at an old
//!   revision finds each key's latest change at or before it;
//! - `history`: (revision, sub-index) → the event (key, put/delete, record written);
//! - `meta`: current revision, compact revision, and opaque entries for the state machine
//!   (last applied log id, membership);
//! - `leases`: lease id → TTL; `lease_keys`: (lease id, key) for keys attached to a lease;
//! - `members`: member id → published name and client URLs.

pub mod codec;
mod compact;
pub mod range;
mod read;
mod snapshot;
pub mod validate;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::KvError;
pub use range::KeyRange;
pub use read::Reader;
pub use write::{Applier, LeaseChange, RevisionEvents};

pub(crate) const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
pub(crate) const REVS: TableDefinition<(&str, u64), u64> = TableDefinition::new("revs");
pub(crate) const HISTORY: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("history");
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const LEASES: TableDefinition<i64, i64> = TableDefinition::new("leases");
pub(crate) const LEASE_KEYS: TableDefinition<(i64, &str), ()> = TableDefinition::new("lease_keys");
pub(crate) const MEMBERS: TableDefinition<u64, &[u8]> = TableDefinition::new("members");

pub(crate) const META_REVISION: &str = "revision";
pub(crate) const META_COMPACT: &str = "compact_revision";

/// A member's published attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAttrs {
    pub name: String,
    pub client_urls: Vec<String>,
}

/// The state database. Reads open their own redb read transaction (a consistent snapshot);
/// writes go through an [`Applier`], only from the Raft state machine.
pub struct Store {
    db: Database,
    path: PathBuf,
    /// Some commit since the last [`Store::sync`] was not durable.
    dirty: AtomicBool,
    /// Apply transactions whose clients were answered before they committed ([`Store::answering`]).
    answered: std::sync::atomic::AtomicU64,
    /// ... and of those, how many are committed and published.
    visible: tokio::sync::watch::Sender<u64>,
    /// Taken around every write transaction of ours ([`Store::writer`]).
    writer: Arc<tokio::sync::Mutex<()>>,
}

impl Store {
    /// Open (or create) the database at `path`, creating any missing table.
    pub fn open(path: &Path) -> Result<Store, KvError> {
        let db = Database::create(path).map_err(|e| {
            KvError::internal(format!("opening state database {}: {e}", path.display()))
        })?;
        let txn = db.begin_write()?;
        {
            txn.open_table(KV)?;
            txn.open_table(REVS)?;
            txn.open_table(HISTORY)?;
            txn.open_table(META)?;
            txn.open_table(LEASES)?;
            txn.open_table(LEASE_KEYS)?;
            txn.open_table(MEMBERS)?;
        }
        txn.commit()?;
        Ok(Store {
            db,
            path: path.to_path_buf(),
            dirty: AtomicBool::new(false),
            answered: Default::default(),
            visible: tokio::sync::watch::Sender::new(0),
            writer: Default::default(),
        })
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// A consistent read view of the whole store.
    pub fn read(&self) -> Result<Reader, KvError> {
        let txn: ReadTransaction = self.db.begin_read()?;
        Reader::new(txn)
    }

    /// Make every earlier (possibly non-durable) commit durable: an empty commit with
    /// `Durability::Immediate` persists all commits before it.
    pub fn sync(&self) -> Result<(), KvError> {
        let started = std::time::Instant::now();
        self.dirty.store(false, Ordering::Release);
        let txn = self.db.begin_write()?;
        txn.commit()?;
        tracing::debug!(elapsed = ?started.elapsed(), "state database synced");
        Ok(())
    }

    /// Wait, without blocking the thread, until no other writer of ours holds redb's write
    /// lock; hold the guard while writing. redb's `begin_write` blocks the thread, and a
    /// durable [`Store::sync`] holds the lock through writing out and fsync'ing everything
    /// since the last one (30–160 ms under load): on a member's only runtime thread that froze
    /// replication, reads and every request, once a second.
    pub async fn writer(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.writer.clone().lock_owned().await
    }

    /// [`Store::sync`] on a blocking thread, after the other writers of ours.
    pub async fn sync_in_background(self: &Arc<Self>) -> Result<(), KvError> {
        let guard = self.writer().await;
        let s = self.clone();
        tokio::task::spawn_blocking(move || {
            let _writing = guard;
            s.sync()
        })
        .await
        .map_err(|e| KvError::internal(format!("syncing the state database: {e}")))?
    }

    /// Note a commit made with `Durability::None`.
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Whether a [`Store::sync`] would persist anything.
    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// The state machine is about to answer clients before its transaction commits; returns a
    /// ticket for [`Store::made_visible`]. Until then [`Store::wait_visible`] holds requests back.
    pub fn answering(&self) -> u64 {
        self.answered.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// What `ticket`'s transaction wrote is committed and published.
    pub fn made_visible(&self, ticket: u64) {
        self.visible.send_if_modified(|v| {
            let moved = *v < ticket;
            *v = (*v).max(ticket);
            moved
        });
    }

    /// Wait until every answer given so far is visible in this member's state (and watch
    /// hub), so that a request that follows an answer sees it, whatever it reads; at most
    /// `limit` (a failed commit stops Raft anyway).
    pub async fn wait_visible(&self, limit: std::time::Duration) {
        let want = self.answered.load(Ordering::Acquire);
        if *self.visible.borrow() >= want {
            return;
        }
        let mut rx = self.visible.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|v| *v >= want)).await;
    }

    /// Bytes on disk.
    pub fn file_size(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }
}

/// The current and compact revisions as stored in `meta`.
pub(crate) fn meta_revisions(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<(i64, i64), KvError> {
    let get = |k: &str| -> Result<i64, KvError> {
        match meta.get(k)? {
            Some(v) => codec::decode_i64(v.value()),
            None => Ok(0),
        }
    };
    Ok((get(META_REVISION)?, get(META_COMPACT)?))
}

#[cfg(test)]
mod tests;
