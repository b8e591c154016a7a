//! The kubelet's HTTP server, what the API server proxies `pods/{name}/log` and
//! `pods/{name}/exec` to:
//! - `GET /healthz`;
//! - `GET /containerLogs/{namespace}/{pod}/{container}` with `follow`, `tailLines`,
//!   `timestamps`, `previous`, `limitBytes`, `sinceSeconds` and `sinceTime`;
//! - `GET|POST /exec/{namespace}/{pod}/{container}` with `command` (repeated), `input`,
//!   `output`, `error`, `tty` (the real kubelet's names; `stdin`, `stdout`, `stderr` too),
//!   upgraded to a WebSocket speaking `v5.channel.k8s.io` or `v4.channel.k8s.io` (the session
//!   itself is [`crate::exec`]).
//!
//! Answers are `text/plain`; errors too (404 unknown pod/container, 400 bad request), always
//! before any upgrade.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use api::remotecommand::{self as rc, Protocol};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;

use crate::dirs::{Dirs, log_files};
use crate::exec;
use crate::logs::{self, LogHandle, LogOptions, Renderer};
use crate::registry::Registry;
use crate::runtime::{ExecRequest, ExecTarget, Runtime};

#[derive(Clone)]
pub struct ServerState {
    pub node_name: String,
    pub registry: Registry,
    pub dirs: Dirs,
    /// Runs `/exec` commands.
    pub runtime: Arc<dyn Runtime>,
    /// Ends follow streams and exec sessions when the kubelet stops.
    pub shutdown: CancellationToken,
}

pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .route(
            "/exec/{namespace}/{pod}/{container}",
            get(container_exec).post(container_exec),
        )
        .route(
            "/portForward/{namespace}/{pod}",
            get(port_forward).post(port_forward),
        )
        .with_state(Arc::new(state))
}

/// Serve until `shutdown`.
pub async fn serve(
    listener: std::net::TcpListener,
    state: ServerState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

fn text(code: StatusCode, msg: impl Into<String>) -> Response {
    let mut r = Response::new(Body::from(format!("{}\n", msg.into())));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn flag(q: &HashMap<String, String>, k: &str) -> Result<bool, String> {
    match q.get(k).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("") | Some("true") | Some("1") => Ok(true),
        Some(v) => Err(format!(
            "invalid value {v:?} for {k}: must be true or false"
        )),
    }
}

/// Parse the query of a logs request.
pub fn parse_options(
    q: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<LogOptions, String> {
    let int = |k: &str| -> Result<Option<i64>, String> {
        q.get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| format!("invalid value {v:?} for {k}: must be an integer"))
            })
            .transpose()
    };
    let tail_lines = int("tailLines")?.and_then(|n| usize::try_from(n).ok());
    let limit_bytes = match int("limitBytes")? {
        Some(n) if n <= 0 => return Err("limitBytes must be greater than zero".into()),
        Some(n) => usize::try_from(n).ok(),
        None => None,
    };
    let since = match (int("sinceSeconds")?, q.get("sinceTime")) {
        (Some(_), Some(_)) => {
            return Err("at most one of sinceTime or sinceSeconds may be specified".into());
        }
        (Some(s), None) if s <= 0 => {
            return Err("sinceSeconds must be greater than zero".into());
        }
        (Some(s), None) => Some(now - chrono::Duration::seconds(s)),
        (None, Some(t)) => Some(
            DateTime::parse_from_rfc3339(t)
                .map_err(|_| format!("invalid sinceTime {t:?}: must be RFC 3339"))?
                .with_timezone(&Utc),
        ),
        (None, None) => None,
    };
    Ok(LogOptions {
        follow: flag(q, "follow")?,
        previous: flag(q, "previous")?,
        timestamps: flag(q, "timestamps")?,
        tail_lines,
        limit_bytes,
        since,
    })
}

