//! How fast a bound pod becomes Running on an idle node: the time from the create (already
//! bound, as the scheduler's binding would leave it) to the Running status in a watch. Printed,
//! and reported in docs/process-runtime.md; asserted only loosely, as timing depends on the machine.

mod common;

use std::time::{Duration, Instant};

use api::Pod;
use api::meta::WatchEvent;
use common::*;
use futures::StreamExt;
use testkit::ControlPlane;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_pod_runs_within_milliseconds() {
    let cp = ControlPlane::start().await;
    let _k = start_kubelet(&cp, "node-l", 59, &[]);
    let client = cp.client();
    // The node is up once a first pod runs; measure the ones after it.
    create_pod(&client, "node-l", sh_pod("warm-up", "exec sleep 3600")).await;
    wait_pod(&client, "warm-up", "Running", running_with_ip).await;

    let http = reqwest::Client::builder().no_proxy().build().expect("http");
    let mut took = Vec::new();
    for i in 0..5 {
        let name = format!("fast-{i}");
        let list = pods(&client)
            .list(&client::ListParams::default())
            .await
            .expect("list");
        let url = format!(
            "{}/api/v1/namespaces/default/pods?watch=true&resourceVersion={}&fieldSelector=metadata.name%3D{name}",
            cp.server, list.metadata.resource_version
        );
        let resp = http.get(url).send().await.expect("watch");
        let mut events = Box::pin(client::ndjson::decode::<WatchEvent<Pod>, _, _>(
            resp.bytes_stream(),
        ));
        let t0 = Instant::now();
        create_pod(&client, "node-l", sh_pod(&name, "exec sleep 3600")).await;
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(30), events.next())
                .await
                .expect("an event within 30 s")
                .expect("the watch goes on")
                .expect("a watch event");
            if ev.object.phase() == "Running" {
                took.push(t0.elapsed());
                break;
            }
        }
    }
    took.sort();
    eprintln!(
        "bound → Running (5 pods, sorted): {took:?}; median {:?}",
        took[2]
    );
    assert!(took[2] < Duration::from_secs(5), "{took:?}");
}
