//! The defaults the API server fills in on create and update, as Kubernetes' `SetDefaults_*` do,
//! so that `kubectl get -o yaml` shows users the same fields they would see on a real cluster.

use crate::apps::{Deployment, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment};
use crate::core::{Container, Namespace, NamespaceSpec, NamespaceStatus, Pod, PodSpec, Probe};
use crate::meta::IntOrString;

fn default_str(s: &mut String, v: &str) {
    if s.is_empty() {
        *s = v.to_string();
    }
}

fn default_probe(p: &mut Option<Probe>) {
    if let Some(p) = p {
        if p.timeout_seconds == 0 {
            p.timeout_seconds = 1;
        }
        if p.period_seconds == 0 {
            p.period_seconds = 10;
        }
        if p.success_threshold == 0 {
            p.success_threshold = 1;
        }
        if p.failure_threshold == 0 {
            p.failure_threshold = 3;
        }
        if let Some(h) = &mut p.http_get {
            default_str(&mut h.scheme, "HTTP");
            default_str(&mut h.path, "/");
        }
    }
}

fn default_container(c: &mut Container) {
    default_str(&mut c.termination_message_path, "/dev/termination-log");
    default_str(&mut c.termination_message_policy, "File");
    if c.image_pull_policy.is_empty() {
        let tag = c.image.rsplit('/').next().unwrap_or("");
        let latest = !tag.contains(':') || tag.ends_with(":latest");
        c.image_pull_policy = if latest && !c.image.contains('@') {
            "Always"
        } else {
            "IfNotPresent"
        }
        .into();
    }
    for p in &mut c.ports {
        default_str(&mut p.protocol, "TCP");
    }
    // `fieldRef.apiVersion` defaults to v1 (Kubernetes' SetDefaults_ObjectFieldSelector).
    for e in &mut c.env {
        if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            default_str(&mut f.api_version, "v1");
        }
    }
    // A limit without a request means request = limit.
    for (k, v) in &c.resources.limits {
        c.resources
            .requests
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    default_probe(&mut c.liveness_probe);
    default_probe(&mut c.readiness_probe);
    default_probe(&mut c.startup_probe);
}

pub fn default_pod_spec(spec: &mut PodSpec) {
    default_str(&mut spec.restart_policy, "Always");
    default_str(&mut spec.dns_policy, "ClusterFirst");
    default_str(&mut spec.scheduler_name, "default-scheduler");
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.enable_service_links.get_or_insert(true);
    spec.security_context
        .get_or_insert_with(|| serde_json::json!({}));
    for c in spec
        .init_containers
        .iter_mut()
        .chain(spec.containers.iter_mut())
    {
        default_container(c);
    }
    for v in &mut spec.volumes {
        if let Some(cm) = &mut v.config_map {
            cm.default_mode.get_or_insert(0o644);
        }
    }
}

pub fn default_pod(pod: &mut Pod) {
    default_pod_spec(&mut pod.spec);
}

pub fn default_replica_set(rs: &mut ReplicaSet) {
    rs.spec.replicas.get_or_insert(1);
    default_pod_spec(&mut rs.spec.template.spec);
}

pub fn default_deployment(d: &mut Deployment) {
    d.spec.replicas.get_or_insert(1);
    let strategy = d
        .spec
        .strategy
        .get_or_insert_with(DeploymentStrategy::default);
    default_str(&mut strategy.type_, "RollingUpdate");
    if strategy.type_ == "RollingUpdate" {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDeployment::default);
        ru.max_unavailable
            .get_or_insert(IntOrString::String("25%".into()));
        ru.max_surge
            .get_or_insert(IntOrString::String("25%".into()));
    }
    d.spec.revision_history_limit.get_or_insert(10);
    d.spec.progress_deadline_seconds.get_or_insert(600);
    default_pod_spec(&mut d.spec.template.spec);
}

pub fn default_namespace(ns: &mut Namespace) {
    let spec = ns.spec.get_or_insert_with(NamespaceSpec::default);
    if spec.finalizers.is_empty() {
        spec.finalizers.push("kubernetes".into());
    }
    let status = ns.status.get_or_insert_with(NamespaceStatus::default);
    default_str(&mut status.phase, "Active");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_defaults() {
        let mut d = Deployment::default();
        d.spec.template.spec.containers.push(Container {
            name: "c".into(),
            image: "nginx:1.25".into(),
            ..Default::default()
        });
        default_deployment(&mut d);
        assert_eq!(d.spec.replicas, Some(1));
        let s = d.spec.strategy.unwrap();
        assert_eq!(s.type_, "RollingUpdate");
        assert_eq!(
            s.rolling_update.unwrap().max_surge,
            Some(IntOrString::String("25%".into()))
        );
        let c = &d.spec.template.spec.containers[0];
        assert_eq!(c.image_pull_policy, "IfNotPresent");
        assert_eq!(d.spec.template.spec.restart_policy, "Always");
    }

    #[test]
    fn field_refs_default_to_v1() {
        let mut c = Container {
            name: "c".into(),
            env: vec![crate::core::EnvVar {
                name: "IP".into(),
                value: None,
                value_from: Some(crate::core::EnvVarSource {
                    field_ref: Some(crate::core::ObjectFieldSelector {
                        api_version: String::new(),
                        field_path: "status.podIP".into(),
                    }),
                    ..Default::default()
                }),
            }],
            ..Default::default()
        };
        default_container(&mut c);
        let f = c.env[0]
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap();
        assert_eq!(f.api_version, "v1");
    }
}
