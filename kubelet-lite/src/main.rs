use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use api::Quantity;
use clap::Parser;

/// kubelet-lite: the kube-lite node agent. Registers a node and runs the pods bound to it as
/// host processes, each on its own loopback pod IP.
#[derive(Clone, Parser)]
#[command(name = "kubelet-lite", version)]
struct Args {
    /// API server URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Name of the node (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Port of the kubelet's HTTP server (logs, health).
    #[arg(long, default_value_t = 10250)]
    port: u16,
    /// Address the kubelet's HTTP server binds.
    #[arg(long, default_value = "127.0.0.1")]
    address: String,
    /// The node's InternalIP, where the API server reaches the kubelet.
    #[arg(long, default_value = "127.0.0.1")]
    node_ip: String,
    /// Sandboxes, logs and state (default: .kubelet-lite/<node-name>).
    #[arg(long)]
    root_dir: Option<PathBuf>,
    /// Pod IP range: inside 127.0.0.0/8 for the process runtime (default: 127.X.0.0/16, X from
    /// a hash of the node name); any range with `--runtime cri` (default: the one the
    /// controller-manager assigns to the Node, from its `--cluster-cidr`).
    #[arg(long)]
    pod_cidr: Option<String>,
    /// CPU capacity to report, e.g. 4 or 3500m (default: the machine's CPU count).
    #[arg(long)]
    cpu: Option<String>,
    /// Memory capacity to report, e.g. 8Gi (default: MemTotal).
    #[arg(long)]
    memory: Option<String>,
    /// Maximum number of pods on the node.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// Extra node labels, k=v,k2=v2.
    #[arg(long, value_delimiter = ',')]
    node_labels: Vec<String>,
    /// First crash-loop restart delay in seconds (doubling up to 300).
    #[arg(long, default_value_t = 10.0)]
    restart_backoff: f64,
    /// How often ConfigMap volumes are refreshed, in seconds.
    #[arg(long, default_value_t = 60.0)]
    sync_frequency: f64,
    /// `process`: containers are host processes; `cri`: real containers through a CRI runtime
    /// (containerd); `fake`: nothing runs (kwok-style, for scale).
    #[arg(long, default_value = "process", value_parser = ["process", "cri", "fake"])]
    runtime: String,
    /// With `--runtime cri`: the CRI runtime's socket.
    #[arg(long, default_value = "unix:///run/containerd/containerd.sock")]
    container_runtime_endpoint: String,
    /// With `--runtime cri`: the directory the runtime reads CNI configs from; kubelet-lite
    /// writes the node's pod network there (a bridge over --pod-cidr). Empty: leave the
    /// network to someone else.
    #[arg(long, default_value = "/etc/cni/net.d")]
    cni_conf_dir: PathBuf,
    /// DNS servers for pods with `dnsPolicy: ClusterFirst` (comma-separated); none: the node's.
    #[arg(long, value_delimiter = ',')]
    cluster_dns: Vec<String>,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// With `--runtime fake`: register this many nodes, `<node-name>-0` … `<node-name>-<N-1>`,
    /// each on its own port.
    #[arg(long, default_value_t = 0)]
    fake_nodes: u32,
    /// Taints to register the node with: key=value:Effect or key:Effect, comma-separated.
    #[arg(long, value_delimiter = ',')]
    register_with_taints: Vec<String>,
    /// A container's log is rotated at this size (one rotated file is kept), e.g. 10Mi.
    #[arg(long, default_value = "10Mi")]
    container_log_max_size: String,
}

fn parse_labels(items: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in items.iter().filter(|s| !s.trim().is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("invalid --node-labels entry {item:?}: expected key=value"))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("invalid --node-labels entry {item:?}: empty key"));
        }
        out.insert(k.to_string(), v.trim().to_string());
    }
    Ok(out)
}

fn quantity(flag: &str, v: Option<String>, milli: bool) -> Result<Option<Quantity>, String> {
    let Some(v) = v else { return Ok(None) };
    let q = Quantity::new(v.clone());
    let ok = if milli {
        q.milli_value().is_ok_and(|m| m > 0)
    } else {
        q.value().is_ok_and(|m| m > 0)
    };
    if !ok {
        return Err(format!(
            "invalid {flag} {v:?}: expected a positive quantity"
        ));
    }
    Ok(Some(q))
}

