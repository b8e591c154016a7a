//! Raft RPCs over HTTP/JSON: the client side (reqwest to a peer's `/raft/append`, `/raft/vote`,
//! `/raft/snapshot`) and the server side (the peer router's handlers).

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

use super::{Node, NodeId, TypeConfig};
use crate::command::{CmdResult, Command};

/// Makes one [`PeerClient`] per target; they share one connection pool.
#[derive(Clone)]
pub struct Network {
    http: reqwest::Client,
}

impl Network {
    pub fn new() -> anyhow::Result<Network> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .build()?;
        Ok(Network { http })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient {
            target,
            base: node.addr.trim_end_matches('/').to_string(),
            http: self.http.clone(),
        }
    }
}

pub struct PeerClient {
    target: NodeId,
    base: String,
    http: reqwest::Client,
}

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<NodeId, Node, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
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
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.call("/raft/append", &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call("/raft/snapshot", &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.call("/raft/vote", &rpc, option.hard_ttl()).await
    }
}

/// The peer-only routes: Raft RPCs and `/raft/propose` (a member that is not the leader sends
/// its own commands, such as publishing its client URLs, through it).
pub fn peer_router(node: std::sync::Arc<super::RaftNode>) -> Router {
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        .route("/raft/propose", post(propose))
        .layer(DefaultBodyLimit::disable())
        .with_state(node)
}

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
    json(&node.raft().append_entries(req).await)
}

async fn vote(State(node): NodeState, body: Bytes) -> Response {
    let req: VoteRequest<NodeId> = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    json(&node.raft().vote(req).await)
}

async fn snapshot(State(node): NodeState, body: Bytes) -> Response {
    let req: InstallSnapshotRequest<TypeConfig> = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    json(&node.raft().install_snapshot(req).await)
}

async fn propose(State(node): NodeState, body: Bytes) -> Response {
    let cmd: Command = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let res: Result<CmdResult, String> = node.propose(cmd).await.map_err(|e| e.to_string());
    json(&res)
}

/// Send `cmd` to the leader's `/raft/propose`.
pub async fn propose_remote(
    http: &reqwest::Client,
    leader_peer_url: &str,
    cmd: &Command,
) -> Result<CmdResult, String> {
    let res = http
        .post(format!(
            "{}/raft/propose",
            leader_peer_url.trim_end_matches('/')
        ))
        .json(cmd)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("forwarding to the leader at {leader_peer_url}: {e}"))?;
    let body = res
        .bytes()
        .await
        .map_err(|e| format!("forwarding to the leader at {leader_peer_url}: {e}"))?;
    serde_json::from_slice::<Result<CmdResult, String>>(&body)
        .map_err(|e| format!("bad answer from the leader at {leader_peer_url}: {e}"))?
}
