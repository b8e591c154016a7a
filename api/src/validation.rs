//! Validation as Kubernetes does it: name rules, and per-kind checks that return every
//! [`FieldError`] at once so the user can fix them all in one go.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::apps::{Deployment, PodTemplateSpec, ReplicaSet};
use crate::coordination::Lease;
use crate::core::{ConfigMap, Container, Namespace, Node, Pod, PodSpec};
use crate::meta::{IntOrString, LabelSelector, ObjectMeta};
use crate::resource::ResourceInfo;
use crate::selector::Selector;

pub mod service;

pub use service::{
    needs_health_check, validate_endpoint_slice, validate_endpoint_slice_update,
    validate_endpoints, validate_service, validate_service_update,
};

/// The kinds of field error, with Kubernetes' cause reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    Required,
    Invalid,
    Duplicate,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
}

impl ErrorType {
    /// The `reason` of a `StatusCause`.
    pub fn cause_reason(self) -> &'static str {
        match self {
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
        }
    }
}

/// One problem with one field, printed as Kubernetes prints `field.Error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub type_: ErrorType,
    /// JSON path such as `spec.template.spec.containers[0].name`.
    pub field: String,
    /// The offending value, already formatted (strings quoted).
    pub value: String,
    pub detail: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            type_: ErrorType::Required,
            field: field.into(),
            value: String::new(),
            detail: detail.into(),
        }
    }

    pub fn invalid(
        field: impl Into<String>,
        value: impl fmt::Debug,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            type_: ErrorType::Invalid,
            field: field.into(),
            value: format!("{value:?}"),
            detail: detail.into(),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: impl fmt::Debug) -> Self {
        FieldError {
            type_: ErrorType::Duplicate,
            field: field.into(),
            value: format!("{value:?}"),
            detail: String::new(),
        }
    }

    pub fn not_supported(
        field: impl Into<String>,
        value: impl fmt::Debug,
        supported: &[&str],
    ) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        FieldError {
            type_: ErrorType::NotSupported,
            field: field.into(),
            value: format!("{value:?}"),
            detail: format!("supported values: {}", list.join(", ")),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            type_: ErrorType::Forbidden,
            field: field.into(),
            value: String::new(),
            detail: detail.into(),
        }
    }

    /// The message without the field, as it appears in a `StatusCause`.
    pub fn cause_message(&self) -> String {
        let head = match self.type_ {
            ErrorType::Required => "Required value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
        };
        let mut s = head.to_string();
        if matches!(
            self.type_,
            ErrorType::Invalid
                | ErrorType::Duplicate
                | ErrorType::NotSupported
                | ErrorType::TooMany
        ) {
            s.push_str(": ");
            s.push_str(&self.value);
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.cause_message())
    }
}

/// The message of an Invalid `Status`: `Deployment.apps "web" is invalid: <errors>`.
pub fn invalid_message(info: &ResourceInfo, name: &str, errs: &[FieldError]) -> String {
    let list = if errs.len() == 1 {
        errs[0].to_string()
    } else {
        format!(
            "[{}]",
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!("{} {:?} is invalid: {}", info.qualified_kind(), name, list)
}

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn is_label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// DNS-1123 label: namespace names, container names, port names. Returns the problems found.
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    if !is_label_chars(s) {
        out.push(DNS1123_LABEL_MSG.to_string());
    }
    out
}

const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/// DNS-1035 label: Service names (they become DNS names and environment variable names, so
/// they start with a letter).
pub fn dns1035_label(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    if !is_label_chars(s) || !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.push(DNS1035_LABEL_MSG.to_string());
    }
    out
}

/// DNS-1123 subdomain: the names of most objects.
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 253 {
        out.push("must be no more than 253 characters".to_string());
    }
    if s.is_empty() || !s.split('.').all(is_label_chars) {
        out.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    out
}

/// A label or annotation key: `[prefix/]name`, name ≤ 63 alphanumerics, '-', '_', '.'.
fn qualified_name(key: &str) -> Vec<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let mut out = Vec::new();
    if let Some(p) = prefix {
        if p.is_empty() {
            out.push("prefix part must be non-empty".to_string());
        } else {
            out.extend(
                dns1123_subdomain(p)
                    .into_iter()
                    .map(|m| format!("prefix part {m}")),
            );
        }
    }
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        out.push("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_string());
    }
    out
}

