//! A client for the kvstore: any member accepts any request, so the client talks to one
//! endpoint and moves to the next when it cannot be reached or says it is unavailable.

pub mod proto;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ndjson;
use proto::*;

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The store answered with an error.
    #[error("kvstore: {}", .0.error)]
    Server(ErrorBody, u16),
    /// No endpoint could be reached within the retry budget.
    #[error("kvstore unreachable: {0}")]
    Unreachable(String),
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
}

/// Cheap to clone; clones share the connection pool and the current-endpoint choice.
#[derive(Clone)]
pub struct KvClient {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Vec<String>,
    current: AtomicUsize,
    http: reqwest::Client,
    /// How long to keep trying other endpoints before giving up on a request.
    retry_for: Duration,
}

impl KvClient {
    /// `endpoints` are base URLs such as `http://127.0.0.1:2379`.
    pub fn new(endpoints: Vec<String>) -> Result<Self, KvError> {
        if endpoints.is_empty() {
            return Err(KvError::Unreachable("no kvstore endpoints given".into()));
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1024)
            .build()
            .map_err(|e| KvError::Unreachable(e.to_string()))?;
        Ok(KvClient {
            inner: Arc::new(Inner {
                endpoints: endpoints
                    .into_iter()
                    .map(|e| e.trim_end_matches('/').to_string())
                    .collect(),
                current: AtomicUsize::new(0),
                http,
                retry_for: Duration::from_secs(10),
            }),
        })
    }

    /// Give up on a request after trying endpoints for this long (default 10 s).
    pub fn with_retry_for(self, d: Duration) -> Self {
        let inner = Inner {
            endpoints: self.inner.endpoints.clone(),
            current: AtomicUsize::new(self.inner.current.load(Ordering::Relaxed)),
            http: self.inner.http.clone(),
            retry_for: d,
        };
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

    /// POST a JSON request, retrying on other endpoints when one cannot be reached or answers
    /// `unavailable`. Requests that reached a server and failed otherwise are not retried.
    async fn send(&self, path: &str, body: &impl Serialize) -> Result<reqwest::Response, KvError> {
        let deadline = tokio::time::Instant::now() + self.inner.retry_for;
        let mut backoff = Duration::from_millis(20);
        loop {
            let (i, base) = self.endpoint();
            let res = self
                .inner
                .http
                .post(format!("{base}{path}"))
                .json(body)
                .send()
                .await;
            let last_err = match res {
                Ok(r) if r.status().is_success() => return Ok(r),
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    let body: ErrorBody = serde_json::from_str(&text).unwrap_or(ErrorBody {
                        error: text,
                        code: ErrorCode::Internal,
                        compact_revision: 0,
                    });
                    if body.code != ErrorCode::Unavailable {
                        return Err(KvError::Server(body, status));
                    }
                    KvError::Server(body, status)
                }
                Err(e) if e.is_connect() || e.is_timeout() && !e.is_body() => {
                    KvError::Unreachable(format!("{base}: {e}"))
                }
                Err(e) => return Err(KvError::Unreachable(format!("{base}: {e}"))),
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
    ) -> Result<Resp, KvError> {
        let r = self.send(path, req).await?;
        r.json::<Resp>()
            .await
            .map_err(|e| KvError::Unreachable(format!("bad response from kvstore: {e}")))
    }

    pub async fn range(&self, req: &RangeRequest) -> Result<RangeResponse, KvError> {
        self.call("/v3/kv/range", req).await
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
        self.call("/v3/kv/put", req).await
    }

    pub async fn delete_range(
        &self,
        req: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, KvError> {
        self.call("/v3/kv/deleterange", req).await
    }

    pub async fn txn(&self, req: &TxnRequest) -> Result<TxnResponse, KvError> {
        self.call("/v3/kv/txn", req).await
    }

    pub async fn compact(&self, req: &CompactionRequest) -> Result<CompactionResponse, KvError> {
        self.call("/v3/kv/compaction", req).await
    }

    pub async fn lease_grant(
        &self,
        req: &LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, KvError> {
        self.call("/v3/lease/grant", req).await
    }

    pub async fn lease_revoke(
        &self,
        req: &LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse, KvError> {
        self.call("/v3/lease/revoke", req).await
    }

    pub async fn lease_keep_alive(
        &self,
        req: &LeaseKeepAliveRequest,
    ) -> Result<LeaseKeepAliveResponse, KvError> {
        self.call("/v3/lease/keepalive", req).await
    }

    pub async fn lease_time_to_live(
        &self,
        req: &LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, KvError> {
        self.call("/v3/lease/timetolive", req).await
    }

    pub async fn status(&self) -> Result<StatusResponse, KvError> {
        self.call("/v3/maintenance/status", &serde_json::json!({}))
            .await
    }

    pub async fn member_list(&self) -> Result<MemberListResponse, KvError> {
        self.call("/v3/cluster/member/list", &serde_json::json!({}))
            .await
    }

    pub async fn member_add(&self, req: &MemberAddRequest) -> Result<MemberAddResponse, KvError> {
        self.call("/v3/cluster/member/add", req).await
    }

    pub async fn member_remove(
        &self,
        req: &MemberRemoveRequest,
    ) -> Result<MemberListResponse, KvError> {
        self.call("/v3/cluster/member/remove", req).await
    }

    pub async fn member_promote(
        &self,
        req: &MemberPromoteRequest,
    ) -> Result<MemberListResponse, KvError> {
        self.call("/v3/cluster/member/promote", req).await
    }

    /// Open a watch. The stream yields every response; the caller resumes after a break by
    /// opening a new watch from the last revision it saw + 1.
    pub async fn watch(
        &self,
        req: &WatchCreateRequest,
    ) -> Result<impl Stream<Item = Result<WatchResponse, KvError>> + Send + use<>, KvError> {
        let r = self.send("/v3/watch", req).await?;
        Ok(ndjson::decode::<WatchResponse, _, _>(r.bytes_stream())
            .map(|r| r.map_err(KvError::from)))
    }

    /// Ask the watch stream `watch_id` for a progress notification.
    pub async fn watch_progress(&self, watch_id: i64) -> Result<WatchProgressResponse, KvError> {
        self.call("/v3/watch/progress", &WatchProgressRequest { watch_id })
            .await
    }
}
