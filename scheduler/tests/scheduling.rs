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

fn owned_pod(name: &str, owner_uid: &str) -> Pod {
    let mut p = pod(name, "100m");
    p.metadata.owner_references.push(api::meta::OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: "web-abc".into(),
        uid: owner_uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    });
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordon_taints_selectors_and_spreading() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let nodes: Api<Node> = Api::all(client.clone());
    let mut cordoned = node("cordoned", "8");
    cordoned.spec.unschedulable = true;
    nodes.create(&cordoned).await.unwrap();
    let mut gpu = node("gpu", "8");
    gpu.metadata
        .labels
        .insert("accelerator".into(), "gpu".into());
    gpu.spec.taints.push(api::core::Taint {
        key: "dedicated".into(),
        value: "gpu".into(),
        effect: "NoSchedule".into(),
        time_added: None,
    });
    nodes.create(&gpu).await.unwrap();
    nodes.create(&node("plain-1", "8")).await.unwrap();
    nodes.create(&node("plain-2", "8")).await.unwrap();
    let metrics_port = testkit::free_port();
    let _s = cp.start_component(
        "scheduler",
        "scheduler",
        &[
            "--leader-elect=false".into(),
            "--port".into(),
            metrics_port.to_string(),
        ],
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // Plain pods never land on the cordoned or the tainted node; a ReplicaSet's pods spread.
    for i in 0..4 {
        pods.create(&owned_pod(&format!("web-{i}"), "rs-uid-1"))
            .await
            .unwrap();
    }
    let mut placed = Vec::new();
    for i in 0..4 {
        let name = format!("web-{i}");
        placed.push(wait_for("a replica bound", DEFAULT_TIMEOUT, || node_of(&pods, &name)).await);
    }
    for n in &placed {
        assert!(n.starts_with("plain-"), "{placed:?}");
    }
    assert_eq!(
        placed.iter().filter(|n| *n == "plain-1").count(),
        2,
        "replicas spread evenly: {placed:?}"
    );

    // nodeSelector without a toleration: nowhere fits, and the message says why.
    let mut wants_gpu = pod("wants-gpu", "100m");
    wants_gpu
        .spec
        .node_selector
        .insert("accelerator".into(), "gpu".into());
    pods.create(&wants_gpu).await.unwrap();
    let cond = wait_for("wants-gpu unschedulable", DEFAULT_TIMEOUT, || async {
        pods.get("wants-gpu")
            .await
            .ok()?
            .condition("PodScheduled")
            .filter(|c| c.status == "False")
            .cloned()
    })
    .await;
    assert_eq!(
        cond.message,
        "0/4 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable."
    );
    // With the toleration it goes to the gpu node.
    let mut gpu_pod = pod("gpu-job", "100m");
    gpu_pod
        .spec
        .node_selector
        .insert("accelerator".into(), "gpu".into());
    gpu_pod.spec.tolerations.push(api::core::Toleration {
        key: "dedicated".into(),
        operator: "Equal".into(),
        value: "gpu".into(),
        effect: "NoSchedule".into(),
        toleration_seconds: None,
    });
    pods.create(&gpu_pod).await.unwrap();
    assert_eq!(
        wait_for("gpu-job bound", DEFAULT_TIMEOUT, || node_of(
            &pods, "gpu-job"
        ))
        .await,
        "gpu"
    );

    // Uncordoning lets waiting pods in: a pod selecting the cordoned node's name waits, then goes.
    let mut pinned = pod("pinned", "100m");
    pinned
        .spec
        .node_selector
        .insert("kubernetes.io/hostname".into(), "cordoned".into());
    let mut c = nodes.get("cordoned").await.unwrap();
    c.metadata
        .labels
        .insert("kubernetes.io/hostname".into(), "cordoned".into());
    nodes.replace("cordoned", &c).await.unwrap();
    pods.create(&pinned).await.unwrap();
    wait_for("pinned unschedulable", DEFAULT_TIMEOUT, || async {
        pods.get("pinned")
            .await
            .ok()?
            .condition("PodScheduled")
            .filter(|c| c.status == "False")
            .map(|_| ())
    })
    .await;
    nodes
        .patch(
            "cordoned",
            &client::Patch::Merge(&serde_json::json!({"spec": {"unschedulable": false}})),
        )
        .await
        .unwrap();
    assert_eq!(
        wait_for("pinned bound after uncordon", DEFAULT_TIMEOUT, || node_of(
            &pods, "pinned"
        ))
        .await,
        "cordoned"
    );

    // The metrics say what happened.
    let text = testkit::http_get(&format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("metrics");
    assert!(
        text.contains("scheduler_schedule_attempts_total{result=\"scheduled\"}"),
        "{text}"
    );
    assert!(
        text.contains("scheduler_schedule_attempts_total{result=\"unschedulable\"}"),
        "{text}"
    );
    assert!(
        text.contains("scheduler_e2e_scheduling_duration_seconds_count"),
        "{text}"
    );
    assert!(
        text.contains("scheduler_pending_pods{queue=\"unschedulable\"}"),
        "{text}"
    );
    assert_eq!(
        testkit::http_get(&format!("http://127.0.0.1:{metrics_port}/healthz"))
            .await
            .as_deref(),
        Some("ok")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_hand_over_within_the_lease_duration() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    Api::<Node>::all(client.clone())
        .create(&node("n1", "8"))
        .await
        .unwrap();
    let le = |label: &str| {
        cp.start_component(
            "scheduler",
            label,
            &[
                "--port".into(),
                "0".into(),
                "--leader-elect-lease-duration".into(),
                "3".into(),
                "--leader-elect-renew-deadline".into(),
                "2".into(),
                "--leader-elect-retry-period".into(),
                "1".into(),
            ],
        )
    };
    let mut a = le("sched-a");
    let mut b = le("sched-b");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&pod("first", "100m")).await.unwrap();
    wait_for("first bound", DEFAULT_TIMEOUT, || node_of(&pods, "first")).await;
    let leases: Api<api::Lease> = Api::namespaced(client.clone(), "kube-system");
    let holder = leases
        .get("kube-scheduler")
        .await
        .unwrap()
        .spec
        .holder_identity
        .unwrap();
    let a_leads = std::fs::read_to_string(&a.log)
        .unwrap_or_default()
        .contains("became leader");
    let (leader, standby) = if a_leads {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert!(
        !std::fs::read_to_string(&standby.log)
            .unwrap_or_default()
            .contains("became leader"),
        "only one leads"
    );
    leader.signal(nix::sys::signal::Signal::SIGKILL);
    let killed = std::time::Instant::now();
    pods.create(&pod("second", "100m")).await.unwrap();
    wait_for("second bound by the new leader", DEFAULT_TIMEOUT, || {
        node_of(&pods, "second")
    })
    .await;
    let took = killed.elapsed();
    let new_holder = leases
        .get("kube-scheduler")
        .await
        .unwrap()
        .spec
        .holder_identity
        .unwrap();
    assert_ne!(new_holder, holder);
    println!("hand-over and first decision after {took:?}");
    assert!(
        took < std::time::Duration::from_secs(3 + 10),
        "took {took:?}"
    );
}
