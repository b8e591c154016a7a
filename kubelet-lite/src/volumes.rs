//! Pod volumes: `configMap` (with `items`, `defaultMode`, `optional`) and `emptyDir`.
//!
//! A volume's files live in `<sandbox>/volumes/<name>/`, written the way Kubernetes' atomic
//! writer does: the data goes into a fresh timestamped directory, the `..data` symlink is swapped
//! to it in one rename, and each visible name is a symlink through `..data` — so a reader sees
//! the old set of files or the new one, never a mix, and updates reach running containers.
//!
//! There are no mount namespaces here, so a `volumeMount` is a symlink at
//! `<sandbox>/<mountPath>` (the sandbox is the container's working directory, so a relative
//! `etc/config/key` works) and its resolved path is in the container's environment as
//! `KUBE_LITE_VOLUME_<NAME>`. A `subPath` mount is a copy made at container start, and, as in
//! Kubernetes, it is not updated afterwards.

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use api::core::{ConfigMap, Container, Pod, Volume};

use crate::runtime::Mount;

/// Kubernetes' default file mode for ConfigMap volumes (0644).
const DEFAULT_MODE: u32 = 0o644;
const DATA: &str = "..data";

/// The directory holding volume `name` of the pod whose sandbox is `sandbox`.
pub fn volume_dir(sandbox: &Path, name: &str) -> PathBuf {
    sandbox.join("volumes").join(name)
}

