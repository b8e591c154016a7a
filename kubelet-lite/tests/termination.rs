//! Graceful termination timing with real processes: a container that handles SIGTERM stops as
//! soon as it is done, well before its grace period; one that ignores SIGTERM is SIGKILLed when
//! the grace period is over, not before.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use testkit::ControlPlane;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_honoured_and_sigkill_follows_the_grace_period() {
    let cp = ControlPlane::start().await;
    let _k = start_kubelet(&cp, "node-t", 56, &[]);
    let client = cp.client();
    let mut polite = sh_pod(
        "polite",
        "trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
    );
    polite["spec"]["terminationGracePeriodSeconds"] = json!(30);
    create_pod(&client, "node-t", polite).await;
    let mut stubborn = sh_pod("stubborn", "trap '' TERM; while true; do sleep 0.1; done");
    stubborn["spec"]["terminationGracePeriodSeconds"] = json!(3);
    create_pod(&client, "node-t", stubborn).await;
    wait_pod(&client, "polite", "Running", running_with_ip).await;
    wait_pod(&client, "stubborn", "Running", running_with_ip).await;

    let t = Instant::now();
    pods(&client)
        .delete("polite", &Default::default())
        .await
        .expect("delete");
    wait_pod_gone(&client, "polite").await;
    let polite_took = t.elapsed();

    let t = Instant::now();
    pods(&client)
        .delete("stubborn", &Default::default())
        .await
        .expect("delete");
    wait_pod_gone(&client, "stubborn").await;
    let stubborn_took = t.elapsed();
    eprintln!(
        "SIGTERM handled: gone in {polite_took:?}; SIGTERM ignored (grace 3 s): gone in {stubborn_took:?}"
    );
    assert!(
        polite_took < Duration::from_secs(20),
        "a handled SIGTERM ends the pod before its 30 s grace period: {polite_took:?}"
    );
    assert!(
        stubborn_took >= Duration::from_secs(3),
        "SIGKILL only after the grace period: {stubborn_took:?}"
    );
    assert!(stubborn_took < Duration::from_secs(20), "{stubborn_took:?}");
}

/// preStop hooks run before SIGTERM, inside the grace period: an `exec` hook (in the container,
/// here a host process of the process runtime) finishes before the container hears SIGTERM; a
/// `sleep` hook holds SIGTERM back for its seconds; a failing hook is an event and the container
/// is stopped anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_stop_hooks_run_before_sigterm() {
    let cp = ControlPlane::start().await;
    let _k = start_kubelet(&cp, "node-h", 57, &[]);
    let client = cp.client();
    let dir = tempfile::tempdir().expect("tempdir");
    let mark = dir.path().join("prestop-ran");
    let order = dir.path().join("order");
    // The container says, on SIGTERM, whether the hook had run by then.
    let script = format!(
        "trap 'if [ -e {m} ]; then echo hook-first > {o}; else echo term-first > {o}; fi; exit 0' TERM; \
         while true; do sleep 0.1; done",
        m = mark.display(),
        o = order.display()
    );
    let mut hooked = sh_pod("hooked", &script);
    hooked["spec"]["terminationGracePeriodSeconds"] = json!(30);
    hooked["spec"]["containers"][0]["lifecycle"] = json!({"preStop": {"exec": {"command":
        ["sh", "-c", format!("sleep 1; touch {}", mark.display())]}}});
    create_pod(&client, "node-h", hooked).await;

    let mut sleeper = sh_pod(
        "sleeper",
        "trap 'exit 0' TERM; while true; do sleep 0.1; done",
    );
    sleeper["spec"]["containers"][0]["lifecycle"] = json!({"preStop": {"sleep": {"seconds": 2}}});
    create_pod(&client, "node-h", sleeper).await;

    let mut failing = sh_pod(
        "failing",
        "trap 'exit 0' TERM; while true; do sleep 0.1; done",
    );
    failing["spec"]["containers"][0]["lifecycle"] =
        json!({"preStop": {"exec": {"command": ["sh", "-c", "echo no; exit 3"]}}});
    create_pod(&client, "node-h", failing).await;
    for p in ["hooked", "sleeper", "failing"] {
        wait_pod(&client, p, "Running", running_with_ip).await;
    }

    pods(&client)
        .delete("hooked", &Default::default())
        .await
        .expect("delete");
    wait_pod_gone(&client, "hooked").await;
    assert_eq!(
        std::fs::read_to_string(&order)
            .expect("the container saw SIGTERM")
            .trim(),
        "hook-first"
    );

    let t = Instant::now();
    pods(&client)
        .delete("sleeper", &Default::default())
        .await
        .expect("delete");
    wait_pod_gone(&client, "sleeper").await;
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "SIGTERM after the 2 s sleep: {took:?}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");

    pods(&client)
        .delete("failing", &Default::default())
        .await
        .expect("delete");
    wait_event(&client, "failing", "FailedPreStopHook").await;
    wait_pod_gone(&client, "failing").await;
}