/// Parse the query of an exec request: `command` (repeated, in order), and which streams the
/// client wants. With a TTY, stderr is merged into stdout (so not asked for separately).
pub fn parse_exec_query(query: Option<&str>) -> Result<ExecRequest, String> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let q: HashMap<String, String> = pairs.iter().cloned().collect();
    // The kubelet's own names first (`input`…), the API's (`stdin`…) as well.
    let either = |a: &str, b: &str| -> Result<bool, String> { Ok(flag(&q, a)? || flag(&q, b)?) };
    let command: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v)
        .collect();
    let tty = flag(&q, "tty")?;
    let mut req = ExecRequest {
        stdin: either("input", "stdin")?,
        stdout: either("output", "stdout")?,
        stderr: either("error", "stderr")?,
        tty,
        command,
    };
    if req.tty {
        req.stderr = false;
    }
    if !req.stdin && !req.stdout && !req.stderr {
        return Err("you must specify at least 1 of stdin, stdout, stderr".into());
    }
    if req.command.is_empty() {
        return Err("you must specify at least one command for the container".into());
    }
    Ok(req)
}

/// Whether a header holds `token` in its comma-separated list (case-insensitively).
fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The protocol to speak and the `Sec-WebSocket-Accept` value, or why the request cannot be
/// upgraded to an exec WebSocket.
pub fn exec_handshake(headers: &HeaderMap) -> Result<(Protocol, String), String> {
    let websocket = header_has(headers, header::UPGRADE, "websocket")
        && header_has(headers, header::CONNECTION, "upgrade");
    if !websocket {
        if header_has(headers, header::UPGRADE, "SPDY/3.1") {
            return Err(
                "SPDY is not supported: exec needs a WebSocket client (v5.channel.k8s.io or v4.channel.k8s.io)"
                    .into(),
            );
        }
        return Err("Upgrade request required: exec needs a WebSocket connection".into());
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err("unsupported WebSocket version: only version 13 is supported".into());
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Err("the WebSocket request has no Sec-WebSocket-Key".into());
    };
    let offered = rc::offered_protocols(
        headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let protocol =
        rc::negotiate(&offered).ok_or_else(|| rc::unsupported_protocols_message(&offered))?;
    Ok((protocol, derive_accept_key(key.as_bytes())))
}

/// `/exec/{namespace}/{pod}/{container}`: check everything, then upgrade and run the session.
async fn container_exec(
    State(s): State<Arc<ServerState>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    mut req: axum::extract::Request,
) -> Response {
    let request = match parse_exec_query(req.uri().query()) {
        Ok(r) => r,
        Err(m) => return text(StatusCode::BAD_REQUEST, m),
    };
    let target = match exec_target(&s, &ns, &pod, &container) {
        Ok(t) => t,
        Err((code, m)) => return text(code, m),
    };
    let (protocol, accept) = match exec_handshake(req.headers()) {
        Ok(h) => h,
        Err(m) => return text(StatusCode::BAD_REQUEST, m),
    };
    let session = exec::Session {
        runtime: s.runtime.clone(),
        target,
        request,
        protocol,
        what: format!("{ns}/{pod}/{container}"),
    };
    let shutdown = s.shutdown.clone();
    accept_websocket(&mut req, protocol.name(), &accept, move |ws| {
        exec::serve(ws, session, shutdown)
    })
}

/// `/portForward/{namespace}/{pod}`: a WebSocket carrying SPDY (kubectl's tunneled
/// port-forward), each forwarded connection going to the pod's IP.
async fn port_forward(
    State(s): State<Arc<ServerState>>,
    Path((ns, pod)): Path<(String, String)>,
    mut req: axum::extract::Request,
) -> Response {
    let Some(entry) = s.registry.get(&ns, &pod) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("pod {ns}/{pod} not found on node {}", s.node_name),
        );
    };
    let Some(ip) = entry.ip else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("pod {ns}/{pod} has no IP yet"),
        );
    };
    let headers = req.headers();
    let websocket = header_has(headers, header::UPGRADE, "websocket")
        && header_has(headers, header::CONNECTION, "upgrade");
    if !websocket {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "port-forward needs a WebSocket carrying SPDY ({}); plain SPDY upgrades are not supported",
                crate::portforward::TUNNEL_PROTOCOL
            ),
        );
    }
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
        .collect();
    if !offered
        .iter()
        .any(|p| p == crate::portforward::TUNNEL_PROTOCOL)
    {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "unsupported port-forward protocols {offered:?}: only {} is supported",
                crate::portforward::TUNNEL_PROTOCOL
            ),
        );
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return text(
            StatusCode::BAD_REQUEST,
            "the WebSocket request has no Sec-WebSocket-Key".to_string(),
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let shutdown = s.shutdown.clone();
    let what = format!("{ns}/{pod}");
    accept_websocket(
        &mut req,
        crate::portforward::TUNNEL_PROTOCOL,
        &accept,
        move |ws| crate::portforward::serve(ws, ip, what, shutdown),
    )
}

