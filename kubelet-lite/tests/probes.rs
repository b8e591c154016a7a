//! Probes with real processes: readiness gates the pod's Ready condition (exec and httpGet on a
//! named port), a startup probe holds `started` back, and a failing liveness probe restarts the
//! container with Kubernetes' events; a memory limit is reported as not enforced.

mod common;

use api::Pod;
use api::core::Event;
use client::{Api, ListParams};
use common::*;
use serde_json::json;
use testkit::{ControlPlane, DEFAULT_TIMEOUT, wait_for};

fn pod_ready(p: &Pod) -> bool {
    p.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

fn container(p: &Pod) -> Option<&api::core::ContainerStatus> {
    p.status.as_ref()?.container_statuses.first()
}

fn running_unready(p: &Pod) -> bool {
    container(p).is_some_and(|c| c.state.running.is_some() && !c.ready) && !pod_ready(p)
}

async fn events_of(client: &client::Client, pod: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default().fields(&format!("involvedObject.name={pod}")))
        .await
        .map(|l| l.items.into_iter().map(|e| (e.reason, e.message)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_startup_and_liveness_probes() {
    let cp = ControlPlane::start().await;
    let _k = start_kubelet(&cp, "node-p", 57, &[]);
    let client = cp.client();

    // Readiness (exec): running at once, Ready only when the file appears.
    let mut gated = sh_pod("gated", "sleep 4; touch ready; exec sleep 3600");
    gated["spec"]["containers"][0]["readinessProbe"] =
        json!({"exec": {"command": ["cat", "ready"]}, "periodSeconds": 1});
    create_pod(&client, "node-p", gated).await;

    // Readiness (httpGet on a named port) on a server that starts late.
    let mut web = sh_pod(
        "web",
        "sleep 4; exec python3 -m http.server 8000 --bind \"$POD_IP\"",
    );
    web["spec"]["containers"][0]["ports"] = json!([{"name": "http", "containerPort": 8000}]);
    web["spec"]["containers"][0]["env"] =
        json!([{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]);
    web["spec"]["containers"][0]["readinessProbe"] =
        json!({"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1});
    create_pod(&client, "node-p", web).await;

    // Startup: not started (nor ready) until it passes; liveness only after it.
    let mut slow = sh_pod("slow", "sleep 4; touch started; exec sleep 3600");
    slow["spec"]["containers"][0]["startupProbe"] = json!({"exec": {"command": ["cat", "started"]}, "periodSeconds": 1, "failureThreshold": 30});
    slow["spec"]["containers"][0]["livenessProbe"] =
        json!({"exec": {"command": ["cat", "started"]}, "periodSeconds": 1});
    create_pod(&client, "node-p", slow).await;

    // Liveness (tcpSocket to a port nothing listens on): killed and restarted.
    let mut sick = sh_pod("sick", "exec sleep 3600");
    sick["spec"]["terminationGracePeriodSeconds"] = json!(1);
    sick["spec"]["containers"][0]["livenessProbe"] =
        json!({"tcpSocket": {"port": 9}, "periodSeconds": 1, "failureThreshold": 2});
    create_pod(&client, "node-p", sick).await;

    // Every container sleeps 4 s before it can pass: first the "before", then the "after".
    // Memory limits are not enforced, and the pod's events say so.

    for name in ["gated", "web"] {
        wait_pod(&client, name, "running but not ready", running_unready).await;
    }
    wait_pod(&client, "slow", "running, not started", |p| {
        container(p).is_some_and(|c| c.state.running.is_some() && c.started == Some(false))
    })
    .await;
    for name in ["gated", "web"] {
        let p = wait_pod(&client, name, "Ready", pod_ready).await;
        assert!(container(&p).is_some_and(|c| c.ready), "{name}");
        assert_eq!(
            restart_count(&p, name),
            0,
            "{name}: readiness never restarts"
        );
    }
    let evs = events_of(&client, "gated").await;
    assert!(
        evs.iter()
            .any(|(r, m)| r == "Unhealthy" && m.starts_with("Readiness probe failed: ")),
        "{evs:?}"
    );

    let p = wait_pod(&client, "slow", "started and ready", |p| {
        container(p).is_some_and(|c| c.started == Some(true) && c.ready)
    })
    .await;
    assert_eq!(restart_count(&p, "slow"), 0);

    // While it is being killed (grace 1 s), it is not ready.
    wait_pod(
        &client,
        "sick",
        "not ready once its liveness probe failed",
        |p| container(p).is_some_and(|c| !c.ready),
    )
    .await;
    let p = wait_pod(&client, "sick", "restarted by its liveness probe", |p| {
        restart_count(p, "sick") >= 1
    })
    .await;
    let last = container(&p)
        .and_then(|c| c.last_state.terminated.clone())
        .expect("lastState.terminated");
    assert_ne!(last.exit_code, 0);
    let evs = wait_for("liveness events", DEFAULT_TIMEOUT, || async {
        let evs = events_of(&client, "sick").await;
        let unhealthy = evs
            .iter()
            .any(|(r, m)| r == "Unhealthy" && m.starts_with("Liveness probe failed: dial tcp "));
        let killing = evs.iter().any(|(r, m)| {
            r == "Killing" && m == "Container sick failed liveness probe, will be restarted"
        });
        (unhealthy && killing).then_some(evs)
    })
    .await;
    assert!(!evs.is_empty());
}
