//! Shared steps of kubelet-lite's integration tests: a kubelet-lite process against a real
//! control plane, pods created already bound to it, and polling with deadlines.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use api::Pod;
use api::remotecommand::{self as rc, Finished, TerminalSize};
use client::{Api, Client};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use testkit::{ControlPlane, DEFAULT_TIMEOUT, Proc, free_port, wait_for};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// A kubelet-lite process and how to reach it.
pub struct Kubelet {
    pub proc: Proc,
    pub node: String,
    pub port: u16,
    pub root: PathBuf,
    pub cidr: String,
}

pub fn kubelet_args(node: &str, port: u16, root: &std::path::Path, cidr: &str) -> Vec<String> {
    vec![
        "--node-name".into(),
        node.into(),
        "--port".into(),
        port.to_string(),
        "--root-dir".into(),
        root.display().to_string(),
        "--pod-cidr".into(),
        cidr.into(),
        "--restart-backoff".into(),
        "1".into(),
    ]
}

/// Start kubelet-lite for `node` with pod CIDR `127.<octet>.0.0/16`.
pub fn start_kubelet(cp: &ControlPlane, node: &str, octet: u8, extra: &[&str]) -> Kubelet {
    let port = free_port();
    let root = cp.dir.path().join(node);
    let cidr = format!("127.{octet}.0.0/16");
    let mut args = kubelet_args(node, port, &root, &cidr);
    args.extend(extra.iter().map(|s| s.to_string()));
    let proc = cp.start_component("kubelet-lite", node, &args);
    Kubelet {
        proc,
        node: node.into(),
        port,
        root,
        cidr,
    }
}

impl Kubelet {
    /// Start the same kubelet again (same node, port, root dir, CIDR).
    pub fn restart(&mut self, cp: &ControlPlane) {
        let args = kubelet_args(&self.node, self.port, &self.root, &self.cidr);
        self.proc = cp.start_component("kubelet-lite", &self.node, &args);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

pub fn pods(client: &Client) -> Api<Pod> {
    Api::namespaced(client.clone(), "default")
}

/// Create a pod already bound to `node` (no scheduler needed).
pub async fn create_pod(client: &Client, node: &str, mut pod: Value) -> Pod {
    pod["apiVersion"] = "v1".into();
    pod["kind"] = "Pod".into();
    pod["spec"]["nodeName"] = node.into();
    let p: Pod = serde_json::from_value(pod).expect("pod json");
    pods(client).create(&p).await.expect("create pod")
}

/// A one-container pod running `sh -c script`.
pub fn sh_pod(name: &str, script: &str) -> Value {
    serde_json::json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": name,
                "image": "busybox:1.36",
                "command": ["sh", "-c"],
                "args": [script],
            }]
        }
    })
}

/// Wait until the pod satisfies `pred`; return it.
pub async fn wait_pod(client: &Client, name: &str, what: &str, pred: impl Fn(&Pod) -> bool) -> Pod {
    let api = pods(client);
    let what = format!("pod {name}: {what}");
    let last = std::sync::Mutex::new(None::<Pod>);
    let r = tokio::time::timeout(
        DEFAULT_TIMEOUT,
        wait_for(&what, DEFAULT_TIMEOUT + Duration::from_secs(5), || async {
            let p = api.get(name).await.ok()?;
            let ok = pred(&p);
            *last.lock().unwrap() = Some(p.clone());
            ok.then_some(p)
        }),
    )
    .await;
    match r {
        Ok(p) => p,
        Err(_) => panic!(
            "timed out waiting for {what}; last seen status: {}",
            serde_json::to_string_pretty(&last.lock().unwrap().as_ref().map(|p| p.status.clone()))
                .unwrap_or_default()
        ),
    }
}

pub fn running_with_ip(p: &Pod) -> bool {
    p.phase() == "Running" && p.status.as_ref().is_some_and(|s| !s.pod_ip.is_empty())
}

pub fn pod_ip(p: &Pod) -> String {
    p.status
        .as_ref()
        .map(|s| s.pod_ip.clone())
        .unwrap_or_default()
}

pub fn container_status<'a>(p: &'a Pod, name: &str) -> Option<&'a api::core::ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .iter()
        .find(|c| c.name == name)
}

/// The pid of a running container (`containerID: kube-lite://<pid>`).
pub fn container_pid(p: &Pod, name: &str) -> Option<i32> {
    let c = container_status(p, name)?;
    c.state.running.as_ref()?;
    c.container_id.strip_prefix("kube-lite://")?.parse().ok()
}

pub fn restart_count(p: &Pod, name: &str) -> i32 {
    container_status(p, name)
        .map(|c| c.restart_count)
        .unwrap_or(0)
}

pub fn waiting_reason(p: &Pod, name: &str) -> Option<(String, String)> {
    let w = container_status(p, name)?.state.waiting.as_ref()?;
    Some((w.reason.clone(), w.message.clone()))
}

