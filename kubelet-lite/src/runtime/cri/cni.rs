//! The node's pod network, as CNI config: kubelet-lite writes a conflist for its pod CIDR into
//! the directory the runtime reads (`--cni-conf-dir`), and the runtime (containerd's CRI plugin)
//! runs the plugins for every sandbox: `bridge` (a Linux bridge on the node, the pods' gateway,
//! with `host-local` handing out addresses from the pod CIDR) and `portmap` (`hostPort`s).
//! containerd adds the `loopback` plugin for each sandbox's `lo` itself.

use std::path::{Path, PathBuf};

use serde_json::json;

/// The file kubelet-lite owns in the CNI config directory.
pub const CONF_FILE: &str = "10-kube-lite.conflist";

/// The bridge's name for a node: `kl-<node>` when that fits Linux's 15 characters, else
/// `kl-` and a hash of the name (nodes sharing one machine need bridges of their own).
pub fn bridge_name(node: &str) -> String {
    let name = format!("kl-{node}");
    if name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return name;
    }
    format!("kl-{:08x}", crate::ip_alloc::name_hash(node))
}

/// The conflist for a node with pod CIDR `cidr`; `ipam_dir` keeps host-local's address
/// reservations (under the kubelet's root, so nodes sharing a machine never share them).
pub fn conflist(node: &str, cidr: &str, ipam_dir: &Path) -> String {
    let v = json!({
        "cniVersion": "0.4.0",
        "name": "kube-lite",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge_name(node),
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": ipam_dir.display().to_string(),
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// Write the node's conflist into `dir` unless it is already there as it should be (the
/// runtime notices a change of the directory by itself). Returns the file's path.
pub fn install(dir: &Path, node: &str, cidr: &str, ipam_dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(CONF_FILE);
    let want = conflist(node, cidr, ipam_dir);
    if std::fs::read_to_string(&path).ok().as_deref() == Some(want.as_str()) {
        return Ok(path);
    }
    let tmp = dir.join(format!(".{CONF_FILE}.tmp"));
    std::fs::write(&tmp, &want)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
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
    fn conflist_and_install() {
        let v: serde_json::Value =
            serde_json::from_str(&conflist("worker-1", "10.244.1.0/24", Path::new("/r/cni")))
                .expect("json");
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
