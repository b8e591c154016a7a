//! Pod IPs: every pod gets its own address from the node's pod CIDR. With the process runtime
//! the CIDR is a loopback range (127.X.0.0/16): Linux routes all of 127.0.0.0/8 to `lo`, so a
//! process can bind 127.X.a.b without any network setup, and every replica of a Deployment can
//! listen on the same port at its own address.
//!
//! Addresses are handed out round-robin (like host-local IPAM) so a freed address is not reused
//! at once; the network address, the first address (the "gateway") and any address whose last
//! octet is 0 or 255 are never used.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

pub use api::net::Cidr;

/// Whether `ip` may be given to a pod of `cidr`: not the network address, not the first address
/// (the gateway), not the broadcast address, and no last octet of 0 or 255.
pub fn usable(cidr: &Cidr, ip: Ipv4Addr) -> bool {
    let n = u32::from(ip);
    let last_octet = n & 0xff;
    cidr.contains(ip)
        && n > cidr.first() + 1
        && n < cidr.last()
        && last_octet != 0
        && last_octet != 255
}

/// A pod CIDR as the kubelet takes it: a network of /8 to /30.
pub fn parse_pod_cidr(s: &str) -> Result<Cidr, String> {
    let c = Cidr::parse(s)?;
    if !(8..=30).contains(&c.prefix) {
        return Err(format!(
            "invalid pod CIDR {s:?}: expected a.b.c.d/N with N between 8 and 30"
        ));
    }
    Ok(c)
}

/// The default pod CIDR of a node: `127.X.0.0/16` with X in 2..=250 from a hash of its name,
/// so nodes started without `--pod-cidr` rarely collide and keep their range across restarts.
pub fn default_pod_cidr(node_name: &str) -> String {
    format!("127.{}.0.0/16", 2 + cri::cni::name_hash(node_name) % 249)
}

/// Which pod (uid) holds which address.
#[derive(Debug)]
pub struct IpAllocator {
    cidr: Cidr,
    by_ip: BTreeMap<Ipv4Addr, String>,
    by_uid: BTreeMap<String, Ipv4Addr>,
    /// The last address handed out; the next search starts after it.
    cursor: u32,
}

impl IpAllocator {
    pub fn new(cidr: Cidr) -> Self {
        IpAllocator {
            cidr,
            by_ip: BTreeMap::new(),
            by_uid: BTreeMap::new(),
            cursor: cidr.first() + 1,
        }
    }

    pub fn cidr(&self) -> Cidr {
        self.cidr
    }

    /// Record an address a pod already has (from the state directory after a restart).
    pub fn reserve(&mut self, uid: &str, ip: Ipv4Addr) -> Result<(), String> {
        if !usable(&self.cidr, ip) {
            return Err(format!("{ip} is not a usable address of {}", self.cidr));
        }
        match self.by_ip.get(&ip) {
            Some(owner) if owner != uid => {
                return Err(format!("{ip} is already used by pod {owner}"));
            }
            _ => {}
        }
        self.release(uid);
        self.by_ip.insert(ip, uid.to_string());
        self.by_uid.insert(uid.to_string(), ip);
        if u32::from(ip) > self.cursor {
            self.cursor = u32::from(ip);
        }
        Ok(())
    }

    /// The pod's address, allocating one if it has none.
    pub fn allocate(&mut self, uid: &str) -> Result<Ipv4Addr, String> {
        if let Some(ip) = self.by_uid.get(uid) {
            return Ok(*ip);
        }
        let (first, last) = (self.cidr.first(), self.cidr.last());
        let size = last - first + 1;
        for step in 1..=size {
            let n = first + (self.cursor - first + step) % size;
            let ip = Ipv4Addr::from(n);
            if usable(&self.cidr, ip) && !self.by_ip.contains_key(&ip) {
                self.cursor = n;
                self.by_ip.insert(ip, uid.to_string());
                self.by_uid.insert(uid.to_string(), ip);
                return Ok(ip);
            }
        }
        Err(format!("no free pod IP left in {}", self.cidr))
    }