/// GET a URL: (status code, body). None when unreachable.
pub async fn get(url: &str) -> Option<(u16, String)> {
    let c = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .ok()?;
    let r = c.get(url).send().await.ok()?;
    let code = r.status().as_u16();
    Some((code, r.text().await.ok()?))
}

/// Wait until a URL answers 200 with a body satisfying `pred`.
pub async fn wait_body(url: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
    wait_for(what, DEFAULT_TIMEOUT, || async {
        let (code, body) = get(url).await?;
        (code == 200 && pred(&body)).then_some(body)
    })
    .await
}

/// Wait until the pod object is gone from the API server.
pub async fn wait_pod_gone(client: &Client, name: &str) {
    let api = pods(client);
    wait_for(
        &format!("pod {name} to disappear"),
        DEFAULT_TIMEOUT,
        || async {
            match api.get(name).await {
                Err(e) if e.is_not_found() => Some(()),
                _ => None,
            }
        },
    )
    .await;
}

/// Wait until a process is gone.
pub async fn wait_pid_gone(pid: i32, what: &str) {
    wait_for(what, DEFAULT_TIMEOUT, || async {
        (!testkit::pid_alive(pid)).then_some(())
    })
    .await;
}

/// Reasons of the events recorded about a pod.
pub async fn event_reasons(client: &Client, pod: &str) -> Vec<String> {
    let api: Api<api::Event> = Api::namespaced(client.clone(), "default");
    let params = client::ListParams::default().fields(&format!("involvedObject.name={pod}"));
    api.list(&params)
        .await
        .map(|l| l.items.into_iter().map(|e| e.reason).collect())
        .unwrap_or_default()
}

pub async fn wait_event(client: &Client, pod: &str, reason: &str) {
    wait_for(
        &format!("a {reason} event about {pod}"),
        DEFAULT_TIMEOUT,
        || async {
            event_reasons(client, pod)
                .await
                .iter()
                .any(|r| r == reason)
                .then_some(())
        },
    )
    .await;
}

/// Create ConfigMap `name` in `default` with `data`.
pub async fn create_config_map(client: &Client, name: &str, data: Value) {
    let cm: api::ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": data,
    }))
    .expect("configmap");
    Api::<api::ConfigMap>::namespaced(client.clone(), "default")
        .create(&cm)
        .await
        .expect("create configmap");
}

// kubectl exec at the kubelet: a WebSocket client speaking Kubernetes' channel protocols.

/// What an exec session gave back.
#[derive(Debug, Default)]
pub struct Session {
    pub stdout: String,
    pub stderr: String,
    pub finished: Option<Finished>,
}

/// What a client sends during the session.
#[derive(Default)]
pub struct Input<'a> {
    pub stdin: Option<&'a [u8]>,
    /// Close stdin after it (v5's close signal).
    pub close_stdin: bool,
    pub resize: Option<TerminalSize>,
}

/// Run one exec session against `url` (`ws://…`) offering `protocols`; `Err((code, body))`
/// when the server refuses the upgrade.
pub async fn exec(url: &str, protocols: &str, input: Input<'_>) -> Result<Session, (u16, String)> {
    let mut req = url.into_client_request().expect("request");
    if !protocols.is_empty() {
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(protocols).unwrap(),
        );
    }
    let (ws, resp) = match tokio_tungstenite::connect_async(req).await {
        Ok(x) => x,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            let body = r
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            return Err((r.status().as_u16(), body));
        }
        Err(e) => panic!("exec connection failed: {e}"),
    };
    let protocol = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        protocols.contains(&protocol) && !protocol.is_empty(),
        "negotiated {protocol:?} of {protocols:?}"
    );
    let (mut tx, mut rx) = ws.split();
    if let Some(size) = input.resize {
        tx.send(Message::Binary(rc::resize_frame(size).into()))
            .await
            .unwrap();
    }
    if let Some(data) = input.stdin {
        tx.send(Message::Binary(rc::frame(rc::STDIN, data).into()))
            .await
            .unwrap();
    }
    if input.close_stdin {
        tx.send(Message::Binary(rc::close_frame(rc::STDIN).into()))
            .await
            .unwrap();
    }
    let mut s = Session::default();
    let mut error = Vec::new();
    let read = async {
        while let Some(m) = rx.next().await {
            match m {
                Ok(Message::Binary(b)) => match b.split_first() {
                    Some((&rc::STDOUT, d)) => s.stdout.push_str(&String::from_utf8_lossy(d)),
                    Some((&rc::STDERR, d)) => s.stderr.push_str(&String::from_utf8_lossy(d)),
                    Some((&rc::ERROR, d)) => error.extend_from_slice(d),
                    _ => {}
                },
                Ok(Message::Close(_)) => break,
                Ok(_) => {}
                Err(e) => panic!("exec stream failed: {e}"),
            }
        }
    };
    tokio::time::timeout(testkit::DEFAULT_TIMEOUT, read)
        .await
        .expect("the exec session ends in time");
    s.finished = (!error.is_empty()).then(|| rc::decode_status(&error));
    Ok(s)
}
