//! Container images without a registry: kube-lite builds small images itself — a static busybox
//! with a link per applet, `/etc/passwd`, `/etc/group`, `/tmp`, plus a few files — writes them as
//! an image archive and imports it into a node's containerd with `ctr images import`.
//!
//! The archive is an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`: one
//! uncompressed layer, the config, the manifest) that also carries Docker's `manifest.json`
//! pointing at the same blobs, so both `ctr images import` (which prefers the OCI layout) and
//! `docker load` (which, before Docker 25, only reads `manifest.json`) take it. Its entries have
//! fixed times and owners: the same spec and busybox always give the same digests.
//!
//! `ctr` names an image after the `io.containerd.image.name` annotation of `index.json`, as is
//! (no normalization), and CRI looks images up by their normalized name: so the annotation holds
//! the normalized name, `docker.io/kube-lite/web:1` for `kube-lite/web:1` ([`normalize_name`]).
//!
//! Two images are built in: [`pause_image`] (`kube-lite/pause:1`, the pod sandbox) and
//! [`web_image`] (`kube-lite/web:1`, busybox httpd for examples and tests);
//! [`ensure_builtin_images`] imports them into a containerd that lacks them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{Client, describe, v1};

/// The pod sandbox image of kube-lite's nodes.
pub const PAUSE_IMAGE: &str = "kube-lite/pause:1";
/// The example web server image.
pub const WEB_IMAGE: &str = "kube-lite/web:1";
/// The containerd namespace of CRI's images and containers.
pub const CRI_NAMESPACE: &str = "k8s.io";

const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// The PATH of kube-lite's images (busybox's applets are all in /bin).
pub const DEFAULT_PATH: &str = "PATH=/bin:/usr/bin:/sbin:/usr/sbin";

/// What to build: an image of busybox plus `files`, with the config's process fields.
#[derive(Clone, Debug, Default)]
pub struct ImageSpec {
    /// A reference such as `kube-lite/web:1` (normalized to `docker.io/kube-lite/web:1`).
    pub name: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    pub working_dir: String,
    /// e.g. `80/tcp`.
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Extra files; they replace the default ones at the same path (`/etc/passwd`, a link).
    pub files: Vec<ImageFile>,
    /// Extra empty directories (mode 0755), e.g. `/www`.
    pub dirs: Vec<String>,
}

/// A regular file of an image.
#[derive(Clone, Debug)]
pub struct ImageFile {
    /// Absolute path in the image, e.g. `/bin/web-start`.
    pub path: String,
    pub contents: Vec<u8>,
    /// Permission bits, e.g. `0o755`.
    pub mode: u32,
}

/// A static busybox and the applets it has (`busybox --list`).
#[derive(Clone, Debug)]
pub struct Busybox {
    pub path: PathBuf,
    pub applets: Vec<String>,
}

impl Busybox {
    /// The machine's static busybox ([`busybox_path`]) and its applets.
    pub fn find() -> Result<Busybox, String> {
        let path = busybox_path()?;
        let out = std::process::Command::new(&path)
            .arg("--list")
            .output()
            .map_err(|e| format!("cannot run {} --list: {e}", path.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} --list failed ({}): {}",
                path.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let applets = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|a| is_applet_name(a))
            .map(String::from)
            .collect::<Vec<_>>();
        if applets.is_empty() {
            return Err(format!("{} --list names no applet", path.display()));
        }
        Ok(Busybox { path, applets })
    }
}

fn is_applet_name(a: &str) -> bool {
    !a.is_empty()
        && a != "busybox"
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '['))
        && a != "."
        && a != ".."
}

