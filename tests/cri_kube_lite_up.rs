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
        let body = wait_for(&format!("{url} to answer"), DEFAULT_TIMEOUT, || {
            testkit::http_get(&url)
        })
        .await;
        assert_eq!(body.trim(), format!("Hello from {}", p.metadata.name));
    }

    // A pod on one node reaches a pod on the other by its IP (no NAT between pod IPs).
    let on = |n: &str| {
        pods.iter()
            .find(|p| p.spec.node_name == n)
            .expect("a pod on each node")
    };
    let (from, to) = (on("worker-1"), on("worker-2"));
    let script = format!(
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {} 80",
        pod_ip(to)
    );
    let (code, out, err) = run_cli(
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
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("Hello from {}", to.metadata.name)),
        "{out}{err}"
    );

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
