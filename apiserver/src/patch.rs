//! PATCH bodies: RFC 7386 JSON merge patch and RFC 6902 JSON patch (through the `json-patch`
//! crate), and Kubernetes' strategic merge patch — lists merged by their merge key, `$patch`,
//! `$retainKeys`, `$setElementOrder/…` and `$deleteFromPrimitiveList/…` directives — which is
//! what kubectl sends for `apply`, `set image` and `edit`.

use api::ResourceInfo;
use api::merge_keys::{ListStrategy, list_strategy_at};
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Merge,
    Json,
    Strategic,
}

impl Kind {
    pub fn from_content_type(ct: &str) -> ApiResult<Kind> {
        match ct {
            "application/merge-patch+json" => Ok(Kind::Merge),
            "application/json-patch+json" => Ok(Kind::Json),
            "application/strategic-merge-patch+json" => Ok(Kind::Strategic),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }
}

/// Apply a patch to the current object.
pub fn apply(kind: Kind, info: &ResourceInfo, current: &Value, patch: &Value) -> ApiResult<Value> {
    let mut doc = current.clone();
    match kind {
        Kind::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            json_patch::merge(&mut doc, patch);
        }
        Kind::Json => {
            let p: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("the JSON patch is invalid: {e}")))?;
            json_patch::patch(&mut doc, &p).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the JSON patch could not be applied: {e}"),
                )
            })?;
        }
        Kind::Strategic => {
            let Value::Object(p) = patch else {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            };
            doc = strategic_merge(info.kind, doc, p, "")?;
        }
    }
    Ok(doc)
}

/// The merge key of the list at `path` in an object of `kind` (`api::merge_keys`: the
/// `patchMergeKey` tags of the Kubernetes types). `None`: the list is replaced as a whole (or,
/// for `finalizers`, merged as a set).
fn merge_key(kind: &str, path: &str) -> Option<&'static str> {
    match list_strategy_at(kind, path) {
        ListStrategy::Merge { key, .. } => Some(key),
        _ => None,
    }
}

/// Primitive lists merged as sets.
fn is_set_list(kind: &str, path: &str) -> bool {
    list_strategy_at(kind, path) == ListStrategy::MergeScalars
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// Merge `patch` into the map at `path` (dotted from the root) of an object of `kind`.
fn strategic_merge(
    kind: &str,
    original: Value,
    patch: &Map<String, Value>,
    path: &str,
) -> ApiResult<Value> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut p = patch.clone();
            p.remove("$patch");
            return Ok(Value::Object(p));
        }
        Some("delete") => return Ok(Value::Null),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type: {other}"
            )));
        }
        None => {}
    }
    let mut out = match original {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    // Directives about lists, applied after the merge.
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    let mut deletes: Vec<(String, Vec<Value>)> = Vec::new();
    let mut retain: Option<Vec<String>> = None;
    for (k, v) in patch {
        if let Some(list) = k.strip_prefix("$setElementOrder/") {
            orders.push((list.to_string(), v.as_array().cloned().unwrap_or_default()));
            continue;
        }
        if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
            deletes.push((list.to_string(), v.as_array().cloned().unwrap_or_default()));
            continue;
        }
        if k == "$retainKeys" {
            retain = Some(
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
            );
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                out.remove(k);
            }
            Value::Object(pm) => {
                let cur = out.remove(k).unwrap_or(Value::Null);
                let merged = strategic_merge(kind, cur, pm, &join(path, k))?;
                if !merged.is_null() {
                    out.insert(k.clone(), merged);
                }
            }
            Value::Array(pl) => {
                let cur = out.remove(k).unwrap_or(Value::Array(vec![]));
                let merged = merge_list(kind, &join(path, k), cur, pl)?;
                out.insert(k.clone(), merged);
            }
            other => {
                out.insert(k.clone(), other.clone());
            }
        }
    }
    for (list, values) in deletes {
        if let Some(Value::Array(items)) = out.get_mut(&list) {
            items.retain(|i| !values.contains(i));
        }
    }
    for (list, order) in orders {
        if let Some(Value::Array(items)) = out.get_mut(&list) {
            reorder(kind, &join(path, &list), items, &order);
        }
    }
    if let Some(keys) = retain {
        out.retain(|k, _| keys.contains(k));
    }
    Ok(Value::Object(out))
}

