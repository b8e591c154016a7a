//! The API server given every kvstore member survives losing a minority of them: with the
//! kvstore leader killed, objects are still created and read.
//!
//! Needs the `apiserver` binary, which `cargo test --workspace` builds; run alone with
//! `cargo test -p kvstore` the test says so and passes without running.

use std::time::Duration;

use testkit::kvcluster::KvCluster;
use testkit::{DEFAULT_TIMEOUT, Proc, free_port, http_get, wait_for};

fn apiserver_built() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.parent()?.join("apiserver")))
        .is_some_and(|p| p.exists())
}

async fn create_configmap(http: &reqwest::Client, server: &str, name: &str) -> Option<()> {
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"k": "v"},
    });
    let r = http
        .post(format!("{server}/api/v1/namespaces/default/configmaps"))
        .json(&body)
        .send()
        .await
        .ok()?;
    // 409: an earlier attempt whose answer was lost did create it.
    matches!(r.status().as_u16(), 201 | 409).then_some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_keeps_serving_when_the_kvstore_leader_dies() {
    if !apiserver_built() {
        eprintln!("skipped: the apiserver binary is not built (cargo test --workspace builds it)");
        return;
    }
    let mut c = KvCluster::start(3).await;
    let port = free_port();
    let server = format!("http://127.0.0.1:{port}");
    let _api = Proc::start(
        "apiserver",
        "apiserver",
        &[
            "--kvstore-servers".into(),
            c.endpoints().join(","),
            "--port".into(),
            port.to_string(),
        ],
        c.dir.path(),
        &[],
    );
    let ready = format!("{server}/readyz");
    wait_for("apiserver /readyz", DEFAULT_TIMEOUT, || http_get(&ready)).await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    wait_for("creating cm-before", DEFAULT_TIMEOUT, || {
        create_configmap(&http, &server, "cm-before")
    })
    .await;

    let leader = c.wait_leader(DEFAULT_TIMEOUT).await;
    c.kill(leader);
    wait_for(
        "creating cm-after with the leader gone",
        DEFAULT_TIMEOUT,
        || create_configmap(&http, &server, "cm-after"),
    )
    .await;
    for name in ["cm-before", "cm-after"] {
        let got = http_get(&format!(
            "{server}/api/v1/namespaces/default/configmaps/{name}"
        ))
        .await
        .unwrap_or_else(|| panic!("{name} readable after losing the leader"));
        assert!(got.contains(name));
    }
}
