//! What a Service gets from the API server before it is stored (Kubernetes'
//! `pkg/registry/core/service/storage/alloc.go`): its IP families, a ClusterIP and node ports —
//! picked when not given, checked (in range, not taken) when given.
//!
//! Pure: what is taken comes in as a [`Used`] snapshot. The snapshot may be stale by the time
//! the Service is written; the write's transaction re-checks every new claim
//! ([`super::claims`]), and a lost race means picking again with a fresh snapshot.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use api::core::Service;
use api::core::service::{CLUSTER_IP_NONE, TYPE_LOAD_BALANCER, TYPE_NODE_PORT};
use api::validation::service::go_strings;
use api::validation::{FieldError, needs_health_check};
use rand::Rng;

use super::claims::Used;
use super::ranges::{IpRange, PortRange};

/// The ranges this API server allocates from.
#[derive(Clone, Debug)]
pub struct Allocator {
    pub cluster_ips: IpRange,
    pub node_ports: PortRange,
}

/// Why a Service could not get what it needs.
#[derive(Debug, PartialEq)]
pub enum AllocError {
    /// Asked for something out of range or taken: 422 naming the field.
    Invalid(Vec<FieldError>),
    /// A range is full: 500, as Kubernetes.
    Internal(String),
}

impl Allocator {
    /// `--service-cluster-ip-range` and `--service-node-port-range`.
    pub fn new(cluster_ip_range: &str, node_port_range: &str) -> Result<Allocator, String> {
        Ok(Allocator {
            cluster_ips: IpRange::parse(cluster_ip_range)
                .map_err(|e| format!("--service-cluster-ip-range: {e}"))?,
            node_ports: PortRange::parse(node_port_range)
                .map_err(|e| format!("--service-node-port-range: {e}"))?,
        })
    }

    /// Give `svc` what it needs. `old` is the stored Service on an update: what it holds stays
    /// its own (not "taken"), and only what changes is allocated.
    pub fn allocate(
        &self,
        svc: &mut Service,
        old: Option<&Service>,
        used: &Used,
        rng: &mut impl Rng,
    ) -> Result<(), AllocError> {
        if !svc.spec.needs_cluster_ip() {
            return Ok(());
        }
        self.init_ip_families(svc, old)?;
        let old_ips: BTreeSet<Ipv4Addr> = old
            .iter()
            .flat_map(|o| o.spec.cluster_ips.iter())
            .filter_map(|ip| ip.parse().ok())
            .collect();
        let needs_ip = match old {
            None => true,
            // ExternalName → another type: allocate; otherwise the ClusterIP may not change
            // (validation says so) and there is nothing to do.
            Some(o) => !o.spec.needs_cluster_ip(),
        };
        if needs_ip && !svc.spec.is_headless() {
            self.allocate_cluster_ip(svc, used, &old_ips, rng)?;
        }
        let old_ports: BTreeSet<i32> = old
            .iter()
            .flat_map(|o| {
                o.spec
                    .ports
                    .iter()
                    .map(|p| p.node_port)
                    .chain([o.spec.health_check_node_port])
            })
            .filter(|p| *p != 0)
            .collect();
        let mut ports = PortPicker {
            range: &self.node_ports,
            used,
            old: &old_ports,
            taken_now: BTreeSet::new(),
        };
        if svc.spec.needs_node_ports() {
            match old {
                None => init_node_ports(svc, &mut ports, rng)?,
                Some(_) => update_node_ports(svc, &mut ports, rng)?,
            }
        }
        if needs_health_check(svc) {
            let hc = svc.spec.health_check_node_port;
            if hc == 0 {
                svc.spec.health_check_node_port = ports.next(rng)?;
            } else if !old_ports.contains(&hc) {
                ports
                    .take(hc)
                    .map_err(|m| invalid("spec.healthCheckNodePort", hc, m))?;
            }
        }
        Ok(())
    }

