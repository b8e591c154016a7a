//! Allocation records: one kvstore key per ClusterIP and per node port in use, written in the
//! same transaction as the Service that holds it.
//!
//! ```text
//! /registry/ranges/serviceips/10.96.183.4        {"service":"default/web","uid":"…"}
//! /registry/ranges/servicenodeports/30080        {"service":"default/web","uid":"…"}
//! ```
//!
//! [`crate::storage::Storage`] derives an object's claims with [`of`] on every write: a
//! create or update puts the claims the new object has and the old one did not — each on
//! condition that its key does not exist yet — and deletes those the old one had and the new
//! one has not; a delete removes them all. The condition is a compare in the kvstore
//! transaction itself, so two API servers picking the same free address at the same moment
//! cannot both succeed: one transaction commits, the other fails and picks again. Kubernetes
//! keeps one IPAddress object per ClusterIP in etcd for the same reason (and a bitmap for node
//! ports).

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

use kvclient::proto::{RangeRequest, prefix_end};
use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::storage::{REGISTRY, Storage};

pub const IP_PREFIX: &str = "/registry/ranges/serviceips/";
pub const NODE_PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";
const SERVICES_PREFIX: &str = "/registry/services/";

pub fn ip_key(ip: Ipv4Addr) -> String {
    format!("{IP_PREFIX}{ip}")
}

pub fn node_port_key(port: i32) -> String {
    format!("{NODE_PORT_PREFIX}{port}")
}

/// The claims the object stored at `key` holds, each with the value its record carries. Only
/// Services hold any: their ClusterIPs, node ports and health check node port.
pub fn of(key: &str, obj: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if !key.starts_with(SERVICES_PREFIX) {
        return out;
    }
    let meta = &obj["metadata"];
    let record = json!({
        "service": format!("{}/{}", meta["namespace"].as_str().unwrap_or(""), meta["name"].as_str().unwrap_or("")),
        "uid": meta["uid"],
    })
    .to_string();
    let ips = obj.pointer("/spec/clusterIPs").and_then(Value::as_array);
    for ip in ips.into_iter().flatten() {
        if let Some(ip) = ip.as_str().and_then(|s| s.parse::<Ipv4Addr>().ok()) {
            out.insert(ip_key(ip), record.clone());
        }
    }
    let ports = obj.pointer("/spec/ports").and_then(Value::as_array);
    let node_ports = ports
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_i64));
    let health = obj
        .pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_i64);
    for port in node_ports.chain(health) {
        if let Ok(port) = i32::try_from(port)
            && port > 0
        {
            out.insert(node_port_key(port), record.clone());
        }
    }
    out
}

/// Which ClusterIPs and node ports are taken, as the kvstore has it now.
#[derive(Clone, Debug, Default)]
pub struct Used {
    pub ips: HashSet<Ipv4Addr>,
    pub ports: HashSet<i32>,
}

impl Used {
    pub async fn read(storage: &Storage) -> ApiResult<Used> {
        let mut used = Used::default();
        for key in keys(storage, IP_PREFIX).await? {
            if let Some(ip) = key.strip_prefix(IP_PREFIX).and_then(|s| s.parse().ok()) {
                used.ips.insert(ip);
            }
        }
        for key in keys(storage, NODE_PORT_PREFIX).await? {
            if let Some(p) = key
                .strip_prefix(NODE_PORT_PREFIX)
                .and_then(|s| s.parse().ok())
            {
                used.ports.insert(p);
            }
        }
        Ok(used)
    }
}

async fn keys(storage: &Storage, prefix: &str) -> ApiResult<Vec<String>> {
    debug_assert!(prefix.starts_with(REGISTRY));
    let resp = storage
        .kv()
        .range(&RangeRequest {
            key: prefix.to_string(),
            range_end: Some(prefix_end(prefix)),
            keys_only: true,
            ..Default::default()
        })
        .await?;
    Ok(resp.kvs.into_iter().map(|kv| kv.key).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_claim_their_ips_and_node_ports() {
        let svc = json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"clusterIPs": ["10.96.0.10"], "healthCheckNodePort": 30500,
                     "ports": [{"port": 80, "nodePort": 30080}, {"port": 81, "protocol": "UDP", "nodePort": 30080}, {"port": 82}]}
        });
        let claims = of("/registry/services/default/web", &svc);
        let keys: Vec<&str> = claims.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            vec![
                "/registry/ranges/serviceips/10.96.0.10",
                "/registry/ranges/servicenodeports/30080",
                "/registry/ranges/servicenodeports/30500",
            ]
        );
        assert!(claims.values().all(|v| v.contains("default/web")));
        let headless = json!({"metadata": {"name": "h"}, "spec": {"clusterIPs": ["None"]}});
        assert!(of("/registry/services/default/h", &headless).is_empty());
        assert!(
            of("/registry/configmaps/default/web", &svc).is_empty(),
            "only Services"
        );
    }
}