/// Where the machine's busybox is, if it is statically linked (the images have no C library
/// for a dynamic one): `$KUBE_LITE_BUSYBOX`, else `busybox` in `PATH`, `/bin/busybox`,
/// `/usr/bin/busybox`.
pub fn busybox_path() -> Result<PathBuf, String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("KUBE_LITE_BUSYBOX") {
        candidates.push(PathBuf::from(p));
    }
    if let Some(p) = crate::containerd::find_in_path("busybox") {
        candidates.push(p);
    }
    candidates.extend(["/bin/busybox", "/usr/bin/busybox"].map(PathBuf::from));
    let mut dynamic = None;
    for c in candidates {
        let Ok(bytes) = std::fs::read(&c) else {
            continue;
        };
        match is_static_elf(&bytes) {
            Ok(true) => return Ok(c),
            Ok(false) => {
                dynamic.get_or_insert(c);
            }
            Err(e) => tracing::debug!(path = %c.display(), error = %e, "not a usable busybox"),
        }
    }
    Err(match dynamic {
        Some(p) => format!(
            "{} is dynamically linked: kube-lite's images need a static busybox (Debian: apt-get install busybox-static)",
            p.display()
        ),
        None => "no busybox found: kube-lite's images need a static busybox (Debian: apt-get install busybox-static)".into(),
    })
}

/// Whether an ELF executable runs without a dynamic loader: it has no `PT_INTERP` program
/// header (a static-pie has `PT_DYNAMIC` but no interpreter, and runs alone too).
pub fn is_static_elf(b: &[u8]) -> Result<bool, String> {
    if b.len() < 52 || &b[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    let wide = match b[4] {
        1 => false,
        2 => true,
        c => return Err(format!("unknown ELF class {c}")),
    };
    let le = match b[5] {
        1 => true,
        2 => false,
        d => return Err(format!("unknown ELF data encoding {d}")),
    };
    let int = |off: usize, len: usize| -> Result<u64, String> {
        let s = b
            .get(off..off + len)
            .ok_or_else(|| "truncated ELF header".to_string())?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if le { s[len - 1 - i] } else { s[i] };
            v = v << 8 | byte as u64;
        }
        Ok(v)
    };
    let (phoff, phentsize, phnum) = if wide {
        (int(0x20, 8)?, int(0x36, 2)?, int(0x38, 2)?)
    } else {
        (int(0x1c, 4)?, int(0x2a, 2)?, int(0x2c, 2)?)
    };
    const PT_INTERP: u64 = 3;
    for i in 0..phnum {
        let off = usize::try_from(phoff + i * phentsize).map_err(|_| "bad ELF offset")?;
        if int(off, 4)? == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `name` as containerd and CRI store it: `web` → `docker.io/library/web:latest`,
/// `kube-lite/web:1` → `docker.io/kube-lite/web:1`, `localhost:5000/x` →
/// `localhost:5000/x:latest`.
pub fn normalize_name(name: &str) -> Result<String, String> {
    let bad = |why: &str| format!("invalid image name {name:?}: {why}");
    if name.is_empty() {
        return Err(bad("empty"));
    }
    let (rest, digest) = match name.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (name, None),
    };
    let (domain, path) = match rest.split_once('/') {
        Some((d, p)) if d.contains('.') || d.contains(':') || d == "localhost" => {
            (d.to_string(), p.to_string())
        }
        _ => ("docker.io".to_string(), rest.to_string()),
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    let last = path.rsplit('/').next().unwrap_or_default();
    let (repo_path, tag) = match last.split_once(':') {
        Some((_, t)) => (
            path[..path.len() - t.len() - 1].to_string(),
            Some(t.to_string()),
        ),
        None => (path.clone(), None),
    };
    if repo_path.is_empty()
        || repo_path.split('/').any(str::is_empty)
        || repo_path.chars().any(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '/' | '.' | '_' | '-'))
        })
    {
        return Err(bad(
            "the repository must be lowercase letters, digits and . _ - /",
        ));
    }
    if let Some(t) = &tag
        && (t.is_empty()
            || t.len() > 128
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(bad("invalid tag"));
    }
    let mut out = format!("{domain}/{repo_path}");
    match (tag, digest) {
        (Some(t), Some(d)) => out.push_str(&format!(":{t}@{d}")),
        (Some(t), None) => out.push_str(&format!(":{t}")),
        (None, Some(d)) => out.push_str(&format!("@{d}")),
        (None, None) => out.push_str(":latest"),
    }
    Ok(out)
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The three blobs of an image and the names it goes by.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    /// The normalized name (`docker.io/kube-lite/web:1`).
    pub name: String,
    pub layer: Vec<u8>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl BuiltImage {
    /// The image ID (the config's digest), as CRI and `docker images` report it.
    pub fn id(&self) -> String {
        sha256_digest(&self.config)
    }
    pub fn manifest_digest(&self) -> String {
        sha256_digest(&self.manifest)
    }
    pub fn layer_digest(&self) -> String {
        sha256_digest(&self.layer)
    }
}

