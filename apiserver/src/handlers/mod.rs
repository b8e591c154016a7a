//! Request handlers, one module per verb family. [`dispatch`] routes a parsed request.

pub mod delete;
pub mod exec;
pub mod portforward;
pub mod read;
pub mod subresource;
pub mod watch;
pub mod write;

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

use crate::error::{ApiError, ApiResult, json_response};
use crate::request::{Target, flag};
use crate::server::AppState;

/// One API request, parsed.
pub struct Request {
    pub method: Method,
    pub target: Target,
    pub query: HashMap<String, String>,
    /// The query as sent, for repeated parameters (`pods/exec`'s `command`).
    pub raw_query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The connection, once the response switches protocols (`pods/exec`).
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
}

impl Request {
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or("").trim())
            .unwrap_or("application/json")
    }

    /// The body as JSON (YAML accepted too, as the real API server does, and the protobuf
    /// bodies kubectl's typed clients send for a few kinds).
    pub fn json_body(&self) -> ApiResult<Value> {
        if self.body.is_empty() {
            return Err(ApiError::bad_request("the request body is empty"));
        }
        match self.content_type() {
            crate::protobuf::CONTENT_TYPE => crate::protobuf::decode(&self.body),
            "application/yaml" | "application/x-yaml" => serde_yaml::from_slice(&self.body)
                .map_err(|e| ApiError::bad_request(format!("error parsing YAML body: {e}"))),
            "application/json"
            | ""
            | "*/*"
            | "application/json-patch+json"
            | "application/merge-patch+json"
            | "application/strategic-merge-patch+json"
            | "application/apply-patch+yaml" => serde_json::from_slice(&self.body).map_err(|e| {
                ApiError::bad_request(format!("error decoding request body as JSON: {e}"))
            }),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }

    pub fn dry_run(&self) -> bool {
        self.q("dryRun") == Some("All")
    }

    pub fn watch(&self) -> bool {
        flag(&self.query, "watch")
    }
}

/// Answer an object, with `Warning` headers for unknown fields.
pub fn object_response(code: StatusCode, obj: &Value, warnings: &[String]) -> Response {
    let mut r = json_response(code, obj);
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {:?}", w)) {
            r.headers_mut().append("Warning", v);
        }
    }
    r
}

/// The warning Kubernetes attaches to every request for a deprecated API (kubectl prints it
/// as `Warning: …`).
fn deprecation(info: &api::ResourceInfo) -> Option<&'static str> {
    (info.kind == "Endpoints")
        .then_some("v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice")
}

pub async fn dispatch(state: &AppState, req: Request) -> ApiResult<Response> {
    let warning = deprecation(req.target.info);
    let mut resp = route(state, req).await?;
    if let Some(w) = warning
        && let Ok(v) = HeaderValue::from_str(&format!("299 - {w:?}"))
    {
        resp.headers_mut().append("Warning", v);
    }
    Ok(resp)
}

async fn route(state: &AppState, req: Request) -> ApiResult<Response> {
    let t = &req.target;
    if t.info.kind == "Pod" && t.name.is_some() && t.sub.as_deref() == Some("exec") {
        return match req.method {
            Method::GET | Method::POST => exec::exec(state, req).await,
            ref m => Err(ApiError::method_not_allowed(m.as_str())),
        };
    }
    if t.info.kind == "Pod" && t.name.is_some() && t.sub.as_deref() == Some("portforward") {
        return match req.method {
            Method::GET | Method::POST => portforward::portforward(state, req).await,
            ref m => Err(ApiError::method_not_allowed(m.as_str())),
        };
    }
    match (&req.method, t.name.is_some(), t.sub.as_deref()) {
        (&Method::GET, false, None) if req.watch() => watch::watch(state, &req).await,
        (&Method::GET, false, None) => read::list(state, &req).await,
        (&Method::POST, false, None) => write::create(state, &req).await,
        (&Method::GET, true, None) if req.watch() => watch::watch(state, &req).await,
        (&Method::GET, true, None) => read::get(state, &req).await,
        (&Method::PUT, true, None) => write::update(state, &req, write::Mode::Main).await,
        (&Method::PATCH, true, None) => write::patch(state, &req, write::Mode::Main).await,
        (&Method::DELETE, true, None) => delete::delete(state, &req).await,
        (&Method::DELETE, false, None) => delete::delete_collection(state, &req).await,
        (m, true, Some("status")) if t.info.has_status => match *m {
            Method::GET => read::get(state, &req).await,
            Method::PUT => write::update(state, &req, write::Mode::Status).await,
            Method::PATCH => write::patch(state, &req, write::Mode::Status).await,
            _ => Err(ApiError::method_not_allowed(m.as_str())),
        },
        (&Method::POST, true, Some("binding")) if t.info.kind == "Pod" => {
            subresource::bind(state, &req).await
        }
        (&Method::POST, true, Some("eviction")) if t.info.kind == "Pod" => {
            subresource::evict(state, &req).await
        }
        (m, true, Some("scale")) if t.info.has_scale => match *m {
            Method::GET => subresource::get_scale(state, &req).await,
            Method::PUT | Method::PATCH => subresource::update_scale(state, &req).await,
            _ => Err(ApiError::method_not_allowed(m.as_str())),
        },
        (&Method::GET, true, Some("log")) if t.info.kind == "Pod" => {
            subresource::log(state, &req).await
        }
        (&Method::PUT, true, Some("finalize")) if t.info.kind == "Namespace" => {
            subresource::finalize(state, &req).await
        }
        (m, _, Some(sub)) => Err(ApiError::path_not_found(&format!(
            "{} {}/{}",
            m, t.info.plural, sub
        ))),
        (m, _, None) => Err(ApiError::method_not_allowed(m.as_str())),
    }
}

/// The deleted-object `Status` Kubernetes answers with for most kinds.
pub fn success_status(t: &Target, name: &str, uid: &str) -> Response {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": t.info.group, "kind": t.info.plural, "uid": uid},
    });
    json_response(StatusCode::OK, &body).into_response()
}
