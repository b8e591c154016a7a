//! The two ranges Services draw from — `--service-cluster-ip-range` (an IPv4 CIDR) and
//! `--service-node-port-range` — and how a free value is picked from one (pure, no I/O).
//!
//! Picking follows Kubernetes' allocators: the low end of each range (16 to 256 addresses, 16
//! to 128 ports) is a *static band* that dynamic allocation uses only once the rest is full, so
//! that values users ask for by hand (the cluster DNS at `10.96.0.10`) are rarely taken by
//! accident. Within a band the pick is uniformly random among the free values, so that writers
//! picking at the same moment (with the same view of what is taken) rarely pick alike — in a
//! huge band (a /12 holds a million addresses) by random probes, then a scan.

use std::net::Ipv4Addr;

use rand::Rng;

/// A range of IPv4 addresses: a CIDR less its network and broadcast addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpRange {
    /// As given (normalised): `10.96.0.0/12`.
    pub cidr: String,
    /// The network address.
    base: u32,
    prefix: u8,
}

impl IpRange {
    /// `10.96.0.0/12`. IPv4 only, and room for at least two Services (a prefix of /30 or
    /// shorter); host bits are masked off, as Go's `net.ParseCIDR` does.
    pub fn parse(s: &str) -> Result<IpRange, String> {
        if s.contains(':') {
            return Err(format!("{s}: kube-lite supports IPv4 service ranges only"));
        }
        let c = api::net::Cidr::parse(s).map_err(|_| format!("invalid CIDR address: {s}"))?;
        if c.prefix > 30 {
            return Err(format!(
                "{s}: the service range must hold at least two addresses (/30 or larger)"
            ));
        }
        Ok(IpRange {
            cidr: c.to_string(),
            base: c.first(),
            prefix: c.prefix,
        })
    }

    /// How many addresses Services can get.
    pub fn size(&self) -> u32 {
        (1u32 << (32 - self.prefix)) - 2
    }

    /// The address's index among the usable ones, if it is one.
    pub fn offset(&self, ip: Ipv4Addr) -> Option<u32> {
        let v = u32::from(ip);
        (v > self.base && v - self.base <= self.size()).then(|| v - self.base - 1)
    }

    pub fn ip_at(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1 + offset)
    }

    /// The static band: Kubernetes' `min(max(16, size/16), 256)`.
    fn static_band(&self) -> u32 {
        (self.size() / 16).clamp(16, 256).min(self.size())
    }

    /// A free address, or None when the range is full.
    pub fn pick(&self, taken: impl Fn(Ipv4Addr) -> bool, rng: &mut impl Rng) -> Option<Ipv4Addr> {
        pick(
            self.size(),
            self.static_band(),
            |o| taken(self.ip_at(o)),
            rng,
        )
        .map(|o| self.ip_at(o))
    }
}

/// A range of node ports, `30000-32767`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub base: i32,
    /// How many ports (at least 1).
    pub size: i32,
}

impl PortRange {
    /// `30000-32767`, `30000+2767` or a single port, as Kubernetes' `net.ParsePortRange`.
    pub fn parse(s: &str) -> Result<PortRange, String> {
        let bad = || format!("invalid port range: {s:?}");
        let num = |x: &str| -> Result<i32, String> {
            x.trim()
                .parse::<i32>()
                .ok()
                .filter(|p| (0..=65535).contains(p))
                .ok_or_else(bad)
        };
        let (base, max) = if let Some((a, b)) = s.split_once('-') {
            (num(a)?, num(b)?)
        } else if let Some((a, b)) = s.split_once('+') {
            let a = num(a)?;
            (a, a.checked_add(num(b)?).ok_or_else(bad)?)
        } else {
            let a = num(s)?;
            (a, a)
        };
        if max < base || max > 65535 {
            return Err(bad());
        }
        Ok(PortRange {
            base,
            size: max - base + 1,
        })
    }

    pub fn contains(&self, port: i32) -> bool {
        port >= self.base && port - self.base < self.size
    }

