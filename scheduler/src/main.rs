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
    /// Address of the /healthz and /metrics endpoint.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: String,
    /// Port of the /healthz, /readyz and /metrics endpoint (0, the default: not served, so
    /// several schedulers can run on one machine; kube-scheduler's own port is 10259).
    #[arg(long, default_value_t = 0)]
    port: u16,
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
    if args.port != 0 {
        match std::net::TcpListener::bind((args.bind_address.as_str(), args.port)) {
            Ok(l) => config.listener = Some(l),
            Err(e) => client::process::fail(&format!(
                "cannot listen on {}:{}: {e}",
                args.bind_address, args.port
            )),
        }
    }
    let shutdown = client::process::shutdown_on_signal();
    if let Err(e) = scheduler::run(config, shutdown).await {
        client::process::fail(&format!("{e:#}"));
    }
}