/// The ConfigMaps the pod's volumes refer to.
pub fn referenced_config_maps(pod: &Pod) -> Vec<String> {
    let mut v: Vec<String> = pod
        .spec
        .volumes
        .iter()
        .filter_map(|vol| vol.config_map.as_ref().map(|c| c.name.clone()))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The files a volume should hold: relative path → (bytes, mode). `Err`: why the volume cannot
/// be set up (Kubernetes' FailedMount message).
pub fn desired_files(
    vol: &Volume,
    cms: &BTreeMap<String, Option<ConfigMap>>,
) -> Result<BTreeMap<String, (Vec<u8>, u32)>, String> {
    let mut files = BTreeMap::new();
    let Some(src) = &vol.config_map else {
        return Ok(files);
    };
    let optional = src.optional.unwrap_or(false);
    let Some(cm) = cms.get(&src.name).and_then(Option::as_ref) else {
        if optional {
            return Ok(files);
        }
        return Err(format!(
            "MountVolume.SetUp failed for volume {:?} : configmap {:?} not found",
            vol.name, src.name
        ));
    };
    let mode = src.default_mode.map_or(DEFAULT_MODE, |m| m as u32 & 0o777);
    let value = |key: &str| -> Option<Vec<u8>> {
        cm.data.get(key).map(|s| s.as_bytes().to_vec()).or_else(|| {
            use base64::Engine;
            let b = cm.binary_data.get(key)?;
            base64::engine::general_purpose::STANDARD.decode(b).ok()
        })
    };
    if src.items.is_empty() {
        for key in cm.data.keys().chain(cm.binary_data.keys()) {
            if let Some(v) = value(key) {
                files.insert(key.clone(), (v, mode));
            }
        }
        return Ok(files);
    }
    for item in &src.items {
        let Some(v) = value(&item.key) else {
            if optional {
                continue;
            }
            return Err(format!(
                "MountVolume.SetUp failed for volume {:?} : configmap references non-existent config key: {}",
                vol.name, item.key
            ));
        };
        if !safe_relative(&item.path) {
            return Err(format!(
                "MountVolume.SetUp failed for volume {:?} : invalid path {:?}",
                vol.name, item.path
            ));
        }
        let m = item.mode.map_or(mode, |m| m as u32 & 0o777);
        files.insert(item.path.clone(), (v, m));
    }
    Ok(files)
}

/// A relative path without `..` (no escaping the volume).
fn safe_relative(p: &str) -> bool {
    !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// What the volume holds now (through `..data`), to compare with what it should.
fn current_files(dir: &Path) -> Option<BTreeMap<String, (Vec<u8>, u32)>> {
    let data = dir.join(DATA);
    let target = std::fs::read_link(&data).ok()?;
    let mut out = BTreeMap::new();
    let root = dir.join(target);
    collect(&root, &root, &mut out).ok()?;
    Some(out)
}

fn collect(
    root: &Path,
    d: &Path,
    out: &mut BTreeMap<String, (Vec<u8>, u32)>,
) -> std::io::Result<()> {
    for e in std::fs::read_dir(d)? {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            collect(root, &p, out)?;
        } else {
            let rel = p
                .strip_prefix(root)
                .map(|r| r.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mode = e.metadata()?.permissions().mode() & 0o777;
            out.insert(rel, (std::fs::read(&p)?, mode));
        }
    }
    Ok(())
}

/// Make `dir` hold exactly `files`, atomically for readers. Returns whether anything changed.
pub fn write_atomic(dir: &Path, files: &BTreeMap<String, (Vec<u8>, u32)>) -> std::io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    if current_files(dir).as_ref() == Some(files) {
        return Ok(false);
    }
    let stamp = chrono::Utc::now()
        .format("..%Y_%m_%d_%H_%M_%S.%9f")
        .to_string();
    let fresh = dir.join(&stamp);
    std::fs::create_dir(&fresh)?;
    for (rel, (bytes, mode)) in files {
        let p = fresh.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, bytes)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))?;
    }
    let old = std::fs::read_link(dir.join(DATA)).ok();
    // Swap ..data in one rename.
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, dir.join(DATA))?;
    // Visible names: a symlink per top-level entry, through ..data.
    let tops: std::collections::BTreeSet<String> = files
        .keys()
        .filter_map(|k| k.split('/').next().map(str::to_string))
        .collect();
    for top in &tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA).join(top), &link)?;
        }
    }
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !tops.contains(&name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    if let Some(old) = old
        && old != Path::new(&stamp)
    {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

/// Give the container its mounts in the sandbox; returns the `KUBE_LITE_VOLUME_*` variables.
pub fn mount(sandbox: &Path, spec: &Container) -> Result<Vec<(String, String)>, String> {
    let mut env = Vec::new();
    for m in &spec.volume_mounts {
        let rel = m.mount_path.trim_start_matches('/');
        if !safe_relative(rel) {
            return Err(format!("invalid mountPath {:?}", m.mount_path));
        }
        let target = sandbox.join(rel);
        let source = volume_dir(sandbox, &m.name);
        let err = |e: std::io::Error| {
            format!(
                "cannot mount volume {:?} at {}: {e}",
                m.name,
                target.display()
            )
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        if let Ok(md) = std::fs::symlink_metadata(&target) {
            if md.is_dir() && !md.file_type().is_symlink() {
                std::fs::remove_dir_all(&target).map_err(err)?;
            } else {
                std::fs::remove_file(&target).map_err(err)?;
            }
        }
        if m.sub_path.is_empty() {
            symlink(&source, &target).map_err(err)?;
        } else {
            if !safe_relative(&m.sub_path) {
                return Err(format!("invalid subPath {:?}", m.sub_path));
            }
            let from = source.join(&m.sub_path);
            if from.is_dir() {
                copy_dir(&from, &target).map_err(err)?;
            } else if from.exists() {
                std::fs::copy(&from, &target).map_err(err)?;
            } else {
                std::fs::create_dir_all(&target).map_err(err)?;
            }
        }
        // The whole volume's path, from its first whole-volume mount.
        let var = env_name(&m.name);
        if m.sub_path.is_empty() && !env.iter().any(|(k, _)| *k == var) {
            env.push((var, target.display().to_string()));
        }
    }
    Ok(env)
}

/// The container's volume mounts as bind mounts for a runtime with mount namespaces (CRI): each
/// volume's directory (or a `subPath` in it) at its `mountPath`. ConfigMap volumes are always
/// read-only, as in Kubernetes.
pub fn bind_mounts(sandbox: &Path, pod: &Pod, spec: &Container) -> Result<Vec<Mount>, String> {
    let mut out = Vec::new();
    for m in &spec.volume_mounts {
        let Some(vol) = pod.spec.volumes.iter().find(|v| v.name == m.name) else {
            return Err(format!(
                "volume {:?} not found in the pod's volumes",
                m.name
            ));
        };
        if !m.mount_path.starts_with('/') {
            return Err(format!("mountPath {:?} must be absolute", m.mount_path));
        }
        let mut host = volume_dir(sandbox, &m.name);
        if !m.sub_path.is_empty() {
            if !safe_relative(&m.sub_path) {
                return Err(format!("invalid subPath {:?}", m.sub_path));
            }
            host = host.join(&m.sub_path);
            if !host.exists() {
                // Kubernetes makes a missing subPath as a directory.
                std::fs::create_dir_all(&host)
                    .map_err(|e| format!("cannot create subPath {}: {e}", host.display()))?;
            }
        }
        out.push(Mount {
            container_path: m.mount_path.clone(),
            host_path: host,
            readonly: m.read_only || vol.config_map.is_some(),
        });
    }
    Ok(out)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dst)?;
        } else {
            std::fs::copy(e.path(), dst)?;
        }
    }
    Ok(())
}

