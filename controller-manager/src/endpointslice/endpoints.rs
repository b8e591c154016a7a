//! The legacy `Endpoints` object of a Service (same name), as Kubernetes' endpoints controller
//! writes it: ready pods in `addresses`, running-but-not-ready ones in `notReadyAddresses`,
//! terminating pods left out; addresses that serve the same ports share a subset. Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use api::Resource;
use api::core::service::CLUSTER_IP_NONE;
use api::core::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service};
use api::discovery::LABEL_HEADLESS;
use api::meta::ObjectMeta;

use super::plan::{hostname, ipv4_of, pod_ref, should_list};

/// The label on Endpoints this controller manages, and its value.
pub const LABEL_MANAGED_BY: &str = "endpoints.kubernetes.io/managed-by";
pub const CONTROLLER_NAME: &str = "endpoint-controller";

/// An address, ordered by IP then pod uid (Kubernetes' `addrsByIPAndUID`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Addr {
    ip: String,
    uid: String,
    hostname: String,
    node_name: String,
    pod_name: String,
    pod_namespace: String,
}

impl Addr {
    fn to_api(&self) -> EndpointAddress {
        EndpointAddress {
            ip: self.ip.clone(),
            hostname: self.hostname.clone(),
            node_name: (!self.node_name.is_empty()).then(|| self.node_name.clone()),
            target_ref: Some(api::core::ObjectReference {
                kind: "Pod".into(),
                namespace: self.pod_namespace.clone(),
                name: self.pod_name.clone(),
                uid: self.uid.clone(),
                ..Default::default()
            }),
        }
    }
}

/// The Endpoints a Service with a selector should have, for these (selected) pods.
pub fn desired_endpoints(svc: &Service, pods: &[Arc<Pod>]) -> Endpoints {
    let publish = svc.spec.publish_not_ready_addresses;
    // Per set of ports (none: a headless Service without ports): ready and not-ready addresses.
    let mut by_port: BTreeMap<Option<EndpointPort>, (BTreeSet<Addr>, BTreeSet<Addr>)> =
        BTreeMap::new();
    for pod in pods {
        if !should_list(pod, publish) {
            continue;
        }
        let Some(ip) = ipv4_of(pod) else { continue };
        let r = pod_ref(pod);
        let addr = Addr {
            ip,
            uid: r.uid,
            hostname: hostname(svc, pod).unwrap_or_default(),
            node_name: pod.spec.node_name.clone(),
            pod_name: r.name,
            pod_namespace: r.namespace,
        };
        let ready = publish || pod.is_ready();
        let mut ports: Vec<Option<EndpointPort>> = svc
            .spec
            .ports
            .iter()
            .filter_map(|sp| {
                Some(Some(EndpointPort {
                    name: sp.name.clone(),
                    port: pod.find_port(sp)?,
                    protocol: sp.protocol_or_default().to_string(),
                    app_protocol: sp.app_protocol.clone(),
                }))
            })
            .collect();
        if svc.spec.ports.is_empty() && svc.spec.cluster_ip == CLUSTER_IP_NONE {
            ports.push(None);
        }
        for p in ports {
            let entry = by_port.entry(p).or_default();
            if ready {
                entry.0.insert(addr.clone());
            } else {
                entry.1.insert(addr.clone());
            }
        }
    }
    // Ports with the same addresses share a subset (Kubernetes' `RepackSubsets`).
    let mut subsets: BTreeMap<(BTreeSet<Addr>, BTreeSet<Addr>), Vec<EndpointPort>> =
        BTreeMap::new();
    for (port, addrs) in by_port {
        let ports = subsets.entry(addrs).or_default();
        ports.extend(port);
    }
    let mut subsets: Vec<EndpointSubset> = subsets
        .into_iter()
        .map(|((ready, not_ready), mut ports)| {
            ports.sort();
            EndpointSubset {
                addresses: ready.iter().map(Addr::to_api).collect(),
                not_ready_addresses: not_ready.iter().map(Addr::to_api).collect(),
                ports,
            }
        })
        .collect();
    subsets.sort_by(|a, b| a.ports.cmp(&b.ports));
    let mut labels = svc.metadata.labels.clone();
    labels.remove(LABEL_HEADLESS);
    if svc.spec.cluster_ip == CLUSTER_IP_NONE {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    }
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    let mut ep = Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            labels,
            ..Default::default()
        },
        subsets,
        ..Default::default()
    };
    ep.set_type_meta();
    ep
}

#[cfg(test)]
mod tests {
    use super::super::plan::tests::{pod, service};
    use super::*;
    use serde_json::json;

    #[test]
    fn ready_and_not_ready_addresses_share_subsets_by_port() {
        let svc = service(json!([{"name": "http", "port": 80, "targetPort": "web"}]));
        let mut draining = (*pod("c", "127.11.0.4", true, "web", 8000)).clone();
        draining.metadata.deletion_timestamp = Some(api::meta::Time::now());
        let pods = vec![
            pod("b", "127.11.0.3", false, "web", 8000),
            pod("a", "127.11.0.2", true, "web", 8000),
            Arc::new(draining),
            pod("d", "127.11.0.5", true, "web", 9000),
        ];
        let ep = desired_endpoints(&svc, &pods);
        assert_eq!(ep.metadata.name, "web");
        assert_eq!(ep.metadata.labels[LABEL_MANAGED_BY], CONTROLLER_NAME);
        let summary: Vec<(i32, Vec<&str>, Vec<&str>)> = ep
            .subsets
            .iter()
            .map(|s| {
                (
                    s.ports[0].port,
                    s.addresses.iter().map(|a| a.ip.as_str()).collect(),
                    s.not_ready_addresses
                        .iter()
                        .map(|a| a.ip.as_str())
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (8000, vec!["127.11.0.2"], vec!["127.11.0.3"]),
                (9000, vec!["127.11.0.5"], vec![]),
            ],
            "the terminating pod is not listed"
        );
        assert_eq!(ep.subsets[0].ports[0].name, "http");
        assert_eq!(
            ep.subsets[0].addresses[0].target_ref.as_ref().unwrap().name,
            "a"
        );
        assert!(desired_endpoints(&svc, &[]).subsets.is_empty());
    }
}
