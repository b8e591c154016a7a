//! kubectl-lite: the kubectl of kube-lite. It talks to the API server the way kubectl does —
//! client-side apply with three-way strategic merge patches, server-side Tables for `get`,
//! watches for `-w`, `rollout status` and `wait`, `DeleteOptions` and evictions — and words its
//! output and errors like kubectl. `docs/kubectl-lite.md` is the command guide.
//!
//! # Layout
//! - [`cmd`]: one module per subcommand (`apply`, `get`, `describe`, `logs`, `rollout`, …),
//!   each a clap `Args` struct with `async fn run(self, ctx)`; `cmd/mod.rs` only dispatches.
//! - [`context`]: global flags and kubeconfig → a `client::Client` and the namespace; the
//!   request shapes the commands use (JSON, Tables, patches, watches, log streams).
//! - [`builder`]: `KIND NAME`, `KIND/NAME`, `kind1,kind2`, `all` → what to fetch; and the
//!   objects a command acts on (names, `-l`, `--all`, `-f`).
//! - [`manifest`]: `-f FILE|DIR|-` → objects, parsed before anything is sent.
//! - [`patch`]: strategic merge patches: the three-way patch of `apply`, the two-way patch of
//!   `edit` and `set image` (list merge keys from `api::merge_keys`).
//! - [`pods`]: `POD` or `TYPE/NAME` → the one pod `logs` and `exec` work on.
//! - [`watch`]: follow one object until a condition holds (`rollout status`, `wait`, `drain`).
//! - [`printer`]: tables, `-o yaml|json|name|jsonpath`, result lines — pure, snapshot-tested.
//! - [`describe`]: `describe`'s pages — pure, snapshot-tested.
//! - [`explain`]: field documentation from the `api` types' JSON schemas.
//! - [`jsonpath`]: kubectl's JSONPath templates (`{.items[*].metadata.name}`, `{range}`).
//! - [`remotecommand`]: `exec`'s streams over a WebSocket (`v5.channel.k8s.io`); [`term`]: the
//!   local terminal (raw mode, size, resizes).
//! - [`tabwriter`]: Go's `text/tabwriter` with kubectl's settings.
//! - [`color`]: colours on a terminal only (and never with `NO_COLOR`).
//! - [`errors`]: the error type and kubectl's wording of errors.
//! - [`util`]: durations, times and JSON field helpers.

pub mod builder;
pub mod cmd;
pub mod color;
pub mod context;
pub mod describe;
pub mod errors;
pub mod explain;
pub mod jsonpath;
pub mod manifest;
pub mod patch;
pub mod pods;
pub mod portforward;
pub mod printer;
pub mod remotecommand;
pub mod tabwriter;
pub mod term;
pub mod util;
pub mod watch;
pub mod workloads;

use clap::Parser;

pub use crate::context::{Context, GlobalArgs};
pub use crate::errors::{Error, Result};

/// The command line: global flags, then a subcommand.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl-lite",
    version,
    about = "kubectl-lite controls the kube-lite cluster manager.",
    long_about = "kubectl-lite controls the kube-lite cluster manager, as kubectl controls Kubernetes.\n\n\
                  It finds the cluster through --server, --kubeconfig, $KUBECONFIG or ~/.kube/config, \
                  else .kube-lite/kubeconfig (which `kube-lite up` writes), else http://127.0.0.1:8080.\n\n\
                  Start with:  kubectl-lite get nodes\n             \
                  kubectl-lite apply -f examples/blog.yaml\n             \
                  kubectl-lite get pods -o wide\n             \
                  kubectl-lite describe deployment blog",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: cmd::Command,
}

/// Run one command line to completion.
pub async fn run(cli: Cli) -> Result<()> {
    if !cli.command.needs_server() {
        return cli.command.run_offline(&cli.global);
    }
    let ctx = Context::from_args(&cli.global)?;
    cli.command.run(&ctx).await
}
