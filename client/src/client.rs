//! The HTTP layer: one connection pool to the API server, JSON in and out, `Status` errors.

use std::sync::Arc;
use std::time::Duration;

use api::Status;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// A handle on the API server. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    base: String,
    http: reqwest::Client,
    /// For watches and log streams: no overall timeout.
    streaming: reqwest::Client,
    user_agent: String,
}

/// The body of a request and how it is encoded.
pub enum Body<'a> {
    None,
    Json(&'a serde_json::Value),
    /// A patch with its content type (`application/merge-patch+json`, …).
    Patch(&'a serde_json::Value, &'static str),
}

impl Client {
    /// `server` is a base URL such as `http://127.0.0.1:8080`.
    pub fn new(server: &str, user_agent: &str) -> Result<Self> {
        let base = server.trim_end_matches('/').to_string();
        url::Url::parse(&base)
            .map_err(|e| Error::Transport(format!("invalid server URL {server:?}: {e}")))?;
        let build = |timeout: Option<Duration>| {
            let mut b = reqwest::Client::builder()
                .no_proxy()
                .tcp_nodelay(true)
                .connect_timeout(Duration::from_secs(5))
                .pool_max_idle_per_host(256);
            if let Some(t) = timeout {
                b = b.timeout(t);
            }
            b.build().map_err(|e| Error::Transport(e.to_string()))
        };
        Ok(Client {
            inner: Arc::new(Inner {
                base,
                http: build(Some(Duration::from_secs(60)))?,
                streaming: build(None)?,
                user_agent: user_agent.to_string(),
            }),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    fn builder(
        &self,
        method: Method,
        path_and_query: &str,
        streaming: bool,
    ) -> reqwest::RequestBuilder {
        let http = if streaming {
            &self.inner.streaming
        } else {
            &self.inner.http
        };
        http.request(method, format!("{}{}", self.inner.base, path_and_query))
            .header(reqwest::header::USER_AGENT, &self.inner.user_agent)
            .header(reqwest::header::ACCEPT, "application/json")
    }

    /// Send a request and return the raw response when it succeeded (2xx), else the `Status`.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Body<'_>,
        streaming: bool,
    ) -> Result<reqwest::Response> {
        let mut b = self.builder(method, path_and_query, streaming);
        match body {
            Body::None => {}
            Body::Json(v) => b = b.json(v),
            Body::Patch(v, ct) => {
                b = b
                    .header(reqwest::header::CONTENT_TYPE, ct)
                    .body(serde_json::to_vec(v).map_err(|e| Error::Decode(e.to_string()))?)
            }
        }
        let resp = b.send().await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(status_error(resp).await)
    }

    /// Send a request and decode the JSON response.
    pub async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Body<'_>,
    ) -> Result<T> {
        let resp = self.send(method, path_and_query, body, false).await?;
        let bytes = resp.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::Decode(format!(
                "{e} in {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))
        })
    }

    /// Serialize `obj` and send it.
    pub async fn request_with<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path_and_query: &str,
        obj: &B,
    ) -> Result<T> {
        let v = serde_json::to_value(obj).map_err(|e| Error::Decode(e.to_string()))?;
        self.request(method, path_and_query, Body::Json(&v)).await
    }
}

/// Turn a non-2xx response into an `Error::Api`, synthesising a `Status` when the body is not one.
pub async fn status_error(resp: reqwest::Response) -> Error {
    let code = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    match serde_json::from_str::<Status>(&text) {
        Ok(s) if s.kind == "Status" => Error::Api(Box::new(s)),
        _ => {
            let reason = match code {
                400 => "BadRequest",
                401 => "Unauthorized",
                403 => "Forbidden",
                404 => "NotFound",
                405 => "MethodNotAllowed",
                409 => "Conflict",
                410 => "Expired",
                413 => "RequestEntityTooLarge",
                415 => "UnsupportedMediaType",
                422 => "Invalid",
                429 => "TooManyRequests",
                503 => "ServiceUnavailable",
                504 => "Timeout",
                _ => "InternalError",
            };
            let message = if text.trim().is_empty() {
                format!("the server responded with HTTP {code}")
            } else {
                text.trim().to_string()
            };
            Error::Api(Box::new(Status::failure(code, reason, message)))
        }
    }
}
