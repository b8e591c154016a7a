//! The Raft log, vote and committed pointer in their own redb file.
//!
//! Durability: `append` commits all entries of the call in one write transaction with
//! `Durability::Immediate` (one fsync per call) and only then reports them flushed; `save_vote`,
//! `truncate` and `purge` commit durably too. `save_committed` commits without fsync: losing it
//! only means re-applying fewer entries at startup, and the next durable commit persists it.
//!
//! The most recent entries are also kept in memory ([`CACHE_ENTRIES`]): replication to
//! followers and the state machine read them from there instead of decoding them from disk.
//! Disk I/O runs on the calling worker thread (`block_in_place`), which saves a thread hop per
//! append on the write path.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Entry, NodeId, TypeConfig};

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

type SE = StorageError<NodeId>;

/// Entries kept in memory after they are appended.
const CACHE_ENTRIES: usize = 4096;

/// Run blocking disk I/O on this worker thread, letting the runtime move its other tasks away
/// (or simply inline on a current-thread runtime).
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Cheap to clone: clones share the database and the cache (a clone is the log reader).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    cache: Arc<Mutex<BTreeMap<u64, Entry>>>,
    /// Counts completed appends, so the proposer can form the next batch while one flushes.
    flushed: Arc<tokio::sync::watch::Sender<u64>>,
}

fn read_err(e: impl std::fmt::Display) -> SE {
    StorageIOError::read_logs(AnyError::error(e)).into()
}

fn write_err(e: impl std::fmt::Display) -> SE {
    StorageIOError::write_logs(AnyError::error(e)).into()
}