/// Builds the layer, config and manifest of `spec` on `busybox`.
pub fn build(spec: &ImageSpec, busybox: &Busybox) -> Result<BuiltImage, String> {
    let name = normalize_name(&spec.name)?;
    let bin = std::fs::read(&busybox.path)
        .map_err(|e| format!("cannot read {}: {e}", busybox.path.display()))?;
    let layer = build_layer(spec, &bin, &busybox.applets)?;
    let diff_id = sha256_digest(&layer);

    let mut config = serde_json::Map::new();
    if !spec.entrypoint.is_empty() {
        config.insert("Entrypoint".into(), json!(spec.entrypoint));
    }
    if !spec.cmd.is_empty() {
        config.insert("Cmd".into(), json!(spec.cmd));
    }
    let mut env = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    config.insert("Env".into(), json!(env));
    if !spec.working_dir.is_empty() {
        config.insert("WorkingDir".into(), json!(spec.working_dir));
    }
    if !spec.exposed_ports.is_empty() {
        let ports: serde_json::Map<String, serde_json::Value> = spec
            .exposed_ports
            .iter()
            .map(|p| {
                let p = if p.contains('/') {
                    p.clone()
                } else {
                    format!("{p}/tcp")
                };
                (p, json!({}))
            })
            .collect();
        config.insert("ExposedPorts".into(), json!(ports));
    }
    if !spec.labels.is_empty() {
        config.insert("Labels".into(), json!(spec.labels));
    }
    let config = json!({
        "architecture": oci_arch(),
        "os": "linux",
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created_by": "kube-lite image builder (static busybox)" }],
    });
    let config = serde_json::to_vec(&config).map_err(|e| format!("cannot encode config: {e}"))?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": { "mediaType": MEDIA_CONFIG, "digest": sha256_digest(&config), "size": config.len() },
        "layers": [{ "mediaType": MEDIA_LAYER, "digest": diff_id, "size": layer.len() }],
    });
    let manifest =
        serde_json::to_vec(&manifest).map_err(|e| format!("cannot encode manifest: {e}"))?;
    Ok(BuiltImage {
        name,
        layer,
        config,
        manifest,
    })
}

