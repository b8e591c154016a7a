//! `GET|POST pods/NAME/portforward` (`kubectl port-forward`): checked here, then passed through
//! to the kubelet of the pod's node (`/portForward/{ns}/{pod}`), as exec is (see
//! [`super::exec::upgrade_to_kubelet`]): kubectl 1.37 speaks SPDY/3.1 inside a WebSocket
//! (`SPDY/3.1+portforward.k8s.io`), which the kubelet serves; the API server only splices.
//!
//! Refused before any upgrade, as a `Status`: an unknown pod (404), a pod on no node or not
//! running (400), a kubelet that cannot be reached (500).

use axum::response::Response;
use serde_json::Value;

use super::subresource::{get_pod, node_of};
use crate::error::{ApiError, ApiResult};
use crate::handlers::Request;
use crate::server::AppState;

pub async fn portforward(state: &AppState, req: Request) -> ApiResult<Response> {
    let t = &req.target;
    let name = t.name.clone().unwrap_or_default();
    let ns = t.namespace.clone().unwrap_or_default();
    let pod = get_pod(state, &req).await?;
    let node_name = node_of(&pod).to_string();
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if phase != "Running" {
        return Err(ApiError::bad_request(format!(
            "unable to forward port because pod is not running. Current status={phase}"
        )));
    }
    let mut url = reqwest::Url::parse("http://kubelet/").expect("a constant URL");
    url.path_segments_mut()
        .expect("an http URL has path segments")
        .clear()
        .extend(["portForward", &ns, &name]);
    // Ports in the query (the WebSocket protocol of other clients) go along as they are.
    for p in crate::request::query_all(req.raw_query.as_deref(), "ports") {
        url.query_pairs_mut().append_pair("ports", &p);
    }
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let session = format!("portforward {ns}/{name}");
    super::exec::upgrade_to_kubelet(state, req, &node_name, &name, &path, session).await
}
