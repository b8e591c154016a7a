//! The HTTP server: a single fallback route parses Kubernetes paths (a router with a route per
//! resource would say the same thing eight times) and hands them to the handlers.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

use crate::cache::Caches;
use crate::discovery;
use crate::error::{ApiError, json_response};
use crate::handlers::{self, Request};
use crate::metrics::{Metrics, RequestLabels};
use crate::request::{Target, flag, parse_path, parse_query};
use crate::storage::Storage;

/// Request bodies above this are refused with 413, as the real API server does.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// How much of an oversize body is read (and dropped) so the client gets the 413 instead of
/// a connection reset while it is still sending.
const DRAIN_BYTES: usize = 64 * 1024 * 1024;

async fn read_body(body: Body) -> Result<bytes::Bytes, ApiError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request(format!("failed to read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= MAX_BODY_BYTES {
                buf.extend_from_slice(&data);
            } else if seen > DRAIN_BYTES {
                break;
            }
        }
    }
    if seen > MAX_BODY_BYTES {
        return Err(ApiError::too_large(format!(
            "the request body is too large: limit is {MAX_BODY_BYTES} bytes"
        )));
    }
    Ok(buf.freeze())
}

pub struct AppState {
    pub storage: Storage,
    pub caches: Arc<Caches>,
    pub metrics: Arc<Metrics>,
    /// Where Services' ClusterIPs and node ports come from.
    pub services: crate::services::Allocator,
    /// For proxying `pods/log` to kubelets (`pods/exec` connects on its own).
    pub http: reqwest::Client,
    /// Ends long-running requests (watches, log follows) at shutdown.
    pub shutdown: CancellationToken,
    pub server_address: String,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

fn text(code: StatusCode, s: &str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        s.to_string(),
    )
        .into_response()
}

async fn handle(State(state): State<Arc<AppState>>, req: axum::extract::Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let started = Instant::now();
    let path = uri.path().to_string();
    let labels = request_labels(&method, &uri);
    let resp = route(&state, method.clone(), &uri, headers, body, upgrade).await;
    let code = resp.status().as_u16();
    state.metrics.observe(&labels, code, started.elapsed());
    tracing::debug!(%method, %path, status = code, ms = started.elapsed().as_millis() as u64, "request");
    resp
}

/// Kubernetes' request verb and resource labels for the metrics.
fn request_labels(method: &Method, uri: &Uri) -> RequestLabels {
    let path = uri.path().trim_end_matches('/');
    let Some(t) = parse_path(path) else {
        return RequestLabels {
            verb: method.as_str().to_ascii_uppercase(),
            ..Default::default()
        };
    };
    let Target {
        info, name, sub, ..
    } = t;
    let watch = flag(&parse_query(uri.query()), "watch");
    // Kubernetes' `verb` label: the HTTP method, refined for reads, deletes and connections.
    let verb = match (method.as_str(), name.is_some()) {
        _ if matches!(sub.as_deref(), Some("exec" | "portforward")) => "CONNECT",
        ("GET", _) if watch => "WATCH",
        ("GET", false) => "LIST",
        ("DELETE", false) => "DELETECOLLECTION",
        (m, _) => m,
    };
    RequestLabels {
        verb: verb.to_ascii_uppercase(),
        group: info.group.to_string(),
        resource: info.plural.to_string(),
        subresource: sub.unwrap_or_default(),
    }
}

fn accept(headers: &HeaderMap) -> &str {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// `/api` or `/apis`, in the format the client asked for.
fn discovery_root(state: &AppState, core: bool, headers: &HeaderMap) -> Response {
    if discovery::wants_aggregated(accept(headers)) {
        let mut r = json_response(StatusCode::OK, &discovery::aggregated(core));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
        );
        r.headers_mut()
            .insert(header::VARY, axum::http::HeaderValue::from_static("Accept"));
        return r;
    }
    let body = if core {
        discovery::api_versions(&state.server_address)
    } else {
        discovery::api_group_list()
    };
    let mut r = json_response(StatusCode::OK, &body);
    r.headers_mut()
        .insert(header::VARY, axum::http::HeaderValue::from_static("Accept"));
    r
}

async fn route(
    state: &AppState,
    method: Method,
    uri: &Uri,
    headers: HeaderMap,
    body: Body,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response {
    let path = uri.path().trim_end_matches('/');
    let ok = |v: serde_json::Value| json_response(StatusCode::OK, &v);
    match (method.clone(), path) {
        (Method::GET, "/healthz" | "/livez") => return text(StatusCode::OK, "ok"),
        (Method::GET, "/readyz") => {
            return match state.storage.current_revision().await {
                Ok(_) => text(StatusCode::OK, "ok"),
                Err(e) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("[-]etcd failed: {}", e.status().message),
                ),
            };
        }
        (Method::GET, "/version") => return ok(discovery::version()),
        (Method::GET, "/api") => return discovery_root(state, true, &headers),
        (Method::GET, "/apis") => return discovery_root(state, false, &headers),
        (Method::GET, "/metrics") => {
            return (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                state.metrics.render(&state.caches),
            )
                .into_response();
        }
        (Method::GET, "/openapi/v3") => return ok(crate::openapi::index()),
        (Method::GET, "/api/v1") => {
            return discovery::api_resource_list("", "v1")
                .map(ok)
                .unwrap_or_else(|| ApiError::path_not_found(path).into_response());
        }
        _ => {}
    }
    if method == Method::GET
        && let Some(key) = path.strip_prefix("/openapi/v3/")
    {
        return match crate::openapi::document(key) {
            Some(doc) => {
                let mut r = (StatusCode::OK, doc.to_vec()).into_response();
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("application/json"),
                );
                r
            }
            None => ApiError::path_not_found(path).into_response(),
        };
    }
    if method == Method::GET {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segs.as_slice() {
            ["apis", g, v] => {
                return discovery::api_resource_list(g, v)
                    .map(ok)
                    .unwrap_or_else(|| ApiError::path_not_found(path).into_response());
            }
            ["apis", g] => {
                let list = discovery::api_group_list();
                let found = list["groups"]
                    .as_array()
                    .and_then(|gs| gs.iter().find(|x| x["name"] == *g))
                    .cloned();
                return match found {
                    Some(mut g) => {
                        g["kind"] = "APIGroup".into();
                        g["apiVersion"] = "v1".into();
                        ok(g)
                    }
                    None => ApiError::path_not_found(path).into_response(),
                };
            }
            _ => {}
        }
    }
    let Some(target) = parse_path(path) else {
        return ApiError::path_not_found(path).into_response();
    };
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let req = Request {
        method,
        target,
        query: parse_query(uri.query()),
        raw_query: uri.query().map(String::from),
        headers,
        body,
        upgrade,
    };
    match handlers::dispatch(state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}
