//! The Deployment knobs users reach for after the first rollout: `minReadySeconds`, `paused`,
//! `revisionHistoryLimit` and `progressDeadlineSeconds`, with real pods on a real kubelet.

mod support;

use api::apps::{Deployment, ReplicaSet};
use client::{Api, ListParams, Patch};
use serde_json::json;
use support::*;
use testkit::{DEFAULT_TIMEOUT, wait_for};

fn revision(d: &Deployment) -> Option<&str> {
    d.metadata
        .annotations
        .get("deployment.kubernetes.io/revision")
        .map(String::as_str)
}

async fn replica_sets(api: &Api<ReplicaSet>, app: &str) -> Vec<ReplicaSet> {
    api.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

fn condition(d: &Deployment, type_: &str) -> Option<(String, String)> {
    d.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_ready_paused_history_limit_and_progress_deadline() {
    let c = Cluster::start(CM_FAST, 1).await;
    let client = c.client();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");

    // minReadySeconds: pods count as available only after being ready that long.
    let mut d = deployment(
        "opts",
        2,
        "v1",
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}),
    );
    d.spec.min_ready_seconds = 3;
    d.spec.revision_history_limit = Some(1);
    api.create(&d).await.unwrap();
    wait_for("v1 rolled out", DEFAULT_TIMEOUT, || async {
        api.get("opts").await.ok().filter(rolled_out)
    })
    .await;
    let pods = pods_with(&client, "app=opts").await;
    let last_ready = pods
        .iter()
        .filter_map(|p| {
            p.status
                .as_ref()?
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready" && c.status == "True")?
                .last_transition_time
        })
        .map(|t| t.0)
        .max()
        .expect("ready pods");
    let waited = chrono::Utc::now() - last_ready;
    assert!(
        waited >= chrono::Duration::seconds(2),
        "available {waited} after the last pod became ready (timestamps have 1 s resolution)"
    );

    // Paused: a template change makes no new ReplicaSet until resumed.
    api.patch("opts", &Patch::Merge(&json!({"spec": {"paused": true}})))
        .await
        .unwrap();
    let v2 = json!({"spec": {"template": {"metadata": {"labels": {"version": "v2"}},
        "spec": {"containers": [{"name": "main", "image": "sleeper:v2"}]}}}});
    let changed = api.patch("opts", &Patch::Strategic(&v2)).await.unwrap();
    let seen = wait_for("the paused change observed", DEFAULT_TIMEOUT, || async {
        api.get("opts").await.ok().filter(|d| {
            d.status.as_ref().map_or(0, |s| s.observed_generation) >= changed.metadata.generation
        })
    })
    .await;
    assert_eq!(revision(&seen), Some("1"), "no new revision while paused");
    assert_eq!(
        condition(&seen, "Progressing").map(|c| c.1).as_deref(),
        Some("DeploymentPaused")
    );
    assert_eq!(replica_sets(&rs_api, "opts").await.len(), 1);

    // Resumed: the change rolls out as revision 2; another as revision 3.
    api.patch("opts", &Patch::Merge(&json!({"spec": {"paused": false}})))
        .await
        .unwrap();
    wait_for("v2 rolled out", DEFAULT_TIMEOUT, || async {
        api.get("opts")
            .await
            .ok()
            .filter(|d| rolled_out(d) && revision(d) == Some("2"))
    })
    .await;
    let v3 = json!({"spec": {"template": {"metadata": {"labels": {"version": "v3"}},
        "spec": {"containers": [{"name": "main", "image": "sleeper:v3"}]}}}});
    api.patch("opts", &Patch::Strategic(&v3)).await.unwrap();
    wait_for("v3 rolled out", DEFAULT_TIMEOUT, || async {
        api.get("opts")
            .await
            .ok()
            .filter(|d| rolled_out(d) && revision(d) == Some("3"))
    })
    .await;

    // revisionHistoryLimit 1: the current ReplicaSet and one old one are kept.
    let kept = wait_for("old ReplicaSets cleaned up", DEFAULT_TIMEOUT, || async {
        let rss = replica_sets(&rs_api, "opts").await;
        (rss.len() == 2).then_some(rss)
    })
    .await;
    let mut revisions: Vec<String> = kept
        .iter()
        .filter_map(|r| {
            r.metadata
                .annotations
                .get("deployment.kubernetes.io/revision")
                .cloned()
        })
        .collect();
    revisions.sort();
    assert_eq!(revisions, ["2", "3"]);

    // progressDeadlineSeconds: pods that can never be placed → ProgressDeadlineExceeded.
    let mut stuck = deployment("stuck", 1, "v1", json!({"type": "RollingUpdate"}));
    stuck.spec.progress_deadline_seconds = Some(2);
    stuck
        .spec
        .template
        .spec
        .node_selector
        .insert("disk".into(), "nowhere".into());
    api.create(&stuck).await.unwrap();
    wait_for("ProgressDeadlineExceeded", DEFAULT_TIMEOUT, || async {
        api.get("stuck").await.ok().filter(|d| {
            condition(d, "Progressing") == Some(("False".into(), "ProgressDeadlineExceeded".into()))
        })
    })
    .await;
}
