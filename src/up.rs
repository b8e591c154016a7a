//! `kube-lite up`: start every component in-process, write a kubeconfig, stop cleanly on Ctrl-C.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub struct UpArgs {
    /// Where the cluster keeps its state (kvstore data, node directories, kubeconfig).
    #[arg(long, default_value = ".kube-lite")]
    data_dir: PathBuf,
    /// Port of the API server.
    #[arg(long, default_value_t = 8080)]
    api_port: u16,
    /// Number of worker nodes (kubelet-lite instances).
    #[arg(long, default_value_t = 2)]
    nodes: u16,
    /// Address the API server listens on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: String,
    /// How nodes run pods: `process` (host processes on loopback IPs, no root needed) or `cri`
    /// (real container images through containerd, each pod in its own network namespace;
    /// needs root, containerd and the CNI plugins).
    #[arg(long, default_value = "process", value_parser = ["process", "cri"])]
    runtime: String,
    /// With `--runtime cri`: use this CRI runtime (`unix:///run/containerd/containerd.sock`)
    /// instead of starting a private containerd per node (one node only).
    #[arg(long)]
    container_runtime_endpoint: Option<String>,
}

/// The API server's URL for the components and the kubeconfig: the port actually bound (so
/// `--api-port 0` picks a free one), on loopback when listening on every address.
fn server_url(bound: std::net::SocketAddr) -> String {
    let ip = bound.ip();
    let ip = if ip.is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        ip
    };
    format!("http://{}", std::net::SocketAddr::new(ip, bound.port()))
}

/// Ports of the kvstore, kept across restarts so its recorded peer address stays valid.
fn kvstore_listeners(dir: &Path) -> anyhow::Result<(TcpListener, TcpListener)> {
    let file = dir.join("kvstore.ports");
    if let Ok(text) = std::fs::read_to_string(&file)
        && let Some((c, p)) = text.trim().split_once(',')
        && let (Ok(c), Ok(p)) = (c.parse::<u16>(), p.parse::<u16>())
        && let (Ok(cl), Ok(pl)) = (
            TcpListener::bind(("127.0.0.1", c)),
            TcpListener::bind(("127.0.0.1", p)),
        )
    {
        return Ok((cl, pl));
    }
    let cl = TcpListener::bind("127.0.0.1:0")?;
    let pl = TcpListener::bind("127.0.0.1:0")?;
    std::fs::write(
        &file,
        format!("{},{}", cl.local_addr()?.port(), pl.local_addr()?.port()),
    )?;
    Ok((cl, pl))
}

fn spawn(
    name: &'static str,
    token: CancellationToken,
    fut: impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
) -> (&'static str, JoinHandle<anyhow::Result<()>>) {
    let handle = tokio::spawn(async move {
        let r = fut.await;
        if let Err(e) = &r {
            tracing::error!(component = name, error = %format!("{e:#}"), "component failed; stopping the cluster");
            token.cancel();
        }
        r
    });
    (name, handle)
}

/// The pods' addresses with `--runtime cri`, one /24 per node (node IPAM).
const CLUSTER_CIDR: &str = "10.244.0.0/16";

/// ClusterIPs with the process runtime: loopback addresses, which the user-space proxy can
/// listen on without root.
const LOOPBACK_SERVICE_RANGE: &str = "127.96.0.0/16";

/// The cluster DNS Service's ClusterIP with `--runtime cri` (kubeadm's choice: the tenth
/// address of the Service range), which kubelets put in pods' resolv.conf.
const CLUSTER_DNS_IP: &str = "10.96.0.10";

/// With `--runtime cri`: kube-dns-lite's config, serving on the host's outward address (pods
/// reach it through the kube-dns ClusterIP; never 0.0.0.0, where a host resolver such as
/// systemd-resolved may already listen). `None` (with a warning) without such an address.
fn cluster_dns(server: &str) -> Option<kube_dns_lite::Config> {
    let Some(address) = kube_dns_lite::host_address() else {
        tracing::warn!("no outward address on this host (no default route): no cluster DNS");
        return None;
    };
    Some(kube_dns_lite::Config {
        server: server.to_string(),
        listen: std::net::SocketAddr::new(address.into(), 53),
        cluster_domain: kube_dns_lite::DEFAULT_CLUSTER_DOMAIN.into(),
        upstream: None,
        publish: Some(kube_dns_lite::publish::Publish {
            cluster_ip: CLUSTER_DNS_IP.into(),
            address,
            identity: "kube-lite".into(),
        }),
        // Pods, this machine, and nobody else: it listens on the machine's outward address.
        allowed: [
            CLUSTER_CIDR.to_string(),
            "127.0.0.0/8".into(),
            format!("{address}/32"),
        ]
        .iter()
        .filter_map(|c| api::net::Cidr::parse(c).ok())
        .collect(),
    })
}

/// A CRI node's runtime: its endpoint and where it reads CNI configs.
struct NodeRuntime {
    endpoint: String,
    cni_conf_dir: PathBuf,
}

