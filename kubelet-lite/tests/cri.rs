//! kubelet-lite with the CRI runtime against a real containerd (private to each test, see
//! `testkit::cri`): images run with their own entrypoints in pod sandboxes with CNI IPs; logs
//! come from the CRI log files; memory limits end in OOMKilled; probes run through the runtime;
//! image pull errors back off; a kubelet killed with -9 re-adopts what runs; a runtime that goes
//! away makes the node NotReady; and a deleted pod leaves nothing in the runtime.
//!
//! They need root, containerd, runc, the CNI plugins and a static busybox: without them each
//! test prints why and passes, unless `KUBE_LITE_REQUIRE_CRI=1` (CI) makes that a failure.

mod common;

use std::time::Duration;

use api::Pod;
use api::core::ConfigMap;
use client::Api;
use common::*;
use serde_json::json;
use testkit::cri::CriNode;
use testkit::{ControlPlane, DEFAULT_TIMEOUT, Proc, free_port, wait_for};

/// A kubelet-lite on `node` with the CRI runtime.
fn start_cri_kubelet(cp: &ControlPlane, node: &CriNode, port: u16) -> Proc {
    start_cri_kubelet_with(cp, node, port, &[])
}

fn start_cri_kubelet_with(cp: &ControlPlane, node: &CriNode, port: u16, extra: &[&str]) -> Proc {
    let mut args = vec![
        "--node-name".to_string(),
        node.name.clone(),
        "--port".into(),
        port.to_string(),
        "--root-dir".into(),
        node.dir().join("kubelet").display().to_string(),
        "--restart-backoff".into(),
        "1".into(),
    ];
    args.extend(node.kubelet_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    cp.start_component("kubelet-lite", &node.name, &args)
}

fn web_pod(name: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "web", "image": "kube-lite/web:1",
                "ports": [{"containerPort": 80}]}]
        }
    })
}

