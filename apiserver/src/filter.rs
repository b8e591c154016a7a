//! List and watch filtering: label selectors, and the field selectors each kind supports.

use std::collections::BTreeMap;

use api::ResourceInfo;
use api::selector::{FieldSelector, Selector};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// Field paths a kind can be selected on, besides `metadata.name` and `metadata.namespace`.
fn supported_fields(info: &ResourceInfo) -> &'static [&'static str] {
    match info.kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Node" => &["spec.unschedulable"],
        "Namespace" => &["status.phase"],
        "ReplicaSet" => &["status.replicas"],
        "Service" => &["spec.clusterIP", "spec.type"],
        "ConfigMap" | "Deployment" | "Lease" => &[],
        _ => &[],
    }
}

/// A field's value as a string, with Kubernetes' defaults for absent fields.
fn field_value(info: &ResourceInfo, obj: &Value, field: &str) -> String {
    if info.kind == "Event" && field == "source" {
        return obj
            .pointer("/source/component")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
    }
    let ptr = format!("/{}", field.replace('.', "/"));
    match obj.pointer(&ptr) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => match field {
            "spec.unschedulable" | "spec.hostNetwork" => "false".into(),
            "status.replicas" => "0".into(),
            _ => String::new(),
        },
    }
}

/// A parsed `labelSelector` + `fieldSelector` for one kind.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    labels: Selector,
    fields: FieldSelector,
}

impl Filter {
    pub fn new(
        info: &'static ResourceInfo,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> ApiResult<Self> {
        let labels = match label_selector {
            Some(s) => Selector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?,
            None => Selector::everything(),
        };
        let fields = match field_selector {
            Some(s) => FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?,
            None => FieldSelector::default(),
        };
        for r in &fields.requirements {
            let ok = r.field == "metadata.name"
                || (r.field == "metadata.namespace" && info.namespaced)
                || supported_fields(info).contains(&r.field.as_str());
            if !ok {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    r.field
                )));
            }
        }
        let _ = info;
        Ok(Filter { labels, fields })
    }

    pub fn is_everything(&self) -> bool {
        self.labels.is_everything() && self.fields.requirements.is_empty()
    }

    pub fn matches(&self, info: &ResourceInfo, obj: &Value) -> bool {
        if !self.labels.is_everything() {
            let labels: BTreeMap<String, String> = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            if !self.labels.matches(&labels) {
                return false;
            }
        }
        self.fields.matches(|f| Some(field_value(info, obj, f)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_fields() {
        let f = Filter::new(
            &api::resource::POD,
            Some("app=web"),
            Some("spec.nodeName=n1,status.phase!=Failed"),
        )
        .unwrap();
        let pod = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert!(f.matches(&api::resource::POD, &pod));
        let unbound = Filter::new(&api::resource::POD, None, Some("spec.nodeName=")).unwrap();
        assert!(!unbound.matches(&api::resource::POD, &pod));
        assert!(unbound.matches(&api::resource::POD, &json!({"spec": {}})));
        let err = Filter::new(&api::resource::POD, None, Some("spec.bogus=1")).unwrap_err();
        assert_eq!(
            err.status().message,
            "field label not supported: spec.bogus"
        );
    }
}
