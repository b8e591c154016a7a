//! The three-way strategic merge patch of client-side `kubectl apply`
//! (apimachinery's `strategicpatch.CreateThreeWayMergePatch`), from:
//! - *original*: the last-applied configuration (the annotation on the live object),
//! - *modified*: the manifest being applied (with its new annotation),
//! - *current*: the live object.
//!
//! The patch is *delta* (current → modified, additions and changes only) merged with
//! *deletions* (original → modified, deletions only): fields the user removed from the manifest
//! are deleted, fields the server or controllers added are left alone. Lists with a merge key
//! (containers by `name`, ports by `containerPort`, …) are patched element by element, with
//! `$setElementOrder/<list>` giving the manifest's order and `$patch: delete` removing elements;
//! other lists are replaced whole. Which list is which comes from [`api::merge_keys`] (by the
//! object's kind and the list's path: a Service's `spec.ports` merge by `port`), the table the
//! API server applies patches with.
//!
//! [`two_way`] is the patch of `kubectl edit` and `set image`: from the object as it was to the
//! object as wanted, deletions included.

use api::merge_keys::{ListStrategy, list_strategy_at, retains_keys};
use serde_json::{Map, Value, json};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatchError {
    #[error("map: {element} does not contain declared merge key: {key}")]
    NoMergeKey { element: String, key: String },
    #[error("lists of lists are not supported: {0}")]
    ListOfLists(String),
}

/// Which half of the three-way patch a diff computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// current → modified: additions and changes, never deletions.
    Delta,
    /// original → modified: deletions only.
    Deletions,
}

/// The patch to send; `{}` means nothing to do (`unchanged`).
pub fn three_way(original: &Value, modified: &Value, current: &Value) -> Result<Value, PatchError> {
    let empty = Map::new();
    let as_map = |v: &'_ Value| v.as_object().cloned().unwrap_or_else(|| empty.clone());
    let kind = [
        modified.get("kind"),
        current.get("kind"),
        original.get("kind"),
    ]
    .into_iter()
    .flatten()
    .find_map(Value::as_str)
    .unwrap_or("")
    .to_string();
    let (original, modified, current) = (as_map(original), as_map(modified), as_map(current));
    let at = At {
        kind: &kind,
        path: String::new(),
    };
    let delta = diff_maps(&at, &current, &modified, Pass::Delta, false)?;
    let deletions = diff_maps(&at, &original, &modified, Pass::Deletions, false)?;
    Ok(Value::Object(merge_patches(&at, deletions, delta)))
}

/// The two-way strategic merge patch from `original` to `modified`
/// (`strategicpatch.CreateTwoWayMergePatch`): changes, additions and deletions.
pub fn two_way(original: &Value, modified: &Value) -> Result<Value, PatchError> {
    three_way(original, modified, original)
}

/// Go's `reflect.DeepEqual` on decoded JSON, where every number is a float64.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Where a diff is: the object's kind and the dotted path of the map being diffed (list
/// elements share their list's path), for [`list_strategy_at`].
struct At<'a> {
    kind: &'a str,
    path: String,
}

impl At<'_> {
    fn child(&self, field: &str) -> At<'_> {
        At {
            kind: self.kind,
            path: if self.path.is_empty() {
                field.to_string()
            } else {
                format!("{}.{field}", self.path)
            },
        }
    }

    fn strategy(&self) -> ListStrategy {
        list_strategy_at(self.kind, &self.path)
    }
}

/// Same JSON type (Go compares `reflect.TypeOf`).
fn same_type(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

fn diff_maps(
    at: &At,
    original: &Map<String, Value>,
    modified: &Map<String, Value>,
    pass: Pass,
    retain_keys: bool,
) -> Result<Map<String, Value>, PatchError> {
    let mut patch = Map::new();
    for (key, m) in modified {
        let Some(o) = original.get(key) else {
            if pass == Pass::Delta {
                patch.insert(key.clone(), m.clone());
            }
            continue;
        };
        if key == "$patch" {
            if o != m {
                patch.insert(key.clone(), m.clone());
            }
            continue;
        }
        if !same_type(o, m) {
            if pass == Pass::Delta {
                patch.insert(key.clone(), m.clone());
            }
            continue;
        }
        match (o, m) {
            (Value::Object(om), Value::Object(mm)) => {
                let sub = diff_maps(&at.child(key), om, mm, pass, retains_keys(key))?;
                if !sub.is_empty() {
                    patch.insert(key.clone(), Value::Object(sub));
                }
            }
            (Value::Array(ol), Value::Array(ml)) => {
                diff_slice(&at.child(key), key, ol, ml, pass, &mut patch)?
            }
            _ => {
                if pass == Pass::Delta && !json_equal(o, m) {
                    patch.insert(key.clone(), m.clone());
                }
            }
        }
    }
    if pass == Pass::Deletions {
        for key in original.keys() {
            if !modified.contains_key(key) {
                patch.insert(key.clone(), Value::Null);
            }
        }
    }
    if retain_keys {
        let mut keys: Vec<&String> = modified
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| k)
            .collect();
        let extra = original
            .iter()
            .any(|(k, v)| !v.is_null() && !modified.contains_key(k));
        if !keys.is_empty() && (!patch.is_empty() || extra) {
            keys.sort();
            patch.insert("$retainKeys".into(), json!(keys));
        }
    }
    Ok(patch)
}

