//! Shared steps of the end-to-end tests: the blog example's pods, their processes, HTTP checks.

#![allow(dead_code)]

use std::time::Duration;

use api::core::Pod;
use client::{Api, Client, ListParams};
use testkit::{DEFAULT_TIMEOUT, wait_for};

pub fn blog_manifest() -> String {
    format!("{}/examples/blog.yaml", env!("CARGO_MANIFEST_DIR"))
}

/// Pods of the blog Deployment that are not being deleted.
pub async fn blog_pods(client: &Client) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    match api.list(&ListParams::default().labels("app=blog")).await {
        Ok(l) => l
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect(),
        Err(_) => vec![],
    }
}

/// Wait until `n` blog pods are Running with a pod IP, and return them.
pub async fn wait_running(client: &Client, n: usize, what: &str) -> Vec<Pod> {
    wait_for(what, DEFAULT_TIMEOUT, || async {
        let pods = blog_pods(client).await;
        let running: Vec<Pod> = pods
            .into_iter()
            .filter(|p| {
                p.phase() == "Running" && p.status.as_ref().is_some_and(|s| !s.pod_ip.is_empty())
            })
            .collect();
        (running.len() == n).then_some(running)
    })
    .await
}

pub fn pod_ip(p: &Pod) -> String {
    p.status
        .as_ref()
        .map(|s| s.pod_ip.clone())
        .unwrap_or_default()
}

/// Wait until the pod's web server answers with the blog page.
pub async fn wait_serving(p: &Pod) {
    let url = format!("http://{}:8000/", pod_ip(p));
    let what = format!("{} serving the blog at {url}", p.metadata.name);
    wait_for(&what, DEFAULT_TIMEOUT, || async {
        testkit::http_get(&url).await.filter(|body| {
            body.contains("Notes from a tiny cluster") && body.contains(&p.metadata.name)
        })
    })
    .await;
}

/// The pid of the process serving `ip` (python's http.server bound to the pod IP).
pub fn server_pid(ip: &str) -> Option<i32> {
    let bind = format!("--bind\0{ip}\0");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmdline);
        if cmd.contains("http.server") && cmd.contains(&bind) && testkit::pid_alive(pid) {
            return Some(pid);
        }
    }
    None
}

/// Every live process serving one of these IPs.
pub fn serving_pids(ips: &[String]) -> Vec<i32> {
    ips.iter().filter_map(|ip| server_pid(ip)).collect()
}

pub fn restart_count(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .map(|s| s.container_statuses.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

pub const SHORT: Duration = Duration::from_secs(30);
