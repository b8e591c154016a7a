//! Validation of Services, Endpoints and EndpointSlices, with Kubernetes' messages
//! (`ValidateService`, `ValidateEndpoints`, `ValidateEndpointSlice`).
//!
//! What needs the cluster's configuration — a ClusterIP inside `--service-cluster-ip-range`, a
//! node port inside `--service-node-port-range`, either not taken — is checked where they are
//! allocated, in the API server (`apiserver/src/services/`).
//!
//! One deliberate difference: Kubernetes refuses loopback endpoint addresses (127.0.0.0/8);
//! kube-lite's process runtime gives every pod a loopback address, so they are allowed here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use super::{
    DisplayAsIs, ErrorType, FieldError, dns1123_label, dns1123_subdomain, qualified_name,
    validate_labels, validate_object_meta,
};
use crate::core::service::{
    CLUSTER_IP_NONE, TYPE_CLUSTER_IP, TYPE_EXTERNAL_NAME, TYPE_LOAD_BALANCER, TYPE_NODE_PORT,
};
use crate::core::{Endpoints, Service, ServicePort};
use crate::discovery::EndpointSlice;
use crate::meta::IntOrString;

const PORT_NUM_MSG: &str = "must be between 1 and 65535, inclusive";
const IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// Go's `%#v` of a `[]string`, as Kubernetes prints list values: `[]string{"a", "b"}`.
pub fn go_strings(list: &[String]) -> impl fmt::Debug + use<> {
    if list.is_empty() {
        return DisplayAsIs("[]string(nil)".into());
    }
    let items: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    DisplayAsIs(format!("[]string{{{}}}", items.join(", ")))
}

/// Kubernetes' `IsValidPortNum`.
fn port_num(p: i32) -> Vec<String> {
    if (1..=65535).contains(&p) {
        vec![]
    } else {
        vec![PORT_NUM_MSG.into()]
    }
}

/// Kubernetes' `IsValidPortName` (IANA service names): 1–15 lowercase letters, digits and
/// hyphens, at least one letter, no hyphen at either end or twice in a row.
pub fn port_name(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    if name.len() > 15 {
        out.push("must be no more than 15 characters".into());
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        out.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if name.contains("--") {
        out.push("must not contain consecutive hyphens".into());
    }
    if !name.chars().any(|c| c.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)".into());
    }
    if name.starts_with('-') || name.ends_with('-') {
        out.push("must not begin or end with a hyphen".into());
    }
    out
}