fn merge_list(kind: &str, field: &str, current: Value, patch: &[Value]) -> ApiResult<Value> {
    let current = match current {
        Value::Array(a) => a,
        _ => vec![],
    };
    if patch
        .iter()
        .any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(Value::Array(
            patch
                .iter()
                .filter(|p| p.get("$patch").is_none())
                .cloned()
                .collect(),
        ));
    }
    if is_set_list(kind, field) {
        let mut out = current;
        for p in patch {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        return Ok(Value::Array(out));
    }
    let Some(key) = merge_key(kind, field) else {
        return Ok(Value::Array(patch.to_vec()));
    };
    let mut out = current;
    for p in patch {
        let Some(pm) = p.as_object() else {
            return Err(ApiError::bad_request(format!(
                "list {field:?} must contain objects"
            )));
        };
        let Some(kv) = pm.get(key) else {
            return Err(ApiError::bad_request(format!(
                "map: {p} does not contain declared merge key: {key}"
            )));
        };
        let pos = out.iter().position(|e| e.get(key) == Some(kv));
        if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(i) = pos {
                out.remove(i);
            }
            continue;
        }
        match pos {
            Some(i) => {
                let cur = std::mem::take(&mut out[i]);
                out[i] = strategic_merge(kind, cur, pm, field)?;
            }
            None => out.push(strategic_merge(kind, Value::Null, pm, field)?),
        }
    }
    Ok(Value::Array(out))
}

/// Order merged list items as `$setElementOrder` says; items it does not name keep their
/// relative order after the named ones.
fn reorder(kind: &str, field: &str, items: &mut [Value], order: &[Value]) {
    let rank = |item: &Value| -> usize {
        order
            .iter()
            .position(|o| match merge_key(kind, field) {
                Some(k) => o.get(k).is_some() && o.get(k) == item.get(k),
                None => o == item,
            })
            .unwrap_or(usize::MAX)
    };
    items.sort_by_key(rank);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(cur: Value, patch: Value) -> Value {
        apply(Kind::Strategic, &api::resource::DEPLOYMENT, &cur, &patch).unwrap()
    }

    #[test]
    fn containers_merge_by_name() {
        let cur = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ]}}}});
        let out = smp(
            cur,
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [{"name": "b", "image": "b:2"}]
            }}}}),
        );
        let cs = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["image"], "a:1");
        assert_eq!(cs[0]["env"][0]["value"], "1");
        assert_eq!(cs[1]["image"], "b:2");
    }

    #[test]
    fn service_ports_merge_by_port_and_slice_ports_are_replaced() {
        let cur = json!({"spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": 8000, "nodePort": 30080, "protocol": "TCP"},
            {"name": "metrics", "port": 9100, "protocol": "TCP"}
        ]}});
        let patch = json!({"spec": {
            "$setElementOrder/ports": [{"port": 80}, {"port": 9100}],
            "ports": [{"port": 80, "targetPort": 9000}]
        }});
        let out = apply(Kind::Strategic, &api::resource::SERVICE, &cur, &patch).unwrap();
        assert_eq!(
            out["spec"]["ports"][0],
            json!({"name": "http", "port": 80, "targetPort": 9000, "nodePort": 30080, "protocol": "TCP"})
        );
        assert_eq!(out["spec"]["ports"][1]["name"], "metrics");
        let slice = json!({"ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]});
        let out = apply(
            Kind::Strategic,
            &api::resource::ENDPOINT_SLICE,
            &slice,
            &json!({"ports": [{"name": "c", "port": 3}]}),
        )
        .unwrap();
        assert_eq!(out["ports"], json!([{"name": "c", "port": 3}]));
    }

    #[test]
    fn null_deletes_and_patch_directives() {
        let cur = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
                         "spec": {"containers": [{"name": "a"}, {"name": "b"}], "args": ["1", "2"]}});
        let out = smp(
            cur,
            json!({
                "metadata": {"labels": {"a": null}, "finalizers": ["y"]},
                "spec": {"containers": [{"name": "a", "$patch": "delete"}], "args": ["3"]}
            }),
        );
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
        assert_eq!(out["spec"]["containers"], json!([{"name": "b"}]));
        assert_eq!(
            out["spec"]["args"],
            json!(["3"]),
            "lists without a merge key are replaced"
        );
        let out = smp(
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn merge_and_json_patch() {
        let cur = json!({"spec": {"replicas": 1, "x": [1, 2]}});
        let m = apply(
            Kind::Merge,
            &api::resource::DEPLOYMENT,
            &cur,
            &json!({"spec": {"replicas": 3, "x": [3]}}),
        )
        .unwrap();
        assert_eq!(m, json!({"spec": {"replicas": 3, "x": [3]}}));
        let j = apply(
            Kind::Json,
            &api::resource::DEPLOYMENT,
            &cur,
            &json!([{"op": "replace", "path": "/spec/replicas", "value": 5}]),
        )
        .unwrap();
        assert_eq!(j["spec"]["replicas"], 5);
        assert!(
            apply(
                Kind::Json,
                &api::resource::DEPLOYMENT,
                &cur,
                &json!([{"op": "remove", "path": "/nope"}])
            )
            .is_err()
        );
    }
}
