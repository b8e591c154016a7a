//! The Raft state machine over the MVCC store: applies committed entries, builds and installs
//! snapshots, and tells the watch hub and the lease timers what changed.
//!
//! Durability: the store lives in memory; what makes it durable is the Raft log, fsync'ed on a
//! majority before anything is applied, and the snapshots, each written and fsync'ed before
//! openraft purges the log entries it covers. A member that starts restores its latest snapshot
//! ([`StateMachine::new`]) and openraft re-applies the committed log after it — HashiCorp
//! Raft's (Consul's, Nomad's) design. etcd keeps a second durable copy in its bbolt backend;
//! writing one here (a redb file, fsync'ed once a second) cost more than half of the CPU of a
//! put and stalled applies while it synced.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::Serialize;

use crate::Identity;
use crate::command::{Answer, BatchResponse};
use crate::error::KvError;
use crate::lease::Leases;
use crate::mvcc::{Applier, Store, Tables};
use crate::raft::log_store::EarlyAcks;
use crate::raft::{Entry, Node, NodeId, TypeConfig};
use crate::watch::WatchHub;

const META_LAST_APPLIED: &str = "raft_last_applied";
const META_MEMBERSHIP: &str = "raft_membership";
/// The cluster id, recorded when the first membership is applied (see [`crate::raft::cluster_id`]).
const META_CLUSTER_ID: &str = "cluster_id";

type SE = StorageError<NodeId>;
type Membership = StoredMembership<NodeId, Node>;

fn sm_err(e: impl std::fmt::Display) -> SE {
    StorageIOError::write_state_machine(AnyError::error(e)).into()
}

fn snap_err(e: impl std::fmt::Display) -> SE {
    StorageIOError::write_snapshot(None, AnyError::error(e)).into()
}

pub struct StateMachine {
    store: Arc<Store>,
    hub: Arc<WatchHub>,
    leases: Arc<Leases>,
    snapshot_dir: PathBuf,
    last_applied: Option<LogId<NodeId>>,
    membership: Membership,
    ident: Option<Arc<Identity>>,
    /// The leader's entries acknowledged before they were on its disk: none is applied before.
    early: Option<Arc<EarlyAcks>>,
}

fn read_cluster_id(r: &crate::mvcc::Reader) -> Result<Option<u64>, KvError> {
    Ok(r.meta(META_CLUSTER_ID)?.and_then(|b| {
        let b: [u8; 8] = b.as_slice().try_into().ok()?;
        Some(u64::from_le_bytes(b))
    }))
}

impl StateMachine {
    /// Keep `ident`'s cluster id in step with the one the store records.
    pub fn with_identity(mut self, ident: Arc<Identity>) -> Result<StateMachine, KvError> {
        if let Some(id) = read_cluster_id(&self.store.read()?)? {
            ident.set_cluster_id(id);
        }
        self.ident = Some(ident);
        Ok(self)
    }

    /// Apply the leader's own entries only once they are on its disk (see [`EarlyAcks`]).
    pub(crate) fn gate_on(&mut self, early: Arc<EarlyAcks>) {
        self.early = Some(early);
    }

    /// Wrap an opened store; `snapshot_dir` holds the latest snapshot.
    pub fn new(
        store: Arc<Store>,
        hub: Arc<WatchHub>,
        leases: Arc<Leases>,
        snapshot_dir: &Path,
    ) -> Result<StateMachine, KvError> {
        std::fs::create_dir_all(snapshot_dir)
            .map_err(|e| KvError::internal(format!("creating {}: {e}", snapshot_dir.display())))?;
        if let Some(snap) = load_snapshot(snapshot_dir)
            .map_err(|e| KvError::internal(format!("reading the latest snapshot: {e}")))?
        {
            restore(&store, &snap.meta, &snap.snapshot.into_inner())
                .map_err(|e| KvError::internal(format!("restoring the latest snapshot: {e}")))?;
            tracing::info!(
                snapshot = %snap.meta.snapshot_id,
                last_log_index = snap.meta.last_log_id.map_or(0, |l| l.index),
                "restored the latest snapshot; the log after it is applied next"
            );
        }
        let r = store.read()?;
        let json = |k: &str| -> Result<Option<Vec<u8>>, KvError> { r.meta(k) };
        let last_applied = match json(META_LAST_APPLIED)? {
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| KvError::internal(format!("bad last-applied record: {e}")))?,
            None => None,
        };
        let membership = match json(META_MEMBERSHIP)? {
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| KvError::internal(format!("bad membership record: {e}")))?,
            None => Membership::default(),
        };
        leases.load(&r.leases()?);
        drop(r);
        Ok(StateMachine {
            store,
            hub,
            leases,
            snapshot_dir: snapshot_dir.to_path_buf(),
            last_applied,
            membership,
            ident: None,
            early: None,
        })
    }
}

