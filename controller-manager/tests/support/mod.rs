//! A cluster for controller tests: kvstore + apiserver, plus whichever of scheduler,
//! controller-manager and kubelet-lite a test needs, as separate processes.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use api::apps::Deployment;
use api::core::Pod;
use api::meta::WatchEvent;
use client::{Api, Client, ListParams};
use futures::StreamExt;
use testkit::{ControlPlane, Proc, free_port};

pub struct Cluster {
    pub cp: ControlPlane,
    pub procs: Vec<Proc>,
    pub kubelets: Vec<Proc>,
}

pub const CM_FAST: &[&str] = &["--leader-elect=false", "--node-monitor-period", "0.5"];

impl Cluster {
    pub async fn start(controller_manager_args: &[&str], kubelets: usize) -> Cluster {
        let cp = ControlPlane::start().await;
        let mut procs =
            vec![cp.start_component("scheduler", "scheduler", &["--leader-elect=false".into()])];
        let args: Vec<String> = controller_manager_args
            .iter()
            .map(|s| s.to_string())
            .collect();
        procs.push(cp.start_component("controller-manager", "controller-manager", &args));
        let mut c = Cluster {
            cp,
            procs,
            kubelets: Vec::new(),
        };
        for i in 1..=kubelets {
            let k = c.kubelet(i);
            c.kubelets.push(k);
        }
        c
    }

    /// Start (or restart) node `worker-i` with its fixed root dir.
    pub fn kubelet(&self, i: usize) -> Proc {
        let root = self.cp.dir.path().join(format!("node-{i}"));
        self.cp.start_component(
            "kubelet-lite",
            &format!("kubelet-{i}"),
            &[
                "--node-name".into(),
                format!("worker-{i}"),
                "--port".into(),
                free_port().to_string(),
                "--root-dir".into(),
                root.display().to_string(),
                "--pod-cidr".into(),
                format!("127.{}.0.0/16", 60 + i),
                "--restart-backoff".into(),
                "1".into(),
            ],
        )
    }

    pub fn client(&self) -> Client {
        self.cp.client()
    }
}

/// A Deployment whose pods are long-running host processes.
pub fn deployment(
    name: &str,
    replicas: i32,
    version: &str,
    strategy: serde_json::Value,
) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "strategy": strategy,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "version": version}},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [{"name": "main", "image": format!("sleeper:{version}"),
                                    "command": ["sleep", "100000"]}]
                }
            }
        }
    }))
    .expect("deployment")
}

/// Every pod event of a label selector, recorded in order from `resource_version`.
#[derive(Clone, Default)]
pub struct PodLog {
    pub events: Arc<Mutex<Vec<(String, Pod)>>>,
}

impl PodLog {
    pub fn start(client: &Client, labels: &str, resource_version: &str) -> PodLog {
        let log = PodLog::default();
        let events = log.events.clone();
        let url = format!(
            "{}/api/v1/namespaces/default/pods?watch=true&labelSelector={}&resourceVersion={resource_version}",
            client.base_url(),
            labels
        );
        tokio::spawn(async move {
            let http = reqwest::Client::builder().no_proxy().build().expect("http");
            let Ok(resp) = http.get(url).send().await else {
                return;
            };
            let mut stream = Box::pin(client::ndjson::decode::<WatchEvent<Pod>, _, _>(
                resp.bytes_stream(),
            ));
            while let Some(Ok(ev)) = stream.next().await {
                events.lock().unwrap().push((ev.type_, ev.object));
            }
        });
        log
    }

    /// Replay the events: the state (pod name → pod) after each one.
    pub fn states(&self) -> Vec<BTreeMap<String, Pod>> {
        let mut state = BTreeMap::new();
        let mut out = Vec::new();
        for (t, p) in self.events.lock().unwrap().iter() {
            if t == "DELETED" {
                state.remove(&p.metadata.name);
            } else {
                state.insert(p.metadata.name.clone(), p.clone());
            }
            out.push(state.clone());
        }
        out
    }
}

pub async fn deployment_rv(api: &Api<Deployment>, name: &str) -> String {
    api.get(name)
        .await
        .map(|d| d.metadata.resource_version)
        .unwrap_or_default()
}

pub async fn pods_with(client: &Client, labels: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default().labels(labels))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// Deployment status says everything is rolled out and available.
pub fn rolled_out(d: &Deployment) -> bool {
    let want = d.spec.replicas.unwrap_or(1);
    let s = d.status.clone().unwrap_or_default();
    s.observed_generation >= d.metadata.generation
        && s.updated_replicas == want
        && s.replicas == want
        && s.available_replicas == want
}