/// Answer a WebSocket handshake with `101` (the chosen subprotocol, the accept key) and run
/// `serve` on the connection once it is upgraded.
fn accept_websocket<F, Fut>(
    req: &mut axum::extract::Request,
    protocol: &'static str,
    accept: &str,
    serve: F,
) -> Response
where
    F: FnOnce(WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(%protocol, error = %e, "WebSocket upgrade failed");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(exec::websocket_config()),
        )
        .await;
        serve(ws).await;
    });
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol),
    );
    if let Ok(v) = HeaderValue::from_str(accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// The running container an exec goes to, or the error to answer.
fn exec_target(
    s: &ServerState,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<ExecTarget, (StatusCode, String)> {
    let Some(entry) = s.registry.get(ns, pod) else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("pod {ns}/{pod} not found on node {}", s.node_name),
        ));
    };
    let Some((_, c)) = entry.containers.iter().find(|(n, _)| n == container) else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("container {container:?} not found in pod {ns}/{pod}"),
        ));
    };
    match &c.exec {
        Some(t) => Ok(t.clone()),
        None if c.waiting_reason.is_empty() => Err((
            StatusCode::BAD_REQUEST,
            format!("container {container:?} in pod {pod:?} is not running"),
        )),
        None => Err((
            StatusCode::BAD_REQUEST,
            format!(
                "container {container:?} in pod {pod:?} is not running: {}",
                c.waiting_reason
            ),
        )),
    }
}

fn run_of(path: &std::path::Path) -> Option<i32> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

async fn container_logs(
    State(s): State<Arc<ServerState>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let opts = match parse_options(&q, Utc::now()) {
        Ok(o) => o,
        Err(m) => return text(StatusCode::BAD_REQUEST, m),
    };
    let Some(entry) = s.registry.get(&ns, &pod) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("pod {ns}/{pod} not found on node {}", s.node_name),
        );
    };
    let Some((_, c)) = entry.containers.iter().find(|(n, _)| *n == container) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("container {container:?} not found in pod {ns}/{pod}"),
        );
    };
    let files = log_files(&s.dirs.container_logs(&entry.uid, &container));
    let current: Option<(PathBuf, Arc<LogHandle>)> = match &c.log {
        Some(h) => Some((h.path.clone(), h.clone())),
        None => files
            .last()
            .map(|(_, p)| (p.clone(), LogHandle::closed(p.clone()))),
    };
    let (path, handle) = if opts.previous {
        let cur_run = current
            .as_ref()
            .and_then(|(p, _)| run_of(p))
            .unwrap_or(c.restart_count);
        match files.iter().rev().find(|(n, _)| *n < cur_run) {
            Some((_, p)) => (p.clone(), LogHandle::closed(p.clone())),
            None => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("previous terminated container {container:?} in pod {pod:?} not found"),
                );
            }
        }
    } else {
        match current {
            Some(x) => x,
            None => {
                let reason = if c.waiting_reason.is_empty() {
                    "ContainerCreating"
                } else {
                    c.waiting_reason.as_str()
                };
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("container {container:?} in pod {pod:?} is waiting to start: {reason}"),
                );
            }
        }
    };
    // Read what is there now, before answering: a follower sees every line written after
    // its request was answered.
    let stream = match open_log(path, handle, opts).await {
        Ok(st) => st,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read the log of container {container:?}: {e}"),
            );
        }
    };
    let stream = stream.take_until(s.shutdown.clone().cancelled_owned());
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Snapshot the log now; the stream renders it and, with `follow`, what is written next.
async fn open_log(
    path: PathBuf,
    handle: Arc<LogHandle>,
    opts: LogOptions,
) -> std::io::Result<impl futures::Stream<Item = std::io::Result<Bytes>> + Send> {
    let mut progress = handle.subscribe();
    // Whether the writer was done before we read: then what we read is everything.
    let closed = progress.borrow_and_update().closed;
    let mut data = Vec::new();
    let file = match open_existing(&path).await? {
        Some(mut f) => {
            f.read_to_end(&mut data).await?;
            Some(f)
        }
        None => None,
    };
    Ok(log_stream(path, progress, closed, file, data, opts))
}

