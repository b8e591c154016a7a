//! Raft (openraft) behind a small handle: type config, bootstrap, proposing write commands,
//! linearizable-read barriers and status. Only this module and the state machine adapter know
//! openraft.

mod coalesce;
mod forward;
pub mod log_store;
pub mod network;
mod pacing;
mod proposer;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::command::{Batch, BatchResponse, CmdResult, Command};
use crate::state_machine::StateMachine;
use coalesce::Coalescer;
use log_store::LogStore;
use network::Network;

openraft::declare_raft_types!(
    /// kvstore's Raft types: entries carry [`Batch`]es of commands.
    pub TypeConfig:
        D = Batch,
        R = BatchResponse,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type NodeId = u64;
pub type Node = BasicNode;
pub type Entry = openraft::Entry<TypeConfig>;
pub type Raft = openraft::Raft<TypeConfig>;

/// How long a write may wait for Raft (including finding a leader) before the client is told
/// it timed out; also bounds a linearizable read's barrier.
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a request waiting for a leader looks again.
const LEADER_POLL: Duration = Duration::from_millis(25);

/// Log entries between snapshots (each entry is a batch of writes). `KVSTORE_SNAPSHOT_LOGS`
/// overrides it — tests use a small value to exercise snapshots and log purging.
fn snapshot_logs() -> u64 {
    std::env::var("KVSTORE_SNAPSHOT_LOGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(10_000)
}

/// Bytes of log between snapshots, whatever the number of entries: at 256 clients an entry is
/// a batch of a few hundred KiB, and the log behind 10 000 of them would be gigabytes on disk.
/// `KVSTORE_SNAPSHOT_BYTES` overrides it.
fn snapshot_bytes() -> u64 {
    std::env::var("KVSTORE_SNAPSHOT_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(256 << 20)
}

/// Ask openraft for a snapshot whenever `snapshot_bytes()` more of log were appended.
fn snapshot_by_size(raft: Raft, appended: Arc<std::sync::atomic::AtomicU64>) {
    let limit = snapshot_bytes();
    tokio::spawn(async move {
        let mut last = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            if raft.metrics().borrow().running_state.is_err() {
                return;
            }
            let now = appended.load(std::sync::atomic::Ordering::Relaxed);
            if now.saturating_sub(last) < limit {
                continue;
            }
            last = now;
            tracing::info!(
                bytes = limit,
                "snapshot: that much log appended since the last one asked for"
            );
            // Fails only once Raft has stopped.
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
        }
    });
}

/// A member's Raft id: a stable hash (FNV-1a) of its name, never 0.
pub fn node_id(name: &str) -> NodeId {
    fnv1a(name.as_bytes()).max(1)
}

/// The cluster id: a hash of the first membership (member ids and peer URLs). Every initial
/// member computes it from `--initial-cluster`; the state machine records it when it applies
/// that membership, so members that join later learn it too.
pub fn cluster_id<'a>(members: impl IntoIterator<Item = (NodeId, &'a str)>) -> u64 {
    let mut m: Vec<String> = members
        .into_iter()
        .map(|(id, u)| format!("{id:016x}={}", u.trim_end_matches('/')))
        .collect();
    m.sort();
    fnv1a(m.join(",").as_bytes()).max(1)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Why a proposal or a read barrier failed — and whether a write may have been applied.
#[derive(Clone, Debug, thiserror::Error, Serialize, Deserialize)]
pub enum ProposeError {
    /// Another member leads (its id and peer URL, when known); nothing was applied.
    #[error("not the leader")]
    NotLeader { leader: Option<(NodeId, String)> },
    /// Nothing was applied (no leader, not reachable, stopping): safe to retry.
    #[error("{0}")]
    Unavailable(String),
    /// The write reached Raft but its fate is unknown (timed out, leader lost mid-way).
    #[error("{0}")]
    Unknown(String),
}

fn write_error(e: ClientWriteError<NodeId, Node>) -> ProposeError {
    match e {
        ClientWriteError::ForwardToLeader(f) => ProposeError::NotLeader {
            leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
        },
        ClientWriteError::ChangeMembershipError(e) => ProposeError::Unavailable(e.to_string()),
    }
}

/// Why a membership change failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("not the leader")]
    NotLeader { leader: Option<(NodeId, String)> },
    /// The change is not allowed (unknown member, not in sync, a change in progress, …).
    #[error("{0}")]
    Rejected(String),
    #[error("{0}")]
    Unavailable(String),
}

fn membership_error(e: RaftError<NodeId, ClientWriteError<NodeId, Node>>) -> MembershipError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => MembershipError::NotLeader {
            leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            MembershipError::Rejected(e.to_string())
        }
        RaftError::Fatal(e) => MembershipError::Unavailable(e.to_string()),
    }
}

