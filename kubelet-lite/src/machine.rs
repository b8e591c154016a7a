//! Facts about the machine the kubelet reports in its Node: CPUs, memory, disk, kernel, OS,
//! architecture (with Go's names, as Kubernetes labels use them), read from `/proc` and `/etc`.

use std::path::Path;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MachineInfo {
    pub cpus: i64,
    pub memory_bytes: i64,
    /// Size of the filesystem holding the root dir, if known.
    pub ephemeral_storage_bytes: Option<i64>,
    pub hostname: String,
    pub kernel_version: String,
    pub os_image: String,
    /// `amd64`, `arm64`, …
    pub architecture: String,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
}

fn read_trim(p: &str) -> String {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn parse_meminfo(text: &str) -> Option<i64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let n: i64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => n.checked_mul(1024),
        Some(_) => None,
    }
}

/// `PRETTY_NAME` of `/etc/os-release`.
pub fn parse_os_release(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("PRETTY_NAME="))?;
    let v = line.trim_start_matches("PRETTY_NAME=").trim();
    Some(v.trim_matches('"').trim_matches('\'').to_string())
}

/// Go's GOARCH for Rust's target architecture.
pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        other => other,
    }
}

/// The host name (`/proc/sys/kernel/hostname`), lower-cased as node names must be.
pub fn hostname() -> String {
    let h = read_trim("/proc/sys/kernel/hostname").to_ascii_lowercase();
    if h.is_empty() { "localhost".into() } else { h }
}

fn filesystem_size(path: &Path) -> Option<i64> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    let size = (s.blocks() as u128) * (s.fragment_size() as u128);
    i64::try_from(size).ok()
}

pub fn detect(root_dir: &Path) -> MachineInfo {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1);
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| parse_meminfo(&t))
        .unwrap_or(0);
    let os_image = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| parse_os_release(&t))
        .unwrap_or_else(|| "Linux".into());
    let machine_id = read_trim("/etc/machine-id");
    MachineInfo {
        cpus,
        memory_bytes,
        ephemeral_storage_bytes: filesystem_size(root_dir),
        hostname: hostname(),
        kernel_version: read_trim("/proc/sys/kernel/osrelease"),
        os_image,
        architecture: go_arch(std::env::consts::ARCH).to_string(),
        system_uuid: {
            let u = read_trim("/sys/class/dmi/id/product_uuid");
            if u.is_empty() { machine_id.clone() } else { u }
        },
        machine_id,
        boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_and_etc() {
        let meminfo = "MemTotal:       32803980 kB\nMemFree:  1 kB\n";
        assert_eq!(parse_meminfo(meminfo), Some(32803980 * 1024));
        assert_eq!(parse_meminfo("nothing"), None);
        let osr = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            parse_os_release(osr).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
    }

    #[test]
    fn detects_this_machine() {
        let m = detect(Path::new("/"));
        assert!(m.cpus >= 1);
        assert!(m.memory_bytes > 0);
        assert!(!m.hostname.is_empty());
        assert!(!m.architecture.is_empty());
    }
}
