//! Subresources: `pods/binding`, `*/scale`, `pods/log` and `namespaces/finalize` (`pods/exec`
//! is [`super::exec`]).

use api::apps::Scale;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult, json_response};
use crate::handlers::{Request, object_response};
use crate::patch;
use crate::server::AppState;
use crate::storage::{self, Update};

/// `POST pods/NAME/binding`: set `spec.nodeName` once, and mark the pod scheduled.
pub async fn bind(state: &AppState, req: &Request) -> ApiResult<Response> {
    let t = &req.target;
    let name = t.name.clone().unwrap_or_default();
    let ns = t.namespace.clone().unwrap_or_default();
    let body = req.json_body()?;
    let node = body
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                t.info,
                &name,
                &[api::validation::FieldError::required("target.name", "")],
            )
        })?
        .to_string();
    let key = storage::key(t.info, &ns, &name);
    let mut missing = false;
    state
        .storage
        .guaranteed_update(&key, |cur| {
            let Some(cur) = cur else {
                missing = true;
                return Ok(Update::Noop);
            };
            let mut pod = cur.obj.clone();
            if pod.pointer("/metadata/deletionTimestamp").is_some() {
                return Err(ApiError::conflict_with(t.info, &name, "pod is being deleted, cannot be assigned to a host"));
            }
            let current = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
            if !current.is_empty() {
                return Err(ApiError::conflict_with(
                    t.info,
                    &name,
                    &format!("pod {name} is already assigned to node {current:?}"),
                ));
            }
            pod["spec"]["nodeName"] = json!(node);
            let now = api::meta::Time::now();
            let conds = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
            let mut conds: Vec<Value> = conds.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
            conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
            pod["status"]["conditions"] = json!(conds);
            Ok(Update::Write(pod))
        })
        .await?;
    if missing {
        return Err(ApiError::not_found(t.info, &name));
    }
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(json_response(StatusCode::CREATED, &status))
}

/// `POST pods/NAME/eviction` (policy/v1 Eviction, what `kubectl drain` sends): delete the pod
/// gracefully with the eviction's delete options. kube-lite has no PodDisruptionBudgets, so
/// every eviction is allowed; a pod already terminating is left to finish.
pub async fn evict(state: &AppState, req: &Request) -> ApiResult<Response> {
    let t = &req.target;
    let name = t.name.clone().unwrap_or_default();
    let body = req.json_body()?;
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
    let av = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if (!kind.is_empty() && kind != "Eviction")
        || (!av.is_empty() && !matches!(av, "policy/v1" | "policy/v1beta1"))
    {
        return Err(ApiError::bad_request(format!(
            "the body of the request must be a policy/v1 Eviction, not {av} {kind}"
        )));
    }
    let body_name = body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if body_name != name {
        return Err(ApiError::bad_request(format!(
            "name in URL does not match name in Eviction object: {name:?} vs {body_name:?}"
        )));
    }
    let opts: api::meta::DeleteOptions = match body.get("deleteOptions") {
        Some(d) if !d.is_null() => serde_json::from_value(d.clone())
            .map_err(|e| ApiError::bad_request(format!("invalid deleteOptions: {e}")))?,
        _ => Default::default(),
    };
    crate::handlers::delete::check_options(&opts)?;
    let key = storage::key(t.info, t.namespace.as_deref().unwrap_or_default(), &name);
    let pod = state
        .storage
        .get(&key)
        .await?
        .ok_or_else(|| ApiError::not_found(t.info, &name))?;
    let dry_run = req.dry_run() || opts.dry_run.iter().any(|d| d == "All");
    if pod.obj.pointer("/metadata/deletionTimestamp").is_none() {
        crate::handlers::delete::delete_with(state, t, &opts, dry_run).await?;
    }
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(json_response(StatusCode::CREATED, &status))
}

