use clap::Parser;

/// The kube-lite scheduler: places pending pods on nodes.
#[derive(Parser)]
#[command(name = "scheduler", version)]
struct Args {
    /// API server URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Schedule pods that ask for this scheduler name (or none).
    #[arg(long, default_value = "default-scheduler")]
    scheduler_name: String,
    #[command(flatten)]
    leader: client::runtime::leader_flags::LeaderElectFlags,
}

#[tokio::main]
async fn main() {
    client::process::init_tracing();
    let args = Args::parse();
    let mut config = scheduler::Config::new(args.server);
    config.scheduler_name = args.scheduler_name;
    config.leader_election = args.leader.config("kube-scheduler");
    let shutdown = client::process::shutdown_on_signal();
    if let Err(e) = scheduler::run(config, shutdown).await {
        client::process::fail(&format!("{e:#}"));
    }
}
