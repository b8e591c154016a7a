//! `kube-lite`: the whole cluster in one process. `kube-lite up` starts a single-member
//! kvstore, the API server, the scheduler, the controller manager and N kubelet-lite nodes —
//! each the same library the separate binaries run, talking to the others over HTTP on
//! loopback exactly as they would across machines.

mod load;
mod node;
mod up;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kube-lite",
    version,
    about = "A miniature Kubernetes you can read, run on a laptop and break on purpose."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole cluster in this process (Ctrl-C stops it; running it again resumes it).
    Up(up::UpArgs),
    /// Load images into the nodes of a cluster (`load docker-image NAME[:TAG]...`).
    Load(load::LoadArgs),
    /// Run one worker node: a private containerd and kubelet-lite with the CRI runtime (root).
    Node(node::NodeArgs),
}

fn main() {
    // Before anything else: this process may be a container's shim (see kubelet-lite).
    kubelet_lite::runtime::shim::run_if_shim();
    tokio_main();
}

#[tokio::main]
async fn tokio_main() {
    client::process::init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::Load(args) => load::run(args).await,
        Command::Node(args) => node::run(args).await,
    };
    if let Err(e) = result {
        client::process::fail(&format!("{e:#}"));
    }
}
