//! The Service strategy's own steps, as Kubernetes' `pkg/registry/core/service`: keep
//! `clusterIP` and `clusterIPs` in step, keep what the server allocated when a client sends
//! its manifest again without it, and drop fields that only made sense for the old type.

use std::collections::{BTreeMap, BTreeSet};

use api::core::Service;
use api::core::service::ServiceSpec;
use api::validation::needs_health_check;
use serde_json::Value;

/// Kubernetes' `normalizeClusterIPs`: an old client sets only `clusterIP`; a new one both.
pub fn normalize_cluster_ips(new: &mut ServiceSpec, old: Option<&ServiceSpec>) {
    let Some(old) = old else {
        if !new.cluster_ip.is_empty() && new.cluster_ips.is_empty() {
            new.cluster_ips = vec![new.cluster_ip.clone()];
        }
        return;
    };
    // An old client patching some other field sent no clusterIPs.
    if !old.cluster_ips.is_empty() && new.cluster_ips.is_empty() && old.cluster_ip == new.cluster_ip
    {
        new.cluster_ips = old.cluster_ips.clone();
    }
    if old.cluster_ip != new.cluster_ip && old.cluster_ips == new.cluster_ips {
        if !old.cluster_ip.is_empty() && new.cluster_ip.is_empty() {
            new.cluster_ips.clear();
        } else {
            new.cluster_ips = vec![new.cluster_ip.clone()];
        }
    }
}

/// Kubernetes' `patchAllocatedValues`: a manifest sent again without the ClusterIP or the node
/// ports the server allocated keeps them (matched by port name), so re-applying it is not a
/// change.
pub fn patch_allocated_values(new: &mut ServiceSpec, old: &ServiceSpec) {
    if old.needs_cluster_ip() && new.needs_cluster_ip() {
        if new.cluster_ip.is_empty() {
            new.cluster_ip = old.cluster_ip.clone();
        }
        if new.cluster_ips.is_empty() && !old.cluster_ips.is_empty() {
            new.cluster_ips = old.cluster_ips.clone();
        }
    }
    if old.needs_node_ports() && new.needs_node_ports() {
        let node_ports = |s: &ServiceSpec| -> BTreeSet<i32> {
            s.ports
                .iter()
                .map(|p| p.node_port)
                .filter(|p| *p != 0)
                .collect()
        };
        let used: BTreeSet<i32> = node_ports(old)
            .intersection(&node_ports(new))
            .copied()
            .collect();
        let by_name: BTreeMap<&str, i32> = old
            .ports
            .iter()
            .map(|p| (p.name.as_str(), p.node_port))
            .collect();
        for p in &mut new.ports {
            if p.node_port == 0
                && let Some(v) = by_name.get(p.name.as_str())
                && !used.contains(v)
            {
                p.node_port = *v;
            }
        }
    }
}

/// Kubernetes' `dropTypeDependentFields`: leaving a type clears what the server set for it —
/// the ClusterIP (becoming ExternalName), node ports (becoming ClusterIP), the health check
/// node port, `externalTrafficPolicy` — as long as the client did not change it itself.
pub fn drop_type_dependent_fields(new: &mut Service, old: &Service) {
    let (n, o) = (&mut new.spec, &old.spec);
    if o.needs_cluster_ip() && !n.needs_cluster_ip() {
        if n.cluster_ip == o.cluster_ip && n.cluster_ips == o.cluster_ips {
            n.cluster_ip.clear();
            n.cluster_ips.clear();
        }
        if n.ip_families == o.ip_families {
            n.ip_families.clear();
        }
        if n.ip_family_policy == o.ip_family_policy {
            n.ip_family_policy = None;
        }
    }
    if o.needs_node_ports() && !n.needs_node_ports() {
        let old_ports: BTreeSet<i32> = o.ports.iter().map(|p| p.node_port).collect();
        if n.ports
            .iter()
            .all(|p| p.node_port == 0 || old_ports.contains(&p.node_port))
        {
            for p in &mut n.ports {
                p.node_port = 0;
            }
        }
    }
    let new_needs_hc =
        n.type_ == api::core::service::TYPE_LOAD_BALANCER && n.external_traffic_policy == "Local";
    if needs_health_check(old)
        && !new_needs_hc
        && n.health_check_node_port == o.health_check_node_port
    {
        n.health_check_node_port = 0;
    }
    let (lb, was_lb) = (
        n.type_ == api::core::service::TYPE_LOAD_BALANCER,
        o.type_ == api::core::service::TYPE_LOAD_BALANCER,
    );
    if was_lb && !lb {
        if n.allocate_load_balancer_node_ports.is_some()
            && n.allocate_load_balancer_node_ports == o.allocate_load_balancer_node_ports
        {
            n.allocate_load_balancer_node_ports = None;
        }
        if n.load_balancer_class == o.load_balancer_class {
            n.load_balancer_class = None;
        }
        new.status = Some(Default::default());
    }
    let n = &mut new.spec;
    if o.externally_accessible()
        && !n.externally_accessible()
        && n.external_traffic_policy == o.external_traffic_policy
    {
        n.external_traffic_policy.clear();
    }
}