/// A member of the Raft membership.
#[derive(Clone, Debug)]
pub struct MemberInfo {
    pub id: NodeId,
    pub peer_url: String,
    pub is_learner: bool,
}

/// A snapshot of this member's Raft state.
#[derive(Clone, Debug)]
pub struct RaftStatus {
    pub term: u64,
    pub leader: Option<NodeId>,
    pub is_leader: bool,
    pub is_learner: bool,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub members: Vec<MemberInfo>,
}

/// What [`RaftNode::start`] needs besides the stores.
pub struct StartOptions<'a> {
    pub id: NodeId,
    pub initial_cluster: &'a [(String, String)],
    /// Bootstrap a new cluster from `initial_cluster` when the log is empty (etcd's
    /// `--initial-cluster-state new`); when false the member waits to be added by the leader.
    pub bootstrap: bool,
}

pub struct RaftNode {
    raft: Raft,
    id: NodeId,
    proposer: mpsc::Sender<proposer::Pending>,
    forwarder: mpsc::Sender<forward::Fwd>,
    network: Network,
    /// ReadIndex rounds on the leader (one quorum heartbeat serves every read queued).
    leader_reads: Coalescer,
    /// ReadIndex rounds from a follower to the leader.
    follower_reads: Coalescer,
    /// How often followers hear of new commits.
    pacer: Arc<pacing::CommitPacer>,
}