fn diff_slice(
    at: &At,
    key: &str,
    original: &[Value],
    modified: &[Value],
    pass: Pass,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let strategy = at.strategy();
    let elements_are_maps = modified.iter().chain(original).all(Value::is_object);
    let elements_are_scalars = modified
        .iter()
        .chain(original)
        .all(|v| !v.is_object() && !v.is_array());
    match strategy {
        ListStrategy::Merge {
            key: merge_key,
            retain_keys,
        } if elements_are_maps => {
            if original.is_empty() {
                if pass == Pass::Delta && !modified.is_empty() {
                    patch.insert(key.into(), Value::Array(modified.to_vec()));
                }
                return Ok(());
            }
            let (list, order) =
                diff_lists_of_maps(at, original, modified, merge_key, retain_keys, pass)?;
            if !list.is_empty() {
                patch.insert(key.into(), Value::Array(list));
            }
            if let Some(order) = order.filter(|o| !o.is_empty()) {
                patch.insert(format!("$setElementOrder/{key}"), Value::Array(order));
            }
        }
        ListStrategy::MergeScalars if elements_are_scalars => {
            if original.is_empty() {
                if pass == Pass::Delta && !modified.is_empty() {
                    patch.insert(key.into(), Value::Array(modified.to_vec()));
                }
                return Ok(());
            }
            let text = |v: &Value| {
                v.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string())
            };
            let in_list = |l: &[Value], v: &Value| l.iter().any(|x| text(x) == text(v));
            let mut changed = false;
            if pass == Pass::Delta {
                let added: Vec<Value> = modified
                    .iter()
                    .filter(|v| !in_list(original, v))
                    .cloned()
                    .collect();
                if !added.is_empty() {
                    patch.insert(key.into(), Value::Array(added));
                }
                changed = !json_equal(
                    &Value::Array(original.to_vec()),
                    &Value::Array(modified.to_vec()),
                );
            } else {
                let mut deleted: Vec<Value> = Vec::new();
                for v in original.iter().filter(|v| !in_list(modified, v)) {
                    if !in_list(&deleted, v) {
                        deleted.push(v.clone());
                    }
                }
                if !deleted.is_empty() {
                    patch.insert(
                        format!("$deleteFromPrimitiveList/{key}"),
                        Value::Array(deleted),
                    );
                    changed = true;
                }
            }
            if changed && !modified.is_empty() {
                patch.insert(
                    format!("$setElementOrder/{key}"),
                    Value::Array(modified.to_vec()),
                );
            }
        }
        _ if original.iter().chain(modified).any(Value::is_array)
            && strategy != ListStrategy::Replace =>
        {
            return Err(PatchError::ListOfLists(key.to_string()));
        }
        _ => {
            if pass == Pass::Delta
                && !json_equal(
                    &Value::Array(original.to_vec()),
                    &Value::Array(modified.to_vec()),
                )
            {
                patch.insert(key.into(), Value::Array(modified.to_vec()));
            }
        }
    }
    Ok(())
}

/// The merge key's value of a list element, as text (Go compares `fmt.Sprintf("%v")`).
fn merge_key_text(element: &Value, key: &str) -> Result<String, PatchError> {
    match element.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Ok(v.to_string()),
        None => Err(PatchError::NoMergeKey {
            element: element.to_string(),
            key: key.to_string(),
        }),
    }
}

