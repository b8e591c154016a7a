//! `bench endpoints`: how soon a Service's new endpoints carry traffic — the time from an
//! EndpointSlice change being written to the API server until kube-proxy-lite has programmed
//! the node so that a new connection to the ClusterIP lands on the new endpoints — with
//! `--services` Services of `--endpoints` endpoints each in the rules (100 × 10 by default).
//!
//! The measured Service has no selector: the bench writes its slice itself, switching it between
//! two sets of addresses (A and B) that one listener of the bench answers on, saying which set a
//! connection came in on. It then opens connections to the ClusterIP, one after the other, until
//! one lands on the new set. The other Services' endpoints are addresses nothing listens on:
//! they only make the rules as big as a real cluster's. Both modes: nftables (`--runtime cri`,
//! root; A and B are /32s the bench adds to `lo` and removes) and user space (process
//! runtime; A and B are 127.0.x.y).
//!
//! This is kube-proxy-lite's leg of the Kubernetes network-programming SLI (pod Ready →
//! programmed); the EndpointSlice controller's leg (pod Ready → slice written) comes before it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::scheduler::{build_binaries, free_port};
use crate::up::{Up, wait};

#[derive(clap::Args)]
pub struct EndpointsArgs {
    #[arg(long, value_delimiter = ',', default_value = "nftables,userspace")]
    modes: Vec<String>,
    /// Services in the rules besides the measured one.
    #[arg(long, default_value_t = 100)]
    services: usize,
    /// Endpoints per Service.
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Changes measured per mode.
    #[arg(long, default_value_t = 50)]
    changes: usize,
    #[arg(long)]
    keep: bool,
}

/// The nftables mode's endpoint addresses, /32s on `lo` (not 127/8, so DNAT may lead to them),
/// removed when dropped.
struct LoAddrs(Vec<Ipv4Addr>);

impl Drop for LoAddrs {
    fn drop(&mut self) {
        for a in &self.0 {
            let _ = std::process::Command::new("ip")
                .args(["addr", "del", &format!("{a}/32"), "dev", "lo"])
                .output();
        }
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new("ip").args(args).output()?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn slice(name: &str, service: &str, addrs: &[Ipv4Addr], port: u16) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "default",
            "labels": {"kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "bench"}},
        "addressType": "IPv4",
        "endpoints": addrs.iter().map(|a| serde_json::json!({
            "addresses": [a.to_string()], "conditions": {"ready": true}})).collect::<Vec<_>>(),
        "ports": [{"port": port, "protocol": "TCP"}]
    })
}

/// Which set (0 = A, 1 = B) a connection to `vip` lands on.
async fn probe(vip: SocketAddr) -> Option<u8> {
    let mut s = tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(vip),
    )
    .await
    .ok()?
    .ok()?;
    let mut b = [0u8; 1];
    tokio::time::timeout(Duration::from_millis(500), s.read_exact(&mut b))
        .await
        .ok()?
        .ok()?;
    Some(b[0])
}