/// The log file at `path`, or `None` while it does not exist (not written yet, or being
/// rotated: renamed away and not yet created again).
async fn open_existing(path: &std::path::Path) -> std::io::Result<Option<tokio::fs::File>> {
    match tokio::fs::File::open(path).await {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `a` and `b` are the same file (not just the same path).
async fn same_file(a: &tokio::fs::File, b: &tokio::fs::File) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (a.metadata().await?, b.metadata().await?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

/// Render the complete records in `bytes`; returns the output and how many bytes they took.
fn render_complete(bytes: &[u8], renderer: &mut Renderer) -> (Vec<u8>, usize) {
    let (records, used) = logs::parse_records(bytes);
    let mut out = Vec::new();
    for r in &records {
        renderer.push(r, &mut out);
    }
    (out, used)
}

/// The log as the reader asked for it; with `follow`, new lines as they are written, until
/// the container's output ends (it exited) or the reader goes away.
///
/// `file` is kept open and read on from where `data` ended: after a rotation it still reads
/// the old file (renamed to `.1`) to its end before opening the new one, so a progress update
/// seen late never makes it read the new file at the old one's offset.
fn log_stream(
    path: PathBuf,
    mut progress: watch::Receiver<logs::Progress>,
    mut closed: bool,
    mut file: Option<tokio::fs::File>,
    data: Vec<u8>,
    opts: LogOptions,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send {
    async_stream::try_stream! {
        let mut renderer = Renderer::new(&opts);
        let (out, used) = logs::render(&data, &opts, &mut renderer);
        if !out.is_empty() {
            yield Bytes::from(out);
        }
        if !opts.follow {
            return;
        }
        let mut carry: Vec<u8> = data[used..].to_vec();
        let mut generation = progress.borrow().generation;
        while renderer.wants_more() && !closed {
            let now = if progress.changed().await.is_err() {
                logs::Progress { closed: true, ..*progress.borrow() }
            } else {
                *progress.borrow_and_update()
            };
            closed = now.closed;
            if now.generation != generation {
                generation = now.generation;
                // Rotated: finish the old file, then go on from the start of the new one
                // (files rotated away in between are skipped, as with the kubelet). The file
                // held may already be the new one (opened just after the rotation): keep it.
                let new = open_existing(&path).await?;
                let same = match (file.as_ref(), new.as_ref()) {
                    (Some(a), Some(b)) => same_file(a, b).await?,
                    _ => false,
                };
                if !same {
                    if let Some(old) = file.as_mut() {
                        old.read_to_end(&mut carry).await?;
                        let (out, _) = render_complete(&carry, &mut renderer);
                        if !out.is_empty() {
                            yield Bytes::from(out);
                        }
                    }
                    carry.clear();
                    file = new;
                }
            }
            if file.is_none() {
                file = open_existing(&path).await?;
            }
            let Some(f) = file.as_mut() else { continue };
            f.read_to_end(&mut carry).await?;
            let (out, used) = render_complete(&carry, &mut renderer);
            carry.drain(..used);
            if !out.is_empty() {
                yield Bytes::from(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_log_options() {
        let now = Utc::now();
        let o = parse_options(
            &q(&[("follow", "true"), ("tailLines", "5"), ("timestamps", "1")]),
            now,
        )
        .unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!(o.tail_lines, Some(5));
        let o = parse_options(&q(&[("tailLines", "-1"), ("sinceSeconds", "10")]), now).unwrap();
        assert_eq!(o.tail_lines, None);
        assert_eq!(o.since, Some(now - chrono::Duration::seconds(10)));
        assert!(parse_options(&q(&[("follow", "maybe")]), now).is_err());
        assert!(parse_options(&q(&[("tailLines", "x")]), now).is_err());
        assert!(parse_options(&q(&[("limitBytes", "0")]), now).is_err());
        assert!(parse_options(&q(&[("sinceSeconds", "1"), ("sinceTime", "x")]), now).is_err());
        let o = parse_options(&q(&[("sinceTime", "2024-01-01T00:00:00Z")]), now).unwrap();
        assert!(o.since.is_some());
    }

    #[test]
    fn parses_exec_queries() {
        let r = parse_exec_query(Some(
            "command=sh&command=-c&command=echo+%22a+b%22%3B+%C3%A9&input=1&output=1&error=1",
        ))
        .unwrap();
        assert_eq!(r.command, ["sh", "-c", "echo \"a b\"; é"]);
        assert!(r.stdin && r.stdout && r.stderr && !r.tty);
        // The API's names work too; with a TTY stderr is merged into stdout.
        let r = parse_exec_query(Some(
            "command=bash&stdin=true&stdout=true&stderr=true&tty=true",
        ))
        .unwrap();
        assert!(r.stdin && r.stdout && !r.stderr && r.tty);
        assert_eq!(
            parse_exec_query(Some("command=ls")).unwrap_err(),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
        assert_eq!(
            parse_exec_query(Some("output=1")).unwrap_err(),
            "you must specify at least one command for the container"
        );
        assert!(parse_exec_query(Some("command=ls&output=yes")).is_err());
        // Hostile encodings decode lossily, never panic.
        let r = parse_exec_query(Some("command=%FF%FE%&command=%zz&output=1")).unwrap();
        assert_eq!(r.command.len(), 2);
        assert!(parse_exec_query(None).is_err());
    }

    #[test]
    fn exec_handshakes() {
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(
                    header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            m
        };
        let ws = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        let mut with = ws.to_vec();
        with.push((
            "sec-websocket-protocol",
            "v4.channel.k8s.io, v5.channel.k8s.io",
        ));
        let (p, accept) = exec_handshake(&h(&with)).unwrap();
        assert_eq!(p, Protocol::V5);
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "RFC 6455's example");
        let err = exec_handshake(&h(&ws)).unwrap_err();
        assert!(
            err.starts_with("requested protocol(s) are not supported"),
            "{err}"
        );
        let err =
            exec_handshake(&h(&[("connection", "Upgrade"), ("upgrade", "SPDY/3.1")])).unwrap_err();
        assert!(err.starts_with("SPDY is not supported"), "{err}");
        assert!(
            exec_handshake(&h(&[]))
                .unwrap_err()
                .starts_with("Upgrade request required")
        );
    }

    #[tokio::test]
    async fn follow_streams_until_the_writer_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let (mut w, r) = tokio::io::duplex(64);
        let handle = logs::capture(&path, u64::MAX, r, tokio::io::empty()).unwrap();
        use tokio::io::AsyncWriteExt;
        w.write_all(b"one\ntwo\n").await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !std::fs::read_to_string(&path)
            .unwrap_or_default()
            .contains(" F two")
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let opts = LogOptions {
            follow: true,
            tail_lines: Some(1),
            ..Default::default()
        };
        let mut stream = Box::pin(open_log(path.clone(), handle.clone(), opts).await.unwrap());
        let mut got = String::new();
        while !got.contains("two\n") {
            let b = stream.next().await.unwrap().unwrap();
            got.push_str(&String::from_utf8_lossy(&b));
        }
        assert_eq!(got, "two\n", "tailLines=1 shows only the last line");
        w.write_all(b"three\npartial").await.unwrap();
        drop(w);
        while let Some(b) = stream.next().await {
            got.push_str(&String::from_utf8_lossy(&b.unwrap()));
        }
        assert_eq!(got, "two\nthree\npartial");
    }

    /// The writer's progress can be seen late, and a rotation renames the file before it
    /// creates the new one: a follower neither errors nor reads the new file at the old offset.
    #[tokio::test]
    async fn follow_survives_late_progress_and_a_missing_file_mid_rotation() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let rec =
            |s: &str| logs::format_record(Utc::now(), logs::Stream::Stdout, false, s.as_bytes());
        let append = |p: &std::path::Path, s: &str| {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .unwrap();
            f.write_all(&rec(s)).unwrap();
        };
        append(&path, "old one");
        let handle = logs::LogHandle::mirror(path.clone(), 0);
        let opts = LogOptions {
            follow: true,
            ..Default::default()
        };
        let mut stream = Box::pin(open_log(path.clone(), handle.clone(), opts).await.unwrap());
        let mut got = String::new();
        let mut read_until = async |got: &mut String, want: &str| {
            while !got.ends_with(want) {
                let b = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
                    .await
                    .expect("more log in time")
                    .expect("the stream goes on")
                    .expect("no error");
                got.push_str(&String::from_utf8_lossy(&b));
            }
        };
        read_until(&mut got, "old one\n").await;
        // Rotated mid-way: renamed, not yet created again; the progress says so late.
        append(&path, "old two");
        std::fs::rename(&path, logs::rotated_path(&path)).unwrap();
        handle.set_progress(logs::Progress {
            bytes: 1,
            closed: false,
            generation: 0,
        });
        read_until(&mut got, "old two\n").await;
        // The new file is longer than the old one was, and the progress is still stale.
        append(
            &path,
            "new one, a much longer line than any of the old file's lines",
        );
        handle.set_progress(logs::Progress {
            bytes: 2,
            closed: false,
            generation: 0,
        });
        handle.set_progress(logs::Progress {
            bytes: 3,
            closed: false,
            generation: 1,
        });
        append(&path, "new two");
        handle.set_progress(logs::Progress {
            bytes: 4,
            closed: true,
            generation: 1,
        });
        read_until(&mut got, "new two\n").await;
        assert_eq!(
            got,
            "old one\nold two\nnew one, a much longer line than any of the old file's lines\nnew two\n"
        );
    }

    #[tokio::test]
    async fn follow_goes_on_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let (mut w, r) = tokio::io::duplex(64);
        let handle = logs::capture(&path, 150, r, tokio::io::empty()).unwrap();
        let opts = LogOptions {
            follow: true,
            ..Default::default()
        };
        let mut stream = Box::pin(open_log(path.clone(), handle.clone(), opts).await.unwrap());
        use tokio::io::AsyncWriteExt;
        let mut got = String::new();
        let mut want = String::new();
        for i in 0..20 {
            let line = format!("line {i:02}\n");
            w.write_all(line.as_bytes()).await.unwrap();
            want.push_str(&line);
            while !got.ends_with(&line) {
                let b = stream.next().await.unwrap().unwrap();
                got.push_str(&String::from_utf8_lossy(&b));
            }
        }
        assert_eq!(got, want, "every line once, in order");
        assert!(handle.subscribe().borrow().generation >= 3);
        assert!(logs::rotated_path(&path).exists());
    }
}
