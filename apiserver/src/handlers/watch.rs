//! `?watch=true`: a chunked stream of newline-delimited `{"type": …, "object": …}` events,
//! served from the watch cache (one kvstore watch per resource type, whatever the number of
//! client watches).
//!
//! Where it starts, as Kubernetes:
//! - `resourceVersion` unset: the current objects (a consistent read: the cache first catches up
//!   with the store) as ADDED events, then changes;
//! - `"0"`: the cache's current objects as ADDED, then changes;
//! - `N`: the changes after N (`410 Expired` as an ERROR event when N is older than the history);
//! - `sendInitialEvents=true` (watch-list; needs `resourceVersionMatch=NotOlderThan` and
//!   `allowWatchBookmarks`): the objects at a revision not older than N (or the current one) as
//!   ADDED, then a BOOKMARK annotated `k8s.io/initial-events-end`, then changes;
//!   `sendInitialEvents=false`: changes only.
//!
//! A selector change moves an object in or out of view as ADDED/DELETED, as the real API
//! server does; BOOKMARKs (with `allowWatchBookmarks`) come from the store's progress
//! notifications.

use std::sync::atomic::Ordering;
use std::time::Duration;

use api::ResourceInfo;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::cache::{CacheEvent, Msg};
use crate::error::{ApiError, ApiResult};
use crate::filter::Filter;
use crate::handlers::Request;
use crate::request::flag;
use crate::server::AppState;
use crate::storage;
use crate::table::{TableRequest, wants_table};

/// How long a watch waits for the cache to reach its resourceVersion (Kubernetes' 3 s).
pub const FRESHNESS_TIMEOUT: Duration = Duration::from_secs(3);

/// How a watch renders objects: as they are, or as one-row Tables (`kubectl get -w`).
pub struct Render {
    pub info: &'static ResourceInfo,
    pub table: Option<TableRequest>,
}

impl Render {
    pub fn line(&self, type_: &str, obj: &Value) -> Bytes {
        let mut s = Vec::with_capacity(256);
        s.extend_from_slice(b"{\"type\":\"");
        s.extend_from_slice(type_.as_bytes());
        s.extend_from_slice(b"\",\"object\":");
        let rendered = match &self.table {
            Some(t) if type_ != "ERROR" && type_ != "BOOKMARK" => {
                serde_json::to_writer(&mut s, &t.one(self.info, obj))
            }
            _ => serde_json::to_writer(&mut s, obj),
        };
        if rendered.is_err() {
            return Bytes::new();
        }
        s.extend_from_slice(b"}\n");
        Bytes::from(s)
    }

    pub fn bookmark(&self, rev: i64, initial_end: bool) -> Bytes {
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

/// The watch event (if any) one cached change means for a watcher with `filter` on `prefix`.
fn translate(
    ev: &CacheEvent,
    prefix: &str,
    filter: &Filter,
    info: &ResourceInfo,
) -> Option<&'static str> {
    if !ev.key.starts_with(prefix) {
        return None;
    }
    let old = ev.prev.as_deref().is_some_and(|p| filter.matches(info, p));
    if ev.deleted {
        return old.then_some("DELETED");
    }
    match (old, filter.matches(info, &ev.obj)) {
        (false, true) => Some("ADDED"),
        (true, true) => Some("MODIFIED"),
        (true, false) => Some("DELETED"),
        (false, false) => None,
    }
}

fn parse_rv(s: &str) -> ApiResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {s:?}")))
}