    pub fn get(&self, uid: &str) -> Option<Ipv4Addr> {
        self.by_uid.get(uid).copied()
    }

    pub fn release(&mut self, uid: &str) -> Option<Ipv4Addr> {
        let ip = self.by_uid.remove(uid)?;
        self.by_ip.remove(&ip);
        Some(ip)
    }

    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_normalises() {
        let c = parse_pod_cidr("127.11.3.4/16").unwrap();
        assert_eq!(c.to_string(), "127.11.0.0/16");
        assert!(c.is_loopback());
        for bad in [
            "127.0.0.1",
            "127.0.0.0/7",
            "127.0.0.0/31",
            "x/16",
            "127.0.0/16",
        ] {
            assert!(parse_pod_cidr(bad).is_err(), "{bad}");
        }
        assert!(!parse_pod_cidr("10.0.0.0/16").unwrap().is_loopback());
    }

    #[test]
    fn allocates_round_robin_skipping_reserved_addresses() {
        let mut a = IpAllocator::new(Cidr::parse("127.11.0.0/16").unwrap());
        assert_eq!(a.allocate("a").unwrap(), ip("127.11.0.2"));
        assert_eq!(a.allocate("a").unwrap(), ip("127.11.0.2"), "stable per pod");
        assert_eq!(a.allocate("b").unwrap(), ip("127.11.0.3"));
        assert_eq!(a.release("a"), Some(ip("127.11.0.2")));
        // A freed address is not reused at once.
        assert_eq!(a.allocate("c").unwrap(), ip("127.11.0.4"));
        assert_eq!(a.get("c"), Some(ip("127.11.0.4")));
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn never_hands_out_0_255_network_or_gateway() {
        let mut a = IpAllocator::new(Cidr::parse("127.5.0.0/23").unwrap());
        let mut seen = Vec::new();
        for i in 0.. {
            match a.allocate(&format!("p{i}")) {
                Ok(ip) => seen.push(ip),
                Err(e) => {
                    assert!(e.contains("no free pod IP"), "{e}");
                    break;
                }
            }
        }
        // 512 addresses, minus .0.0 .0.1 .0.255 .1.0 .1.255.
        assert_eq!(seen.len(), 507);
        let gateway = ip("127.5.0.1");
        for a in &seen {
            let o = a.octets();
            assert!(o[3] != 0 && o[3] != 255, "{a}");
            assert_ne!(*a, gateway);
        }
        // Releasing one makes exactly it available again.
        a.release("p7");
        let again = a.allocate("new").unwrap();
        assert_eq!(again, seen[7]);
    }

    #[test]
    fn reserve_restores_and_rejects_conflicts() {
        let mut a = IpAllocator::new(Cidr::parse("127.11.0.0/16").unwrap());
        a.reserve("a", ip("127.11.0.9")).unwrap();
        assert!(a.reserve("b", ip("127.11.0.9")).is_err());
        assert!(a.reserve("b", ip("127.12.0.9")).is_err());
        assert!(a.reserve("b", ip("127.11.0.255")).is_err());
        assert!(a.reserve("b", ip("127.11.0.1")).is_err());
        // New allocations continue after the highest restored address.
        assert_eq!(a.allocate("b").unwrap(), ip("127.11.0.10"));
    }

    #[test]
    fn default_cidrs_are_stable_and_in_range() {
        let c = default_pod_cidr("worker-1");
        assert_eq!(c, default_pod_cidr("worker-1"));
        for n in ["a", "worker-1", "worker-2", "node", ""] {
            let c = Cidr::parse(&default_pod_cidr(n)).unwrap();
            let x = c.network.octets()[1];
            assert!((2..=250).contains(&x), "{n}: {c}");
            assert_eq!(c.prefix, 16);
        }
    }
}
