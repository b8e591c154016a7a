//! `GET|POST pods/NAME/exec` (`kubectl exec`): checked here, then passed through to the kubelet
//! of the pod's node, as Kubernetes' upgrade-aware proxy does.
//!
//! Everything that can be refused is refused before any upgrade, as a `Status`: no `command`
//! (400), an unknown pod (404), a container that is not the pod's or not named when the pod has
//! several (400), a pod on no node (400), a kubelet that cannot be reached (500), and what the
//! kubelet refuses (its 404/400 with its
//! message, e.g. a container that is not running, or a request that is no WebSocket
//! handshake it accepts — kubectl falls back to SPDY after a refused WebSocket, and the second
//! attempt must be refused for the same reason). The client's handshake is forwarded to the
//! kubelet's `/exec/{ns}/{pod}/{container}` — same `Sec-WebSocket-Key` and offered subprotocols
//! — and only once the kubelet switched protocols does the client get its `101`, with the kubelet's
//! `Sec-WebSocket-Accept` and chosen subprotocol: both legs speak the same protocol by
//! construction. From there the two connections are spliced byte for byte
//! (`copy_bidirectional`, a fixed buffer each way: a slow side stalls the other, nothing piles
//! up), until either side closes or the API server shuts down.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;

use super::subresource::{choose_container, get_pod, kubelet_address, node_of};
use crate::error::{ApiError, ApiResult};
use crate::handlers::Request;
use crate::request::{flag, query_all};
use crate::server::AppState;

/// How long connecting to a kubelet and getting its answer may take.
const KUBELET_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of a kubelet's error answer that is read.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The client's headers that make the upgrade, forwarded to the kubelet as they are: the
/// kubelet decides whether they make a WebSocket handshake it accepts (or says why not).
fn upgrade_headers(headers: &HeaderMap) -> Vec<(header::HeaderName, HeaderValue)> {
    let mut forward = Vec::new();
    for name in [
        header::CONNECTION,
        header::UPGRADE,
        header::SEC_WEBSOCKET_KEY,
        header::SEC_WEBSOCKET_VERSION,
        header::SEC_WEBSOCKET_PROTOCOL,
    ] {
        for v in headers.get_all(&name) {
            forward.push((name.clone(), v.clone()));
        }
    }
    forward
}

/// The kubelet's path and query for this exec (its parameter names: `input`, `output`,
/// `error`, `tty`).
fn kubelet_path(
    ns: &str,
    pod: &str,
    container: &str,
    command: &[String],
    q: &std::collections::HashMap<String, String>,
) -> String {
    let mut url = reqwest::Url::parse("http://kubelet/").expect("a constant URL");
    url.path_segments_mut()
        .expect("an http URL has path segments")
        .clear()
        .extend(["exec", ns, pod, container]);
    {
        let mut pairs = url.query_pairs_mut();
        for c in command {
            pairs.append_pair("command", c);
        }
        for (ours, theirs) in [
            ("stdin", "input"),
            ("stdout", "output"),
            ("stderr", "error"),
            ("tty", "tty"),
        ] {
            if flag(q, ours) {
                pairs.append_pair(theirs, "1");
            }
        }
    }
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    }
}

/// What a kubelet's refusal (its status and text) becomes for the client.
fn kubelet_refusal(code: StatusCode, text: &str) -> ApiError {
    let text = text.trim();
    match code {
        StatusCode::NOT_FOUND => ApiError::new(404, "NotFound", text),
        StatusCode::BAD_REQUEST => ApiError::bad_request(text),
        _ => ApiError::internal(format!("the kubelet answered {code}: {text}")),
    }
}

pub async fn exec(state: &AppState, req: Request) -> ApiResult<Response> {
    let t = &req.target;
    let name = t.name.clone().unwrap_or_default();
    let ns = t.namespace.clone().unwrap_or_default();
    let command = query_all(req.raw_query.as_deref(), "command");
    if command.is_empty() {
        return Err(ApiError::bad_request(
            "you must specify at least one command for the container",
        ));
    }
    let pod = get_pod(state, &req).await?;
    let container = choose_container(&pod, &name, req.q("container"))?;
    let node_name = node_of(&pod).to_string();
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let path = kubelet_path(&ns, &name, &container, &command, &req.query);
    let session = format!("exec {ns}/{name}/{container}");
    upgrade_to_kubelet(state, req, &node_name, &name, &path, session).await
}

