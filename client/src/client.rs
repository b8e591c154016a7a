//! The HTTP layer: one connection pool to the API server, JSON in and out, `Status` errors.
//!
//! Beyond plain JSON, a request may ask for another representation with its own `Accept` header
//! ([`RequestOptions::accept`], e.g. [`ACCEPT_TABLE`] for the server-side Tables of
//! `kubectl get`); `Warning` response headers are handed to a [`WarningHandler`] (client-go's
//! `WarningHandler`); and a refused connection is [`Error::ConnectionRefused`], so a CLI can say
//! "is the server running?" instead of a transport error.

use std::sync::Arc;
use std::time::Duration;

use api::Status;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// What kubectl sends to get a `meta.k8s.io/v1` Table, falling back to plain JSON.
pub const ACCEPT_TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// Called with the text of each `Warning: 299 - "…"` header a response carries (deprecations,
/// unknown fields, …): client-go's `WarningHandler`. The default ignores them.
pub type WarningHandler = Arc<dyn Fn(&str) + Send + Sync>;

/// A handle on the API server. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    base: String,
    /// `host:port` of the server, for [`Error::ConnectionRefused`].
    host: String,
    http: reqwest::Client,
    /// For watches and log streams: no overall timeout.
    streaming: reqwest::Client,
    user_agent: String,
    warnings: Option<WarningHandler>,
}

/// Per-request options beyond method, path and body.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestOptions<'a> {
    /// The `Accept` header; `application/json` when None.
    pub accept: Option<&'a str>,
    /// No overall timeout (watches, followed logs): the body may stream for as long as it likes.
    pub streaming: bool,
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
        let url = url::Url::parse(&base)
            .map_err(|e| Error::Transport(format!("invalid server URL {server:?}: {e}")))?;
        let host = match (url.host_str(), url.port_or_known_default()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => {
                return Err(Error::Transport(format!(
                    "invalid server URL {server:?}: no host"
                )));
            }
        };
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
                host,
                http: build(Some(Duration::from_secs(60)))?,
                streaming: build(None)?,
                user_agent: user_agent.to_string(),
                warnings: None,
            }),
        })
    }

    /// The same client, handing every `Warning` header to `handler` (kubectl prints them as
    /// `Warning: …` on stderr).
    pub fn with_warning_handler(self, handler: impl Fn(&str) + Send + Sync + 'static) -> Self {
        let i = &self.inner;
        Client {
            inner: Arc::new(Inner {
                base: i.base.clone(),
                host: i.host.clone(),
                http: i.http.clone(),
                streaming: i.streaming.clone(),
                user_agent: i.user_agent.clone(),
                warnings: Some(Arc::new(handler)),
            }),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// `host:port` of the API server (`127.0.0.1:8080`).
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    fn builder(
        &self,
        method: Method,
        path_and_query: &str,
        opts: RequestOptions<'_>,
    ) -> reqwest::RequestBuilder {
        let http = if opts.streaming {
            &self.inner.streaming
        } else {
            &self.inner.http
        };
        http.request(method, format!("{}{}", self.inner.base, path_and_query))
            .header(reqwest::header::USER_AGENT, &self.inner.user_agent)
            .header(
                reqwest::header::ACCEPT,
                opts.accept.unwrap_or("application/json"),
            )
    }

    /// Send a request and return the raw response when it succeeded (2xx), else the `Status`.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Body<'_>,
        streaming: bool,
    ) -> Result<reqwest::Response> {
        let opts = RequestOptions {
            accept: None,
            streaming,
        };
        self.send_with(method, path_and_query, body, opts).await
    }

    /// [`Client::send`] with per-request options (another `Accept` header).
    pub async fn send_with(
        &self,
        method: Method,
        path_and_query: &str,
        body: Body<'_>,
        opts: RequestOptions<'_>,
    ) -> Result<reqwest::Response> {
        let mut b = self.builder(method, path_and_query, opts);
        match body {
            Body::None => {}
            Body::Json(v) => b = b.json(v),
            Body::Patch(v, ct) => {
                b = b
                    .header(reqwest::header::CONTENT_TYPE, ct)
                    .body(serde_json::to_vec(v).map_err(|e| Error::Decode(e.to_string()))?)
            }
        }
        let resp = b.send().await.map_err(|e| self.transport_error(e))?;
        if let Some(handler) = &self.inner.warnings {
            for w in resp.headers().get_all("Warning") {
                if let Some(text) = w.to_str().ok().and_then(warning_text) {
                    handler(&text);
                }
            }
        }
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(status_error(resp).await)
    }

    /// A failed send as an [`Error`]: a refused connection names the server's `host:port`;
    /// other failures keep reqwest's message with its innermost cause.
    fn transport_error(&self, e: reqwest::Error) -> Error {
        let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
        let mut innermost = None;
        while let Some(err) = source {
            if let Some(io) = err.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::ConnectionRefused
            {
                return Error::ConnectionRefused {
                    host: self.inner.host.clone(),
                };
            }
            innermost = Some(err.to_string());
            source = err.source();
        }
        if innermost
            .as_deref()
            .is_some_and(|m| m.to_ascii_lowercase().contains("connection refused"))
        {
            return Error::ConnectionRefused {
                host: self.inner.host.clone(),
            };
        }
        if e.is_decode() {
            return Error::Decode(e.to_string());
        }
        match innermost {
            Some(cause) if !e.to_string().contains(&cause) => {
                Error::Transport(format!("{e}: {cause}"))
            }
            _ => Error::Transport(e.to_string()),
        }
    }

    /// Send a request and decode the JSON response.
    pub async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Body<'_>,
    ) -> Result<T> {
        self.request_with_options(method, path_and_query, body, RequestOptions::default())
            .await
    }

    /// [`Client::request`] with per-request options: `accept: Some(ACCEPT_TABLE)` asks for a
    /// Table (a server without Tables answers plain JSON).
    pub async fn request_with_options<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Body<'_>,
        opts: RequestOptions<'_>,
    ) -> Result<T> {
        let resp = self.send_with(method, path_and_query, body, opts).await?;
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(e))?;
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