fn typed(v: &Value) -> Option<Service> {
    serde_json::from_value(v.clone()).ok()
}

fn write_back(v: &mut Value, svc: &Service) {
    if let Ok(n) = serde_json::to_value(svc) {
        *v = n;
    }
}

/// On create: `clusterIP` → `clusterIPs`, and the status Kubernetes starts a Service with.
pub fn prepare_for_create(v: &mut Value) {
    if let Some(mut svc) = typed(v) {
        normalize_cluster_ips(&mut svc.spec, None);
        svc.status = Some(Default::default());
        write_back(v, &svc);
    }
}

/// On a main-resource update, before allocation and validation.
pub fn prepare_for_update(v: &mut Value, old: &Value) {
    let (Some(mut new), Some(old)) = (typed(v), typed(old)) else {
        return;
    };
    drop_type_dependent_fields(&mut new, &old);
    patch_allocated_values(&mut new.spec, &old.spec);
    normalize_cluster_ips(&mut new.spec, Some(&old.spec));
    write_back(v, &new);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": v})).unwrap()
    }

    #[test]
    fn resubmitting_a_manifest_keeps_what_was_allocated() {
        let old = svc(
            json!({"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                             "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
        );
        let mut new = svc(json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}]}));
        patch_allocated_values(&mut new.spec, &old.spec);
        normalize_cluster_ips(&mut new.spec, Some(&old.spec));
        assert_eq!(new.spec.cluster_ip, "10.96.0.10");
        assert_eq!(new.spec.cluster_ips, vec!["10.96.0.10"]);
        assert_eq!(new.spec.ports[0].node_port, 30080);
    }

    #[test]
    fn changing_only_cluster_ip_moves_cluster_ips_too() {
        let old = svc(json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]}));
        let mut new = svc(json!({"clusterIP": "10.96.0.11", "clusterIPs": ["10.96.0.10"]}));
        normalize_cluster_ips(&mut new.spec, Some(&old.spec));
        assert_eq!(
            new.spec.cluster_ips,
            vec!["10.96.0.11"],
            "validation then refuses it"
        );
    }

    #[test]
    fn becoming_cluster_ip_drops_node_ports_and_traffic_policy() {
        let old = svc(
            json!({"type": "NodePort", "externalTrafficPolicy": "Cluster",
                             "ports": [{"port": 80, "nodePort": 30080}]}),
        );
        let mut new = svc(
            json!({"type": "ClusterIP", "externalTrafficPolicy": "Cluster",
                                 "ports": [{"port": 80, "nodePort": 30080}]}),
        );
        drop_type_dependent_fields(&mut new, &old);
        assert_eq!(new.spec.ports[0].node_port, 0);
        assert_eq!(new.spec.external_traffic_policy, "");
        let mut asked =
            svc(json!({"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30099}]}));
        drop_type_dependent_fields(&mut asked, &old);
        assert_eq!(
            asked.spec.ports[0].node_port, 30099,
            "a new node port is the user's: validation refuses it"
        );
    }

    #[test]
    fn create_fills_cluster_ips_and_status() {
        let mut v = json!({"metadata": {"name": "web"}, "spec": {"clusterIP": "10.96.0.10"}});
        prepare_for_create(&mut v);
        assert_eq!(v["spec"]["clusterIPs"], json!(["10.96.0.10"]));
        assert_eq!(v["status"], json!({"loadBalancer": {}}));
    }
}
