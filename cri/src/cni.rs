//! CNI network configurations for a node's containerd: a `bridge` network with `host-local`
//! addresses and `portmap`, written where containerd's CRI plugin watches
//! ([`crate::containerd::Containerd::cni_conf_dir`]), and the helpers to pick a subnet that no
//! other network on the host routes and to delete the bridge afterwards (the bridge plugin
//! creates the bridge on the first pod and never deletes it).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde_json::json;

/// A bridge network: pods get an address of `subnet` on a veth attached to `bridge`, whose
/// own address (the subnet's `.1`) is their gateway, so the host reaches every pod IP directly.
#[derive(Clone, Debug)]
pub struct BridgeNetwork {
    /// The CNI network name (also the conflist's file name).
    pub name: String,
    /// The Linux bridge, at most 15 characters (`IFNAMSIZ`).
    pub bridge: String,
    /// e.g. `10.88.7.0/24`.
    pub subnet: String,
    /// Where `host-local` keeps its leases (default `/var/lib/cni/networks`, shared by the whole
    /// host): give each node its own, under its directory.
    pub ipam_data_dir: Option<PathBuf>,
    /// Masquerade traffic from pods to outside the subnet (needs iptables).
    pub ip_masq: bool,
}

impl BridgeNetwork {
    /// The conflist (CNI 0.4.0): bridge + host-local, then portmap for `hostPort`s and
    /// firewall (forwarding to and from pods allowed).
    pub fn conflist(&self) -> serde_json::Value {
        let mut ipam = json!({
            "type": "host-local",
            "ranges": [[{ "subnet": self.subnet }]],
            "routes": [{ "dst": "0.0.0.0/0" }],
        });
        if let Some(d) = &self.ipam_data_dir {
            ipam["dataDir"] = json!(d.to_string_lossy());
        }
        json!({
            "cniVersion": "0.4.0",
            "name": self.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": self.ip_masq,
                    "hairpinMode": true,
                    "ipam": ipam,
                },
                { "type": "portmap", "capabilities": { "portMappings": true } },
                // Accepts forwarded traffic to and from the pod's address: hosts whose FORWARD
                // policy is DROP (Docker sets it) would otherwise drop pod-to-pod traffic
                // between bridges (nodes).
                { "type": "firewall" },
            ],
        })
    }

    /// Writes the conflist into `conf_dir` as `10-<name>.conflist`, atomically (containerd
    /// watches the directory and must never read half a file). Returns its path. containerd
    /// uses the first conflist by file name, so a node should have one.
    pub fn write(&self, conf_dir: &Path) -> Result<PathBuf, String> {
        if self.bridge.is_empty() || self.bridge.len() > 15 {
            return Err(format!(
                "bridge name {:?} must have 1 to 15 characters",
                self.bridge
            ));
        }
        parse_cidr(&self.subnet)?;
        std::fs::create_dir_all(conf_dir)
            .map_err(|e| format!("cannot create {}: {e}", conf_dir.display()))?;
        let path = conf_dir.join(format!("10-{}.conflist", self.name));
        // Written in the directory, then renamed: containerd 1.6 ignores CREATE events there
        // (so a file moved in from elsewhere goes unnoticed) and reloads on WRITE and RENAME;
        // the write of the hidden `.tmp` makes it log a harmless "no network config found".
        let tmp = conf_dir.join(format!(".10-{}.conflist.tmp", self.name));
        let text = serde_json::to_string_pretty(&self.conflist())
            .map_err(|e| format!("cannot encode the CNI configuration: {e}"))?;
        std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }
}

/// FNV-1a of a name: stable across Rust versions and platforms (unlike `DefaultHasher`), so
/// what is derived from a node's name stays the same across restarts.
pub fn name_hash(name: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The bridge of node `node`: `kl-<node>` when that fits Linux's 15 characters, else `kl-`
/// and a hash of the name (nodes sharing one machine need bridges of their own).
pub fn bridge_name(node: &str) -> String {
    let name = format!("kl-{node}");
    if name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return name;
    }
    format!("kl-{:08x}", name_hash(node))
}

/// `a.b.c.d/n` as (network address, prefix length).
pub fn parse_cidr(cidr: &str) -> Result<(Ipv4Addr, u8), String> {
    let bad = || format!("invalid IPv4 subnet {cidr:?} (expected e.g. 10.88.0.0/24)");
    let (ip, len) = cidr.split_once('/').ok_or_else(bad)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len > 32 {
        return Err(bad());
    }
    Ok((ip, len))
}

fn mask(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

/// Whether two IPv4 networks overlap.
pub fn overlaps(a: (Ipv4Addr, u8), b: (Ipv4Addr, u8)) -> bool {
    let m = mask(a.1.min(b.1));
    u32::from(a.0) & m == u32::from(b.0) & m
}

/// The IPv4 networks the host routes (`/proc/net/route`), default route excluded.
pub fn routed_networks() -> Vec<(Ipv4Addr, u8)> {
    let Ok(text) = std::fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Destination and Mask are little-endian hex.
            let dst = u32::from_str_radix(f.get(1)?, 16).ok()?.swap_bytes();
            let m = u32::from_str_radix(f.get(7)?, 16).ok()?.swap_bytes();
            (m != 0).then(|| (Ipv4Addr::from(dst), m.count_ones() as u8))
        })
        .collect()
}

