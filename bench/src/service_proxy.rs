//! `bench service-proxy`: what a Service's virtual IP costs over going to the pods' IPs
//! directly, in both of kube-proxy-lite's modes, with one client for both sides.
//!
//! For each mode a `kube-lite up` (the real binary, one node) runs a Deployment of three web
//! servers behind a Service:
//! - **nftables** (`--runtime cri`, needs root): `kube-lite/web:1` (busybox httpd) in pods with
//!   their own network namespaces; the ClusterIP is DNATed by kube-proxy-lite's nftables rules;
//! - **userspace** (process runtime): busybox httpd as host processes on loopback pod IPs; the
//!   ClusterIP is a listener of kube-proxy-lite that copies each connection to a pod.
//!
//! The client is the same for both sides: `--clients` tasks, each sending `GET /` over a new TCP
//! connection (HTTP/1.0: the server closes) one after the other — "direct" spreads them over
//! the three pod IPs in turn, "vip" sends them all to the ClusterIP. Rounds alternate the two
//! sides so drift in the machine's speed lands on both. The table shows requests/s and
//! p50/p99 latency of each, and the VIP's cost as a ratio; the last line is one-line JSON.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use api::core::Pod;
use client::{Api, Client, ListParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::scheduler::build_binaries;
use crate::up::{Up, wait};

#[derive(clap::Args)]
pub struct ServiceProxyArgs {
    /// Modes to measure: `nftables` (needs root, containerd and the CNI plugins) and/or
    /// `userspace`.
    #[arg(long, value_delimiter = ',', default_value = "nftables,userspace")]
    modes: Vec<String>,
    /// Concurrent clients.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    clients: Vec<usize>,
    /// Measured seconds per side and client count, split over the rounds.
    #[arg(long, default_value_t = 6)]
    duration: u64,
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Keep the data directories and logs (their path is printed).
    #[arg(long)]
    keep: bool,
}

#[derive(Clone, Debug, Default)]
struct Side {
    requests: usize,
    errors: usize,
    secs: f64,
    lat_ms: Vec<f64>,
}

impl Side {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.secs.max(1e-9)
    }
    fn pct(&mut self, p: f64) -> f64 {
        self.lat_ms.sort_by(f64::total_cmp);
        if self.lat_ms.is_empty() {
            return 0.0;
        }
        let i = ((self.lat_ms.len() as f64 - 1.0) * p).round() as usize;
        self.lat_ms[i.min(self.lat_ms.len() - 1)]
    }
}

/// One `GET /` over a new connection; the time it took.
async fn one(addr: SocketAddr) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
    let mut buf = Vec::with_capacity(512);
    s.read_to_end(&mut buf).await?;
    if !buf.starts_with(b"HTTP/1.") || !buf.windows(4).any(|w| w == b" 200") {
        bail!("not a 200 answer");
    }
    Ok(t.elapsed())
}

/// `clients` tasks for `secs` seconds against `targets` (each task goes round them).
async fn load(targets: &[SocketAddr], clients: usize, secs: f64) -> Side {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let targets = targets.to_vec();
            tokio::spawn(async move {
                let mut s = Side::default();
                let mut i = c;
                while Instant::now() < until {
                    let addr = targets[i % targets.len()];
                    i += 1;
                    match tokio::time::timeout(Duration::from_secs(5), one(addr)).await {
                        Ok(Ok(d)) => {
                            s.requests += 1;
                            s.lat_ms.push(d.as_secs_f64() * 1e3);
                        }
                        _ => s.errors += 1,
                    }
                }
                s
            })
        })
        .collect();
    let mut all = Side {
        secs,
        ..Default::default()
    };
    for t in tasks {
        if let Ok(s) = t.await {
            all.requests += s.requests;
            all.errors += s.errors;
            all.lat_ms.extend(s.lat_ms);
        }
    }
    all
}

fn web_deployment(mode: &str) -> serde_json::Value {
    let container = if mode == "nftables" {
        serde_json::json!({"name": "web", "image": "kube-lite/web:1",
            "ports": [{"containerPort": 80}]})
    } else {
        serde_json::json!({"name": "web", "image": "busybox",
            "command": ["sh", "-c",
                "echo hello > index.html; exec busybox httpd -f -p \"$POD_IP:8000\" -h ."],
            "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "ports": [{"containerPort": 8000}]})
    };
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]}}}
    })
}

