//! Which node has which range of the cluster CIDR: the pure half of node IPAM.

use std::collections::{BTreeMap, BTreeSet};

use api::net::Cidr;

#[derive(Debug)]
pub struct CidrAllocator {
    cluster: Cidr,
    mask: u8,
    /// Subnet index by node, and the indexes in use.
    by_node: BTreeMap<String, u64>,
    used: BTreeSet<u64>,
}

impl CidrAllocator {
    pub fn new(cluster: Cidr, mask: u8) -> Result<CidrAllocator, String> {
        if mask < cluster.prefix || mask > 30 {
            return Err(format!(
                "invalid --node-cidr-mask-size {mask}: must be between the cluster CIDR's /{} and 30",
                cluster.prefix
            ));
        }
        Ok(CidrAllocator {
            cluster,
            mask,
            by_node: BTreeMap::new(),
            used: BTreeSet::new(),
        })
    }

    pub fn range(&self) -> Cidr {
        self.cluster
    }

    /// `node` has `cidr` (found on the Node). Ranges outside the cluster CIDR are the node's
    /// own business (given with the kubelet's `--pod-cidr`) and reserve nothing.
    pub fn occupy(&mut self, node: &str, cidr: Cidr) {
        if cidr.prefix != self.mask {
            return;
        }
        if let Some(i) = self.cluster.subnet_index(&cidr) {
            if let Some(old) = self.by_node.insert(node.to_string(), i)
                && old != i
            {
                self.used.remove(&old);
            }
            self.used.insert(i);
        }
    }

    /// The first free range, now `node`'s; `None` when every range is taken.
    pub fn allocate(&mut self, node: &str) -> Option<Cidr> {
        if let Some(i) = self.by_node.get(node) {
            return self.cluster.subnet(self.mask, *i);
        }
        let count = self.cluster.subnet_count(self.mask)?;
        let i = (0..count).find(|i| !self.used.contains(i))?;
        self.used.insert(i);
        self.by_node.insert(node.to_string(), i);
        self.cluster.subnet(self.mask, i)
    }

    /// `node` is gone: its range is free.
    pub fn release(&mut self, node: &str) -> Option<Cidr> {
        let i = self.by_node.remove(node)?;
        self.used.remove(&i);
        self.cluster.subnet(self.mask, i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        Cidr::parse(s).expect("cidr")
    }

    #[test]
    fn hands_out_each_range_once_and_takes_it_back() {
        let mut a = CidrAllocator::new(c("10.244.0.0/22"), 24).unwrap();
        a.occupy("old", c("10.244.1.0/24"));
        a.occupy("own", c("192.168.5.0/24"));
        assert_eq!(a.allocate("n1"), Some(c("10.244.0.0/24")));
        assert_eq!(
            a.allocate("n1"),
            Some(c("10.244.0.0/24")),
            "asked again: the same"
        );
        assert_eq!(a.allocate("n2"), Some(c("10.244.2.0/24")));
        assert_eq!(a.allocate("n3"), Some(c("10.244.3.0/24")));
        assert_eq!(a.allocate("n4"), None, "all four taken");
        assert_eq!(a.release("n2"), Some(c("10.244.2.0/24")));
        assert_eq!(a.allocate("n4"), Some(c("10.244.2.0/24")));
        assert_eq!(a.release("nobody"), None);
        assert!(CidrAllocator::new(c("10.244.0.0/16"), 8).is_err());
        assert!(CidrAllocator::new(c("10.244.0.0/16"), 31).is_err());
    }
}
