//! IPv4 networks as Kubernetes names them (`10.244.0.0/16`): parsing, containment, and the
//! subnets a range is carved into — what the kubelet's pod CIDR, the controller-manager's node
//! IPAM (`--cluster-cidr`) and the API server's service range share.

use std::net::Ipv4Addr;

/// An IPv4 network such as `10.244.1.0/24` (host bits cleared).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    /// `a.b.c.d/N`, N in 1..=32; host bits are cleared (`10.244.1.7/24` → `10.244.1.0/24`).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let err = || format!("invalid CIDR {s:?}: expected a.b.c.d/N");
        let (addr, len) = s.trim().split_once('/').ok_or_else(err)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| err())?;
        let prefix: u8 = len.parse().map_err(|_| err())?;
        if !(1..=32).contains(&prefix) {
            return Err(err());
        }
        Ok(Cidr {
            network: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    pub fn mask(&self) -> u32 {
        mask(self.prefix)
    }

    /// The network address, as a number.
    pub fn first(&self) -> u32 {
        u32::from(self.network)
    }

    /// The broadcast address, as a number.
    pub fn last(&self) -> u32 {
        self.first() | !self.mask()
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.first()
    }

    /// Whether the two networks share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let m = mask(self.prefix.min(other.prefix));
        self.first() & m == other.first() & m
    }

    /// How many `/prefix` subnets this network holds (`None`: `prefix` is shorter than ours).
    pub fn subnet_count(&self, prefix: u8) -> Option<u64> {
        (prefix >= self.prefix && prefix <= 32).then(|| 1u64 << (prefix - self.prefix))
    }

    /// The `i`-th `/prefix` subnet (`10.244.0.0/16`, 24, 3 → `10.244.3.0/24`).
    pub fn subnet(&self, prefix: u8, i: u64) -> Option<Cidr> {
        if i >= self.subnet_count(prefix)? {
            return None;
        }
        let step = 1u64 << (32 - u32::from(prefix));
        let network = u64::from(self.first()) + i * step;
        Some(Cidr {
            network: Ipv4Addr::from(u32::try_from(network).ok()?),
            prefix,
        })
    }

    /// Which `/prefix` subnet of this network `sub` is, if it is one.
    pub fn subnet_index(&self, sub: &Cidr) -> Option<u64> {
        if sub.prefix < self.prefix || !self.contains(sub.network) {
            return None;
        }
        Some(u64::from(sub.first() - self.first()) >> (32 - u32::from(sub.prefix)))
    }

    pub fn is_loopback(&self) -> bool {
        self.network.is_loopback()
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_clears_host_bits() {
        let c = Cidr::parse("10.244.1.7/24").unwrap();
        assert_eq!(c.to_string(), "10.244.1.0/24");
        assert!(c.contains("10.244.1.200".parse().unwrap()));
        assert!(!c.contains("10.244.2.1".parse().unwrap()));
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/0",
            "é/8",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Cidr::parse("1.2.3.4/32").unwrap().to_string(), "1.2.3.4/32");
    }

    #[test]
    fn subnets() {
        let c = Cidr::parse("10.244.0.0/16").unwrap();
        assert_eq!(c.subnet_count(24), Some(256));
        assert_eq!(c.subnet(24, 3).unwrap().to_string(), "10.244.3.0/24");
        assert_eq!(c.subnet(24, 256), None);
        assert_eq!(c.subnet(8, 0), None);
        let s = Cidr::parse("10.244.7.0/24").unwrap();
        assert_eq!(c.subnet_index(&s), Some(7));
        assert_eq!(c.subnet_index(&Cidr::parse("10.245.0.0/24").unwrap()), None);
        assert!(c.overlaps(&s) && s.overlaps(&c));
        assert!(!s.overlaps(&Cidr::parse("10.244.8.0/24").unwrap()));
    }
}
