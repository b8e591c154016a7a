//! The node's pod network, as CNI config: kubelet-lite writes a conflist for its pod CIDR into
//! the directory the runtime reads (`--cni-conf-dir`; the file is written by [`cri::cni`]), and the runtime (containerd's CRI plugin)
//! runs the plugins for every sandbox: `bridge` (a Linux bridge on the node, the pods' gateway,
//! with `host-local` handing out addresses from the pod CIDR) and `portmap` (`hostPort`s).
//! containerd adds the `loopback` plugin for each sandbox's `lo` itself.

use std::path::{Path, PathBuf};

use cri::cni::{BridgeNetwork, bridge_name};

/// The CNI network's name; its conflist is `10-kube-lite.conflist`.
pub const NETWORK: &str = "kube-lite";

/// The node's network: a bridge over its pod CIDR; `ipam_dir` keeps host-local's address
/// reservations (under the kubelet's root, so nodes sharing a machine never share them).
pub fn network(node: &str, cidr: &str, ipam_dir: &Path) -> BridgeNetwork {
    BridgeNetwork {
        name: NETWORK.into(),
        bridge: bridge_name(node),
        subnet: cidr.into(),
        ipam_data_dir: Some(ipam_dir.to_path_buf()),
        ip_masq: true,
    }
}

/// Write the node's conflist into `dir` unless it is already there as it should be (the
/// runtime notices a change of the directory by itself). Returns the file's path.
pub fn install(dir: &Path, node: &str, cidr: &str, ipam_dir: &Path) -> Result<PathBuf, String> {
    let net = network(node, cidr, ipam_dir);
    let path = dir.join(format!("10-{NETWORK}.conflist"));
    let current: Option<serde_json::Value> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if current.as_ref() == Some(&net.conflist()) {
        return Ok(path);
    }
    net.write(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_and_install() {
        let v = network("worker-1", "10.244.1.0/24", Path::new("/r/cni")).conflist();
        assert_eq!(v["plugins"][0]["type"], "bridge");
        assert_eq!(v["plugins"][0]["bridge"], "kl-worker-1");
        assert_eq!(
            v["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.244.1.0/24"
        );
        assert_eq!(v["plugins"][0]["ipam"]["dataDir"], "/r/cni");
        assert_eq!(v["plugins"][1]["type"], "portmap");
        let d = tempfile::tempdir().expect("tempdir");
        let ipam = Path::new("/r/cni");
        let p = install(d.path(), "worker-1", "10.244.1.0/24", ipam).expect("install");
        let first = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
        install(d.path(), "worker-1", "10.244.1.0/24", ipam).expect("again");
        assert_eq!(std::fs::metadata(&p).and_then(|m| m.modified()).ok(), first);
    }
}
