//! `kube-lite node`: one worker node in one command, as a kind node container runs one — a
//! private containerd (its own root, state and socket under `--data-dir`, the built-in images
//! imported), kubelet-lite with the CRI runtime on it (its pod CIDR from the controller-manager's
//! node IPAM unless `--pod-cidr` is given), and kube-proxy-lite (nftables). Ctrl-C (or SIGTERM)
//! stops the kubelet (and its pods) and the proxy, then containerd.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub struct NodeArgs {
    /// API server URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// The node's InternalIP, where the API server reaches the kubelet and other nodes route
    /// this node's pods.
    #[arg(long, default_value = "127.0.0.1")]
    node_ip: String,
    /// Address of the kubelet's HTTP server (logs, exec).
    #[arg(long, default_value = "0.0.0.0")]
    address: String,
    #[arg(long, default_value_t = 10250)]
    port: u16,
    /// containerd's and the kubelet's state.
    #[arg(long, default_value = "/var/lib/kube-lite")]
    data_dir: PathBuf,
    /// The node's pod range (default: assigned by the controller-manager's node IPAM).
    #[arg(long)]
    pod_cidr: Option<String>,
    /// Node labels, k=v,k2=v2.
    #[arg(long, value_delimiter = ',')]
    node_labels: Vec<String>,
    /// The cluster's pod range: kube-proxy-lite masquerades Service traffic from outside it.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// The cluster DNS servers pods get in their resolv.conf (the kube-dns Service's ClusterIP,
    /// e.g. 10.96.0.10, where a kube-dns-lite publishes itself); none: the host's resolvers.
    #[arg(long, value_delimiter = ',')]
    cluster_dns: Vec<String>,
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
}

/// Start containerd for a node in `dir` and import the built-in images (pause, web).
pub async fn start_containerd(dir: &Path) -> anyhow::Result<cri::containerd::Containerd> {
    let c = cri::containerd::Containerd::start(cri::containerd::Config::new(dir))
        .await
        .map_err(|e| anyhow::anyhow!("cannot start containerd in {}: {e}", dir.display()))?;
    if let Err(e) = cri::image::ensure_builtin_images(c.socket()).await {
        let _ = c.stop().await;
        anyhow::bail!("cannot import the built-in images: {e}");
    }
    Ok(c)
}

pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    cri::containerd::preflight().map_err(|e| anyhow::anyhow!("kube-lite node: {e}"))?;
    let name = args
        .node_name
        .clone()
        .unwrap_or_else(kubelet_lite::machine::hostname);
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data = std::fs::canonicalize(&args.data_dir)?;
    let listener = TcpListener::bind((args.address.as_str(), args.port))
        .with_context(|| format!("cannot listen on {}:{}", args.address, args.port))?;
    let containerd = start_containerd(&data.join("containerd")).await?;
    let mut config = kubelet_lite::Config::new(&args.server, &name, listener, data.join("kubelet"));
    config.runtime = kubelet_lite::RuntimeKind::Cri;
    config.container_runtime_endpoint = containerd.endpoint();
    config.cni_conf_dir = Some(containerd.cni_conf_dir());
    config.pod_cidr = args.pod_cidr.clone().unwrap_or_default();
    config.node_ip = args.node_ip.clone();
    config.cluster_dns = args.cluster_dns.clone();
    config.cluster_domain = args.cluster_domain.clone();
    for item in args.node_labels.iter().filter(|s| !s.trim().is_empty()) {
        let (k, v) = item
            .split_once('=')
            .with_context(|| format!("invalid --node-labels entry {item:?}: expected key=value"))?;
        config.node_labels.insert(k.trim().into(), v.trim().into());
    }
    println!(
        "kube-lite node {name}: containerd {} and kubelet-lite on {}:{}, API server {}",
        containerd.endpoint(),
        args.address,
        args.port,
        args.server
    );
    let cluster_cidr = api::net::Cidr::parse(&args.cluster_cidr)
        .map_err(|e| anyhow::anyhow!("--cluster-cidr: {e}"))?;
    let shutdown: CancellationToken = client::process::shutdown_on_signal();
    let proxy = tokio::spawn(kube_proxy_lite::run(
        kube_proxy_lite::Config {
            server: args.server.clone(),
            node_name: name.clone(),
            mode: Some(kube_proxy_lite::Mode::Nftables),
            cluster_cidr: Some(cluster_cidr),
        },
        shutdown.clone(),
    ));
    let result = kubelet_lite::run(config, shutdown).await;
    match proxy.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "kube-proxy-lite failed"),
        Err(e) => tracing::warn!(error = %e, "kube-proxy-lite panicked"),
    }
    if let Err(e) = containerd.stop().await {
        tracing::warn!(error = %e, "cannot stop containerd");
    }
    result
}