enum Entry<'a> {
    Dir(u32),
    File(&'a [u8], u32),
    Link(String),
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

/// The root filesystem as one uncompressed tar layer: directories, busybox and a symlink per
/// applet in /bin, `/usr/bin/env`, `/etc/passwd`, `/etc/group`, `/tmp` (1777), then
/// `spec.files`; sorted by path, fixed times and owners.
pub fn build_layer(
    spec: &ImageSpec,
    busybox: &[u8],
    applets: &[String],
) -> Result<Vec<u8>, String> {
    const PASSWD: &[u8] =
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    const GROUP: &[u8] = b"root:x:0:\nnogroup:x:65534:\n";
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for (d, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("proc", 0o755),
        ("root", 0o700),
        ("sys", 0o755),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("var", 0o755),
    ] {
        entries.insert(d.to_string(), Entry::Dir(mode));
    }
    entries.insert("bin/busybox".into(), Entry::File(busybox, 0o755));
    for a in applets {
        if is_applet_name(a) {
            entries.insert(format!("bin/{a}"), Entry::Link("busybox".into()));
        }
    }
    entries.insert("usr/bin/env".into(), Entry::Link("/bin/busybox".into()));
    entries.insert("etc/passwd".into(), Entry::File(PASSWD, 0o644));
    entries.insert("etc/group".into(), Entry::File(GROUP, 0o644));
    for d in &spec.dirs {
        let rel = clean_path(d)?;
        add_parents(&mut entries, &format!("{rel}/x"), d)?;
    }
    for f in &spec.files {
        let rel = clean_path(&f.path)?;
        if rel == "bin/busybox" {
            return Err(format!("image file {} would replace busybox", f.path));
        }
        add_parents(&mut entries, &rel, &f.path)?;
        entries.insert(rel, Entry::File(&f.contents, f.mode & 0o7777));
    }

    let mut b = tar::Builder::new(Vec::new());
    for (path, e) in &entries {
        let r = match e {
            Entry::Dir(mode) => {
                let mut h = header(tar::EntryType::Directory, *mode, 0);
                b.append_data(&mut h, format!("{path}/"), std::io::empty())
            }
            Entry::File(data, mode) => {
                let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                b.append_data(&mut h, path, *data)
            }
            Entry::Link(target) => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                b.append_link(&mut h, path, target)
            }
        };
        r.map_err(|e| format!("cannot add /{path} to the layer: {e}"))?;
    }
    b.into_inner()
        .map_err(|e| format!("cannot finish the layer: {e}"))
}

/// Adds the missing parent directories of `rel` (0755); an existing non-directory is an error.
fn add_parents(
    entries: &mut BTreeMap<String, Entry>,
    rel: &str,
    shown: &str,
) -> Result<(), String> {
    let mut parent = Path::new(rel).parent();
    while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
        let key = p.to_string_lossy().into_owned();
        match entries.get(&key) {
            Some(Entry::Dir(_)) => {}
            Some(_) => {
                return Err(format!(
                    "image path {shown} is under /{key}, which is not a directory"
                ));
            }
            None => {
                entries.insert(key, Entry::Dir(0o755));
            }
        }
        parent = p.parent();
    }
    Ok(())
}

/// `/a/b` → `a/b`, refusing `..` and empty paths.
fn clean_path(p: &str) -> Result<String, String> {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") {
        return Err(format!("invalid image file path {p:?}"));
    }
    Ok(parts.join("/"))
}

/// Writes `image` as an archive at `out`: an OCI image layout that is also a `docker load`
/// archive (see the module docs).
pub fn write_archive(image: &BuiltImage, out: &Path) -> Result<(), String> {
    let tag = image
        .name
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .map(|(_, t)| t.to_string())
        .unwrap_or_else(|| "latest".into());
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": image.manifest_digest(),
            "size": image.manifest.len(),
            "platform": { "architecture": oci_arch(), "os": "linux" },
            "annotations": {
                // ctr names the image after this one, as is.
                "io.containerd.image.name": image.name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    });
    let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let docker_manifest = json!([{
        "Config": blob(&image.id()),
        "RepoTags": [image.name],
        "Layers": [blob(&image.layer_digest())],
    }]);
    let to_vec = |v: &serde_json::Value| {
        serde_json::to_vec(v).map_err(|e| format!("cannot encode the archive index: {e}"))
    };
    let files: Vec<(String, Vec<u8>)> = vec![
        (
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".into(), to_vec(&index)?),
        ("manifest.json".into(), to_vec(&docker_manifest)?),
    ];
    let file =
        std::fs::File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(file));
    let werr = |e: std::io::Error| format!("cannot write {}: {e}", out.display());
    for d in ["blobs/", "blobs/sha256/"] {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, d, std::io::empty()).map_err(werr)?;
    }
    for (path, data) in files.iter().map(|(p, d)| (p.clone(), d.as_slice())).chain([
        (blob(&image.layer_digest()), image.layer.as_slice()),
        (blob(&image.id()), image.config.as_slice()),
        (blob(&image.manifest_digest()), image.manifest.as_slice()),
    ]) {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        b.append_data(&mut h, path, data).map_err(werr)?;
    }
    let mut w = b.into_inner().map_err(werr)?;
    std::io::Write::flush(&mut w).map_err(werr)?;
    Ok(())
}