    /// Kubernetes' `initIPFamilyFields` for a single-stack IPv4 cluster.
    fn init_ip_families(&self, svc: &mut Service, old: Option<&Service>) -> Result<(), AllocError> {
        let spec = &mut svc.spec;
        if spec.ip_family_policy.is_none() {
            spec.ip_family_policy = Some(match old.and_then(|o| o.spec.ip_family_policy.clone()) {
                Some(p) => p,
                None if spec.is_headless() && spec.selector.is_empty() => "RequireDualStack".into(),
                None => "SingleStack".into(),
            });
        }
        let policy = spec.ip_family_policy.clone().unwrap_or_default();
        let mut errs = Vec::new();
        if policy == "SingleStack" {
            if spec.cluster_ips.len() == 2 {
                errs.push(FieldError::invalid(
                    "spec.ipFamilyPolicy",
                    &policy,
                    "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
                ));
            }
            if spec.ip_families.len() == 2 {
                errs.push(FieldError::invalid(
                    "spec.ipFamilyPolicy",
                    &policy,
                    "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
                ));
            }
        }
        for (i, ip) in spec.cluster_ips.iter().enumerate() {
            if ip == CLUSTER_IP_NONE {
                break;
            }
            if i >= spec.ip_families.len() {
                if ip.contains(':') {
                    errs.push(FieldError::invalid(
                        format!("spec.clusterIPs[{i}]"),
                        go_strings(&spec.cluster_ips),
                        "IPv6 is not configured on this cluster",
                    ));
                } else {
                    spec.ip_families.push("IPv4".into());
                }
            }
        }
        if !errs.is_empty() {
            return Err(AllocError::Invalid(errs));
        }
        // Headless and selectorless: whatever families the endpoints someone else writes have.
        if spec.is_headless() && spec.selector.is_empty() {
            if spec.ip_families.is_empty() {
                spec.ip_families.push("IPv4".into());
            }
            if spec.ip_families.len() < 2 && policy != "SingleStack" {
                let other = if spec.ip_families[0] == "IPv4" {
                    "IPv6"
                } else {
                    "IPv4"
                };
                spec.ip_families.push(other.into());
            }
            return Ok(());
        }
        if policy == "RequireDualStack" {
            errs.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                &policy,
                "this cluster is not configured for dual-stack services",
            ));
        }
        for (i, f) in spec.ip_families.iter().enumerate() {
            if f != "IPv4" {
                errs.push(FieldError::invalid(
                    format!("spec.ipFamilies[{i}]"),
                    f,
                    "not configured on this cluster",
                ));
            }
        }
        if !errs.is_empty() {
            return Err(AllocError::Invalid(errs));
        }
        if spec.ip_families.is_empty() {
            spec.ip_families.push("IPv4".into());
        }
        Ok(())
    }

    fn allocate_cluster_ip(
        &self,
        svc: &mut Service,
        used: &Used,
        own: &BTreeSet<Ipv4Addr>,
        rng: &mut impl Rng,
    ) -> Result<(), AllocError> {
        let spec = &mut svc.spec;
        let taken = |ip: Ipv4Addr| used.ips.contains(&ip) && !own.contains(&ip);
        let ip = match spec.cluster_ips.first().filter(|s| !s.is_empty()) {
            None => self.cluster_ips.pick(taken, rng).ok_or_else(|| {
                AllocError::Internal("failed to allocate a serviceIP: range is full".into())
            })?,
            Some(asked) => {
                let fail = |why: String| {
                    AllocError::Invalid(vec![FieldError::invalid(
                        "spec.clusterIPs",
                        go_strings(&spec.cluster_ips),
                        format!("failed to allocate IP {asked}: {why}"),
                    )])
                };
                // Validation has checked the syntax; this only guards against misuse.
                let ip: Ipv4Addr = asked
                    .parse()
                    .map_err(|_| fail("not a valid IPv4 address".into()))?;
                if self.cluster_ips.offset(ip).is_none() {
                    return Err(fail(format!(
                        "provided IP is not in the valid range. The range of valid IPs is {}",
                        self.cluster_ips.cidr
                    )));
                }
                if taken(ip) {
                    return Err(fail("provided IP is already allocated".into()));
                }
                ip
            }
        };
        spec.cluster_ip = ip.to_string();
        spec.cluster_ips = vec![ip.to_string()];
        Ok(())
    }
}