/// The outcome of one apply transaction.
struct Applied {
    results: Vec<BatchResponse>,
    /// Results whose waiters are answered directly: (position in `results`, the waiters).
    early: Vec<(usize, Answer, Vec<crate::command::CmdResult>)>,
    from: i64,
    to: i64,
    events: Vec<crate::mvcc::RevisionEvents>,
    lease_changes: Vec<crate::mvcc::LeaseChange>,
    last: Option<LogId<NodeId>>,
    membership: Membership,
    cluster_id: Option<u64>,
}

impl Applied {
    /// Answer the waiters of this member's own batches now; returns whether any was.
    fn answer_early(&mut self) -> bool {
        let mut answered = false;
        for (pos, answer, rs) in self.early.drain(..) {
            match answer.take() {
                Some(txs) => {
                    for (tx, r) in txs.into_iter().zip(rs) {
                        let _ = tx.send(Ok(r));
                    }
                    answered = true;
                }
                None => self.results[pos] = BatchResponse(rs),
            }
        }
        answered
    }
}

/// Apply `entries` to the tables.
fn apply_entries(
    t: &mut Tables,
    entries: &[Entry],
    mut membership: Membership,
    collect: bool,
) -> Result<Applied, KvError> {
    let mut cluster_id = None;
    let mut a = Applier::new(t, collect);
    let from = a.revision() + 1;
    let mut results = Vec::with_capacity(entries.len());
    let mut early = Vec::new();
    for e in entries {
        match &e.payload {
            EntryPayload::Blank => results.push(BatchResponse::default()),
            EntryPayload::Normal(batch) => {
                let mut rs = Vec::with_capacity(batch.0.len());
                for (i, cmd) in batch.0.iter().enumerate() {
                    rs.push(a.apply(cmd, (e.log_id.index << 16) | i as u64)?);
                }
                if batch.1.is_set() {
                    early.push((results.len(), batch.1.clone(), rs));
                    results.push(BatchResponse::default());
                } else {
                    results.push(BatchResponse(rs));
                }
            }
            EntryPayload::Membership(m) => {
                if a.meta(META_CLUSTER_ID)?.is_none() {
                    let id =
                        crate::raft::cluster_id(m.nodes().map(|(id, n)| (*id, n.addr.as_str())));
                    a.set_meta(META_CLUSTER_ID, &id.to_le_bytes())?;
                    cluster_id = Some(id);
                }
                membership = Membership::new(Some(e.log_id), m.clone());
                a.set_meta(META_MEMBERSHIP, &to_json(&membership)?)?;
                results.push(BatchResponse::default());
            }
        }
    }
    let last = entries.last().map(|e| e.log_id);
    // The membership record changes only with a membership entry (above).
    a.set_meta(META_LAST_APPLIED, &to_json(&last)?)?;
    let to = a.revision();
    let (events, lease_changes) = a.finish()?;
    Ok(Applied {
        results,
        early,
        from,
        to,
        events,
        lease_changes,
        last,
        membership,
        cluster_id,
    })
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, KvError> {
    serde_json::to_vec(v).map_err(|e| KvError::internal(e.to_string()))
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, Membership), SE> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchResponse>, SE>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        if let (Some(early), Some(last)) = (&self.early, entries.last()) {
            early
                .wait_flushed(last.log_id.index)
                .await
                .map_err(sm_err)?;
        }
        tracing::trace!(n = entries.len(), "write path: apply start");
        let collect = self.hub.has_watchers();
        let membership = self.membership.clone();
        let mut a = apply_entries(&mut self.store.write(), &entries, membership, collect)
            .map_err(sm_err)?;
        // A lease granted here is known to keepalives before its grant is answered.
        self.leases.apply(&a.lease_changes);
        self.last_applied = a.last;
        self.membership = a.membership.clone();
        if let (Some(id), Some(ident)) = (a.cluster_id, &self.ident) {
            ident.set_cluster_id(id);
        }
        // Published before anyone is answered: a watch or progress request that follows an
        // answer sees its revision.
        self.hub
            .publish(a.from, a.to, collect.then(|| std::mem::take(&mut a.events)));
        // This member's own clients are answered here, the others through openraft.
        if a.answer_early() {
            tracing::trace!("write path: answered");
        }
        tracing::trace!("write path: apply done");
        Ok(a.results)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            store: self.store.clone(),
            dir: self.snapshot_dir.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SE> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SE> {
        let image = snapshot.into_inner();
        let store = self.store.clone();
        let dir = self.snapshot_dir.clone();
        let meta2 = meta.clone();
        let (leases, revision, cluster_id) = tokio::task::spawn_blocking(move || {
            restore(&store, &meta2, &image)?;
            // On disk before this returns: the log it covers may be purged then.
            save_snapshot(&dir, &meta2, &image)?;
            let r = store.read().map_err(snap_err)?;
            Ok::<_, SE>((
                r.leases().map_err(snap_err)?,
                r.revision(),
                read_cluster_id(&r).map_err(snap_err)?,
            ))
        })
        .await
        .map_err(snap_err)??;
        if let (Some(id), Some(ident)) = (cluster_id, &self.ident) {
            ident.set_cluster_id(id);
        }
        tracing::info!(
            snapshot = %meta.snapshot_id,
            last_log_index = meta.last_log_id.map_or(0, |l| l.index),
            revision,
            "installed a snapshot from the leader"
        );
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.leases.load(&leases);
        self.hub.reset(revision);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SE> {
        let dir = self.snapshot_dir.clone();
        tokio::task::spawn_blocking(move || load_snapshot(&dir))
            .await
            .map_err(snap_err)?
    }
}

pub struct SnapshotBuilder {
    store: Arc<Store>,
    dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SE> {
        // A view of this moment (a cheap clone); applying goes on meanwhile.
        let r = self.store.read().map_err(snap_err)?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let last: Option<LogId<NodeId>> = match r.meta(META_LAST_APPLIED).map_err(snap_err)? {
                Some(b) => serde_json::from_slice(&b).map_err(snap_err)?,
                None => None,
            };
            let membership: Membership = match r.meta(META_MEMBERSHIP).map_err(snap_err)? {
                Some(b) => serde_json::from_slice(&b).map_err(snap_err)?,
                None => Membership::default(),
            };
            let started = std::time::Instant::now();
            let image = r.dump().map_err(snap_err)?;
            let millis = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            let meta = SnapshotMeta {
                snapshot_id: match &last {
                    Some(l) => format!("{}-{}-{millis}", l.leader_id.term, l.index),
                    None => format!("0-0-{millis}"),
                },
                last_log_id: last,
                last_membership: membership,
            };
            // Durable before openraft purges the log it covers.
            save_snapshot(&dir, &meta, &image)?;
            tracing::info!(
                index = last.map_or(0, |l| l.index),
                bytes = image.len(),
                ms = started.elapsed().as_millis() as u64,
                "snapshot built and saved"
            );
            Ok(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(image)),
            })
        })
        .await
        .map_err(snap_err)?
    }
}