    /// `30000-32767`, as messages print it.
    pub fn display(&self) -> String {
        format!("{}-{}", self.base, self.base + self.size - 1)
    }

    /// Kubernetes' port static band: `min(max(16, size/32), 128)`.
    fn static_band(&self) -> u32 {
        let size = self.size as u32;
        (size / 32).clamp(16, 128).min(size)
    }

    /// A free port, or None when the range is full.
    pub fn pick(&self, taken: impl Fn(i32) -> bool, rng: &mut impl Rng) -> Option<i32> {
        pick(
            self.size as u32,
            self.static_band(),
            |o| taken(self.base + o as i32),
            rng,
        )
        .map(|o| self.base + o as i32)
    }
}

/// An offset in `[0, size)` that is not taken: from a random start in `[band, size)` onwards
/// (wrapping within that part), then in `[0, band)`.
fn pick(size: u32, band: u32, taken: impl Fn(u32) -> bool, rng: &mut impl Rng) -> Option<u32> {
    let scan = |lo: u32, hi: u32, start: u32| (start..hi).chain(lo..start).find(|o| !taken(*o));
    if band < size {
        let start = rng.random_range(band..size);
        if let Some(o) = scan(band, size, start) {
            return Some(o);
        }
    }
    if band > 0 {
        let start = rng.random_range(0..band);
        return scan(0, band, start);
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn parses_ranges_like_kube_apiserver() {
        let r = IpRange::parse("10.96.0.0/12").unwrap();
        assert_eq!(r.size(), (1 << 20) - 2);
        assert_eq!(r.offset("10.96.0.1".parse().unwrap()), Some(0));
        assert_eq!(r.offset("10.96.0.0".parse().unwrap()), None, "network");
        assert_eq!(
            r.offset("10.111.255.255".parse().unwrap()),
            None,
            "broadcast"
        );
        assert_eq!(r.offset("10.112.0.1".parse().unwrap()), None);
        assert_eq!(r.ip_at(9), "10.96.0.10".parse::<Ipv4Addr>().unwrap());
        assert_eq!(IpRange::parse("10.96.1.7/24").unwrap().cidr, "10.96.1.0/24");
        assert!(IpRange::parse("fd00::/108").unwrap_err().contains("IPv4"));
        assert!(IpRange::parse("10.0.0.0/31").is_err());
        assert!(IpRange::parse("nonsense").is_err());
        let p = PortRange::parse("30000-32767").unwrap();
        assert_eq!((p.base, p.size), (30000, 2768));
        assert!(p.contains(32767) && !p.contains(32768) && !p.contains(29999));
        assert_eq!(PortRange::parse("30000+10").unwrap().size, 11);
        assert!(PortRange::parse("32767-30000").is_err());
        assert!(PortRange::parse("1-70000").is_err());
    }

    #[test]
    fn dynamic_picks_avoid_the_static_band_until_the_rest_is_full() {
        let r = IpRange::parse("10.96.0.0/24").unwrap(); // 254 usable, band 16
        let mut rng = StdRng::seed_from_u64(7);
        let mut used = HashSet::new();
        for _ in 0..(254 - 16) {
            let ip = r.pick(|ip| used.contains(&ip), &mut rng).unwrap();
            assert!(r.offset(ip).unwrap() >= 16, "{ip} is in the static band");
            assert!(used.insert(ip), "{ip} handed out twice");
        }
        for _ in 0..16 {
            let ip = r.pick(|ip| used.contains(&ip), &mut rng).unwrap();
            assert!(r.offset(ip).unwrap() < 16);
            assert!(used.insert(ip));
        }
        assert_eq!(r.pick(|ip| used.contains(&ip), &mut rng), None, "full");
    }

    #[test]
    fn ports_are_picked_from_their_range_and_never_twice() {
        let p = PortRange::parse("30000-30099").unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let mut used = HashSet::new();
        for _ in 0..100 {
            let n = p.pick(|n| used.contains(&n), &mut rng).unwrap();
            assert!(p.contains(n));
            assert!(used.insert(n));
        }
        assert_eq!(p.pick(|n| used.contains(&n), &mut rng), None);
    }
}