fn label_value(v: &str) -> Vec<String> {
    let ok = v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()));
    if ok {
        vec![]
    } else {
        vec!["a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string()]
    }
}

fn validate_labels(labels: &BTreeMap<String, String>, path: &str, errs: &mut Vec<FieldError>) {
    for (k, v) in labels {
        for m in qualified_name(k) {
            errs.push(FieldError::invalid(path, k, m));
        }
        for m in label_value(v) {
            errs.push(FieldError::invalid(path, v, m));
        }
    }
}

/// Which name rule a kind's names follow.
fn name_rule(info: &ResourceInfo) -> fn(&str) -> Vec<String> {
    match info.kind {
        "Namespace" => dns1123_label,
        "Service" => dns1035_label,
        _ => dns1123_subdomain,
    }
}

/// Checks common to every object: name, labels, annotations.
pub fn validate_object_meta(meta: &ObjectMeta, info: &ResourceInfo) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if meta.name.is_empty() {
        if meta.generate_name.is_empty() {
            errs.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        for m in name_rule(info)(&meta.name) {
            errs.push(FieldError::invalid("metadata.name", &meta.name, m));
        }
    }
    if info.namespaced && !meta.namespace.is_empty() {
        for m in dns1123_label(&meta.namespace) {
            errs.push(FieldError::invalid(
                "metadata.namespace",
                &meta.namespace,
                m,
            ));
        }
    }
    validate_labels(&meta.labels, "metadata.labels", &mut errs);
    let mut total = 0;
    for (k, v) in &meta.annotations {
        total += k.len() + v.len();
        for m in qualified_name(&k.to_ascii_lowercase()) {
            errs.push(FieldError::invalid("metadata.annotations", k, m));
        }
    }
    if total > 256 * 1024 {
        errs.push(FieldError {
            type_: ErrorType::TooLong,
            field: "metadata.annotations".into(),
            value: String::new(),
            detail: "may not be more than 262144 bytes".into(),
        });
    }
    errs
}

fn is_env_var_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

