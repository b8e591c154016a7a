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
//! The leader's own appends are the exception ([`EarlyAcks`]): openraft 0.9 sends nothing to
//! followers until the leader's append is reported flushed, which would put the leader's fsync
//! and the followers' in series. So entries this member appends as leader are reported flushed
//! as soon as they are queued — the leader writes its disk while the followers write theirs, as
//! etcd's leader does (Raft thesis §10.2.1). openraft then counts the leader in the quorum too
//! early; nothing outside the leader acts on that: the state machine applies an entry (and so
//! answers the client or a read) only once it is on the leader's disk too, and the commit index
//! sent to followers never passes what is on the leader's disk ([`EarlyAcks::clamp_commit`]).
//! A committed entry is therefore on disk on a majority before anything is done with it. The
//! committed pointer is stored only with (or after) the entries up to it, and entries not on
//! disk yet are read from the cache, which keeps them until they are. A crash of the leader
//! loses at most entries that no client and no follower's state machine has seen.
//! Membership entries are always reported after the fsync (openraft acts on their commit itself).
//!
//! The most recent entries are also kept in memory ([`CACHE_ENTRIES`], [`CACHE_BYTES`]): replication to
//! followers and the state machine read them from there instead of decoding them from disk;
//! reads that miss it run on the calling thread (short redb reads from the page cache).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, EntryPayload, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
};
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

/// Entries kept in memory after they are appended: at most this many ...
const CACHE_ENTRIES: usize = 4096;
/// ... and about this many bytes (a batch at 256 clients is a few hundred KiB, so 4096 of
/// them would be gigabytes).
const CACHE_BYTES: usize = 64 << 20;

/// The newest entries, each with its size as written to the log, and their total.
#[derive(Default)]
struct Cache {
    entries: BTreeMap<u64, (Entry, usize)>,
    bytes: usize,
}

impl Cache {
    fn insert(&mut self, e: Entry, size: usize) {
        self.bytes += size;
        if let Some((_, old)) = self.entries.insert(e.log_id.index, (e, size)) {
            self.bytes = self.bytes.saturating_sub(old);
        }
    }

    fn pop_first(&mut self) {
        if let Some((_, (_, size))) = self.entries.pop_first() {
            self.bytes = self.bytes.saturating_sub(size);
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        self.entries.retain(|i, _| keep(*i));
        self.bytes = self.entries.values().map(|(_, size)| size).sum();
    }

    fn over(&self) -> bool {
        self.entries.len() > CACHE_ENTRIES || self.bytes > CACHE_BYTES
    }
}

/// Cheap to clone: clones share the database and the cache (a clone is the log reader).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    cache: Arc<Mutex<Cache>>,
    /// Counts completed appends, so the proposer can form the next batch while one flushes.
    flushed: Arc<tokio::sync::watch::Sender<u64>>,
    /// The last log index on disk: cached entries after it are never evicted.
    flushed_index: Arc<AtomicU64>,
    /// Bytes of entries appended since the start (snapshots are also taken by log size).
    appended_bytes: Arc<AtomicU64>,
    writer: std::sync::mpsc::Sender<Job>,
    /// The committed pointer not yet written (see the module documentation).
    committed: Arc<Mutex<Option<LogId<NodeId>>>>,
    /// This member's id (0 until [`LogStore::set_node_id`]: then nothing is acknowledged early).
    me: Arc<AtomicU64>,
    /// The last vote saved, to recognise entries this member appends as the current leader.
    vote: Arc<Mutex<Option<Vote<NodeId>>>>,
    early: Arc<EarlyAcks>,
}

/// The leader's appends that were reported flushed before they reached its disk (see the module
/// documentation), oldest first, until the writer has committed them.
#[derive(Default)]
pub struct EarlyAcks {
    state: Mutex<EarlyState>,
    /// Bumped whenever `state` changes, to wake waiters.
    changed: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct EarlyState {
    /// Per pending append: its first index and the log id just before it.
    pending: VecDeque<(u64, Option<LogId<NodeId>>)>,
    /// A write of the log failed: what is pending will never be on disk.
    failed: Option<String>,
}

impl EarlyAcks {
    fn lock(&self) -> std::sync::MutexGuard<'_, EarlyState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, first: u64, prev: Option<LogId<NodeId>>) {
        self.lock().pending.push_back((first, prev));
    }

