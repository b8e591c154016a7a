//! Services and EndpointSlices → the Service ports to program (pure), as kube-proxy's service
//! and endpoints change trackers do: one entry per port of each Service with a ClusterIP, its
//! endpoints from every slice labelled with the Service's name whose port matches by name and
//! protocol.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use api::core::Service;
use api::discovery::{EndpointSlice, LABEL_SERVICE_NAME};

use crate::model::{Endpoint, Protocol, ServicePort};

/// The Service ports of `services` with their endpoints from `slices`, sorted by id.
pub fn service_ports(services: &[&Service], slices: &[&EndpointSlice]) -> Vec<ServicePort> {
    // Slices by (namespace, service name).
    let mut by_service: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for s in slices {
        if s.address_type != "IPv4" {
            continue;
        }
        if let Some(svc) = s.metadata.labels.get(LABEL_SERVICE_NAME) {
            by_service
                .entry((s.metadata.namespace.as_str(), svc.as_str()))
                .or_default()
                .push(s);
        }
    }
    let mut out = Vec::new();
    for svc in services {
        let Ok(cluster_ip) = svc.spec.cluster_ip.parse::<Ipv4Addr>() else {
            // Headless (`None`), ExternalName, or not allocated: nothing to proxy.
            continue;
        };
        let key = (svc.metadata.namespace.as_str(), svc.metadata.name.as_str());
        let slices = by_service.get(&key).map(Vec::as_slice).unwrap_or_default();
        for p in &svc.spec.ports {
            let (Ok(port), protocol) = (u16::try_from(p.port), Protocol::parse(&p.protocol)) else {
                continue;
            };
            let mut endpoints = Vec::new();
            for s in slices {
                let Some(target) = s.ports.iter().find(|sp| {
                    sp.name.as_deref().unwrap_or("") == p.name
                        && Protocol::parse(sp.protocol.as_deref().unwrap_or("TCP")) == protocol
                }) else {
                    continue;
                };
                let Some(tport) = target.port.and_then(|p| u16::try_from(p).ok()) else {
                    continue;
                };
                for e in &s.endpoints {
                    let c = &e.conditions;
                    let ready = c.ready.unwrap_or(true);
                    let serving = c.serving.unwrap_or(ready);
                    for a in &e.addresses {
                        if let Ok(ip) = a.parse::<Ipv4Addr>() {
                            endpoints.push(Endpoint {
                                ip,
                                port: tport,
                                ready,
                                serving,
                            });
                        }
                    }
                }
            }
            endpoints.sort();
            endpoints.dedup();
            out.push(ServicePort {
                namespace: svc.metadata.namespace.clone(),
                name: svc.metadata.name.clone(),
                port_name: p.name.clone(),
                protocol,
                cluster_ip,
                port,
                node_port: u16::try_from(p.node_port).ok().filter(|p| *p > 0),
                endpoints,
            });
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ports_match_slices_by_name_and_protocol() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "blog", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.10", "type": "NodePort", "ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web", "nodePort": 30080},
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}]}
        }))
        .unwrap();
        let headless: Service = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"name": "", "port": 5432}]}
        }))
        .unwrap();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "blog-abc", "namespace": "default",
                "labels": {"kubernetes.io/service-name": "blog"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.1.5"], "conditions": {"ready": true, "serving": true}},
                {"addresses": ["10.244.2.6"], "conditions": {"ready": false, "serving": true, "terminating": true}}
            ]
        }))
        .unwrap();
        let other: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "x", "namespace": "other",
                "labels": {"kubernetes.io/service-name": "blog"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 9999, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.3.3"], "conditions": {"ready": true}}]
        }))
        .unwrap();
        let ports = service_ports(&[&svc, &headless], &[&slice, &other]);
        assert_eq!(ports.len(), 2, "headless gets no virtual IP");
        let http = ports.iter().find(|p| p.port_name == "http").unwrap();
        assert_eq!(http.node_port, Some(30080));
        assert_eq!(http.endpoints.len(), 2);
        assert_eq!(
            http.targets().len(),
            1,
            "the terminating one takes no new connections"
        );
        assert_eq!(http.endpoints[0].port, 8000);
        let dns = ports.iter().find(|p| p.port_name == "dns").unwrap();
        assert_eq!(dns.protocol, Protocol::Udp);
        assert!(dns.endpoints.is_empty(), "no slice port named dns");
    }
}
