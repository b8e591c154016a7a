//! create (POST), update (PUT) and patch (PATCH), for objects and their `status` subresource.

use api::meta::Time;
use axum::http::StatusCode;
use axum::response::Response;
use rand::Rng;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::handlers::{Request, object_response};
use crate::patch;
use crate::server::AppState;
use crate::services::Used;
use crate::storage::{self, Stored, Update, Written};
use crate::strategy::{self, FieldValidation, Strategy, name_of};

/// How many times a Service write picks again after another writer took the ClusterIP or node
/// port it picked (each time with a fresh view of what is taken, after a short random pause).
/// Every lost race is someone else's win, so writers always progress; this bounds how long
/// one unlucky writer keeps trying when many write at once into a nearly full range.
const ALLOCATION_ATTEMPTS: usize = 20;

/// A pause of up to `attempt` × 2 ms before picking again, so racing writers spread out.
async fn allocation_backoff(attempt: usize) {
    let ms = rand::rng().random_range(0..=(attempt as u64 * 2));
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

/// What is taken, for a kind whose writes allocate (Services); None for every other kind.
async fn used_for(state: &AppState, strat: &Strategy) -> ApiResult<Option<Used>> {
    if strat.info.kind == "Service" {
        Ok(Some(Used::read(&state.storage).await?))
    } else {
        Ok(None)
    }
}

/// Whether a write goes to the object or to its `status` subresource.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Main,
    Status,
}

/// `apiVersion` and `kind` in a body must match the URL when present.
fn check_type_meta(strat: &Strategy, body: &Value) -> ApiResult<()> {
    let info = strat.info;
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
    let av = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if (!kind.is_empty() && kind != info.kind) || (!av.is_empty() && av != info.api_version()) {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            info.api_version()
        ))
        .with_kind_detail(kind, info.kind));
    }
    Ok(())
}

impl ApiError {
    fn with_kind_detail(self, got: &str, want: &str) -> Self {
        if got != want && !got.is_empty() {
            return ApiError::bad_request(format!(
                "the kind in the data ({got}) does not match the expected kind ({want})"
            ));
        }
        self
    }
}

/// The namespace an object is written to: the URL's; the body's must be empty or equal.
fn place_namespace(req: &Request, obj: &mut Value) -> ApiResult<String> {
    let t = &req.target;
    if !t.info.namespaced {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        return Ok(String::new());
    }
    let url_ns = t.namespace.clone().unwrap_or_default();
    let body_ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !body_ns.is_empty() && body_ns != url_ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if url_ns.is_empty() {
        return Err(ApiError::bad_request(
            "a namespace must be given in the URL to create namespaced objects",
        ));
    }
    obj["metadata"]["namespace"] = json!(url_ns);
    Ok(url_ns)
}

/// A namespaced object can only be created in an existing, active namespace.
async fn check_namespace(
    state: &AppState,
    strat: &Strategy,
    ns: &str,
    name: &str,
) -> ApiResult<()> {
    if !strat.info.namespaced {
        return Ok(());
    }
    let key = storage::key(&api::resource::NAMESPACE, "", ns);
    match state.storage.get(&key).await? {
        None => Err(ApiError::not_found(&api::resource::NAMESPACE, ns)),
        Some(s) if s.obj.pointer("/metadata/deletionTimestamp").is_some() => {
            Err(ApiError::forbidden(
                strat.info,
                name,
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            ))
        }
        Some(_) => Ok(()),
    }
}

const NAME_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn generate_name(prefix: &str) -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| NAME_CHARS[rng.random_range(0..NAME_CHARS.len())] as char)
        .collect();
    let max_prefix = 63 - 5;
    let prefix = if prefix.len() > max_prefix {
        &prefix[..max_prefix]
    } else {
        prefix
    };
    format!("{prefix}{suffix}")
}

