//! `?watch=true`: a chunked stream of newline-delimited `{"type": …, "object": …}` events.
//!
//! Starts from `resourceVersion` (events after it), or — with no resourceVersion, `"0"`, or
//! `sendInitialEvents=true` — with the current objects as ADDED events first (then, for
//! watch-list, a BOOKMARK carrying `k8s.io/initial-events-end`). A selector change moves an object
//! in or out of view as ADDED/DELETED, as the real API server does.

use std::time::Duration;

use api::ResourceInfo;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use client::kv::proto::{EventType, WatchResponse};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::filter::Filter;
use crate::handlers::Request;
use crate::request::flag;
use crate::server::AppState;
use crate::storage;
use crate::table::{TableRequest, wants_table};

/// How a watch renders objects: as they are, or as one-row Tables (`kubectl get -w`).
struct Render {
    info: &'static ResourceInfo,
    table: Option<TableRequest>,
}

impl Render {
    fn line(&self, type_: &str, obj: &Value) -> Bytes {
        let object = match &self.table {
            Some(t) if type_ != "ERROR" && type_ != "BOOKMARK" => t.one(self.info, obj),
            _ => obj.clone(),
        };
        let mut s =
            serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap_or_default();
        s.push(b'\n');
        Bytes::from(s)
    }

    fn bookmark(&self, rev: i64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        self.line(
            "BOOKMARK",
            &json!({"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": meta}),
        )
    }
}

fn expired(rv: i64, compact: i64) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("too old resource version: {rv} ({compact})"),
        "reason": "Expired", "code": 410,
    })
}

/// Translate one kvstore watch message into Kubernetes events.
fn translate(
    msg: &WatchResponse,
    filter: &Filter,
    info: &ResourceInfo,
    render: &Render,
) -> Vec<Bytes> {
    let mut out = Vec::new();
    for ev in &msg.events {
        let rev = ev.kv.mod_revision;
        let old = ev
            .prev_kv
            .as_ref()
            .and_then(|p| storage::decode(p, p.mod_revision).ok())
            .filter(|o| filter.matches(info, o));
        match ev.type_ {
            EventType::Put => {
                let Ok(new) = storage::decode(&ev.kv, rev) else {
                    continue;
                };
                let new_match = filter.matches(info, &new);
                let type_ = match (old.is_some(), new_match) {
                    (false, true) => "ADDED",
                    (true, true) => "MODIFIED",
                    (true, false) => "DELETED",
                    (false, false) => continue,
                };
                out.push(render.line(type_, &new));
            }
            EventType::Delete => {
                if let Some(mut old) = old {
                    storage::set_resource_version(&mut old, rev);
                    out.push(render.line("DELETED", &old));
                }
            }
        }
    }
    out
}

pub async fn watch(state: &AppState, req: &Request) -> ApiResult<Response> {
    let t = &req.target;
    let mut field_selector = req.q("fieldSelector").map(String::from);
    if let Some(name) = &t.name {
        let by_name = format!("metadata.name={name}");
        field_selector = Some(match field_selector {
            Some(f) => format!("{f},{by_name}"),
            None => by_name,
        });
    }
    let filter = Filter::new(t.info, req.q("labelSelector"), field_selector.as_deref())?;
    let bookmarks = flag(&req.query, "allowWatchBookmarks");
    let send_initial = req
        .q("sendInitialEvents")
        .map(|v| v.eq_ignore_ascii_case("true"));
    if send_initial.is_some() && req.q("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::new(
            422,
            "Invalid",
            "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    if send_initial == Some(true) && !bookmarks {
        return Err(ApiError::new(
            422,
            "Invalid",
            "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
        ));
    }
    let timeout = match req.q("timeoutSeconds") {
        Some(s) => Duration::from_secs(
            s.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {s:?}")))?,
        ),
        None => Duration::from_secs(1800 + rand::random::<u64>() % 1800),
    };
    let render = Render {
        info: t.info,
        table: wants_table(&req.headers).map(|tr| tr.with_include(req.q("includeObject"))),
    };
    let prefix = storage::prefix(t.info, t.namespace.as_deref());
    let rv_param = req.q("resourceVersion").unwrap_or("");
    let rv: i64 = if rv_param.is_empty() {
        0
    } else {
        rv_param
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv_param:?}")))?
    };

    // Initial state: the current objects, when asked for (or implied by rv "" / "0").
    let mut initial: Vec<Bytes> = Vec::new();
    let start_rev;
    let with_initial = send_initial.unwrap_or(rv == 0);
    if with_initial {
        let (items, rev, _) = state.storage.list(&prefix, None, 0, 0).await?;
        for s in items.iter().filter(|s| filter.matches(t.info, &s.obj)) {
            initial.push(render.line("ADDED", &s.obj));
        }
        if send_initial == Some(true) {
            initial.push(render.bookmark(rev, true));
        }
        start_rev = rev + 1;
    } else if rv == 0 {
        start_rev = state.storage.current_revision().await? + 1;
    } else {
        start_rev = rv + 1;
    }

    let info = t.info;
    let kv_stream = match state.storage.watch(&prefix, start_rev).await {
        Ok(s) => Some(s),
        Err(e) if e.code() == Some(client::kv::proto::ErrorCode::Compacted) => None,
        Err(e) => return Err(e.into()),
    };
    let shutdown = state.shutdown.clone();
    let body = async_stream::stream! {
        for line in initial {
            yield Ok::<Bytes, std::convert::Infallible>(line);
        }
        let Some(kv_stream) = kv_stream else {
            yield Ok(render.line("ERROR", &expired(rv, rv)));
            return;
        };
        futures::pin_mut!(kv_stream);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            let msg = tokio::select! {
                _ = &mut deadline => break,
                _ = shutdown.cancelled() => break,
                m = kv_stream.next() => m,
            };
            let Some(msg) = msg else { break };
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(error = %e, "kvstore watch broke; ending the client watch");
                    break;
                }
            };
            if msg.canceled {
                if msg.compact_revision > 0 {
                    yield Ok(render.line("ERROR", &expired(rv, msg.compact_revision)));
                }
                break;
            }
            if msg.created {
                continue;
            }
            if msg.is_progress_notify() {
                if bookmarks {
                    yield Ok(render.bookmark(msg.header.revision, false));
                }
                continue;
            }
            for line in translate(&msg, &filter, info, &render) {
                yield Ok(line);
            }
        }
    };
    let mut resp = Response::new(Body::from_stream(body));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}
