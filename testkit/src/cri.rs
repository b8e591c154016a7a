//! A CRI node for a test: a private containerd in a temporary directory with the built-in
//! images (pause, web) imported, a free pod subnet and a bridge name of its own, and a clean-up
//! that leaves nothing behind (pods, containerd and its shims, mounts, the bridge) — also when
//! the test fails half-way.
//!
//! The tests that use it need root, containerd, runc, ctr, the CNI plugins and a static
//! busybox. Without them [`CriNode::start`] prints `skipping: <reason>` and returns `None`;
//! with `KUBE_LITE_REQUIRE_CRI=1` (CI sets it) it panics instead, so a CI machine that should
//! run them never skips them silently.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cri::containerd::{Config, Containerd};
use cri::{Client, v1};

/// Whether this machine can run CRI tests; `Err`: why not.
pub fn prerequisites() -> Result<(), String> {
    cri::containerd::preflight()?;
    cri::image::Busybox::find().map(|_| ())
}

/// `true` if CRI tests can run; otherwise prints why and returns `false` (or panics when
/// `KUBE_LITE_REQUIRE_CRI` is set).
pub fn available() -> bool {
    match prerequisites() {
        Ok(()) => true,
        Err(e) if std::env::var_os("KUBE_LITE_REQUIRE_CRI").is_some() => {
            panic!("KUBE_LITE_REQUIRE_CRI is set but the CRI tests cannot run: {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            false
        }
    }
}

/// A private containerd for one test node.
pub struct CriNode {
    containerd: Option<Containerd>,
    pub client: Client,
    /// The node's name (its bridge is derived from it by kubelet-lite).
    pub name: String,
    /// A pod CIDR no route on this machine overlaps.
    pub subnet: String,
    dir: Option<tempfile::TempDir>,
}

impl CriNode {
    /// Start containerd for node `name` and import the built-in images. `None` (after printing
    /// why) when this machine cannot run CRI tests.
    pub async fn start(name: &str) -> Option<CriNode> {
        if !available() {
            return None;
        }
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = tempfile::Builder::new()
            .prefix("kl-cri-")
            .tempdir()
            .expect("tempdir");
        let containerd = Containerd::start(Config::new(dir.path().join("containerd")))
            .await
            .unwrap_or_else(|e| panic!("cannot start containerd: {e}"));
        let client = containerd.client().expect("client");
        cri::image::ensure_builtin_images(containerd.socket())
            .await
            .unwrap_or_else(|e| panic!("cannot import the built-in images: {e}"));
        let start = ((std::process::id() as u64 * 7 + seq as u64 * 37) % 254 + 1) as u8;
        let subnet = next_subnet(start);
        Some(CriNode {
            containerd: Some(containerd),
            client,
            name: name.to_string(),
            subnet,
            dir: Some(dir),
        })
    }

    fn containerd(&self) -> &Containerd {
        self.containerd.as_ref().expect("containerd runs")
    }

    pub fn endpoint(&self) -> String {
        self.containerd().endpoint()
    }

    pub fn socket(&self) -> PathBuf {
        self.containerd().socket().to_path_buf()
    }

    pub fn cni_conf_dir(&self) -> PathBuf {
        self.containerd().cni_conf_dir()
    }

    /// A directory for the test's own files (the kubelet's root, logs), removed with the node.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("dir").path()
    }

    pub fn log_tail(&self, n: usize) -> String {
        self.containerd().log_tail(n)
    }

    /// kubelet-lite's flags for running this node with the CRI runtime.
    pub fn kubelet_args(&self) -> Vec<String> {
        vec![
            "--runtime".into(),
            "cri".into(),
            "--container-runtime-endpoint".into(),
            self.endpoint(),
            "--cni-conf-dir".into(),
            self.cni_conf_dir().display().to_string(),
            "--pod-cidr".into(),
            self.subnet.clone(),
        ]
    }

    /// Every container the runtime holds (`ctr -n k8s.io containers list`, through CRI).
    pub async fn containers(&self) -> Vec<v1::Container> {
        self.client
            .runtime()
            .list_containers(self.client.req(v1::ListContainersRequest { filter: None }))
            .await
            .expect("list containers")
            .into_inner()
            .containers
    }

    /// Every pod sandbox the runtime holds.
    pub async fn sandboxes(&self) -> Vec<v1::PodSandbox> {
        self.client
            .runtime()
            .list_pod_sandbox(self.client.req(v1::ListPodSandboxRequest { filter: None }))
            .await
            .expect("list sandboxes")
            .into_inner()
            .items
    }

    /// Stop containerd (its pods keep running under their shims) and start it again.
    pub async fn restart_containerd(&mut self) {
        let old = self.containerd.take().expect("containerd runs");
        let dir = old.dir().to_path_buf();
        old.stop().await.expect("stop containerd");
        let new = Containerd::start(Config::new(&dir))
            .await
            .unwrap_or_else(|e| panic!("cannot restart containerd: {e}"));
        self.client = new.client().expect("client");
        self.containerd = Some(new);
    }

    /// Stop containerd without starting it again (see [`CriNode::start_containerd`]).
    pub async fn stop_containerd(&mut self) -> PathBuf {
        let old = self.containerd.take().expect("containerd runs");
        let dir = old.dir().to_path_buf();
        old.stop().await.expect("stop containerd");
        dir
    }

    pub async fn start_containerd(&mut self, dir: &Path) {
        let new = Containerd::start(Config::new(dir))
            .await
            .unwrap_or_else(|e| panic!("cannot start containerd: {e}"));
        self.client = new.client().expect("client");
        self.containerd = Some(new);
    }

    /// Remove whatever pods are left, stop containerd, unmount, delete the bridge, remove the
    /// directory. Returns how many pod sandboxes were still there.
    pub async fn teardown(mut self) -> usize {
        let left = match &self.containerd {
            Some(_) => cri::containerd::cleanup_all_pods(&self.client)
                .await
                .unwrap_or(0),
            None => 0,
        };
        if let Some(c) = self.containerd.take() {
            let dir = c.dir().to_path_buf();
            let _ = c.stop().await;
            let _ = cri::containerd::unmount_all_under(&dir);
        }
        let _ = cri::cni::delete_link(&cri::cni::bridge_name(&self.name));
        if let Some(d) = self.dir.take() {
            let _ = d.close();
        }
        left
    }
}

impl Drop for CriNode {
    fn drop(&mut self) {
        // Only after a failure: teardown takes everything on success.
        if let Some(c) = self.containerd.take() {
            let client = self.client.clone();
            let cleanup = async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(60),
                    cri::containerd::cleanup_all_pods(&client),
                )
                .await;
            };
            // A thread of its own: this may run inside or outside a runtime, or while one
            // is shutting down.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(cleanup);
                }
            })
            .join();
            let dir = c.dir().to_path_buf();
            drop(c);
            let _ = cri::containerd::unmount_all_under(&dir);
        }
        let _ = cri::cni::delete_link(&cri::cni::bridge_name(&self.name));
    }
}

/// A free `10.88.<n>.0/24`, never the same twice in this process.
fn next_subnet(start: u8) -> String {
    static GIVEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let mut s = start;
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let subnet = cri::cni::free_subnet(s).expect("no free 10.88.x.0/24");
        if !given.contains(&subnet) {
            given.push(subnet.clone());
            return subnet;
        }
        s = s.wrapping_add(1).max(1);
        assert!(Instant::now() < deadline, "no free subnet");
    }
}
