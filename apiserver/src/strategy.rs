//! Per-kind rules, as Kubernetes' registry strategies: how a request body becomes a stored object
//! (decode, default, validate) and what create, update and status writes may change.

use api::apps::{Deployment, ReplicaSet};
use api::coordination::Lease;
use api::core::{ConfigMap, Endpoints, Event, Namespace, Node, Pod, Service};
use api::discovery::EndpointSlice;
use api::validation::{self, FieldError};
use api::{Resource, ResourceInfo, codec, defaults};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};

/// How strictly unknown fields are treated (`?fieldValidation=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(s: Option<&str>) -> ApiResult<Self> {
        match s {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other:?}. Supported values are: Ignore, Warn, Strict"
            ))),
        }
    }
}

/// A decoded, defaulted object and the paths of the fields its type does not know.
type Normalized = Result<(Value, Vec<String>), String>;

/// The typed steps of admitting an object of one kind.
pub struct Strategy {
    pub info: &'static ResourceInfo,
    /// Decode into the kind's type (unknown field paths returned), default, re-encode.
    normalize: fn(&Value) -> Normalized,
    validate: fn(&Value) -> Vec<FieldError>,
    validate_update: fn(&Value, &Value) -> Vec<FieldError>,
}

fn normalize_as<K: Resource>(v: &Value, default: fn(&mut K)) -> Normalized {
    let (mut k, unknown) = codec::decode_collecting_unknown::<K>(v).map_err(|e| e.to_string())?;
    default(&mut k);
    k.set_type_meta();
    let v = serde_json::to_value(&k).map_err(|e| e.to_string())?;
    Ok((v, unknown))
}

fn validate_as<K: Resource>(v: &Value, validate: fn(&K) -> Vec<FieldError>) -> Vec<FieldError> {
    match serde_json::from_value::<K>(v.clone()) {
        Ok(k) => validate(&k),
        Err(e) => vec![FieldError::invalid("", "", e.to_string())],
    }
}

fn no_update_rules(_: &Value, _: &Value) -> Vec<FieldError> {
    vec![]
}

fn immutable(field: &str, new: &Value, old: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if new.pointer(path) != old.pointer(path) {
        errs.push(FieldError {
            type_: validation::ErrorType::Invalid,
            field: field.to_string(),
            value: new.pointer(path).map(|v| v.to_string()).unwrap_or_default(),
            detail: "field is immutable".into(),
        });
    }
}

fn selector_immutable(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = vec![];
    immutable("spec.selector", new, old, "/spec/selector", &mut errs);
    errs
}

/// Pods may change little once created: images, activeDeadlineSeconds, added tolerations.
fn pod_update_rules(new: &Value, old: &Value) -> Vec<FieldError> {
    let strip = |v: &Value| {
        let mut spec = v.get("spec").cloned().unwrap_or(json!({}));
        for list in ["containers", "initContainers"] {
            if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs {
                    if let Some(o) = c.as_object_mut() {
                        o.remove("image");
                    }
                }
            }
        }
        if let Some(o) = spec.as_object_mut() {
            o.remove("activeDeadlineSeconds");
            o.remove("tolerations");
            o.remove("terminationGracePeriodSeconds");
        }
        spec
    };
    if strip(new) != strip(old) {
        let mut errs = vec![];
        if new.pointer("/spec/nodeName") != old.pointer("/spec/nodeName")
            && old.pointer("/spec/nodeName").is_some()
        {
            immutable("spec.nodeName", new, old, "/spec/nodeName", &mut errs);
            return errs;
        }
        return vec![FieldError::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        )];
    }
    vec![]
}