/// `KUBE_LITE_VOLUME_<NAME>`: the volume's name upper-cased, `-` and `.` as `_`.
pub fn env_name(volume: &str) -> String {
    let n: String = volume
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("KUBE_LITE_VOLUME_{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(data: &[(&str, &str)]) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.name = "cfg".into();
        for (k, v) in data {
            c.data.insert(k.to_string(), v.to_string());
        }
        c
    }

    fn volume(json: serde_json::Value) -> Volume {
        serde_json::from_value(json).expect("volume")
    }

    #[test]
    fn items_modes_and_missing_keys() {
        let cms = BTreeMap::from([("cfg".to_string(), Some(cm(&[("a", "1"), ("b", "2")])))]);
        let all = desired_files(
            &volume(serde_json::json!({"name": "v", "configMap": {"name": "cfg"}})),
            &cms,
        )
        .unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(all["a"], (b"1".to_vec(), 0o644));
        let some = desired_files(
            &volume(serde_json::json!({"name": "v", "configMap": {"name": "cfg", "defaultMode": 0o400,
                "items": [{"key": "b", "path": "sub/b.conf"}, {"key": "a", "path": "a", "mode": 0o600}]}})),
            &cms,
        )
        .unwrap();
        assert_eq!(some["sub/b.conf"], (b"2".to_vec(), 0o400));
        assert_eq!(some["a"].1, 0o600);
        let e = desired_files(
            &volume(
                serde_json::json!({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "zz", "path": "zz"}]}}),
            ),
            &cms,
        );
        assert!(e.is_err_and(|m| m.contains("non-existent config key: zz")));
        let e = desired_files(
            &volume(serde_json::json!({"name": "v", "configMap": {"name": "nope"}})),
            &cms,
        );
        assert!(e.is_err_and(|m| m.contains("configmap \"nope\" not found")));
        let none = desired_files(
            &volume(
                serde_json::json!({"name": "v", "configMap": {"name": "nope", "optional": true}}),
            ),
            &cms,
        );
        assert_eq!(none, Ok(BTreeMap::new()));
        let escape = desired_files(
            &volume(
                serde_json::json!({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "a", "path": "../x"}]}}),
            ),
            &cms,
        );
        assert!(escape.is_err());
    }

    #[test]
    fn atomic_writes_swap_data_and_links() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("v");
        let one = BTreeMap::from([
            ("a".to_string(), (b"1".to_vec(), 0o644)),
            ("b".to_string(), (b"2".to_vec(), 0o644)),
        ]);
        assert!(write_atomic(&dir, &one).unwrap());
        assert!(
            !write_atomic(&dir, &one).unwrap(),
            "unchanged: nothing written"
        );
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        let two = BTreeMap::from([("a".to_string(), (b"one".to_vec(), 0o644))]);
        assert!(write_atomic(&dir, &two).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "one");
        assert!(!dir.join("b").exists(), "removed keys disappear");
        let stamps = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                let n = e.as_ref().unwrap().file_name();
                let n = n.to_string_lossy();
                n.starts_with("..") && n != "..data"
            })
            .count();
        assert_eq!(stamps, 1, "the old data directory is gone");
    }

    #[test]
    fn mounts_are_links_in_the_sandbox_and_sub_paths_copies() {
        let d = tempfile::tempdir().unwrap();
        let sandbox = d.path();
        let files = BTreeMap::from([("k".to_string(), (b"v".to_vec(), 0o644))]);
        write_atomic(&volume_dir(sandbox, "config-vol"), &files).unwrap();
        let c: Container =
            serde_json::from_value(serde_json::json!({"name": "c", "volumeMounts": [
            {"name": "config-vol", "mountPath": "/etc/config"},
            {"name": "config-vol", "mountPath": "/etc/one.conf", "subPath": "k"}]}))
            .unwrap();
        let env = mount(sandbox, &c).unwrap();
        assert_eq!(
            std::fs::read_to_string(sandbox.join("etc/config/k")).unwrap(),
            "v"
        );
        assert_eq!(
            std::fs::read_to_string(sandbox.join("etc/one.conf")).unwrap(),
            "v"
        );
        assert_eq!(env[0].0, "KUBE_LITE_VOLUME_CONFIG_VOL");
        assert_eq!(env[0].1, sandbox.join("etc/config").display().to_string());
    }
}