fn validate_container(
    c: &Container,
    path: &str,
    volumes: &BTreeSet<&str>,
    errs: &mut Vec<FieldError>,
) {
    if c.name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else {
        for m in dns1123_label(&c.name) {
            errs.push(FieldError::invalid(format!("{path}.name"), &c.name, m));
        }
    }
    if c.image.trim().is_empty() {
        errs.push(FieldError::required(format!("{path}.image"), ""));
    }
    for (i, p) in c.ports.iter().enumerate() {
        if !(1..=65535).contains(&p.container_port) {
            errs.push(FieldError::invalid(
                format!("{path}.ports[{i}].containerPort"),
                p.container_port,
                "must be between 1 and 65535, inclusive",
            ));
        }
        if p.host_port != 0 && !(1..=65535).contains(&p.host_port) {
            errs.push(FieldError::invalid(
                format!("{path}.ports[{i}].hostPort"),
                p.host_port,
                "must be between 1 and 65535, inclusive",
            ));
        }
        if !p.protocol.is_empty() && !["TCP", "UDP", "SCTP"].contains(&p.protocol.as_str()) {
            errs.push(FieldError::not_supported(
                format!("{path}.ports[{i}].protocol"),
                &p.protocol,
                &["SCTP", "TCP", "UDP"],
            ));
        }
    }
    for (i, e) in c.env.iter().enumerate() {
        let p = format!("{path}.env[{i}]");
        if !is_env_var_name(&e.name) {
            errs.push(FieldError::invalid(
                format!("{p}.name"),
                &e.name,
                "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')",
            ));
        }
        if let Some(vf) = &e.value_from {
            if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
                errs.push(FieldError::invalid(
                    format!("{p}.valueFrom"),
                    "",
                    "may not be specified when `value` is not empty",
                ));
            }
            let n = [
                vf.config_map_key_ref.is_some(),
                vf.field_ref.is_some(),
                vf.resource_field_ref.is_some(),
                vf.secret_key_ref.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if n != 1 {
                errs.push(FieldError::invalid(
                    format!("{p}.valueFrom"),
                    "",
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                ));
            }
            if let Some(r) = &vf.config_map_key_ref {
                if r.name.is_empty() {
                    errs.push(FieldError::required(
                        format!("{p}.valueFrom.configMapKeyRef.name"),
                        "",
                    ));
                }
                if r.key.is_empty() {
                    errs.push(FieldError::required(
                        format!("{p}.valueFrom.configMapKeyRef.key"),
                        "",
                    ));
                }
            }
            if let Some(r) = &vf.field_ref {
                const SUPPORTED: &[&str] = &[
                    "metadata.name",
                    "metadata.namespace",
                    "metadata.uid",
                    "spec.nodeName",
                    "spec.serviceAccountName",
                    "status.hostIP",
                    "status.hostIPs",
                    "status.podIP",
                    "status.podIPs",
                ];
                let ok = SUPPORTED.contains(&r.field_path.as_str())
                    || r.field_path.starts_with("metadata.labels[")
                    || r.field_path.starts_with("metadata.annotations[");
                if !ok {
                    errs.push(FieldError::not_supported(
                        format!("{p}.valueFrom.fieldRef.fieldPath"),
                        &r.field_path,
                        SUPPORTED,
                    ));
                }
            }
        }
    }
    for (i, e) in c.env_from.iter().enumerate() {
        if let Some(r) = &e.config_map_ref
            && r.name.is_empty()
        {
            errs.push(FieldError::required(
                format!("{path}.envFrom[{i}].configMapRef.name"),
                "",
            ));
        }
    }
    for (kind, map) in [
        ("requests", &c.resources.requests),
        ("limits", &c.resources.limits),
    ] {
        for (name, q) in map {
            if let Ok(v) = q.milli_value()
                && v < 0
            {
                errs.push(FieldError::invalid(
                    format!("{path}.resources.{kind}[{name}]"),
                    &q.0,
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    for (name, req) in &c.resources.requests {
        if let Some(lim) = c.resources.limits.get(name)
            && let (Ok(r), Ok(l)) = (req.milli_value(), lim.milli_value())
            && r > l
        {
            errs.push(FieldError::invalid(
                format!("{path}.resources.requests"),
                &req.0,
                format!("must be less than or equal to {name} limit of {}", lim.0),
            ));
        }
    }
    let mut mount_paths = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().enumerate() {
        if !volumes.contains(m.name.as_str()) {
            errs.push(FieldError {
                type_: ErrorType::Invalid,
                field: format!("{path}.volumeMounts[{i}].name"),
                value: format!("{:?}", m.name),
                detail: "not found".into(),
            });
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.volumeMounts[{i}].mountPath"),
                "",
            ));
        } else if !mount_paths.insert(m.mount_path.as_str()) {
            errs.push(FieldError::invalid(
                format!("{path}.volumeMounts[{i}].mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
    }
}

/// Pod spec checks; `path` is `spec` for a Pod and `spec.template.spec` in a template.
pub fn validate_pod_spec(spec: &PodSpec, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut volumes = BTreeSet::new();
    for (i, v) in spec.volumes.iter().enumerate() {
        let p = format!("{path}.volumes[{i}]");
        for m in dns1123_label(&v.name) {
            errs.push(FieldError::invalid(format!("{p}.name"), &v.name, m));
        }
        if !volumes.insert(v.name.as_str()) {
            errs.push(FieldError::duplicate(format!("{p}.name"), &v.name));
        }
        if let Some(cm) = &v.config_map {
            if cm.name.is_empty() {
                errs.push(FieldError::required(format!("{p}.configMap.name"), ""));
            }
            for (j, item) in cm.items.iter().enumerate() {
                if item.path.is_empty()
                    || item.path.starts_with('/')
                    || item.path.split('/').any(|s| s == "..")
                {
                    errs.push(FieldError::invalid(
                        format!("{p}.configMap.items[{j}].path"),
                        &item.path,
                        "must be a relative path without '..'",
                    ));
                }
            }
            if let Some(m) = cm.default_mode
                && !(0..=0o777).contains(&m)
            {
                errs.push(FieldError::invalid(
                    format!("{p}.configMap.defaultMode"),
                    m,
                    "must be a number between 0 and 0777 (octal), both inclusive",
                ));
            }
        }
    }
    if spec.containers.is_empty() {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
    }
    let mut names = BTreeSet::new();
    for (kind, list) in [
        ("initContainers", &spec.init_containers),
        ("containers", &spec.containers),
    ] {
        for (i, c) in list.iter().enumerate() {
            let p = format!("{path}.{kind}[{i}]");
            validate_container(c, &p, &volumes, &mut errs);
            if !c.name.is_empty() && !names.insert(c.name.as_str()) {
                errs.push(FieldError::duplicate(format!("{p}.name"), &c.name));
            }
        }
    }
    if !spec.restart_policy.is_empty()
        && !["Always", "OnFailure", "Never"].contains(&spec.restart_policy.as_str())
    {
        errs.push(FieldError::not_supported(
            format!("{path}.restartPolicy"),
            &spec.restart_policy,
            &["Always", "OnFailure", "Never"],
        ));
    }
    if let Some(g) = spec.termination_grace_period_seconds
        && g < 0
    {
        errs.push(FieldError::invalid(
            format!("{path}.terminationGracePeriodSeconds"),
            g,
            "must be greater than or equal to 0",
        ));
    }
    validate_labels(
        &spec.node_selector,
        &format!("{path}.nodeSelector"),
        &mut errs,
    );
    for (i, t) in spec.tolerations.iter().enumerate() {
        let p = format!("{path}.tolerations[{i}]");
        match t.operator.as_str() {
            "" | "Equal" => {}
            "Exists" if !t.value.is_empty() => errs.push(FieldError::invalid(
                format!("{p}.operator"),
                &t.value,
                "value must be empty when `operator` is 'Exists'",
            )),
            "Exists" => {}
            other => errs.push(FieldError::not_supported(
                format!("{p}.operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !t.effect.is_empty()
            && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&t.effect.as_str())
        {
            errs.push(FieldError::not_supported(
                format!("{p}.effect"),
                &t.effect,
                &["NoExecute", "NoSchedule", "PreferNoSchedule"],
            ));
        }
    }
    errs
}

pub fn validate_pod(pod: &Pod) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&pod.metadata, &crate::resource::POD);
    errs.extend(validate_pod_spec(&pod.spec, "spec"));
    errs
}

fn validate_selector_and_template(
    selector: &LabelSelector,
    template: &PodTemplateSpec,
    errs: &mut Vec<FieldError>,
) {
    if selector.match_labels.is_empty() && selector.match_expressions.is_empty() {
        errs.push(FieldError::invalid(
            "spec.selector",
            "",
            "empty selector is invalid for deployment",
        ));
    }
    validate_labels(&selector.match_labels, "spec.selector.matchLabels", errs);
    match Selector::from_label_selector(selector) {
        Err(e) => errs.push(FieldError::invalid("spec.selector", "", e.to_string())),
        Ok(sel) => {
            if !sel.is_everything() && !sel.matches(&template.metadata.labels) {
                errs.push(FieldError::invalid(
                    "spec.template.metadata.labels",
                    format_map(&template.metadata.labels),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
    validate_labels(
        &template.metadata.labels,
        "spec.template.metadata.labels",
        errs,
    );
    errs.extend(validate_pod_spec(&template.spec, "spec.template.spec"));
    let rp = template.spec.restart_policy.as_str();
    if !rp.is_empty() && rp != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            rp,
            &["Always"],
        ));
    }
}

/// Go's `map[string]string` %v form, used in messages (`map[app:web]`).
fn format_map(m: &BTreeMap<String, String>) -> DisplayAsIs {
    DisplayAsIs(format!(
        "map[{}]",
        m.iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(" ")
    ))
}

/// Formats with Display even where a Debug value is expected (no quotes).
struct DisplayAsIs(String);
impl fmt::Debug for DisplayAsIs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn validate_replicas(replicas: Option<i32>, errs: &mut Vec<FieldError>) {
    if let Some(r) = replicas
        && r < 0
    {
        errs.push(FieldError::invalid(
            "spec.replicas",
            r,
            "must be greater than or equal to 0",
        ));
    }
}

pub fn validate_replica_set(rs: &ReplicaSet) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&rs.metadata, &crate::resource::REPLICA_SET);
    validate_replicas(rs.spec.replicas, &mut errs);
    if rs.spec.min_ready_seconds < 0 {
        errs.push(FieldError::invalid(
            "spec.minReadySeconds",
            rs.spec.min_ready_seconds,
            "must be greater than or equal to 0",
        ));
    }
    validate_selector_and_template(&rs.spec.selector, &rs.spec.template, &mut errs);
    errs
}

pub fn validate_deployment(d: &Deployment) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&d.metadata, &crate::resource::DEPLOYMENT);
    validate_replicas(d.spec.replicas, &mut errs);
    validate_selector_and_template(&d.spec.selector, &d.spec.template, &mut errs);
    if let Some(s) = &d.spec.strategy {
        match s.type_.as_str() {
            "" | "RollingUpdate" => {
                if let Some(ru) = &s.rolling_update {
                    let surge = ru.max_surge.as_ref().map(|v| {
                        check_int_or_percent(v, "spec.strategy.rollingUpdate.maxSurge", &mut errs)
                    });
                    let unavail = ru.max_unavailable.as_ref().map(|v| {
                        check_int_or_percent(
                            v,
                            "spec.strategy.rollingUpdate.maxUnavailable",
                            &mut errs,
                        )
                    });
                    if let Some(IntOrString::String(p)) = &ru.max_unavailable
                        && p.trim_end_matches('%')
                            .parse::<i64>()
                            .is_ok_and(|p| p > 100)
                    {
                        errs.push(FieldError::invalid(
                            "spec.strategy.rollingUpdate.maxUnavailable",
                            p,
                            "must not be greater than 100%",
                        ));
                    }
                    if surge == Some(Some(0)) && unavail == Some(Some(0)) {
                        errs.push(FieldError::invalid(
                            "spec.strategy.rollingUpdate.maxUnavailable",
                            ru.max_unavailable
                                .as_ref()
                                .map(|v| v.to_string())
                                .unwrap_or_default(),
                            "may not be 0 when `maxSurge` is 0",
                        ));
                    }
                }
            }
            "Recreate" => {
                if s.rolling_update.is_some() {
                    errs.push(FieldError::forbidden(
                        "spec.strategy.rollingUpdate",
                        "may not be specified when strategy `type` is 'Recreate'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                "spec.strategy.type",
                other,
                &["Recreate", "RollingUpdate"],
            )),
        }
    }
    if let Some(h) = d.spec.revision_history_limit
        && h < 0
    {
        errs.push(FieldError::invalid(
            "spec.revisionHistoryLimit",
            h,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(p) = d.spec.progress_deadline_seconds
        && p <= d.spec.min_ready_seconds
    {
        errs.push(FieldError::invalid(
            "spec.progressDeadlineSeconds",
            p,
            "must be greater than minReadySeconds",
        ));
    }
    errs
}

/// Returns the value when it is a literal zero (int or "0%"), for the both-zero rule.
fn check_int_or_percent(v: &IntOrString, field: &str, errs: &mut Vec<FieldError>) -> Option<i64> {
    match v {
        IntOrString::Int(i) => {
            if *i < 0 {
                errs.push(FieldError::invalid(
                    field,
                    *i,
                    "must be greater than or equal to 0",
                ));
            }
            Some(*i as i64)
        }
        IntOrString::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) if p >= 0 => Some(p),
            _ => {
                errs.push(FieldError::invalid(
                    field,
                    s,
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                ));
                None
            }
        },
    }
}

/// ConfigMaps: valid keys, no key in both maps, at most 1 MiB in total.
pub fn validate_config_map(cm: &ConfigMap) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&cm.metadata, &crate::resource::CONFIG_MAP);
    let mut total = 0usize;
    for (field, map) in [("data", &cm.data), ("binaryData", &cm.binary_data)] {
        for (k, v) in map {
            total += k.len() + v.len();
            let ok = !k.is_empty()
                && k.len() <= 253
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
                && k != "."
                && k != ".."
                && !k.starts_with("..");
            if !ok {
                errs.push(FieldError::invalid(
                    format!("{field}[{k}]"),
                    k,
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ));
            }
        }
    }
    for k in cm.data.keys() {
        if cm.binary_data.contains_key(k) {
            errs.push(FieldError::invalid(
                format!("data[{k}]"),
                k,
                "duplicate of key present in binaryData",
            ));
        }
    }
    if total > 1024 * 1024 {
        errs.push(FieldError {
            type_: ErrorType::TooLong,
            field: "".into(),
            value: String::new(),
            detail: "must have at most 1048576 bytes".into(),
        });
    }
    errs
}

pub fn validate_namespace(ns: &Namespace) -> Vec<FieldError> {
    validate_object_meta(&ns.metadata, &crate::resource::NAMESPACE)
}

pub fn validate_node(node: &Node) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&node.metadata, &crate::resource::NODE);
    for (i, t) in node.spec.taints.iter().enumerate() {
        for m in qualified_name(&t.key) {
            errs.push(FieldError::invalid(
                format!("spec.taints[{i}].key"),
                &t.key,
                m,
            ));
        }
        if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&t.effect.as_str()) {
            errs.push(FieldError::not_supported(
                format!("spec.taints[{i}].effect"),
                &t.effect,
                &["NoExecute", "NoSchedule", "PreferNoSchedule"],
            ));
        }
    }
    errs
}

pub fn validate_lease(lease: &Lease) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&lease.metadata, &crate::resource::LEASE);
    if let Some(d) = lease.spec.lease_duration_seconds
        && d <= 0
    {
        errs.push(FieldError::invalid(
            "spec.leaseDurationSeconds",
            d,
            "must be greater than 0",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Container;

    #[test]
    fn names() {
        assert!(dns1123_subdomain("blog-7d9f.x").is_empty());
        assert!(!dns1123_subdomain("Bad_Name").is_empty());
        assert!(!dns1123_subdomain("-a").is_empty());
        assert!(dns1123_label("web").is_empty());
        assert!(!dns1123_label("a.b").is_empty());
        assert!(!dns1123_label(&"a".repeat(64)).is_empty());
    }

    #[test]
    fn pod_errors_read_like_kubernetes() {
        let mut pod = Pod::default();
        pod.metadata.name = "Bad_Name".into();
        pod.spec.containers = vec![
            Container {
                name: "a".into(),
                image: "x".into(),
                ..Default::default()
            },
            Container {
                name: "a".into(),
                ..Default::default()
            },
        ];
        let errs = validate_pod(&pod);
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            msgs[0].starts_with(
                "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
            ),
            "{msgs:?}"
        );
        assert!(
            msgs.contains(&"spec.containers[1].image: Required value".to_string()),
            "{msgs:?}"
        );
        assert!(
            msgs.contains(&"spec.containers[1].name: Duplicate value: \"a\"".to_string()),
            "{msgs:?}"
        );
        let m = invalid_message(&crate::resource::POD, "Bad_Name", &errs);
        assert!(
            m.starts_with("Pod \"Bad_Name\" is invalid: [metadata.name"),
            "{m}"
        );
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let d: Deployment = serde_yaml::from_str(
            r#"
metadata: {name: web}
spec:
  replicas: -1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: other}}
    spec: {containers: [{name: c, image: i}]}
"#,
        )
        .unwrap();
        let msgs: Vec<String> = validate_deployment(&d)
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert!(
            msgs.contains(
                &"spec.replicas: Invalid value: -1: must be greater than or equal to 0".to_string()
            ),
            "{msgs:?}"
        );
        assert!(msgs.contains(&"spec.template.metadata.labels: Invalid value: map[app:other]: `selector` does not match template `labels`".to_string()), "{msgs:?}");
    }

    #[test]
    fn config_map_limits() {
        let mut cm = ConfigMap::default();
        cm.metadata.name = "c".into();
        cm.data.insert("bad key".into(), "v".into());
        cm.data.insert("big".into(), "x".repeat(1024 * 1024));
        let errs = validate_config_map(&cm);
        assert_eq!(errs.len(), 2, "{errs:?}");
    }
}
