//! `kube-lite up --runtime cri`: one private containerd per node under the data dir, and the
//! Deployment from the Kubernetes docs (image and port only, no command) running unchanged —
//! three replicas answering HTTP on their own pod IPs across two nodes; deleting it leaves
//! nothing in either containerd; Ctrl-C stops the containerds with the cluster.
//!
//! Needs root, containerd, runc, the CNI plugins and a static busybox; without them it prints
//! why and passes, unless `KUBE_LITE_REQUIRE_CRI=1` (CI) makes that a failure.

use std::time::Duration;

use api::core::Pod;
use client::{Api, ListParams};
use testkit::{DEFAULT_TIMEOUT, Proc, free_port, run_cli, wait_for};

fn manifest() -> String {
    format!(
        "{}/examples/cri/nginx-deployment.yaml",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn pod_ip(p: &Pod) -> String {
    p.status
        .as_ref()
        .map(|s| s.pod_ip.clone())
        .unwrap_or_default()
}

/// The host's addresses, routes and nftables tables, for a failure message.
fn host_network() -> String {
    let mut out = String::new();
    for args in [
        &["ip", "-br", "addr"][..],
        &["ip", "route"][..],
        &["nft", "list", "tables"][..],
    ] {
        let o = std::process::Command::new(args[0])
            .args(&args[1..])
            .output();
        out.push_str(&format!("$ {}\n", args.join(" ")));
        if let Ok(o) = o {
            out.push_str(&String::from_utf8_lossy(&o.stdout));
            out.push_str(&String::from_utf8_lossy(&o.stderr));
        }
    }
    out
}

/// The containerd processes started for a data dir (`containerd --config <data>/containerd/…`).
fn containerds_of(data: &std::path::Path) -> usize {
    let want = data.join("containerd").display().to_string();
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                        let text = String::from_utf8_lossy(&c);
                        let argv0 = text.split('\0').next().unwrap_or_default();
                        argv0.ends_with("containerd") && text.contains(&want)
                    })
                })
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_the_cri_runtime_runs_the_docs_deployment_unchanged() {
    if !testkit::cri::available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("cluster");
    let port = free_port();
    let server = format!("http://127.0.0.1:{port}");
    let mut cluster = Proc::start(
        "kube-lite",
        "kube-lite-up-cri",
        &[
            "up".into(),
            "--runtime".into(),
            "cri".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--api-port".into(),
            port.to_string(),
            "--nodes".into(),
            "2".into(),
        ],
        dir.path(),
        &[],
    );
    let client = client::Client::new(&server, "e2e").expect("client");
    let nodes: Api<api::Node> = Api::all(client.clone());
    wait_for("two Ready CRI nodes", DEFAULT_TIMEOUT, || async {
        let l = nodes.list(&ListParams::default()).await.ok()?;
        let ready = l
            .items
            .iter()
            .filter(|n| {
                n.is_ready()
                    && n.status.as_ref().is_some_and(|s| {
                        s.node_info.as_ref().is_some_and(|i| {
                            i.container_runtime_version.starts_with("containerd://")
                        })
                    })
            })
            .count();
        (ready == 2).then_some(())
    })
    .await;
    assert_eq!(containerds_of(&data), 2, "one containerd per node");
    // Each node a range of its own (one subnet on two bridges would split the host's routes).
    let cidrs: Vec<String> = nodes
        .list(&ListParams::default())
        .await
        .expect("nodes")
        .items
        .into_iter()
        .map(|n| n.spec.pod_cidr)
        .collect();
    assert!(
        cidrs.len() == 2 && cidrs[0] != cidrs[1] && cidrs.iter().all(|c| c.starts_with("10.244.")),
        "{cidrs:?}"
    );
    // Each node's range comes from node IPAM, and describe says what kind of network it is.
    let (code, out, err) = run_cli(
        "kubectl-lite",
        &["--server", &server, "describe", "node", "worker-1"],
        &[],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("PodCIDR:") && out.contains("10.244."), "{out}");
    assert!(
        out.contains("Pod Network:") && out.contains("CNI bridge kl-worker-1"),
        "{out}"
    );

    let kc = data.join("kubeconfig").display().to_string();
    let (code, out, err) = run_cli(
        "kubectl-lite",
        &["--kubeconfig", &kc, "apply", "-f", &manifest()],
        &[],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pods = wait_for(
        "3 nginx-deployment pods Running",
        DEFAULT_TIMEOUT,
        || async {
            let l = api
                .list(&ListParams::default().labels("app=nginx"))
                .await
                .ok()?;
            let running: Vec<Pod> = l
                .items
                .into_iter()
                .filter(|p| p.phase() == "Running" && !pod_ip(p).is_empty())
                .collect();
            (running.len() == 3).then_some(running)
        },
    )
    .await;
    let mut nodes_used: Vec<String> = pods.iter().map(|p| p.spec.node_name.clone()).collect();
    nodes_used.sort();
    nodes_used.dedup();
    assert_eq!(
        nodes_used.len(),
        2,
        "spread over both nodes: {nodes_used:?}"
    );
    for p in &pods {
        let ip = pod_ip(p);
        assert!(ip.starts_with("10.244."), "{ip}");
        let url = format!("http://{ip}/");
        let deadline = tokio::time::Instant::now() + DEFAULT_TIMEOUT;
        let body = loop {
            if let Some(b) = testkit::http_get(&url).await {
                break b;
            }
            if tokio::time::Instant::now() >= deadline {
                let now = api.get(&p.metadata.name).await.ok();
                panic!(
                    "{url} ({}) did not answer; the pod now: {:?}\n{}\n{}",
                    p.metadata.name,
                    now.as_ref().and_then(|p| p.status.as_ref()),
                    host_network(),
                    cluster.log_tail(150)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(body.trim(), format!("Hello from {}", p.metadata.name));
    }

    // A pod on one node reaches a pod on the other by its IP (no NAT between pod IPs).
    let on = |n: &str| {
        pods.iter()
            .find(|p| p.spec.node_name == n)
            .expect("a pod on each node")
    };
    let (from, to) = (on("worker-1"), on("worker-2"));
    let in_pod = |script: String| {
        run_cli(
            "kubectl-lite",
            &[
                "--kubeconfig",
                &kc,
                "exec",
                &from.metadata.name,
                "--",
                "sh",
                "-c",
                &script,
            ],
            &[],
            None,
        )
    };
    let script = format!(
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {} 80",
        pod_ip(to)
    );
    let (code, out, err) = in_pod(script);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("Hello from {}", to.metadata.name)),
        "{out}{err}"
    );

    // A Service (kube-proxy-lite's nftables rules): the ClusterIP from the host and from a
    // pod, the node port from the host's address, spread over the three pods.
    let (code, out, err) = run_cli(
        "kubectl-lite",
        &[
            "--kubeconfig",
            &kc,
            "expose",
            "deployment",
            "nginx-deployment",
            "--port",
            "80",
            "--type",
            "NodePort",
        ],
        &[],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let svcs: Api<api::Service> = Api::namespaced(client.clone(), "default");
    let svc = svcs.get("nginx-deployment").await.expect("service");
    let vip = svc.spec.cluster_ip.clone();
    let node_port = svc.spec.ports[0].node_port;
    let url = format!("http://{vip}/");
    wait_for("the ClusterIP to answer", DEFAULT_TIMEOUT, || {
        testkit::http_get(&url)
    })
    .await;
    let names: Vec<String> = pods.iter().map(|p| p.metadata.name.clone()).collect();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http");
    for _ in 0..3000 {
        let body = http
            .get(&url)
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("body");
        let name = body.trim().trim_start_matches("Hello from ").to_string();
        assert!(names.contains(&name), "{body}");
        *counts.entry(name).or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    for (name, n) in &counts {
        assert!(
            (850..=1150).contains(n),
            "{name} got {n} of 3000 requests (not within ±15% of 1000): {counts:?}"
        );
    }
    eprintln!("load balancing over 3 endpoints, 3000 requests: {counts:?}");
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {vip} 80");
    let (code, out, err) = in_pod(script);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Hello from "), "{out}");

    // Cluster DNS: the pod's resolv.conf names the kube-dns ClusterIP (kube-dns-lite behind
    // it), the Service's name resolves to its ClusterIP — the short name through the search
    // path too — and the pod reaches the Service by name. (The image's busybox is linked
    // statically with glibc, whose getaddrinfo cannot work without its shared libraries, so
    // the name goes through busybox's own resolver, `nslookup`.)
    let (_, out, err) = in_pod("cat /etc/resolv.conf".into());
    assert!(
        out.contains("nameserver 10.96.0.10") && out.contains("search default.svc.cluster.local"),
        "{out}{err}"
    );
    let fqdn = "nginx-deployment.default.svc.cluster.local";
    let (code, out, err) = in_pod(format!("nslookup {fqdn}"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("Address: {vip}")), "{out}{err}");
    let (_, out, err) = in_pod("nslookup nginx-deployment".into());
    assert!(
        out.contains(&format!("Name:\t{fqdn}")) && out.contains(&format!("Address: {vip}")),
        "{out}{err}"
    );
    let (code, out, err) = in_pod(format!(
        "ip=$(nslookup {fqdn} | sed -n 's/^Address: //p' | tail -1); \
         printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 \"$ip\" 80"
    ));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Hello from "), "{out}{err}");
    let host_ip = std::process::Command::new("ip")
        .args(["-4", "-o", "route", "get", "1.1.1.1"])
        .output()
        .ok()
        .and_then(|o| {
            let s = String::from_utf8_lossy(&o.stdout).into_owned();
            let mut words = s.split_whitespace();
            words.find(|w| *w == "src")?;
            words.next().map(str::to_string)
        })
        .expect("the host's address");
    let np_url = format!("http://{host_ip}:{node_port}/");
    let body = wait_for("the node port to answer", DEFAULT_TIMEOUT, || {
        testkit::http_get(&np_url)
    })
    .await;
    assert!(body.starts_with("Hello from "), "{body}");

    // No endpoints left: the ClusterIP refuses connections at once (a reject rule), it does
    // not leave them hanging.
    let (code, out, err) = run_cli(
        "kubectl-lite",
        &[
            "--kubeconfig",
            &kc,
            "scale",
            "deployment",
            "nginx-deployment",
            "--replicas",
            "0",
        ],
        &[],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let vip_port: std::net::SocketAddr = format!("{vip}:80").parse().expect("address");
    wait_for(
        "connections to the ClusterIP refused",
        DEFAULT_TIMEOUT,
        || async {
            match tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::TcpStream::connect(vip_port),
            )
            .await
            {
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(()),
                _ => None,
            }
        },
    )
    .await;
    let (code, out, err) = run_cli(
        "kubectl-lite",
        &[
            "--kubeconfig",
            &kc,
            "scale",
            "deployment",
            "nginx-deployment",
            "--replicas",
            "3",
        ],
        &[],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");

    // Deleted: every container and sandbox goes from both containerds.
    let (code, out, err) = run_cli(
        "kubectl-lite",
        &["--kubeconfig", &kc, "delete", "-f", &manifest()],
        &[],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let sockets: Vec<std::path::PathBuf> = ["worker-1", "worker-2"]
        .iter()
        .map(|n| cri::containerd::recorded_socket(&data.join("containerd").join(n)))
        .collect();
    wait_for("both runtimes to be empty", DEFAULT_TIMEOUT, || async {
        for s in &sockets {
            let c = cri::Client::new(&format!("unix://{}", s.display())).ok()?;
            let n = c
                .runtime()
                .list_pod_sandbox(c.req(cri::v1::ListPodSandboxRequest { filter: None }))
                .await
                .ok()?
                .into_inner()
                .items
                .len();
            if n != 0 {
                return None;
            }
        }
        Some(())
    })
    .await;

    // Ctrl-C: the cluster stops, and the containerds with it.
    assert!(
        cluster.stop_within(Duration::from_secs(60)),
        "kube-lite did not stop:\n{}",
        cluster.log_tail(30)
    );
    assert_eq!(
        containerds_of(&data),
        0,
        "containerd stopped with the cluster"
    );
    for n in ["worker-1", "worker-2"] {
        let _ = cri::cni::delete_link(&cri::cni::bridge_name(n));
    }
}
