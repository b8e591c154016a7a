//! The node's part of the pod network with the CRI runtime:
//!
//! - **Its pod CIDR**: given by `--pod-cidr`, or — as on a Kubernetes node — assigned by the
//!   controller-manager's node IPAM (`--cluster-cidr`) to the Node's `spec.podCIDR`; the kubelet
//!   waits for it ([`await_pod_cidr`]) and then writes the CNI config for it.
//! - **Routes to the other nodes' pods** ("host-gw", as flannel's backend of that name): for
//!   every other Node with a pod CIDR and an InternalIP, a route `<podCIDR> via <nodeIP>`, kept
//!   in step with a Node watch ([`run_routes`]). Pods reach pods on other nodes without NAT, on
//!   one L2 network (the docker-compose cluster, machines on one LAN). Ranges this machine
//!   already reaches directly (other nodes' bridges when several nodes share the machine, as
//!   with `kube-lite up`) are left alone. Routes are made with `ip route` and tagged
//!   `proto 77`, so a restarted kubelet finds its own and removes the stale ones.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use api::core::Node;
use api::net::Cidr;
use client::runtime::informer::Informer;
use client::{Api, Client, ListParams};
use tokio_util::sync::CancellationToken;

use crate::runtime::cri::CriRuntime;

/// The route protocol number kube-lite's routes carry (`ip route … proto 77`).
pub const ROUTE_PROTO: &str = "77";

/// Wait until the controller-manager assigns this node a pod CIDR, then install the node's CNI
/// config for it. Logs while it waits; ends with `shutdown`.
pub async fn await_pod_cidr(
    client: Client,
    node: String,
    cri: Arc<CriRuntime>,
    shutdown: CancellationToken,
) {
    let api: Api<Node> = Api::all(client);
    let mut said = false;
    loop {
        match api.get_opt(&node).await {
            Ok(Some(n)) if !n.spec.pod_cidr.is_empty() => {
                let cidr = n.spec.pod_cidr.clone();
                match crate::ip_alloc::parse_pod_cidr(&cidr)
                    .and_then(|c| cri.install_network(&c.to_string()))
                {
                    Ok(()) => {
                        tracing::info!(%node, %cidr, "pod CIDR assigned by the controller-manager");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(%node, %cidr, error = %e, "cannot use the assigned pod CIDR")
                    }
                }
            }
            Ok(_) if !said => {
                said = true;
                tracing::info!(%node, "waiting for the controller-manager to assign a pod CIDR (node IPAM, --cluster-cidr)");
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(%node, error = %e, "cannot read the Node"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// A route to another node's pods.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub dst: Cidr,
    pub via: Ipv4Addr,
}

/// What to change: routes to add (or replace) and destinations to delete.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RoutePlan {
    pub add: Vec<Route>,
    pub delete: Vec<Cidr>,
}

/// The routes this node should have, from the Nodes: each other node's pod CIDR via its
/// InternalIP, unless that node is this machine (`local` addresses) or its range is already
/// reached directly (`connected`).
pub fn desired_routes(
    nodes: &[Node],
    me: &str,
    local: &BTreeSet<Ipv4Addr>,
    connected: &[Cidr],
) -> BTreeMap<Cidr, Ipv4Addr> {
    let mut out = BTreeMap::new();
    for n in nodes {
        if n.metadata.name == me {
            continue;
        }
        let Ok(dst) = Cidr::parse(&n.spec.pod_cidr) else {
            continue;
        };
        let via = n
            .status
            .as_ref()
            .and_then(|s| s.addresses.iter().find(|a| a.type_ == "InternalIP"))
            .and_then(|a| a.address.parse::<Ipv4Addr>().ok());
        let Some(via) = via else { continue };
        if local.contains(&via) || via.is_loopback() || connected.iter().any(|c| c.overlaps(&dst)) {
            continue;
        }
        out.insert(dst, via);
    }
    out
}

/// From what should be to what is (our `proto 77` routes): the changes.
pub fn plan(desired: &BTreeMap<Cidr, Ipv4Addr>, current: &BTreeMap<Cidr, Ipv4Addr>) -> RoutePlan {
    let mut p = RoutePlan::default();
    for (dst, via) in desired {
        if current.get(dst) != Some(via) {
            p.add.push(Route {
                dst: *dst,
                via: *via,
            });
        }
    }
    for dst in current.keys() {
        if !desired.contains_key(dst) {
            p.delete.push(*dst);
        }
    }
    p
}

/// `ip -j …`'s output as JSON.
async fn ip_json(args: &[&str]) -> Result<serde_json::Value, String> {
    let out = tokio::process::Command::new("ip")
        .arg("-j")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Array(Vec::new()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("unexpected output of ip: {e}"))
}

async fn ip(args: &[&str]) -> Result<(), String> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Parse `ip -j route` entries into (destination, gateway) pairs; `default` and host routes
/// without a prefix length count as /32.
fn routes_of(v: &serde_json::Value) -> Vec<(Cidr, Option<Ipv4Addr>)> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let dst = r.get("dst")?.as_str()?;
            if dst == "default" {
                return None;
            }
            let dst = if dst.contains('/') {
                Cidr::parse(dst).ok()?
            } else {
                Cidr::parse(&format!("{dst}/32")).ok()?
            };
            let via = r
                .get("gateway")
                .and_then(|g| g.as_str())
                .and_then(|g| g.parse().ok());
            Some((dst, via))
        })
        .collect()
}