impl LogStore {
    pub fn open(path: &Path) -> Result<LogStore, SE> {
        let db = Database::create(path)
            .map_err(|e| write_err(format!("opening raft log {}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(write_err)?;
        {
            txn.open_table(LOGS).map_err(write_err)?;
            txn.open_table(STATE).map_err(write_err)?;
        }
        txn.commit().map_err(write_err)?;
        Ok(LogStore {
            db: Arc::new(db),
            cache: Arc::default(),
            flushed: Arc::new(tokio::sync::watch::Sender::new(0)),
        })
    }

    /// The number of appends flushed so far (changes after each one).
    pub fn flushed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.flushed.subscribe()
    }

    /// Whether other handles (log readers held by Raft tasks) are still alive.
    pub fn handles(&self) -> usize {
        Arc::strong_count(&self.db)
    }

    fn get_state<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SE> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let t = txn.open_table(STATE).map_err(read_err)?;
        match t.get(key).map_err(read_err)? {
            Some(v) => serde_json::from_slice(v.value())
                .map(Some)
                .map_err(read_err),
            None => Ok(None),
        }
    }

    /// Write a state entry; `durable` selects an fsync'ed commit.
    async fn put_state<T: Serialize>(
        &self,
        key: &'static str,
        v: &T,
        durable: bool,
    ) -> Result<(), SE> {
        let bytes = serde_json::to_vec(v).map_err(write_err)?;
        self.write(
            move |txn| {
                txn.open_table(STATE)?.insert(key, bytes.as_slice())?;
                Ok(())
            },
            durable,
        )
        .await
    }

    /// Run `f` in one write transaction and commit it.
    async fn write<F>(&self, f: F, durable: bool) -> Result<(), SE>
    where
        F: FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error> + Send + 'static,
    {
        let db = &self.db;
        blocking(move || -> Result<(), redb::Error> {
            let mut txn = db.begin_write()?;
            if !durable {
                txn.set_durability(Durability::None)?;
            }
            f(&txn)?;
            txn.commit()?;
            Ok(())
        })
        .map_err(write_err)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entries of `range` if the cache holds all of them.
    fn cached<RB: RangeBounds<u64>>(&self, range: &RB) -> Option<Vec<Entry>> {
        let cache = self.cache();
        let first = *cache.keys().next()?;
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s + 1,
            Bound::Unbounded => return None,
        };
        if start < first {
            return None;
        }
        let out: Vec<Entry> = cache
            .range((range.start_bound().cloned(), range.end_bound().cloned()))
            .map(|(_, e)| e.clone())
            .collect();
        // Contiguous from `start`: the cache holds every entry from its first on.
        Some(out)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, SE> {
        if let Some(hit) = self.cached(&range) {
            return Ok(hit);
        }
        let txn = self.db.begin_read().map_err(read_err)?;
        let t = txn.open_table(LOGS).map_err(read_err)?;
        let mut out = Vec::new();
        for item in t.range::<u64>(range).map_err(read_err)? {
            let (_, v) = item.map_err(read_err)?;
            out.push(serde_json::from_slice(v.value()).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SE> {
        let last_purged: Option<LogId<NodeId>> = self.get_state(LAST_PURGED)?;
        let txn = self.db.begin_read().map_err(read_err)?;
        let t = txn.open_table(LOGS).map_err(read_err)?;
        let last = match t.last().map_err(read_err)? {
            Some((_, v)) => {
                let e: Entry = serde_json::from_slice(v.value()).map_err(read_err)?;
                Some(e.log_id)
            }
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), SE> {
        self.put_state(VOTE, vote, true)
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    /// The vote as saved, but never "committed". openraft 0.9 restores a member whose saved
    /// vote is a committed one for itself as leader in the same term, reusing that term's old
    /// no-op entry as its read index while its commit index is the stale one read at startup —
    /// so a linearizable read right after a full-cluster restart could miss acknowledged writes.
    /// An uncommitted vote keeps the same promise (no vote for anyone else in this term) and
    /// makes the member stand for election in a new term, whose no-op commits everything before.
    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, SE> {
        Ok(self.get_state::<Vote<NodeId>>(VOTE)?.map(|mut v| {
            v.committed = false;
            v
        }))
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), SE> {
        self.put_state(COMMITTED, &committed, false).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, SE> {
        Ok(self
            .get_state::<Option<LogId<NodeId>>>(COMMITTED)?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SE>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        tracing::trace!("write path: append start");
        let mut rows = Vec::new();
        let mut appended = Vec::new();
        for e in entries {
            rows.push((e.log_id.index, serde_json::to_vec(&e).map_err(write_err)?));
            appended.push(e);
        }
        // One transaction, one fsync, for everything this call appends.
        let res = self
            .write(
                move |txn| {
                    let mut t = txn.open_table(LOGS)?;
                    for (i, bytes) in &rows {
                        t.insert(*i, bytes.as_slice())?;
                    }
                    Ok(())
                },
                true,
            )
            .await;
        match res {
            Ok(()) => {
                tracing::trace!("write path: append flushed");
                let mut cache = self.cache();
                // Appends are contiguous; anything else (after a restart) starts it anew.
                let follows = cache
                    .keys()
                    .next_back()
                    .zip(appended.first())
                    .is_none_or(|(last, e)| e.log_id.index == last + 1);
                if !follows {
                    cache.clear();
                }
                for e in appended {
                    cache.insert(e.log_id.index, e);
                }
                while cache.len() > CACHE_ENTRIES {
                    cache.pop_first();
                }
                drop(cache);
                self.flushed.send_modify(|n| *n += 1);
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), SE> {
        self.cache().retain(|i, _| *i < log_id.index);
        self.write(
            move |txn| {
                txn.open_table(LOGS)?
                    .retain_in::<u64, _>(log_id.index.., |_, _| false)?;
                Ok(())
            },
            true,
        )
        .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SE> {
        self.cache().retain(|i, _| *i > log_id.index);
        let bytes = serde_json::to_vec(&Some(log_id)).map_err(write_err)?;
        self.write(
            move |txn| {
                txn.open_table(STATE)?
                    .insert(LAST_PURGED, bytes.as_slice())?;
                txn.open_table(LOGS)?
                    .retain_in::<u64, _>(..=log_id.index, |_, _| false)?;
                Ok(())
            },
            true,
        )
        .await
    }
}
