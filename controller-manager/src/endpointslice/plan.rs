//! Pure decisions of the EndpointSlice controller: which pods are a Service's endpoints and in
//! what state, how they group into slices (one set of ports per slice, at most 100 endpoints
//! each), and which slices to create, update and delete to get there.

use std::collections::BTreeMap;
use std::sync::Arc;

use api::core::service::CLUSTER_IP_NONE;
use api::core::{ObjectReference, Pod, Service};
use api::discovery::{
    CONTROLLER_NAME, Endpoint, EndpointConditions, EndpointPort, EndpointSlice, LABEL_HEADLESS,
    LABEL_MANAGED_BY, LABEL_SERVICE_NAME, MAX_ENDPOINTS_PER_SLICE,
};
use api::meta::ObjectMeta;
use api::{Node, Resource};
use client::runtime::owner::controller_ref;

/// The node label an endpoint's zone comes from.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Whether a pod is listed at all (Kubernetes' `ShouldPodBeInEndpoints`): not finished, and
/// with an IP. Terminating pods are listed when `include_terminating` (slices list them, with
/// `terminating: true`, so proxies can drain them; legacy Endpoints do not).
pub fn should_list(pod: &Pod, include_terminating: bool) -> bool {
    if matches!(pod.phase(), "Succeeded" | "Failed") {
        return false;
    }
    if ipv4_of(pod).is_none() {
        return false;
    }
    include_terminating || !pod.is_terminating()
}

/// The pod's IPv4 address (the slices are `addressType: IPv4`).
pub fn ipv4_of(pod: &Pod) -> Option<String> {
    let st = pod.status.as_ref()?;
    st.pod_ips
        .iter()
        .map(|p| p.ip.as_str())
        .chain([st.pod_ip.as_str()])
        .find(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
        .map(String::from)
}

/// The reference an endpoint keeps to its pod.
pub fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: "Pod".into(),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// A pod's hostname within the Service's DNS subdomain, when it asks for one.
pub fn hostname(svc: &Service, pod: &Pod) -> Option<String> {
    (!pod.spec.hostname.is_empty()
        && pod.spec.subdomain == svc.metadata.name
        && pod.metadata.namespace == svc.metadata.namespace)
        .then(|| pod.spec.hostname.clone())
}

/// The endpoint a pod is (None when it is not listed). `serving` is the pod's Ready
/// condition; `ready` is serving and not terminating; `terminating` is a deletion in progress
/// — as Kubernetes' EndpointSlice controller sets them, so a rolling update can drain.
pub fn pod_endpoint(svc: &Service, pod: &Pod, zone: Option<&str>) -> Option<Endpoint> {
    if !should_list(pod, true) {
        return None;
    }
    let publish = svc.spec.publish_not_ready_addresses;
    let terminating = pod.is_terminating();
    let serving = publish || pod.is_ready();
    let ready = publish || (serving && !terminating);
    Some(Endpoint {
        addresses: vec![ipv4_of(pod)?],
        conditions: EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        },
        hostname: hostname(svc, pod),
        target_ref: Some(pod_ref(pod)),
        node_name: (!pod.spec.node_name.is_empty()).then(|| pod.spec.node_name.clone()),
        zone: zone.map(String::from),
        ..Default::default()
    })
}