/// Start the cluster for `mode`, deploy, and return (pod targets, VIP target, the cluster).
async fn setup(mode: &str, root: &Path) -> anyhow::Result<(Vec<SocketAddr>, SocketAddr, Up)> {
    let up = Up::start(root, mode)?;
    let server = up.server.clone();
    let client = Client::new(&server, "bench")?;
    let nodes: Api<api::Node> = Api::all(client.clone());
    wait("a Ready node", 120, || async {
        let l = nodes.list(&ListParams::default()).await.ok()?;
        l.items.iter().any(|n| n.is_ready()).then_some(())
    })
    .await?;
    let http = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        let (http, url) = (http.clone(), format!("{server}{path}"));
        async move {
            let r = http.post(url).json(&body).send().await?;
            if !r.status().is_success() {
                bail!("{}: {}", r.status(), r.text().await.unwrap_or_default());
            }
            Ok::<(), anyhow::Error>(())
        }
    };
    post(
        "/apis/apps/v1/namespaces/default/deployments",
        web_deployment(mode),
    )
    .await?;
    let (svc_port, target) = if mode == "nftables" {
        (80, 80)
    } else {
        (8080, 8000)
    };
    post(
        "/api/v1/namespaces/default/services",
        serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"},
                "ports": [{"port": svc_port, "targetPort": target}]}}),
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod_targets = wait("3 ready pods", 180, || async {
        let l = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        let addrs: Vec<SocketAddr> = l
            .items
            .iter()
            .filter(|p| p.is_ready())
            .filter_map(|p| {
                let ip = p.status.as_ref()?.pod_ip.parse().ok()?;
                Some(SocketAddr::new(ip, target))
            })
            .collect();
        (addrs.len() == 3).then_some(addrs)
    })
    .await?;
    let svcs: Api<api::Service> = Api::namespaced(client.clone(), "default");
    let vip: std::net::IpAddr = svcs.get("web").await?.spec.cluster_ip.parse()?;
    let vip = SocketAddr::new(vip, svc_port);
    // Every pod answers directly, and the VIP reaches all three.
    for t in &pod_targets {
        let t = *t;
        wait("a pod to answer", 60, || async move { one(t).await.ok() }).await?;
    }
    wait("the ClusterIP to answer", 60, || async move {
        one(vip).await.ok()
    })
    .await?;
    Ok((pod_targets, vip, up))
}

pub async fn run(a: ServiceProxyArgs) -> anyhow::Result<()> {
    build_binaries(&["kube-lite"])?;
    let dir = tempfile::tempdir()?;
    let root = if a.keep {
        dir.keep()
    } else {
        dir.path().to_path_buf()
    };
    let mut summary = serde_json::Map::new();
    println!("service proxy: GET / over a new connection each, direct to pod IPs vs the ClusterIP");
    println!("| mode | clients | side | req/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|---|");
    let mut lines = Vec::new();
    for mode in &a.modes {
        if mode != "nftables" && mode != "userspace" {
            bail!("unknown mode {mode:?} (nftables, userspace)");
        }
        if mode == "nftables" && !nix::unistd::geteuid().is_root() {
            eprintln!("skipping nftables: it needs root (kube-lite up --runtime cri)");
            continue;
        }
        let (pods, vip, up) = setup(mode, &root)
            .await
            .with_context(|| format!("setting up the {mode} cluster"))?;
        let mut per_mode = serde_json::Map::new();
        for &c in &a.clients {
            let mut direct = Side::default();
            let mut through = Side::default();
            let slice = a.duration as f64 / f64::from(a.rounds.max(1));
            for r in 0..a.rounds.max(1) {
                let order: [bool; 2] = if r % 2 == 0 {
                    [false, true]
                } else {
                    [true, false]
                };
                for via_vip in order {
                    let s = if via_vip {
                        load(&[vip], c, slice).await
                    } else {
                        load(&pods, c, slice).await
                    };
                    let acc = if via_vip { &mut through } else { &mut direct };
                    acc.requests += s.requests;
                    acc.errors += s.errors;
                    acc.secs += s.secs;
                    acc.lat_ms.extend(s.lat_ms);
                }
            }
            let row = |name: &str, s: &mut Side| {
                let (p50, p99) = (s.pct(0.5), s.pct(0.99));
                println!(
                    "| {mode} | {c} | {name} | {:.0} | {p50:.2} | {p99:.2} | {} |",
                    s.rps(),
                    s.errors
                );
                serde_json::json!({"rps": (s.rps() * 10.0).round() / 10.0,
                    "p50_ms": (p50 * 1000.0).round() / 1000.0,
                    "p99_ms": (p99 * 1000.0).round() / 1000.0, "errors": s.errors})
            };
            let d = row("direct (pod IPs)", &mut direct);
            let v = row("vip (ClusterIP)", &mut through);
            let ratio = |k: &str| {
                let (x, y) = (d[k].as_f64().unwrap_or(0.0), v[k].as_f64().unwrap_or(0.0));
                if x > 0.0 { y / x } else { 0.0 }
            };
            lines.push(format!(
                "{mode}, {c} client(s): ClusterIP/direct p50 = {:.2}, p99 = {:.2}, req/s = {:.2}",
                ratio("p50_ms"),
                ratio("p99_ms"),
                ratio("rps")
            ));
            per_mode.insert(
                c.to_string(),
                serde_json::json!({"direct": d, "vip": v,
                    "p50_ratio": (ratio("p50_ms") * 100.0).round() / 100.0,
                    "rps_ratio": (ratio("rps") * 100.0).round() / 100.0}),
            );
        }
        summary.insert(mode.clone(), serde_json::Value::Object(per_mode));
        drop(up);
    }
    for l in lines {
        println!("{l}");
    }
    if a.keep {
        println!("data and logs kept in {}", root.display());
    }
    println!(
        "{}",
        serde_json::json!({"bench": "service-proxy", "modes": summary})
    );
    Ok(())
}
