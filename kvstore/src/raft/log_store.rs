//! The Raft log, vote and committed pointer in their own redb file.
//!
//! Durability: `append` hands the entries to the log's writer thread and returns at once; the
//! writer commits them with `Durability::Immediate` (one fsync for all appends waiting then) and
//! only then reports them flushed through openraft's `LogFlushed` callback; an entry counts only
//! once it is on disk. Every write goes through that one thread, in order; `save_vote`,
//! `truncate` and `purge` commit durably and wait for it. `save_committed` only records the
//! pointer in memory and returns: openraft awaits it before every apply, so queueing it behind
//! an fsync would delay each answer by a whole disk write. The writer stores the latest pointer
//! in its next transaction at most once a second (more pages per fsync would slow every append;
//! an older pointer only means re-applying more entries at startup).
//!
//! The most recent entries are also kept in memory ([`CACHE_ENTRIES`]): replication to
//! followers and the state machine read them from there instead of decoding them from disk;
//! reads that miss it run on the calling thread (short redb reads from the page cache).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Entry, NodeId, TypeConfig};

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

type SE = StorageError<NodeId>;

/// How often the committed pointer is written at most.
const COMMITTED_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

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
    /// The last log index on disk: cached entries after it are never evicted.
    flushed_index: Arc<AtomicU64>,
    writer: std::sync::mpsc::Sender<Job>,
    /// The committed pointer not yet written (see the module documentation).
    committed: Arc<Mutex<Option<Vec<u8>>>>,
}

type WriteFn = Box<dyn FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error> + Send>;

/// A write for the writer thread, and whom to tell when it is committed.
struct Job {
    f: WriteFn,
    done: Done,
}

enum Done {
    Reply(tokio::sync::oneshot::Sender<Result<(), String>>),
    Appended {
        last_index: u64,
        callback: LogFlushed<TypeConfig>,
    },
}

/// The writer thread: runs jobs in order; consecutive appends share one transaction and fsync.
/// It holds the database weakly, so it ends (and the file closes) when every handle is gone.
fn writer_loop(
    db: std::sync::Weak<Database>,
    rx: std::sync::mpsc::Receiver<Job>,
    flushed: Arc<tokio::sync::watch::Sender<u64>>,
    flushed_index: Arc<AtomicU64>,
    committed: Arc<Mutex<Option<Vec<u8>>>>,
) {
    let mut next: Option<Job> = None;
    let mut last_committed_write = std::time::Instant::now();
    loop {
        let first = match next.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        let mut jobs = vec![first];
        if matches!(jobs[0].done, Done::Appended { .. }) {
            while let Ok(j) = rx.try_recv() {
                if matches!(j.done, Done::Appended { .. }) {
                    jobs.push(j);
                } else {
                    next = Some(j);
                    break;
                }
            }
        }
        let mut dones = Vec::with_capacity(jobs.len());
        let result = match db.upgrade() {
            None => Err("the raft log is closed".to_string()),
            Some(db) => (|| -> Result<(), redb::Error> {
                let txn = db.begin_write()?;
                for j in jobs {
                    (j.f)(&txn)?;
                    dones.push(j.done);
                }
                // At most once per interval: each write costs this commit pages to fsync.
                if last_committed_write.elapsed() >= COMMITTED_INTERVAL {
                    let pointer = committed.lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(bytes) = pointer {
                        txn.open_table(STATE)?.insert(COMMITTED, bytes.as_slice())?;
                        last_committed_write = std::time::Instant::now();
                    }
                }
                txn.commit()?;
                Ok(())
            })()
            .map_err(|e| e.to_string()),
        };
        for d in dones {
            match d {
                Done::Reply(tx) => {
                    let _ = tx.send(result.clone());
                }
                Done::Appended {
                    last_index,
                    callback,
                } => match &result {
                    Ok(()) => {
                        tracing::trace!("write path: append flushed");
                        flushed_index.fetch_max(last_index, Ordering::SeqCst);
                        flushed.send_modify(|n| *n += 1);
                        callback.log_io_completed(Ok(()));
                    }
                    Err(e) => callback.log_io_completed(Err(io::Error::other(e.clone()))),
                },
            }
        }
    }
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
        let db = Arc::new(db);
        let flushed = Arc::new(tokio::sync::watch::Sender::new(0));
        let flushed_index = Arc::new(AtomicU64::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let committed: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let (weak, f, fi, c) = (
            Arc::downgrade(&db),
            flushed.clone(),
            flushed_index.clone(),
            committed.clone(),
        );
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer_loop(weak, rx, f, fi, c))
            .map_err(write_err)?;
        Ok(LogStore {
            db,
            cache: Arc::default(),
            flushed,
            flushed_index,
            writer: tx,
            committed,
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

    /// Write a state entry durably.
    async fn put_state<T: Serialize>(&self, key: &'static str, v: &T) -> Result<(), SE> {
        let bytes = serde_json::to_vec(v).map_err(write_err)?;
        self.write(move |txn| {
            txn.open_table(STATE)?.insert(key, bytes.as_slice())?;
            Ok(())
        })
        .await
    }

    /// Run `f` in a write transaction on the writer thread (after every write before it) and
    /// wait until it is committed.
    async fn write<F>(&self, f: F) -> Result<(), SE>
    where
        F: FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer
            .send(Job {
                f: Box::new(f),
                done: Done::Reply(tx),
            })
            .map_err(|_| write_err("the raft log writer stopped"))?;
        rx.await
            .map_err(|_| write_err("the raft log writer stopped"))?
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
        self.put_state(VOTE, vote)
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
        let bytes = serde_json::to_vec(&committed).map_err(write_err)?;
        *self.committed.lock().unwrap_or_else(|e| e.into_inner()) = Some(bytes);
        Ok(())
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
        let Some(last_index) = appended.last().map(|e| e.log_id.index) else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        // Readers (replication to followers) find the entries in the cache at once.
        {
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
            // Only entries already on disk may leave the cache.
            let on_disk = self.flushed_index.load(Ordering::SeqCst);
            while cache.len() > CACHE_ENTRIES
                && cache.first_key_value().is_some_and(|(i, _)| *i <= on_disk)
            {
                cache.pop_first();
            }
        }
        let job = Job {
            f: Box::new(move |txn| {
                let mut t = txn.open_table(LOGS)?;
                for (i, bytes) in &rows {
                    t.insert(*i, bytes.as_slice())?;
                }
                Ok(())
            }),
            done: Done::Appended {
                last_index,
                callback,
            },
        };
        if let Err(std::sync::mpsc::SendError(job)) = self.writer.send(job) {
            if let Done::Appended { callback, .. } = job.done {
                callback.log_io_completed(Err(io::Error::other("the raft log writer stopped")));
            }
            return Err(write_err("the raft log writer stopped"));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), SE> {
        self.cache().retain(|i, _| *i < log_id.index);
        self.flushed_index
            .fetch_min(log_id.index.saturating_sub(1), Ordering::SeqCst);
        self.write(move |txn| {
            txn.open_table(LOGS)?
                .retain_in::<u64, _>(log_id.index.., |_, _| false)?;
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SE> {
        self.cache().retain(|i, _| *i > log_id.index);
        let bytes = serde_json::to_vec(&Some(log_id)).map_err(write_err)?;
        self.write(move |txn| {
            txn.open_table(STATE)?
                .insert(LAST_PURGED, bytes.as_slice())?;
            txn.open_table(LOGS)?
                .retain_in::<u64, _>(..=log_id.index, |_, _| false)?;
            Ok(())
        })
        .await
    }
}