/// One node's config, or with `--fake-nodes N` one per simulated node.
fn configs(args: Args) -> Result<Vec<kubelet_lite::Config>, String> {
    if args.fake_nodes == 0 {
        return Ok(vec![config(args)?]);
    }
    if args.runtime != "fake" {
        return Err("--fake-nodes needs --runtime fake".into());
    }
    let base = args
        .node_name
        .clone()
        .unwrap_or_else(kubelet_lite::machine::hostname);
    let root = args
        .root_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".kubelet-lite").join(&base));
    (0..args.fake_nodes)
        .map(|i| {
            let mut a = args.clone();
            let name = format!("{base}-{i}");
            a.root_dir = Some(root.join(&name));
            a.node_name = Some(name);
            a.port = 0;
            a.pod_cidr = None;
            config(a)
        })
        .collect()
}

fn config(args: Args) -> Result<kubelet_lite::Config, String> {
    let node_name = args
        .node_name
        .unwrap_or_else(kubelet_lite::machine::hostname);
    if !(args.restart_backoff.is_finite() && args.restart_backoff > 0.0) {
        return Err(format!(
            "invalid --restart-backoff {}: must be a positive number of seconds",
            args.restart_backoff
        ));
    }
    if !(args.sync_frequency.is_finite() && args.sync_frequency > 0.0) {
        return Err(format!(
            "invalid --sync-frequency {}: must be a positive number of seconds",
            args.sync_frequency
        ));
    }
    let node_labels = parse_labels(&args.node_labels)?;
    let taints = kubelet_lite::node::parse_taints(&args.register_with_taints)?;
    let log_max = quantity(
        "--container-log-max-size",
        Some(args.container_log_max_size.clone()),
        false,
    )?
    .and_then(|q| q.value().ok())
    .unwrap_or(10 << 20);
    let cpu = quantity("--cpu", args.cpu, true)?;
    let memory = quantity("--memory", args.memory, false)?;
    let listener = std::net::TcpListener::bind((args.address.as_str(), args.port))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.address, args.port))?;
    let root_dir = args
        .root_dir
        .unwrap_or_else(|| PathBuf::from(".kubelet-lite").join(&node_name));
    let cri = args.runtime == "cri";
    let mut c = kubelet_lite::Config::new(args.server, node_name, listener, root_dir);
    if cri {
        c.runtime = kubelet_lite::RuntimeKind::Cri;
        c.pod_cidr = String::new();
        c.container_runtime_endpoint = args.container_runtime_endpoint;
        c.cni_conf_dir = (!args.cni_conf_dir.as_os_str().is_empty()).then_some(args.cni_conf_dir);
        c.cluster_dns = args.cluster_dns;
        c.cluster_domain = args.cluster_domain;
    }
    if let Some(cidr) = args.pod_cidr {
        c.pod_cidr = cidr;
    }
    c.node_ip = args.node_ip;
    c.cpu = cpu;
    c.memory = memory;
    c.max_pods = args.max_pods;
    c.node_labels = node_labels;
    c.restart_backoff_base = Duration::from_secs_f64(args.restart_backoff);
    c.sync_frequency = Duration::from_secs_f64(args.sync_frequency);
    c.register_with_taints = taints;
    c.container_log_max_size = log_max.max(1) as u64;
    if args.runtime == "fake" {
        c.runtime = kubelet_lite::RuntimeKind::Fake;
    }
    c.restart_backoff_max = c.restart_backoff_base.max(Duration::from_secs(300));
    // Containers run under this very binary as their shim, so they survive a restart of it.
    if !cri {
        c.shim_program = std::env::current_exe().ok();
    }
    Ok(c)
}

fn main() {
    // Before anything else: this process may be a container's shim.
    kubelet_lite::runtime::shim::run_if_shim();
    tokio_main();
}

#[tokio::main]
async fn tokio_main() {
    client::process::init_tracing();
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return;
            }
            let text = e.to_string();
            let line = text.lines().next().unwrap_or("invalid arguments");
            client::process::fail(line.trim_start_matches("error: "));
        }
    };
    let configs = match configs(args) {
        Ok(c) => c,
        Err(e) => client::process::fail(&e),
    };
    let shutdown = client::process::shutdown_on_signal();
    let nodes = configs
        .into_iter()
        .map(|c| tokio::spawn(kubelet_lite::run(c, shutdown.clone())));
    for r in futures::future::join_all(nodes).await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => client::process::fail(&format!("{e:#}")),
            Err(e) => client::process::fail(&format!("a node task failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_quantities() {
        let l = parse_labels(&["a=b".into(), "zone=eu-1".into(), "empty=".into()]).unwrap();
        assert_eq!(l["a"], "b");
        assert_eq!(l["empty"], "");
        assert!(parse_labels(&["novalue".into()]).is_err());
        assert!(parse_labels(&["=x".into()]).is_err());
        assert!(quantity("--cpu", Some("2".into()), true).unwrap().is_some());
        assert!(quantity("--cpu", Some("two".into()), true).is_err());
        assert!(quantity("--memory", Some("0".into()), false).is_err());
    }
}
