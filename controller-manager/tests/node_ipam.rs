//! Node IPAM with the real binaries: nodes without a pod CIDR get one each from
//! `--cluster-cidr` (never the same twice), a node's own range is kept, an exhausted range says
//! so in an event, and a deleted node's range goes to the next node that needs one.

use api::core::Node;
use client::{Api, ListParams};
use testkit::{ControlPlane, DEFAULT_TIMEOUT, wait_for};

fn node(name: &str, cidr: &str) -> Node {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr}
    }))
    .expect("node")
}

async fn cidr_of(nodes: &Api<Node>, name: &str) -> String {
    wait_for(
        &format!("a pod CIDR for {name}"),
        DEFAULT_TIMEOUT,
        || async {
            let n = nodes.get(name).await.ok()?;
            (!n.spec.pod_cidr.is_empty()).then_some(n.spec)
        },
    )
    .await
    .pod_cidr
}

/// A range the controller-manager assigned: in `podCIDR` and `podCIDRs`.
async fn assigned(nodes: &Api<Node>, name: &str) -> String {
    let c = cidr_of(nodes, name).await;
    let n = nodes.get(name).await.expect("node");
    assert_eq!(n.spec.pod_cidrs, vec![c.clone()]);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_get_a_range_each_from_the_cluster_cidr() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let nodes: Api<Node> = Api::all(client.clone());
    // One node came with its own range inside the cluster CIDR: it is kept and reserved.
    nodes
        .create(&node("own", "10.200.1.0/24"))
        .await
        .expect("create");
    let _cm = cp.start_component(
        "controller-manager",
        "controller-manager",
        &[
            "--leader-elect=false".into(),
            "--allocate-node-cidrs".into(),
            "--cluster-cidr".into(),
            "10.200.0.0/22".into(),
        ],
    );
    for n in ["a", "b", "c"] {
        nodes.create(&node(n, "")).await.expect("create");
    }
    let mut got = Vec::new();
    for n in ["a", "b", "c"] {
        got.push(assigned(&nodes, n).await);
    }
    got.sort();
    assert_eq!(got, ["10.200.0.0/24", "10.200.2.0/24", "10.200.3.0/24"]);
    assert_eq!(cidr_of(&nodes, "own").await, "10.200.1.0/24");

    // The range is full: the next node waits, and an event says why.
    nodes.create(&node("d", "")).await.expect("create");
    let events: Api<api::Event> = Api::all(client.clone());
    wait_for("a CIDRNotAvailable event", DEFAULT_TIMEOUT, || async {
        events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.reason == "CIDRNotAvailable" && e.involved_object.name == "d")
    })
    .await;
    // A node goes: its range is d's.
    let freed = nodes.get("b").await.expect("b").spec.pod_cidr;
    nodes
        .delete("b", &Default::default())
        .await
        .expect("delete");
    assert_eq!(assigned(&nodes, "d").await, freed);
}

/// Kubelets write their Nodes all the time (heartbeats); node IPAM's own writes then meet
/// conflicts and a cache that is behind. No range may be given to two nodes anyway (two
/// bridges with one subnet on a host, or two nodes routing one range).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_nodes_never_share_a_range() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let nodes: Api<Node> = Api::all(client.clone());
    let _cm = cp.start_component(
        "controller-manager",
        "controller-manager",
        &[
            "--leader-elect=false".into(),
            "--allocate-node-cidrs".into(),
            "--cluster-cidr".into(),
            "10.201.0.0/16".into(),
        ],
    );
    // Nodes join one after another, each written every few milliseconds from the start
    // (heartbeats) while ranges are handed out.
    let names: Vec<String> = (0..12).map(|i| format!("busy-{i}")).collect();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut beats = Vec::new();
    for n in names.clone() {
        nodes.create(&node(&n, "")).await.expect("create");
        let nodes = nodes.clone();
        let stop = stop.clone();
        beats.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.is_cancelled() {
                i += 1;
                let patch =
                    serde_json::json!({"metadata": {"annotations": {"beat": i.to_string()}}});
                let _ = nodes.patch(&n, &client::Patch::Merge(&patch)).await;
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        }));
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    }
    let mut got = Vec::new();
    for n in &names {
        got.push(cidr_of(&nodes, n).await);
    }
    stop.cancel();
    for b in beats {
        let _ = b.await;
    }
    let mut now = Vec::new();
    for n in &names {
        now.push(nodes.get(n).await.expect("node").spec.pod_cidr);
    }
    assert_eq!(got, now, "ranges moved");
    let mut distinct = now.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), names.len(), "a range given twice: {now:?}");
}