/// Pass an upgrade (`exec`, `portforward`) through to the kubelet of `node_name` at `path`:
/// the client gets its `101` only once the kubelet switched protocols, then the two
/// connections are spliced byte for byte.
pub(super) async fn upgrade_to_kubelet(
    state: &AppState,
    mut req: Request,
    node_name: &str,
    pod: &str,
    path: &str,
    session: String,
) -> ApiResult<Response> {
    let node_name = node_name.to_string();
    let forward = upgrade_headers(&req.headers);
    let address = kubelet_address(state, &node_name, pod).await?;

    let dial = |e: String| ApiError::internal(format!("error dialing backend: {e}"));
    let tcp = tokio::time::timeout(KUBELET_TIMEOUT, tokio::net::TcpStream::connect(&address))
        .await
        .map_err(|_| dial(format!("dial tcp {address}: i/o timeout")))?
        .map_err(|e| dial(format!("dial tcp {address}: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| dial(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "kubelet connection ended");
        }
    });
    let mut backend_req = hyper::Request::builder()
        .method("GET")
        .uri(path)
        .header(header::HOST, &address);
    for (k, v) in forward {
        backend_req = backend_req.header(k, v);
    }
    let backend_req = backend_req
        .body(Empty::<Bytes>::new())
        .map_err(|e| ApiError::internal(format!("cannot build the kubelet request: {e}")))?;
    let resp = tokio::time::timeout(KUBELET_TIMEOUT, sender.send_request(backend_req))
        .await
        .map_err(|_| dial(format!("the kubelet at {address} did not answer in time")))?
        .map_err(|e| dial(e.to_string()))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let code = resp.status();
        let body = Limited::new(resp.into_body(), MAX_ERROR_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(kubelet_refusal(code, &String::from_utf8_lossy(&body)));
    }
    let Some(client_upgrade) = req.upgrade.take() else {
        return Err(ApiError::bad_request(
            "the connection cannot be upgraded (it needs HTTP/1.1)",
        ));
    };

    let mut out = Response::new(Body::empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = out.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    for name in [header::SEC_WEBSOCKET_ACCEPT, header::SEC_WEBSOCKET_PROTOCOL] {
        if let Some(v) = resp.headers().get(&name) {
            h.insert(name, v.clone());
        }
    }
    let protocol = resp
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let backend_upgrade = hyper::upgrade::on(resp);
    let shutdown = state.shutdown.clone();
    tracing::info!(%session, node = %node_name, %protocol, "proxying an upgraded connection to the kubelet");
    tokio::spawn(async move {
        let (client, backend) = tokio::join!(client_upgrade, backend_upgrade);
        let (client, backend) = match (client, backend) {
            (Ok(c), Ok(b)) => (c, b),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(%session, error = %e, "upgrade failed");
                return;
            }
        };
        let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut client, &mut backend) => match r {
                Ok((up, down)) => tracing::debug!(%session, up, down, "session ended"),
                Err(e) => tracing::debug!(%session, error = %e, "session broken"),
            },
            _ = shutdown.cancelled() => tracing::debug!(%session, "session ended by shutdown"),
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_paths_use_the_kubelets_parameter_names() {
        let q: std::collections::HashMap<String, String> = [
            ("stdin", "true"),
            ("stdout", "True"),
            ("stderr", "false"),
            ("tty", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cmd = vec!["sh".to_string(), "-c".into(), "echo é & exit 3".into()];
        assert_eq!(
            kubelet_path("default", "web-1", "app", &cmd, &q),
            "/exec/default/web-1/app?command=sh&command=-c&command=echo+%C3%A9+%26+exit+3&input=1&output=1&tty=1"
        );
    }

    #[test]
    fn the_upgrade_headers_are_forwarded_as_they_are() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "v5.channel.k8s.io"),
            ("sec-websocket-protocol", "v4.channel.k8s.io"),
            ("authorization", "Bearer x"),
            ("accept", "*/*"),
        ] {
            h.append(
                header::HeaderName::from_static(k),
                HeaderValue::from_static(v),
            );
        }
        let names: Vec<String> = upgrade_headers(&h)
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                "connection: Upgrade",
                "upgrade: websocket",
                "sec-websocket-key: k",
                "sec-websocket-version: 13",
                "sec-websocket-protocol: v5.channel.k8s.io",
                "sec-websocket-protocol: v4.channel.k8s.io"
            ]
        );
        assert!(upgrade_headers(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn kubelet_refusals_become_statuses() {
        let e = kubelet_refusal(StatusCode::NOT_FOUND, "container \"x\" not found\n").0;
        assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
        assert_eq!(e.message, "container \"x\" not found");
        let e = kubelet_refusal(StatusCode::BAD_REQUEST, "is not running").0;
        assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
        let e = kubelet_refusal(StatusCode::BAD_GATEWAY, "é").0;
        assert_eq!((e.code, e.reason.as_str()), (500, "InternalError"));
    }
}
