//! kubectl-lite: the kubectl of kube-lite. It talks to the API server the way kubectl does —
//! client-side apply with three-way strategic merge patches, server-side Tables for `get`,
//! `DeleteOptions` and waiting for deletions — and words its output and errors like kubectl.
//!
//! # Layout
//! - [`cmd`]: one module per subcommand (`apply`, `get`, `delete`, `version`, `api-resources`),
//!   each a clap `Args` struct with `async fn run(self, ctx)`; `cmd/mod.rs` only dispatches.
//! - [`context`]: global flags and kubeconfig → API server URL and namespace.
//! - [`rest`]: the HTTP layer: JSON, Tables, `Status` errors, refused connections.
//! - [`builder`]: `KIND NAME`, `KIND/NAME`, `kind1,kind2`, `all` → what to fetch.
//! - [`manifest`]: `-f FILE|DIR|-` → objects, parsed before anything is sent.
//! - [`patch`]: the three-way strategic merge patch of `kubectl apply`.
//! - [`printer`]: tables, `-o yaml|json|name`, result lines — pure, snapshot-tested.
//! - [`tabwriter`]: Go's `text/tabwriter` with kubectl's settings.
//! - [`errors`]: the error type and kubectl's wording of errors.
//!
//! # Not yet here
//! The later commands (`describe`, `logs`, `scale`, `rollout`, `edit`, `label`, …) slot in as
//! new files in `cmd/` and a variant in [`cmd::Command`]; `get -w` and `-o jsonpath` extend
//! [`printer::Output`] and `cmd/get.rs`.

pub mod builder;
pub mod cmd;
pub mod context;
pub mod errors;
pub mod manifest;
pub mod patch;
pub mod printer;
pub mod rest;
pub mod tabwriter;

use clap::Parser;

pub use crate::context::{Context, GlobalArgs};
pub use crate::errors::{Error, Result};

/// The command line: global flags, then a subcommand.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl-lite",
    version,
    about = "kubectl-lite controls the kube-lite cluster manager.",
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
    let ctx = Context::from_args(&cli.global)?;
    cli.command.run(&ctx).await
}