/// Kubernetes' answer when a resourceVersion is newer than the store's.
pub fn too_large(rv: i64, current: i64) -> ApiError {
    let mut e = ApiError::new(
        504,
        "Timeout",
        format!("Too large resource version: {rv}, current: {current}"),
    );
    e.0.details = Some(api::meta::StatusDetails {
        causes: vec![api::meta::StatusCause {
            reason: "ResourceVersionTooLarge".into(),
            message: "Too large resource version".into(),
            field: String::new(),
        }],
        retry_after_seconds: 1,
        ..Default::default()
    });
    e
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
        .map(|v| v.eq_ignore_ascii_case("true") || v == "1");
    if send_initial.is_some() && req.q("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::new(
            422,
            "Invalid",
            "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    if send_initial.is_none() && req.q("resourceVersionMatch").is_some() {
        return Err(ApiError::new(
            422,
            "Invalid",
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
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
    let rv = if rv_param.is_empty() {
        0
    } else {
        parse_rv(rv_param)?
    };
    let cacher = state
        .caches
        .get(t.info)
        .ok_or_else(|| ApiError::internal(format!("no watch cache for {}", t.info.plural)))?
        .clone();
    if !cacher.ready() {
        // Starting up: give the cache a moment before answering 429 (clients retry).
        cacher
            .wait_fresh(&state.storage, 1, Duration::from_secs(10))
            .await;
    }

    // Where to start: a snapshot (initial ADDED events) or the events after `rv`.
    let snapshot = send_initial.unwrap_or(rv == 0);
    let consistent = rv_param.is_empty();
    let target = if consistent {
        state.storage.current_revision().await?
    } else {
        rv
    };
    let mut too_new = None;
    if target > cacher.revision()
        && !cacher
            .wait_fresh(&state.storage, target, FRESHNESS_TIMEOUT)
            .await
        && !consistent
    {
        let current = state.storage.current_revision().await?;
        if rv > current {
            too_new = Some(too_large(rv, current));
        }
    }
    // As Kubernetes' cacher: once the request is accepted, a resourceVersion that is too old
    // (410 Expired) or too new (504) is an ERROR event on the stream, not an HTTP error.
    let (sub, expired) = if let Some(e) = too_new {
        (None, Some(e))
    } else if snapshot || rv == 0 {
        let mut sub = cacher.subscribe_snapshot(&prefix)?;
        if !snapshot {
            sub.snapshot.clear();
        }
        (Some(sub), None)
    } else {
        match cacher.subscribe_from(rv) {
            Ok(sub) => (Some(sub), None),
            Err(e) if e.status().code == 410 => (None, Some(e)),
            Err(e) => return Err(e),
        }
    };

    let info = t.info;
    let shutdown = state.shutdown.clone();
    let metrics = state.metrics.clone();
    let guard = metrics.watcher(info.group, info.kind);
    let send_initial_end = send_initial == Some(true);
    let body = async_stream::stream! {
        let _guard = guard;
        let Some(mut sub) = sub else {
            if let Some(e) = expired {
                let status = serde_json::to_value(e.status()).unwrap_or(Value::Null);
                yield Ok::<Bytes, std::convert::Infallible>(render.line("ERROR", &status));
            }
            return;
        };
        let mut sent = 0u64;
        for obj in sub.snapshot.drain(..) {
            if filter.matches(info, &obj) {
                sent += 1;
                yield Ok(render.line("ADDED", &obj));
            }
        }
        // Events at or below `floor` are already reflected in what was sent; the snapshot,
        // backlog and broadcast neither overlap nor leave gaps above it.
        let floor = if snapshot || rv == 0 { sub.rev } else { rv };
        let mut last_rev = floor;
        if send_initial_end {
            yield Ok(render.bookmark(sub.rev, true));
        }
        for ev in std::mem::take(&mut sub.backlog) {
            if ev.rev <= floor {
                continue;
            }
            if let Some(type_) = translate(&ev, &prefix, &filter, info) {
                sent += 1;
                yield Ok(render.line(type_, &ev.obj));
            }
            last_rev = last_rev.max(ev.rev);
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            let msg = tokio::select! {
                _ = &mut deadline => break,
                _ = shutdown.cancelled() => break,
                m = sub.rx.recv() => m,
            };
            match msg {
                Ok(Msg::Event(ev)) => {
                    if ev.rev <= floor {
                        continue;
                    }
                    if let Some(type_) = translate(&ev, &prefix, &filter, info) {
                        sent += 1;
                        yield Ok(render.line(type_, &ev.obj));
                    }
                    last_rev = last_rev.max(ev.rev);
                }
                Ok(Msg::Progress(rev)) => {
                    if bookmarks && rev > last_rev {
                        last_rev = rev;
                        yield Ok(render.bookmark(rev, false));
                    }
                }
                Ok(Msg::Reset) => break,
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(kind = info.kind, lagged = n, "watcher fell behind; ending its watch");
                    break;
                }
                Err(RecvError::Closed) => break,
            }
        }
        metrics.watch_events_sent.fetch_add(sent, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ev(prev: Option<Value>, obj: Value, deleted: bool) -> CacheEvent {
        CacheEvent {
            rev: 5,
            key: "/registry/pods/default/p".into(),
            obj: Arc::new(obj),
            prev: prev.map(Arc::new),
            deleted,
        }
    }

    #[test]
    fn selector_transitions() {
        let info = &api::resource::POD;
        let f = Filter::new(info, Some("app=web"), None).unwrap();
        let web = json!({"metadata": {"labels": {"app": "web"}}});
        let other = json!({"metadata": {"labels": {"app": "db"}}});
        let p = "/registry/pods/default/";
        assert_eq!(
            translate(&ev(None, web.clone(), false), p, &f, info),
            Some("ADDED")
        );
        assert_eq!(
            translate(&ev(Some(web.clone()), web.clone(), false), p, &f, info),
            Some("MODIFIED")
        );
        assert_eq!(
            translate(&ev(Some(web.clone()), other.clone(), false), p, &f, info),
            Some("DELETED")
        );
        assert_eq!(
            translate(&ev(Some(other.clone()), web.clone(), false), p, &f, info),
            Some("ADDED")
        );
        assert_eq!(
            translate(&ev(None, other.clone(), false), p, &f, info),
            None
        );
        assert_eq!(
            translate(&ev(Some(web.clone()), web.clone(), true), p, &f, info),
            Some("DELETED")
        );
        assert_eq!(
            translate(
                &ev(None, web, false),
                "/registry/pods/kube-system/",
                &f,
                info
            ),
            None,
            "another namespace"
        );
    }

    #[test]
    fn lines_are_compact_json() {
        let r = Render {
            info: &api::resource::POD,
            table: None,
        };
        let l = r.line("ADDED", &json!({"a": 1}));
        assert_eq!(&l[..], b"{\"type\":\"ADDED\",\"object\":{\"a\":1}}\n");
        let b: Value = serde_json::from_slice(&r.bookmark(7, true)).unwrap();
        assert_eq!(b["object"]["metadata"]["resourceVersion"], "7");
        assert_eq!(b["object"]["kind"], "Pod");
    }
}
