//! A client for the kvstore: any member accepts any request (followers serve writes and
//! linearizable reads through the leader), so the client talks to one endpoint and moves to the
//! next when it cannot be reached or says it is unavailable.
//!
//! # Retries
//! As etcd's client, a request is retried on another endpoint only when doing so cannot apply
//! it twice: a read (range, status, watch, lease queries and keep-alives) is retried after any
//! failure; a write (put, delete, txn, compaction, lease grant/revoke, member changes) only when
//! it surely did not reach Raft — the connection could not be opened, or the member answered
//! `unavailable`, which it does only for requests it did not propose. A write whose outcome is
//! unknown (the connection broke after sending, no answer in time, or the member answered
//! `timeout`) fails with [`KvError::Indeterminate`]: it may or may not have been applied.

pub mod proto;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use client::ndjson;
use proto::*;

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The store answered with an error.
    #[error("kvstore: {}", .0.error)]
    Server(ErrorBody, u16),
    /// No endpoint could be reached within the retry budget (nothing was applied).
    #[error("kvstore unreachable: {0}")]
    Unreachable(String),
    /// A write was sent but its outcome is unknown: it may or may not have been applied.
    #[error("kvstore: outcome unknown: {0}")]
    Indeterminate(String),
    #[error("kvstore watch: {0}")]
    Watch(#[from] ndjson::NdjsonError),
}

impl KvError {
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            KvError::Server(b, _) => Some(b.code),
            _ => None,
        }
    }

    /// Whether a failed write may nevertheless have been applied.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            KvError::Indeterminate(_) => true,
            KvError::Server(b, _) => b.code == ErrorCode::Timeout,
            _ => false,
        }
    }
}

/// Whether a request may be sent again after an unclear failure.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Reads: retrying cannot change anything.
    Always,
    /// Writes: only when the request surely was not applied.
    IfNotApplied,
}

/// Cheap to clone; clones share the connection pool and the current-endpoint choice.
#[derive(Clone)]
pub struct KvClient {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Vec<String>,
    /// The endpoints parsed once (`None` if one does not parse: then each request says so).
    urls: Vec<Option<reqwest::Url>>,
    current: AtomicUsize,
    /// HTTP/1.1, for watch streams: each on a connection of its own, so a stream its reader
    /// does not drain holds back no other request (HTTP/2 flow control is per connection too).
    http: reqwest::Client,
    /// HTTP/2 over cleartext, for other requests while many are in flight: concurrent requests
    /// share one connection per member, and their frames share writes and reads (about a tenth
    /// fewer CPU cycles per put at 256 concurrent clients than one HTTP/1.1 connection each).
    /// A lone request goes over HTTP/1.1, whose round trip is shorter (no hop through the
    /// connection's task).
    unary: reqwest::Client,
    /// Requests of this client waiting for their answer.
    in_flight: Arc<AtomicUsize>,
    /// How long to keep trying other endpoints before giving up on a request.
    retry_for: Duration,
    /// How long one attempt may wait for its answer (for a watch: for the stream to open).
    attempt_timeout: Duration,
}

const WATCH_PATH: &str = "/v3/watch";

/// Requests in flight (besides the new one) from which a client multiplexes over HTTP/2.
const MULTIPLEX_FROM: usize = 4;

/// Counts a request in flight while it lives.
struct InFlight<'a> {
    count: &'a AtomicUsize,
    /// How many others were in flight when this one started.
    others: usize,
}

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> InFlight<'a> {
        let others = count.fetch_add(1, Ordering::Relaxed);
        InFlight { count, others }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Longer than a member waits for a commit (5 s) plus a forward to the leader.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(8);

