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
