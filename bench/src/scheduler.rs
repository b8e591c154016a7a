//! `bench scheduler`: how many pods per second the scheduler binds through the real API server
//! and kvstore (a single member, as `kube-lite up` uses).
//!
//! It starts a kvstore and an API server as processes, registers `--nodes` Node objects and
//! creates `--pods` pending pods, then starts the scheduler and watches bindings arrive. The
//! figure is bound pods divided by the time from the scheduler's start to the last binding
//! (cache sync included); the steady rate (first to last binding) is printed too.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use api::Resource;
use api::core::{Node, Pod};
use api::meta::WatchEvent;
use api::quantity::Quantity;
use client::{Api, Client, ListParams};
use futures::StreamExt;

#[derive(clap::Args)]
pub struct SchedArgs {
    /// Registered nodes.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Pending pods created before the scheduler starts.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Concurrent requests while creating the nodes and pods.
    #[arg(long, default_value_t = 64)]
    setup_concurrency: usize,
    /// Keep the data directory and logs (their path is printed).
    #[arg(long)]
    keep: bool,
}

/// A child process killed when dropped.
pub(crate) struct Child_(Child);
impl Drop for Child_ {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// When run through `cargo run`, build the binaries a benchmark starts, in the same profile.
pub(crate) fn build_binaries(bins: &[&str]) -> anyhow::Result<()> {
    let Ok(cargo) = std::env::var("CARGO") else {
        return Ok(());
    };
    let exe = std::env::current_exe()?;
    let release = exe
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == "release");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet"]);
    for b in bins {
        cmd.args(["--bin", b]);
    }
    if release {
        cmd.arg("--release");
    }
    if !cmd.status().context("running cargo build")?.success() {
        bail!("cargo build of {} failed", bins.join(", "));
    }
    Ok(())
}

pub(crate) fn sibling_bin(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("bench has no directory")?;
    let p = dir.join(name);
    if !p.exists() {
        bail!(
            "{} not found: build it with `cargo build --release --workspace --bins`",
            p.display()
        );
    }
    Ok(p)
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) fn spawn(bin: &Path, args: &[String], log: &Path) -> anyhow::Result<Child_> {
    let out = std::fs::File::create(log)?;
    let child = Command::new(bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out))
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(Child_(child))
}

fn node(i: usize) -> Node {
    let mut n = Node::default();
    n.set_type_meta();
    n.metadata.name = format!("node-{i:05}");
    n.metadata
        .labels
        .insert("kubernetes.io/hostname".into(), n.metadata.name.clone());
    let st = n.status.get_or_insert_with(Default::default);
    for (k, v) in [("cpu", "32"), ("memory", "64Gi"), ("pods", "110")] {
        st.allocatable.insert(k.into(), Quantity::new(v));
        st.capacity.insert(k.into(), Quantity::new(v));
    }
    st.conditions.push(api::core::NodeCondition {
        type_: "Ready".into(),
        status: "True".into(),
        ..Default::default()
    });
    n
}

fn pod(i: usize) -> Pod {
    let mut p: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("pod-{i:06}"), "namespace": "default", "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "pause:3.9",
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}
    }))
    .unwrap_or_default();
    p.set_type_meta();
    p
}

/// Run `n` creations with bounded concurrency.
async fn create_all<K: Resource>(
    api: &Api<K>,
    n: usize,
    concurrency: usize,
    make: impl Fn(usize) -> K,
) -> anyhow::Result<()> {
    let mut stream = futures::stream::iter((0..n).map(|i| {
        let obj = make(i);
        let api = api.clone();
        async move { api.create(&obj).await }
    }))
    .buffer_unordered(concurrency);
    while let Some(r) = stream.next().await {
        r?;
    }
    Ok(())
}