impl KvClient {
    /// `endpoints` are base URLs such as `http://127.0.0.1:2379`.
    pub fn new(endpoints: Vec<String>) -> Result<Self, KvError> {
        if endpoints.is_empty() {
            return Err(KvError::Unreachable("no kvstore endpoints given".into()));
        }
        let builder = || {
            reqwest::Client::builder()
                .no_proxy()
                .connect_timeout(Duration::from_secs(2))
                .tcp_nodelay(true)
        };
        let http = builder()
            .pool_max_idle_per_host(1024)
            .build()
            .map_err(|e| KvError::Unreachable(e.to_string()))?;
        let unary = builder()
            .http2_prior_knowledge()
            .build()
            .map_err(|e| KvError::Unreachable(e.to_string()))?;
        let endpoints: Vec<String> = endpoints
            .into_iter()
            .map(|e| e.trim_end_matches('/').to_string())
            .collect();
        Ok(KvClient {
            inner: Arc::new(Inner {
                urls: endpoints
                    .iter()
                    .map(|e| reqwest::Url::parse(e).ok())
                    .collect(),
                endpoints,
                current: AtomicUsize::new(0),
                http,
                unary,
                in_flight: Default::default(),
                retry_for: Duration::from_secs(10),
                attempt_timeout: ATTEMPT_TIMEOUT,
            }),
        })
    }

    /// Give up on a request after trying endpoints for this long (default 10 s).
    pub fn with_retry_for(self, d: Duration) -> Self {
        self.rebuild(|i| i.retry_for = d)
    }

    /// Give up on one attempt (and, for a read, try another endpoint) when no answer came
    /// within `d` (default 8 s) — e.g. from a paused member.
    pub fn with_attempt_timeout(self, d: Duration) -> Self {
        self.rebuild(|i| i.attempt_timeout = d)
    }

