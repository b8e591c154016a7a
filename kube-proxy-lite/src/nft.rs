//! The nftables back end, after kube-proxy's `nftables` mode: one table, `ip kube-lite`,
//! written whole at start and now and then ([`full`]), and in between changed where it changed
//! ([`diff`]: the chains and map elements of the Services that changed) — each time in one
//! `nft -f` transaction, so a packet sees the old rules or the new ones, never a mix:
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
//! [`build`], [`full`] and [`diff`] are pure (unit-tested); [`apply`] hands a script to `nft`.

use std::collections::BTreeMap;
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

/// The table's changing parts: the verdict maps' elements and the per-Service chains (the
/// fixed chains — hooks, `services`, masquerading — are written by [`full`] only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Map name → key → verdict.
    pub maps: BTreeMap<&'static str, BTreeMap<String, String>>,
    /// Chain name → its rules, for the chains of Service ports, endpoints and node ports.
    pub chains: BTreeMap<String, Vec<String>>,
}

/// The maps and their key types, in the order they are declared.
const MAPS: [(&str, &str); 4] = [
    ("service-ips", "ipv4_addr . inet_proto . inet_service"),
    ("service-nodeports", "inet_proto . inet_service"),
    ("no-endpoints", "ipv4_addr . inet_proto . inet_service"),
    ("no-endpoint-nodeports", "inet_proto . inet_service"),
];

/// What the table must hold for `ports`.
pub fn build(ports: &[ServicePort], cluster_cidr: Option<&Cidr>) -> Ruleset {
    let mut r = Ruleset::default();
    for (m, _) in MAPS {
        r.maps.insert(m, BTreeMap::new());
    }
    let put = |r: &mut Ruleset, map: &'static str, k: String, v: String| {
        r.maps.entry(map).or_default().insert(k, v);
    };
    for sp in ports {
        let proto = sp.protocol.nft();
        let targets = sp.targets();
        let key = format!("{} . {proto} . {}", sp.cluster_ip, sp.port);
        if targets.is_empty() {
            put(&mut r, "no-endpoints", key, "goto reject-chain".into());
            if let Some(np) = sp.node_port {
                put(
                    &mut r,
                    "no-endpoint-nodeports",
                    format!("{proto} . {np}"),
                    "goto reject-chain".into(),
                );
            }
            continue;
        }
        let svc = chain("svc", sp);
        put(&mut r, "service-ips", key, format!("goto {svc}"));
        let mut rules = Vec::new();
        if let Some(c) = cluster_cidr {
            rules.push(format!("ip saddr != {c} jump mark-for-masquerade"));
        }
        let eps: Vec<String> = (0..targets.len())
            .map(|i| format!("{}_{i}", chain("ep", sp)))
            .collect();
        let vmap: Vec<String> = eps
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{i} : goto {c}"))
            .collect();
        rules.push(format!(
            "numgen random mod {} vmap {{ {} }}",
            targets.len(),
            vmap.join(", ")
        ));
        r.chains.insert(svc.clone(), rules);
        for (c, ep) in eps.iter().zip(&targets) {
            r.chains.insert(
                c.clone(),
                vec![
                    format!("ip saddr {} jump mark-for-masquerade", ep.ip),
                    format!("meta l4proto {proto} dnat to {}:{}", ep.ip, ep.port),
                ],
            );
        }
        if let Some(np) = sp.node_port {
            let ext = chain("nodeport", sp);
            put(
                &mut r,
                "service-nodeports",
                format!("{proto} . {np}"),
                format!("goto {ext}"),
            );
            r.chains.insert(
                ext,
                vec!["jump mark-for-masquerade".into(), format!("goto {svc}")],
            );
        }
    }
    r
}

/// The whole table for `ports`, as an `nft -f` script that replaces what was there.
pub fn ruleset(ports: &[ServicePort], cluster_cidr: Option<&Cidr>) -> String {
    full(&build(ports, cluster_cidr))
}

/// `r` as an `nft -f` script that replaces the whole table (one transaction).
pub fn full(r: &Ruleset) -> String {
    let mut s = String::new();
    // Make sure the table exists, drop it, and write it anew: all one transaction.
    let _ = writeln!(
        s,
        "table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{"
    );
    for (name, ty) in MAPS {
        let _ = writeln!(s, "\tmap {name} {{\n\t\ttype {ty} : verdict");
        let elems: Vec<String> = r
            .maps
            .get(name)
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k} : {v}"))
            .collect();
        if !elems.is_empty() {
            let _ = writeln!(s, "\t\telements = {{ {} }}", elems.join(", "));
        }
        let _ = writeln!(s, "\t}}");
    }
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
    for (name, rules) in &r.chains {
        let _ = writeln!(s, "\tchain {name} {{");
        for rule in rules {
            let _ = writeln!(s, "\t\t{rule}");
        }
        let _ = writeln!(s, "\t}}");
    }
    s.push_str("}\n");
    s
}

