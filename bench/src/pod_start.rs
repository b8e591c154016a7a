//! `bench pod-start`: how long a pod takes from create to Running on a CRI node, against the
//! floor set by containerd and runc themselves.
//!
//! One private containerd (with the built-in images imported and a bridge network) serves both
//! sides, one pod at a time, `--pods` times each, in alternating rounds:
//! - **floor**: the same three CRI calls a kubelet makes for a one-container pod —
//!   `RunPodSandbox`, `CreateContainer`, `StartContainer` — made directly with the configs
//!   kubelet-lite would send (its `runtime::cri::config` builders), timed from the first call to
//!   the last answer;
//! - **kube-lite**: a kvstore, an API server, the scheduler and `kubelet-lite --runtime cri` as
//!   processes; a pod (image `kube-lite/web:1`, no command) is created through the API and timed
//!   until a watch shows it `Running` — scheduling, the kubelet's watch, the same CRI calls and
//!   the status write included (the Kubernetes pod-startup SLI, client side).
//!
//! Each pod is deleted (and, for the floor, its sandbox removed) before the next, outside the
//! timing. The table shows p50/p99 of both and their ratio; the last line is one-line JSON.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use api::Resource;
use api::core::Pod;
use api::meta::WatchEvent;
use client::{Api, Client, ListParams};
use cri::v1;
use futures::StreamExt;
use kubelet_lite::runtime::cri::config as cri_config;

use crate::scheduler::{build_binaries, control_plane, free_port, sibling_bin, spawn};

#[derive(clap::Args)]
pub struct PodStartArgs {
    /// Pods started on each side.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Rounds: each starts `pods / rounds` pods on one side, then on the other (the order
    /// alternating), so drift in the machine's speed lands on both.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Keep the data directory and logs (their path is printed).
    #[arg(long)]
    keep: bool,
}

fn pct(sorted_ms: &[f64], p: f64) -> f64 {
    if sorted_ms.is_empty() {
        return 0.0;
    }
    let i = ((sorted_ms.len() as f64 - 1.0) * p).round() as usize;
    sorted_ms[i.min(sorted_ms.len() - 1)]
}

fn bench_pod(i: usize) -> Pod {
    let mut p: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("start-{i:04}"), "namespace": "default",
            "uid": format!("bench-uid-{i:04}"), "labels": {"app": "pod-start"}},
        "spec": {"terminationGracePeriodSeconds": 0,
            "containers": [{"name": "web", "image": "kube-lite/web:1",
                "ports": [{"containerPort": 80}]}]}
    }))
    .unwrap_or_default();
    p.set_type_meta();
    p
}

