use clap::Parser;

/// The kube-lite controller manager: ReplicaSets, Deployments, garbage collection, namespaces.
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
}

#[tokio::main]
async fn main() {
    client::process::init_tracing();
    let args = Args::parse();
    let mut config = controller_manager::Config::new(args.server);
    config.workers = args.workers;
    config.leader_election = args.leader.config("kube-controller-manager");
    let shutdown = client::process::shutdown_on_signal();
    if let Err(e) = controller_manager::run(config, shutdown).await {
        client::process::fail(&format!("{e:#}"));
    }
}
