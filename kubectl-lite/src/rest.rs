//! The HTTP layer to the API server, as kubectl's REST client uses it: JSON in and out, server-side
//! Tables for `get` (`Accept: application/json;as=Table;…`), `Status` bodies turned into
//! [`Error::Api`], and a refused connection told apart from other transport failures.
//!
//! `client::Client` fixes the `Accept` header and flattens transport errors to strings, so
//! kubectl-lite has this thin layer of its own (see the crate docs for what should move).

use std::time::Duration;

use api::meta::WatchEvent;
use futures::{Stream, StreamExt};
use reqwest::Method;
use serde_json::Value;

use crate::errors::{Error, Result};

/// What kubectl sends to get a human-readable Table, falling back to plain JSON.
pub const ACCEPT_TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// kubectl's `User-Agent` shape: `kubectl/v1.37.0 (linux/amd64) kubernetes/…`.
const USER_AGENT: &str = concat!("kubectl-lite/v", env!("CARGO_PKG_VERSION"));

/// The events of a watch, in order; it ends when the server closes the stream.
pub type WatchStream = std::pin::Pin<Box<dyn Stream<Item = Result<WatchEvent<Value>>> + Send>>;

/// A handle on one API server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Rest {
    base: String,
    /// `host:port`, for "The connection to the server … was refused".
    host: String,
    http: reqwest::Client,
    /// Watches have no overall timeout.
    streaming: reqwest::Client,
}

