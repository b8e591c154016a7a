//! Raft (openraft) behind a small handle: type config, bootstrap, proposing write commands,
//! linearizable-read barriers and status. Only this module and the state machine adapter know
//! openraft.

pub mod log_store;
pub mod network;
mod proposer;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ServerState, SnapshotPolicy};
use tokio::sync::{mpsc, oneshot};

use crate::command::{Batch, BatchResponse, CmdResult, Command};
use crate::state_machine::StateMachine;
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

/// How long a write may wait for Raft before the client is told to retry.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Log entries between snapshots (each entry is a batch of writes). `KVSTORE_SNAPSHOT_LOGS`
/// overrides it — tests use a small value to exercise snapshots and log purging.
fn snapshot_logs() -> u64 {
    std::env::var("KVSTORE_SNAPSHOT_LOGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(10_000)
}

/// A member's Raft id: a stable hash (FNV-1a) of its name, never 0.
pub fn node_id(name: &str) -> NodeId {
    fnv1a(name.as_bytes()).max(1)
}

/// The cluster id: a hash of the initial membership.
pub fn cluster_id(initial_cluster: &[(String, String)]) -> u64 {
    let mut m: Vec<String> = initial_cluster
        .iter()
        .map(|(n, u)| format!("{n}={u}"))
        .collect();
    m.sort();
    fnv1a(m.join(",").as_bytes())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Why a proposal or a read barrier failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ProposeError {
    /// Another member leads (its id and peer URL, when known).
    #[error("not the leader")]
    NotLeader { leader: Option<(NodeId, String)> },
    #[error("{0}")]
    Unavailable(String),
}

fn write_error(e: ClientWriteError<NodeId, Node>) -> ProposeError {
    match e {
        ClientWriteError::ForwardToLeader(f) => ProposeError::NotLeader {
            leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
        },
        ClientWriteError::ChangeMembershipError(e) => ProposeError::Unavailable(e.to_string()),
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
}

pub struct RaftNode {
    raft: Raft,
    id: NodeId,
    proposer: mpsc::Sender<proposer::Pending>,
    network: Network,
}

impl RaftNode {
    /// Start Raft on the given stores. A member whose log is empty bootstraps the cluster
    /// with the full initial membership (every member does so identically, which openraft
    /// allows); a member with data resumes from it.
    pub async fn start(
        opts: StartOptions<'_>,
        log: LogStore,
        sm: StateMachine,
    ) -> anyhow::Result<Arc<RaftNode>> {
        let snapshot_logs = snapshot_logs();
        let config = openraft::Config {
            cluster_name: "kvstore".into(),
            heartbeat_interval: 150,
            election_timeout_min: 600,
            election_timeout_max: 1000,
            install_snapshot_timeout: 5_000,
            // Each entry is already a batch of up to 1024 commands.
            max_payload_entries: 64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_logs),
            max_in_snapshot_log_to_keep: snapshot_logs.min(1_000),
            ..Default::default()
        }
        .validate()?;
        let network = Network::new()?;
        let flushed = log.flushed();
        let raft = Raft::new(opts.id, Arc::new(config), network.clone(), log, sm).await?;
        if !raft.is_initialized().await? {
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
        Ok(Arc::new(RaftNode {
            raft,
            id: opts.id,
            proposer,
            network,
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
            Ok(Err(_)) => Err(ProposeError::Unavailable("raft stopped".into())),
            Err(_) => Err(ProposeError::Unavailable(
                "timed out waiting for the write to commit".into(),
            )),
        }
    }

    /// Propose `cmd` here if this member leads, else on the leader through its peer URL.
    pub async fn propose_via_leader(&self, cmd: Command) -> Result<CmdResult, ProposeError> {
        if self.is_leader() {
            // Losing leadership meanwhile surfaces as `NotLeader`; the client retries.
            return self.propose(cmd).await;
        }
        match self.leader() {
            Some((_, url)) => network::propose_remote(self.network.http(), &url, &cmd)
                .await
                .map_err(ProposeError::Unavailable),
            None => Err(ProposeError::Unavailable("no leader".into())),
        }
    }

    /// Wait until a read on this member's state machine is linearizable (ReadIndex: leadership
    /// confirmed by a quorum and everything committed before the call applied).
    pub async fn linearize(&self) -> Result<(), ProposeError> {
        let res = tokio::time::timeout(PROPOSE_TIMEOUT, self.raft.ensure_linearizable()).await;
        match res {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                Err(ProposeError::NotLeader {
                    leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
                })
            }
            Ok(Err(e)) => Err(ProposeError::Unavailable(e.to_string())),
            Err(_) => Err(ProposeError::Unavailable(
                "timed out confirming leadership".into(),
            )),
        }
    }

    pub fn status(&self) -> RaftStatus {
        let m = self.raft.metrics().borrow().clone();
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
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            members,
        }
    }

    /// The leader's id and peer URL, if known.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let m = self.raft.metrics().borrow().clone();
        let id = m.current_leader?;
        let url = m.membership_config.membership().get_node(&id)?.addr.clone();
        Some((id, url))
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

    /// Stop Raft (the core, replication and the state machine worker).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }
}

#[cfg(test)]
mod tests;