fn invalid(field: impl Into<String>, port: i32, why: String) -> AllocError {
    AllocError::Invalid(vec![FieldError::invalid(field, port, why)])
}

/// Node ports for one write: what the store has taken, what the old object holds (its own),
/// and what this write already took.
struct PortPicker<'a> {
    range: &'a PortRange,
    used: &'a Used,
    old: &'a BTreeSet<i32>,
    taken_now: BTreeSet<i32>,
}

impl PortPicker<'_> {
    fn is_taken(&self, p: i32) -> bool {
        self.taken_now.contains(&p) || (self.used.ports.contains(&p) && !self.old.contains(&p))
    }

    /// Take a port a user asked for: Kubernetes' portallocator messages.
    fn take(&mut self, p: i32) -> Result<(), String> {
        if !self.range.contains(p) {
            return Err(format!(
                "provided port is not in the valid range. The range of valid ports is {}",
                self.range.display()
            ));
        }
        if self.is_taken(p) {
            return Err("provided port is already allocated".into());
        }
        self.taken_now.insert(p);
        Ok(())
    }

    fn next(&mut self, rng: &mut impl Rng) -> Result<i32, AllocError> {
        let p = self.range.pick(|p| self.is_taken(p), rng).ok_or_else(|| {
            AllocError::Internal("failed to allocate a nodePort: range is full".into())
        })?;
        self.taken_now.insert(p);
        Ok(p)
    }
}

/// LoadBalancer Services may opt out of node ports (`allocateLoadBalancerNodePorts: false`).
fn should_allocate(svc: &Service) -> bool {
    match svc.spec.type_.as_str() {
        TYPE_NODE_PORT => true,
        TYPE_LOAD_BALANCER => svc.spec.allocate_load_balancer_node_ports != Some(false),
        _ => false,
    }
}

