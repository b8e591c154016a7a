//! The nftables back end, after kube-proxy's `nftables` mode: one table, `ip kube-lite`,
//! rewritten whole in one `nft -f` transaction at every change (so a packet sees the old rules
//! or the new ones, never a mix):
//!
//! - `service-ips` and `service-nodeports`: verdict maps from `ClusterIP . protocol . port`
//!   (and `protocol . nodePort` on any local address) to the Service port's chain;
//! - a chain per Service port picks an endpoint at random (`numgen random mod N`) and jumps to
//!   the endpoint's chain, which DNATs to `podIP:targetPort`;
//! - traffic that would come back the wrong way is marked for masquerading: from outside the
//!   pod network to a ClusterIP, through a node port, or from a pod to itself (hairpin);
//! - `no-endpoints`: Services without an endpoint reject new connections (connection refused,
//!   not a hang), checked before NAT in filter chains.
//!
//! [`ruleset`] is pure (unit-tested); [`apply`] hands it to `nft`.

use std::fmt::Write as _;

use api::net::Cidr;

use crate::model::ServicePort;

/// The table's name (family `ip`).
pub const TABLE: &str = "kube-lite";
/// The packet mark meaning "masquerade me" (kube-proxy's 0x4000).
const MASQ: &str = "0x4000";

/// A chain name from a Service port: `svc_<namespace>_<name>_<port>` (names are DNS labels and
/// port names IANA service names, so `_` separates them unambiguously).
fn chain(prefix: &str, sp: &ServicePort) -> String {
    let port = if sp.port_name.is_empty() {
        sp.port.to_string()
    } else {
        sp.port_name.clone()
    };
    format!("{prefix}_{}_{}_{}", sp.namespace, sp.name, port)
}

/// The whole table for `ports`, as an `nft -f` script that replaces what was there.
pub fn ruleset(ports: &[ServicePort], cluster_cidr: Option<&Cidr>) -> String {
    let mut s = String::new();
    // Make sure the table exists, drop it, and write it anew: all one transaction.
    let _ = writeln!(
        s,
        "table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{"
    );

    let mut ips = Vec::new();
    let mut nodeports = Vec::new();
    let mut rejects = Vec::new();
    let mut reject_nodeports = Vec::new();
    let mut chains = String::new();
    for sp in ports {
        let proto = sp.protocol.nft();
        let targets = sp.targets();
        let key = format!("{} . {proto} . {}", sp.cluster_ip, sp.port);
        if targets.is_empty() {
            rejects.push(format!("{key} : goto reject-chain"));
            if let Some(np) = sp.node_port {
                reject_nodeports.push(format!("{proto} . {np} : goto reject-chain"));
            }
            continue;
        }
        let svc = chain("svc", sp);
        ips.push(format!("{key} : goto {svc}"));
        let _ = writeln!(chains, "\t# {} ({}:{})", sp.id(), sp.cluster_ip, sp.port);
        let _ = writeln!(chains, "\tchain {svc} {{");
        if let Some(c) = cluster_cidr {
            let _ = writeln!(chains, "\t\tip saddr != {c} jump mark-for-masquerade");
        }
        let eps: Vec<String> = targets
            .iter()
            .enumerate()
            .map(|(i, _)| format!("{}_{i}", chain("ep", sp)))
            .collect();
        let vmap: Vec<String> = eps
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{i} : goto {c}"))
            .collect();
        let _ = writeln!(
            chains,
            "\t\tnumgen random mod {} vmap {{ {} }}\n\t}}",
            targets.len(),
            vmap.join(", ")
        );
        for (c, ep) in eps.iter().zip(&targets) {
            let _ = writeln!(chains, "\tchain {c} {{");
            let _ = writeln!(chains, "\t\tip saddr {} jump mark-for-masquerade", ep.ip);
            let _ = writeln!(
                chains,
                "\t\tmeta l4proto {proto} dnat to {}:{}\n\t}}",
                ep.ip, ep.port
            );
        }
        if let Some(np) = sp.node_port {
            let ext = chain("nodeport", sp);
            nodeports.push(format!("{proto} . {np} : goto {ext}"));
            let _ = writeln!(
                chains,
                "\tchain {ext} {{\n\t\tjump mark-for-masquerade\n\t\tgoto {svc}\n\t}}"
            );
        }
    }
    let map = |s: &mut String, name: &str, ty: &str, elems: &[String]| {
        let _ = writeln!(s, "\tmap {name} {{\n\t\ttype {ty} : verdict");
        if !elems.is_empty() {
            let _ = writeln!(s, "\t\telements = {{ {} }}", elems.join(", "));
        }
        let _ = writeln!(s, "\t}}");
    };
    map(
        &mut s,
        "service-ips",
        "ipv4_addr . inet_proto . inet_service",
        &ips,
    );
    map(
        &mut s,
        "service-nodeports",
        "inet_proto . inet_service",
        &nodeports,
    );
    map(
        &mut s,
        "no-endpoints",
        "ipv4_addr . inet_proto . inet_service",
        &rejects,
    );
    map(
        &mut s,
        "no-endpoint-nodeports",
        "inet_proto . inet_service",
        &reject_nodeports,
    );
    // Filter (before NAT): Services without endpoints refuse new connections.
    for (name, hook) in [
        ("filter-input", "input"),
        ("filter-forward", "forward"),
        ("filter-output", "output"),
    ] {
        let _ = writeln!(
            s,
            "\tchain {name} {{\n\t\ttype filter hook {hook} priority -110; policy accept;\n\t\tjump filter-endpoints\n\t}}"
        );
    }
    let _ = writeln!(
        s,
        "\tchain filter-endpoints {{\n\t\tct state new ip daddr . meta l4proto . th dport vmap @no-endpoints\n\t\tct state new fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports\n\t}}"
    );
    let _ = writeln!(s, "\tchain reject-chain {{\n\t\treject\n\t}}");
    // NAT: Services, then masquerade what was marked.
    let _ = writeln!(
        s,
        "\tchain nat-prerouting {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tjump services\n\t}}"
    );
    let _ = writeln!(
        s,
        "\tchain nat-output {{\n\t\ttype nat hook output priority -100; policy accept;\n\t\tjump services\n\t}}"
    );
    let _ = writeln!(
        s,
        "\tchain nat-postrouting {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tmeta mark & {MASQ} == {MASQ} masquerade fully-random\n\t}}"
    );
    let _ = writeln!(
        s,
        "\tchain mark-for-masquerade {{\n\t\tmeta mark set meta mark | {MASQ}\n\t}}"
    );
    let _ = writeln!(
        s,
        "\tchain services {{\n\t\tip daddr . meta l4proto . th dport vmap @service-ips\n\t\tfib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports\n\t}}"
    );
    s.push_str(&chains);
    s.push_str("}\n");
    s
}