/// With `--runtime cri`: one private containerd per node under `<data>/containerd/<node>/`
/// (its own root, state, socket and CNI config; nothing of the host's Docker is touched), with
/// the built-in images (pause, web) imported — or the one runtime the user named.
async fn start_runtimes(
    args: &UpArgs,
    data_dir: &Path,
) -> anyhow::Result<(Vec<NodeRuntime>, Vec<cri::containerd::Containerd>)> {
    if let Some(endpoint) = &args.container_runtime_endpoint {
        if args.nodes != 1 {
            bail!("--container-runtime-endpoint serves one node: add --nodes 1");
        }
        let node = NodeRuntime {
            endpoint: endpoint.clone(),
            cni_conf_dir: PathBuf::from("/etc/cni/net.d"),
        };
        return Ok((vec![node], Vec::new()));
    }
    cri::containerd::preflight().map_err(|e| anyhow::anyhow!("--runtime cri: {e}"))?;
    let starts = (1..=args.nodes).map(|i| {
        let dir = data_dir.join("containerd").join(format!("worker-{i}"));
        async move { crate::node::start_containerd(&dir).await }
    });
    let mut runtimes = Vec::new();
    let mut containerds = Vec::new();
    let mut failed = None;
    for r in futures::future::join_all(starts).await {
        match r {
            Ok(c) => {
                runtimes.push(NodeRuntime {
                    endpoint: c.endpoint(),
                    cni_conf_dir: c.cni_conf_dir(),
                });
                containerds.push(c);
            }
            Err(e) => failed = Some(e),
        }
    }
    if let Some(e) = failed {
        for c in containerds {
            let _ = c.stop().await;
        }
        return Err(e);
    }
    Ok((runtimes, containerds))
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let cri = args.runtime == "cri";
    if cri && args.nodes > 200 {
        bail!("--runtime cri: at most 200 nodes (pod CIDRs are /24s of {CLUSTER_CIDR})");
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let api_listener = TcpListener::bind((args.bind_address.as_str(), args.api_port))
        .with_context(|| {
            format!(
                "cannot listen on {}:{} (is another cluster running? pass --api-port)",
                args.bind_address, args.api_port
            )
        })?;
    let server = server_url(api_listener.local_addr()?);
    let (kv_client, kv_peer) = kvstore_listeners(&data_dir)?;
    let (runtimes, containerds) = if cri {
        start_runtimes(&args, &data_dir).await?
    } else {
        (Vec::new(), Vec::new())
    };
    let kv_url = format!("http://{}", kv_client.local_addr()?);
    let peer_url = format!("http://{}", kv_peer.local_addr()?);

    // Components stop in reverse order: nodes first (their pods with them), the store last.
    let store_token = CancellationToken::new();
    let control_token = store_token.child_token();
    let node_token = control_token.child_token();
    let mut store = Vec::new();
    let mut control = Vec::new();
    let mut nodes = Vec::new();

    store.push(spawn(
        "kvstore",
        store_token.clone(),
        kvstore::run(
            kvstore::Config {
                name: "kube-lite".into(),
                data_dir: data_dir.join("kvstore"),
                client_listener: kv_client,
                peer_listener: kv_peer,
                advertise_client_url: kv_url.clone(),
                advertise_peer_url: peer_url.clone(),
                initial_cluster: vec![("kube-lite".into(), peer_url)],
            },
            store_token.clone(),
        ),
    ));
    control.push(spawn(
        "apiserver",
        store_token.clone(),
        apiserver::run_with(
            apiserver::Config {
                kvstore_servers: vec![kv_url],
                listener: api_listener,
            },
            apiserver::Options {
                // Without real pod networks, ClusterIPs are loopback addresses the user-space
                // proxy can listen on (and the user's shell can reach).
                service_cluster_ip_range: if cri {
                    apiserver::DEFAULT_SERVICE_CLUSTER_IP_RANGE.into()
                } else {
                    LOOPBACK_SERVICE_RANGE.into()
                },
                ..Default::default()
            },
            control_token.clone(),
        ),
    ));
    // One service proxy for the machine (every node of `up` shares its network stack):
    // nftables rules with real pod networks, listeners on the loopback ClusterIPs without.
    control.push(spawn(
        "kube-proxy-lite",
        store_token.clone(),
        kube_proxy_lite::run(
            kube_proxy_lite::Config {
                server: server.clone(),
                node_name: "kube-lite".into(),
                mode: Some(if cri {
                    kube_proxy_lite::Mode::Nftables
                } else {
                    kube_proxy_lite::Mode::Userspace
                }),
                cluster_cidr: if cri {
                    Some(api::net::Cidr::parse(CLUSTER_CIDR).map_err(anyhow::Error::msg)?)
                } else {
                    None
                },
            },
            control_token.clone(),
        ),
    ));
    let dns = if cri { cluster_dns(&server) } else { None };
    if let Some(config) = dns.clone() {
        // Not fatal: a cluster without DNS still runs pods (the log says why).
        let token = control_token.clone();
        control.push(spawn("kube-dns-lite", store_token.clone(), async move {
            if let Err(e) = kube_dns_lite::run(config, token).await {
                tracing::warn!(error = %format!("{e:#}"), "kube-dns-lite: no cluster DNS");
            }
            Ok(())
        }));
    }
    control.push(spawn(
        "scheduler",
        store_token.clone(),
        scheduler::run(scheduler::Config::new(&server), control_token.clone()),
    ));
    control.push(spawn(
        "controller-manager",
        store_token.clone(),
        controller_manager::run(
            {
                let mut c = controller_manager::Config::new(&server);
                // Real pod networks: each node's range comes from node IPAM, as in Kubernetes.
                if cri {
                    c.node_ipam = Some(controller_manager::node_ipam::NodeIpamConfig {
                        cluster_cidr: api::net::Cidr::parse(CLUSTER_CIDR)
                            .map_err(anyhow::Error::msg)?,
                        node_mask: 24,
                    });
                }
                c
            },
            control_token.clone(),
        ),
    ));
    for i in 1..=args.nodes {
        let name = format!("worker-{i}");
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let mut config =
            kubelet_lite::Config::new(&server, &name, listener, data_dir.join("nodes").join(&name));
        config.pod_cidr = format!("127.{}.0.0/16", 10 + i);
        // Snappier than a kubelet's 60 s for experiments: ConfigMap volume updates show in 10 s.
        config.sync_frequency = Duration::from_secs(10);
        config.shim_program = std::env::current_exe().ok();
        if let Some(rt) = runtimes.get(usize::from(i) - 1) {
            config.runtime = kubelet_lite::RuntimeKind::Cri;
            config.container_runtime_endpoint = rt.endpoint.clone();
            config.cni_conf_dir = Some(rt.cni_conf_dir.clone());
            // Assigned by the controller-manager from CLUSTER_CIDR.
            config.pod_cidr = String::new();
            if dns.is_some() {
                config.cluster_dns = vec![CLUSTER_DNS_IP.into()];
            }
            config.shim_program = None;
        }
        nodes.push(spawn(
            "kubelet-lite",
            store_token.clone(),
            kubelet_lite::run(config, node_token.clone()),
        ));
    }

    let kubeconfig = data_dir.join("kubeconfig");
    let kc = client::config::Kubeconfig::single("kube-lite", &server);
    std::fs::write(&kubeconfig, serde_yaml::to_string(&kc)?)?;
    println!(
        "kube-lite is up: API server {server}, {} worker node(s), {} runtime.",
        args.nodes,
        if cri { "CRI (containerd)" } else { "process" }
    );
    println!("  kubeconfig: {}", kubeconfig.display());
    println!("  try:  cargo run --release -p kubectl-lite -- get nodes");
    if cri {
        println!(
            "        cargo run --release -p kubectl-lite -- apply -f examples/cri/nginx-deployment.yaml"
        );
        println!(
            "  (images: kube-lite/web:1 is built in; add your own with `kube-lite load docker-image NAME:TAG`)"
        );
    } else {
        println!("        cargo run --release -p kubectl-lite -- apply -f examples/blog.yaml");
    }
    println!("  (kubectl-lite talks to http://127.0.0.1:8080 by default; for another port use");
    println!(
        "   --kubeconfig {} or export KUBECONFIG={})",
        kubeconfig.display(),
        kubeconfig.display()
    );
    println!(
        "Press Ctrl-C to stop; every pod process stops with the cluster, and `kube-lite up` resumes it."
    );

    let ctrl_c = client::process::shutdown_on_signal();
    tokio::select! {
        _ = ctrl_c.cancelled() => {}
        _ = store_token.cancelled() => {}
    }
    let mut failed = false;
    for (token, group) in [
        (&node_token, nodes),
        (&control_token, control),
        (&store_token, store),
    ] {
        token.cancel();
        for (name, h) in group {
            match h.await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => failed = true,
                Err(e) => {
                    tracing::error!(component = name, error = %e, "component panicked");
                    failed = true;
                }
            }
        }
    }
    // The nodes have stopped their pods; now their runtimes go, and their bridges (the next
    // `up` may give the nodes other ranges).
    let private = !containerds.is_empty();
    for c in containerds {
        if let Err(e) = c.stop().await {
            tracing::warn!(error = %e, "cannot stop containerd");
            failed = true;
        }
    }
    if private {
        for i in 1..=args.nodes {
            let bridge = cri::cni::bridge_name(&format!("worker-{i}"));
            if let Err(e) = cri::cni::delete_link(&bridge) {
                tracing::warn!(%bridge, error = %e, "cannot remove the node's bridge");
            }
        }
    }
    println!("kube-lite stopped.");
    if failed {
        bail!("a component failed; see the log above");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::server_url;

    #[test]
    fn the_server_url_names_the_bound_port_and_a_reachable_address() {
        let url = |a: &str| server_url(a.parse().unwrap());
        assert_eq!(url("127.0.0.1:41234"), "http://127.0.0.1:41234");
        assert_eq!(url("0.0.0.0:8080"), "http://127.0.0.1:8080");
        assert_eq!(url("10.1.2.3:8080"), "http://10.1.2.3:8080");
        assert_eq!(url("[::1]:8080"), "http://[::1]:8080");
    }
}
