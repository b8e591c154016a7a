use clap::Parser;

/// kube-proxy-lite: makes every Service's virtual IP and node port lead to its ready endpoints
/// on this node (nftables where it may, user space where it may not).
#[derive(Parser)]
#[command(name = "kube-proxy-lite", version)]
struct Args {
    /// API server URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// This node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// `nftables` or `userspace`; default: nftables where it works, else user space.
    #[arg(long, value_parser = ["nftables", "userspace"])]
    proxy_mode: Option<String>,
    /// The pods' address range: traffic to a ClusterIP from outside it is masqueraded.
    #[arg(long)]
    cluster_cidr: Option<String>,
}

#[tokio::main]
async fn main() {
    client::process::init_tracing();
    let args = Args::parse();
    let cluster_cidr = args.cluster_cidr.as_deref().map(|c| {
        api::net::Cidr::parse(c)
            .unwrap_or_else(|e| client::process::fail(&format!("--cluster-cidr: {e}")))
    });
    let config = kube_proxy_lite::Config {
        server: args.server,
        node_name: args.node_name.unwrap_or_else(hostname),
        mode: args.proxy_mode.as_deref().map(|m| match m {
            "nftables" => kube_proxy_lite::Mode::Nftables,
            _ => kube_proxy_lite::Mode::Userspace,
        }),
        cluster_cidr,
    };
    let shutdown = client::process::shutdown_on_signal();
    if let Err(e) = kube_proxy_lite::run(config, shutdown).await {
        client::process::fail(&format!("{e:#}"));
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}
