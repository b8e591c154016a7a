use std::time::Duration;

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
    /// How often to compact the kvstore's history (`5m`, `30s`, `0` to never compact).
    #[arg(long, default_value = "5m", value_parser = api::duration::parse)]
    etcd_compaction_interval: Duration,
    /// How long events are kept after their last update (`1h`, `10s`).
    #[arg(long, default_value = "1h", value_parser = api::duration::parse)]
    event_ttl: Duration,
    /// The IPv4 CIDR Services' ClusterIPs are allocated from.
    #[arg(long, default_value = apiserver::DEFAULT_SERVICE_CLUSTER_IP_RANGE)]
    service_cluster_ip_range: String,
    /// The ports NodePort Services' node ports are allocated from (`30000-32767`).
    #[arg(long, default_value = apiserver::DEFAULT_SERVICE_NODE_PORT_RANGE)]
    service_node_port_range: String,
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
    let options = apiserver::Options {
        compaction_interval: args.etcd_compaction_interval,
        event_ttl: args.event_ttl,
        service_cluster_ip_range: args.service_cluster_ip_range,
        service_node_port_range: args.service_node_port_range,
    };
    let shutdown = client::process::shutdown_on_signal();
    if let Err(e) = apiserver::run_with(config, options, shutdown).await {
        client::process::fail(&format!("{e:#}"));
    }
}
