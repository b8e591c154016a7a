use clap::Parser;

/// kube-dns-lite: the cluster's DNS server (`<service>.<namespace>.svc.cluster.local`).
#[derive(Parser)]
#[command(name = "kube-dns-lite", version)]
struct Args {
    /// API server URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Where to serve DNS, UDP and TCP.
    #[arg(long, default_value = "0.0.0.0:53")]
    listen: std::net::SocketAddr,
    /// The cluster's DNS domain (as the kubelets' --cluster-domain).
    #[arg(long, default_value = kube_dns_lite::DEFAULT_CLUSTER_DOMAIN)]
    cluster_domain: String,
    /// Where other names go (default: the first nameserver of /etc/resolv.conf).
    #[arg(long)]
    upstream: Option<std::net::SocketAddr>,
    /// Keep Service kube-system/kube-dns with this ClusterIP (the kubelets' --cluster-dns)
    /// leading to this server.
    #[arg(long)]
    publish_cluster_ip: Option<String>,
    /// The address pods reach this server at (default: the listen address, or the host's
    /// outward address when listening on all of them).
    #[arg(long)]
    advertise_address: Option<std::net::Ipv4Addr>,
    /// Networks whose clients may ask (repeat; e.g. the pod network and 127.0.0.0/8); others
    /// are refused. Default: anyone.
    #[arg(long)]
    allow_cidr: Vec<String>,
}

#[tokio::main]
async fn main() {
    client::process::init_tracing();
    let args = Args::parse();
    let publish = args.publish_cluster_ip.map(|cluster_ip| {
        let address = args
            .advertise_address
            .or(match args.listen.ip() {
                std::net::IpAddr::V4(a) if !a.is_unspecified() => Some(a),
                _ => None,
            })
            .or_else(kube_dns_lite::host_address)
            .unwrap_or_else(|| {
                client::process::fail("--advertise-address: cannot tell this host's address")
            });
        kube_dns_lite::publish::Publish {
            cluster_ip,
            address,
            identity: hostname(),
        }
    });
    let allowed = args
        .allow_cidr
        .iter()
        .map(|c| {
            api::net::Cidr::parse(c)
                .unwrap_or_else(|e| client::process::fail(&format!("--allow-cidr: {e}")))
        })
        .collect();
    let config = kube_dns_lite::Config {
        server: args.server,
        listen: args.listen,
        cluster_domain: args.cluster_domain,
        upstream: args.upstream,
        publish,
        allowed,
    };
    let shutdown = client::process::shutdown_on_signal();
    if let Err(e) = kube_dns_lite::run(config, shutdown).await {
        client::process::fail(&format!("{e:#}"));
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}
