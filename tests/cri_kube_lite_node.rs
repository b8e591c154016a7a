//! `kube-lite node`: one worker (a private containerd and a CRI kubelet) joining a control
//! plane that runs node IPAM: it gets its pod range from the controller-manager, turns Ready,
//! runs an image-only pod on an address of that range, and on SIGTERM stops its pods and its
//! containerd.
//!
//! Needs root, containerd, runc, the CNI plugins and a static busybox; without them it prints
//! why and passes, unless `KUBE_LITE_REQUIRE_CRI=1` (CI) makes that a failure.

use std::time::Duration;

use api::core::{Node, Pod};
use client::Api;
use testkit::{ControlPlane, DEFAULT_TIMEOUT, Proc, free_port, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_gets_its_range_from_node_ipam_and_runs_pods_in_it() {
    if !testkit::cri::available() {
        return;
    }
    let cp = ControlPlane::start().await;
    let _cm = cp.start_component(
        "controller-manager",
        "controller-manager",
        &[
            "--leader-elect=false".into(),
            "--allocate-node-cidrs".into(),
            "--cluster-cidr".into(),
            "10.251.0.0/16".into(),
        ],
    );
    let data = cp.dir.path().join("node");
    let mut node = Proc::start(
        "kube-lite",
        "kube-lite-node",
        &[
            "node".into(),
            "--server".into(),
            cp.server.clone(),
            "--node-name".into(),
            "kl-node-test".into(),
            "--address".into(),
            "127.0.0.1".into(),
            "--port".into(),
            free_port().to_string(),
            "--data-dir".into(),
            data.display().to_string(),
        ],
        cp.dir.path(),
        &[],
    );
    let client = cp.client();
    let nodes: Api<Node> = Api::all(client.clone());
    let n = wait_for(
        "the node Ready with a pod CIDR",
        DEFAULT_TIMEOUT,
        || async {
            let n = nodes.get("kl-node-test").await.ok()?;
            (n.is_ready() && !n.spec.pod_cidr.is_empty()).then_some(n)
        },
    )
    .await;
    assert_eq!(n.spec.pod_cidr, "10.251.0.0/24");

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {"nodeName": "kl-node-test", "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "web", "image": "kube-lite/web:1"}]}
    }))
    .expect("pod");
    pods.create(&pod).await.expect("create");
    let ip = wait_for("the pod Running", DEFAULT_TIMEOUT, || async {
        let p = pods.get("web").await.ok()?;
        let ip = p.status.as_ref()?.pod_ip.clone();
        (p.phase() == "Running" && !ip.is_empty()).then_some(ip)
    })
    .await;
    assert!(ip.starts_with("10.251.0."), "{ip}");
    let url = format!("http://{ip}/");
    let body = wait_for("the pod to answer", DEFAULT_TIMEOUT, || {
        testkit::http_get(&url)
    })
    .await;
    assert_eq!(body.trim(), "Hello from web");

    // SIGTERM: the node stops its pods and its containerd.
    assert!(
        node.stop_within(Duration::from_secs(60)),
        "kube-lite node did not stop:\n{}",
        node.log_tail(30)
    );
    assert!(
        testkit::http_get(&format!("http://{ip}/")).await.is_none(),
        "the pod stopped with the node"
    );
    let socket = cri::containerd::recorded_socket(&data.join("containerd"));
    let c = cri::Client::new(&format!("unix://{}", socket.display()))
        .expect("client")
        .with_timeout(Duration::from_secs(2));
    assert!(c.version().await.is_err(), "containerd stopped");
    let _ = cri::cni::delete_link(&cri::cni::bridge_name("kl-node-test"));
}
