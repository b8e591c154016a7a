//! get and list.

use axum::http::StatusCode;
use axum::response::Response;
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

pub async fn list(state: &AppState, req: &Request) -> ApiResult<Response> {
    let t = &req.target;
    let filter = Filter::new(t.info, req.q("labelSelector"), req.q("fieldSelector"))?;
    let limit: i64 = match req.q("limit") {
        Some(l) => l
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        None => 0,
    };
    let prefix = storage::prefix(t.info, t.namespace.as_deref());
    let (start, mut revision) = match req.q("continue") {
        Some(c) => {
            let c = decode_continue(c)?;
            if !c.start.starts_with(&prefix) {
                return Err(ApiError::bad_request(
                    "continue key is not valid for this list",
                ));
            }
            (Some(c.start), c.rv)
        }
        None => (None, 0),
    };
    if revision == 0
        && req.q("resourceVersionMatch") == Some("Exact")
        && let Some(rv) = req.q("resourceVersion")
    {
        revision = rv
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?;
    }
    let (items, rev, more) = state
        .storage
        .list(&prefix, start.as_deref(), revision, limit)
        .await
        .map_err(|e| {
            if e.status().code == 410 {
                ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
            } else {
                e
            }
        })?;
    let next = if more {
        items.last().map(|s| {
            let last_key = storage::key(
                t.info,
                s.obj
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                s.obj
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            );
            encode_continue(&Continue {
                rv: rev,
                start: format!("{last_key}\0"),
            })
        })
    } else {
        None
    };
    let items: Vec<Value> = items
        .into_iter()
        .map(|s| s.obj)
        .filter(|o| filter.matches(t.info, o))
        .collect();
    if let Some(table) = crate::table::wants_table(&req.headers) {
        let table = table.with_include(req.q("includeObject"));
        return Ok(json_response(
            StatusCode::OK,
            &table.list(t.info, &items, rev, next.as_deref()),
        ));
    }
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if let Some(n) = next {
        meta["continue"] = json!(n);
    }
    let body = json!({
        "kind": format!("{}List", t.info.kind),
        "apiVersion": t.info.api_version(),
        "metadata": meta,
        "items": items,
    });
    Ok(json_response(StatusCode::OK, &body))
}
