//! Cascading deletion in the three propagation modes, and ReplicaSets adopting and releasing
//! pods as their labels change. No scheduler or kubelet: pods stay Pending and unbound.

mod support;

use api::apps::{Deployment, ReplicaSet};
use api::core::Pod;
use api::meta::DeleteOptions;
use client::{Api, ListParams, Patch};
use serde_json::json;
use support::deployment;
use testkit::{ControlPlane, DEFAULT_TIMEOUT, wait_for};

fn policy(p: &str) -> DeleteOptions {
    DeleteOptions {
        propagation_policy: Some(p.into()),
        ..Default::default()
    }
}

async fn count(client: &client::Client, app: &str) -> (usize, usize) {
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let sel = ListParams::default().labels(&format!("app={app}"));
    (
        rss.list(&sel).await.map(|l| l.items.len()).unwrap_or(0),
        pods.list(&sel).await.map(|l| l.items.len()).unwrap_or(0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascading_delete_in_all_three_modes() {
    let cp = ControlPlane::start().await;
    let _cm = cp.start_component(
        "controller-manager",
        "controller-manager",
        &["--leader-elect=false".into()],
    );
    let client = cp.client();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    for name in ["bg", "fg", "orphan"] {
        api.create(&deployment(name, 2, "v1", json!({"type": "RollingUpdate"})))
            .await
            .unwrap();
    }
    for name in ["bg", "fg", "orphan"] {
        wait_for("ReplicaSet and 2 pods", DEFAULT_TIMEOUT, || async {
            (count(&client, name).await == (1, 2)).then_some(())
        })
        .await;
    }

    api.delete("bg", &policy("Background")).await.unwrap();
    wait_for("background: dependents gone", DEFAULT_TIMEOUT, || async {
        (api.get_opt("bg").await.ok()?.is_none() && count(&client, "bg").await == (0, 0))
            .then_some(())
    })
    .await;

    // Foreground: the owner stays (with the foregroundDeletion finalizer) until its dependents are gone.
    let kept = api
        .delete("fg", &policy("Foreground"))
        .await
        .unwrap()
        .expect("kept while dependents go");
    assert!(
        kept.metadata
            .finalizers
            .contains(&"foregroundDeletion".to_string())
    );
    assert!(kept.metadata.deletion_timestamp.is_some());
    wait_for("foreground: everything gone", DEFAULT_TIMEOUT, || async {
        (api.get_opt("fg").await.ok()?.is_none() && count(&client, "fg").await == (0, 0))
            .then_some(())
    })
    .await;

    // Orphan: the owner goes, its dependents stay without owner references.
    api.delete("orphan", &policy("Orphan")).await.unwrap();
    wait_for("orphan: owner gone", DEFAULT_TIMEOUT, || async {
        api.get_opt("orphan").await.ok()?.is_none().then_some(())
    })
    .await;
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let rs = wait_for("orphaned ReplicaSet released", DEFAULT_TIMEOUT, || async {
        let l = rss
            .list(&ListParams::default().labels("app=orphan"))
            .await
            .ok()?;
        l.items
            .into_iter()
            .find(|r| r.metadata.owner_references.is_empty())
    })
    .await;
    assert_eq!(
        count(&client, "orphan").await,
        (1, 2),
        "the ReplicaSet and its pods survive"
    );
    assert_eq!(rs.spec.replicas, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_sets_adopt_and_release_by_labels() {
    let cp = ControlPlane::start().await;
    let _cm = cp.start_component(
        "controller-manager",
        "controller-manager",
        &["--leader-elect=false".into()],
    );
    let client = cp.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // An orphan pod that the ReplicaSet's selector matches, created first.
    let orphan: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "stray", "namespace": "default", "labels": {"app": "cats"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]}
    }))
    .unwrap();
    pods.create(&orphan).await.unwrap();
    let rs: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "cats", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "cats"}},
                 "template": {"metadata": {"labels": {"app": "cats"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }))
    .unwrap();
    let rs = Api::<ReplicaSet>::namespaced(client.clone(), "default")
        .create(&rs)
        .await
        .unwrap();
    let adopted = wait_for("the orphan adopted", DEFAULT_TIMEOUT, || async {
        pods.get("stray").await.ok().filter(|p| {
            p.metadata
                .controller_ref()
                .is_some_and(|r| r.uid == rs.metadata.uid)
        })
    })
    .await;
    assert_eq!(
        adopted
            .metadata
            .controller_ref()
            .unwrap()
            .block_owner_deletion,
        Some(true)
    );
    wait_for(
        "2 pods in all (the adopted one counts)",
        DEFAULT_TIMEOUT,
        || async {
            let n = pods
                .list(&ListParams::default().labels("app=cats"))
                .await
                .ok()?
                .items
                .len();
            (n == 2).then_some(())
        },
    )
    .await;

    // Changing the labels releases the pod, and a replacement is made.
    pods.patch(
        "stray",
        &Patch::Merge(&json!({"metadata": {"labels": {"app": "dogs"}}})),
    )
    .await
    .unwrap();
    wait_for("the pod released", DEFAULT_TIMEOUT, || async {
        pods.get("stray")
            .await
            .ok()
            .filter(|p| p.metadata.owner_references.is_empty())
    })
    .await;
    wait_for("a replacement", DEFAULT_TIMEOUT, || async {
        let n = pods
            .list(&ListParams::default().labels("app=cats"))
            .await
            .ok()?
            .items
            .len();
        (n == 2).then_some(())
    })
    .await;
}