/// Wait until the pod is gone and the runtime holds nothing of it.
async fn wait_runtime_empty(node: &CriNode) {
    wait_for(
        "the runtime to hold no containers and no sandboxes",
        DEFAULT_TIMEOUT,
        || async {
            (node.containers().await.is_empty() && node.sandboxes().await.is_empty()).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_run_in_sandboxes_with_their_own_ips_and_leave_nothing_behind() {
    let Some(node) = CriNode::start("cri-run").await else {
        return;
    };
    let cp = ControlPlane::start().await;
    let port = free_port();
    let mut kubelet = start_cri_kubelet(&cp, &node, port);
    let client = cp.client();

    // Two replicas of an image that listens on port 80: each pod has its own network
    // namespace, so both bind the same port, on IPs from the node's pod CIDR.
    create_pod(&client, &node.name, web_pod("web-a")).await;
    create_pod(&client, &node.name, web_pod("web-b")).await;
    let a = wait_pod(&client, "web-a", "Running", running_with_ip).await;
    let b = wait_pod(&client, "web-b", "Running", running_with_ip).await;
    let (ip_a, ip_b) = (pod_ip(&a), pod_ip(&b));
    assert_ne!(ip_a, ip_b);
    let prefix = node.subnet.rsplit_once('.').map(|(p, _)| p).unwrap_or("");
    assert!(
        ip_a.starts_with(prefix),
        "{ip_a} is in the node's CIDR {}",
        node.subnet
    );
    let body = wait_body(&format!("http://{ip_a}/"), "web-a to answer", |_| true).await;
    assert_eq!(body.trim(), "Hello from web-a");
    let body = wait_body(&format!("http://{ip_b}/"), "web-b to answer", |_| true).await;
    assert_eq!(body.trim(), "Hello from web-b");
    let cs = container_status(&a, "web").expect("status");
    assert!(
        cs.container_id.starts_with("containerd://"),
        "{}",
        cs.container_id
    );
    assert!(!cs.image_id.is_empty());
    assert_eq!(cs.image, "kube-lite/web:1");
    let reasons = event_reasons(&client, "web-a").await;
    assert!(
        reasons.contains(&"Pulled".to_string()) && reasons.contains(&"Started".to_string()),
        "{reasons:?}"
    );

    // A ConfigMap volume is bind-mounted, read-only, where the pod says.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "site"}, "data": {"index.html": "from a configmap\n"}}))
    .expect("cm");
    cms.create(&cm).await.expect("create cm");
    let mut site = web_pod("site");
    site["spec"]["volumes"] = json!([{"name": "www", "configMap": {"name": "site"}}]);
    site["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "www", "mountPath": "/www"}]);
    create_pod(&client, &node.name, site).await;
    let s = wait_pod(&client, "site", "Running", running_with_ip).await;
    let body = wait_body(&format!("http://{}/", pod_ip(&s)), "site to answer", |_| {
        true
    })
    .await;
    assert_eq!(body, "from a configmap\n");

    // Logs come from the runtime's CRI log file: the server logs each request.
    let logs = format!("http://127.0.0.1:{port}/containerLogs/default/web-a/web");
    wait_body(&logs, "web-a's request in its log", |b| b.contains("url:/")).await;
    // Following: a line written after the request arrives on the open stream.
    let follow = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http")
        .get(format!("{logs}?follow=true&tailLines=0"))
        .send()
        .await
        .expect("follow");
    let mut stream = follow.bytes_stream();
    let _ = get(&format!("http://{ip_a}/followed")).await;
    let got = tokio::time::timeout(DEFAULT_TIMEOUT, async {
        use futures::StreamExt;
        let mut seen = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("/followed") {
                return seen;
            }
        }
        seen
    })
    .await
    .expect("a followed line in time");
    assert!(got.contains("/followed"), "{got}");

    // kubectl exec at the kubelet: the command runs inside the container (its own hostname
    // and filesystem) through the runtime's streaming server; output apart, exit code kept.
    let url = format!(
        "ws://127.0.0.1:{port}/exec/default/web-a/web?command=sh&command=-c&command={}&output=1&error=1",
        "hostname%3B+cat+%2Fwww%2Findex.html%3B+echo+err+%3E%262%3B+exit+3"
    );
    let s = exec(
        &url,
        "v5.channel.k8s.io, v4.channel.k8s.io",
        Input::default(),
    )
    .await
    .expect("exec");
    assert_eq!(s.stdout, "web-a\nHello from web-a\n");
    assert_eq!(s.stderr, "err\n");
    assert_eq!(
        s.finished,
        Some(api::remotecommand::Finished::Exit(3)),
        "{s:?}"
    );
    // An interactive shell on a TTY (`kubectl exec -it … -- sh`), sized as kubectl sizes it.
    let url =
        format!("ws://127.0.0.1:{port}/exec/default/web-a/web?command=sh&input=1&output=1&tty=1");
    let s = exec(
        &url,
        "v5.channel.k8s.io, v4.channel.k8s.io",
        Input {
            stdin: Some(b"stty size; tty; exit 4\n"),
            resize: Some(api::remotecommand::TerminalSize {
                width: 80,
                height: 24,
            }),
            ..Default::default()
        },
    )
    .await
    .expect("exec tty");
    assert!(
        s.stdout.contains("24 80") && s.stdout.contains("/dev/pts/"),
        "{s:?}"
    );
    assert_eq!(
        s.finished,
        Some(api::remotecommand::Finished::Exit(4)),
        "{s:?}"
    );

    // Deleted: the containers stop, the sandboxes go, nothing is left in the runtime.
    for name in ["web-a", "web-b", "site"] {
        pods(&client)
            .delete(name, &Default::default())
            .await
            .expect("delete");
    }
    for name in ["web-a", "web-b", "site"] {
        wait_pod_gone(&client, name).await;
    }
    wait_runtime_empty(&node).await;
    assert!(kubelet.stop(), "kubelet-lite stops on SIGTERM");
    assert_eq!(node.teardown().await, 0, "no pod was left to clean up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_probes_crashes_and_pull_errors_are_reported_as_kubernetes_does() {
    let Some(node) = CriNode::start("cri-fail").await else {
        return;
    };
    let cp = ControlPlane::start().await;
    let port = free_port();
    // Small logs: rotation (the kubelet's job with CRI) shows quickly.
    let mut kubelet =
        start_cri_kubelet_with(&cp, &node, port, &["--container-log-max-size", "4Ki"]);
    let client = cp.client();

    // Over its memory limit: the kernel kills it, the runtime says OOMKilled, exit 137.
    create_pod(
        &client,
        &node.name,
        json!({"metadata": {"name": "hog"}, "spec": {"restartPolicy": "Never",
            "containers": [{"name": "hog", "image": "kube-lite/web:1",
                "command": ["sh", "-c", "x=a; while :; do x=$x$x; done"],
                "resources": {"limits": {"memory": "20Mi"}}}]}}),
    )
    .await;
    // Readiness by an exec probe (through the runtime), liveness by HTTP on a port nothing
    // listens on: ready once the file exists, restarted for failing liveness.
    create_pod(
        &client,
        &node.name,
        json!({"metadata": {"name": "probed"}, "spec": {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "web", "image": "kube-lite/web:1",
                "command": ["sh", "-c", "sleep 2; touch /tmp/ready; exec sleep 3600"],
                "readinessProbe": {"exec": {"command": ["test", "-e", "/tmp/ready"]}, "periodSeconds": 1},
                "livenessProbe": {"httpGet": {"path": "/", "port": 81}, "initialDelaySeconds": 4,
                    "periodSeconds": 1, "failureThreshold": 2}}]}}),
    )
    .await;
    // A crash loop: exit 3 again and again.
    create_pod(
        &client,
        &node.name,
        json!({"metadata": {"name": "crash"}, "spec": {"containers": [{"name": "c",
            "image": "kube-lite/web:1", "command": ["sh", "-c", "echo dying; exit 3"]}]}}),
    )
    .await;
    // No registry is reachable: the pull fails, then backs off. `Never` never tries.
    create_pod(
        &client,
        &node.name,
        json!({"metadata": {"name": "nope"}, "spec": {"containers": [{"name": "c",
            "image": "kube-lite/does-not-exist:1"}]}}),
    )
    .await;
    create_pod(
        &client,
        &node.name,
        json!({"metadata": {"name": "never"}, "spec": {"containers": [{"name": "c",
            "image": "kube-lite/missing:2", "imagePullPolicy": "Never"}]}}),
    )
    .await;

    // A chatty container: its log is rotated at 4 KiB and the runtime reopens it.
    create_pod(
        &client,
        &node.name,
        json!({"metadata": {"name": "chatty"}, "spec": {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "kube-lite/web:1", "command": ["sh", "-c",
                "i=0; while [ $i -lt 400 ]; do echo \"line $i of a chatty container\"; i=$((i+1)); sleep 0.01; done; while :; do echo tick; sleep 1; done"]}]}}),
    )
    .await;
    let hog = wait_pod(&client, "hog", "OOMKilled", |p| {
        container_status(p, "hog")
            .and_then(|c| c.state.terminated.as_ref())
            .is_some()
    })
    .await;
    let t = container_status(&hog, "hog")
        .and_then(|c| c.state.terminated.clone())
        .expect("terminated");
    assert_eq!((t.reason.as_str(), t.exit_code), ("OOMKilled", 137));
    assert_eq!(hog.phase(), "Failed");
    // A finished pod gives its network back: its sandbox is stopped (and kept until deletion).
    wait_for(
        "the finished pod's sandbox to stop",
        DEFAULT_TIMEOUT,
        || async {
            node.sandboxes()
                .await
                .iter()
                .find(|s| s.labels.get("io.kubernetes.pod.name").map(String::as_str) == Some("hog"))
                .is_some_and(|s| s.state == cri::v1::PodSandboxState::SandboxNotready as i32)
                .then_some(())
        },
    )
    .await;

    wait_pod(&client, "probed", "Ready by its exec probe", |p| {
        p.is_ready()
    })
    .await;
    wait_pod(&client, "probed", "restarted by its liveness probe", |p| {
        restart_count(p, "web") >= 1
    })
    .await;
    wait_event(&client, "probed", "Unhealthy").await;

    let crash = wait_pod(&client, "crash", "restarted twice, backing off", |p| {
        restart_count(p, "c") >= 2
    })
    .await;
    let last = container_status(&crash, "c")
        .and_then(|c| {
            c.last_state
                .terminated
                .clone()
                .or(c.state.terminated.clone())
        })
        .expect("a termination");
    assert_eq!(last.exit_code, 3);
    // The previous run's log is still there (kubectl logs --previous).
    let prev = format!("http://127.0.0.1:{port}/containerLogs/default/crash/c?previous=true");
    wait_body(&prev, "the previous run's log", |b| b == "dying\n").await;
    wait_pod(&client, "crash", "CrashLoopBackOff", |p| {
        waiting_reason(p, "c").is_some_and(|(r, _)| r == "CrashLoopBackOff")
    })
    .await;

    let chatty = format!("http://127.0.0.1:{port}/containerLogs/default/chatty/c");
    // Past the burst, the current (reopened) file has the latest lines: a rotation moves the
    // file away whole, as the kubelet does, and `logs` reads the current one.
    wait_body(&chatty, "the chatty container's latest lines", |b| {
        b.ends_with("tick\n") && !b.contains("line 0 ")
    })
    .await;
    let chatty_pod = pods(&client).get("chatty").await.expect("chatty");
    let rotated = node
        .dir()
        .join("kubelet/pods")
        .join(&chatty_pod.metadata.uid)
        .join("logs/c/0.log.1");
    assert!(rotated.exists(), "{} exists", rotated.display());
    let current = std::fs::metadata(rotated.with_extension(""))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(
        current < 8 << 10,
        "the reopened log is small again: {current}"
    );
    let nope = wait_pod(&client, "nope", "ImagePullBackOff", |p| {
        waiting_reason(p, "c").is_some_and(|(r, _)| r == "ImagePullBackOff")
    })
    .await;
    let (_, msg) = waiting_reason(&nope, "c").expect("waiting");
    assert!(msg.contains("Back-off pulling image"), "{msg}");
    let events: Api<api::Event> = Api::namespaced(client.clone(), "default");
    let failed = events
        .list(&client::ListParams::default().fields("involvedObject.name=nope"))
        .await
        .expect("events")
        .items
        .into_iter()
        .map(|e| e.message)
        .collect::<Vec<_>>();
    assert!(
        failed.iter().any(
            |m| m.starts_with("Failed to pull image \"kube-lite/does-not-exist:1\": rpc error")
        ),
        "{failed:?}"
    );
    wait_pod(&client, "never", "ErrImageNeverPull", |p| {
        waiting_reason(p, "c").is_some_and(|(r, _)| r == "ErrImageNeverPull")
    })
    .await;

    for name in ["hog", "probed", "crash", "nope", "never", "chatty"] {
        pods(&client)
            .delete(name, &Default::default())
            .await
            .expect("delete");
    }
    for name in ["hog", "probed", "crash", "nope", "never", "chatty"] {
        wait_pod_gone(&client, name).await;
    }
    wait_runtime_empty(&node).await;
    assert!(kubelet.stop(), "kubelet-lite stops on SIGTERM");
    assert_eq!(node.teardown().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_kubelet_readopts_and_a_runtime_outage_makes_the_node_not_ready() {
    let Some(mut node) = CriNode::start("cri-adopt").await else {
        return;
    };
    let cp = ControlPlane::start().await;
    let port = free_port();
    let mut kubelet = start_cri_kubelet(&cp, &node, port);
    let client = cp.client();
    create_pod(&client, &node.name, web_pod("keep")).await;
    let before = wait_pod(&client, "keep", "Running", running_with_ip).await;
    let id = container_status(&before, "web")
        .map(|c| c.container_id.clone())
        .expect("id");
    let ip = pod_ip(&before);
    wait_body(&format!("http://{ip}/"), "keep to answer", |_| true).await;

    // kill -9: the container keeps running; the next kubelet finds it by its labels and
    // carries on with it — same container, no restart, no second copy.
    kubelet.kill();
    assert!(get(&format!("http://{ip}/")).await.is_some());
    kubelet = start_cri_kubelet(&cp, &node, port);
    wait_for(
        "the new kubelet to re-adopt the container",
        DEFAULT_TIMEOUT,
        || async {
            std::fs::read_to_string(&kubelet.log)
                .ok()?
                .contains("re-adopted a container")
                .then_some(())
        },
    )
    .await;
    wait_for("the pod's worker to start", DEFAULT_TIMEOUT, || async {
        std::fs::read_to_string(&kubelet.log)
            .ok()?
            .contains("pod worker started pod=default/keep")
            .then_some(())
    })
    .await;
    // For three seconds of the new kubelet's syncs, nothing is started again.
    let pod_api: Api<Pod> = pods(&client);
    for _ in 0..30 {
        let after = pod_api.get("keep").await.expect("pod");
        let cs = container_status(&after, "web").expect("status");
        assert_eq!(cs.container_id, id);
        assert_eq!(cs.restart_count, 0);
        assert_eq!(pod_ip(&after), ip);
        assert_eq!(node.containers().await.len(), 1, "one web container");
        assert_eq!(node.sandboxes().await.len(), 1, "one sandbox");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The runtime goes away: the node turns NotReady and says why; it comes back: Ready, and
    // the pod never stopped.
    let dir = node.stop_containerd().await;
    let nodes: Api<api::Node> = Api::all(client.clone());
    let name = node.name.clone();
    let not_ready = wait_for("the node to turn NotReady", DEFAULT_TIMEOUT, || async {
        let n = nodes.get(&name).await.ok()?;
        let c = n.condition("Ready")?;
        (c.status == "False").then(|| c.message.clone())
    })
    .await;
    assert!(
        not_ready.starts_with("container runtime is down"),
        "{not_ready}"
    );
    node.start_containerd(&dir).await;
    wait_for("the node to be Ready again", DEFAULT_TIMEOUT, || async {
        nodes.get(&name).await.ok()?.is_ready().then_some(())
    })
    .await;
    let again = pod_api.get("keep").await.expect("pod");
    assert_eq!(
        container_status(&again, "web").map(|c| c.container_id.clone()),
        Some(id.clone())
    );
    assert!(get(&format!("http://{ip}/")).await.is_some());

    // The sandbox dies (stopped behind the kubelet's back, which also kills its containers):
    // the pod gets a new sandbox and its container runs again, as after "SandboxChanged".
    let old_sandbox = node.sandboxes().await.pop().expect("a sandbox").id;
    node.client
        .runtime()
        .stop_pod_sandbox(node.client.req(cri::v1::StopPodSandboxRequest {
            pod_sandbox_id: old_sandbox.clone(),
        }))
        .await
        .expect("stop the sandbox");
    wait_event(&client, "keep", "SandboxChanged").await;
    let renewed = wait_pod(&client, "keep", "Running in a new sandbox", |p| {
        running_with_ip(p)
            && container_status(p, "web")
                .is_some_and(|c| c.container_id != id && c.state.running.is_some())
    })
    .await;
    wait_body(
        &format!("http://{}/", pod_ip(&renewed)),
        "keep to answer again",
        |_| true,
    )
    .await;
    let sandboxes = node.sandboxes().await;
    assert_eq!(sandboxes.len(), 1, "the dead sandbox was removed");
    assert_ne!(sandboxes[0].id, old_sandbox);

    pod_api
        .delete("keep", &Default::default())
        .await
        .expect("delete");
    wait_pod_gone(&client, "keep").await;
    wait_runtime_empty(&node).await;
    assert!(kubelet.stop());
    assert_eq!(node.teardown().await, 0);
}