/// An address no endpoint or external IP may have: unspecified, or link-local (Kubernetes'
/// `ValidateNonSpecialIP`, less its loopback rule — see the module documentation).
fn special_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => Some("may not be unspecified (0.0.0.0)"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("may not be unspecified (::)"),
        IpAddr::V4(v4) if v4.is_link_local() => {
            Some("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
        }
        IpAddr::V4(v4) if v4.octets()[..3] == [224, 0, 0] => {
            Some("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
        }
        _ => None,
    }
}

fn check_ip(field: String, ip: &str, errs: &mut Vec<FieldError>) {
    match ip.parse::<IpAddr>() {
        Err(_) => errs.push(FieldError::invalid(field, ip, IP_MSG)),
        Ok(addr) => {
            if let Some(m) = special_ip(addr) {
                errs.push(FieldError::invalid(field, ip, m));
            }
        }
    }
}

fn check_protocol(field: String, protocol: &str, errs: &mut Vec<FieldError>) {
    if protocol.is_empty() {
        errs.push(FieldError::required(field, ""));
    } else if !PROTOCOLS.contains(&protocol) {
        errs.push(FieldError::not_supported(field, protocol, PROTOCOLS));
    }
}

/// Go's `%#v` of the `core.ServicePort{Protocol, Port}` key Kubernetes reports a duplicate
/// port with.
fn duplicate_port_key(protocol: &str, port: i32) -> DisplayAsIs {
    DisplayAsIs(format!(
        "core.ServicePort{{Name:\"\", Protocol:{protocol:?}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}"
    ))
}

fn validate_service_port(
    p: &ServicePort,
    path: &str,
    require_name: bool,
    names: &mut BTreeSet<String>,
    errs: &mut Vec<FieldError>,
) {
    if require_name && p.name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else if !p.name.is_empty() {
        for m in dns1123_label(&p.name) {
            errs.push(FieldError::invalid(format!("{path}.name"), &p.name, m));
        }
        if !names.insert(p.name.clone()) {
            errs.push(FieldError::duplicate(format!("{path}.name"), &p.name));
        }
    }
    for m in port_num(p.port) {
        errs.push(FieldError::invalid(format!("{path}.port"), p.port, m));
    }
    check_protocol(format!("{path}.protocol"), &p.protocol, errs);
    match &p.target_port {
        Some(IntOrString::Int(n)) => {
            for m in port_num(*n) {
                errs.push(FieldError::invalid(format!("{path}.targetPort"), *n, m));
            }
        }
        Some(IntOrString::String(s)) => {
            for m in port_name(s) {
                errs.push(FieldError::invalid(format!("{path}.targetPort"), s, m));
            }
        }
        None => {}
    }
    if let Some(a) = &p.app_protocol {
        for m in qualified_name(a) {
            errs.push(FieldError::invalid(format!("{path}.appProtocol"), a, m));
        }
    }
}

/// `spec.clusterIP`, `spec.clusterIPs`, `spec.ipFamilies` and `spec.ipFamilyPolicy` agree
/// (Kubernetes' `ValidateServiceClusterIPsRelatedFields`).
fn validate_cluster_ips(svc: &Service, errs: &mut Vec<FieldError>) {
    let spec = &svc.spec;
    if spec.type_ == TYPE_EXTERNAL_NAME {
        return;
    }
    let ips = &spec.cluster_ips;
    if !spec.cluster_ip.is_empty() {
        if ips.is_empty() {
            errs.push(FieldError::required("spec.clusterIPs", ""));
        } else if ips[0] != spec.cluster_ip {
            errs.push(FieldError::invalid(
                "spec.clusterIPs",
                go_strings(ips),
                "first value must match `clusterIP`",
            ));
        }
    } else if !ips.is_empty() {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            go_strings(ips),
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, f) in spec.ip_families.iter().enumerate() {
        if f != "IPv4" && f != "IPv6" {
            errs.push(FieldError::not_supported(
                format!("spec.ipFamilies[{i}]"),
                f,
                &["IPv4", "IPv6"],
            ));
        }
        if !seen.insert(f) {
            errs.push(FieldError::duplicate(format!("spec.ipFamilies[{i}]"), f));
        }
    }
    if let Some(p) = &spec.ip_family_policy {
        const POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !POLICIES.contains(&p.as_str()) {
            errs.push(FieldError::not_supported(
                "spec.ipFamilyPolicy",
                p,
                POLICIES,
            ));
        }
    }
    let mut invalid = false;
    let mut parsed = Vec::new();
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == CLUSTER_IP_NONE {
            if ips.len() > 1 {
                invalid = true;
                errs.push(FieldError::invalid(
                    "spec.clusterIPs",
                    go_strings(ips),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        match ip.parse::<IpAddr>() {
            Ok(a) => parsed.push(a),
            Err(_) => {
                invalid = true;
                errs.push(FieldError::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    ip,
                    IP_MSG,
                ));
            }
        }
    }
    if ips.len() > 2 {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            go_strings(ips),
            "may only hold up to 2 values",
        ));
    }
    if invalid {
        return;
    }
    if parsed.len() == 2 && parsed[0].is_ipv4() == parsed[1].is_ipv4() {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            go_strings(ips),
            "may specify no more than one IP for each IP family",
        ));
    }
    if !spec.is_headless() {
        for (i, (ip, fam)) in parsed.iter().zip(&spec.ip_families).enumerate() {
            if fam == "IPv4" && ip.is_ipv6() {
                errs.push(FieldError::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    ip.to_string(),
                    format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if fam == "IPv6" && ip.is_ipv4() {
                errs.push(FieldError::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    ip.to_string(),
                    format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
}

/// Kubernetes' `ValidateService`: what a Service must be, whatever the cluster.
pub fn validate_service(svc: &Service) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&svc.metadata, &crate::resource::SERVICE);
    let spec = &svc.spec;
    let type_ = spec.type_.as_str();
    let headless = spec.is_headless()
        || spec
            .cluster_ips
            .first()
            .is_some_and(|ip| ip == CLUSTER_IP_NONE);
    if spec.ports.is_empty() && !headless && type_ != TYPE_EXTERNAL_NAME {
        errs.push(FieldError::required("spec.ports", ""));
    }
    match type_ {
        TYPE_LOAD_BALANCER | TYPE_NODE_PORT if headless => errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            CLUSTER_IP_NONE,
            format!("may not be set to 'None' for {type_} services"),
        )),
        TYPE_EXTERNAL_NAME => {
            if !spec.cluster_ips.is_empty() {
                errs.push(FieldError::forbidden(
                    "spec.clusterIPs",
                    "may not be set for ExternalName services",
                ));
            }
            if !spec.ip_families.is_empty() {
                errs.push(FieldError::forbidden(
                    "spec.ipFamilies",
                    "may not be set for ExternalName services",
                ));
            }
            if spec.ip_family_policy.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.ipFamilyPolicy",
                    "may not be set for ExternalName services",
                ));
            }
            let cname = spec.external_name.trim_end_matches('.');
            if cname.is_empty() {
                errs.push(FieldError::required("spec.externalName", ""));
            } else {
                for m in dns1123_subdomain(cname) {
                    errs.push(FieldError::invalid("spec.externalName", cname, m));
                }
            }
        }
        _ => {}
    }
    let mut names = BTreeSet::new();
    for (i, p) in spec.ports.iter().enumerate() {
        validate_service_port(
            p,
            &format!("spec.ports[{i}]"),
            spec.ports.len() > 1,
            &mut names,
            &mut errs,
        );
    }
    validate_labels(&spec.selector, "spec.selector", &mut errs);
    match spec.session_affinity.as_str() {
        "" => errs.push(FieldError::required("spec.sessionAffinity", "")),
        "None" => {
            if spec.session_affinity_config.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.sessionAffinityConfig",
                    "must not be set when session affinity is None",
                ));
            }
        }
        "ClientIP" => {
            let timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.pointer("/clientIP/timeoutSeconds"))
                .and_then(|t| t.as_i64());
            match timeout {
                None => errs.push(FieldError::required(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    "when session affinity type is ClientIP",
                )),
                Some(t) if !(1..=86400).contains(&t) => errs.push(FieldError::invalid(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    t,
                    "must be greater than 0 and less than 86400",
                )),
                Some(_) => {}
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            other,
            &["ClientIP", "None"],
        )),
    }
    validate_cluster_ips(svc, &mut errs);
    for (i, ip) in spec.external_ips.iter().enumerate() {
        check_ip(format!("spec.externalIPs[{i}]"), ip, &mut errs);
    }
    const TYPES: &[&str] = &[
        TYPE_CLUSTER_IP,
        TYPE_EXTERNAL_NAME,
        TYPE_LOAD_BALANCER,
        TYPE_NODE_PORT,
    ];
    if type_.is_empty() {
        errs.push(FieldError::required("spec.type", ""));
    } else if !TYPES.contains(&type_) {
        errs.push(FieldError::not_supported("spec.type", type_, TYPES));
    }
    if type_ == TYPE_CLUSTER_IP {
        for (i, p) in spec.ports.iter().enumerate() {
            if p.node_port != 0 {
                errs.push(FieldError::forbidden(
                    format!("spec.ports[{i}].nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports = BTreeSet::new();
    for (i, p) in spec.ports.iter().enumerate() {
        if p.node_port != 0 && !node_ports.insert((p.protocol.as_str(), p.node_port)) {
            errs.push(FieldError::duplicate(
                format!("spec.ports[{i}].nodePort"),
                p.node_port,
            ));
        }
    }
    let mut ports = BTreeSet::new();
    for (i, p) in spec.ports.iter().enumerate() {
        if !ports.insert((p.protocol.as_str(), p.port)) {
            errs.push(FieldError::duplicate(
                format!("spec.ports[{i}]"),
                duplicate_port_key(&p.protocol, p.port),
            ));
        }
    }
    if !spec.load_balancer_source_ranges.is_empty() && type_ != TYPE_LOAD_BALANCER {
        errs.push(FieldError::forbidden(
            "spec.LoadBalancerSourceRanges",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if spec.allocate_load_balancer_node_ports.is_some() && type_ != TYPE_LOAD_BALANCER {
        errs.push(FieldError::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if type_ == TYPE_LOAD_BALANCER && spec.allocate_load_balancer_node_ports.is_none() {
        errs.push(FieldError::required("allocateLoadBalancerNodePorts", ""));
    }
    if !spec.externally_accessible() {
        if !spec.external_traffic_policy.is_empty() {
            errs.push(FieldError::invalid(
                "spec.externalTrafficPolicy",
                &spec.external_traffic_policy,
                "may only be set for externally-accessible services",
            ));
        }
    } else if spec.external_traffic_policy.is_empty() {
        errs.push(FieldError::required("spec.externalTrafficPolicy", ""));
    } else if !["Cluster", "Local"].contains(&spec.external_traffic_policy.as_str()) {
        errs.push(FieldError::not_supported(
            "spec.externalTrafficPolicy",
            &spec.external_traffic_policy,
            &["Cluster", "Local"],
        ));
    }
    if !needs_health_check(svc) {
        if spec.health_check_node_port != 0 {
            errs.push(FieldError::invalid(
                "spec.healthCheckNodePort",
                spec.health_check_node_port,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if spec.health_check_node_port == 0 {
        errs.push(FieldError::required("spec.healthCheckNodePort", ""));
    }
    match &spec.internal_traffic_policy {
        None if matches!(type_, TYPE_CLUSTER_IP | TYPE_NODE_PORT | TYPE_LOAD_BALANCER) => {
            errs.push(FieldError::required("spec.internalTrafficPolicy", ""))
        }
        Some(p) if p != "Cluster" && p != "Local" => errs.push(FieldError::not_supported(
            "spec.internalTrafficPolicy",
            p,
            &["Cluster", "Local"],
        )),
        _ => {}
    }
    if let Some(t) = &spec.traffic_distribution
        && t != "PreferClose"
    {
        errs.push(FieldError::not_supported(
            "spec.trafficDistribution",
            t,
            &["PreferClose"],
        ));
    }
    errs
}

/// LoadBalancer Services with `externalTrafficPolicy: Local` get a health check node port.
pub fn needs_health_check(svc: &Service) -> bool {
    svc.spec.type_ == TYPE_LOAD_BALANCER && svc.spec.external_traffic_policy == "Local"
}

/// What Kubernetes' `ValidateServiceUpdate` adds to [`validate_service`]: the ClusterIP may not
/// change once set (unless the Service becomes or stops being an ExternalName), nor may the IP
/// families or a health check node port.
pub fn validate_service_update(new: &Service, old: &Service) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (n, o) = (&new.spec, &old.spec);
    if n.type_ == TYPE_EXTERNAL_NAME || o.type_ == TYPE_EXTERNAL_NAME {
        return errs;
    }
    let headless = |s: &crate::core::ServiceSpec| {
        s.cluster_ips
            .first()
            .is_some_and(|ip| ip == CLUSTER_IP_NONE)
    };
    if !(headless(n) && headless(o)) {
        let (ni, oi) = (&n.cluster_ips, &o.cluster_ips);
        if ni.len() == oi.len() {
            for (i, ip) in oi.iter().enumerate() {
                if ni.get(i) != Some(ip) {
                    errs.push(FieldError::invalid(
                        format!("spec.clusterIPs[{i}]"),
                        go_strings(ni),
                        "may not change once set",
                    ));
                }
            }
        } else if oi.len() > ni.len() {
            if ni.is_empty() {
                errs.push(FieldError::invalid(
                    "spec.clusterIPs[0]",
                    go_strings(ni),
                    "primary clusterIP can not be unset",
                ));
            } else if ni[0] != oi[0] {
                errs.push(FieldError::invalid(
                    "spec.clusterIPs[0]",
                    go_strings(ni),
                    "may not change once set",
                ));
            }
        } else if !oi.is_empty() && ni[0] != oi[0] {
            errs.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                go_strings(ni),
                "may not change once set",
            ));
        }
    }
    if headless(n) == headless(o) && !headless(n) {
        let (nf, of) = (&n.ip_families, &o.ip_families);
        if nf.len() == of.len() && nf != of {
            errs.push(FieldError::invalid(
                "spec.ipFamilies[0]",
                go_strings(nf),
                "may not change once set",
            ));
        }
    }
    if needs_health_check(new)
        && needs_health_check(old)
        && n.health_check_node_port != o.health_check_node_port
    {
        errs.push(FieldError::forbidden(
            "spec.healthCheckNodePort",
            "field is immutable",
        ));
    }
    errs
}

/// Kubernetes' `ValidateEndpoints`.
pub fn validate_endpoints(ep: &Endpoints) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&ep.metadata, &crate::resource::ENDPOINTS);
    for (i, s) in ep.subsets.iter().enumerate() {
        let path = format!("subsets[{i}]");
        if s.addresses.is_empty() && s.not_ready_addresses.is_empty() {
            errs.push(FieldError::required(
                path.clone(),
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (list, addrs) in [
            ("addresses", &s.addresses),
            ("notReadyAddresses", &s.not_ready_addresses),
        ] {
            for (j, a) in addrs.iter().enumerate() {
                let p = format!("{path}.{list}[{j}]");
                check_ip(format!("{p}.ip"), &a.ip, &mut errs);
                if !a.hostname.is_empty() {
                    for m in dns1123_label(&a.hostname) {
                        errs.push(FieldError::invalid(format!("{p}.hostname"), &a.hostname, m));
                    }
                }
                if let Some(n) = &a.node_name {
                    for m in dns1123_subdomain(n) {
                        errs.push(FieldError::invalid(format!("{p}.nodeName"), n, m));
                    }
                }
            }
        }
        let mut names = BTreeSet::new();
        for (j, p) in s.ports.iter().enumerate() {
            let pp = format!("{path}.ports[{j}]");
            if s.ports.len() > 1 && p.name.is_empty() {
                errs.push(FieldError::required(format!("{pp}.name"), ""));
            } else if !p.name.is_empty() {
                for m in dns1123_label(&p.name) {
                    errs.push(FieldError::invalid(format!("{pp}.name"), &p.name, m));
                }
                if !names.insert(p.name.as_str()) {
                    errs.push(FieldError::duplicate(format!("{pp}.name"), &p.name));
                }
            }
            for m in port_num(p.port) {
                errs.push(FieldError::invalid(format!("{pp}.port"), p.port, m));
            }
            check_protocol(format!("{pp}.protocol"), &p.protocol, &mut errs);
        }
    }
    errs
}

const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];

/// Kubernetes' `ValidateEndpointSlice`.
pub fn validate_endpoint_slice(slice: &EndpointSlice) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&slice.metadata, &crate::resource::ENDPOINT_SLICE);
    let at = slice.address_type.as_str();
    if at.is_empty() {
        errs.push(FieldError::required("addressType", ""));
    } else if !ADDRESS_TYPES.contains(&at) {
        errs.push(FieldError::not_supported("addressType", at, ADDRESS_TYPES));
    }
    if slice.endpoints.len() > 1000 {
        errs.push(too_many("endpoints", slice.endpoints.len(), 1000));
    } else {
        for (i, e) in slice.endpoints.iter().enumerate() {
            let path = format!("endpoints[{i}].addresses");
            if e.addresses.is_empty() {
                errs.push(FieldError::required(
                    &path,
                    "must contain at least 1 address",
                ));
            } else if e.addresses.len() > 100 {
                errs.push(too_many(&path, e.addresses.len(), 100));
            }
            for (j, a) in e.addresses.iter().enumerate() {
                let field = format!("{path}[{j}]");
                match at {
                    "IPv4" => match a.parse::<std::net::Ipv4Addr>() {
                        Err(_) => errs.push(FieldError::invalid(
                            field,
                            a,
                            "must be a valid IPv4 address",
                        )),
                        Ok(v4) => {
                            if let Some(m) = special_ip(IpAddr::V4(v4)) {
                                errs.push(FieldError::invalid(field, a, m));
                            }
                        }
                    },
                    "IPv6" => match a.parse::<std::net::Ipv6Addr>() {
                        Err(_) => errs.push(FieldError::invalid(
                            field,
                            a,
                            "must be a valid IPv6 address",
                        )),
                        Ok(v6) => {
                            if let Some(m) = special_ip(IpAddr::V6(v6)) {
                                errs.push(FieldError::invalid(field, a, m));
                            }
                        }
                    },
                    "FQDN" => {
                        for m in dns1123_subdomain(a) {
                            errs.push(FieldError::invalid(&field, a, m));
                        }
                    }
                    _ => {}
                }
            }
            if let Some(h) = &e.hostname {
                for m in dns1123_label(h) {
                    errs.push(FieldError::invalid(
                        format!("endpoints[{i}].hostname"),
                        h,
                        m,
                    ));
                }
            }
        }
    }
    if slice.ports.len() > 100 {
        errs.push(too_many("ports", slice.ports.len(), 100));
        return errs;
    }
    let mut names = BTreeSet::new();
    for (i, p) in slice.ports.iter().enumerate() {
        let name = p.name.clone().unwrap_or_default();
        if !name.is_empty() {
            for m in dns1123_label(&name) {
                errs.push(FieldError::invalid(format!("ports[{i}].name"), &name, m));
            }
        }
        if !names.insert(name.clone()) {
            errs.push(FieldError::duplicate(format!("ports[{i}].name"), &name));
        }
        match &p.protocol {
            None => errs.push(FieldError::required(format!("ports[{i}].protocol"), "")),
            Some(proto) => check_protocol(format!("ports[{i}].protocol"), proto, &mut errs),
        }
        if let Some(n) = p.port
            && !(0..=65535).contains(&n)
        {
            errs.push(FieldError::invalid(
                format!("ports[{i}].port"),
                n,
                "must be between 0 and 65535, inclusive",
            ));
        }
    }
    errs
}

/// What an update adds to [`validate_endpoint_slice`]: the address type is immutable.
pub fn validate_endpoint_slice_update(new: &EndpointSlice, old: &EndpointSlice) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if new.address_type != old.address_type {
        errs.push(FieldError::invalid(
            "addressType",
            &new.address_type,
            "field is immutable",
        ));
    }
    errs
}

fn too_many(field: impl Into<String>, n: usize, max: usize) -> FieldError {
    FieldError {
        type_: ErrorType::TooMany,
        field: field.into(),
        value: n.to_string(),
        detail: format!("must have at most {max} items"),
    }
}

/// Labels as Kubernetes prints a selector (`app=web,tier=front`), for messages and tables.
pub fn format_selector(selector: &BTreeMap<String, String>) -> String {
    if selector.is_empty() {
        return "<none>".into();
    }
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(spec: serde_json::Value) -> Service {
        let mut s: Service = serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec}),
        )
        .unwrap();
        crate::defaults::default_service(&mut s);
        s
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn a_plain_service_is_valid() {
        let s =
            svc(json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8000}]}));
        assert!(
            validate_service(&s).is_empty(),
            "{:?}",
            validate_service(&s)
        );
        let headless = svc(json!({"clusterIP": "None", "clusterIPs": ["None"]}));
        assert!(
            validate_service(&headless).is_empty(),
            "{:?}",
            validate_service(&headless)
        );
    }

    #[test]
    fn ports_read_like_kubernetes() {
        let s = svc(json!({"ports": [
            {"name": "http", "port": 0},
            {"name": "http", "port": 80, "protocol": "ICMP", "targetPort": "8080"},
            {"port": 80, "targetPort": 70000}
        ]}));
        let m = messages(&validate_service(&s));
        for want in [
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[1].name: Duplicate value: \"http\"",
            "spec.ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.ports[1].targetPort: Invalid value: \"8080\": must contain at least one letter (a-z)",
            "spec.ports[2].name: Required value",
            "spec.ports[2].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        ] {
            assert!(m.contains(&want.to_string()), "missing {want:?} in {m:#?}");
        }
        let dup = svc(json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}));
        let m = messages(&validate_service(&dup));
        assert_eq!(
            m,
            vec![
                "spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}"
            ]
        );
        let udp = svc(
            json!({"ports": [{"name": "a", "port": 53}, {"name": "b", "port": 53, "protocol": "UDP"}]}),
        );
        assert!(
            validate_service(&udp).is_empty(),
            "same port, other protocol"
        );
    }

    #[test]
    fn cluster_ip_rules() {
        let bad = svc(
            json!({"clusterIP": "10.96.0.300", "clusterIPs": ["10.96.0.300"], "ports": [{"port": 80}]}),
        );
        assert_eq!(
            messages(&validate_service(&bad)),
            vec![
                "spec.clusterIPs[0]: Invalid value: \"10.96.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
            ]
        );
        let np = svc(
            json!({"type": "NodePort", "clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 80}]}),
        );
        assert_eq!(
            messages(&validate_service(&np)),
            vec![
                "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"
            ]
        );
        let cip = svc(json!({"ports": [{"port": 80, "nodePort": 30080}]}));
        assert_eq!(
            messages(&validate_service(&cip)),
            vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
        );
    }

    #[test]
    fn selector_and_type() {
        let s =
            svc(json!({"type": "Magic", "selector": {"app": "-bad-"}, "ports": [{"port": 80}]}));
        let m = messages(&validate_service(&s));
        assert!(
            m.iter()
                .any(|e| e.starts_with("spec.selector: Invalid value: \"-bad-\"")),
            "{m:?}"
        );
        assert!(m.contains(&"spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"".to_string()), "{m:?}");
    }

    #[test]
    fn cluster_ip_may_not_change() {
        let old = svc(
            json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": [{"port": 80}]}),
        );
        let new = svc(
            json!({"clusterIP": "10.96.0.11", "clusterIPs": ["10.96.0.11"], "ports": [{"port": 80}]}),
        );
        assert_eq!(
            messages(&validate_service_update(&new, &old)),
            vec![
                "spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.11\"}: may not change once set"
            ]
        );
        assert!(validate_service_update(&old, &old).is_empty());
    }

    #[test]
    fn slices_and_endpoints() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.11.0.2"]}, {"addresses": ["nope"]}, {"addresses": []}],
            "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}, {"name": "http", "protocol": "TCP"}]
        }))
        .unwrap();
        let m = messages(&validate_endpoint_slice(&slice));
        assert_eq!(
            m,
            vec![
                "endpoints[1].addresses[0]: Invalid value: \"nope\": must be a valid IPv4 address",
                "endpoints[2].addresses: Required value: must contain at least 1 address",
                "ports[1].name: Duplicate value: \"http\"",
            ]
        );
        let mut moved = slice.clone();
        moved.address_type = "IPv6".into();
        moved.endpoints.clear();
        moved.ports.truncate(1);
        assert_eq!(
            messages(&validate_endpoint_slice_update(&moved, &slice)),
            vec!["addressType: Invalid value: \"IPv6\": field is immutable"]
        );
        let ep: Endpoints = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "subsets": [{"addresses": [{"ip": "0.0.0.0"}], "ports": [{"port": 80, "protocol": "TCP"}]}]
        }))
        .unwrap();
        assert_eq!(
            messages(&validate_endpoints(&ep)),
            vec![
                "subsets[0].addresses[0].ip: Invalid value: \"0.0.0.0\": may not be unspecified (0.0.0.0)"
            ]
        );
    }

    #[test]
    fn port_names() {
        assert!(port_name("http").is_empty());
        assert!(port_name("h2c-web").is_empty());
        assert!(!port_name("8080").is_empty());
        assert!(!port_name("a--b").is_empty());
        assert!(!port_name("averyveryverylongname").is_empty());
        assert_eq!(
            port_name(""),
            vec![
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "must contain at least one letter (a-z)"
            ]
        );
    }

    #[test]
    fn go_string_lists() {
        assert_eq!(
            format!("{:?}", go_strings(&["10.96.0.10".to_string()])),
            "[]string{\"10.96.0.10\"}"
        );
        assert_eq!(format!("{:?}", go_strings(&[])), "[]string(nil)");
    }
}