fn scale_of(obj: &Value, info: &api::ResourceInfo) -> ApiResult<Value> {
    let selector: api::meta::LabelSelector =
        serde_json::from_value(obj.pointer("/spec/selector").cloned().unwrap_or(json!({})))
            .unwrap_or_default();
    let sel = api::selector::Selector::from_label_selector(&selector)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let meta = &obj["metadata"];
    let scale = Scale {
        api_version: "autoscaling/v1".into(),
        kind: "Scale".into(),
        metadata: api::ObjectMeta {
            name: meta["name"].as_str().unwrap_or_default().into(),
            namespace: meta["namespace"].as_str().unwrap_or_default().into(),
            uid: meta["uid"].as_str().unwrap_or_default().into(),
            resource_version: meta["resourceVersion"].as_str().unwrap_or_default().into(),
            creation_timestamp: serde_json::from_value(meta["creationTimestamp"].clone()).ok(),
            ..Default::default()
        },
        spec: api::apps::ScaleSpec {
            replicas: obj
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1) as i32,
        },
        status: api::apps::ScaleStatus {
            replicas: obj
                .pointer("/status/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0) as i32,
            selector: sel,
        },
    };
    let _ = info;
    serde_json::to_value(scale).map_err(|e| ApiError::internal(e.to_string()))
}

pub async fn get_scale(state: &AppState, req: &Request) -> ApiResult<Response> {
    let t = &req.target;
    let name = t.name.clone().unwrap_or_default();
    let key = storage::key(t.info, t.namespace.as_deref().unwrap_or_default(), &name);
    let cur = state
        .storage
        .get(&key)
        .await?
        .ok_or_else(|| ApiError::not_found(t.info, &name))?;
    Ok(object_response(
        StatusCode::OK,
        &scale_of(&cur.obj, t.info)?,
        &[],
    ))
}

/// PUT or PATCH a Scale: only `spec.replicas` of the object changes.
pub async fn update_scale(state: &AppState, req: &Request) -> ApiResult<Response> {
    let t = &req.target;
    let name = t.name.clone().unwrap_or_default();
    let key = storage::key(t.info, t.namespace.as_deref().unwrap_or_default(), &name);
    let body = req.json_body()?;
    let is_patch = req.method == axum::http::Method::PATCH;
    let kind = if is_patch {
        Some(patch::Kind::from_content_type(req.content_type())?)
    } else {
        None
    };
    let strat = crate::strategy::for_info(t.info);
    let mut missing = false;
    let res = state
        .storage
        .guaranteed_update(&key, |cur| {
            let Some(cur) = cur else {
                missing = true;
                return Ok(Update::Noop);
            };
            let current_scale = scale_of(&cur.obj, t.info)?;
            let desired = match kind {
                Some(k) => patch::apply(k, t.info, &current_scale, &body)?,
                None => body.clone(),
            };
            let rv = desired
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !is_patch && !rv.is_empty() && rv != cur.mod_revision.to_string() {
                return Err(ApiError::conflict(t.info, &name));
            }
            let replicas = desired
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .ok_or_else(|| ApiError::bad_request("spec.replicas must be an integer"))?;
            if replicas < 0 {
                return Err(ApiError::invalid(
                    t.info,
                    &name,
                    &[api::validation::FieldError::invalid(
                        "spec.replicas",
                        replicas,
                        "must be greater than or equal to 0",
                    )],
                ));
            }
            let mut obj = cur.obj.clone();
            if obj.pointer("/spec/replicas").and_then(Value::as_i64) == Some(replicas) {
                return Ok(Update::Noop);
            }
            obj["spec"]["replicas"] = json!(replicas);
            strat.prepare_for_update(&mut obj, &cur.obj);
            Ok(Update::Write(obj))
        })
        .await?;
    if missing {
        return Err(ApiError::not_found(t.info, &name));
    }
    let obj = res.map(|s| s.obj).unwrap_or(Value::Null);
    Ok(object_response(
        StatusCode::OK,
        &scale_of(&obj, t.info)?,
        &[],
    ))
}

/// The pod a subresource request addresses, or 404.
pub(crate) async fn get_pod(state: &AppState, req: &Request) -> ApiResult<Value> {
    let t = &req.target;
    let name = t.name.clone().unwrap_or_default();
    let ns = t.namespace.clone().unwrap_or_default();
    Ok(state
        .storage
        .get(&storage::key(t.info, &ns, &name))
        .await?
        .ok_or_else(|| ApiError::not_found(t.info, &name))?
        .obj)
}

