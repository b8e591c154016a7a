//! The scheduler binary against a real API server: nodes are plain Node objects (no kubelet is
//! needed to test placement), pods are bound or explained.

use api::core::{Event, Node, Pod};
use api::{Resource, quantity::Quantity};
use client::{Api, ListParams};
use testkit::{ControlPlane, DEFAULT_TIMEOUT, run_cli, wait_for};

fn node(name: &str, cpu: &str) -> Node {
    let mut n = Node::default();
    n.set_type_meta();
    n.metadata.name = name.into();
    let status = n.status.get_or_insert_with(Default::default);
    for (k, v) in [("cpu", cpu), ("memory", "4Gi"), ("pods", "110")] {
        status.allocatable.insert(k.into(), Quantity::new(v));
        status.capacity.insert(k.into(), Quantity::new(v));
    }
    n
}

fn pod(name: &str, cpu: &str) -> Pod {
    let mut p: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}]}
    }))
    .unwrap();
    p.set_type_meta();
    p
}

async fn node_of(api: &Api<Pod>, name: &str) -> Option<String> {
    api.get(name)
        .await
        .ok()
        .map(|p| p.spec.node_name)
        .filter(|n| !n.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_where_it_fits_explains_where_it_does_not() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.create(&node("small-1", "1")).await.unwrap();
    nodes.create(&node("small-2", "1")).await.unwrap();
    let _s = cp.start_component("scheduler", "scheduler", &["--leader-elect=false".into()]);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    pods.create(&pod("fits", "500m")).await.unwrap();
    let placed = wait_for("the pod to be bound", DEFAULT_TIMEOUT, || {
        node_of(&pods, "fits")
    })
    .await;
    assert!(placed.starts_with("small-"), "{placed}");

    // Too big for every node: Pending, with Kubernetes' explanation and an event.
    pods.create(&pod("huge", "3")).await.unwrap();
    let cond = wait_for("the Unschedulable condition", DEFAULT_TIMEOUT, || async {
        let p = pods.get("huge").await.ok()?;
        p.condition("PodScheduled")
            .filter(|c| c.status == "False")
            .cloned()
    })
    .await;
    assert_eq!(cond.reason, "Unschedulable");
    assert_eq!(cond.message, "0/2 nodes are available: 2 Insufficient cpu.");
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    wait_for("a FailedScheduling event", DEFAULT_TIMEOUT, || async {
        let l = events
            .list(&ListParams::default().fields("involvedObject.name=huge"))
            .await
            .ok()?;
        l.items
            .iter()
            .any(|e| e.reason == "FailedScheduling" && e.type_ == "Warning")
            .then_some(())
    })
    .await;

    // A node that can take it arrives: the pod is scheduled without anyone touching it.
    nodes.create(&node("big", "8")).await.unwrap();
    let placed = wait_for(
        "the big pod to be bound after a node was added",
        DEFAULT_TIMEOUT,
        || node_of(&pods, "huge"),
    )
    .await;
    assert_eq!(placed, "big");
    wait_for("a Scheduled event", DEFAULT_TIMEOUT, || async {
        let l = events
            .list(&ListParams::default().fields("involvedObject.name=huge,reason=Scheduled"))
            .await
            .ok()?;
        l.items
            .iter()
            .any(|e| e.message == "Successfully assigned default/huge to big")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn bad_flags_are_one_line_errors() {
    let (code, _, err) = run_cli(
        "scheduler",
        &["--leader-elect-lease-duration", "soon"],
        &[],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("invalid value 'soon'"), "{err}");
}