fn config_map_update_rules(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = vec![];
    if old.get("immutable") == Some(&Value::Bool(true)) {
        if new.get("immutable") != Some(&Value::Bool(true)) {
            errs.push(FieldError::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
        if new.get("data") != old.get("data") {
            errs.push(FieldError::forbidden(
                "data",
                "field is immutable when `immutable` is set",
            ));
        }
        if new.get("binaryData") != old.get("binaryData") {
            errs.push(FieldError::forbidden(
                "binaryData",
                "field is immutable when `immutable` is set",
            ));
        }
    }
    errs
}

/// Typed update rules: both sides decoded, else no opinion (validation reports a bad body).
fn typed_update_rules<K: Resource>(
    new: &Value,
    old: &Value,
    rules: fn(&K, &K) -> Vec<FieldError>,
) -> Vec<FieldError> {
    match (
        serde_json::from_value::<K>(new.clone()),
        serde_json::from_value::<K>(old.clone()),
    ) {
        (Ok(n), Ok(o)) => rules(&n, &o),
        _ => vec![],
    }
}

macro_rules! strategy {
    ($ty:ty, $default:expr, $validate:expr, $update:expr) => {
        Strategy {
            info: &<$ty as Resource>::INFO,
            normalize: |v| normalize_as::<$ty>(v, $default),
            validate: |v| validate_as::<$ty>(v, $validate),
            validate_update: $update,
        }
    };
}

pub static STRATEGIES: &[Strategy] = &[
    strategy!(
        Pod,
        defaults::default_pod,
        validation::validate_pod,
        pod_update_rules
    ),
    strategy!(
        ConfigMap,
        |_| {},
        validation::validate_config_map,
        config_map_update_rules
    ),
    strategy!(
        Event,
        |_| {},
        |e: &Event| validation::validate_object_meta(&e.metadata, &api::resource::EVENT),
        no_update_rules
    ),
    strategy!(Node, |_| {}, validation::validate_node, no_update_rules),
    strategy!(
        Namespace,
        defaults::default_namespace,
        validation::validate_namespace,
        no_update_rules
    ),
    strategy!(
        ReplicaSet,
        defaults::default_replica_set,
        validation::validate_replica_set,
        selector_immutable
    ),
    strategy!(
        Deployment,
        defaults::default_deployment,
        validation::validate_deployment,
        selector_immutable
    ),
    strategy!(Lease, |_| {}, validation::validate_lease, no_update_rules),
    strategy!(
        Service,
        defaults::default_service,
        validation::validate_service,
        |n, o| typed_update_rules(n, o, validation::validate_service_update)
    ),
    strategy!(
        Endpoints,
        defaults::default_endpoints,
        validation::validate_endpoints,
        no_update_rules
    ),
    strategy!(
        EndpointSlice,
        defaults::default_endpoint_slice,
        validation::validate_endpoint_slice,
        |n, o| typed_update_rules(n, o, validation::validate_endpoint_slice_update)
    ),
];

pub fn for_info(info: &ResourceInfo) -> &'static Strategy {
    STRATEGIES
        .iter()
        .find(|s| s.info.plural == info.plural && s.info.group == info.group)
        .unwrap_or(&STRATEGIES[0])
}

/// The name of an object as a request body gives it (for error messages).
pub fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl Strategy {
    /// Decode and default a body. Unknown fields: an error when Strict, warnings when Warn.
    pub fn normalize(&self, body: &Value, fv: FieldValidation) -> ApiResult<(Value, Vec<String>)> {
        if !body.is_object() {
            return Err(ApiError::bad_request(format!(
                "the body of the request must be a {} object",
                self.info.kind
            )));
        }
        let (v, unknown) = (self.normalize)(body).map_err(|e| {
            ApiError::bad_request(format!(
                "error decoding {} {:?}: {e}",
                self.info.kind,
                name_of(body)
            ))
        })?;
        let mut warnings = Vec::new();
        if !unknown.is_empty() {
            match fv {
                FieldValidation::Strict => {
                    let list: Vec<String> = unknown
                        .iter()
                        .map(|f| format!("unknown field {f:?}"))
                        .collect();
                    return Err(ApiError::bad_request(format!(
                        "strict decoding error: {}",
                        list.join(", ")
                    )));
                }
                FieldValidation::Warn => {
                    warnings.extend(unknown.into_iter().map(|f| format!("unknown field {f:?}")))
                }
                FieldValidation::Ignore => {}
            }
        }
        Ok((v, warnings))
    }

    pub fn validate(&self, v: &Value) -> ApiResult<()> {
        let errs = (self.validate)(v);
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(self.info, name_of(v), &errs))
        }
    }

    pub fn validate_update(&self, new: &Value, old: &Value) -> ApiResult<()> {
        let mut errs = (self.validate)(new);
        errs.extend((self.validate_update)(new, old));
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(self.info, name_of(new), &errs))
        }
    }

    /// What the server sets on create: status reset or initialised, generation 1.
    pub fn prepare_for_create(&self, v: &mut Value) {
        match self.info.kind {
            "Pod" => {
                let qos = qos_class(v);
                v["status"] = json!({"phase": "Pending", "qosClass": qos});
            }
            // Kubernetes resets status to its zero value: `"status": {}` on the wire.
            "Deployment" | "ReplicaSet" => {
                v["status"] = json!({});
            }
            "Namespace" => {
                v["status"] = json!({"phase": "Active"});
            }
            "Service" => crate::services::registry::prepare_for_create(v),
            _ => {}
        }
        if has_generation(self.info) {
            v["metadata"]["generation"] = json!(1);
        }
    }

    /// What a main-resource update may not change: status (for kinds with a status
    /// subresource); generation moves only when spec changed. A Service keeps what was
    /// allocated to it and drops what its old type needed.
    pub fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        if self.info.kind == "Service" {
            crate::services::registry::prepare_for_update(new, old);
        }
        if self.info.has_status {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        bump_generation(self.info, new, old);
    }

    /// A status write changes status (and labels/annotations) only.
    pub fn prepare_for_status_update(&self, new: &mut Value, old: &Value) {
        if let Some(spec) = old.get("spec") {
            new["spec"] = spec.clone();
        }
        for f in [
            "ownerReferences",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "finalizers",
            "generation",
        ] {
            match old["metadata"].get(f) {
                Some(x) => new["metadata"][f] = x.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(f);
                    }
                }
            }
        }
    }
}