/// Element patches for a merge-keyed list, and the `$setElementOrder` list when one is due.
fn diff_lists_of_maps(
    at: &At,
    original: &[Value],
    modified: &[Value],
    merge_key: &str,
    retain_keys: bool,
    pass: Pass,
) -> Result<(Vec<Value>, Option<Vec<Value>>), PatchError> {
    let empty = Map::new();
    let mut list = Vec::new();
    for m in modified {
        let mk = merge_key_text(m, merge_key)?;
        let mut found = None;
        for o in original {
            if merge_key_text(o, merge_key)? == mk {
                found = Some(o);
                break;
            }
        }
        match found {
            Some(o) => {
                let om = o.as_object().unwrap_or(&empty);
                let mm = m.as_object().unwrap_or(&empty);
                let mut sub = diff_maps(at, om, mm, pass, retain_keys)?;
                if !sub.is_empty() {
                    sub.insert(
                        merge_key.into(),
                        m.get(merge_key).cloned().unwrap_or(Value::Null),
                    );
                    list.push(Value::Object(sub));
                }
            }
            None if pass == Pass::Delta => list.push(m.clone()),
            None => {}
        }
    }
    if pass == Pass::Deletions {
        let mut modified_keys = Vec::new();
        for m in modified {
            modified_keys.push(merge_key_text(m, merge_key)?);
        }
        for o in original {
            if !modified_keys.contains(&merge_key_text(o, merge_key)?) {
                list.push(json!({ merge_key: o.get(merge_key).cloned().unwrap_or(Value::Null), "$patch": "delete" }));
            }
        }
    }
    let order_same = original.len() == modified.len()
        && original
            .iter()
            .zip(modified)
            .all(|(o, m)| merge_key_text(o, merge_key).ok() == merge_key_text(m, merge_key).ok());
    let due = match pass {
        Pass::Delta => !list.is_empty() || !order_same,
        Pass::Deletions => !list.is_empty(),
    };
    let order = due.then(|| {
        modified
            .iter()
            .map(|m| json!({ merge_key: m.get(merge_key).cloned().unwrap_or(Value::Null) }))
            .collect()
    });
    Ok((list, order))
}

/// Merge the delta patch into the deletions patch (they never set the same scalar: deletions
/// only name fields missing from the manifest, delta only fields in it).
fn merge_patches(
    at: &At,
    mut deletions: Map<String, Value>,
    delta: Map<String, Value>,
) -> Map<String, Value> {
    for (k, d) in delta {
        let child = at.child(&k);
        let merged = match (deletions.remove(&k), d) {
            (Some(Value::Object(a)), Value::Object(b)) => {
                Value::Object(merge_patches(&child, a, b))
            }
            (Some(Value::Array(a)), Value::Array(b)) => match child.strategy() {
                ListStrategy::Merge { key, .. } => {
                    Value::Array(merge_element_patches(&child, a, b, key))
                }
                _ => Value::Array(b),
            },
            (_, d) => d,
        };
        deletions.insert(k, merged);
    }
    deletions
}

