//! delete, with Kubernetes' graceful deletion (pods on a node get `deletionTimestamp` and their
//! grace period; the kubelet removes them once stopped), finalizers and propagation policies.

use api::meta::{DeleteOptions, Time};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::handlers::{Request, object_response, success_status, write::ready_to_delete};
use crate::request::Target;
use crate::server::AppState;
use crate::storage::{self, Update};

fn options(req: &Request) -> ApiResult<DeleteOptions> {
    let mut opts: DeleteOptions = if req.body.is_empty() {
        DeleteOptions::default()
    } else {
        serde_json::from_value(req.json_body()?)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    if let Some(g) = req.q("gracePeriodSeconds") {
        opts.grace_period_seconds = Some(
            g.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?,
        );
    }
    if let Some(p) = req.q("propagationPolicy") {
        opts.propagation_policy = Some(p.to_string());
    }
    check_options(&opts)?;
    Ok(opts)
}

pub fn check_options(opts: &DeleteOptions) -> ApiResult<()> {
    if let Some(p) = &opts.propagation_policy
        && !["Orphan", "Background", "Foreground"].contains(&p.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
        )));
    }
    Ok(())
}

/// The grace period a deletion gets: pods running on a node get theirs, everything else 0.
fn grace_period(kind: &str, obj: &Value, opts: &DeleteOptions) -> i64 {
    if kind != "Pod" {
        return 0;
    }
    let bound = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let phase = obj
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !bound || phase == "Succeeded" || phase == "Failed" {
        return 0;
    }
    let default = obj
        .pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(30);
    opts.grace_period_seconds.unwrap_or(default).max(0)
}

/// Decide what deleting `cur` means: gone now, or marked and kept.
fn mark_for_deletion(kind: &str, cur: &Value, opts: &DeleteOptions) -> Update {
    let mut obj = cur.clone();
    let mut grace = grace_period(kind, cur, opts);
    let already = cur.pointer("/metadata/deletionTimestamp").is_some();
    if already {
        // A second delete may only shorten the grace period.
        let current = cur
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if opts.grace_period_seconds.is_none() || grace >= current {
            grace = current;
        }
    }
    let mut finalizers: Vec<String> = obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if !already {
        let policy = opts.propagation_policy.clone().or_else(|| {
            opts.orphan_dependents
                .and_then(|o| o.then(|| "Orphan".to_string()))
        });
        let add = match policy.as_deref() {
            Some("Orphan") => Some("orphan"),
            Some("Foreground") => Some("foregroundDeletion"),
            _ => None,
        };
        if let Some(f) = add
            && !finalizers.iter().any(|x| x == f)
        {
            finalizers.push(f.to_string());
        }
    }
    // Namespaces are finalized by the namespace controller through `spec.finalizers`.
    let ns_finalizers = kind == "Namespace"
        && cur
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
    if grace == 0 && finalizers.is_empty() && !ns_finalizers {
        return Update::Delete;
    }
    let meta = &mut obj["metadata"];
    if !already {
        let when = chrono::Utc::now() + chrono::Duration::seconds(grace);
        meta["deletionTimestamp"] = json!(Time(
            chrono::DateTime::from_timestamp(when.timestamp(), 0).unwrap_or(when)
        ));
    }
    meta["deletionGracePeriodSeconds"] = json!(grace);
    meta["finalizers"] = json!(finalizers);
    if finalizers.is_empty()
        && let Some(m) = meta.as_object_mut()
    {
        m.remove("finalizers");
    }
    if kind == "Namespace" {
        obj["status"]["phase"] = json!("Terminating");
    }
    if grace == 0 && ready_to_delete(&obj) && !ns_finalizers {
        return Update::Delete;
    }
    if obj == *cur {
        Update::Noop
    } else {
        Update::Write(obj)
    }
}

pub async fn delete(state: &AppState, req: &Request) -> ApiResult<Response> {
    let opts = options(req)?;
    let dry_run = req.dry_run() || opts.dry_run.iter().any(|d| d == "All");
    delete_with(state, &req.target, &opts, dry_run).await
}

/// Delete one object with these options (DELETE, and evictions).
pub async fn delete_with(
    state: &AppState,
    t: &Target,
    opts: &DeleteOptions,
    dry_run: bool,
) -> ApiResult<Response> {
    let name = t.name.clone().unwrap_or_default();
    let key = storage::key(t.info, t.namespace.as_deref().unwrap_or_default(), &name);
    let mut missing = false;
    let mut last: Option<Value> = None;
    let res = state
        .storage
        .guaranteed_update(&key, |cur| {
            let Some(cur) = cur else {
                missing = true;
                return Ok(Update::Noop);
            };
            if let Some(p) = &opts.preconditions {
                let uid = cur.obj.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
                if let Some(want) = p.uid.as_deref().filter(|u| *u != uid) {
                    return Err(ApiError::conflict_with(
                        t.info,
                        &name,
                        &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
                    ));
                }
                let rv = cur.mod_revision.to_string();
                if let Some(want) = p.resource_version.as_deref().filter(|r| *r != rv) {
                    return Err(ApiError::conflict_with(
                        t.info,
                        &name,
                        &format!("Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rv}"),
                    ));
                }
            }
            last = Some(cur.obj.clone());
            if dry_run {
                return Ok(Update::Noop);
            }
            Ok(mark_for_deletion(t.info.kind, &cur.obj, opts))
        })
        .await?;
    if missing {
        return Err(ApiError::not_found(t.info, &name));
    }
    match res {
        // Still there: graceful deletion or finalizers pending.
        Some(s) if !dry_run => Ok(object_response(StatusCode::OK, &s.obj, &[])),
        _ => {
            let obj = last.unwrap_or(Value::Null);
            tracing::debug!(kind = t.info.kind, %name, "deleted");
            // Kubernetes answers with the deleted object for these (`ReturnDeletedObject`).
            if matches!(t.info.kind, "Pod" | "Namespace" | "Service") {
                Ok(object_response(StatusCode::OK, &obj, &[]))
            } else {
                let uid = obj
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                Ok(success_status(t, &name, uid))
            }
        }
    }
}

/// DELETE on a collection: delete every object that matches the selectors.
pub async fn delete_collection(state: &AppState, req: &Request) -> ApiResult<Response> {
    let t = &req.target;
    let filter =
        crate::filter::Filter::new(t.info, req.q("labelSelector"), req.q("fieldSelector"))?;
    let opts = options(req)?;
    let prefix = storage::prefix(t.info, t.namespace.as_deref());
    let (items, _, _) = state.storage.list(&prefix, None, 0, 0).await?;
    let mut deleted = Vec::new();
    for s in items.into_iter().filter(|s| filter.matches(t.info, &s.obj)) {
        let ns = s
            .obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = s
            .obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let key = storage::key(t.info, &ns, &name);
        let res = state
            .storage
            .guaranteed_update(&key, |cur| match cur {
                None => Ok(Update::Noop),
                Some(cur) => Ok(mark_for_deletion(t.info.kind, &cur.obj, &opts)),
            })
            .await?;
        deleted.push(res.map(|s| s.obj).unwrap_or(s.obj));
    }
    let body = json!({
        "kind": format!("{}List", t.info.kind),
        "apiVersion": t.info.api_version(),
        "metadata": {},
        "items": deleted,
    });
    Ok(object_response(StatusCode::OK, &body, &[]))
}
