//! Pods on a kubelet-lite node, end to end against a real kvstore + API server: a web server
//! on its own pod IP with its environment from a ConfigMap, logs (direct and through the API
//! server), config errors that heal, restarts, crash loops, completion, deletion.

mod common;

use api::ConfigMap;
use api::meta::DeleteOptions;
use client::{Api, Patch};
use common::*;
use futures::StreamExt;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use testkit::{ControlPlane, DEFAULT_TIMEOUT, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_pod_serves_on_its_ip_with_config_and_logs_then_goes_away() {
    let cp = ControlPlane::start().await;
    let k = start_kubelet(&cp, "node-b", 52, &[]);
    let client = cp.client();
    create_config_map(
        &client,
        "web-config",
        json!({"title": "Hello", "greeting": "hi there"}),
    )
    .await;
    let script = "echo \"title=$TITLE greeting=$CFG_greeting ip=$POD_IP node=$NODE cpu=$CPU\"; \
                  echo \"<h1>hello from $HOSTNAME</h1>\" > index.html; \
                  exec python3 -u -m http.server $(PORT) --bind $(POD_IP) --directory .";
    let mut pod = sh_pod("web", script);
    pod["spec"]["containers"][0]["env"] = json!([
        {"name": "PORT", "value": "8080"},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "TITLE", "valueFrom": {"configMapKeyRef": {"name": "web-config", "key": "title"}}},
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
    ]);
    pod["spec"]["containers"][0]["envFrom"] =
        json!([{"prefix": "CFG_", "configMapRef": {"name": "web-config"}}]);
    pod["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "250m"}});
    pod["spec"]["containers"][0]["image"] = json!("python:3.12-alpine");
    create_pod(&client, "node-b", pod).await;

    let p = wait_pod(&client, "web", "Running with an IP", running_with_ip).await;
    let ip = pod_ip(&p);
    assert!(ip.starts_with("127.52."), "{ip}");
    assert!(!ip.ends_with(".0") && !ip.ends_with(".255"), "{ip}");
    let s = p.status.clone().unwrap();
    assert_eq!(s.host_ip, "127.0.0.1");
    assert_eq!(s.pod_ips.first().map(|i| i.ip.as_str()), Some(ip.as_str()));
    assert!(s.start_time.is_some());
    let p = wait_pod(&client, "web", "Ready", |p| p.is_ready()).await;
    for c in ["Initialized", "ContainersReady", "Ready", "PodScheduled"] {
        assert_eq!(
            p.condition(c).map(|c| c.status.as_str()),
            Some("True"),
            "{c}"
        );
    }
    let cs = container_status(&p, "web").unwrap();
    assert!(cs.ready && cs.started == Some(true));
    assert_eq!(cs.image, "python:3.12-alpine");
    assert_eq!(cs.image_id, "kube-lite://python:3.12-alpine");
    assert!(cs.state.running.as_ref().unwrap().started_at.is_some());
    let pid = container_pid(&p, "web").expect("container pid");
    assert!(testkit::pid_alive(pid));

    // The process answers at the pod IP.
    let page = wait_body(
        &format!("http://{ip}:8080/index.html"),
        "the pod's web server",
        |b| b.contains("hello from web"),
    )
    .await;
    assert!(page.contains("<h1>hello from web</h1>"), "{page}");

    // Its environment came from the ConfigMap, the pod and its resources; read it in the logs.
    let want = format!("title=Hello greeting=hi there ip={ip} node=node-b cpu=250");
    let logs = wait_body(
        &k.url("/containerLogs/default/web/web"),
        "the env line in the logs",
        |b| b.contains("title="),
    )
    .await;
    assert!(logs.lines().next().is_some_and(|l| l == want), "{logs}");
    // … and through the API server, which proxies to the kubelet.
    let via_api = wait_body(
        &format!("{}/api/v1/namespaces/default/pods/web/log", cp.server),
        "logs through the API server",
        |b| b.contains("title="),
    )
    .await;
    assert!(via_api.contains(&want), "{via_api}");

    // tailLines and timestamps: python logs one stderr line per request.
    for i in 0..3 {
        get(&format!("http://{ip}:8080/req-{i}")).await;
    }
    let tail = wait_body(
        &k.url("/containerLogs/default/web/web?tailLines=1"),
        "the last request logged",
        |b| b.contains("/req-2"),
    )
    .await;
    assert_eq!(tail.lines().count(), 1, "{tail}");
    let stamped = wait_body(
        &k.url("/containerLogs/default/web/web?tailLines=2&timestamps=true"),
        "timestamped lines",
        |b| b.contains("/req-2"),
    )
    .await;
    assert_eq!(stamped.lines().count(), 2, "{stamped}");
    for line in stamped.lines() {
        let (ts, _) = line.split_once(' ').unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{line}");
    }
    let limited = get(&k.url("/containerLogs/default/web/web?limitBytes=5"))
        .await
        .unwrap();
    assert_eq!(limited, (200, "title".to_string()));

    // follow: new lines arrive as they are written.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = http
        .get(k.url("/containerLogs/default/web/web?follow=true&tailLines=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut stream = resp.bytes_stream();
    get(&format!("http://{ip}:8080/followed")).await;
    let mut seen = String::new();
    tokio::time::timeout(DEFAULT_TIMEOUT, async {
        while !seen.contains("/followed") {
            match stream.next().await {
                Some(Ok(b)) => seen.push_str(&String::from_utf8_lossy(&b)),
                other => panic!("follow stream ended early: {other:?} after {seen:?}"),
            }
        }
    })
    .await
    .expect("followed line in time");
    assert!(
        !seen.contains("title="),
        "tailLines=0 starts at the end: {seen}"
    );

    // Errors are plain text.
    let (code, body) = get(&k.url("/containerLogs/default/web/nope"))
        .await
        .unwrap();
    assert_eq!(code, 404, "{body}");
    let (code, body) = get(&k.url("/containerLogs/default/web/web?previous=true"))
        .await
        .unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("previous terminated container \"web\" in pod \"web\" not found"),
        "{body}"
    );

    for reason in ["Pulled", "Created", "Started"] {
        wait_event(&client, "web", reason).await;
    }

    // Deleting the pod stops the process (SIGTERM), then the kubelet removes the object, and
    // the follow stream ends with the container.
    let uid = p.metadata.uid.clone();
    pods(&client)
        .delete("web", &DeleteOptions::default())
        .await
        .expect("delete");
    wait_pid_gone(pid, "the web process to stop").await;
    wait_pod_gone(&client, "web").await;
    tokio::time::timeout(DEFAULT_TIMEOUT, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await
    .expect("the follow stream ends when the container does");
    wait_event(&client, "web", "Killing").await;
    let sandbox = k.root.join("pods").join(&uid);
    wait_for("the sandbox to be removed", DEFAULT_TIMEOUT, || async {
        (!sandbox.exists()).then_some(())
    })
    .await;
    let (code, _) = get(&k.url("/containerLogs/default/web/web")).await.unwrap();
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_config_waits_with_create_container_config_error_until_it_appears() {
    let cp = ControlPlane::start().await;
    let k = start_kubelet(&cp, "node-c", 53, &[]);
    let client = cp.client();
    let mut pod = sh_pod("late", "echo greeting=$GREETING; exec sleep 3600");
    pod["spec"]["containers"][0]["env"] = json!([
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "late-config", "key": "greeting"}}},
        {"name": "OPTIONAL", "valueFrom": {"configMapKeyRef": {"name": "never", "key": "x", "optional": true}}},
    ]);
    create_pod(&client, "node-c", pod).await;

    let p = wait_pod(
        &client,
        "late",
        "CreateContainerConfigError (no ConfigMap)",
        |p| waiting_reason(p, "late").is_some_and(|(r, _)| r == "CreateContainerConfigError"),
    )
    .await;
    assert_eq!(p.phase(), "Pending");
    assert_eq!(
        waiting_reason(&p, "late").unwrap().1,
        "configmap \"late-config\" not found"
    );
    assert_eq!(
        p.condition("Ready").map(|c| c.status.as_str()),
        Some("False")
    );
    wait_event(&client, "late", "Failed").await;
    let (code, body) = get(&k.url("/containerLogs/default/late/late"))
        .await
        .unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("is waiting to start: CreateContainerConfigError"),
        "{body}"
    );

    // The ConfigMap appears, without the key.
    create_config_map(&client, "late-config", json!({"other": "x"})).await;
    wait_pod(&client, "late", "the missing-key message", |p| {
        waiting_reason(p, "late").is_some_and(|(_, m)| {
            m == "couldn't find key greeting in ConfigMap default/late-config"
        })
    })
    .await;

    // The key appears: the container starts.
    let patch = json!({"data": {"greeting": "finally"}});
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .patch("late-config", &Patch::Merge(&patch))
        .await
        .expect("patch configmap");
    let p = wait_pod(&client, "late", "Running", running_with_ip).await;
    assert_eq!(restart_count(&p, "late"), 0);
    wait_body(
        &k.url("/containerLogs/default/late/late"),
        "the greeting in the logs",
        |b| b.contains("greeting=finally"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_restart_crash_loop_and_complete_per_restart_policy() {
    let cp = ControlPlane::start().await;
    let k = start_kubelet(&cp, "node-d", 54, &[]);
    let client = cp.client();
    create_pod(
        &client,
        "node-d",
        sh_pod("sleeper", "echo run; exec sleep 3600"),
    )
    .await;
    create_pod(
        &client,
        "node-d",
        sh_pod("crasher", "echo crashing; exit 1"),
    )
    .await;
    let mut once = sh_pod("once", "echo done");
    once["spec"]["restartPolicy"] = json!("Never");
    create_pod(&client, "node-d", once).await;
    let mut broken = sh_pod("broken", "exit 3");
    broken["spec"]["restartPolicy"] = json!("Never");
    create_pod(&client, "node-d", broken).await;
    let mut missing = sh_pod("missing", "");
    missing["spec"]["containers"][0]["command"] = json!(["no-such-binary-kube-lite"]);
    missing["spec"]["containers"][0]["args"] = json!([]);
    missing["spec"]["restartPolicy"] = json!("Never");
    create_pod(&client, "node-d", missing).await;

    // kill -9 from outside: the container is restarted, restartCount 1.
    let p = wait_pod(&client, "sleeper", "Running", running_with_ip).await;
    let pid = container_pid(&p, "sleeper").expect("pid");
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill -9");
    let p = wait_pod(&client, "sleeper", "restarted after kill -9", |p| {
        restart_count(p, "sleeper") == 1 && container_pid(p, "sleeper").is_some_and(|n| n != pid)
    })
    .await;
    assert_eq!(p.phase(), "Running");
    let last = container_status(&p, "sleeper")
        .unwrap()
        .last_state
        .terminated
        .clone()
        .expect("lastState");
    assert_eq!(
        (last.exit_code, last.signal, last.reason.as_str()),
        (137, 9, "Error")
    );
    assert!(!testkit::pid_alive(pid));
    let prev = wait_body(
        &k.url("/containerLogs/default/sleeper/sleeper?previous=true"),
        "previous logs",
        |b| b.contains("run"),
    )
    .await;
    assert_eq!(prev, "run\n");

    // A container that keeps failing: CrashLoopBackOff with Kubernetes' message, growing count.
    let p = wait_pod(&client, "crasher", "CrashLoopBackOff after restarts", |p| {
        restart_count(p, "crasher") >= 2
            && waiting_reason(p, "crasher").is_some_and(|(r, _)| r == "CrashLoopBackOff")
    })
    .await;
    let (_, msg) = waiting_reason(&p, "crasher").unwrap();
    let uid = &p.metadata.uid;
    assert!(msg.starts_with("back-off "), "{msg}");
    assert!(
        msg.ends_with(&format!(
            "restarting failed container=crasher pod=crasher_default({uid})"
        )),
        "{msg}"
    );
    assert_eq!(p.phase(), "Running");
    let last = container_status(&p, "crasher")
        .unwrap()
        .last_state
        .terminated
        .clone()
        .unwrap();
    assert_eq!((last.exit_code, last.reason.as_str()), (1, "Error"));
    wait_event(&client, "crasher", "BackOff").await;
    let n = restart_count(&p, "crasher");
    wait_pod(&client, "crasher", "more restarts", |p| {
        restart_count(p, "crasher") > n
    })
    .await;

    // restartPolicy Never: Succeeded / Failed, and nothing restarts.
    let p = wait_pod(&client, "once", "Succeeded", |p| p.phase() == "Succeeded").await;
    let t = container_status(&p, "once")
        .unwrap()
        .state
        .terminated
        .clone()
        .unwrap();
    assert_eq!((t.exit_code, t.reason.as_str()), (0, "Completed"));
    assert_eq!(
        p.condition("Ready").map(|c| c.reason.as_str()),
        Some("PodCompleted")
    );
    let p = wait_pod(&client, "broken", "Failed", |p| p.phase() == "Failed").await;
    let t = container_status(&p, "broken")
        .unwrap()
        .state
        .terminated
        .clone()
        .unwrap();
    assert_eq!((t.exit_code, t.reason.as_str()), (3, "Error"));
    assert_eq!(restart_count(&p, "broken"), 0);
    let p = wait_pod(&client, "missing", "Failed (no such executable)", |p| {
        p.phase() == "Failed"
    })
    .await;
    let t = container_status(&p, "missing")
        .unwrap()
        .state
        .terminated
        .clone()
        .unwrap();
    assert_eq!(t.reason, "StartError");
    assert!(
        t.message.contains("executable file not found"),
        "{}",
        t.message
    );

    // Completed pods keep their logs until they are deleted.
    let logs = wait_body(
        &k.url("/containerLogs/default/once/once"),
        "the completed pod's logs",
        |b| b.contains("done"),
    )
    .await;
    assert_eq!(logs, "done\n");
    pods(&client)
        .delete("once", &DeleteOptions::default())
        .await
        .expect("delete");
    wait_pod_gone(&client, "once").await;

    // Force deletion (grace 0) kills at once.
    let p = wait_pod(&client, "sleeper", "Running", running_with_ip).await;
    let pid = container_pid(&p, "sleeper").unwrap();
    let opts = DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    pods(&client)
        .delete("sleeper", &opts)
        .await
        .expect("force delete");
    wait_pid_gone(pid, "the force-deleted pod's process").await;
    wait_pod_gone(&client, "sleeper").await;
}