    /// The oldest pending append reached the disk (or failed to).
    fn flushed(&self, result: &Result<(), String>) {
        {
            let mut s = self.lock();
            s.pending.pop_front();
            if let Err(e) = result {
                s.failed = Some(e.clone());
            }
        }
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether every entry up to `index` is on this member's disk.
    fn covers(s: &EarlyState, index: u64) -> bool {
        s.pending.front().is_none_or(|(first, _)| *first > index)
    }

    /// Wait until every entry up to `index` is on this member's disk.
    pub async fn wait_flushed(&self, index: u64) -> Result<(), String> {
        let mut rx = self.changed.subscribe();
        loop {
            {
                let s = self.lock();
                if let Some(e) = &s.failed {
                    return Err(format!("the raft log could not be written: {e}"));
                }
                if Self::covers(&s, index) {
                    return Ok(());
                }
            }
            if rx.changed().await.is_err() {
                return Err("the raft log is closed".into());
            }
        }
    }

    /// The commit index followers may be told: never past what is on this member's disk.
    pub fn clamp_commit(&self, commit: Option<LogId<NodeId>>) -> Option<LogId<NodeId>> {
        let c = commit?;
        match self.lock().pending.front() {
            Some((first, prev)) if c.index >= *first => *prev,
            _ => commit,
        }
    }

    /// Whether every entry up to `index` is on this member's disk now.
    pub fn on_disk(&self, index: u64) -> bool {
        Self::covers(&self.lock(), index)
    }

    /// Changes whenever an append reaches the disk.
    pub fn flushes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// What to call when an append is (taken as) flushed: openraft's `LogFlushed` callback.
type Flushed = Box<dyn FnOnce(Result<(), io::Error>) + Send>;

type WriteFn = Box<dyn FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error> + Send>;

/// A write for the writer thread, and whom to tell when it is committed.
struct Job {
    f: WriteFn,
    done: Done,
    /// How the job moves the end of the log on disk.
    end: LogEnd,
}

enum LogEnd {
    Same,
    /// Entries up to this index were written.
    Appended(u64),
    /// Entries from this index on were deleted.
    Truncated(u64),
}

enum Done {
    Reply(tokio::sync::oneshot::Sender<Result<(), String>>),
    Appended {
        last_index: u64,
        /// `None` when it was reported flushed already (see [`EarlyAcks`]).
        callback: Option<Flushed>,
    },
}

/// The writer thread: runs jobs in order; consecutive appends share one transaction and fsync.
/// It holds the database weakly, so it ends (and the file closes) when every handle is gone.
fn writer_loop(
    db: std::sync::Weak<Database>,
    rx: std::sync::mpsc::Receiver<Job>,
    flushed: Arc<tokio::sync::watch::Sender<u64>>,
    flushed_index: Arc<AtomicU64>,
    committed: Arc<Mutex<Option<LogId<NodeId>>>>,
    early: Arc<EarlyAcks>,
    mut log_end: u64,
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
                tracing::trace!("write path: writer begin");
                let txn = db.begin_write()?;
                for j in jobs {
                    (j.f)(&txn)?;
                    dones.push(j.done);
                    log_end = match j.end {
                        LogEnd::Same => log_end,
                        LogEnd::Appended(i) => log_end.max(i),
                        LogEnd::Truncated(i) => log_end.min(i.saturating_sub(1)),
                    };
                }
                // At most once per interval: each write costs this commit pages to fsync. A
                // pointer past the log written so far (the leader commits entries before its
                // own copy is written) waits for a later transaction.
                if last_committed_write.elapsed() >= COMMITTED_INTERVAL {
                    let mut slot = committed.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(c) = slot.take_if(|c| c.index <= log_end) {
                        drop(slot);
                        let bytes =
                            serde_json::to_vec(&Some(c)).map_err(|e| redb::Error::Io(e.into()))?;
                        txn.open_table(STATE)?.insert(COMMITTED, bytes.as_slice())?;
                        last_committed_write = std::time::Instant::now();
                    }
                }
                tracing::trace!("write path: writer commit");
                txn.commit()?;
                tracing::trace!("write path: writer committed");
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
                } => {
                    if result.is_ok() {
                        tracing::trace!("write path: append flushed");
                        flushed_index.fetch_max(last_index, Ordering::SeqCst);
                        flushed.send_modify(|n| *n += 1);
                    }
                    match callback {
                        Some(cb) => cb(result.clone().map_err(io::Error::other)),
                        None => {
                            if let Err(e) = &result {
                                tracing::error!("the raft log could not be written: {e}");
                            }
                            early.flushed(&result);
                        }
                    }
                }
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
        let log_end = {
            let logs = txn.open_table(LOGS).map_err(write_err)?;
            txn.open_table(STATE).map_err(write_err)?;
            logs.last()
                .map_err(write_err)?
                .map_or(0, |(k, _)| k.value())
        };
        txn.commit().map_err(write_err)?;
        let db = Arc::new(db);
        let flushed = Arc::new(tokio::sync::watch::Sender::new(0));
        let flushed_index = Arc::new(AtomicU64::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let committed: Arc<Mutex<Option<LogId<NodeId>>>> = Arc::default();
        let early: Arc<EarlyAcks> = Arc::default();
        let (weak, f, fi, c, e) = (
            Arc::downgrade(&db),
            flushed.clone(),
            flushed_index.clone(),
            committed.clone(),
            early.clone(),
        );
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer_loop(weak, rx, f, fi, c, e, log_end))
            .map_err(write_err)?;
        Ok(LogStore {
            db,
            cache: Arc::default(),
            flushed,
            flushed_index,
            appended_bytes: Arc::default(),
            writer: tx,
            committed,
            me: Arc::default(),
            vote: Arc::default(),
            early,
        })
    }