impl RaftNode {
    /// Start Raft on the given stores. A member whose log is empty bootstraps the cluster
    /// with the full initial membership when `opts.bootstrap` (every initial member does so
    /// identically, which openraft allows); a member with data resumes from it.
    pub async fn start(
        opts: StartOptions<'_>,
        log: LogStore,
        sm: StateMachine,
    ) -> anyhow::Result<Arc<RaftNode>> {
        let snapshot_logs = snapshot_logs();
        let config = openraft::Config {
            cluster_name: "kvstore".into(),
            // A follower campaigns after the leader lease (election_timeout_max) plus a random
            // election timeout: 0.8–1 s without a heartbeat.
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 500,
            install_snapshot_timeout: 5_000,
            // Each entry is already a batch of up to 1024 commands.
            max_payload_entries: 64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_logs),
            max_in_snapshot_log_to_keep: snapshot_logs.min(1_000),
            ..Default::default()
        }
        .validate()?;
        // The leader's own appends count before its fsync; see log_store's documentation.
        log.set_node_id(opts.id);
        let early = log.early_acks();
        let mut sm = sm;
        sm.gate_on(early.clone());
        let pacer = Arc::new(pacing::CommitPacer::default());
        let network = Network::new(early.clone(), pacer.clone())?;
        let flushed = log.flushed();
        let appended = log.appended_bytes();
        let raft = Raft::new(opts.id, Arc::new(config), network.clone(), log, sm).await?;
        snapshot_by_size(raft.clone(), appended);
        {
            // Followers hear a commit index held back for the leader's disk once it is there,
            // and one held back by the pacer once it falls due.
            let raft = raft.clone();
            let pacer = pacer.clone();
            let mut metrics = raft.metrics();
            let mut flushes = early.flushes();
            let mut log_open = true;
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        r = flushes.changed(), if log_open => {
                            log_open = r.is_ok();
                            if !pacer.released_by_disk(|i| early.on_disk(i)) {
                                continue;
                            }
                        }
                        _ = pacer.due() => {}
                        // Raft stopped: let go of it.
                        r = metrics.changed() => match r {
                            Ok(()) => continue,
                            Err(_) => return,
                        },
                    }
                    tracing::trace!("write path: commit owed to followers");
                    if raft.trigger().heartbeat().await.is_err() {
                        return;
                    }
                }
            });
        }
        if opts.bootstrap && !raft.is_initialized().await? {
            let members: BTreeMap<NodeId, Node> = opts
                .initial_cluster
                .iter()
                .map(|(name, url)| (node_id(name), BasicNode { addr: url.clone() }))
                .collect();
            tracing::info!(?members, "bootstrapping a new cluster");
            match raft.initialize(members).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(anyhow::anyhow!("initializing raft: {e}")),
            }
        }
        let proposer = proposer::spawn(raft.clone(), flushed);
        let forwarder = forward::spawn(network.http().clone(), PROPOSE_TIMEOUT);
        let leader_reads = {
            let raft = raft.clone();
            Coalescer::spawn(move || {
                let raft = raft.clone();
                async move {
                    match raft.get_read_log_id().await {
                        Ok((read, _)) => Ok(read.map_or(0, |l| l.index)),
                        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                            Err(ProposeError::NotLeader {
                                leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
                            })
                        }
                        Err(e) => Err(ProposeError::Unavailable(e.to_string())),
                    }
                }
            })
        };
        let follower_reads = {
            let raft = raft.clone();
            let http = network.http().clone();
            Coalescer::spawn(move || {
                let leader = leader_of(&raft);
                let http = http.clone();
                async move {
                    let Some((_, url)) = leader else {
                        return Err(ProposeError::Unavailable("no leader".into()));
                    };
                    let res: Result<Result<u64, ProposeError>, ProposeError> =
                        network::propose_remote(
                            &http,
                            &url,
                            network::READ_INDEX_PATH,
                            &(),
                            PROPOSE_TIMEOUT,
                        )
                        .await;
                    match res {
                        Ok(r) => r,
                        // A read changes nothing: any failure just means "try again".
                        Err(ProposeError::Unknown(m)) => Err(ProposeError::Unavailable(m)),
                        Err(e) => Err(e),
                    }
                }
            })
        };
        Ok(Arc::new(RaftNode {
            raft,
            id: opts.id,
            proposer,
            forwarder,
            network,
            leader_reads,
            follower_reads,
            pacer,
        }))
    }

    pub(crate) fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Propose `cmd` on this member (it must lead) and wait for its applied result.
    pub async fn propose(&self, cmd: Command) -> Result<CmdResult, ProposeError> {
        let (tx, rx) = oneshot::channel();
        self.proposer
            .send(proposer::Pending { cmd, tx })
            .await
            .map_err(|_| ProposeError::Unavailable("raft stopped".into()))?;
        match tokio::time::timeout(PROPOSE_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ProposeError::Unknown("raft stopped".into())),
            Err(_) => Err(ProposeError::Unknown(
                "timed out waiting for the write to commit".into(),
            )),
        }
    }

    /// Hand `cmd` to the leader at `url` (batched with other forwarded commands).
    async fn forward(&self, cmd: Command, url: String) -> Result<CmdResult, ProposeError> {
        let (tx, rx) = oneshot::channel();
        self.forwarder
            .send(forward::Fwd {
                cmd,
                leader_url: url,
                tx,
            })
            .await
            .map_err(|_| ProposeError::Unavailable("raft stopped".into()))?;
        match tokio::time::timeout(PROPOSE_TIMEOUT + Duration::from_secs(1), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ProposeError::Unknown("forwarding stopped".into())),
            Err(_) => Err(ProposeError::Unknown(
                "timed out waiting for the leader".into(),
            )),
        }
    }

    /// Propose `cmd` through whichever member leads: here, or forwarded to the leader. While
    /// there is no leader, or the leader changes before accepting it, it waits and tries again
    /// (nothing was applied in those cases) for up to [`PROPOSE_TIMEOUT`].
    pub async fn propose_via_leader(&self, cmd: Command) -> Result<CmdResult, ProposeError> {
        let deadline = tokio::time::Instant::now() + PROPOSE_TIMEOUT;
        loop {
            let res = match self.leader() {
                Some((id, _)) if id == self.id => self.propose(cmd.clone()).await,
                Some((_, url)) => self.forward(cmd.clone(), url).await,
                None => Err(ProposeError::Unavailable("no leader".into())),
            };
            match res {
                Err(e @ (ProposeError::NotLeader { .. } | ProposeError::Unavailable(_))) => {
                    if tokio::time::Instant::now() + LEADER_POLL >= deadline {
                        return Err(match e {
                            ProposeError::NotLeader { .. } => {
                                ProposeError::Unavailable("no leader".into())
                            }
                            e => e,
                        });
                    }
                    tokio::time::sleep(LEADER_POLL).await;
                }
                other => return other,
            }
        }
    }

    /// The leader's read index: the log index a read must see, with leadership confirmed by a
    /// quorum after the call (coalesced with concurrent callers).
    pub async fn leader_read_index(&self) -> Result<u64, ProposeError> {
        self.leader_reads.wait(PROPOSE_TIMEOUT).await
    }

    /// The read index for a follower's read: the follower must also hear that it is
    /// committed, without waiting for the pacer (see `pacing`).
    pub async fn follower_read_index(&self) -> Result<u64, ProposeError> {
        let index = self.leader_reads.wait(PROPOSE_TIMEOUT).await?;
        if self.pacer.hurry(index) {
            self.raft
                .trigger()
                .heartbeat()
                .await
                .map_err(|e| ProposeError::Unavailable(e.to_string()))?;
        }
        Ok(index)
    }

    /// Wait until a read on this member's state machine is linearizable (ReadIndex): the
    /// leader — this member, or asked by this follower — confirms its leadership with a quorum
    /// after the call, and this member has applied everything the leader had committed.
    pub async fn linearize(&self) -> Result<(), ProposeError> {
        let deadline = tokio::time::Instant::now() + PROPOSE_TIMEOUT;
        let index = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let res = match self.leader() {
                Some((id, _)) if id == self.id => self.leader_reads.wait(left).await,
                Some(_) => self.follower_reads.wait(left).await,
                None => Err(ProposeError::Unavailable("no leader".into())),
            };
            match res {
                Ok(i) => break i,
                Err(e) => {
                    if tokio::time::Instant::now() + LEADER_POLL >= deadline {
                        return Err(match e {
                            ProposeError::NotLeader { .. } => {
                                ProposeError::Unavailable("no leader".into())
                            }
                            e => e,
                        });
                    }
                    tokio::time::sleep(LEADER_POLL).await;
                }
            }
        };
        self.wait_applied(index, deadline).await
    }

    /// Wait until this member has applied log index `index`.
    pub async fn wait_applied(
        &self,
        index: u64,
        deadline: tokio::time::Instant,
    ) -> Result<(), ProposeError> {
        let mut rx = self.raft.metrics();
        let applied = |m: &openraft::RaftMetrics<NodeId, Node>| {
            m.last_applied.as_ref().map_or(0, |l| l.index) >= index
        };
        if applied(&rx.borrow()) {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, rx.wait_for(applied)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ProposeError::Unavailable("raft stopped".into())),
            Err(_) => Err(ProposeError::Unavailable(
                "timed out catching up with the leader".into(),
            )),
        }
    }

    /// Add a learner (a non-voting member the leader replicates to). Returns at once; the
    /// learner catches up in the background.
    pub async fn add_learner(&self, id: NodeId, peer_url: &str) -> Result<(), MembershipError> {
        self.raft
            .add_learner(
                id,
                BasicNode {
                    addr: peer_url.to_string(),
                },
                false,
            )
            .await
            .map(|_| ())
            .map_err(membership_error)
    }

    /// Make a learner a voter.
    pub async fn promote(&self, id: NodeId) -> Result<(), MembershipError> {
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map(|_| ())
            .map_err(membership_error)
    }

    /// Remove a voter or a learner from the membership.
    pub async fn remove(&self, id: NodeId) -> Result<(), MembershipError> {
        let st = self.status();
        let Some(m) = st.members.iter().find(|m| m.id == id) else {
            return Err(MembershipError::Rejected(format!(
                "member {id:x} not found"
            )));
        };
        let change = if m.is_learner {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        };
        self.raft
            .change_membership(change, false)
            .await
            .map(|_| ())
            .map_err(membership_error)
    }

    /// On the leader: whether learner `id` has most of the log (etcd's rule: its matched
    /// index is at least 90% of the leader's).
    pub fn learner_in_sync(&self, id: NodeId) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        let last = m.last_log_index.unwrap_or(0);
        let matched = m
            .replication
            .as_ref()
            .and_then(|r| r.get(&id).cloned().flatten())
            .map_or(0, |l| l.index);
        matched * 10 >= last * 9
    }

    pub fn status(&self) -> RaftStatus {
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, n)| MemberInfo {
                id: *id,
                peer_url: n.addr.clone(),
                is_learner: !voters.contains(id),
            })
            .collect();
        RaftStatus {
            term: m.current_term,
            leader: m.current_leader,
            is_leader: m.state == ServerState::Leader,
            is_learner: m.state == ServerState::Learner,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.as_ref().map_or(0, |l| l.index),
            members,
        }
    }

    /// The leader's id and peer URL, if known.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        leader_of(&self.raft)
    }

    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// The current term, and whether this member leads in it.
    pub fn term(&self) -> (u64, bool) {
        let m = self.raft.metrics();
        let m = m.borrow();
        (m.current_term, m.state == ServerState::Leader)
    }

    pub fn http(&self) -> &reqwest::Client {
        self.network.http()
    }

    /// Whether a leader told this member it was removed from the cluster.
    pub fn told_removed(&self) -> bool {
        self.network.removed()
    }

    /// On the leader, with its membership applied: whether `id` is not a member. (Only the
    /// leader answers: a lagging follower may not know a member that was just added.)
    pub fn is_removed_member(&self, id: NodeId) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        let applied = m.last_applied.as_ref().map_or(0, |l| l.index);
        let mc = &m.membership_config;
        m.state == ServerState::Leader
            && mc.log_id().as_ref().is_some_and(|l| l.index <= applied)
            && mc.membership().get_node(&id).is_none()
    }

    /// Stop Raft (the core, replication and the state machine worker).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }
}

fn leader_of(raft: &Raft) -> Option<(NodeId, String)> {
    let m = raft.metrics();
    let m = m.borrow();
    let id = m.current_leader?;
    let url = m.membership_config.membership().get_node(&id)?.addr.clone();
    Some((id, url))
}

#[cfg(test)]
mod tests;