/// The ports a pod serves the Service's ports on: each `targetPort` resolved in this pod (a
/// named port may be a different number in each pod, or missing: then it is left out).
pub fn pod_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    svc.spec
        .ports
        .iter()
        .filter_map(|sp| {
            Some(EndpointPort {
                name: Some(sp.name.clone()),
                protocol: Some(sp.protocol_or_default().to_string()),
                port: Some(pod.find_port(sp)?),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// One slice's worth: a set of ports and the endpoints serving them.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredSlice {
    pub ports: Vec<EndpointPort>,
    pub endpoints: Vec<Endpoint>,
}

/// The Service's endpoints, grouped by the ports they resolve to and cut into slices of at
/// most 100; endpoints ordered by pod name. A Service with no endpoints still gets one empty
/// slice (Kubernetes' placeholder), which says "looked, found nothing".
pub fn desired_slices(
    svc: &Service,
    pods: &[Arc<Pod>],
    nodes: &BTreeMap<String, Arc<Node>>,
) -> Vec<DesiredSlice> {
    let mut groups: BTreeMap<Vec<EndpointPort>, Vec<(String, Endpoint)>> = BTreeMap::new();
    for pod in pods {
        let zone = nodes
            .get(&pod.spec.node_name)
            .and_then(|n| n.metadata.labels.get(ZONE_LABEL))
            .map(String::as_str);
        let Some(ep) = pod_endpoint(svc, pod, zone) else {
            continue;
        };
        let ports = pod_ports(svc, pod);
        if ports.is_empty() && !svc.spec.ports.is_empty() {
            // None of the Service's ports exists on this pod: it serves nothing.
            continue;
        }
        groups
            .entry(ports)
            .or_default()
            .push((pod.metadata.name.clone(), ep));
    }
    let mut out = Vec::new();
    for (ports, mut eps) in groups {
        eps.sort_by(|a, b| a.0.cmp(&b.0));
        let eps: Vec<Endpoint> = eps.into_iter().map(|(_, e)| e).collect();
        for chunk in eps.chunks(MAX_ENDPOINTS_PER_SLICE) {
            out.push(DesiredSlice {
                ports: ports.clone(),
                endpoints: chunk.to_vec(),
            });
        }
    }
    if out.is_empty() {
        out.push(DesiredSlice {
            ports: vec![],
            endpoints: vec![],
        });
    }
    out
}

/// The labels a Service's slices carry: the Service's own, plus who they belong to and who
/// manages them.
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone();
    labels.remove(LABEL_HEADLESS);
    labels.insert(LABEL_SERVICE_NAME.into(), svc.metadata.name.clone());
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    if svc.spec.cluster_ip == CLUSTER_IP_NONE {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    }
    labels
}

/// Whether a slice is this controller's and this Service's (by its labels).
pub fn is_managed_slice_of(slice: &EndpointSlice, svc_name: &str) -> bool {
    slice
        .metadata
        .labels
        .get(LABEL_SERVICE_NAME)
        .map(String::as_str)
        == Some(svc_name)
        && slice
            .metadata
            .labels
            .get(LABEL_MANAGED_BY)
            .map(String::as_str)
            == Some(CONTROLLER_NAME)
}

/// What to write.
#[derive(Debug, Default)]
pub struct SlicePlan {
    /// New slices (`generateName: <service>-`).
    pub create: Vec<EndpointSlice>,
    /// Existing slices with new content (their resourceVersion kept, for the compare-and-swap).
    pub update: Vec<EndpointSlice>,
    /// Slices no longer needed.
    pub delete: Vec<Arc<EndpointSlice>>,
}

impl SlicePlan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Turn `existing` (the Service's managed slices) into `desired`: reuse a slice with the same
/// ports first, then any spare one, create what is missing, delete what is left over and any
/// slice owned by another object of the same name (an older Service).
pub fn plan_slices(
    svc: &Service,
    desired: Vec<DesiredSlice>,
    existing: &[Arc<EndpointSlice>],
) -> SlicePlan {
    let labels = slice_labels(svc);
    let owner = controller_ref(svc);
    let mut plan = SlicePlan::default();
    let (mut spare, stale): (Vec<Arc<EndpointSlice>>, Vec<Arc<EndpointSlice>>) =
        existing.iter().cloned().partition(|s| {
            s.metadata
                .controller_ref()
                .is_some_and(|r| r.uid == svc.metadata.uid)
                && s.address_type == "IPv4"
        });
    spare.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    plan.delete.extend(stale);
    let mut unplaced = Vec::new();
    for d in desired {
        match spare.iter().position(|s| s.ports == d.ports) {
            Some(i) => {
                let s = spare.remove(i);
                update_if_changed(&mut plan, &s, d, &labels);
            }
            None => unplaced.push(d),
        }
    }
    for d in unplaced {
        if spare.is_empty() {
            let mut slice = EndpointSlice {
                metadata: ObjectMeta {
                    generate_name: format!("{}-", svc.metadata.name),
                    namespace: svc.metadata.namespace.clone(),
                    labels: labels.clone(),
                    owner_references: vec![owner.clone()],
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints: d.endpoints,
                ports: d.ports,
                ..Default::default()
            };
            slice.set_type_meta();
            plan.create.push(slice);
        } else {
            let s = spare.remove(0);
            update_if_changed(&mut plan, &s, d, &labels);
        }
    }
    plan.delete.extend(spare);
    plan
}

fn update_if_changed(
    plan: &mut SlicePlan,
    s: &EndpointSlice,
    d: DesiredSlice,
    labels: &BTreeMap<String, String>,
) {
    if s.ports == d.ports && s.endpoints == d.endpoints && &s.metadata.labels == labels {
        return;
    }
    let mut updated = s.clone();
    updated.ports = d.ports;
    updated.endpoints = d.endpoints;
    updated.metadata.labels = labels.clone();
    updated.set_type_meta();
    plan.update.push(updated);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use api::core::{Container, ContainerPort, PodCondition, PodIp, PodStatus};
    use api::meta::{IntOrString, Time};
    use serde_json::json;

    pub fn service(ports: serde_json::Value) -> Service {
        let mut s: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "ports": ports}
        }))
        .unwrap();
        api::defaults::default_service(&mut s);
        s
    }

    pub fn pod(name: &str, ip: &str, ready: bool, port_name: &str, port: i32) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.name = name.into();
        p.metadata.namespace = "default".into();
        p.metadata.uid = format!("{name}-uid");
        p.metadata.labels.insert("app".into(), "web".into());
        p.spec.node_name = "worker-1".into();
        p.spec.containers.push(Container {
            name: "c".into(),
            ports: vec![ContainerPort {
                name: port_name.into(),
                container_port: port,
                protocol: "TCP".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        p.status = Some(PodStatus {
            phase: "Running".into(),
            pod_ip: ip.into(),
            pod_ips: if ip.is_empty() {
                vec![]
            } else {
                vec![PodIp { ip: ip.into() }]
            },
            conditions: vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        Arc::new(p)
    }

    fn terminating(p: &Arc<Pod>) -> Arc<Pod> {
        let mut p = (**p).clone();
        p.metadata.deletion_timestamp = Some(Time::now());
        Arc::new(p)
    }

    fn conditions(e: &Endpoint) -> (bool, bool, bool) {
        let c = &e.conditions;
        (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
    }

    #[test]
    fn ready_serving_and_terminating_follow_the_pod() {
        let svc = service(json!([{"port": 80, "targetPort": 8000}]));
        let ready = pod("a", "127.11.0.2", true, "http", 8000);
        let not_ready = pod("b", "127.11.0.3", false, "http", 8000);
        let draining = terminating(&pod("c", "127.11.0.4", true, "http", 8000));
        let no_ip = pod("d", "", true, "http", 8000);
        let mut done = (*pod("e", "127.11.0.6", false, "http", 8000)).clone();
        done.status.as_mut().unwrap().phase = "Succeeded".into();
        let pods = vec![ready, not_ready, draining, no_ip, Arc::new(done)];
        let slices = desired_slices(&svc, &pods, &BTreeMap::new());
        assert_eq!(slices.len(), 1);
        let eps = &slices[0].endpoints;
        let by_name: Vec<(&str, (bool, bool, bool))> = eps
            .iter()
            .map(|e| (e.target_ref.as_ref().unwrap().name.as_str(), conditions(e)))
            .collect();
        assert_eq!(
            by_name,
            vec![
                ("a", (true, true, false)),
                ("b", (false, false, false)),
                ("c", (false, true, true)),
            ],
            "no IP and finished pods are not listed"
        );
        assert_eq!(eps[0].addresses, vec!["127.11.0.2"]);
        assert_eq!(eps[0].node_name.as_deref(), Some("worker-1"));
        assert_eq!(eps[0].target_ref.as_ref().unwrap().kind, "Pod");
        assert_eq!(
            slices[0].ports,
            vec![EndpointPort {
                name: Some(String::new()),
                protocol: Some("TCP".into()),
                port: Some(8000),
                app_protocol: None
            }]
        );
    }

    #[test]
    fn named_target_ports_resolve_per_pod_and_group_slices() {
        let svc = service(json!([{"name": "http", "port": 80, "targetPort": "web"}]));
        let pods = vec![
            pod("a", "127.11.0.2", true, "web", 8000),
            pod("b", "127.11.0.3", true, "web", 9000),
            pod("c", "127.11.0.4", true, "other", 7000),
        ];
        let slices = desired_slices(&svc, &pods, &BTreeMap::new());
        let summary: Vec<(i32, Vec<String>)> = slices
            .iter()
            .map(|s| {
                (
                    s.ports[0].port.unwrap(),
                    s.endpoints.iter().map(|e| e.addresses[0].clone()).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (8000, vec!["127.11.0.2".to_string()]),
                (9000, vec!["127.11.0.3".to_string()])
            ],
            "one slice per resolved port; a pod without the named port serves nothing"
        );
        assert_eq!(
            svc.spec.ports[0].target_port,
            Some(IntOrString::String("web".into()))
        );
    }

    #[test]
    fn no_endpoints_is_one_empty_placeholder_and_big_services_are_cut() {
        let svc = service(json!([{"port": 80}]));
        assert_eq!(
            desired_slices(&svc, &[], &BTreeMap::new()),
            vec![DesiredSlice {
                ports: vec![],
                endpoints: vec![]
            }]
        );
        let pods: Vec<Arc<Pod>> = (0..250)
            .map(|i| {
                pod(
                    &format!("p{i:03}"),
                    &format!("127.11.{}.{}", i / 200, i % 200 + 1),
                    true,
                    "",
                    80,
                )
            })
            .collect();
        let sizes: Vec<usize> = desired_slices(&svc, &pods, &BTreeMap::new())
            .iter()
            .map(|s| s.endpoints.len())
            .collect();
        assert_eq!(sizes, vec![100, 100, 50]);
    }

    #[test]
    fn plans_reuse_update_create_and_delete() {
        let svc = service(json!([{"port": 80}]));
        let desired = desired_slices(
            &svc,
            &[pod("a", "127.11.0.2", true, "", 80)],
            &BTreeMap::new(),
        );
        let fresh = plan_slices(&svc, desired.clone(), &[]);
        assert_eq!(
            (fresh.create.len(), fresh.update.len(), fresh.delete.len()),
            (1, 0, 0)
        );
        let created = &fresh.create[0];
        assert_eq!(created.metadata.generate_name, "web-");
        assert_eq!(created.metadata.labels[LABEL_SERVICE_NAME], "web");
        assert_eq!(created.metadata.labels[LABEL_MANAGED_BY], CONTROLLER_NAME);
        assert_eq!(created.metadata.labels["team"], "a");
        let owner = &created.metadata.owner_references[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Service", "svc-uid", Some(true))
        );

        let mut stored = created.clone();
        stored.metadata.name = "web-abcde".into();
        stored.metadata.resource_version = "7".into();
        let stored = Arc::new(stored);
        assert!(
            plan_slices(&svc, desired.clone(), std::slice::from_ref(&stored)).is_empty(),
            "nothing changed"
        );

        let two = desired_slices(
            &svc,
            &[
                pod("a", "127.11.0.2", true, "", 80),
                pod("b", "127.11.0.3", false, "", 80),
            ],
            &BTreeMap::new(),
        );
        let p = plan_slices(&svc, two, std::slice::from_ref(&stored));
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
        assert_eq!(p.update[0].metadata.resource_version, "7");
        assert_eq!(p.update[0].endpoints.len(), 2);

        let mut foreign = (*stored).clone();
        foreign.metadata.owner_references[0].uid = "older-service".into();
        let p = plan_slices(&svc, desired, &[Arc::new(foreign)]);
        assert_eq!(
            (p.create.len(), p.delete.len()),
            (1, 1),
            "a slice of an older Service of that name goes"
        );
    }
}