    fn rebuild(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner {
            endpoints: self.inner.endpoints.clone(),
            urls: self.inner.urls.clone(),
            current: AtomicUsize::new(self.inner.current.load(Ordering::Relaxed)),
            http: self.inner.http.clone(),
            unary: self.inner.unary.clone(),
            in_flight: self.inner.in_flight.clone(),
            retry_for: self.inner.retry_for,
            attempt_timeout: self.inner.attempt_timeout,
        };
        f(&mut inner);
        KvClient {
            inner: Arc::new(inner),
        }
    }

    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }

    fn endpoint(&self) -> (usize, &str) {
        let i = self.inner.current.load(Ordering::Relaxed) % self.inner.endpoints.len();
        (i, &self.inner.endpoints[i])
    }

    fn rotate(&self, from: usize) {
        let _ = self.inner.current.compare_exchange(
            from,
            (from + 1) % self.inner.endpoints.len(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// POST a JSON request and wait for the response head, retrying on other endpoints as the
    /// module documentation says.
    async fn send(
        &self,
        path: &str,
        body: &impl Serialize,
        retry: Retry,
    ) -> Result<reqwest::Response, KvError> {
        let body = bytes::Bytes::from(
            serde_json::to_vec(body)
                .map_err(|e| KvError::Unreachable(format!("encoding the request: {e}")))?,
        );
        let in_flight = InFlight::enter(&self.inner.in_flight);
        let http = if path != WATCH_PATH && in_flight.others >= MULTIPLEX_FROM {
            &self.inner.unary
        } else {
            &self.inner.http
        };
        let deadline = tokio::time::Instant::now() + self.inner.retry_for;
        let mut backoff = Duration::from_millis(20);
        loop {
            let (i, base) = self.endpoint();
            // Not parsed again per request (URL parsing was a visible part of a put's CPU).
            let request = match &self.inner.urls[i] {
                Some(u) => {
                    let mut u = u.clone();
                    u.set_path(&[u.path().trim_end_matches('/'), path].concat());
                    http.post(u)
                }
                None => http.post(format!("{base}{path}")),
            };
            let sent = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send();
            let res = tokio::time::timeout(self.inner.attempt_timeout, sent).await;
            let last_err = match res {
                Ok(Ok(r)) if r.status().is_success() => return Ok(r),
                Ok(Ok(r)) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    let body: ErrorBody = serde_json::from_str(&text).unwrap_or(ErrorBody {
                        error: text,
                        code: ErrorCode::Internal,
                        compact_revision: 0,
                    });
                    let again = match body.code {
                        ErrorCode::Unavailable => true,
                        ErrorCode::Timeout => retry == Retry::Always,
                        _ => false,
                    };
                    if !again {
                        return Err(KvError::Server(body, status));
                    }
                    KvError::Server(body, status)
                }
                // The connection was never made: nothing was sent.
                Ok(Err(e)) if e.is_connect() => KvError::Unreachable(format!("{base}: {e}")),
                Ok(Err(e)) => {
                    let e = format!("{base}: {e}");
                    if retry == Retry::IfNotApplied {
                        return Err(KvError::Indeterminate(e));
                    }
                    KvError::Unreachable(e)
                }
                Err(_) => {
                    let e = format!("{base}: no answer within {:?}", self.inner.attempt_timeout);
                    if retry == Retry::IfNotApplied {
                        self.rotate(i);
                        return Err(KvError::Indeterminate(e));
                    }
                    KvError::Unreachable(e)
                }
            };
            self.rotate(i);
            if tokio::time::Instant::now() + backoff > deadline {
                return Err(last_err);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
        retry: Retry,
    ) -> Result<Resp, KvError> {
        let deadline = tokio::time::Instant::now() + self.inner.retry_for;
        loop {
            let r = self.send(path, req, retry).await?;
            match tokio::time::timeout(self.inner.attempt_timeout, r.bytes()).await {
                Ok(Ok(bytes)) => {
                    return serde_json::from_slice::<Resp>(&bytes).map_err(|e| {
                        KvError::Unreachable(format!("bad response from kvstore: {e}"))
                    });
                }
                // The answer was lost on the way.
                Ok(Err(e)) if retry == Retry::IfNotApplied => {
                    return Err(KvError::Indeterminate(format!("reading the response: {e}")));
                }
                Err(_) if retry == Retry::IfNotApplied => {
                    return Err(KvError::Indeterminate(
                        "reading the response timed out".into(),
                    ));
                }
                Ok(Err(e)) if tokio::time::Instant::now() >= deadline => {
                    return Err(KvError::Unreachable(format!("reading the response: {e}")));
                }
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(KvError::Unreachable(
                        "reading the response timed out".into(),
                    ));
                }
                _ => {}
            }
        }
    }

    async fn read<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
    ) -> Result<Resp, KvError> {
        self.call(path, req, Retry::Always).await
    }

    async fn write<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
    ) -> Result<Resp, KvError> {
        self.call(path, req, Retry::IfNotApplied).await
    }

    pub async fn range(&self, req: &RangeRequest) -> Result<RangeResponse, KvError> {
        self.read("/v3/kv/range", req).await
    }

    /// The value of one key, if present.
    pub async fn get(&self, key: &str) -> Result<(Option<KeyValue>, ResponseHeader), KvError> {
        let r = self
            .range(&RangeRequest {
                key: key.into(),
                ..Default::default()
            })
            .await?;
        Ok((r.kvs.into_iter().next(), r.header))
    }

    pub async fn put(&self, req: &PutRequest) -> Result<PutResponse, KvError> {
        self.write("/v3/kv/put", req).await
    }

    pub async fn delete_range(
        &self,
        req: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, KvError> {
        self.write("/v3/kv/deleterange", req).await
    }

    pub async fn txn(&self, req: &TxnRequest) -> Result<TxnResponse, KvError> {
        self.write("/v3/kv/txn", req).await
    }

    pub async fn compact(&self, req: &CompactionRequest) -> Result<CompactionResponse, KvError> {
        self.write("/v3/kv/compaction", req).await
    }

    pub async fn lease_grant(
        &self,
        req: &LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, KvError> {
        self.write("/v3/lease/grant", req).await
    }

    pub async fn lease_revoke(
        &self,
        req: &LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse, KvError> {
        self.write("/v3/lease/revoke", req).await
    }

    pub async fn lease_keep_alive(
        &self,
        req: &LeaseKeepAliveRequest,
    ) -> Result<LeaseKeepAliveResponse, KvError> {
        self.read("/v3/lease/keepalive", req).await
    }

    pub async fn lease_time_to_live(
        &self,
        req: &LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, KvError> {
        self.read("/v3/lease/timetolive", req).await
    }

    pub async fn status(&self) -> Result<StatusResponse, KvError> {
        self.read("/v3/maintenance/status", &serde_json::json!({}))
            .await
    }

    pub async fn member_list(&self) -> Result<MemberListResponse, KvError> {
        self.read("/v3/cluster/member/list", &serde_json::json!({}))
            .await
    }

    pub async fn member_add(&self, req: &MemberAddRequest) -> Result<MemberAddResponse, KvError> {
        self.write("/v3/cluster/member/add", req).await
    }

    pub async fn member_remove(
        &self,
        req: &MemberRemoveRequest,
    ) -> Result<MemberListResponse, KvError> {
        self.write("/v3/cluster/member/remove", req).await
    }

    pub async fn member_promote(
        &self,
        req: &MemberPromoteRequest,
    ) -> Result<MemberListResponse, KvError> {
        self.write("/v3/cluster/member/promote", req).await
    }

    /// Open a watch. The stream yields every response; the caller resumes after a break by
    /// opening a new watch from the last revision it saw + 1.
    pub async fn watch(
        &self,
        req: &WatchCreateRequest,
    ) -> Result<impl Stream<Item = Result<WatchResponse, KvError>> + Send + use<>, KvError> {
        let r = self.send(WATCH_PATH, req, Retry::Always).await?;
        Ok(ndjson::decode::<WatchResponse, _, _>(r.bytes_stream())
            .map(|r| r.map_err(KvError::from)))
    }

    /// Ask the watch stream `watch_id` for a progress notification.
    pub async fn watch_progress(&self, watch_id: i64) -> Result<WatchProgressResponse, KvError> {
        self.read("/v3/watch/progress", &WatchProgressRequest { watch_id })
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::routing::post;

    use super::KvClient;
    use super::proto::{RangeRequest, RangeResponse, ResponseHeader};

    /// A lone request goes over HTTP/1.1; once four are in flight, the next ones share an
    /// HTTP/2 connection. The test server answers with revision 2 over HTTP/2, 1 otherwise.
    #[tokio::test]
    async fn a_lone_request_uses_http1_and_concurrent_ones_multiplex_over_http2() {
        let app = axum::Router::new().route(
            "/v3/kv/range",
            post(|req: axum::extract::Request| async move {
                let h2 = req.version() == axum::http::Version::HTTP_2;
                // Keep concurrent requests in flight together.
                tokio::time::sleep(Duration::from_millis(200)).await;
                axum::Json(RangeResponse {
                    header: ResponseHeader {
                        revision: if h2 { 2 } else { 1 },
                        ..Default::default()
                    },
                    ..Default::default()
                })
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let c = KvClient::new(vec![base]).expect("client");
        let req = RangeRequest {
            key: "a".into(),
            ..Default::default()
        };
        let lone = c.range(&req).await.expect("range");
        assert_eq!(lone.header.revision, 1, "a lone request goes over HTTP/1.1");
        let all = futures::future::join_all((0..16).map(|_| c.range(&req))).await;
        let versions: Vec<i64> = all
            .into_iter()
            .map(|r| r.expect("range").header.revision)
            .collect();
        // join_all starts them in order: the first four saw fewer than four others in flight.
        assert_eq!(versions[..4], [1, 1, 1, 1], "{versions:?}");
        assert!(versions[4..].iter().all(|v| *v == 2), "{versions:?}");
    }
}
