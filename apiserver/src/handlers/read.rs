//! get and list.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult, json_response};
use crate::filter::Filter;
use crate::handlers::{Request, object_response};
use crate::server::AppState;
use crate::storage;

pub async fn get(state: &AppState, req: &Request) -> ApiResult<Response> {
    let t = &req.target;
    let name = t.name.as_deref().unwrap_or_default();
    let key = storage::key(t.info, t.namespace.as_deref().unwrap_or_default(), name);
    match state.storage.get(&key).await? {
        Some(s) => match crate::table::wants_table(&req.headers) {
            Some(tr) => Ok(json_response(
                StatusCode::OK,
                &tr.with_include(req.q("includeObject")).one(t.info, &s.obj),
            )),
            None => Ok(object_response(StatusCode::OK, &s.obj, &[])),
        },
        None => Err(ApiError::not_found(t.info, name)),
    }
}

/// An opaque continue token: the revision of the first page and the next key to read.
#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    rv: i64,
    start: String,
}

fn encode_continue(c: &Continue) -> String {
    serde_json::to_vec(c)
        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
        .unwrap_or_default()
}

fn decode_continue(s: &str) -> ApiResult<Continue> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    if !s.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16))
        .collect();
    serde_json::from_slice(&bytes.map_err(|_| bad())?).map_err(|_| bad())
}

/// Where a list is read from.
enum Source {
    /// The kvstore at this revision (0: the latest), from this key.
    Storage {
        revision: i64,
        start: Option<String>,
    },
    /// The watch cache, once it reflects at least this revision (None: any).
    Cache { at_least: Option<i64> },
}

pub async fn list(state: &AppState, req: &Request) -> ApiResult<Response> {
    let t = &req.target;
    let filter = Filter::new(t.info, req.q("labelSelector"), req.q("fieldSelector"))?;
    let limit: usize = match req.q("limit") {
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?
            .max(0) as usize,
        None => 0,
    };
    let prefix = storage::prefix(t.info, t.namespace.as_deref());
    let rv_param = req.q("resourceVersion");
    let rv_match = req.q("resourceVersionMatch");
    let rv: Option<i64> =
        match rv_param {
            Some(s) => Some(s.parse::<i64>().ok().filter(|r| *r >= 0).ok_or_else(|| {
                ApiError::bad_request(format!("invalid resource version: {s:?}"))
            })?),
            None => None,
        };
    match (rv_match, rv) {
        (Some(_), None) => {
            return Err(ApiError::new(
                422,
                "Invalid",
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        (Some("Exact"), Some(0)) => {
            return Err(ApiError::new(
                422,
                "Invalid",
                "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
        (Some("Exact") | Some("NotOlderThan") | None, _) => {}
        (Some(other), _) => {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                ),
            ));
        }
    }
    let source = match req.q("continue") {
        Some(c) => {
            let c = decode_continue(c)?;
            if !c.start.starts_with(&prefix) {
                return Err(ApiError::bad_request(
                    "continue key is not valid for this list",
                ));
            }
            Source::Storage {
                revision: c.rv,
                start: Some(c.start),
            }
        }
        None => match (rv_match, rv) {
            (Some("Exact"), Some(rv)) => Source::Storage {
                revision: rv,
                start: None,
            },
            (_, Some(0)) => Source::Cache { at_least: None },
            (_, Some(rv)) => Source::Cache { at_least: Some(rv) },
            // Unset: the latest state, consistently (the cache catches up with the store).
            (_, None) => Source::Cache {
                at_least: Some(state.storage.current_revision().await?),
            },
        },
    };
    let keep = |o: &Value| filter.matches(t.info, o);
    let mut from_cache = None;
    if let Source::Cache { at_least } = &source
        && let Some(cacher) = state.caches.get(t.info)
        && cacher.ready()
    {
        let fresh = match at_least {
            Some(target) if *target > cacher.revision() => {
                cacher
                    .wait_fresh(
                        &state.storage,
                        *target,
                        crate::handlers::watch::FRESHNESS_TIMEOUT,
                    )
                    .await
            }
            _ => true,
        };
        if fresh {
            let (all, rev) = cacher.snapshot(&prefix, None);
            let mut items = Vec::new();
            let mut next = None;
            for (i, obj) in all.iter().enumerate() {
                if !keep(obj) {
                    continue;
                }
                if limit > 0 && items.len() == limit {
                    // More remain: the next page is read from the store at this revision.
                    let prev = &all[i - 1];
                    next = Some(format!("{}\0", key_of(t.info, prev)));
                    break;
                }
                items.push(obj.clone());
            }
            from_cache = Some((items, rev, next));
        } else if let Some(rv) = rv.filter(|r| *r > 0) {
            let current = state.storage.current_revision().await?;
            if rv > current {
                return Err(crate::handlers::watch::too_large(rv, current));
            }
        }
    }
    let (items, rev, next): (Vec<Arc<Value>>, i64, Option<String>) = match from_cache {
        Some(x) => {
            state
                .metrics
                .lists_from_cache
                .fetch_add(1, Ordering::Relaxed);
            x
        }
        None => {
            state
                .metrics
                .lists_from_storage
                .fetch_add(1, Ordering::Relaxed);
            let (revision, start) = match source {
                Source::Storage { revision, start } => (revision, start),
                Source::Cache { .. } => (0, None),
            };
            let (items, rev, next) = state
                .storage
                .list_matching(&prefix, start.as_deref(), revision, limit, keep)
                .await
                .map_err(|e| {
                    if e.status().code == 410 && req.q("continue").is_some() {
                        ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
                    } else {
                        e
                    }
                })?;
            (items.into_iter().map(Arc::new).collect(), rev, next)
        }
    };
    let next = next.map(|start| encode_continue(&Continue { rv: rev, start }));
    if let Some(table) = crate::table::wants_table(&req.headers) {
        let table = table.with_include(req.q("includeObject"));
        let items: Vec<Value> = items.iter().map(|o| (**o).clone()).collect();
        return Ok(json_response(
            StatusCode::OK,
            &table.list(t.info, &items, rev, next.as_deref()),
        ));
    }
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if let Some(n) = next {
        meta["continue"] = json!(n);
    }
    Ok(list_response(t.info, &meta, &items))
}

/// The storage key of an object of a kind.
fn key_of(info: &api::ResourceInfo, obj: &Value) -> String {
    storage::key(
        info,
        obj.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    )
}

/// `{"kind": "PodList", "apiVersion": "v1", "metadata": …, "items": […]}`, serialised without
/// copying the (shared) items.
fn list_response(info: &api::ResourceInfo, meta: &Value, items: &[Arc<Value>]) -> Response {
    let mut body = Vec::with_capacity(64 + items.len() * 512);
    body.extend_from_slice(b"{\"kind\":");
    let head = serde_json::to_writer(&mut body, &format!("{}List", info.kind))
        .and_then(|_| {
            body.extend_from_slice(b",\"apiVersion\":");
            serde_json::to_writer(&mut body, &info.api_version())
        })
        .and_then(|_| {
            body.extend_from_slice(b",\"metadata\":");
            serde_json::to_writer(&mut body, meta)
        });
    if let Err(e) = head {
        return ApiError::internal(e.to_string()).into_response();
    }
    body.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        if let Err(e) = serde_json::to_writer(&mut body, &**item) {
            return ApiError::internal(e.to_string()).into_response();
        }
    }
    body.extend_from_slice(b"]}");
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    r
}
