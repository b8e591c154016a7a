//! Pods through a real private containerd: start containerd in a temporary directory, import
//! the built-in images, run a pod on a CNI bridge, serve HTTP from it, and leave nothing behind.
//!
//! They need root, containerd, runc, ctr, the CNI plugins and a static busybox; without them
//! each test prints `skipping: <reason>` and passes (set `KUBE_LITE_REQUIRE_CRI=1` to make that a
//! failure instead, as CI should on a machine that has them). Tests run side by side, also with
//! other test binaries: each has its own directory, subnet and bridge name.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cri::containerd::{Config, Containerd};
use cri::{Client, describe, v1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Whether this machine can run these tests; `false` after saying why.
fn prerequisites() -> bool {
    let r = cri::containerd::preflight().and_then(|()| {
        cri::containerd::find_in_path("ip")
            .map(|_| ())
            .ok_or_else(|| "`ip` is not in PATH (Debian: apt-get install iproute2)".to_string())
    });
    match r {
        Ok(()) => true,
        Err(e) if std::env::var_os("KUBE_LITE_REQUIRE_CRI").is_some() => {
            panic!("KUBE_LITE_REQUIRE_CRI is set but: {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            false
        }
    }
}

/// A node for one test: a containerd in a temporary directory, a bridge network, and a
/// best-effort clean-up (pods, containerd, mounts, bridge) should the test fail half-way.
struct Node {
    containerd: Option<Containerd>,
    client: Client,
    bridge: String,
    dir: Option<tempfile::TempDir>,
}

impl Node {
    /// `tag`: one letter per test, so that bridges and subnets differ between tests.
    async fn start(tag: char) -> Node {
        let dir = tempfile::Builder::new()
            .prefix("kl-cri-")
            .tempdir()
            .unwrap();
        let containerd = Containerd::start(Config::new(dir.path().join("node")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let client = containerd.client().unwrap();
        let pid = std::process::id();
        Node {
            bridge: format!("kl{tag}{pid}"),
            containerd: Some(containerd),
            client,
            dir: Some(dir),
        }
    }

    fn containerd(&self) -> &Containerd {
        self.containerd.as_ref().unwrap()
    }

    fn path(&self) -> PathBuf {
        self.containerd().dir().to_path_buf()
    }

    /// Writes a bridge conflist on a free `10.88.<n>.0/24` and waits until CRI says the
    /// network is ready. Returns the subnet.
    async fn network(&self, tag: char) -> String {
        let start = ((std::process::id() as u64 * 7 + tag as u64 * 31) % 254 + 1) as u8;
        let subnet = cri::cni::free_subnet(start).expect("no free 10.88.x.0/24");
        let net = cri::cni::BridgeNetwork {
            name: format!("kl-test-{tag}"),
            bridge: self.bridge.clone(),
            subnet: subnet.clone(),
            ipam_data_dir: Some(self.path().join("cni/ipam")),
            ip_masq: false,
        };
        net.write(&self.containerd().cni_conf_dir()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self
                .client
                .runtime()
                .status(self.client.req(v1::StatusRequest { verbose: false }))
                .await
                .unwrap()
                .into_inner();
            let ready = status.status.is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.r#type == "NetworkReady" && c.status)
            });
            if ready {
                return subnet;
            }
            assert!(
                Instant::now() < deadline,
                "CRI network not ready 20s after writing the conflist; containerd log: {}",
                self.containerd().log_tail(10)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops containerd (pods keep running under their shims) and starts it again.
    async fn restart_containerd(&mut self) {
        let old = self.containerd.take().unwrap();
        let dir = old.dir().to_path_buf();
        old.stop().await.unwrap();
        let new = Containerd::start(Config::new(&dir))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self.containerd = Some(new);
    }

    /// Everything a test must leave gone: pods, containerd (and its shims), mounts, the bridge.
    async fn teardown(mut self) {
        let removed = cri::containerd::cleanup_all_pods(&self.client)
            .await
            .unwrap();
        assert_eq!(removed, 0, "the test removed its pods itself");
        let containerd = self.containerd.take().unwrap();
        let socket = containerd.socket().to_path_buf();
        let dir = containerd.dir().to_path_buf();
        containerd.stop().await.unwrap();
        wait_until("no shim serves this containerd any more", 10, || {
            shims_of(&socket).is_empty()
        })
        .await;
        let left = cri::containerd::mounts_under(&dir);
        assert!(left.is_empty(), "mounts left under the node: {left:?}");
        cri::cni::delete_link(&self.bridge).unwrap();
        self.dir.take().unwrap().close().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Only after a failure (teardown takes everything on success).
        if let Some(c) = self.containerd.take() {
            let client = self.client.clone();
            let _ = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current()
                    .block_on(cri::containerd::cleanup_all_pods(&client))
            });
            let dir = c.dir().to_path_buf();
            drop(c);
            let _ = cri::containerd::unmount_all_under(&dir);
        }
        let _ = cri::cni::delete_link(&self.bridge);
    }
}

/// The processes whose command line names `socket` (containerd's shims: `-address SOCKET`).
fn shims_of(socket: &Path) -> Vec<u32> {
    let want = socket.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let args: Vec<String> = c
                        .split(|b| *b == 0)
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect();
                    args.first().is_some_and(|a| a.contains("containerd-shim"))
                        && args.contains(&want)
                })
                .unwrap_or(false)
        })
        .collect()
}

async fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One HTTP/1.0 GET: (status line, body).
async fn http_get(addr: &str, path: &str) -> std::io::Result<(String, String)> {
    let mut s = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
        .await??;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Ok((
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    ))
}

/// GETs until the server answers (it may still be starting), within `secs`.
async fn http_get_soon(addr: &str, path: &str, secs: u64) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match http_get(addr, path).await {
            Ok(r) => return r,
            Err(e) if Instant::now() >= deadline => panic!("GET http://{addr}{path}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn pod_config(name: &str, hostname: &str, log_dir: &Path) -> v1::PodSandboxConfig {
    v1::PodSandboxConfig {
        metadata: Some(v1::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}-{}", std::process::id()),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: hostname.into(),
        log_directory: log_dir.to_string_lossy().into_owned(),
        linux: Some(v1::LinuxPodSandboxConfig {
            security_context: Some(v1::LinuxSandboxSecurityContext {
                namespace_options: Some(v1::NamespaceOption {
                    network: v1::NamespaceMode::Pod as i32,
                    pid: v1::NamespaceMode::Container as i32,
                    ipc: v1::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_config(name: &str, image: &str, args: &[&str]) -> v1::ContainerConfig {
    v1::ContainerConfig {
        metadata: Some(v1::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(v1::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        args: args.iter().map(|a| a.to_string()).collect(),
        log_path: format!("{name}/0.log"),
        linux: Some(v1::LinuxContainerConfig::default()),
        ..Default::default()
    }
}

async fn create_and_start(
    c: &Client,
    pod: &str,
    pod_config: &v1::PodSandboxConfig,
    config: v1::ContainerConfig,
) -> String {
    let id = c
        .runtime()
        .create_container(c.req(v1::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        }))
        .await
        .unwrap_or_else(|e| panic!("CreateContainer: {}", describe(&e)))
        .into_inner()
        .container_id;
    c.runtime()
        .start_container(c.req(v1::StartContainerRequest {
            container_id: id.clone(),
        }))
        .await
        .unwrap_or_else(|e| panic!("StartContainer: {}", describe(&e)));
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_pod_serves_its_hostname_and_leaves_nothing_behind() {
    if !prerequisites() {
        return;
    }
    let node = Node::start('w').await;
    let c = node.client.clone();
    let socket = node.containerd().socket().to_path_buf();

    // Images: imported once, then found.
    let t = Instant::now();
    let imported = cri::image::ensure_builtin_images(&socket).await.unwrap();
    eprintln!(
        "ensure_builtin_images imported {imported:?} in {:?}",
        t.elapsed()
    );
    assert_eq!(
        imported,
        vec!["kube-lite/pause:1", "kube-lite/web:1", "kube-lite/web:2"]
    );
    let t = Instant::now();
    assert!(
        cri::image::ensure_builtin_images(&socket)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(t.elapsed() < Duration::from_secs(2), "fast when present");
    for name in [
        "kube-lite/web:1",
        "docker.io/kube-lite/web:1",
        "kube-lite/pause:1",
    ] {
        let st = c
            .image()
            .image_status(c.req(v1::ImageStatusRequest {
                image: Some(v1::ImageSpec {
                    image: name.into(),
                    ..Default::default()
                }),
                verbose: false,
            }))
            .await
            .unwrap()
            .into_inner();
        let image = st
            .image
            .unwrap_or_else(|| panic!("CRI has no image {name}"));
        assert!(
            image
                .repo_tags
                .iter()
                .any(|t| t.starts_with("docker.io/kube-lite/")),
            "{:?}",
            image.repo_tags
        );
    }

    let subnet = node.network('w').await;
    let log_dir = node.path().join("pods/web");
    let hostname = format!("web-{}", std::process::id());
    let pod_config = pod_config("web", &hostname, &log_dir);
    let t = Instant::now();
    let pod = c
        .runtime()
        .run_pod_sandbox(c.req(v1::RunPodSandboxRequest {
            config: Some(pod_config.clone()),
            runtime_handler: String::new(),
        }))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "RunPodSandbox: {}; containerd log: {}",
                describe(&e),
                node.containerd().log_tail(10)
            )
        })
        .into_inner()
        .pod_sandbox_id;
    eprintln!("RunPodSandbox took {:?}", t.elapsed());

    let status = c
        .runtime()
        .pod_sandbox_status(c.req(v1::PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: true,
        }))
        .await
        .unwrap()
        .into_inner();
    let ip = status
        .status
        .as_ref()
        .and_then(|s| s.network.as_ref())
        .map(|n| n.ip.clone())
        .unwrap_or_default();
    let (net, _) = cri::cni::parse_cidr(&subnet).unwrap();
    let ip_addr: std::net::Ipv4Addr = ip.parse().unwrap_or_else(|_| panic!("pod IP {ip:?}"));
    assert!(
        cri::cni::overlaps((ip_addr, 32), (net, 24)),
        "pod IP {ip} is not in {subnet}"
    );
    // The network namespace containerd made for the sandbox (gone once it is removed).
    let netns = status
        .info
        .get("info")
        .and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok())
        .and_then(|i| {
            i["runtimeSpec"]["linux"]["namespaces"]
                .as_array()?
                .iter()
                .find(|n| n["type"] == "network")?["path"]
                .as_str()
                .map(PathBuf::from)
        });
    eprintln!("pod IP {ip}, netns {netns:?}");
    if let Some(ns) = &netns {
        assert!(ns.exists(), "{}", ns.display());
    }

    // The web server names the pod.
    let t = Instant::now();
    let web = create_and_start(
        &c,
        &pod,
        &pod_config,
        container_config("web", "kube-lite/web:1", &[]),
    )
    .await;
    eprintln!("CreateContainer+StartContainer took {:?}", t.elapsed());
    let (status_line, body) = http_get_soon(&format!("{ip}:80"), "/", 10).await;
    assert!(status_line.contains("200"), "{status_line}");
    assert!(
        body.lines().any(|l| l == format!("Hello from {hostname}")),
        "body: {body:?}"
    );
    // The request is in the container's CRI log (`<time> stderr F <client>: url:/`).
    let log = log_dir.join("web/0.log");
    wait_until("the request is logged", 10, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("url:/") && l.contains(" stderr "))
    })
    .await;

    // A read-only "ConfigMap" at /www is served as it is.
    let cm = node.path().join("configmap");
    std::fs::create_dir_all(&cm).unwrap();
    std::fs::write(cm.join("index.html"), "from a configmap\n").unwrap();
    let mut cfg = container_config(
        "cm",
        "kube-lite/web:1",
        &["httpd", "-f", "-vv", "-p", "8080", "-h", "/www"],
    );
    cfg.mounts.push(v1::Mount {
        container_path: "/www".into(),
        host_path: cm.to_string_lossy().into_owned(),
        readonly: true,
        ..Default::default()
    });
    create_and_start(&c, &pod, &pod_config, cfg).await;
    let (status_line, body) = http_get_soon(&format!("{ip}:8080"), "/", 10).await;
    assert!(status_line.contains("200"), "{status_line}");
    assert_eq!(body, "from a configmap\n");

    // A read-only /www without an index: the server still starts (and says why there is none).
    let empty = node.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let mut cfg = container_config(
        "ro",
        "kube-lite/web:1",
        &["httpd", "-f", "-vv", "-p", "8081", "-h", "/www"],
    );
    cfg.mounts.push(v1::Mount {
        container_path: "/www".into(),
        host_path: empty.to_string_lossy().into_owned(),
        readonly: true,
        ..Default::default()
    });
    create_and_start(&c, &pod, &pod_config, cfg).await;
    let (status_line, _) = http_get_soon(&format!("{ip}:8081"), "/", 10).await;
    assert!(status_line.contains("404"), "{status_line}");
    assert!(
        std::fs::read_to_string(log_dir.join("ro/0.log"))
            .unwrap()
            .contains("read-only")
    );

    // The pause image exits at once on SIGTERM (with status 0, from its trap), as PID 1.
    let pause = create_and_start(
        &c,
        &pod,
        &pod_config,
        container_config("pause", "kube-lite/pause:1", &[]),
    )
    .await;
    let t = Instant::now();
    c.runtime()
        .stop_container(c.req(v1::StopContainerRequest {
            container_id: pause.clone(),
            timeout: 30,
        }))
        .await
        .unwrap();
    let stopped_in = t.elapsed();
    let st = c
        .runtime()
        .container_status(c.req(v1::ContainerStatusRequest {
            container_id: pause,
            verbose: false,
        }))
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    eprintln!(
        "pause stopped in {stopped_in:?}, exit code {}",
        st.exit_code
    );
    assert!(stopped_in < Duration::from_secs(5), "{stopped_in:?}");
    assert_eq!(st.exit_code, 0);

    // Stop and remove the pod: nothing is left.
    let t = Instant::now();
    c.runtime()
        .stop_pod_sandbox(c.req(v1::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        }))
        .await
        .unwrap();
    c.runtime()
        .remove_pod_sandbox(c.req(v1::RemovePodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        }))
        .await
        .unwrap();
    eprintln!("StopPodSandbox+RemovePodSandbox took {:?}", t.elapsed());
    let pods = c
        .runtime()
        .list_pod_sandbox(c.req(v1::ListPodSandboxRequest { filter: None }))
        .await
        .unwrap()
        .into_inner()
        .items;
    assert!(pods.is_empty(), "{pods:?}");
    let containers = c
        .runtime()
        .list_containers(c.req(v1::ListContainersRequest { filter: None }))
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert!(containers.is_empty(), "{containers:?}");
    assert!(
        c.runtime()
            .container_status(c.req(v1::ContainerStatusRequest {
                container_id: web,
                verbose: false,
            }))
            .await
            .is_err()
    );
    if let Some(ns) = &netns {
        assert!(!ns.exists(), "netns {} left behind", ns.display());
    }
    let mounts = cri::containerd::mounts_under(&node.path());
    assert!(
        mounts.is_empty(),
        "mounts left after RemovePodSandbox: {mounts:?}"
    );
    wait_until("the pod's shim exits", 10, || shims_of(&socket).is_empty()).await;
    node.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_replaces_the_containerd_an_earlier_run_left() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("kl-cri-")
        .tempdir()
        .unwrap();
    let node = dir.path().join("node");
    let first = Containerd::start(Config::new(&node)).await.unwrap();
    let first_pid = first.pid().unwrap();
    // As if the process that started it had died without stopping it.
    let second = Containerd::start(Config::new(&node)).await.unwrap();
    assert_ne!(second.pid(), Some(first_pid));
    assert_eq!(second.socket(), first.socket());
    let stat = std::fs::read_to_string(format!("/proc/{first_pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z"),
        "the first containerd still runs: {stat}"
    );
    let v = second.client().unwrap().version().await.unwrap();
    assert_eq!(v.runtime_name, "containerd");
    assert_eq!(
        std::fs::read_to_string(node.join("socket")).unwrap().trim(),
        second.socket().to_string_lossy()
    );
    assert_eq!(
        cri::containerd::recorded_socket(&std::fs::canonicalize(&node).unwrap()),
        second.socket()
    );
    drop(first); // reaps the zombie; must not touch the second one
    assert!(second.client().unwrap().version().await.is_ok());
    second.stop().await.unwrap();
    assert!(cri::containerd::mounts_under(dir.path()).is_empty());
    dir.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_node_directory_gets_a_short_socket() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("kl-cri-")
        .tempdir()
        .unwrap();
    let node = dir
        .path()
        .join("n".repeat(60))
        .join("node-with-a-rather-long-name");
    let c = Containerd::start(Config::new(&node)).await.unwrap();
    assert!(
        c.socket().starts_with(cri::containerd::SHORT_SOCKET_DIR),
        "{}",
        c.socket().display()
    );
    assert_eq!(cri::containerd::recorded_socket(c.dir()), c.socket());
    assert!(c.client().unwrap().version().await.is_ok());
    let socket = c.socket().to_path_buf();
    c.stop().await.unwrap();
    assert!(
        !socket.exists(),
        "stop removes the socket outside the node directory"
    );
    assert!(!Path::new(&format!("{}.ttrpc", socket.display())).exists());
    dir.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_outlives_a_containerd_restart() {
    if !prerequisites() {
        return;
    }
    let mut node = Node::start('r').await;
    let c = node.client.clone();
    cri::image::ensure_builtin_images(node.containerd().socket())
        .await
        .unwrap();
    node.network('r').await;
    let hostname = format!("restart-{}", std::process::id());
    let pod_config = pod_config("restart", &hostname, &node.path().join("pods/restart"));
    let pod = c
        .runtime()
        .run_pod_sandbox(c.req(v1::RunPodSandboxRequest {
            config: Some(pod_config.clone()),
            runtime_handler: String::new(),
        }))
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox: {}", describe(&e)))
        .into_inner()
        .pod_sandbox_id;
    let ip = c
        .runtime()
        .pod_sandbox_status(c.req(v1::PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: false,
        }))
        .await
        .unwrap()
        .into_inner()
        .status
        .and_then(|s| s.network)
        .map(|n| n.ip)
        .unwrap_or_default();
    let web = create_and_start(
        &c,
        &pod,
        &pod_config,
        container_config("web", "kube-lite/web:1", &[]),
    )
    .await;
    let addr = format!("{ip}:80");
    let (_, body) = http_get_soon(&addr, "/", 10).await;
    assert!(body.contains(&hostname), "{body:?}");

    let socket = node.containerd().socket().to_path_buf();
    let shims = shims_of(&socket);
    assert!(!shims.is_empty());
    let t = Instant::now();
    node.restart_containerd().await;
    eprintln!("containerd restarted in {:?}", t.elapsed());
    // The same shims, the same pod, still serving.
    assert_eq!(shims_of(&socket), shims);
    let (_, body) = http_get_soon(&addr, "/", 10).await;
    assert!(body.contains(&hostname), "{body:?}");
    let status = c
        .runtime()
        .container_status(c.req(v1::ContainerStatusRequest {
            container_id: web,
            verbose: false,
        }))
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(status.state, v1::ContainerState::ContainerRunning as i32);

    assert_eq!(
        cri::containerd::cleanup_all_pods(&c).await.unwrap(),
        1,
        "the helper removes the pod"
    );
    wait_until("the pod's shim exits", 10, || shims_of(&socket).is_empty()).await;
    node.teardown().await;
}