pub async fn create(state: &AppState, req: &Request) -> ApiResult<Response> {
    let strat = strategy::for_info(req.target.info);
    let body = req.json_body()?;
    check_type_meta(strat, &body)?;
    let fv = FieldValidation::parse(req.q("fieldValidation"))?;
    let (mut obj, warnings) = strat.normalize(&body, fv)?;
    let ns = place_namespace(req, &mut obj)?;
    if obj
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
    {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    create_object(state, strat, &ns, obj, &warnings, req.dry_run()).await
}

/// Admit and store a normalized new object. Shared by POST and create-on-PUT.
async fn create_object(
    state: &AppState,
    strat: &Strategy,
    ns: &str,
    mut obj: Value,
    warnings: &[String],
    dry_run: bool,
) -> ApiResult<Response> {
    {
        let meta = obj["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(Time::now()));
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            meta.remove(f);
        }
    }
    strat.prepare_for_create(&mut obj);
    let generated = name_of(&obj).is_empty();
    let prefix = obj
        .pointer("/metadata/generateName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if generated && !prefix.is_empty() {
        obj["metadata"]["name"] = json!(generate_name(&prefix));
    }
    let mut namespace_checked = false;
    let (mut name_attempts, mut allocation_attempts) = (0, 0);
    loop {
        // A Service gets its ClusterIP and node ports here, before validation (as Kubernetes'
        // BeginCreate); what it asked for that is taken or out of range is a 422.
        let mut candidate = obj.clone();
        if let Some(used) = used_for(state, strat).await? {
            state.services.allocate_value(&mut candidate, None, &used)?;
        }
        strat.validate(&candidate)?;
        if !namespace_checked {
            check_namespace(state, strat, ns, name_of(&candidate)).await?;
            namespace_checked = true;
        }
        if dry_run {
            return Ok(object_response(StatusCode::CREATED, &candidate, warnings));
        }
        let name = name_of(&candidate).to_string();
        let key = storage::key(strat.info, ns, &name);
        match state.storage.create_claiming(&key, &candidate).await? {
            Written::Done(stored) => {
                tracing::debug!(kind = strat.info.kind, %ns, %name, "created");
                return Ok(object_response(StatusCode::CREATED, &stored.obj, warnings));
            }
            Written::Moved => {
                name_attempts += 1;
                if !generated || prefix.is_empty() || name_attempts >= 5 {
                    return Err(ApiError::already_exists(strat.info, &name));
                }
                obj["metadata"]["name"] = json!(generate_name(&prefix));
            }
            Written::ClaimTaken(claim) => {
                allocation_attempts += 1;
                tracing::info!(%ns, %name, %claim, attempt = allocation_attempts, "allocation lost a race; picking again");
                if allocation_attempts >= ALLOCATION_ATTEMPTS {
                    return Err(ApiError::claim_taken(&claim));
                }
                allocation_backoff(allocation_attempts).await;
            }
        }
    }
}

/// Kinds that PUT may create, as Kubernetes' `AllowCreateOnUpdate`.
fn allow_create_on_update(kind: &str) -> bool {
    matches!(kind, "Lease" | "Event")
}

/// True once an object marked for deletion may go: no finalizers and no grace period left.
pub fn ready_to_delete(obj: &Value) -> bool {
    let meta = &obj["metadata"];
    meta.get("deletionTimestamp").is_some()
        && meta
            .get("finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty())
        && meta
            .get("deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0
}

/// Server-owned metadata survives every update.
fn keep_server_metadata(new: &mut Value, old: &Value) {
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old["metadata"].get(f) {
            Some(v) => new["metadata"][f] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(f);
                }
            }
        }
    }
}

/// Turn a desired object into the one to store, against the current one. `alloc`: for
/// Services, the allocator and what is taken.
fn admit_update(
    strat: &Strategy,
    mode: Mode,
    mut new: Value,
    cur: &Stored,
    alloc: Option<(&crate::services::Allocator, &Used)>,
) -> ApiResult<Update> {
    let name = name_of(&cur.obj).to_string();
    let want_rv = new
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !want_rv.is_empty() && want_rv != cur.mod_revision.to_string() {
        return Err(ApiError::conflict(strat.info, &name));
    }
    keep_server_metadata(&mut new, &cur.obj);
    match mode {
        Mode::Main => {
            strat.prepare_for_update(&mut new, &cur.obj);
            if let Some((allocator, used)) = alloc {
                allocator.allocate_value(&mut new, Some(&cur.obj), used)?;
            }
        }
        Mode::Status => strat.prepare_for_status_update(&mut new, &cur.obj),
    }
    strat.validate_update(&new, &cur.obj)?;
    // Once marked for deletion, finalizers can only be removed (Kubernetes forbids adding).
    if ready_to_delete(&new) {
        return Ok(Update::Delete);
    }
    let mut cmp = new.clone();
    storage::set_resource_version(&mut cmp, cur.mod_revision);
    if cmp == cur.obj {
        return Ok(Update::Noop);
    }
    Ok(Update::Write(new))
}

