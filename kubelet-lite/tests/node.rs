//! The node's side: registration, Ready, the heartbeat Lease, the kubelet's HTTP server, and
//! bad flags.

mod common;

use api::Node;
use api::coordination::Lease;
use client::Api;
use common::*;
use testkit::{ControlPlane, DEFAULT_TIMEOUT, run_cli, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_registers_ready_with_a_lease() {
    let cp = ControlPlane::start().await;
    let k = start_kubelet(
        &cp,
        "node-a",
        51,
        &[
            "--node-labels",
            "disk=ssd,zone=z1",
            "--max-pods",
            "42",
            "--register-with-taints",
            "dedicated=gpu:NoSchedule",
        ],
    );
    let client = cp.client();
    let nodes: Api<Node> = Api::all(client.clone());
    let node = wait_for(
        "node-a to be registered and Ready",
        DEFAULT_TIMEOUT,
        || async {
            let n = nodes.get_opt("node-a").await.ok()??;
            n.is_ready().then_some(n)
        },
    )
    .await;

    let taints: Vec<(&str, &str, &str)> = node
        .spec
        .taints
        .iter()
        .map(|t| (t.key.as_str(), t.value.as_str(), t.effect.as_str()))
        .collect();
    assert_eq!(taints, [("dedicated", "gpu", "NoSchedule")]);
    let labels = &node.metadata.labels;
    assert_eq!(
        labels.get("kubernetes.io/hostname").map(String::as_str),
        Some("node-a")
    );
    assert_eq!(
        labels.get("kubernetes.io/os").map(String::as_str),
        Some("linux")
    );
    assert!(labels.contains_key("kubernetes.io/arch"));
    assert_eq!(labels.get("disk").map(String::as_str), Some("ssd"));
    assert_eq!(labels.get("zone").map(String::as_str), Some("z1"));
    assert_eq!(node.spec.pod_cidr, "127.51.0.0/16");
    let status = node.status.clone().expect("status");
    assert_eq!(
        status.capacity.get("pods").map(|q| q.0.as_str()),
        Some("42")
    );
    assert!(status.capacity.contains_key("cpu") && status.capacity.contains_key("memory"));
    assert_eq!(
        status.allocatable.get("pods").map(|q| q.0.as_str()),
        Some("42")
    );
    assert_eq!(
        status
            .daemon_endpoints
            .as_ref()
            .map(|d| d.kubelet_endpoint.port),
        Some(k.port as i32)
    );
    assert!(
        status
            .addresses
            .iter()
            .any(|a| a.type_ == "InternalIP" && a.address == "127.0.0.1")
    );
    assert!(
        status
            .addresses
            .iter()
            .any(|a| a.type_ == "Hostname" && a.address == "node-a")
    );
    let info = status.node_info.expect("nodeInfo");
    assert_eq!(info.kubelet_version, "v1.37.0-kube-lite");
    assert_eq!(info.container_runtime_version, "kube-lite-process://0.1");
    assert_eq!(info.operating_system, "linux");
    let ready = node.condition("Ready").expect("Ready");
    assert_eq!(ready.reason, "KubeletReady");
    assert!(ready.last_heartbeat_time.is_some());
    for c in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert_eq!(
            node.condition(c).map(|c| c.status.as_str()),
            Some("False"),
            "{c}"
        );
    }

    // The heartbeat Lease, renewed.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let first = wait_for("the node lease", DEFAULT_TIMEOUT, || async {
        let l = leases.get_opt("node-a").await.ok()??;
        l.spec.renew_time.map(|t| (l.clone(), t))
    })
    .await;
    assert_eq!(first.0.spec.holder_identity.as_deref(), Some("node-a"));
    assert_eq!(first.0.spec.lease_duration_seconds, Some(40));
    assert_eq!(
        first
            .0
            .metadata
            .owner_references
            .first()
            .map(|o| o.uid.as_str()),
        Some(node.metadata.uid.as_str())
    );

    // The kubelet's own HTTP server.
    let (code, body) = get(&k.url("/healthz")).await.expect("kubelet reachable");
    assert_eq!((code, body.as_str()), (200, "ok"));
    let (code, body) = get(&k.url("/containerLogs/default/nope/c"))
        .await
        .expect("kubelet reachable");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("nope"), "{body}");
}

#[test]
fn bad_flags_are_one_line_errors() {
    let cases: [&[&str]; 4] = [
        &["--bogus"],
        &[
            "--port",
            "0",
            "--pod-cidr",
            "10.0.0.0/16",
            "--root-dir",
            "/tmp/kl-bad-flags",
        ],
        &["--port", "0", "--restart-backoff", "-1"],
        &["--port", "0", "--node-labels", "novalue"],
    ];
    for args in cases {
        let (code, out, err) = run_cli("kubelet-lite", args, &[], None);
        assert_ne!(code, 0, "{args:?} succeeded: {out}{err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: expected one line, got:\n{err}");
        assert!(lines[0].starts_with("error: "), "{args:?}: {err}");
    }
}