/// An `nft -f` script that turns the table from `old` into `new` touching only what changed
/// (as kube-proxy's partial syncs): new chains are made first, changed chains flushed and
/// written again, map elements removed and added, then chains no longer used flushed and
/// deleted — one transaction, so a packet sees the old rules or the new ones. `None` when
/// nothing changed.
pub fn diff(old: &Ruleset, new: &Ruleset) -> Option<String> {
    if old == new {
        return None;
    }
    let t = TABLE;
    let mut s = String::new();
    for name in new.chains.keys().filter(|n| !old.chains.contains_key(*n)) {
        let _ = writeln!(s, "add chain ip {t} {name}");
    }
    for (name, rules) in &new.chains {
        match old.chains.get(name) {
            Some(before) if before == rules => continue,
            Some(_) => {
                let _ = writeln!(s, "flush chain ip {t} {name}");
            }
            None => {}
        }
        for rule in rules {
            let _ = writeln!(s, "add rule ip {t} {name} {rule}");
        }
    }
    let empty = BTreeMap::new();
    for (map, _) in MAPS {
        let (before, after) = (
            old.maps.get(map).unwrap_or(&empty),
            new.maps.get(map).unwrap_or(&empty),
        );
        let gone: Vec<&String> = before
            .iter()
            .filter(|(k, v)| after.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .collect();
        if !gone.is_empty() {
            let keys: Vec<&str> = gone.iter().map(|k| k.as_str()).collect();
            let _ = writeln!(s, "delete element ip {t} {map} {{ {} }}", keys.join(", "));
        }
        let added: Vec<String> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k} : {v}"))
            .collect();
        if !added.is_empty() {
            let _ = writeln!(s, "add element ip {t} {map} {{ {} }}", added.join(", "));
        }
    }
    let removed: Vec<&String> = old
        .chains
        .keys()
        .filter(|n| !new.chains.contains_key(*n))
        .collect();
    // Flushed first: a removed chain may jump to another removed one.
    for name in &removed {
        let _ = writeln!(s, "flush chain ip {t} {name}");
    }
    for name in &removed {
        let _ = writeln!(s, "delete chain ip {t} {name}");
    }
    Some(s)
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

    /// `nft -c -f -` on `script`: `Ok(false)` where nft or the privilege to check is missing.
    fn nft_check(script: &str) -> Result<bool, String> {
        use std::io::Write;
        let Ok(mut c) = std::process::Command::new("nft")
            .args(["-c", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        else {
            return Ok(false);
        };
        if let Some(mut i) = c.stdin.take() {
            i.write_all(script.as_bytes()).map_err(|e| e.to_string())?;
        }
        let out = c.wait_with_output().map_err(|e| e.to_string())?;
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if err.contains("Operation not permitted") {
            return Ok(false);
        }
        if out.status.success() {
            Ok(true)
        } else {
            Err(err)
        }
    }

    #[test]
    fn a_change_touches_only_what_changed() {
        let cidr = Cidr::parse("10.244.0.0/16").unwrap();
        let before = build(
            &[
                sp(
                    "blog",
                    "10.96.0.10",
                    &[("10.244.1.5", true, true), ("10.244.2.7", true, true)],
                    Some(30080),
                ),
                sp("empty", "10.96.0.11", &[], Some(30081)),
                sp("gone", "10.96.0.12", &[("10.244.1.8", true, true)], None),
                sp("same", "10.96.0.13", &[("10.244.1.9", true, true)], None),
            ],
            Some(&cidr),
        );
        let after = build(
            &[
                // One more endpoint.
                sp(
                    "blog",
                    "10.96.0.10",
                    &[
                        ("10.244.1.5", true, true),
                        ("10.244.2.7", true, true),
                        ("10.244.3.3", true, true),
                    ],
                    Some(30080),
                ),
                // Its first endpoint: from rejecting to a chain.
                sp(
                    "empty",
                    "10.96.0.11",
                    &[("10.244.1.4", true, true)],
                    Some(30081),
                ),
                sp("same", "10.96.0.13", &[("10.244.1.9", true, true)], None),
            ],
            Some(&cidr),
        );
        assert_eq!(diff(&before, &before), None);
        let d = diff(&before, &after).expect("a change");
        assert!(!d.contains("delete table"), "{d}");
        assert!(
            d.contains("add chain ip kube-lite ep_default_blog_http_2\n"),
            "{d}"
        );
        assert!(
            d.contains("flush chain ip kube-lite svc_default_blog_http\n"),
            "{d}"
        );
        assert!(d.contains("add rule ip kube-lite ep_default_blog_http_2 meta l4proto tcp dnat to 10.244.3.3:8000"), "{d}");
        assert!(
            d.contains("delete element ip kube-lite no-endpoints { 10.96.0.11 . tcp . 80 }"),
            "{d}"
        );
        assert!(d.contains("add element ip kube-lite service-ips { 10.96.0.11 . tcp . 80 : goto svc_default_empty_http }"), "{d}");
        assert!(
            d.contains("delete element ip kube-lite service-ips { 10.96.0.12 . tcp . 80 }"),
            "{d}"
        );
        assert!(
            d.contains("delete chain ip kube-lite svc_default_gone_http\n"),
            "{d}"
        );
        // Untouched: the Service that did not change, and blog's existing endpoints.
        assert!(!d.contains("svc_default_same_http"), "{d}");
        assert!(
            !d.contains("chain ip kube-lite ep_default_blog_http_0")
                && !d.contains("rule ip kube-lite ep_default_blog_http_0"),
            "{d}"
        );
        // The kernel takes the whole table and then the change in one transaction.
        match nft_check(&format!("{}{d}", full(&before))) {
            Ok(true) => {}
            Ok(false) => eprintln!("skipping the nft check: no nft or no CAP_NET_ADMIN"),
            Err(e) => panic!("nft refused the change: {e}\n{d}"),
        }
    }
}