pub async fn update(state: &AppState, req: &Request, mode: Mode) -> ApiResult<Response> {
    let t = &req.target;
    let strat = strategy::for_info(t.info);
    let name = t.name.clone().unwrap_or_default();
    let body = req.json_body()?;
    check_type_meta(strat, &body)?;
    let fv = FieldValidation::parse(req.q("fieldValidation"))?;
    let (mut obj, warnings) = strat.normalize(&body, fv)?;
    let ns = place_namespace(req, &mut obj)?;
    let body_name = name_of(&obj).to_string();
    if body_name.is_empty() {
        obj["metadata"]["name"] = json!(name);
    } else if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let key = storage::key(t.info, &ns, &name);
    if req.dry_run() {
        let cur = state
            .storage
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::not_found(t.info, &name))?;
        let used = used_for(state, strat).await?;
        let alloc = used.as_ref().map(|u| (&state.services, u));
        return match admit_update(strat, mode, obj, &cur, alloc)? {
            Update::Write(o) => Ok(object_response(StatusCode::OK, &o, &warnings)),
            _ => Ok(object_response(StatusCode::OK, &cur.obj, &warnings)),
        };
    }
    let mut missing = false;
    let mut attempt = 0;
    let res = loop {
        let used = used_for(state, strat).await?;
        let alloc = used.as_ref().map(|u| (&state.services, u));
        let res = state
            .storage
            .guaranteed_update(&key, |cur| match cur {
                None => {
                    missing = true;
                    Ok(Update::Noop)
                }
                Some(cur) => admit_update(strat, mode, obj.clone(), cur, alloc),
            })
            .await;
        match res {
            Err(e) if e.taken_claim().is_some() && attempt + 1 < ALLOCATION_ATTEMPTS => {
                attempt += 1;
                allocation_backoff(attempt).await;
            }
            other => break other?,
        }
    };
    if missing {
        if allow_create_on_update(t.info.kind) && mode == Mode::Main {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            return create_object(state, strat, &ns, obj, &warnings, false).await;
        }
        return Err(ApiError::not_found(t.info, &name));
    }
    match res {
        Some(s) => Ok(object_response(StatusCode::OK, &s.obj, &warnings)),
        None => Ok(crate::handlers::success_status(t, &name, "")),
    }
}

pub async fn patch(state: &AppState, req: &Request, mode: Mode) -> ApiResult<Response> {
    let t = &req.target;
    let strat = strategy::for_info(t.info);
    let name = t.name.clone().unwrap_or_default();
    let ns = t.namespace.clone().unwrap_or_default();
    let kind = patch::Kind::from_content_type(req.content_type())?;
    let patch_body = req.json_body()?;
    let fv = FieldValidation::parse(req.q("fieldValidation"))?;
    let key = storage::key(t.info, &ns, &name);
    let mut warnings = Vec::new();
    let mut missing = false;
    let dry_run = req.dry_run();
    let mut dry_result = None;
    let mut attempt = 0;
    let res = loop {
        let used = used_for(state, strat).await?;
        let alloc = used.as_ref().map(|u| (&state.services, u));
        let res = state
            .storage
            .guaranteed_update(&key, |cur| {
                let Some(cur) = cur else {
                    missing = true;
                    return Ok(Update::Noop);
                };
                let patched = patch::apply(kind, t.info, &cur.obj, &patch_body)?;
                check_type_meta(strat, &patched)?;
                let (mut obj, w) = strat.normalize(&patched, fv)?;
                warnings = w;
                if t.info.namespaced {
                    obj["metadata"]["namespace"] = json!(ns);
                }
                if name_of(&obj) != name {
                    return Err(ApiError::bad_request(
                        "metadata.name cannot be changed by a patch",
                    ));
                }
                let decision = admit_update(strat, mode, obj, cur, alloc)?;
                if dry_run {
                    dry_result = Some(match &decision {
                        Update::Write(o) => o.clone(),
                        _ => cur.obj.clone(),
                    });
                    return Ok(Update::Noop);
                }
                Ok(decision)
            })
            .await;
        match res {
            Err(e) if e.taken_claim().is_some() && attempt + 1 < ALLOCATION_ATTEMPTS => {
                attempt += 1;
                allocation_backoff(attempt).await;
            }
            other => break other?,
        }
    };
    if missing {
        return Err(ApiError::not_found(t.info, &name));
    }
    if let Some(o) = dry_result {
        return Ok(object_response(StatusCode::OK, &o, &warnings));
    }
    match res {
        Some(s) => Ok(object_response(StatusCode::OK, &s.obj, &warnings)),
        None => Ok(crate::handlers::success_status(t, &name, "")),
    }
}