/// The container a `log` or `exec` request is for: the one asked for (which must be one of
/// the pod's), else the pod's only one.
pub(crate) fn choose_container(pod: &Value, name: &str, asked: Option<&str>) -> ApiResult<String> {
    let containers: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    match asked {
        Some(c) if containers.iter().any(|x| x == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            containers.join(" ")
        ))),
    }
}

/// Where the kubelet of node `node_name` listens (`ip:port`, from the Node's status).
pub(crate) async fn kubelet_address(
    state: &AppState,
    node_name: &str,
    pod_name: &str,
) -> ApiResult<String> {
    let node = state
        .storage
        .get(&storage::key(&api::resource::NODE, "", node_name))
        .await?
        .ok_or_else(|| {
            ApiError::internal(format!("node {node_name:?} of pod {pod_name:?} not found"))
        })?
        .obj;
    let ip = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
        .and_then(|x| x["address"].as_str())
        .unwrap_or("127.0.0.1")
        .to_string();
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_i64)
        .unwrap_or(10250);
    Ok(if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    })
}

/// The node a pod is bound to, if any.
pub(crate) fn node_of(pod: &Value) -> &str {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `GET pods/NAME/log`: proxied to the kubelet of the pod's node, streamed as it comes.
pub async fn log(state: &AppState, req: &Request) -> ApiResult<Response> {
    let t = &req.target;
    let name = t.name.clone().unwrap_or_default();
    let ns = t.namespace.clone().unwrap_or_default();
    let pod = get_pod(state, req).await?;
    let container = choose_container(&pod, &name, req.q("container"))?;
    let node_name = node_of(&pod);
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "container {container:?} in pod {name:?} is waiting to start: pod is not scheduled"
        )));
    }
    let address = kubelet_address(state, node_name, &name).await?;
    let mut q = Vec::new();
    for k in [
        "follow",
        "previous",
        "timestamps",
        "tailLines",
        "sinceSeconds",
        "limitBytes",
        "sinceTime",
    ] {
        if let Some(v) = req.q(k) {
            q.push(format!("{k}={}", v.replace('&', "%26").replace('+', "%2B")));
        }
    }
    let url = format!(
        "http://{address}/containerLogs/{ns}/{name}/{container}{}{}",
        if q.is_empty() { "" } else { "?" },
        q.join("&")
    );
    let resp = state.http.get(&url).send().await.map_err(|e| {
        ApiError::internal(format!(
            "failed to reach the kubelet of node {node_name:?}: {e}"
        ))
    })?;
    if !resp.status().is_success() {
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        return Err(ApiError::new(
            if code == 404 { 404 } else { 400 },
            if code == 404 {
                "NotFound"
            } else {
                "BadRequest"
            },
            text.trim().to_string(),
        ));
    }
    let shutdown = state.shutdown.clone();
    let stream = resp
        .bytes_stream()
        .take_until(async move { shutdown.cancelled().await });
    let mut out = Response::new(Body::from_stream(stream));
    out.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(out)
}

/// `PUT namespaces/NAME/finalize`: set `spec.finalizers`; a terminating namespace whose
/// finalizers are all gone is removed.
pub async fn finalize(state: &AppState, req: &Request) -> ApiResult<Response> {
    let t = &req.target;
    let name = t.name.clone().unwrap_or_default();
    let key = storage::key(t.info, "", &name);
    let body = req.json_body()?;
    let finalizers = body
        .pointer("/spec/finalizers")
        .cloned()
        .unwrap_or(json!([]));
    let mut missing = false;
    let res = state
        .storage
        .guaranteed_update(&key, |cur| {
            let Some(cur) = cur else {
                missing = true;
                return Ok(Update::Noop);
            };
            let mut obj = cur.obj.clone();
            obj["spec"]["finalizers"] = finalizers.clone();
            let empty = finalizers.as_array().is_none_or(|a| a.is_empty());
            if empty
                && obj.pointer("/metadata/deletionTimestamp").is_some()
                && crate::handlers::write::ready_to_delete(&obj)
            {
                return Ok(Update::Delete);
            }
            Ok(Update::Write(obj))
        })
        .await?;
    if missing {
        return Err(ApiError::not_found(t.info, &name));
    }
    match res {
        Some(s) => Ok(object_response(StatusCode::OK, &s.obj, &[])),
        None => Ok(crate::handlers::success_status(t, &name, "")),
    }
}