/// A single-member kvstore and an API server as processes (logs under `root`), once the API
/// server is ready; returns them (stopped when dropped) and the server's URL.
pub(crate) async fn control_plane(root: &Path) -> anyhow::Result<(Child_, Child_, String)> {
    let (kv_port, peer_port, api_port) = (free_port()?, free_port()?, free_port()?);
    let kv_url = format!("http://127.0.0.1:{kv_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let kv = spawn(
        &sibling_bin("kvstore")?,
        &[
            "--name".into(),
            "bench".into(),
            "--data-dir".into(),
            root.join("kv").display().to_string(),
            "--listen-client-urls".into(),
            kv_url.clone(),
            "--listen-peer-urls".into(),
            peer.clone(),
            "--initial-cluster".into(),
            format!("bench={peer}"),
        ],
        &root.join("kvstore.log"),
    )?;
    let api = spawn(
        &sibling_bin("apiserver")?,
        &[
            "--kvstore-servers".into(),
            kv_url,
            "--port".into(),
            api_port.to_string(),
        ],
        &root.join("apiserver.log"),
    )?;
    let server = format!("http://127.0.0.1:{api_port}");
    let http = reqwest::Client::builder().no_proxy().build()?;
    let ready = Instant::now();
    loop {
        if http
            .get(format!("{server}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        if ready.elapsed() > Duration::from_secs(60) {
            bail!(
                "the API server did not become ready; see {}",
                root.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((kv, api, server))
}

pub async fn run(a: SchedArgs) -> anyhow::Result<()> {
    build_binaries(&["kvstore", "apiserver", "scheduler"])?;
    let dir = tempfile::tempdir()?;
    let root = if a.keep {
        dir.keep()
    } else {
        dir.path().to_path_buf()
    };
    let (_kv, _api, server) = control_plane(&root).await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let client = Client::new(&server, "bench")?;
    let t = Instant::now();
    create_all(
        &Api::<Node>::all(client.clone()),
        a.nodes,
        a.setup_concurrency,
        node,
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    create_all(&pods, a.pods, a.setup_concurrency, pod).await?;
    println!(
        "setup: {} nodes and {} pending pods in {:.1?}",
        a.nodes,
        a.pods,
        t.elapsed()
    );

    // Watch bindings from the current revision on.
    let rv = pods
        .list(&ListParams {
            limit: Some(1),
            ..Default::default()
        })
        .await?
        .metadata
        .resource_version;
    let url = format!("{server}/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}");
    let resp = http.get(url).send().await?;
    let mut events = Box::pin(client::ndjson::decode::<WatchEvent<Pod>, _, _>(
        resp.bytes_stream(),
    ));

    let start = Instant::now();
    let _sched = spawn(
        &sibling_bin("scheduler")?,
        &[
            "--server".into(),
            server.clone(),
            "--leader-elect=false".into(),
        ],
        &root.join("scheduler.log"),
    )?;
    let mut bound: HashSet<String> = HashSet::new();
    let mut first: Option<Instant> = None;
    let mut last = start;
    let mut per_second: Vec<usize> = Vec::new();
    let deadline = Duration::from_secs(600);
    while bound.len() < a.pods {
        let ev = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .context("no binding for 30 s; see the logs")?;
        let Some(ev) = ev else {
            bail!("the watch ended")
        };
        let ev = ev?;
        if !ev.object.spec.node_name.is_empty() && bound.insert(ev.object.metadata.name.clone()) {
            let now = Instant::now();
            first.get_or_insert(now);
            last = now;
            let sec = now.duration_since(start).as_secs() as usize;
            if per_second.len() <= sec {
                per_second.resize(sec + 1, 0);
            }
            per_second[sec] += 1;
        }
        if start.elapsed() > deadline {
            bail!(
                "only {} of {} pods bound after {deadline:?}",
                bound.len(),
                a.pods
            );
        }
    }
    let total = last.duration_since(start).as_secs_f64();
    let steady = first
        .map(|f| last.duration_since(f).as_secs_f64())
        .unwrap_or(total);
    let pods_per_s = a.pods as f64 / total;
    let steady_per_s = a.pods as f64 / steady.max(1e-9);
    let scheduler_sync = first
        .map(|f| f.duration_since(start).as_secs_f64())
        .unwrap_or(0.0);

    // Every pod bound exactly once, to a node that exists, within capacity.
    let all = pods.list(&ListParams::default()).await?;
    let unbound = all
        .items
        .iter()
        .filter(|p| p.spec.node_name.is_empty())
        .count();
    let mut per_node = std::collections::HashMap::<String, usize>::new();
    for p in &all.items {
        *per_node.entry(p.spec.node_name.clone()).or_default() += 1;
    }
    let busiest = per_node.values().copied().max().unwrap_or(0);
    println!();
    println!("{:<34} {:>12}", "nodes", a.nodes);
    println!("{:<34} {:>12}", "pods", a.pods);
    println!(
        "{:<34} {:>12.2}",
        "scheduler start → last binding (s)", total
    );
    println!(
        "{:<34} {:>12.2}",
        "  of which start → first binding (s)", scheduler_sync
    );
    println!("{:<34} {:>12.0}", "pods/s (overall)", pods_per_s);
    println!(
        "{:<34} {:>12.0}",
        "pods/s (first → last binding)", steady_per_s
    );
    println!(
        "{:<34} {:>12}",
        "best second (pods)",
        per_second.iter().max().copied().unwrap_or(0)
    );
    println!("{:<34} {:>12}", "unbound pods left", unbound);
    println!("{:<34} {:>12}", "most pods on one node", busiest);
    if a.keep {
        println!("data and logs kept in {}", root.display());
    }
    let summary = serde_json::json!({
        "bench": "scheduler",
        "nodes": a.nodes,
        "pods": a.pods,
        "pods_per_s": (pods_per_s * 10.0).round() / 10.0,
        "steady_pods_per_s": (steady_per_s * 10.0).round() / 10.0,
        "seconds": (total * 1000.0).round() / 1000.0,
        "unbound": unbound,
    });
    println!("{summary}");
    Ok(())
}