/// Imports an image archive (OCI layout or `docker save`) into the CRI namespace of the
/// containerd at `socket` with `ctr images import` (which also unpacks it for the default
/// snapshotter). Returns the names ctr reports having unpacked.
pub async fn import(socket: &Path, archive: &Path) -> Result<Vec<String>, String> {
    let ctr = crate::containerd::find_in_path("ctr")
        .ok_or("ctr is not in PATH (Debian: apt-get install containerd)")?;
    let mut cmd = tokio::process::Command::new(&ctr);
    cmd.arg("-a")
        .arg(socket)
        .args(["-n", CRI_NAMESPACE, "images", "import"])
        .arg(archive)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .map_err(|_| {
            format!(
                "ctr images import {} took over 5 minutes",
                archive.display()
            )
        })?
        .map_err(|e| format!("cannot run {}: {e}", ctr.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .chain(stdout.lines())
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("no output");
        return Err(format!(
            "ctr images import {} into {} failed ({}): {}",
            archive.display(),
            socket.display(),
            out.status,
            last.trim()
        ));
    }
    // ctr 1.6 prints `unpacking docker.io/kube-lite/web:1 (sha256:…)...done` per image.
    let names: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("unpacking "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect();
    tracing::info!(archive = %archive.display(), socket = %socket.display(), ?names, elapsed = ?started.elapsed(), "imported images");
    Ok(names)
}

/// Whether the runtime has image `name` (CRI `ImageStatus`).
pub async fn image_present(client: &Client, name: &str) -> Result<bool, String> {
    let r = client
        .image()
        .image_status(client.req(v1::ImageStatusRequest {
            image: Some(v1::ImageSpec {
                image: name.to_string(),
                ..Default::default()
            }),
            verbose: false,
        }))
        .await
        .map_err(|e| format!("ImageStatus {name}: {}", describe(&e)))?;
    Ok(r.into_inner().image.is_some())
}

/// Waits until CRI reports every image of `names` (its image list follows containerd's events,
/// so an image imported a moment ago may take a moment to appear).
pub async fn wait_for_images(
    client: &Client,
    names: &[String],
    within: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    for name in names {
        loop {
            if image_present(client, name).await? {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the runtime at {} does not list image {name} {within:?} after importing it",
                    client.endpoint
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// The pod sandbox image: a shell that sleeps, reaps what it inherits (ash's `wait` reaps any
/// child), and exits at once on SIGTERM or SIGINT, even as PID 1.
pub fn pause_image() -> ImageSpec {
    ImageSpec {
        name: PAUSE_IMAGE.into(),
        entrypoint: vec![
            "/bin/sh".into(),
            "-c".into(),
            "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done".into(),
        ],
        labels: BTreeMap::from([(
            "io.kube-lite.image".to_string(),
            "pod sandbox (pause)".to_string(),
        )]),
        ..Default::default()
    }
}

/// The start script of [`web_image`]: an index naming the pod unless /www has one (or is
/// read-only, e.g. a ConfigMap), then the command.
const WEB_START: &str = r#"#!/bin/sh
# kube-lite/web: give /www an index.html naming the pod, unless it has one, then run "$@"
# (busybox httpd in the foreground, logging each request's URL and status on stderr).
if [ ! -e /www/index.html ]; then
  v=""
  [ -n "$WEB_VERSION" ] && [ "$WEB_VERSION" != 1 ] && v=" (v$WEB_VERSION)"
  if ! { printf 'Hello from %s%s\n' "$(hostname)" "$v" > /www/index.html; } 2>/dev/null; then
    echo "web: /www has no index.html and is read-only; serving it as it is" >&2
  fi
fi
# A server that takes its time to start (rollout demos): $WEB_START_DELAY seconds.
[ -n "$WEB_START_DELAY" ] && sleep "$WEB_START_DELAY"
exec "$@"
"#;

/// The same web server, version 2: it says so (`Hello from <pod> (v2)`), for rollouts.
pub const WEB_IMAGE_V2: &str = "kube-lite/web:2";

/// The example web server: busybox httpd on port 80 serving /www, in the foreground, with one
/// log line per request URL and one per response status on stderr (`-vv`).
pub fn web_image() -> ImageSpec {
    web_image_version(1)
}

/// [`web_image`] as `kube-lite/web:<version>`, answering with `(v<version>)` after version 1.
pub fn web_image_version(version: u32) -> ImageSpec {
    ImageSpec {
        name: format!("kube-lite/web:{version}"),
        env: vec![format!("WEB_VERSION={version}")],
        entrypoint: vec!["/bin/web-start".into()],
        cmd: ["httpd", "-f", "-vv", "-p", "80", "-h", "/www"]
            .map(String::from)
            .to_vec(),
        working_dir: "/www".into(),
        exposed_ports: vec!["80/tcp".into()],
        labels: BTreeMap::from([(
            "io.kube-lite.image".to_string(),
            "busybox httpd serving /www".to_string(),
        )]),
        files: vec![ImageFile {
            path: "/bin/web-start".into(),
            contents: WEB_START.as_bytes().to_vec(),
            mode: 0o755,
        }],
        dirs: vec!["/www".into()],
    }
}

/// The images every node needs: [`pause_image`], and [`web_image`] in versions 1 and 2.
pub fn builtin_images() -> Vec<ImageSpec> {
    vec![pause_image(), web_image(), web_image_version(2)]
}

/// Builds and imports the built-in images that the containerd at `socket` lacks (CRI
/// `ImageStatus`), then waits until CRI lists them. Quick when they are there already. Returns
/// the names it imported.
pub async fn ensure_builtin_images(socket: &Path) -> Result<Vec<String>, String> {
    let client = Client::new(&format!("unix://{}", socket.display()))?;
    let mut missing = Vec::new();
    for spec in builtin_images() {
        if !image_present(&client, &spec.name).await? {
            missing.push(spec);
        }
    }
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let busybox = Busybox::find()?;
    let tmp = tempfile::Builder::new()
        .prefix("kube-lite-images-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let mut names = Vec::new();
    for spec in &missing {
        let image = build(spec, &busybox)?;
        let file: String = spec
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let archive = tmp.path().join(format!("{file}.tar"));
        write_archive(&image, &archive)?;
        import(socket, &archive).await?;
        names.push(spec.name.clone());
    }
    wait_for_images(&client, &names, Duration::from_secs(30)).await?;
    tracing::info!(?names, socket = %socket.display(), "imported the built-in images");
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn fake_busybox(dir: &Path) -> Busybox {
        let path = dir.join("busybox");
        std::fs::write(&path, b"not really busybox").unwrap();
        Busybox {
            path,
            applets: ["sh", "sleep", "httpd", "cat", "hostname", "wget", "["]
                .map(String::from)
                .to_vec(),
        }
    }

    fn read_tar(bytes: &[u8]) -> BTreeMap<String, (tar::EntryType, u32, Vec<u8>, String)> {
        let mut a = tar::Archive::new(bytes);
        let mut out = BTreeMap::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let kind = e.header().entry_type();
            let mode = e.header().mode().unwrap();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.insert(path, (kind, mode, data, link));
        }
        out
    }

    #[test]
    fn names_normalize_like_containerd() {
        let n = |s: &str| normalize_name(s).unwrap();
        assert_eq!(n("kube-lite/web:1"), "docker.io/kube-lite/web:1");
        assert_eq!(n("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            n("docker.io/library/busybox:1.36"),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(n("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(n("quay.io/a/b:v2"), "quay.io/a/b:v2");
        assert_eq!(n("a/b@sha256:0123"), "docker.io/a/b@sha256:0123");
        assert!(normalize_name("").is_err());
        assert!(normalize_name("Upper/case").is_err());
        assert!(normalize_name("a/b:bad tag").is_err());
    }

    #[test]
    fn the_layer_holds_busybox_links_and_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let bb = fake_busybox(dir.path());
        let spec = web_image();
        let layer = build_layer(&spec, b"BB", &bb.applets).unwrap();
        let t = read_tar(&layer);
        assert_eq!(t["bin/busybox"].0, tar::EntryType::Regular);
        assert_eq!(t["bin/busybox"].2, b"BB");
        assert_eq!(t["bin/busybox"].1, 0o755);
        for a in ["sh", "sleep", "httpd", "["] {
            let e = &t[&format!("bin/{a}")];
            assert_eq!(e.0, tar::EntryType::Symlink, "{a}");
            assert_eq!(e.3, "busybox");
        }
        assert_eq!(t["usr/bin/env"].3, "/bin/busybox");
        assert_eq!(t["tmp/"].0, tar::EntryType::Directory);
        assert_eq!(t["tmp/"].1, 0o1777);
        assert!(String::from_utf8_lossy(&t["etc/passwd"].2).starts_with("root:x:0:0:"));
        assert!(String::from_utf8_lossy(&t["etc/group"].2).starts_with("root:x:0:"));
        assert_eq!(t["www/"].0, tar::EntryType::Directory);
        let start = &t["bin/web-start"];
        assert_eq!(start.1, 0o755);
        assert!(String::from_utf8_lossy(&start.2).contains("Hello from"));
        // Deterministic: same input, same bytes.
        assert_eq!(layer, build_layer(&spec, b"BB", &bb.applets).unwrap());
        // Paths are relative, sorted, directories before their contents.
        let paths: Vec<&String> = t.keys().collect();
        assert!(paths.iter().all(|p| !p.starts_with('/')));
        let bad = ImageSpec {
            files: vec![ImageFile {
                path: "/../etc/x".into(),
                contents: vec![],
                mode: 0o644,
            }],
            ..pause_image()
        };
        assert!(build_layer(&bad, b"BB", &bb.applets).is_err());
    }

    #[test]
    fn the_archive_is_an_oci_layout_with_consistent_digests() {
        let dir = tempfile::tempdir().unwrap();
        let bb = fake_busybox(dir.path());
        let image = build(&web_image(), &bb).unwrap();
        assert_eq!(image.name, "docker.io/kube-lite/web:1");
        let out = dir.path().join("web.tar");
        write_archive(&image, &out).unwrap();
        let t = read_tar(&std::fs::read(&out).unwrap());

        let layout: serde_json::Value = serde_json::from_slice(&t["oci-layout"].2).unwrap();
        assert_eq!(layout["imageLayoutVersion"], "1.0.0");
        // Every blob is stored under its own digest.
        let blobs: Vec<&String> = t
            .keys()
            .filter(|k| k.starts_with("blobs/sha256/") && !k.ends_with('/'))
            .collect();
        assert_eq!(blobs.len(), 3);
        for b in &blobs {
            assert_eq!(
                sha256_digest(&t[*b].2),
                format!("sha256:{}", b.trim_start_matches("blobs/sha256/"))
            );
        }
        let blob = |d: &str| &t[&format!("blobs/sha256/{}", d.trim_start_matches("sha256:"))].2;

        let index: serde_json::Value = serde_json::from_slice(&t["index.json"].2).unwrap();
        let m = &index["manifests"][0];
        assert_eq!(
            m["annotations"]["io.containerd.image.name"],
            "docker.io/kube-lite/web:1"
        );
        assert_eq!(m["annotations"]["org.opencontainers.image.ref.name"], "1");
        let md = m["digest"].as_str().unwrap();
        assert_eq!(m["size"].as_u64().unwrap() as usize, blob(md).len());
        let manifest: serde_json::Value = serde_json::from_slice(blob(md)).unwrap();
        assert_eq!(manifest["mediaType"], MEDIA_MANIFEST);
        let cd = manifest["config"]["digest"].as_str().unwrap();
        assert_eq!(
            manifest["config"]["size"].as_u64().unwrap() as usize,
            blob(cd).len()
        );
        let ld = manifest["layers"][0]["digest"].as_str().unwrap();
        assert_eq!(
            manifest["layers"][0]["size"].as_u64().unwrap() as usize,
            blob(ld).len()
        );
        assert_eq!(manifest["layers"][0]["mediaType"], MEDIA_LAYER);

        let config: serde_json::Value = serde_json::from_slice(blob(cd)).unwrap();
        assert_eq!(config["os"], "linux");
        assert_eq!(
            config["rootfs"]["diff_ids"][0], ld,
            "uncompressed: diff_id = layer digest"
        );
        assert_eq!(config["config"]["Entrypoint"], json!(["/bin/web-start"]));
        assert_eq!(
            config["config"]["Cmd"],
            json!(["httpd", "-f", "-vv", "-p", "80", "-h", "/www"])
        );
        assert_eq!(config["config"]["Env"][0], DEFAULT_PATH);
        assert_eq!(config["config"]["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(config["config"]["WorkingDir"], "/www");
        assert_eq!(image.id(), cd);

        // The Docker `manifest.json` points at the same blobs.
        let docker: serde_json::Value = serde_json::from_slice(&t["manifest.json"].2).unwrap();
        assert_eq!(docker[0]["RepoTags"], json!(["docker.io/kube-lite/web:1"]));
        assert_eq!(
            docker[0]["Config"],
            format!("blobs/sha256/{}", cd.trim_start_matches("sha256:"))
        );
        assert_eq!(
            docker[0]["Layers"][0],
            format!("blobs/sha256/{}", ld.trim_start_matches("sha256:"))
        );
    }

    #[test]
    fn the_pause_image_runs_a_trap() {
        let dir = tempfile::tempdir().unwrap();
        let image = build(&pause_image(), &fake_busybox(dir.path())).unwrap();
        let config: serde_json::Value = serde_json::from_slice(&image.config).unwrap();
        let ep = config["config"]["Entrypoint"].as_array().unwrap();
        assert_eq!(ep[0], "/bin/sh");
        assert!(ep[2].as_str().unwrap().contains("trap 'exit 0' TERM INT"));
        assert!(config["config"].get("Cmd").is_none());
    }

    fn elf64(interp: bool) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 2 * 56];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        b[64..68].copy_from_slice(&6u32.to_le_bytes()); // PT_PHDR
        b[120..124].copy_from_slice(&(if interp { 3u32 } else { 1 }).to_le_bytes());
        b
    }

    #[test]
    fn static_elf_detection() {
        assert_eq!(is_static_elf(&elf64(false)), Ok(true));
        assert_eq!(is_static_elf(&elf64(true)), Ok(false));
        assert!(is_static_elf(b"#!/bin/sh\necho hi\n").is_err());
        let mut truncated = elf64(true);
        truncated.truncate(100);
        assert!(is_static_elf(&truncated).is_err());
        // This test binary itself is dynamically linked (Rust's default on Linux gnu).
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
            assert_eq!(is_static_elf(&me), Ok(false));
        }
    }
}