impl Rest {
    /// `server`: a base URL such as `http://127.0.0.1:8080`.
    pub fn new(server: &str) -> Result<Rest> {
        let base = server.trim_end_matches('/').to_string();
        let url = url::Url::parse(&base)
            .map_err(|e| Error::msg(format!("invalid server URL {server:?}: {e}")))?;
        let host = match (url.host_str(), url.port_or_known_default()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => {
                return Err(Error::msg(format!(
                    "invalid server URL {server:?}: no host"
                )));
            }
        };
        let build = |timeout: Option<Duration>| {
            let mut b = reqwest::Client::builder()
                .no_proxy()
                .connect_timeout(Duration::from_secs(10));
            if let Some(t) = timeout {
                b = b.timeout(t);
            }
            b.build()
                .map_err(|e| Error::Unreachable(format!("failed to build the HTTP client: {e}")))
        };
        Ok(Rest {
            base,
            host,
            http: build(Some(Duration::from_secs(60)))?,
            streaming: build(None)?,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Send a request; the response when it is 2xx, else the server's `Status` as an error.
    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        accept: &str,
        body: Option<(&Value, &str)>,
        streaming: bool,
    ) -> Result<reqwest::Response> {
        let http = if streaming {
            &self.streaming
        } else {
            &self.http
        };
        let mut req = http
            .request(method, format!("{}{}", self.base, path_and_query))
            .header(reqwest::header::USER_AGENT, USER_AGENT)
            .header(reqwest::header::ACCEPT, accept);
        if let Some((v, content_type)) = body {
            let bytes = serde_json::to_vec(v)
                .map_err(|e| Error::msg(format!("failed to encode the request: {e}")))?;
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        let resp = req.send().await.map_err(|e| self.transport_error(&e))?;
        for w in resp.headers().get_all("Warning") {
            if let Some(text) = w.to_str().ok().and_then(warning_text) {
                crate::printer::stderr(&format!("Warning: {text}\n"));
            }
        }
        if resp.status().is_success() {
            return Ok(resp);
        }
        match client::client::status_error(resp).await {
            client::Error::Api(s) => Err(Error::Api(s)),
            other => Err(Error::Unreachable(other.to_string())),
        }
    }

    async fn json(
        &self,
        method: Method,
        path_and_query: &str,
        accept: &str,
        body: Option<(&Value, &str)>,
    ) -> Result<Value> {
        let resp = self
            .send(method, path_and_query, accept, body, false)
            .await?;
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(&e))?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::msg(format!(
                "failed to decode the API server's response: {e}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))
        })
    }

    pub async fn get(&self, path_and_query: &str) -> Result<Value> {
        self.json(Method::GET, path_and_query, "application/json", None)
            .await
    }

    /// GET asking for a `meta.k8s.io/v1` Table (the server may still answer plain JSON).
    pub async fn get_table(&self, path_and_query: &str) -> Result<Value> {
        self.json(Method::GET, path_and_query, ACCEPT_TABLE, None)
            .await
    }

    pub async fn post(&self, path_and_query: &str, body: &Value) -> Result<Value> {
        self.json(
            Method::POST,
            path_and_query,
            "application/json",
            Some((body, "application/json")),
        )
        .await
    }

    /// PATCH with a content type: `application/strategic-merge-patch+json`, …
    pub async fn patch(
        &self,
        path_and_query: &str,
        body: &Value,
        content_type: &str,
    ) -> Result<Value> {
        self.json(
            Method::PATCH,
            path_and_query,
            "application/json",
            Some((body, content_type)),
        )
        .await
    }

    /// DELETE with a `DeleteOptions` body.
    pub async fn delete(&self, path_and_query: &str, options: &Value) -> Result<Value> {
        self.json(
            Method::DELETE,
            path_and_query,
            "application/json",
            Some((options, "application/json")),
        )
        .await
    }

    /// `?watch=true`: a stream of events, ending when the server closes it.
    pub async fn watch(&self, path_and_query: &str) -> Result<WatchStream> {
        let resp = self
            .send(Method::GET, path_and_query, "application/json", None, true)
            .await?;
        let events = client::ndjson::decode::<WatchEvent<Value>, _, _>(resp.bytes_stream());
        Ok(Box::pin(
            events.map(|r| r.map_err(|e| Error::Unreachable(e.to_string()))),
        ))
    }

    /// kubectl's wording for a transport error: refused connections name the host.
    fn transport_error(&self, e: &reqwest::Error) -> Error {
        let mut innermost = e.to_string();
        let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
        while let Some(err) = source {
            if let Some(io) = err.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::ConnectionRefused
            {
                return Error::ConnectionRefused {
                    host: self.host.clone(),
                };
            }
            innermost = err.to_string();
            source = err.source();
        }
        if innermost
            .to_ascii_lowercase()
            .contains("connection refused")
        {
            return Error::ConnectionRefused {
                host: self.host.clone(),
            };
        }
        if e.is_timeout() {
            return Error::Unreachable(format!(
                "net/http: request canceled (Client.Timeout exceeded): {innermost}"
            ));
        }
        Error::Unreachable(innermost)
    }
}

/// The text of a `Warning: 299 - "text"` header (RFC 7234), as kubectl prints it.
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

/// `?a=b&c=d`, percent-encoded; empty when there are no parameters.
pub fn query(params: &[(&str, String)]) -> String {
    if params.is_empty() {
        return String::new();
    }
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    format!("?{}", s.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_encoded() {
        assert_eq!(query(&[]), "");
        assert_eq!(
            query(&[
                ("labelSelector", "app=web,tier in (a)".into()),
                ("limit", "500".into())
            ]),
            "?labelSelector=app%3Dweb%2Ctier+in+%28a%29&limit=500"
        );
    }

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
        assert_eq!(
            Rest::new("http://127.0.0.1:8080/").map(|r| r.host).ok(),
            Some("127.0.0.1:8080".into())
        );
        assert_eq!(
            Rest::new("https://example.com").map(|r| r.host).ok(),
            Some("example.com:443".into())
        );
        assert!(Rest::new("not a url").is_err());
    }

    #[tokio::test]
    async fn refused_connections_are_recognised() {
        // Bind then drop: nothing listens on the port afterwards.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind");
        let rest = Rest::new(&format!("http://127.0.0.1:{port}")).expect("rest");
        let err = rest.get("/version").await.expect_err("nothing listens");
        assert!(
            matches!(&err, Error::ConnectionRefused { host } if *host == format!("127.0.0.1:{port}")),
            "{err:?}"
        );
    }
}
