//! ConfigMap volumes with real processes: files in the container's mount, `items` and modes,
//! updates reaching a running container (but not a `subPath` copy), a missing ConfigMap holding
//! the pod in ContainerCreating with a FailedMount event until it appears, `optional`.

mod common;

use std::os::unix::fs::PermissionsExt;

use api::ConfigMap;
use api::core::Event;
use client::{Api, ListParams, Patch};
use common::*;
use serde_json::json;
use testkit::{ControlPlane, DEFAULT_TIMEOUT, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_map_volumes_follow_updates() {
    let cp = ControlPlane::start().await;
    let k = start_kubelet(&cp, "node-v", 58, &["--sync-frequency", "1"]);
    let client = cp.client();
    create_config_map(
        &client,
        "game",
        json!({"player": "1", "ui.properties": "color=red"}),
    )
    .await;

    let mut reader = sh_pod(
        "reader",
        "while true; do echo \"player=$(cat etc/game/player) via=$(cat \"$KUBE_LITE_VOLUME_GAME/player\")\"; sleep 0.2; done",
    );
    reader["spec"]["volumes"] = json!([
        {"name": "game", "configMap": {"name": "game"}},
        {"name": "ui", "configMap": {"name": "game", "defaultMode": 0o400,
            "items": [{"key": "ui.properties", "path": "conf/ui.properties"}]}},
        {"name": "absent", "configMap": {"name": "not-there", "optional": true}},
    ]);
    reader["spec"]["containers"][0]["volumeMounts"] = json!([
        {"name": "game", "mountPath": "/etc/game"},
        {"name": "ui", "mountPath": "/etc/ui"},
        {"name": "game", "mountPath": "/etc/player.txt", "subPath": "player"},
        {"name": "absent", "mountPath": "/etc/absent"},
    ]);
    let p = create_pod(&client, "node-v", reader).await;
    let sandbox = k.root.join("pods").join(&p.metadata.uid);
    wait_pod(&client, "reader", "Running", running_with_ip).await;
    let logs = k.url("/containerLogs/default/reader/reader");
    wait_body(&logs, "the mounted file", |b| {
        b.contains("player=1 via=1\n")
    })
    .await;
    let ui = sandbox.join("etc/ui/conf/ui.properties");
    assert_eq!(std::fs::read_to_string(&ui).unwrap(), "color=red");
    let mode = std::fs::metadata(&ui).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o400);
    assert!(
        !sandbox.join("etc/ui/player").exists(),
        "items: only the listed keys"
    );

    // An update reaches the running container's files, not the subPath copy.
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .patch("game", &Patch::Merge(&json!({"data": {"player": "2"}})))
        .await
        .expect("patch configmap");
    wait_body(&logs, "the updated file", |b| {
        b.contains("player=2 via=2\n")
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(sandbox.join("etc/player.txt")).unwrap(),
        "1"
    );

    // A required ConfigMap that does not exist: ContainerCreating and FailedMount, until it does.
    let mut waiting = sh_pod("waiting", "exec sleep 3600");
    waiting["spec"]["volumes"] = json!([{"name": "cfg", "configMap": {"name": "later"}}]);
    waiting["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "cfg", "mountPath": "/etc/later"}]);
    create_pod(&client, "node-v", waiting).await;
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let msg = wait_for("a FailedMount event", DEFAULT_TIMEOUT, || async {
        let l = events
            .list(&ListParams::default().fields("involvedObject.name=waiting"))
            .await
            .ok()?;
        l.items
            .into_iter()
            .find(|e| e.reason == "FailedMount")
            .map(|e| e.message)
    })
    .await;
    assert_eq!(
        msg,
        "MountVolume.SetUp failed for volume \"cfg\" : configmap \"later\" not found"
    );
    let p = wait_pod(&client, "waiting", "ContainerCreating", |p| {
        waiting_reason(p, "waiting").is_some_and(|(r, _)| r == "ContainerCreating")
    })
    .await;
    assert_eq!(p.phase(), "Pending");
    create_config_map(&client, "later", json!({"k": "v"})).await;
    wait_pod(
        &client,
        "waiting",
        "Running once the ConfigMap exists",
        running_with_ip,
    )
    .await;
}
