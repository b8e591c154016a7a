//! `core/v1` Service and Endpoints: a stable name and virtual address (the ClusterIP) for a set
//! of pods chosen by a label selector, and the legacy list of those pods' addresses. The
//! current list is `discovery.k8s.io/v1` EndpointSlice ([`crate::discovery`]).
//!
//! Both lists are written by the controller manager's EndpointSlice controller; the API
//! server allocates ClusterIPs and node ports.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ObjectReference, Pod};
use crate::meta::{IntOrString, ObjectMeta, is_false, is_zero_i32};

/// `spec.clusterIP` of a headless Service: no virtual IP, DNS names the pods directly.
pub const CLUSTER_IP_NONE: &str = "None";

/// The Service types (`spec.type`).
pub const TYPE_CLUSTER_IP: &str = "ClusterIP";
pub const TYPE_NODE_PORT: &str = "NodePort";
pub const TYPE_LOAD_BALANCER: &str = "LoadBalancer";
pub const TYPE_EXTERNAL_NAME: &str = "ExternalName";

/// A named, stable address for the pods its selector matches.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The desired behaviour of the Service.
    #[serde(default)]
    pub spec: ServiceSpec,
    /// What is known of the Service's load balancer (none in kube-lite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ServiceStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// The ports the Service exposes, and where each goes on the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Pods whose labels match all of these are the Service's endpoints. Without a selector
    /// the Service's endpoints are managed by someone else.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    /// The virtual IP, allocated by the API server from `--service-cluster-ip-range` unless
    /// given; `None` makes the Service headless. Immutable once set.
    #[serde(
        default,
        rename = "clusterIP",
        skip_serializing_if = "String::is_empty"
    )]
    pub cluster_ip: String,
    /// `clusterIP` and, on dual-stack clusters, the other family's IP.
    #[serde(default, rename = "clusterIPs", skip_serializing_if = "Vec::is_empty")]
    pub cluster_ips: Vec<String>,
    /// ClusterIP (default), NodePort, LoadBalancer or ExternalName.
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub type_: String,
    /// Further IPs the Service answers on (not routed by kube-lite).
    #[serde(default, rename = "externalIPs", skip_serializing_if = "Vec::is_empty")]
    pub external_ips: Vec<String>,
    /// None (default) or ClientIP.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session_affinity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_config: Option<Value>,
    #[serde(
        default,
        rename = "loadBalancerIP",
        skip_serializing_if = "String::is_empty"
    )]
    pub load_balancer_ip: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_source_ranges: Vec<String>,
    /// For ExternalName Services: the DNS name they alias.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub external_name: String,
    /// Cluster (default for NodePort and LoadBalancer) or Local.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub external_traffic_policy: String,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub health_check_node_port: i32,
    /// List pods as endpoints before they are ready.
    #[serde(default, skip_serializing_if = "is_false")]
    pub publish_not_ready_addresses: bool,
    /// IPv4 (and IPv6 on dual-stack clusters), set by the API server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_families: Vec<String>,
    /// SingleStack, PreferDualStack or RequireDualStack, set by the API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family_policy: Option<String>,
    /// LoadBalancer Services only: whether they get node ports (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocate_load_balancer_node_ports: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_class: Option<String>,
    /// Cluster (default) or Local.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_traffic_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_distribution: Option<String>,
}

/// One port of a Service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Required when the Service has more than one port (DNS-1123 label).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// TCP (default), UDP or SCTP.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    /// The port the Service listens on, at its ClusterIP.
    #[serde(default)]
    pub port: i32,
    /// Where traffic goes on the pods: a number, or the name of a container port (looked up in
    /// each pod). Defaults to `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    /// NodePort and LoadBalancer Services: the port on every node, allocated from
    /// `--service-node-port-range` unless given.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub node_port: i32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// Always present (`{}` when there is no load balancer), as Kubernetes writes it.
    #[serde(default)]
    pub load_balancer: LoadBalancerStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<LoadBalancerIngress>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerIngress {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Value>,
}

/// The legacy endpoints list of a Service (same name): ready addresses and not-ready ones,
/// grouped by the ports they share.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<EndpointSubset>,
}

/// Addresses that share one set of ports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSubset {
    /// Ready to receive traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<EndpointAddress>,
    /// Running but not (yet) ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ready_addresses: Vec<EndpointAddress>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<EndpointPort>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointAddress {
    #[serde(default)]
    pub ip: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The pod behind the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<ObjectReference>,
}

/// A port of an [`EndpointSubset`] (named `CoreV1EndpointPort` in the OpenAPI documents, apart
/// from discovery's `EndpointPort`).
#[derive(
    Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "CoreV1EndpointPort")]
