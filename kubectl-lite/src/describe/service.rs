//! `describe service`, `describe endpoints` and `describe endpointslice`, as kubectl's
//! `describeService`, `describeEndpoints` and `describeEndpointSliceV1` lay them out. A
//! Service's `Endpoints:` lines come from its EndpointSlices (ready endpoints only).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Writer, annotations, arr, events, labels};
use crate::util::{int_of, name_of, str_of};

/// `app=web,tier=front` (sorted by key), `<none>` when empty: Kubernetes' `FormatLabels`.
pub fn format_map(map: Option<&Value>) -> String {
    let mut pairs: Vec<String> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    if pairs.is_empty() {
        "<none>".into()
    } else {
        pairs.join(",")
    }
}

fn is_ready(endpoint: &Value) -> bool {
    // Unset means unknown, which consumers read as ready.
    endpoint.pointer("/conditions/ready") != Some(&Value::Bool(false))
}

fn host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// The ready endpoints of the slices for one Service port (`ip:port`, three then `+ N
/// more...`); `<none>` without slices (kubectl's `formatEndpointSlices`).
pub fn format_endpoint_slices(slices: &[Value], port_name: &str) -> String {
    if slices.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut count = 0;
    for s in slices {
        let eps: Vec<&Value> = s["endpoints"]
            .as_array()
            .map(|a| a.iter().filter(|e| is_ready(e)).collect())
            .unwrap_or_default();
        let ports = arr(s, "/ports");
        if ports.is_empty() {
            for e in &eps {
                count += 1;
                if list.len() < MAX {
                    list.push(str_of(e, "/addresses/0").to_string());
                }
            }
            continue;
        }
        for p in ports.iter().filter(|p| str_of(p, "/name") == port_name) {
            for e in &eps {
                count += 1;
                if list.len() < MAX {
                    list.push(host_port(str_of(e, "/addresses/0"), int_of(p, "/port")));
                }
            }
        }
    }
    let joined = list.join(",");
    if count > MAX {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

fn head(w: &mut Writer, obj: &Value) {
    w.line(0, &format!("Name:\t{}", name_of(obj)));
    w.line(
        0,
        &format!("Namespace:\t{}", str_of(obj, "/metadata/namespace")),
    );
    labels(w, "", "Labels", obj.pointer("/metadata/labels"));
    annotations(w, "", "Annotations", obj.pointer("/metadata/annotations"));
}

/// `describe service`: `slices` are the Service's EndpointSlices.
pub fn service(svc: &Value, slices: &[Value], evs: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Writer::default();
    let spec = &svc["spec"];
    head(&mut w, svc);
    w.line(
        0,
        &format!("Selector:\t{}", format_map(spec.get("selector"))),
    );
    w.line(0, &format!("Type:\t{}", str_of(spec, "/type")));
    if let Some(p) = spec["ipFamilyPolicy"].as_str() {
        w.line(0, &format!("IP Family Policy:\t{p}"));
    }
    let families: Vec<&str> = spec["ipFamilies"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    w.line(
        0,
        &format!(
            "IP Families:\t{}",
            if families.is_empty() {
                "<none>".to_string()
            } else {
                families.join(",")
            }
        ),
    );
    w.line(0, &format!("IP:\t{}", str_of(spec, "/clusterIP")));
    let ips: Vec<&str> = spec["clusterIPs"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    w.line(
        0,
        &format!(
            "IPs:\t{}",
            if ips.is_empty() {
                "<none>".to_string()
            } else {
                ips.join(",")
            }
        ),
    );
    let external: Vec<&str> = spec["externalIPs"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !external.is_empty() {
        w.line(0, &format!("External IPs:\t{}", external.join(",")));
    }
    let lb_ip = str_of(spec, "/loadBalancerIP");
    if !lb_ip.is_empty() {
        w.line(0, &format!("Desired LoadBalancer IP:\t{lb_ip}"));
    }
    let ext_name = str_of(spec, "/externalName");
    if !ext_name.is_empty() {
        w.line(0, &format!("External Name:\t{ext_name}"));
    }
    let ingress: Vec<String> = arr(svc, "/status/loadBalancer/ingress")
        .iter()
        .map(|i| {
            let ip = str_of(i, "/ip");
            if ip.is_empty() {
                str_of(i, "/hostname").to_string()
            } else {
                ip.to_string()
            }
        })
        .collect();
    if !ingress.is_empty() {
        w.line(0, &format!("LoadBalancer Ingress:\t{}", ingress.join(", ")));
    }
    for p in arr(spec, "/ports") {
        let raw_name = str_of(&p, "/name");
        let name = if raw_name.is_empty() {
            "<unset>"
        } else {
            raw_name
        };
        let proto = str_of(&p, "/protocol");
        w.line(
            0,
            &format!("Port:\t{name}\t{}/{proto}", int_of(&p, "/port")),
        );
        let target = match &p["targetPort"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => String::new(),
        };
        w.line(0, &format!("TargetPort:\t{target}/{proto}"));
        if let Some(a) = p["appProtocol"].as_str() {
            w.line(0, &format!("AppProtocol:\t{a}"));
        }
        let node_port = int_of(&p, "/nodePort");
        if node_port != 0 {
            w.line(0, &format!("NodePort:\t{name}\t{node_port}/{proto}"));
        }
        w.line(
            0,
            &format!("Endpoints:\t{}", format_endpoint_slices(slices, raw_name)),
        );
    }
    w.line(
        0,
        &format!("Session Affinity:\t{}", str_of(spec, "/sessionAffinity")),
    );
    let etp = str_of(spec, "/externalTrafficPolicy");
    if !etp.is_empty() {
        w.line(0, &format!("External Traffic Policy:\t{etp}"));
    }
    if let Some(itp) = spec["internalTrafficPolicy"].as_str() {
        w.line(0, &format!("Internal Traffic Policy:\t{itp}"));
    }
    let hc = int_of(spec, "/healthCheckNodePort");
    if hc != 0 {
        w.line(0, &format!("HealthCheck NodePort:\t{hc}"));
    }
    events(&mut w, evs, now);
    w.finish()
}

fn ips_of(list: &[Value]) -> String {
    let ips: Vec<&str> = list.iter().map(|a| str_of(a, "/ip")).collect();
    if ips.is_empty() {
        "<none>".into()
    } else {
        ips.join(",")
    }
}

/// `describe endpoints`.
pub fn endpoints(ep: &Value, evs: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Writer::default();
    head(&mut w, ep);
    w.line(0, "Subsets:");
    for s in arr(ep, "/subsets") {
        w.line(
            1,
            &format!("Addresses:\t{}", ips_of(&arr(&s, "/addresses"))),
        );
        w.line(
            1,
            &format!(
                "NotReadyAddresses:\t{}",
                ips_of(&arr(&s, "/notReadyAddresses"))
            ),
        );
        let ports = arr(&s, "/ports");
        if !ports.is_empty() {
            w.line(1, "Ports:");
            w.line(2, "Name\tPort\tProtocol");
            w.line(2, "----\t----\t--------");
            for p in &ports {
                let name = str_of(p, "/name");
                w.line(
                    2,
                    &format!(
                        "{}\t{}\t{}",
                        if name.is_empty() { "<unset>" } else { name },
                        int_of(p, "/port"),
                        str_of(p, "/protocol")
                    ),
                );
            }
        }
        w.line(0, "");
    }
    events(&mut w, evs, now);
    w.finish()
}

fn or_unset(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "<unset>".into(),
    }
}

/// `describe endpointslice`.
pub fn endpoint_slice(s: &Value, evs: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Writer::default();
    head(&mut w, s);
    w.line(0, &format!("AddressType:\t{}", str_of(s, "/addressType")));
    let ports = arr(s, "/ports");
    if ports.is_empty() {
        w.line(0, "Ports: <unset>");
    } else {
        w.line(0, "Ports:");
        w.line(1, "Name\tPort\tProtocol");
        w.line(1, "----\t----\t--------");
        for p in &ports {
            let name = str_of(p, "/name");
            w.line(
                1,
                &format!(
                    "{}\t{}\t{}",
                    if name.is_empty() { "<unset>" } else { name },
                    or_unset(p, "/port"),
                    str_of(p, "/protocol")
                ),
            );
        }
    }
    let eps = arr(s, "/endpoints");
    if eps.is_empty() {
        w.line(0, "Endpoints: <none>");
    } else {
        w.line(0, "Endpoints:");
        for e in &eps {
            let addrs: Vec<&str> = e["addresses"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            w.line(
                1,
                &format!(
                    "- Addresses:\t{}",
                    if addrs.is_empty() {
                        "<none>".to_string()
                    } else {
                        addrs.join(", ")
                    }
                ),
            );
            w.line(2, "Conditions:");
            w.line(3, &format!("Ready:\t{}", or_unset(e, "/conditions/ready")));
            w.line(2, &format!("Hostname:\t{}", or_unset(e, "/hostname")));
            if e["targetRef"].is_object() {
                w.line(
                    2,
                    &format!(
                        "TargetRef:\t{}/{}",
                        str_of(e, "/targetRef/kind"),
                        str_of(e, "/targetRef/name")
                    ),
                );
            }
            w.line(2, &format!("NodeName:\t{}", or_unset(e, "/nodeName")));
            w.line(2, &format!("Zone:\t{}", or_unset(e, "/zone")));
        }
    }
    events(&mut w, evs, now);
    w.finish()
}
