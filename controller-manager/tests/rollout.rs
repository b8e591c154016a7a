//! Deployments that roll, roll back and recreate, with real pods on real kubelets: every pod
//! event is recorded and the strategy's promises are checked at every moment.

mod support;

use api::apps::Deployment;
use client::{Api, Patch};
use serde_json::json;
use support::*;
use testkit::{DEFAULT_TIMEOUT, wait_for};

fn active(p: &api::Pod) -> bool {
    p.metadata.deletion_timestamp.is_none() && !matches!(p.phase(), "Succeeded" | "Failed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_keeps_within_surge_and_unavailability_then_rolls_back() {
    let c = Cluster::start(CM_FAST, 2).await;
    let client = c.client();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
    api.create(&deployment("web", 4, "v1", strategy))
        .await
        .unwrap();
    wait_for("v1 rolled out", DEFAULT_TIMEOUT, || async {
        api.get("web").await.ok().filter(rolled_out)
    })
    .await;

    let rv = deployment_rv(&api, "web").await;
    let pods_rv = support::pods_with(&client, "app=web").await;
    assert_eq!(pods_rv.len(), 4);
    let list_rv = {
        let l: api::List<api::Pod> = Api::namespaced(client.clone(), "default")
            .list(&client::ListParams::default())
            .await
            .unwrap();
        l.metadata.resource_version
    };
    let log = PodLog::start(&client, "app=web", &list_rv);
    let patch = json!({"spec": {"template": {"metadata": {"labels": {"version": "v2"}}, "spec": {"containers": [{"name": "main", "image": "sleeper:v2"}]}}}});
    api.patch("web", &Patch::Strategic(&patch)).await.unwrap();
    let d = wait_for("v2 rolled out", DEFAULT_TIMEOUT, || async {
        api.get("web")
            .await
            .ok()
            .filter(|d| d.metadata.resource_version != rv && rolled_out(d))
    })
    .await;
    assert_eq!(
        d.metadata
            .annotations
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("2")
    );

    // Replay: start from the 4 v1 pods, apply every event, check the bounds after each.
    let mut state: std::collections::BTreeMap<String, api::Pod> = pods_rv
        .into_iter()
        .map(|p| (p.metadata.name.clone(), p))
        .collect();
    let events = log.events.lock().unwrap().clone();
    assert!(!events.is_empty());
    let (mut max_total, mut min_available) = (0, usize::MAX);
    for (t, p) in &events {
        if t == "DELETED" {
            state.remove(&p.metadata.name);
        } else {
            state.insert(p.metadata.name.clone(), p.clone());
        }
        let total = state.values().filter(|p| active(p)).count();
        let available = state.values().filter(|p| active(p) && p.is_ready()).count();
        max_total = max_total.max(total);
        min_available = min_available.min(available);
        assert!(
            total <= 4 + 1,
            "{total} pods at once exceeds replicas + maxSurge"
        );
        assert!(
            available >= 4 - 1,
            "only {available} available pods, below replicas - maxUnavailable"
        );
    }
    println!("rolling update: at most {max_total} pods, at least {min_available} available");
    let v2 = support::pods_with(&client, "app=web,version=v2").await;
    assert_eq!(v2.iter().filter(|p| active(p)).count(), 4);

    // Roll back to the previous template (what `kubectl rollout undo` sends): the old
    // ReplicaSet is reused and becomes revision 3; its old revision goes to revision-history.
    let rss: Api<api::ReplicaSet> = Api::namespaced(client.clone(), "default");
    let old = rss
        .list(&client::ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|r| {
            r.metadata
                .annotations
                .get("deployment.kubernetes.io/revision")
                .map(String::as_str)
                == Some("1")
        })
        .expect("revision 1");
    let mut template = serde_json::to_value(&old.spec.template).unwrap();
    template["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("pod-template-hash");
    api.patch(
        "web",
        &Patch::Json(&json!([{"op": "replace", "path": "/spec/template", "value": template}])),
    )
    .await
    .unwrap();
    let d = wait_for("the rollback rolled out", DEFAULT_TIMEOUT, || async {
        api.get("web").await.ok().filter(|d| {
            rolled_out(d)
                && d.metadata
                    .annotations
                    .get("deployment.kubernetes.io/revision")
                    .map(String::as_str)
                    == Some("3")
        })
    })
    .await;
    assert_eq!(d.spec.template.spec.containers[0].image, "sleeper:v1");
    let reused = rss.get(&old.metadata.name).await.unwrap();
    assert_eq!(
        reused
            .metadata
            .annotations
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("3")
    );
    assert_eq!(
        reused
            .metadata
            .annotations
            .get("deployment.kubernetes.io/revision-history")
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(reused.spec.replicas, Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_never_runs_two_versions() {
    let c = Cluster::start(CM_FAST, 2).await;
    let client = c.client();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    api.create(&deployment("db", 2, "v1", json!({"type": "Recreate"})))
        .await
        .unwrap();
    wait_for("v1 rolled out", DEFAULT_TIMEOUT, || async {
        api.get("db").await.ok().filter(rolled_out)
    })
    .await;
    let pods = support::pods_with(&client, "app=db").await;
    let list_rv = {
        let l: api::List<api::Pod> = Api::namespaced(client.clone(), "default")
            .list(&client::ListParams::default())
            .await
            .unwrap();
        l.metadata.resource_version
    };
    let log = PodLog::start(&client, "app=db", &list_rv);
    let patch = json!({"spec": {"template": {"metadata": {"labels": {"version": "v2"}}, "spec": {"containers": [{"name": "main", "image": "sleeper:v2"}]}}}});
    api.patch("db", &Patch::Strategic(&patch)).await.unwrap();
    wait_for("v2 rolled out", DEFAULT_TIMEOUT, || async {
        api.get("db")
            .await
            .ok()
            .filter(|d| rolled_out(d) && d.spec.template.spec.containers[0].image == "sleeper:v2")
    })
    .await;
    let mut state: std::collections::BTreeMap<String, api::Pod> = pods
        .into_iter()
        .map(|p| (p.metadata.name.clone(), p))
        .collect();
    for (t, p) in log.events.lock().unwrap().iter() {
        if t == "DELETED" {
            state.remove(&p.metadata.name);
        } else {
            state.insert(p.metadata.name.clone(), p.clone());
        }
        let versions: std::collections::BTreeSet<&str> = state
            .values()
            .filter_map(|p| p.metadata.labels.get("version").map(String::as_str))
            .collect();
        assert!(
            versions.len() <= 1,
            "v1 and v2 pods existed at the same time: {versions:?}"
        );
    }
}