/// Replace the store with a snapshot's image, recording the log id and membership it covers.
fn restore(store: &Store, meta: &SnapshotMeta<NodeId, Node>, image: &[u8]) -> Result<(), SE> {
    let extra = [
        (
            META_LAST_APPLIED,
            serde_json::to_vec(&meta.last_log_id).map_err(snap_err)?,
        ),
        (
            META_MEMBERSHIP,
            serde_json::to_vec(&meta.last_membership).map_err(snap_err)?,
        ),
    ];
    store.restore(image, &extra).map_err(snap_err)
}

pub(crate) const SNAPSHOT_FILE: &str = "snapshot";

/// Write the snapshot durably as one file — `[meta length u64][meta JSON][image]` — through a
/// temp file, fsync, rename and a directory fsync.
fn save_snapshot(dir: &Path, meta: &SnapshotMeta<NodeId, Node>, image: &[u8]) -> Result<(), SE> {
    use std::io::Write;
    let meta_json = serde_json::to_vec(meta).map_err(snap_err)?;
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(&(meta_json.len() as u64).to_le_bytes())?;
        f.write_all(&meta_json)?;
        f.write_all(image)?;
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, dir.join(SNAPSHOT_FILE))?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(snap_err)
}

fn load_snapshot(dir: &Path) -> Result<Option<Snapshot<TypeConfig>>, SE> {
    let mut bytes = match std::fs::read(dir.join(SNAPSHOT_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(snap_err(e)),
    };
    let bad = || snap_err("snapshot file is truncated");
    let len: [u8; 8] = bytes
        .get(..8)
        .ok_or_else(bad)?
        .try_into()
        .map_err(|_| bad())?;
    let len = u64::from_le_bytes(len) as usize;
    let meta_json = bytes.get(8..8 + len).ok_or_else(bad)?;
    let meta: SnapshotMeta<NodeId, Node> = serde_json::from_slice(meta_json).map_err(snap_err)?;
    let image = bytes.split_off(8 + len);
    Ok(Some(Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(image)),
    }))
}
