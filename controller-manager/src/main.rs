use std::time::Duration;

use clap::Parser;

/// The kube-lite controller manager: ReplicaSets, Deployments, garbage collection, namespaces,
/// node lifecycle.
#[derive(Parser)]
#[command(name = "controller-manager", version)]
struct Args {
    /// API server URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Workers per controller.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    #[command(flatten)]
    leader: client::runtime::leader_flags::LeaderElectFlags,
    /// Seconds between node health checks.
    #[arg(long, default_value_t = 5.0)]
    node_monitor_period: f64,
    /// Seconds a node may go without a heartbeat before it is marked Ready=Unknown.
    #[arg(long, default_value_t = 40.0)]
    node_monitor_grace_period: f64,
    /// Seconds pods without their own toleration stay on an unreachable node.
    #[arg(long, default_value_t = 300)]
    default_unreachable_toleration_seconds: u64,
    /// Nodes per second whose pods may start being evicted.
    #[arg(long, default_value_t = 0.1)]
    node_eviction_rate: f64,
    /// Nodes per second when more than --unhealthy-zone-threshold of nodes are down.
    #[arg(long, default_value_t = 0.01)]
    secondary_node_eviction_rate: f64,
    /// Fraction of not-ready nodes at which the cluster counts as partially disrupted.
    #[arg(long, default_value_t = 0.55)]
    unhealthy_zone_threshold: f64,
    /// Clusters up to this size stop evicting altogether during a partial disruption.
    #[arg(long, default_value_t = 50)]
    large_cluster_size_threshold: usize,
    /// Give every node a pod CIDR from --cluster-cidr (node IPAM).
    #[arg(long)]
    allocate_node_cidrs: bool,
    /// The pods' address range, cut into one range per node.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// The size of each node's range.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
}

fn seconds(flag: &str, v: f64) -> Duration {
    if !(v.is_finite() && v > 0.0) {
        client::process::fail(&format!("--{flag} must be a positive number of seconds"));
    }
    Duration::from_secs_f64(v)
}

#[tokio::main]
async fn main() {
    client::process::init_tracing();
    let args = Args::parse();
    let mut config = controller_manager::Config::new(args.server);
    config.workers = args.workers;
    config.leader_election = args.leader.config("kube-controller-manager");
    let nl = &mut config.node_lifecycle;
    nl.monitor_period = seconds("node-monitor-period", args.node_monitor_period);
    nl.grace_period = seconds("node-monitor-grace-period", args.node_monitor_grace_period);
    nl.default_toleration = Duration::from_secs(args.default_unreachable_toleration_seconds);
    nl.eviction_rate = args.node_eviction_rate.max(0.0);
    nl.secondary_eviction_rate = args.secondary_node_eviction_rate.max(0.0);
    nl.unhealthy_zone_threshold = args.unhealthy_zone_threshold;
    nl.large_cluster_size_threshold = args.large_cluster_size_threshold;
    if args.allocate_node_cidrs {
        let cluster_cidr = api::net::Cidr::parse(&args.cluster_cidr)
            .unwrap_or_else(|e| client::process::fail(&format!("--cluster-cidr: {e}")));
        if let Err(e) = controller_manager::node_ipam::CidrAllocator::new(
            cluster_cidr,
            args.node_cidr_mask_size,
        ) {
            client::process::fail(&e);
        }
        config.node_ipam = Some(controller_manager::node_ipam::NodeIpamConfig {
            cluster_cidr,
            node_mask: args.node_cidr_mask_size,
        });
    }
    let shutdown = client::process::shutdown_on_signal();
    if let Err(e) = controller_manager::run(config, shutdown).await {
        client::process::fail(&format!("{e:#}"));
    }
}
