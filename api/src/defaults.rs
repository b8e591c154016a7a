//! The defaults the API server fills in on create and update, as Kubernetes' `SetDefaults_*` do,
//! so that `kubectl get -o yaml` shows users the same fields they would see on a real cluster.

use crate::apps::{Deployment, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment};
use crate::core::service::{TYPE_CLUSTER_IP, TYPE_LOAD_BALANCER, TYPE_NODE_PORT};
use crate::core::{
    Container, Endpoints, Namespace, NamespaceSpec, NamespaceStatus, Pod, PodSpec, Probe, Service,
};
use crate::discovery::EndpointSlice;
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

/// Kubernetes' `SetDefaults_Service`. ClusterIPs, IP families and node ports are not defaults:
/// the API server allocates them (`apiserver/src/services/`).
pub fn default_service(svc: &mut Service) {
    let spec = &mut svc.spec;
    default_str(&mut spec.session_affinity, "None");
    if spec.session_affinity == "None" {
        spec.session_affinity_config = None;
    } else if spec.session_affinity == "ClientIP" {
        let timeout = spec
            .session_affinity_config
            .as_ref()
            .and_then(|c| c.pointer("/clientIP/timeoutSeconds"));
        if timeout.is_none() {
            spec.session_affinity_config =
                Some(serde_json::json!({"clientIP": {"timeoutSeconds": 10800}}));
        }
    }
    default_str(&mut spec.type_, TYPE_CLUSTER_IP);
    for p in &mut spec.ports {
        default_str(&mut p.protocol, "TCP");
        p.target_port = Some(p.target_port_or_default());
    }
    if spec.externally_accessible() {
        default_str(&mut spec.external_traffic_policy, "Cluster");
    }
    if spec.internal_traffic_policy.is_none()
        && matches!(
            spec.type_.as_str(),
            TYPE_CLUSTER_IP | TYPE_NODE_PORT | TYPE_LOAD_BALANCER
        )
    {
        spec.internal_traffic_policy = Some("Cluster".into());
    }
    if spec.type_ == TYPE_LOAD_BALANCER {
        spec.allocate_load_balancer_node_ports.get_or_insert(true);
    }
}

/// Endpoints ports are TCP unless said otherwise.
pub fn default_endpoints(ep: &mut Endpoints) {
    for p in ep.subsets.iter_mut().flat_map(|s| s.ports.iter_mut()) {
        default_str(&mut p.protocol, "TCP");
    }
}

/// Kubernetes' `SetDefaults_EndpointPort`: name "" and protocol TCP when unset.
pub fn default_endpoint_slice(slice: &mut EndpointSlice) {
    for p in &mut slice.ports {
        p.name.get_or_insert_with(String::new);
        p.protocol.get_or_insert_with(|| "TCP".to_string());
    }
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

    #[test]
    fn service_defaults() {
        let mut svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81, "targetPort": "http"}]}
        }))
        .unwrap();
        default_service(&mut svc);
        let s = &svc.spec;
        assert_eq!(s.session_affinity, "None");
        assert_eq!(s.external_traffic_policy, "Cluster");
        assert_eq!(s.internal_traffic_policy.as_deref(), Some("Cluster"));
        assert_eq!(s.ports[0].protocol, "TCP");
        assert_eq!(s.ports[0].target_port, Some(IntOrString::Int(80)));
        assert_eq!(
            s.ports[1].target_port,
            Some(IntOrString::String("http".into()))
        );
        let mut plain = Service::default();
        default_service(&mut plain);
        assert_eq!(plain.spec.type_, "ClusterIP");
        assert_eq!(
            plain.spec.external_traffic_policy, "",
            "not externally accessible"
        );
        let mut lb = Service::default();
        lb.spec.type_ = "LoadBalancer".into();
        default_service(&mut lb);
        assert_eq!(lb.spec.allocate_load_balancer_node_ports, Some(true));
    }
}