pub struct EndpointPort {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub port: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

impl ServiceSpec {
    /// `spec.type`, ClusterIP when unset.
    pub fn type_or_default(&self) -> &str {
        if self.type_.is_empty() {
            TYPE_CLUSTER_IP
        } else {
            &self.type_
        }
    }

    /// Headless: `clusterIP: None`.
    pub fn is_headless(&self) -> bool {
        self.cluster_ip == CLUSTER_IP_NONE
    }

    /// Every type but ExternalName has a ClusterIP (or is headless).
    pub fn needs_cluster_ip(&self) -> bool {
        self.type_or_default() != TYPE_EXTERNAL_NAME
    }

    /// NodePort and LoadBalancer Services get a port on every node.
    pub fn needs_node_ports(&self) -> bool {
        matches!(self.type_or_default(), TYPE_NODE_PORT | TYPE_LOAD_BALANCER)
    }

    /// Reachable from outside the cluster: Kubernetes' `ExternallyAccessible` (the only
    /// Services that may set `externalTrafficPolicy`).
    pub fn externally_accessible(&self) -> bool {
        self.needs_node_ports()
            || (self.type_or_default() == TYPE_CLUSTER_IP && !self.external_ips.is_empty())
    }
}

impl ServicePort {
    /// `targetPort`, defaulting to `port` as the API server does.
    pub fn target_port_or_default(&self) -> IntOrString {
        match &self.target_port {
            None => IntOrString::Int(self.port),
            Some(IntOrString::Int(0)) => IntOrString::Int(self.port),
            Some(IntOrString::String(s)) if s.is_empty() => IntOrString::Int(self.port),
            Some(t) => t.clone(),
        }
    }

    /// The protocol, TCP when unset.
    pub fn protocol_or_default(&self) -> &str {
        if self.protocol.is_empty() {
            "TCP"
        } else {
            &self.protocol
        }
    }
}

impl Pod {
    /// The port a Service port's `targetPort` means on this pod (Kubernetes' `podutil.FindPort`):
    /// a number as is; a name looked up among the containers' ports with the same protocol.
    /// None when the pod has no such port.
    pub fn find_port(&self, service_port: &ServicePort) -> Option<i32> {
        match service_port.target_port_or_default() {
            IntOrString::Int(n) => Some(n),
            IntOrString::String(name) => {
                let protocol = service_port.protocol_or_default();
                self.spec
                    .containers
                    .iter()
                    .flat_map(|c| c.ports.iter())
                    .find(|p| {
                        let p_proto = if p.protocol.is_empty() {
                            "TCP"
                        } else {
                            p.protocol.as_str()
                        };
                        p.name == name && p_proto == protocol
                    })
                    .map(|p| p.container_port)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Container, ContainerPort};

    #[test]
    fn named_target_ports_are_looked_up_by_name_and_protocol() {
        let mut pod = Pod::default();
        pod.spec.containers.push(Container {
            name: "web".into(),
            ports: vec![
                ContainerPort {
                    name: "http".into(),
                    container_port: 8000,
                    ..Default::default()
                },
                ContainerPort {
                    name: "dns".into(),
                    container_port: 5353,
                    protocol: "UDP".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        let port = |target: Option<IntOrString>, protocol: &str| ServicePort {
            port: 80,
            target_port: target,
            protocol: protocol.into(),
            ..Default::default()
        };
        assert_eq!(pod.find_port(&port(None, "")), Some(80));
        assert_eq!(pod.find_port(&port(Some(IntOrString::Int(9)), "")), Some(9));
        assert_eq!(
            pod.find_port(&port(Some(IntOrString::String("http".into())), "TCP")),
            Some(8000)
        );
        assert_eq!(
            pod.find_port(&port(Some(IntOrString::String("dns".into())), "TCP")),
            None,
            "a name matches only a port of the same protocol"
        );
        assert_eq!(
            pod.find_port(&port(Some(IntOrString::String("dns".into())), "UDP")),
            Some(5353)
        );
        assert_eq!(
            pod.find_port(&port(Some(IntOrString::String("nope".into())), "")),
            None
        );
    }

    #[test]
    fn wire_names_are_kubernetes() {
        let s: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "type": "NodePort",
                     "ports": [{"port": 80, "targetPort": "http", "nodePort": 30080}],
                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                     "externalIPs": ["1.2.3.4"]},
            "status": {"loadBalancer": {}}
        }))
        .unwrap();
        assert_eq!(s.spec.cluster_ip, "10.96.0.10");
        assert_eq!(s.spec.ports[0].node_port, 30080);
        assert_eq!(
            s.spec.ports[0].target_port,
            Some(IntOrString::String("http".into()))
        );
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back["spec"]["clusterIPs"][0], "10.96.0.10");
        assert_eq!(back["spec"]["externalIPs"][0], "1.2.3.4");
        assert_eq!(back["status"], serde_json::json!({"loadBalancer": {}}));
    }
}