/// Element patches of both halves: delta's first (in the manifest's order), then deletions.
fn merge_element_patches(
    at: &At,
    deletions: Vec<Value>,
    delta: Vec<Value>,
    key: &str,
) -> Vec<Value> {
    let mut rest = deletions;
    let mut out = Vec::with_capacity(rest.len() + delta.len());
    for d in delta {
        let pos = rest
            .iter()
            .position(|x| x.get(key).is_some() && x.get(key) == d.get(key));
        match (pos.map(|i| rest.remove(i)), d) {
            (Some(Value::Object(a)), Value::Object(b)) => {
                out.push(Value::Object(merge_patches(at, a, b)))
            }
            (_, d) => out.push(d),
        }
    }
    out.extend(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "blog"},
               "spec": {"replicas": 2, "template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn nothing_changed_is_an_empty_patch() {
        let m = deploy(json!([{"name": "web", "image": "nginx:1"}]));
        let mut live = m.clone();
        // The server adds defaults and status; they are not the user's business.
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        live["spec"]["strategy"] = json!({"type": "RollingUpdate"});
        live["status"] = json!({"replicas": 2});
        live["metadata"]["uid"] = json!("u-1");
        assert_eq!(three_way(&m, &m, &live).unwrap(), json!({}));
    }

    #[test]
    fn changed_fields_are_set_and_containers_patched_by_name() {
        let original = deploy(
            json!([{"name": "web", "image": "nginx:1"}, {"name": "log", "image": "busybox"}]),
        );
        let modified = deploy(
            json!([{"name": "web", "image": "nginx:2"}, {"name": "log", "image": "busybox"}]),
        );
        let mut live = original.clone();
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        let p = three_way(&original, &modified, &live).unwrap();
        assert_eq!(
            p,
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
                "containers": [{"name": "web", "image": "nginx:2"}]
            }}}})
        );
    }

    #[test]
    fn removed_fields_are_deleted_and_server_fields_kept() {
        let original = json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"x": "1", "y": "2"}});
        let modified = json!({"metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"x": "1"}});
        let mut live = original.clone();
        live["metadata"]["labels"]["added-by-someone"] = json!("else");
        let p = three_way(&original, &modified, &live).unwrap();
        assert_eq!(
            p,
            json!({"metadata": {"labels": {"b": null}}, "data": {"y": null}})
        );
    }

    #[test]
    fn removed_containers_and_env_get_delete_directives() {
        let original = deploy(json!([
            {"name": "web", "image": "nginx", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "log", "image": "busybox"}
        ]));
        let modified = deploy(
            json!([{"name": "web", "image": "nginx", "env": [{"name": "B", "value": "2"}]}]),
        );
        let p = three_way(&original, &modified, &original).unwrap();
        assert_eq!(
            p,
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [
                    {"name": "web", "$setElementOrder/env": [{"name": "B"}], "env": [{"name": "A", "$patch": "delete"}]},
                    {"name": "log", "$patch": "delete"}
                ]
            }}}})
        );
    }

    #[test]
    fn other_lists_are_replaced() {
        let original = json!({"spec": {"args": ["a", "b"]}});
        let modified = json!({"spec": {"args": ["a"]}});
        assert_eq!(
            three_way(&original, &modified, &original).unwrap(),
            json!({"spec": {"args": ["a"]}})
        );
        assert_eq!(
            three_way(&original, &original, &original).unwrap(),
            json!({})
        );
    }

    #[test]
    fn new_lists_are_sent_whole() {
        let modified = deploy(json!([{"name": "web", "image": "nginx"}]));
        let mut live = modified.clone();
        live["spec"]["template"]["spec"]["containers"] = json!([]);
        let p = three_way(&json!({}), &modified, &live).unwrap();
        assert_eq!(
            p,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
        );
    }

    #[test]
    fn ports_merge_by_container_port() {
        let c = |ports: Value| deploy(json!([{"name": "web", "image": "nginx", "ports": ports}]));
        let original = c(json!([{"containerPort": 80}, {"containerPort": 443}]));
        let modified = c(json!([{"containerPort": 80, "name": "http"}]));
        let p = three_way(&original, &modified, &original).unwrap();
        assert_eq!(
            p["spec"]["template"]["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80, "name": "http"}, {"containerPort": 443, "$patch": "delete"}])
        );
    }

    #[test]
    fn service_ports_merge_by_port() {
        let svc =
            |ports: Value| json!({"apiVersion": "v1", "kind": "Service", "spec": {"ports": ports}});
        let original = svc(json!([{"port": 80, "targetPort": 8000}]));
        let modified = svc(json!([{"port": 80, "targetPort": 9000}]));
        let current =
            svc(json!([{"port": 80, "targetPort": 8000, "nodePort": 30080, "protocol": "TCP"}]));
        let p = three_way(&original, &modified, &current).unwrap();
        assert_eq!(
            p,
            json!({"spec": {"$setElementOrder/ports": [{"port": 80}],
                            "ports": [{"port": 80, "targetPort": 9000}]}}),
            "the allocated nodePort is not touched"
        );
    }

    #[test]
    fn strategy_changes_retain_keys() {
        let original = json!({"spec": {"strategy": {"type": "RollingUpdate"}}});
        let modified = json!({"spec": {"strategy": {"type": "Recreate"}}});
        let live = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}}}});
        let p = three_way(&original, &modified, &live).unwrap();
        assert_eq!(
            p,
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})
        );
    }

    #[test]
    fn finalizers_merge_as_a_set() {
        let original = json!({"metadata": {"finalizers": ["a", "b"]}});
        let modified = json!({"metadata": {"finalizers": ["a", "c"]}});
        let p = three_way(&original, &modified, &original).unwrap();
        assert_eq!(
            p,
            json!({"metadata": {
                "finalizers": ["c"],
                "$deleteFromPrimitiveList/finalizers": ["b"],
                "$setElementOrder/finalizers": ["a", "c"]
            }})
        );
    }

    #[test]
    fn integers_and_floats_compare_as_numbers() {
        let a = json!({"spec": {"replicas": 2}});
        let b = json!({"spec": {"replicas": 2.0}});
        assert_eq!(three_way(&a, &b, &a).unwrap(), json!({}));
    }

    #[test]
    fn missing_merge_keys_are_errors() {
        let original = deploy(json!([{"name": "web"}]));
        let modified = deploy(json!([{"image": "nginx"}]));
        assert!(matches!(
            three_way(&original, &modified, &original),
            Err(PatchError::NoMergeKey { .. })
        ));
    }
}
