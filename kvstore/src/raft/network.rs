//! Raft RPCs over HTTP/JSON: the client side (reqwest to a peer's `/raft/append`, `/raft/vote`,
//! `/raft/snapshot`) and the server side (the peer router's handlers).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::log_store::EarlyAcks;
use super::pacing::CommitPacer;
use super::{Node, NodeId, TypeConfig};
use crate::command::Command;

/// Makes one [`PeerClient`] per target; they share one connection pool.
#[derive(Clone)]
pub struct Network {
    http: reqwest::Client,
    /// The commit index sent to followers never passes the leader's disk.
    early: Arc<EarlyAcks>,
    /// ... and moves on at most every few milliseconds.
    pacer: Arc<CommitPacer>,
    /// Set when a leader answered that this member is no longer in the cluster.
    removed: Arc<AtomicBool>,
}

/// The status a leader answers a vote request with when the candidate is not a member.
const REMOVED: StatusCode = StatusCode::GONE;

impl Network {
    pub fn new(early: Arc<EarlyAcks>, pacer: Arc<CommitPacer>) -> anyhow::Result<Network> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .build()?;
        Ok(Network {
            http,
            early,
            pacer,
            removed: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Whether a leader said this member was removed from the cluster.
    pub fn removed(&self) -> bool {
        self.removed.load(Ordering::Relaxed)
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient {
            target,
            endpoints: Endpoints::parse(&node.addr),
            http: self.http.clone(),
            removed: self.removed.clone(),
            early: self.early.clone(),
            pacer: self.pacer.clone(),
            replicates: false,
            matched: None,
        }
    }
}

/// A peer's RPC URLs, parsed once per client (parsing them for every request showed in
/// profiles of the write path).
struct Endpoints {
    append: reqwest::Url,
    vote: reqwest::Url,
    snapshot: reqwest::Url,
}

impl Endpoints {
    fn parse(addr: &str) -> Result<Endpoints, String> {
        let base = addr.trim_end_matches('/');
        let url = |path: &str| {
            reqwest::Url::parse(&format!("{base}{path}"))
                .map_err(|e| format!("bad peer address {addr:?}: {e}"))
        };
        Ok(Endpoints {
            append: url("/raft/append")?,
            vote: url("/raft/vote")?,
            snapshot: url("/raft/snapshot")?,
        })
    }
}

pub struct PeerClient {
    target: NodeId,
    endpoints: Result<Endpoints, String>,
    http: reqwest::Client,
    removed: Arc<AtomicBool>,
    early: Arc<EarlyAcks>,
    pacer: Arc<CommitPacer>,
    /// This client sent entries: it is a replication stream's (openraft makes a new client for
    /// each leadership check, which sends one AppendEntries without entries).
    replicates: bool,
    /// The last log id the target said it holds, as of this client's last append.
    matched: Option<openraft::LogId<NodeId>>,
}

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        url: fn(&Endpoints) -> &reqwest::Url,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<NodeId, Node, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let url = match &self.endpoints {
            Ok(e) => url(e).clone(),
            Err(m) => {
                let e = std::io::Error::other(m.clone());
                return Err(RPCError::Unreachable(Unreachable::new(&e)));
            }
        };
        let res = self
            .http
            .post(url)
            .json(req)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    RPCError::Unreachable(Unreachable::new(&e))
                } else {
                    RPCError::Network(NetworkError::new(&e))
                }
            })?;
        if res.status() == REMOVED {
            self.removed.store(true, Ordering::Relaxed);
            let e = std::io::Error::other("the leader says this member was removed");
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        }
        let body = res
            .bytes()
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let parsed: Result<Resp, E> =
            serde_json::from_slice(&body).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        parsed.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let on_disk = self.early.clamp_commit(rpc.leader_commit);
        rpc.leader_commit = self.pacer.pace(self.target, rpc.leader_commit, on_disk);
        // A replication stream's heartbeat that would tell the follower nothing new (see
        // `pacing`); leadership checks always go out.
        if rpc.entries.is_empty()
            && self.replicates
            && rpc.prev_log_id == self.matched
            && self.pacer.nothing_new(self.target, rpc.leader_commit)
        {
            return Ok(AppendEntriesResponse::Success);
        }
        tracing::trace!(n = rpc.entries.len(), "write path: rpc append send");
        let sent_at = tokio::time::Instant::now();
        let last = rpc.entries.last().map(|e| e.log_id).or(rpc.prev_log_id);
        let r = self.call(|e| &e.append, &rpc, option.hard_ttl()).await;
        tracing::trace!("write path: rpc append done");
        let matched = match &r {
            Ok(AppendEntriesResponse::Success) => Some(last),
            Ok(AppendEntriesResponse::PartialSuccess(m)) => Some(*m),
            _ => None,
        };
        if let Some(m) = matched {
            self.replicates |= !rpc.entries.is_empty();
            self.matched = m;
            self.pacer.answered(self.target, rpc.leader_commit, sent_at);
        }
        r
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(|e| &e.snapshot, &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.call(|e| &e.vote, &rpc, option.hard_ttl()).await
    }
}