fn has_generation(info: &ResourceInfo) -> bool {
    matches!(
        info.kind,
        "Pod" | "Deployment" | "ReplicaSet" | "Node" | "Namespace"
    )
}

fn bump_generation(info: &ResourceInfo, new: &mut Value, old: &Value) {
    if !has_generation(info) {
        return;
    }
    let old_gen = old["metadata"]["generation"].as_i64().unwrap_or(1);
    let changed = new.get("spec") != old.get("spec");
    new["metadata"]["generation"] = json!(if changed { old_gen + 1 } else { old_gen });
}

/// The pod's QoS class ([`api::core::PodSpec::qos_class`]; requests are defaulted from limits
/// by then).
fn qos_class(pod: &Value) -> &'static str {
    serde_json::from_value::<api::core::PodSpec>(pod["spec"].clone())
        .map(|s| s.qos_class())
        .unwrap_or("BestEffort")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_defaults_and_flags_unknown_fields() {
        let s = for_info(&api::resource::DEPLOYMENT);
        let body = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "i", "bogus": 1}]}}}
        });
        let (v, warnings) = s.normalize(&body, FieldValidation::Warn).unwrap();
        assert_eq!(v["spec"]["replicas"], 1);
        assert_eq!(
            warnings,
            vec!["unknown field \"spec.template.spec.containers[0].bogus\""]
        );
        let err = s.normalize(&body, FieldValidation::Strict).unwrap_err();
        assert_eq!(err.status().code, 400);
        assert!(
            err.status().message.contains("strict decoding error"),
            "{}",
            err.status().message
        );
    }

    #[test]
    fn generation_moves_on_spec_changes_only() {
        let s = for_info(&api::resource::DEPLOYMENT);
        let old = json!({"metadata": {"generation": 3}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let mut same = json!({"metadata": {}, "spec": {"replicas": 1}, "status": {"replicas": 9}});
        s.prepare_for_update(&mut same, &old);
        assert_eq!(same["metadata"]["generation"], 3);
        assert_eq!(same["status"]["replicas"], 1, "status is kept");
        let mut changed = json!({"metadata": {}, "spec": {"replicas": 2}});
        s.prepare_for_update(&mut changed, &old);
        assert_eq!(changed["metadata"]["generation"], 4);
    }

    #[test]
    fn qos() {
        assert_eq!(
            qos_class(&json!({"spec": {"containers": [{}]}})),
            "BestEffort"
        );
        let g = json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(qos_class(&b), "Burstable");
    }

    #[test]
    fn pods_are_mostly_immutable() {
        let old = json!({"spec": {"containers": [{"name": "a", "image": "x", "command": ["a"]}]}});
        let img = json!({"spec": {"containers": [{"name": "a", "image": "y", "command": ["a"]}]}});
        assert!(pod_update_rules(&img, &old).is_empty());
        let cmd = json!({"spec": {"containers": [{"name": "a", "image": "x", "command": ["b"]}]}});
        assert_eq!(pod_update_rules(&cmd, &old).len(), 1);
    }
}