/// On create (Kubernetes' `initNodePorts`): ports with the same number (TCP and UDP 53) share
/// one node port.
fn init_node_ports(
    svc: &mut Service,
    ports: &mut PortPicker,
    rng: &mut impl Rng,
) -> Result<(), AllocError> {
    let allocate = should_allocate(svc);
    let mut by_port: std::collections::BTreeMap<i32, i32> = Default::default();
    let requested: Vec<(i32, i32)> = svc
        .spec
        .ports
        .iter()
        .map(|p| (p.port, p.node_port))
        .collect();
    for (i, sp) in svc.spec.ports.iter_mut().enumerate() {
        if sp.node_port == 0 && !allocate {
            continue;
        }
        let field = format!("spec.ports[{i}].nodePort");
        match by_port.get(&sp.port).copied() {
            None => {
                let asked = requested
                    .iter()
                    .find(|(port, np)| *port == sp.port && *np != 0)
                    .map(|(_, np)| *np);
                let np = match asked {
                    Some(np) => {
                        ports.take(np).map_err(|m| invalid(&field, np, m))?;
                        np
                    }
                    None => ports.next(rng)?,
                };
                sp.node_port = np;
                by_port.insert(sp.port, np);
            }
            Some(shared) if sp.node_port == 0 => sp.node_port = shared,
            Some(shared) if sp.node_port != shared => {
                ports
                    .take(sp.node_port)
                    .map_err(|m| invalid(&field, sp.node_port, m))?;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// On update (Kubernetes' `updateNodePorts`): node ports the old Service held stay; new ones
/// are taken or picked. What the Service no longer holds is released by the write itself.
fn update_node_ports(
    svc: &mut Service,
    ports: &mut PortPicker,
    rng: &mut impl Rng,
) -> Result<(), AllocError> {
    let allocate = should_allocate(svc);
    for (i, sp) in svc.spec.ports.iter_mut().enumerate() {
        if sp.node_port == 0 && !allocate {
            continue;
        }
        if sp.node_port == 0 {
            sp.node_port = ports.next(rng)?;
        } else if !ports.old.contains(&sp.node_port) && !ports.taken_now.contains(&sp.node_port) {
            ports
                .take(sp.node_port)
                .map_err(|m| invalid(format!("spec.ports[{i}].nodePort"), sp.node_port, m))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use serde_json::json;

    use super::*;

    fn svc(spec: serde_json::Value) -> Service {
        let mut s: Service = serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec}),
        )
        .unwrap();
        api::defaults::default_service(&mut s);
        crate::services::registry::normalize_cluster_ips(&mut s.spec, None);
        s
    }

    fn alloc() -> Allocator {
        Allocator::new("10.96.0.0/24", "30000-30099").unwrap()
    }

    fn msgs(e: AllocError) -> Vec<String> {
        match e {
            AllocError::Invalid(errs) => errs.iter().map(|e| e.to_string()).collect(),
            AllocError::Internal(m) => vec![m],
        }
    }

    #[test]
    fn a_service_gets_an_ip_and_families() {
        let mut s = svc(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
        let mut rng = StdRng::seed_from_u64(3);
        alloc()
            .allocate(&mut s, None, &Used::default(), &mut rng)
            .unwrap();
        let ip: Ipv4Addr = s.spec.cluster_ip.parse().unwrap();
        assert!(alloc().cluster_ips.offset(ip).is_some());
        assert_eq!(s.spec.cluster_ips, vec![s.spec.cluster_ip.clone()]);
        assert_eq!(s.spec.ip_families, vec!["IPv4"]);
        assert_eq!(s.spec.ip_family_policy.as_deref(), Some("SingleStack"));
        assert!(s.spec.ports[0].node_port == 0, "ClusterIP: no node port");
    }

    #[test]
    fn headless_services_get_no_ip() {
        let mut s = svc(json!({"clusterIP": "None", "selector": {"app": "web"}}));
        let mut rng = StdRng::seed_from_u64(3);
        alloc()
            .allocate(&mut s, None, &Used::default(), &mut rng)
            .unwrap();
        assert_eq!(s.spec.cluster_ips, vec!["None"]);
        assert_eq!(s.spec.ip_families, vec!["IPv4"]);
        let mut selectorless = svc(json!({"clusterIP": "None"}));
        alloc()
            .allocate(&mut selectorless, None, &Used::default(), &mut rng)
            .unwrap();
        assert_eq!(
            selectorless.spec.ip_family_policy.as_deref(),
            Some("RequireDualStack")
        );
        assert_eq!(selectorless.spec.ip_families, vec!["IPv4", "IPv6"]);
    }

    #[test]
    fn requested_ips_must_be_in_range_and_free() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut used = Used::default();
        used.ips.insert("10.96.0.10".parse().unwrap());
        let mut taken = svc(json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}));
        assert_eq!(
            msgs(
                alloc()
                    .allocate(&mut taken, None, &used, &mut rng)
                    .unwrap_err()
            ),
            vec![
                "spec.clusterIPs: Invalid value: []string{\"10.96.0.10\"}: failed to allocate IP 10.96.0.10: provided IP is already allocated"
            ]
        );
        let mut outside = svc(json!({"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}));
        assert_eq!(
            msgs(
                alloc()
                    .allocate(&mut outside, None, &used, &mut rng)
                    .unwrap_err()
            ),
            vec![
                "spec.clusterIPs: Invalid value: []string{\"10.0.0.1\"}: failed to allocate IP 10.0.0.1: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/24"
            ]
        );
        let mut free = svc(json!({"clusterIP": "10.96.0.11", "ports": [{"port": 80}]}));
        alloc().allocate(&mut free, None, &used, &mut rng).unwrap();
        assert_eq!(free.spec.cluster_ip, "10.96.0.11");
        let mut six = svc(json!({"clusterIP": "fd00::1", "ports": [{"port": 80}]}));
        assert_eq!(
            msgs(
                alloc()
                    .allocate(&mut six, None, &used, &mut rng)
                    .unwrap_err()
            ),
            vec![
                "spec.clusterIPs[0]: Invalid value: []string{\"fd00::1\"}: IPv6 is not configured on this cluster"
            ]
        );
        let mut dual = svc(json!({"ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]}));
        assert_eq!(
            msgs(
                alloc()
                    .allocate(&mut dual, None, &used, &mut rng)
                    .unwrap_err()
            ),
            vec![
                "spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"
            ]
        );
    }

    #[test]
    fn a_full_range_is_an_internal_error() {
        let mut used = Used::default();
        let a = alloc();
        for o in 0..a.cluster_ips.size() {
            used.ips.insert(a.cluster_ips.ip_at(o));
        }
        let mut s = svc(json!({"ports": [{"port": 80}]}));
        let mut rng = StdRng::seed_from_u64(3);
        assert_eq!(
            a.allocate(&mut s, None, &used, &mut rng),
            Err(AllocError::Internal(
                "failed to allocate a serviceIP: range is full".into()
            ))
        );
    }

    #[test]
    fn node_ports_are_picked_checked_and_shared_by_protocol() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut used = Used::default();
        used.ports.insert(30050);
        let mut s = svc(json!({"type": "NodePort", "ports": [
            {"name": "dns", "port": 53}, {"name": "dns-udp", "port": 53, "protocol": "UDP"},
            {"name": "web", "port": 80, "nodePort": 30010}]}));
        alloc().allocate(&mut s, None, &used, &mut rng).unwrap();
        let p = &s.spec.ports;
        assert_ne!(p[0].node_port, 0);
        assert_eq!(
            p[0].node_port, p[1].node_port,
            "same port number, one node port"
        );
        assert_eq!(p[2].node_port, 30010);
        let mut taken =
            svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30050}]}));
        assert_eq!(
            msgs(
                alloc()
                    .allocate(&mut taken, None, &used, &mut rng)
                    .unwrap_err()
            ),
            vec![
                "spec.ports[0].nodePort: Invalid value: 30050: provided port is already allocated"
            ]
        );
        let mut outside = svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}));
        assert_eq!(
            msgs(
                alloc()
                    .allocate(&mut outside, None, &used, &mut rng)
                    .unwrap_err()
            ),
            vec![
                "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-30099"
            ]
        );
    }

    #[test]
    fn updates_keep_what_the_service_holds() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut old = svc(json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}]}));
        alloc()
            .allocate(&mut old, None, &Used::default(), &mut rng)
            .unwrap();
        let mut used = Used::default();
        used.ips.insert(old.spec.cluster_ip.parse().unwrap());
        used.ports.insert(old.spec.ports[0].node_port);
        let mut new = old.clone();
        new.spec.ports.push(api::core::ServicePort {
            name: "b".into(),
            port: 81,
            protocol: "TCP".into(),
            ..Default::default()
        });
        alloc()
            .allocate(&mut new, Some(&old), &used, &mut rng)
            .unwrap();
        assert_eq!(new.spec.cluster_ip, old.spec.cluster_ip);
        assert_eq!(new.spec.ports[0].node_port, old.spec.ports[0].node_port);
        assert_ne!(new.spec.ports[1].node_port, 0);
        assert_ne!(new.spec.ports[1].node_port, new.spec.ports[0].node_port);
    }
}