    /// Who this member is: from now on its own appends as leader are acknowledged early.
    pub fn set_node_id(&self, id: NodeId) {
        self.me.store(id, Ordering::SeqCst);
    }

    /// The leader's early-acknowledged appends: the state machine and the network consult it.
    pub fn early_acks(&self) -> Arc<EarlyAcks> {
        self.early.clone()
    }

    /// Whether `entries` are this member's own, appended as the leader of the current term:
    /// only that leader makes entries with its id and term, and it saved a vote for itself in
    /// that term first. Membership entries are excluded (see the module documentation).
    fn own_as_leader(&self, entries: &[Entry]) -> bool {
        let me = self.me.load(Ordering::SeqCst);
        let Some(vote) = *self.vote.lock().unwrap_or_else(|e| e.into_inner()) else {
            return false;
        };
        me != 0
            && vote.leader_id.node_id == me
            && entries.iter().all(|e| {
                e.log_id.leader_id.node_id == me
                    && e.log_id.leader_id.term == vote.leader_id.term
                    && !matches!(e.payload, EntryPayload::Membership(_))
            })
    }

    /// The number of appends flushed so far (changes after each one).
    pub fn flushed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.flushed.subscribe()
    }

    /// Bytes of entries appended since this store was opened.
    pub fn appended_bytes(&self) -> Arc<AtomicU64> {
        self.appended_bytes.clone()
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
        self.write(LogEnd::Same, move |txn| {
            txn.open_table(STATE)?.insert(key, bytes.as_slice())?;
            Ok(())
        })
        .await
    }

    /// Run `f` in a write transaction on the writer thread (after every write before it) and
    /// wait until it is committed.
    async fn write<F>(&self, end: LogEnd, f: F) -> Result<(), SE>
    where
        F: FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer
            .send(Job {
                f: Box::new(f),
                done: Done::Reply(tx),
                end,
            })
            .map_err(|_| write_err("the raft log writer stopped"))?;
        rx.await
            .map_err(|_| write_err("the raft log writer stopped"))?
            .map_err(write_err)
    }

    /// `append`'s work, with any callback: only openraft can make its `LogFlushed`, and the
    /// tests below need to append too.
    fn append_entries(&self, entries: Vec<Entry>, callback: Flushed) -> Result<(), SE> {
        tracing::trace!("write path: append start");
        let mut rows = Vec::with_capacity(entries.len());
        for e in &entries {
            rows.push((e.log_id.index, serde_json::to_vec(e).map_err(write_err)?));
        }
        let sizes: Vec<usize> = rows.iter().map(|(_, row)| row.len()).collect();
        self.appended_bytes
            .fetch_add(sizes.iter().sum::<usize>() as u64, Ordering::Relaxed);
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            callback(Ok(()));
            return Ok(());
        };
        let (first_index, last_index) = (first.log_id.index, last.log_id.index);
        let early = self.own_as_leader(&entries);
        // Readers (replication to followers) find the entries in the cache at once.
        {
            let mut cache = self.cache();
            // Appends are contiguous; anything else (after a restart) starts it anew.
            let follows = cache
                .entries
                .keys()
                .next_back()
                .is_none_or(|last| first_index == last + 1);
            if !follows {
                cache.clear();
            }
            if early {
                // Registered before the job is queued: the writer pops it when done.
                let prev = cache.entries.values().next_back().map(|(e, _)| e.log_id);
                self.early.push(first_index, prev);
            }
            for (e, size) in entries.into_iter().zip(sizes) {
                cache.insert(e, size);
            }
            // Only entries already on disk may leave the cache.
            let on_disk = self.flushed_index.load(Ordering::SeqCst);
            while cache.over()
                && cache
                    .entries
                    .first_key_value()
                    .is_some_and(|(i, _)| *i <= on_disk)
            {
                cache.pop_first();
            }
        }
        // Early: the callback is called below, the writer only settles the [`EarlyAcks`].
        let (queued, callback) = if early {
            (None, Some(callback))
        } else {
            (Some(callback), None)
        };
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
                callback: queued,
            },
            end: LogEnd::Appended(last_index),
        };
        if let Err(std::sync::mpsc::SendError(job)) = self.writer.send(job) {
            let e = "the raft log writer stopped";
            if let Done::Appended {
                callback: Some(cb), ..
            } = job.done
            {
                cb(Err(io::Error::other(e)));
            }
            if let Some(cb) = callback {
                self.early.flushed(&Err(e.to_string()));
                cb(Err(io::Error::other(e)));
            }
            return Err(write_err(e));
        }
        if let Some(cb) = callback {
            tracing::trace!("write path: append acknowledged before the flush");
            cb(Ok(()));
        }
        Ok(())
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entries of `range` if the cache holds all of them.
    fn cached<RB: RangeBounds<u64>>(&self, range: &RB) -> Option<Vec<Entry>> {
        let cache = self.cache();
        let first = *cache.entries.keys().next()?;
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s + 1,
            Bound::Unbounded => return None,
        };
        if start < first {
            return None;
        }
        let out: Vec<Entry> = cache
            .entries
            .range((range.start_bound().cloned(), range.end_bound().cloned()))
            .map(|(_, (e, _))| e.clone())
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
        // From the disk up to the cache, then from the cache: the leader's newest entries may
        // not be on disk yet (see [`EarlyAcks`]), and the cache has every entry from its first.
        let cache_start = self.cache().entries.keys().next().copied();
        let txn = self.db.begin_read().map_err(read_err)?;
        let t = txn.open_table(LOGS).map_err(read_err)?;
        let mut out = Vec::new();
        for item in t.range::<u64>(range.clone()).map_err(read_err)? {
            let (k, v) = item.map_err(read_err)?;
            if cache_start.is_some_and(|c| k.value() >= c) {
                break;
            }
            out.push(serde_json::from_slice(v.value()).map_err(read_err)?);
        }
        if let Some(c) = cache_start {
            let start = match range.start_bound() {
                Bound::Included(s) => *s,
                Bound::Excluded(s) => s + 1,
                Bound::Unbounded => 0,
            };
            let end = match range.end_bound() {
                Bound::Included(e) => Some(*e),
                Bound::Excluded(e) => e.checked_sub(1),
                Bound::Unbounded => Some(u64::MAX),
            };
            let from = start.max(c);
            if let Some(end) = end.filter(|e| *e >= from) {
                let cache = self.cache();
                out.extend(cache.entries.range(from..=end).map(|(_, (e, _))| e.clone()));
            }
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
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)))?;
        *self.vote.lock().unwrap_or_else(|e| e.into_inner()) = Some(*vote);
        Ok(())
    }

    /// The vote as saved, but never "committed". openraft 0.9 restores a member whose saved
    /// vote is a committed one for itself as leader in the same term, reusing that term's old
    /// no-op entry as its read index while its commit index is the stale one read at startup —
    /// so a linearizable read right after a full-cluster restart could miss acknowledged writes.
    /// An uncommitted vote keeps the same promise (no vote for anyone else in this term) and
    /// makes the member stand for election in a new term, whose no-op commits everything before.
    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, SE> {
        let vote = self.get_state::<Vote<NodeId>>(VOTE)?.map(|mut v| {
            v.committed = false;
            v
        });
        *self.vote.lock().unwrap_or_else(|e| e.into_inner()) = vote;
        Ok(vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), SE> {
        if let Some(c) = committed {
            *self.committed.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
        }
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
        self.append_entries(
            entries.into_iter().collect(),
            Box::new(move |r| callback.log_io_completed(r)),
        )
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), SE> {
        self.cache().retain(|i| i < log_id.index);
        self.flushed_index
            .fetch_min(log_id.index.saturating_sub(1), Ordering::SeqCst);
        self.write(LogEnd::Truncated(log_id.index), move |txn| {
            txn.open_table(LOGS)?
                .retain_in::<u64, _>(log_id.index.., |_, _| false)?;
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SE> {
        self.cache().retain(|i| i > log_id.index);
        let bytes = serde_json::to_vec(&Some(log_id)).map_err(write_err)?;
        self.write(LogEnd::Same, move |txn| {
            txn.open_table(STATE)?
                .insert(LAST_PURGED, bytes.as_slice())?;
            txn.open_table(LOGS)?
                .retain_in::<u64, _>(..=log_id.index, |_, _| false)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use openraft::{CommittedLeaderId, Membership};

    use super::*;
    use crate::command::{Batch, Command};
    use crate::raft::Node;

    const ME: NodeId = 1;
    const OTHER: NodeId = 2;
    const WAIT: Duration = Duration::from_secs(10);
    /// How long something that must not happen is given to happen anyway.
    const NOT_YET: Duration = Duration::from_millis(200);

    fn entry(term: u64, leader: NodeId, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, leader), index),
            payload: EntryPayload::Normal(Batch::new(Vec::new())),
        }
    }

    /// A store for member `ME` that voted for `leader` in term 2.
    async fn store(dir: &tempfile::TempDir, leader: NodeId) -> LogStore {
        let mut log = LogStore::open(&dir.path().join("log.redb")).expect("open");
        log.set_node_id(ME);
        log.save_vote(&Vote::new_committed(2, leader))
            .await
            .expect("vote");
        log
    }

    /// Hold the writer thread until the returned sender is dropped or sent to.
    fn pause_writer(log: &LogStore) -> std::sync::mpsc::Sender<()> {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (done, _) = tokio::sync::oneshot::channel();
        // Queued here and now, so that every later write waits behind it.
        log.writer
            .send(Job {
                f: Box::new(move |_| {
                    let _ = rx.recv();
                    Ok(())
                }),
                done: Done::Reply(done),
                end: LogEnd::Same,
            })
            .expect("writer running");
        tx
    }

    /// Wait for an append's acknowledgement, which must say it succeeded.
    async fn acked(rx: tokio::sync::oneshot::Receiver<bool>) {
        let ok = tokio::time::timeout(WAIT, rx)
            .await
            .expect("acknowledged in time");
        assert!(ok.expect("acknowledged"), "the append failed");
    }

    fn append(log: &LogStore, entries: Vec<Entry>) -> tokio::sync::oneshot::Receiver<bool> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        log.append_entries(
            entries,
            Box::new(move |r| {
                let _ = tx.send(r.is_ok());
            }),
        )
        .expect("append");
        rx
    }

    #[tokio::test]
    async fn the_leaders_own_appends_count_at_once_but_nothing_acts_on_them_before_the_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = store(&dir, ME).await;
        let early = log.early_acks();
        // On disk before the pause: entry 1.
        acked(append(&log, vec![entry(2, ME, 1)])).await;
        early.wait_flushed(1).await.expect("entry 1 on disk");

        let release = pause_writer(&log);
        // Acknowledged although the writer has not written it…
        acked(append(&log, vec![entry(2, ME, 2), entry(2, ME, 3)])).await;
        // …but it may not be applied yet, and followers are told no commit index past entry 1.
        assert!(
            tokio::time::timeout(NOT_YET, early.wait_flushed(2))
                .await
                .is_err()
        );
        early.wait_flushed(1).await.expect("entry 1 is on disk");
        let at = |i| Some(LogId::new(CommittedLeaderId::new(2, ME), i));
        assert_eq!(early.clamp_commit(at(3)), at(1));
        assert_eq!(early.clamp_commit(at(1)), at(1));
        assert!(early.on_disk(1) && !early.on_disk(2));
        let flushes = early.flushes();
        // The readers see the entries already (replication sends them meanwhile).
        let mut reader = log.clone();
        assert_eq!(
            reader.try_get_log_entries(2..4).await.expect("read").len(),
            2
        );

        release.send(()).expect("release the writer");
        tokio::time::timeout(WAIT, early.wait_flushed(3))
            .await
            .expect("flushed in time")
            .expect("flushed");
        // Those waiting to send the held-back commit index hear of it, and it passes now.
        assert!(flushes.has_changed().expect("open"));
        assert!(early.on_disk(3));
        assert_eq!(early.clamp_commit(at(3)), at(3));
        // And it is really on disk: a reopened store has it.
        drop((log, reader));
        let mut again = LogStore::open(&dir.path().join("log.redb"));
        for _ in 0..100 {
            if again.is_ok() {
                break;
            }
            // The writer thread lets go of the file once the last handle is gone.
            tokio::time::sleep(Duration::from_millis(20)).await;
            again = LogStore::open(&dir.path().join("log.redb"));
        }
        let mut again = again.expect("reopen");
        let state = again.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id, at(3));

        // Leading again after the restart: a read across the disk and the entries not yet
        // written (applying everything since the start) gets them all, in order.
        again.set_node_id(ME);
        again
            .save_vote(&Vote::new_committed(3, ME))
            .await
            .expect("vote");
        let release = pause_writer(&again);
        acked(append(&again, vec![entry(3, ME, 4)])).await;
        let got = again.try_get_log_entries(1..=4).await.expect("read");
        let indexes: Vec<u64> = got.iter().map(|e| e.log_id.index).collect();
        assert_eq!(indexes, vec![1, 2, 3, 4]);
        assert!(again.try_get_log_entries(1..2).await.expect("read").len() == 1);
        drop(release);
    }

    /// Appending `entries` to `log` is acknowledged only once the writer has written them.
    async fn acknowledged_after_the_disk(log: &LogStore, entries: Vec<Entry>) {
        let release = pause_writer(log);
        let mut rx = append(log, entries);
        assert!(tokio::time::timeout(NOT_YET, &mut rx).await.is_err());
        release.send(()).expect("release");
        acked(rx).await;
    }

    #[tokio::test]
    async fn followers_appends_and_membership_changes_count_only_once_on_disk() {
        // A follower of OTHER: entries from OTHER wait for the disk.
        let dir = tempfile::tempdir().expect("tempdir");
        let log = store(&dir, OTHER).await;
        acknowledged_after_the_disk(&log, vec![entry(2, OTHER, 1)]).await;

        // Leading itself, a membership entry still waits for the disk.
        let dir = tempfile::tempdir().expect("tempdir");
        let log = store(&dir, ME).await;
        let m = Membership::<NodeId, Node>::new(vec![BTreeSet::from([ME, OTHER])], None);
        let membership = Entry {
            log_id: LogId::new(CommittedLeaderId::new(2, ME), 1),
            payload: EntryPayload::Membership(m),
        };
        acknowledged_after_the_disk(&log, vec![membership]).await;

        // An entry of its own from an earlier term (handed back by a later leader) waits too.
        acknowledged_after_the_disk(&log, vec![entry(1, ME, 2)]).await;
    }

    #[tokio::test]
    async fn the_cache_is_bounded_by_size_and_evicted_entries_are_read_from_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = store(&dir, OTHER).await;
        let big = |index: u64| Entry {
            log_id: LogId::new(CommittedLeaderId::new(2, OTHER), index),
            payload: EntryPayload::Normal(Batch::new(vec![Command::Put(
                kvclient::proto::PutRequest {
                    key: format!("k{index}"),
                    value: "v".repeat(1 << 20),
                    ..Default::default()
                },
            )])),
        };
        for i in 1..=100 {
            acked(append(&log, vec![big(i)])).await;
        }
        {
            let cache = log.cache();
            assert!(cache.bytes <= CACHE_BYTES, "{} bytes cached", cache.bytes);
            assert!(cache.entries.len() < 100, "nothing was evicted");
            let first = *cache.entries.keys().next().expect("cached entries");
            assert!(first > 1, "entry 1 is still cached");
        }
        let mut reader = log.clone();
        let all = reader.try_get_log_entries(1..=100).await.expect("read");
        let indexes: Vec<u64> = all.iter().map(|e| e.log_id.index).collect();
        assert_eq!(indexes, (1..=100).collect::<Vec<_>>());
        let EntryPayload::Normal(b) = &all[0].payload else {
            panic!("entry 1 is not a batch");
        };
        assert!(matches!(&b.0[0], Command::Put(p) if p.key == "k1" && p.value.len() == 1 << 20));
    }
}