/// The text of a `Warning: 299 - "text"` header (RFC 7234), as kubectl prints it; None for other
/// warning codes.
pub fn warning_text(header: &str) -> Option<String> {
    let rest = header.strip_prefix("299 ")?;
    let rest = rest
        .split_once(' ')
        .map(|(_agent, t)| t)
        .unwrap_or(rest)
        .trim();
    let Some(quoted) = rest.strip_prefix('"') else {
        return Some(rest.to_string());
    };
    let mut out = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '"' => break,
            c => out.push(c),
        }
    }
    Some(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_headers() {
        assert_eq!(
            warning_text(r#"299 - "unknown field \"spec.x\"""#).as_deref(),
            Some(r#"unknown field "spec.x""#)
        );
        assert_eq!(warning_text("299 - plain").as_deref(), Some("plain"));
        assert_eq!(warning_text("199 - \"misc\""), None);
    }

    #[test]
    fn server_urls_name_their_host() {
        let host = |s: &str| Client::new(s, "t").map(|c| c.host().to_string()).ok();
        assert_eq!(
            host("http://127.0.0.1:8080/"),
            Some("127.0.0.1:8080".into())
        );
        assert_eq!(host("https://example.com"), Some("example.com:443".into()));
        assert!(Client::new("not a url", "t").is_err());
    }

    #[tokio::test]
    async fn refused_connections_are_recognised() {
        // Bind then drop: nothing listens on the port afterwards.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind");
        let c = Client::new(&format!("http://127.0.0.1:{port}"), "t").expect("client");
        let err = c
            .request::<serde_json::Value>(Method::GET, "/version", Body::None)
            .await
            .expect_err("nothing listens");
        assert!(
            matches!(&err, Error::ConnectionRefused { host } if *host == format!("127.0.0.1:{port}")),
            "{err:?}"
        );
        assert!(err.is_transport());
    }
}