/// A `10.88.<n>.0/24` that no route of the host overlaps, trying `n` from `start` upwards
/// (wrapping, 1..=254); `None` when all are taken. Callers running side by side should pass
/// different starts (e.g. from their process id) so that they seldom race for the same one.
pub fn free_subnet(start: u8) -> Option<String> {
    let routed = routed_networks();
    (0..254u16)
        .map(|i| ((start as u16 + i - 1) % 254 + 1) as u8)
        .map(|n| (Ipv4Addr::new(10, 88, n, 0), 24))
        .find(|net| !routed.iter().any(|r| overlaps(*r, *net)))
        .map(|(ip, len)| format!("{ip}/{len}"))
}

/// A link's IPv4 addresses (`ip -j -4 addr show dev NAME`); none for a missing link.
pub fn link_addresses(name: &str) -> Vec<(Ipv4Addr, u8)> {
    if !Path::new("/sys/class/net").join(name).exists() {
        return Vec::new();
    }
    let Ok(out) = std::process::Command::new("ip")
        .args(["-j", "-4", "addr", "show", "dev", name])
        .output()
    else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.get("addr_info")?.as_array())
        .flatten()
        .filter_map(|a| {
            let ip = a.get("local")?.as_str()?.parse().ok()?;
            let len = u8::try_from(a.get("prefixlen")?.as_u64()?).ok()?;
            Some((ip, len))
        })
        .collect()
}

/// A bridge left from an earlier run with an address outside `cidr` (the node's range changed:
/// another cluster, another order of node IPAM) would make the bridge plugin fail every pod,
/// or leave two bridges routing one subnet: delete it (the plugin makes it again). `Ok(true)`
/// when it was deleted.
pub fn remove_stale_bridge(name: &str, cidr: &str) -> Result<bool, String> {
    let net = parse_cidr(cidr)?;
    let addrs = link_addresses(name);
    if addrs.is_empty() || addrs.iter().any(|a| overlaps(*a, net)) {
        return Ok(false);
    }
    delete_link(name)?;
    Ok(true)
}

/// Deletes a Linux bridge (or any link) with `ip link delete`; a missing one is not an error.
pub fn delete_link(name: &str) -> Result<(), String> {
    if !Path::new("/sys/class/net").join(name).exists() {
        return Ok(());
    }
    let out = std::process::Command::new("ip")
        .args(["link", "delete", name])
        .output()
        .map_err(|e| format!("cannot run ip link delete {name}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip link delete {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_fit_linux() {
        assert_eq!(bridge_name("worker-1"), "kl-worker-1");
        let long = bridge_name("a-very-long-node-name.example.com");
        assert!(long.len() <= 15 && long.starts_with("kl-"), "{long}");
        assert_eq!(long, bridge_name("a-very-long-node-name.example.com"));
        assert_ne!(long, bridge_name("another-very-long-node-name"));
    }

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_cidr("10.88.3.0/24").unwrap(),
            (Ipv4Addr::new(10, 88, 3, 0), 24)
        );
        assert!(parse_cidr("10.88.3.0").is_err());
        assert!(parse_cidr("10.88.3.0/40").is_err());
        let a = parse_cidr("10.88.3.0/24").unwrap();
        assert!(overlaps(a, parse_cidr("10.0.0.0/8").unwrap()));
        assert!(overlaps(a, parse_cidr("10.88.3.128/25").unwrap()));
        assert!(!overlaps(a, parse_cidr("10.88.4.0/24").unwrap()));
        assert!(!overlaps(a, parse_cidr("172.17.0.0/16").unwrap()));
    }

    #[test]
    fn free_subnets_are_in_range() {
        let s = free_subnet(200).expect("some /24 of 10.88 is free");
        let (ip, len) = parse_cidr(&s).unwrap();
        assert_eq!(len, 24);
        assert_eq!(ip.octets()[..2], [10, 88]);
        assert!(ip.octets()[2] >= 1);
    }

    #[test]
    fn conflist_shape() {
        let n = BridgeNetwork {
            name: "kl-test".into(),
            bridge: "kltest0".into(),
            subnet: "10.88.9.0/24".into(),
            ipam_data_dir: Some(PathBuf::from("/x/ipam")),
            ip_masq: false,
        };
        let c = n.conflist();
        assert_eq!(c["plugins"][0]["type"], "bridge");
        assert_eq!(c["plugins"][0]["bridge"], "kltest0");
        assert_eq!(
            c["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.88.9.0/24"
        );
        assert_eq!(c["plugins"][0]["ipam"]["dataDir"], "/x/ipam");
        assert_eq!(c["plugins"][1]["type"], "portmap");
        let dir = tempfile::tempdir().unwrap();
        let p = n.write(dir.path()).unwrap();
        assert!(p.ends_with("10-kl-test.conflist"));
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        assert_eq!(back, c);
        let long = BridgeNetwork {
            bridge: "a-bridge-name-too-long".into(),
            ..n
        };
        assert!(long.write(dir.path()).is_err());
    }
}
