//! The client API (etcd v3 over HTTP/JSON): router, strict JSON extraction, error bodies and
//! forwarding to the leader.
//!
//! Writes go through Raft from any member (a follower hands the command to the leader, batched
//! with its other clients' writes). Linearizable reads run a ReadIndex round (on the leader, or
//! asked of the leader by a follower) and then read locally; `serializable` reads are served
//! locally at once. Lease keep-alives, TTL queries and membership changes need the leader; a
//! follower forwards those requests to the leader's peer URL, which serves this API too.

mod cluster;
mod kv;
mod lease;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kvclient::proto::{MAX_VALUE_BYTES, ResponseHeader};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::Identity;
use crate::command::{CmdResponse, Command};
use crate::error::KvError;
use crate::lease::Leases;
use crate::mvcc::Store;
use crate::raft::{NodeId, ProposeError, RaftNode};
use crate::watch::WatchHub;

/// Largest request body: a maximal value even if JSON escaping inflates it 6×, plus room.
pub const MAX_REQUEST_BYTES: usize = 6 * MAX_VALUE_BYTES + 64 * 1024;
/// How much of an oversize body is read and dropped before answering 413.
const DRAIN_BYTES: usize = 64 << 20;
/// Marks a request a member forwarded, so it is never forwarded twice.
const FORWARDED: &str = "x-kvstore-forwarded";

/// Everything a handler needs.
pub struct AppState {
    pub store: Arc<Store>,
    pub node: Arc<RaftNode>,
    pub hub: Arc<WatchHub>,
    pub leases: Arc<Leases>,
    pub ident: Arc<Identity>,
    pub http: reqwest::Client,
    /// Cancelled when the server stops (ends watch streams).
    pub shutdown: CancellationToken,
    pub name: String,
    pub advertise_client_url: String,
    pub data_files: Vec<PathBuf>,
}

type S = axum::extract::State<Arc<AppState>>;

pub fn client_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v3/kv/range", post(kv::range))
        .route("/v3/kv/put", post(kv::put))
        .route("/v3/kv/deleterange", post(kv::delete_range))
        .route("/v3/kv/txn", post(kv::txn))
        .route("/v3/kv/compaction", post(kv::compaction))
        .route("/v3/watch", post(watch::watch))
        .route("/v3/watch/progress", post(watch::progress))
        .route("/v3/lease/grant", post(lease::grant))
        .route("/v3/lease/revoke", post(lease::revoke))
        .route("/v3/lease/keepalive", post(lease::keep_alive))
        .route("/v3/lease/timetolive", post(lease::time_to_live))
        .route("/v3/maintenance/status", post(cluster::status))
        .route("/v3/cluster/member/list", post(cluster::member_list))
        .route("/v3/cluster/member/add", post(cluster::member_add))
        .route("/v3/cluster/member/remove", post(cluster::member_remove))
        .route("/v3/cluster/member/promote", post(cluster::member_promote))
        .route("/health", get(cluster::health))
        .fallback(|| async {
            ApiError(KvError::new(
                kvclient::proto::ErrorCode::BadRequest,
                "no such endpoint",
            ))
            .with_status(StatusCode::NOT_FOUND)
        })
        .method_not_allowed_fallback(|| async {
            ApiError(KvError::bad_request("method not allowed on this endpoint"))
                .with_status(StatusCode::METHOD_NOT_ALLOWED)
        })
        .with_state(state)
}

/// A [`KvError`] as an HTTP response: its status and an `ErrorBody`.
#[derive(Debug)]
pub struct ApiError(pub KvError);

impl ApiError {
    fn with_status(self, status: StatusCode) -> Response {
        (status, axum::Json(self.0.body())).into_response()
    }
}

impl From<KvError> for ApiError {
    fn from(e: KvError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        self.with_status(status)
    }
}

/// A JSON request body decoded strictly (the proto types reject unknown fields); every
/// failure is an `ErrorBody`: 413 `too_large` past [`MAX_REQUEST_BYTES`], else 400
/// `bad_request`. An empty body reads as `{}`. (Used instead of axum's `Json`, whose
/// rejections are plain text.)
pub struct Body<T>(pub T);

impl<St: Send + Sync, T: DeserializeOwned> FromRequest<St> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &St) -> Result<Self, ApiError> {
        let bytes = read_body(req.into_body()).await?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(text)
            .map(Body)
            .map_err(|e| ApiError(KvError::bad_request(format!("invalid request body: {e}"))))
    }
}

/// Read a body of at most [`MAX_REQUEST_BYTES`]. A longer one is still read (and dropped) up
/// to [`DRAIN_BYTES`], so the client gets the 413 instead of a reset connection.
async fn read_body(body: axum::body::Body) -> Result<Bytes, ApiError> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError(KvError::bad_request(format!("reading request body: {e}"))))?;
        total += chunk.len();
        if total <= MAX_REQUEST_BYTES {
            buf.extend_from_slice(&chunk);
        } else if total > DRAIN_BYTES {
            break;
        }
    }
    if total > MAX_REQUEST_BYTES {
        return Err(ApiError(KvError::too_large(format!(
            "request body exceeds the limit of {MAX_REQUEST_BYTES} bytes"
        ))));
    }
    Ok(buf.freeze())
}

impl AppState {
    /// A response header at `revision` with this member's identity.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        self.ident.header(revision)
    }

    /// Run a write command through Raft (via the leader if need be).
    pub async fn propose(&self, cmd: Command) -> Result<CmdResponse, ApiError> {
        match self.node.propose_via_leader(cmd).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(ApiError(e)),
            Err(ProposeError::NotLeader { .. }) => Err(ApiError(KvError::unavailable("no leader"))),
            Err(ProposeError::Unavailable(m)) => Err(ApiError(KvError::unavailable(m))),
            Err(ProposeError::Unknown(m)) => Err(ApiError(KvError::timeout(m))),
        }
    }

    /// Send the request to the leader's peer URL and relay its answer.
    pub async fn forward<T: Serialize>(
        &self,
        headers: &HeaderMap,
        path: &str,
        body: &T,
        leader: Option<(NodeId, String)>,
    ) -> Result<Response, ApiError> {
        if headers.contains_key(FORWARDED) {
            return Err(ApiError(KvError::unavailable(
                "forwarded to a member that is not the leader",
            )));
        }
        let Some((_, url)) = leader else {
            return Err(ApiError(KvError::unavailable("no leader")));
        };
        let unavailable = |e: reqwest::Error| {
            ApiError(KvError::unavailable(format!(
                "forwarding to the leader at {url}: {e}"
            )))
        };
        let resp = self
            .http
            .post(format!("{}{path}", url.trim_end_matches('/')))
            .header(FORWARDED, "1")
            .json(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(unavailable)?;
        let status = StatusCode::from_u16(resp.status().as_u16())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = resp.bytes().await.map_err(unavailable)?;
        Ok((
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response())
    }
}

/// The command's response had an unexpected shape (a bug, not a client error).
fn unexpected(r: CmdResponse) -> ApiError {
    ApiError(KvError::internal(format!(
        "unexpected state machine response: {r:?}"
    )))
}