/// Replace the table with `script` (one `nft -f -` transaction).
pub async fn apply(script: &str) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| format!("cannot write to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("nft failed: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft refused the rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Remove the table (when the proxy stops, or switches mode).
pub async fn remove() -> Result<(), String> {
    apply(&format!("table ip {TABLE}\ndelete table ip {TABLE}\n")).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, Protocol};

    fn sp(name: &str, ip: &str, eps: &[(&str, bool, bool)], node_port: Option<u16>) -> ServicePort {
        ServicePort {
            namespace: "default".into(),
            name: name.into(),
            port_name: "http".into(),
            protocol: Protocol::Tcp,
            cluster_ip: ip.parse().unwrap(),
            port: 80,
            node_port,
            endpoints: eps
                .iter()
                .map(|(ip, ready, serving)| Endpoint {
                    ip: ip.parse().unwrap(),
                    port: 8000,
                    ready: *ready,
                    serving: *serving,
                })
                .collect(),
        }
    }

    #[test]
    fn a_service_with_endpoints_and_one_without() {
        let cidr = Cidr::parse("10.244.0.0/16").unwrap();
        let r = ruleset(
            &[
                sp(
                    "blog",
                    "10.96.0.10",
                    &[
                        ("10.244.1.5", true, true),
                        ("10.244.2.7", true, true),
                        ("10.244.2.8", false, true),
                        ("10.244.2.9", false, false),
                    ],
                    Some(30080),
                ),
                sp(
                    "empty",
                    "10.96.0.11",
                    &[("10.244.1.9", false, false)],
                    Some(30081),
                ),
                sp(
                    "draining",
                    "10.96.0.12",
                    &[("10.244.1.6", false, true)],
                    None,
                ),
            ],
            Some(&cidr),
        );
        assert!(r.starts_with("table ip kube-lite\ndelete table ip kube-lite\n"));
        assert!(r.contains("10.96.0.10 . tcp . 80 : goto svc_default_blog_http"));
        assert!(r.contains("tcp . 30080 : goto nodeport_default_blog_http"));
        assert!(r.contains(
            "numgen random mod 2 vmap { 0 : goto ep_default_blog_http_0, 1 : goto ep_default_blog_http_1 }"
        ));
        assert!(r.contains("dnat to 10.244.1.5:8000"));
        assert!(r.contains("dnat to 10.244.2.7:8000"));
        assert!(
            !r.contains("10.244.2.8:8000"),
            "not ready: no new connections"
        );
        assert!(r.contains("ip saddr != 10.244.0.0/16 jump mark-for-masquerade"));
        assert!(r.contains("10.96.0.11 . tcp . 80 : goto reject-chain"));
        assert!(r.contains("tcp . 30081 : goto reject-chain"));
        // No ready endpoint: the one still serving while it terminates takes the traffic.
        assert!(r.contains("dnat to 10.244.1.6:8000"));
    }

    #[test]
    fn nft_accepts_the_ruleset_syntax() {
        // `nft -c` checks without changing anything; where nft or the privilege to ask it is
        // missing, there is nothing to check against.
        let Ok(out) = std::process::Command::new("nft")
            .args(["-c", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                let cidr = Cidr::parse("10.244.0.0/16").unwrap();
                let r = ruleset(
                    &[
                        sp(
                            "blog",
                            "10.96.0.10",
                            &[("10.244.1.5", true, true)],
                            Some(30080),
                        ),
                        sp("empty", "10.96.0.11", &[], None),
                    ],
                    Some(&cidr),
                );
                if let Some(mut i) = c.stdin.take() {
                    i.write_all(r.as_bytes())?;
                }
                c.wait_with_output()
            })
        else {
            eprintln!("skipping: nft is not installed");
            return;
        };
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("Operation not permitted") {
            eprintln!("skipping: nft needs CAP_NET_ADMIN to check a ruleset");
            return;
        }
        assert!(out.status.success(), "{err}");
    }
}