async fn measure_mode(a: &EndpointsArgs, mode: &str, root: &Path) -> anyhow::Result<Vec<f64>> {
    // The two address sets.
    let (set_a, set_b, _addrs): (Vec<Ipv4Addr>, Vec<Ipv4Addr>, Option<LoAddrs>) =
        if mode == "nftables" {
            let a: Vec<Ipv4Addr> = (1..=10).map(|i| Ipv4Addr::new(10, 254, 20, i)).collect();
            let b: Vec<Ipv4Addr> = (1..=10).map(|i| Ipv4Addr::new(10, 254, 21, i)).collect();
            let mut added = LoAddrs(Vec::new());
            for x in a.iter().chain(&b) {
                let _ = ip(&["addr", "del", &format!("{x}/32"), "dev", "lo"]);
                ip(&["addr", "add", &format!("{x}/32"), "dev", "lo"])?;
                added.0.push(*x);
            }
            (a, b, Some(added))
        } else {
            let a = (1..=10).map(|i| Ipv4Addr::new(127, 0, 20, i)).collect();
            let b = (1..=10).map(|i| Ipv4Addr::new(127, 0, 21, i)).collect();
            (a, b, None)
        };
    // One listener for both sets: it says which set the connection came in on.
    let target_port = free_port()?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", target_port)).await?;
    let b_set: std::collections::HashSet<Ipv4Addr> = set_b.iter().copied().collect();
    let serve = tokio::spawn(async move {
        while let Ok((mut c, _)) = listener.accept().await {
            let which = match c.local_addr().map(|a| a.ip()) {
                Ok(IpAddr::V4(v4)) if b_set.contains(&v4) => 1u8,
                _ => 0u8,
            };
            tokio::spawn(async move {
                let _ = c.write_all(&[which]).await;
            });
        }
    });

    let up = Up::start(root, mode)?;
    let server = up.server.clone();
    let http = reqwest::Client::new();
    wait("the API server", 120, || {
        let (http, url) = (http.clone(), format!("{server}/readyz"));
        async move {
            http.get(url)
                .send()
                .await
                .ok()?
                .status()
                .is_success()
                .then_some(())
        }
    })
    .await?;
    let post = |path: String, body: serde_json::Value| {
        let (http, url) = (http.clone(), format!("{server}{path}"));
        async move {
            let r = http.post(url).json(&body).send().await?;
            if !r.status().is_success() {
                bail!("{}: {}", r.status(), r.text().await.unwrap_or_default());
            }
            Ok::<serde_json::Value, anyhow::Error>(r.json().await?)
        }
    };
    let svc = |name: &str| {
        serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"port": 8080, "targetPort": 9000}]}})
    };
    // The rest of the rules: Services whose endpoints nothing listens on.
    for s in 0..a.services {
        let name = format!("filler-{s}");
        post("/api/v1/namespaces/default/services".into(), svc(&name)).await?;
        let addrs: Vec<Ipv4Addr> = (0..a.endpoints)
            .map(|e| Ipv4Addr::new(10, 253, (s % 250) as u8, (e % 250 + 1) as u8))
            .collect();
        post(
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices".into(),
            slice(&format!("{name}-1"), &name, &addrs, 9000),
        )
        .await?;
    }
    let created = post(
        "/api/v1/namespaces/default/services".into(),
        svc("measured"),
    )
    .await?;
    let vip: IpAddr = created["spec"]["clusterIP"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .context("the measured Service's ClusterIP")?;
    let vip = SocketAddr::new(vip, 8080);
    let pick = |set: &[Ipv4Addr]| {
        set.iter()
            .copied()
            .take(a.endpoints.max(1))
            .collect::<Vec<_>>()
    };
    post(
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices".into(),
        slice("measured-1", "measured", &pick(&set_a), target_port),
    )
    .await?;
    wait("the measured Service to lead to set A", 120, || async {
        (probe(vip).await == Some(0)).then_some(())
    })
    .await?;

    let url =
        format!("{server}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/measured-1");
    let mut took = Vec::new();
    for i in 0..a.changes {
        let (to, want) = if i % 2 == 0 {
            (&set_b, 1u8)
        } else {
            (&set_a, 0u8)
        };
        // Let the previous change settle, then time this one from just before the write.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t0 = Instant::now();
        let r = http
            .put(&url)
            .json(&slice("measured-1", "measured", &pick(to), target_port))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("updating the slice: {}", r.text().await.unwrap_or_default());
        }
        loop {
            if probe(vip).await == Some(want) {
                break;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("change {i} was not programmed within 30 s");
            }
        }
        took.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    serve.abort();
    Ok(took)
}

pub async fn run(a: EndpointsArgs) -> anyhow::Result<()> {
    build_binaries(&["kube-lite"])?;
    let dir = tempfile::tempdir()?;
    let root = if a.keep {
        dir.keep()
    } else {
        dir.path().to_path_buf()
    };
    println!(
        "endpoint programming: EndpointSlice written → a new connection to the ClusterIP lands on the new endpoints ({} Services × {} endpoints besides)",
        a.services, a.endpoints
    );
    println!("| mode | changes | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    let mut summary = serde_json::Map::new();
    for mode in &a.modes {
        if mode != "nftables" && mode != "userspace" {
            bail!("unknown mode {mode:?} (nftables, userspace)");
        }
        if mode == "nftables" && !nix::unistd::geteuid().is_root() {
            eprintln!("skipping nftables: it needs root (kube-lite up --runtime cri)");
            continue;
        }
        let mut took = measure_mode(&a, mode, &root)
            .await
            .with_context(|| format!("measuring {mode}"))?;
        took.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            let i = ((took.len() as f64 - 1.0) * p).round() as usize;
            took.get(i.min(took.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0.0)
        };
        let (p50, p99, max) = (pct(0.5), pct(0.99), took.last().copied().unwrap_or(0.0));
        println!(
            "| {mode} | {} | {p50:.1} | {p99:.1} | {max:.1} |",
            took.len()
        );
        summary.insert(
            mode.clone(),
            serde_json::json!({"changes": took.len(), "p50_ms": (p50 * 10.0).round() / 10.0,
                "p99_ms": (p99 * 10.0).round() / 10.0, "max_ms": (max * 10.0).round() / 10.0}),
        );
    }
    println!("target: p99 ≤ 100 ms");
    if a.keep {
        println!("data and logs kept in {}", root.display());
    }
    println!(
        "{}",
        serde_json::json!({"bench": "endpoints", "services": a.services,
            "endpoints_per_service": a.endpoints, "modes": summary})
    );
    Ok(())
}
