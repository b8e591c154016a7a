use clap::Parser;

/// The kube-lite API server: the Kubernetes REST API over the kvstore.
#[derive(Parser)]
#[command(name = "apiserver", version)]
struct Args {
    /// kvstore client URLs, comma-separated (any subset of the members).
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    kvstore_servers: Vec<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

#[tokio::main]
async fn main() {
    client::process::init_tracing();
    let args = Args::parse();
    let listener = match std::net::TcpListener::bind((args.bind_address.as_str(), args.port)) {
        Ok(l) => l,
        Err(e) => client::process::fail(&format!(
            "cannot listen on {}:{}: {e}",
            args.bind_address, args.port
        )),
    };
    let config = apiserver::Config {
        kvstore_servers: args.kvstore_servers,
        listener,
    };
    let shutdown = client::process::shutdown_on_signal();
    if let Err(e) = apiserver::run(config, shutdown).await {
        client::process::fail(&format!("{e:#}"));
    }
}