/// The floor: one pod's three CRI calls, made directly. Returns the time they took; the pod is
/// removed afterwards (not timed).
async fn floor_once(
    c: &cri::Client,
    node: &cri_config::NodeSettings,
    logs: &std::path::Path,
    i: usize,
) -> anyhow::Result<Duration> {
    let pod = std::sync::Arc::new(bench_pod(i));
    let log_dir = logs.join(format!("floor-{i}"));
    std::fs::create_dir_all(log_dir.join("web"))?;
    let sandbox_config = cri_config::sandbox_config(&pod, 0, &log_dir, node);
    let container = pod.spec.containers[0].clone();
    let spec = kubelet_lite::runtime::ContainerSpec {
        pod_uid: pod.metadata.uid.clone(),
        pod_key: format!("default/{}", pod.metadata.name),
        container: "web".into(),
        restart_count: 0,
        argv: vec![],
        env: vec![],
        working_dir: Default::default(),
        log_path: log_dir.join("web/0.log"),
        log_max_size: 0,
        cgroup: None,
    };
    let mut req = kubelet_lite::runtime::StartRequest::from_spec(spec);
    req.pod = pod.clone();
    req.container = container;
    req.image_ref = "kube-lite/web:1".into();
    let config = cri_config::container_config(&req, "web/0.log".into(), node, 1 << 30);

    let t = Instant::now();
    let sandbox = c
        .runtime()
        .run_pod_sandbox(c.req(v1::RunPodSandboxRequest {
            config: Some(sandbox_config.clone()),
            runtime_handler: String::new(),
        }))
        .await
        .map_err(|e| anyhow::anyhow!("RunPodSandbox: {}", cri::describe(&e)))?
        .into_inner()
        .pod_sandbox_id;
    let id = c
        .runtime()
        .create_container(c.req(v1::CreateContainerRequest {
            pod_sandbox_id: sandbox.clone(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        }))
        .await
        .map_err(|e| anyhow::anyhow!("CreateContainer: {}", cri::describe(&e)))?
        .into_inner()
        .container_id;
    c.runtime()
        .start_container(c.req(v1::StartContainerRequest { container_id: id }))
        .await
        .map_err(|e| anyhow::anyhow!("StartContainer: {}", cri::describe(&e)))?;
    let took = t.elapsed();

    c.runtime()
        .stop_pod_sandbox(c.req(v1::StopPodSandboxRequest {
            pod_sandbox_id: sandbox.clone(),
        }))
        .await
        .map_err(|e| anyhow::anyhow!("StopPodSandbox: {}", cri::describe(&e)))?;
    c.runtime()
        .remove_pod_sandbox(c.req(v1::RemovePodSandboxRequest {
            pod_sandbox_id: sandbox,
        }))
        .await
        .map_err(|e| anyhow::anyhow!("RemovePodSandbox: {}", cri::describe(&e)))?;
    Ok(took)
}

/// kube-lite: create a pod, wait for a watch to show it Running; then delete it and wait until
/// it is gone (not timed).
async fn kube_lite_once(client: &Client, server: &str, i: usize) -> anyhow::Result<Duration> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut pod = bench_pod(i);
    pod.metadata.uid.clear();
    let name = pod.metadata.name.clone();
    let rv = pods
        .list(&ListParams {
            limit: Some(1),
            ..Default::default()
        })
        .await?
        .metadata
        .resource_version;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let url = format!(
        "{server}/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}&fieldSelector=metadata.name={name}"
    );
    let resp = http.get(url).send().await?;
    let mut events = Box::pin(client::ndjson::decode::<WatchEvent<Pod>, _, _>(
        resp.bytes_stream(),
    ));
    let t = Instant::now();
    pods.create(&pod).await?;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(60), events.next())
            .await
            .with_context(|| format!("{name} not Running within 60 s"))?
            .context("the watch ended")??;
        if ev.object.phase() == "Running" {
            break;
        }
    }
    let took = t.elapsed();
    pods.delete(&name, &Default::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while pods.get_opt(&name).await?.is_some() {
        if Instant::now() > deadline {
            bail!("{name} not gone within 60 s of its deletion");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(took)
}

pub async fn run(a: PodStartArgs) -> anyhow::Result<()> {
    cri::containerd::preflight().map_err(|e| anyhow::anyhow!("bench pod-start: {e}"))?;
    build_binaries(&["kvstore", "apiserver", "scheduler", "kubelet-lite"])?;
    let dir = tempfile::tempdir()?;
    let root = if a.keep {
        dir.keep()
    } else {
        dir.path().to_path_buf()
    };
    let containerd =
        cri::containerd::Containerd::start(cri::containerd::Config::new(root.join("containerd")))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let result = measure(&a, &root, &containerd).await;
    let client = containerd.client().map_err(|e| anyhow::anyhow!("{e}"))?;
    let _ = cri::containerd::cleanup_all_pods(&client).await;
    let _ = containerd.stop().await;
    let _ = cri::cni::delete_link(&cri::cni::bridge_name("bench-cri"));
    if a.keep {
        println!("data and logs kept in {}", root.display());
    }
    result
}

async fn measure(
    a: &PodStartArgs,
    root: &std::path::Path,
    containerd: &cri::containerd::Containerd,
) -> anyhow::Result<()> {
    cri::image::ensure_builtin_images(containerd.socket())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let c = containerd.client().map_err(|e| anyhow::anyhow!("{e}"))?;
    let subnet = cri::cni::free_subnet(200).context("no free 10.88.x.0/24 subnet")?;

    // kube-lite's side: control plane, scheduler, and the kubelet (which writes the node's
    // CNI config for the subnet; the floor then uses the same network).
    let (_kv, _api, server) = control_plane(root).await?;
    let _sched = spawn(
        &sibling_bin("scheduler")?,
        &[
            "--server".into(),
            server.clone(),
            "--leader-elect=false".into(),
        ],
        &root.join("scheduler.log"),
    )?;
    let _kubelet = spawn(
        &sibling_bin("kubelet-lite")?,
        &[
            "--server".into(),
            server.clone(),
            "--node-name".into(),
            "bench-cri".into(),
            "--port".into(),
            free_port()?.to_string(),
            "--root-dir".into(),
            root.join("kubelet").display().to_string(),
            "--runtime".into(),
            "cri".into(),
            "--container-runtime-endpoint".into(),
            containerd.endpoint(),
            "--cni-conf-dir".into(),
            containerd.cni_conf_dir().display().to_string(),
            "--pod-cidr".into(),
            subnet.clone(),
        ],
        &root.join("kubelet.log"),
    )?;
    let client = Client::new(&server, "bench")?;
    let nodes: Api<api::Node> = Api::all(client.clone());
    let t = Instant::now();
    loop {
        if nodes
            .get_opt("bench-cri")
            .await?
            .is_some_and(|n| n.is_ready())
        {
            break;
        }
        if t.elapsed() > Duration::from_secs(60) {
            bail!("the CRI node did not become Ready; see {}", root.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let node = cri_config::NodeSettings {
        node_name: "bench-floor".into(),
        cluster_dns: vec![],
        cluster_domain: "cluster.local".into(),
        host_dns: cri_config::parse_resolv_conf(
            &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        ),
    };
    let logs = root.join("floor-logs");
    // One of each first, not counted: the first sandbox and container pay for cold caches.
    floor_once(&c, &node, &logs, 9999).await?;
    kube_lite_once(&client, &server, 9999).await?;

    let rounds = a.rounds.max(1);
    let per_round = a.pods.div_ceil(rounds);
    let (mut floor, mut kl) = (Vec::new(), Vec::new());
    let mut i = 0;
    for r in 0..rounds {
        let n = per_round.min(a.pods - floor.len());
        for side in if r % 2 == 0 { [0, 1] } else { [1, 0] } {
            for k in 0..n {
                let d = if side == 0 {
                    floor_once(&c, &node, &logs, i + k).await?
                } else {
                    kube_lite_once(&client, &server, i + k).await?
                };
                let ms = d.as_secs_f64() * 1000.0;
                if side == 0 { &mut floor } else { &mut kl }.push(ms);
            }
        }
        i += n;
    }
    floor.sort_by(f64::total_cmp);
    kl.sort_by(f64::total_cmp);
    let (f50, f99, k50, k99) = (
        pct(&floor, 0.5),
        pct(&floor, 0.99),
        pct(&kl, 0.5),
        pct(&kl, 0.99),
    );
    let version = c
        .version()
        .await
        .map(|v| format!("{} {}", v.runtime_name, v.runtime_version))
        .unwrap_or_default();
    println!("pod start, create → Running, one pod at a time ({version}, image kube-lite/web:1)");
    println!("| side | pods | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    println!(
        "| containerd+runc floor (RunPodSandbox + CreateContainer + StartContainer) | {} | {f50:.0} | {f99:.0} |",
        floor.len()
    );
    println!(
        "| kube-lite (API create → watch shows Running) | {} | {k50:.0} | {k99:.0} |",
        kl.len()
    );
    let ratio = if f50 > 0.0 { k50 / f50 } else { 0.0 };
    println!("kube-lite p50 / floor p50 = {ratio:.2}; target p50 ≤ 1000 ms");
    println!(
        "{}",
        serde_json::json!({
            "bench": "pod-start",
            "pods": kl.len(),
            "kube_lite_p50_ms": (k50 * 10.0).round() / 10.0,
            "kube_lite_p99_ms": (k99 * 10.0).round() / 10.0,
            "floor_p50_ms": (f50 * 10.0).round() / 10.0,
            "floor_p99_ms": (f99 * 10.0).round() / 10.0,
            "ratio_p50": (ratio * 100.0).round() / 100.0,
            "target_p50_le_1s": k50 <= 1000.0,
        })
    );
    Ok(())
}