/// The peer-only routes: Raft RPCs, `/raft/propose` (followers hand their clients' writes to
/// the leader through it, in batches) and `/raft/read_index` (a follower's ReadIndex request).
pub fn peer_router(node: std::sync::Arc<super::RaftNode>) -> Router {
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        .route(PROPOSE_PATH, post(propose))
        .route(READ_INDEX_PATH, post(read_index))
        .layer(DefaultBodyLimit::disable())
        .with_state(node)
}

pub(super) const PROPOSE_PATH: &str = "/raft/propose";
pub(super) const READ_INDEX_PATH: &str = "/raft/read_index";

type NodeState = State<std::sync::Arc<super::RaftNode>>;

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad raft message: {e}")).into_response())
}

fn json<T: Serialize>(v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(b) => ([(axum::http::header::CONTENT_TYPE, "application/json")], b).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn append(State(node): NodeState, body: Bytes) -> Response {
    let req: AppendEntriesRequest<TypeConfig> = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    tracing::trace!(n = req.entries.len(), "write path: append rpc received");
    let r = node.raft().append_entries(req).await;
    tracing::trace!("write path: append rpc answered");
    json(&r)
}

async fn vote(State(node): NodeState, body: Bytes) -> Response {
    let req: VoteRequest<NodeId> = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Some(candidate) = req.vote.leader_id().voted_for()
        && node.is_removed_member(candidate)
    {
        return (REMOVED, "member removed from the cluster").into_response();
    }
    json(&node.raft().vote(req).await)
}

async fn snapshot(State(node): NodeState, body: Bytes) -> Response {
    let req: InstallSnapshotRequest<TypeConfig> = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    json(&node.raft().install_snapshot(req).await)
}

/// A batch of commands from a follower: each is proposed here (they join the same Raft entry
/// when they can) and answered in order. Only the leader proposes; anything else answers
/// `NotLeader` (nothing applied), so the follower can retry elsewhere.
async fn propose(State(node): NodeState, body: Bytes) -> Response {
    let cmds: Vec<Command> = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let results = futures::future::join_all(cmds.into_iter().map(|cmd| node.propose(cmd))).await;
    json(&results)
}

/// The leader's read index for a follower: leadership confirmed by a quorum after this call
/// arrived; the follower reads once it has applied up to it.
async fn read_index(State(node): NodeState) -> Response {
    json(&node.follower_read_index().await)
}

/// POST `body` to a peer's `path` and decode its answer. A connection that could not be made
/// is `Unavailable` (nothing was sent); any later failure is `Unknown`.
pub(super) async fn propose_remote<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
    http: &reqwest::Client,
    peer_url: &str,
    path: &str,
    body: &Req,
    timeout: Duration,
) -> Result<Resp, super::ProposeError> {
    use super::ProposeError;
    let bytes = serde_json::to_vec(body)
        .map_err(|e| ProposeError::Unavailable(format!("encoding for {peer_url}: {e}")))?;
    let res = http
        .post(format!("{}{path}", peer_url.trim_end_matches('/')))
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(bytes)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| {
            let m = format!("forwarding to the leader at {peer_url}: {e}");
            if e.is_connect() {
                ProposeError::Unavailable(m)
            } else {
                ProposeError::Unknown(m)
            }
        })?;
    let status = res.status();
    let body = res.bytes().await.map_err(|e| {
        ProposeError::Unknown(format!("forwarding to the leader at {peer_url}: {e}"))
    })?;
    if !status.is_success() {
        // The peer rejected the message before acting on it (e.g. an older member).
        return Err(ProposeError::Unavailable(format!(
            "the leader at {peer_url} answered {status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    serde_json::from_slice::<Resp>(&body).map_err(|e| {
        ProposeError::Unknown(format!("bad answer from the leader at {peer_url}: {e}"))
    })
}