/// This machine's view: its own addresses, the ranges it reaches directly (link routes not
/// ours), and our `proto 77` routes.
async fn observe() -> Result<(BTreeSet<Ipv4Addr>, Vec<Cidr>, BTreeMap<Cidr, Ipv4Addr>), String> {
    let addrs = ip_json(&["-4", "addr", "show"]).await?;
    let local: BTreeSet<Ipv4Addr> = addrs
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| {
            i.get("addr_info")
                .and_then(|a| a.as_array())
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|a| a.get("local")?.as_str()?.parse().ok())
        .collect();
    let connected = routes_of(&ip_json(&["-4", "route", "show", "scope", "link"]).await?)
        .into_iter()
        .filter(|(_, via)| via.is_none())
        .map(|(dst, _)| dst)
        .collect();
    let ours = routes_of(&ip_json(&["-4", "route", "show", "proto", ROUTE_PROTO]).await?)
        .into_iter()
        .filter_map(|(dst, via)| Some((dst, via?)))
        .collect();
    Ok((local, connected, ours))
}

/// Keep routes to the other nodes' pod CIDRs until `shutdown` (see the module docs).
pub async fn run_routes(client: Client, node: String, shutdown: CancellationToken) {
    let informer = Informer::new(Api::<Node>::all(client.clone()), ListParams::default());
    let store = informer.store();
    let changed = Arc::new(tokio::sync::Notify::new());
    let c = changed.clone();
    informer.on_change(move |_| c.notify_one());
    let task = tokio::spawn(informer.run(shutdown.clone()));
    let recorder = client::runtime::events::Recorder::new(client, "kubelet", &node);
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = changed.notified() => {}
            // Also now and then: a route someone removed comes back.
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
        if !store.is_ready() {
            continue;
        }
        let nodes: Vec<Node> = store.list().iter().map(|n| (**n).clone()).collect();
        let result = async {
            let (local, connected, current) = observe().await?;
            let want = desired_routes(&nodes, &node, &local, &connected);
            let p = plan(&want, &current);
            for r in &p.add {
                let (dst, via) = (r.dst.to_string(), r.via.to_string());
                ip(&["route", "replace", &dst, "via", &via, "proto", ROUTE_PROTO])
                    .await
                    .map_err(|e| format!("cannot add a route to {dst} via {via}: {e}"))?;
                tracing::info!(%node, %dst, %via, "route to another node's pods added");
            }
            for dst in &p.delete {
                let dst = dst.to_string();
                ip(&["route", "del", &dst, "proto", ROUTE_PROTO])
                    .await
                    .map_err(|e| format!("cannot delete the route to {dst}: {e}"))?;
                tracing::info!(%node, %dst, "route to a node that is gone removed");
            }
            Ok::<(), String>(())
        }
        .await;
        match result {
            Ok(()) => last_error = None,
            Err(e) if last_error.as_ref() != Some(&e) => {
                tracing::warn!(%node, error = %e, "cannot keep the routes to other nodes' pods");
                if let Some(me) = nodes.iter().find(|n| n.metadata.name == node) {
                    recorder.warning(
                        &client::runtime::events::object_ref(me),
                        "FailedToCreateRoute",
                        e.clone(),
                    );
                }
                last_error = Some(e);
            }
            Err(_) => {}
        }
    }
    task.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cidr: &str, ip: &str) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}
        }))
        .expect("node")
    }

    fn c(s: &str) -> Cidr {
        Cidr::parse(s).expect("cidr")
    }

    #[test]
    fn routes_to_the_other_nodes_pods() {
        let nodes = [
            node("w1", "10.244.1.0/24", "172.20.0.11"),
            node("w2", "10.244.2.0/24", "172.20.0.12"),
            node("w3", "10.244.3.0/24", "172.20.0.13"),
            node("nocidr", "", "172.20.0.14"),
            node("noip", "10.244.5.0/24", ""),
            node("same-host", "10.244.6.0/24", "172.20.0.11"),
            node("bridged", "10.244.7.0/24", "172.20.0.17"),
        ];
        let local: BTreeSet<Ipv4Addr> = ["172.20.0.11".parse().unwrap()].into();
        let connected = [c("172.20.0.0/16"), c("10.244.7.0/24"), c("10.244.1.0/24")];
        let want = desired_routes(&nodes, "w1", &local, &connected);
        assert_eq!(
            want.into_iter().collect::<Vec<_>>(),
            [
                (c("10.244.2.0/24"), "172.20.0.12".parse().unwrap()),
                (c("10.244.3.0/24"), "172.20.0.13".parse().unwrap()),
            ]
        );
    }

    #[test]
    fn plans_only_the_changes() {
        let want: BTreeMap<Cidr, Ipv4Addr> = [
            (c("10.244.2.0/24"), "172.20.0.12".parse().unwrap()),
            (c("10.244.3.0/24"), "172.20.0.99".parse().unwrap()),
        ]
        .into();
        let have: BTreeMap<Cidr, Ipv4Addr> = [
            (c("10.244.2.0/24"), "172.20.0.12".parse().unwrap()),
            (c("10.244.3.0/24"), "172.20.0.13".parse().unwrap()),
            (c("10.244.4.0/24"), "172.20.0.14".parse().unwrap()),
        ]
        .into();
        let p = plan(&want, &have);
        assert_eq!(
            p.add,
            [Route {
                dst: c("10.244.3.0/24"),
                via: "172.20.0.99".parse().unwrap()
            }]
        );
        assert_eq!(p.delete, [c("10.244.4.0/24")]);
        assert_eq!(plan(&want, &want), RoutePlan::default());
    }

    #[test]
    fn parses_ip_route_json() {
        let v = serde_json::json!([
            {"dst": "default", "gateway": "10.0.0.1", "dev": "eth0"},
            {"dst": "10.244.2.0/24", "gateway": "172.20.0.12", "dev": "eth0", "protocol": "77"},
            {"dst": "172.20.0.0/16", "dev": "eth0", "scope": "link"},
            {"dst": "10.0.0.5", "dev": "eth1"}
        ]);
        let r = routes_of(&v);
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0],
            (c("10.244.2.0/24"), Some("172.20.0.12".parse().unwrap()))
        );
        assert_eq!(r[1], (c("172.20.0.0/16"), None));
        assert_eq!(r[2], (c("10.0.0.5/32"), None));
    }
}
