//! The fake runtime at scale: one kubelet-lite process registers 100 nodes, and 1,000 pods bound
//! to them go Running and Ready with no process behind them; deleted ones go away.

use std::time::{Duration, Instant};

use api::Pod;
use api::core::Node;
use client::{Api, ListParams};
use futures::StreamExt;
use testkit::{ControlPlane, free_port, wait_for};

const NODES: usize = 100;
const PODS: usize = 1000;
const T: Duration = Duration::from_secs(240);

fn ready(conds: &[api::core::PodCondition]) -> bool {
    conds
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_fake_nodes_run_a_thousand_pods() {
    let cp = ControlPlane::start().await;
    let root = cp.dir.path().join("fake");
    let _k = cp.start_component(
        "kubelet-lite",
        "fake-nodes",
        &[
            "--runtime".into(),
            "fake".into(),
            "--fake-nodes".into(),
            NODES.to_string(),
            "--node-name".into(),
            "fake".into(),
            "--root-dir".into(),
            root.display().to_string(),
            "--port".into(),
            free_port().to_string(),
        ],
    );
    let client = cp.client();
    let nodes: Api<Node> = Api::all(client.clone());
    wait_for("100 Ready nodes", T, || async {
        let l = nodes.list(&ListParams::default()).await.ok()?;
        let n = l
            .items
            .iter()
            .filter(|n| {
                n.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            })
            .count();
        (n == NODES).then_some(())
    })
    .await;
    let node = nodes.get("fake-7").await.expect("node fake-7");
    let info = node.status.expect("status").node_info;
    assert_eq!(
        info.map(|i| i.container_runtime_version).as_deref(),
        Some("kube-lite-fake://0.1")
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let start = Instant::now();
    let mut creates = futures::stream::iter((0..PODS).map(|i| {
        let pods = pods.clone();
        async move {
            let p: Pod = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("web-{i:04}"), "labels": {"app": "web"}},
                "spec": {"nodeName": format!("fake-{}", i % NODES),
                         "containers": [{"name": "nginx", "image": "nginx:1.27"}]}
            }))
            .expect("pod");
            pods.create(&p).await
        }
    }))
    .buffer_unordered(32);
    while let Some(r) = creates.next().await {
        r.expect("create pod");
    }
    let running = wait_for("1,000 pods Running and Ready", T, || async {
        let l = pods.list(&ListParams::default()).await.ok()?;
        let n = l
            .items
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .is_some_and(|s| s.phase == "Running" && ready(&s.conditions))
            })
            .count();
        (n == PODS).then_some(l)
    })
    .await;
    eprintln!(
        "{PODS} pods on {NODES} fake nodes Running and Ready {:.1?} after the first create",
        start.elapsed()
    );
    assert!(running.items.iter().all(|p| {
        !p.status
            .as_ref()
            .map_or("", |s| s.pod_ip.as_str())
            .is_empty()
    }));

    // Deletion: the fake containers "stop" and the kubelets remove the pod objects.
    for i in 0..50 {
        pods.delete(&format!("web-{i:04}"), &Default::default())
            .await
            .expect("delete");
    }
    wait_for("50 pods gone", T, || async {
        let l = pods.list(&ListParams::default()).await.ok()?;
        (l.items.len() == PODS - 50).then_some(())
    })
    .await;
}
