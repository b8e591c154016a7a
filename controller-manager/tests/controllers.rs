//! The controller-manager binary against a real API server (no scheduler or kubelet: pods stay
//! Pending, which is all the ReplicaSet, Deployment and garbage-collector loops need).

use api::apps::{Deployment, ReplicaSet};
use api::core::Pod;
use api::meta::DeleteOptions;
use client::{Api, ListParams, Patch};
use testkit::{ControlPlane, DEFAULT_TIMEOUT, run_cli, wait_for};

fn deployment(replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": image}]}}}
    }))
    .unwrap()
}

async fn live_pods(api: &Api<Pod>) -> Vec<Pod> {
    api.list(&ListParams::default().labels("app=web"))
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_makes_a_replica_set_that_keeps_its_pods() {
    let cp = ControlPlane::start().await;
    let _cm = cp.start_component(
        "controller-manager",
        "controller-manager",
        &["--leader-elect=false".into()],
    );
    let client = cp.client();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    deployments.create(&deployment(3, "nginx:1")).await.unwrap();

    // A ReplicaSet named <deployment>-<pod-template-hash>, owned by the Deployment.
    let rs = wait_for("the ReplicaSet", DEFAULT_TIMEOUT, || async {
        rss.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await;
    let hash = rs
        .metadata
        .labels
        .get("pod-template-hash")
        .cloned()
        .expect("hash label");
    assert_eq!(rs.metadata.name, format!("web-{hash}"));
    let owner = rs.metadata.controller_ref().expect("controller ref");
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Deployment", "web")
    );
    assert_eq!(
        rs.metadata
            .annotations
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("1")
    );

    let three = wait_for("3 pods", DEFAULT_TIMEOUT, || async {
        let p = live_pods(&pods).await;
        (p.len() == 3).then_some(p)
    })
    .await;
    for p in &three {
        assert!(
            p.metadata.name.starts_with(&format!("web-{hash}-")),
            "{}",
            p.metadata.name
        );
        assert_eq!(
            p.metadata.controller_ref().map(|r| r.name.as_str()),
            Some(rs.metadata.name.as_str())
        );
    }

    // A deleted pod is replaced.
    let gone = three[0].metadata.name.clone();
    pods.delete(&gone, &DeleteOptions::default()).await.unwrap();
    wait_for("a replacement pod", DEFAULT_TIMEOUT, || async {
        let p = live_pods(&pods).await;
        (p.len() == 3 && p.iter().all(|x| x.metadata.name != gone)).then_some(())
    })
    .await;

    // Scaling the Deployment scales its ReplicaSet.
    deployments
        .patch(
            "web",
            &Patch::Merge(&serde_json::json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    wait_for("5 pods", DEFAULT_TIMEOUT, || async {
        (live_pods(&pods).await.len() == 5).then_some(())
    })
    .await;

    // A template change makes a new ReplicaSet (revision 2); the old one is scaled down as the
    // new pods become available — here none do (no kubelet), so with maxUnavailable 25% of 5 = 1
    // the old ReplicaSet may lose one pod at most.
    deployments
        .patch("web", &Patch::Strategic(&serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}})))
        .await
        .unwrap();
    let new_rs = wait_for("a second ReplicaSet", DEFAULT_TIMEOUT, || async {
        let l = rss.list(&ListParams::default()).await.ok()?;
        l.items
            .into_iter()
            .find(|r| r.metadata.name != rs.metadata.name)
    })
    .await;
    assert_eq!(
        new_rs
            .metadata
            .annotations
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("2")
    );
    assert_eq!(new_rs.spec.template.spec.containers[0].image, "nginx:2");

    // Deleting the Deployment (background propagation) removes ReplicaSets and pods.
    deployments
        .delete(
            "web",
            &DeleteOptions {
                propagation_policy: Some("Background".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    wait_for(
        "the garbage collector to remove everything",
        DEFAULT_TIMEOUT,
        || async {
            let r = rss.list(&ListParams::default()).await.ok()?;
            let p = pods.list(&ListParams::default()).await.ok()?;
            (r.items.is_empty() && p.items.is_empty()).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn bad_flags_are_one_line_errors() {
    let (code, _, err) = run_cli("controller-manager", &["--workers", "many"], &[], None);
    assert_ne!(code, 0);
    assert!(err.contains("invalid value 'many'"), "{err}");
}
