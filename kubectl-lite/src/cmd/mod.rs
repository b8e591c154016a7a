//! The subcommands, one file each; this module only dispatches.

pub mod api_resources;
pub mod apply;
pub mod delete;
pub mod get;
pub mod version;

use crate::context::Context;
use crate::errors::Result;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Apply a configuration to a resource by file name or stdin.
    Apply(apply::Apply),
    /// Display one or many resources.
    Get(get::Get),
    /// Delete resources by file names, stdin, resources and names, or by resources and label selector.
    Delete(delete::Delete),
    /// Print the client and server version information.
    Version(version::Version),
    /// Print the supported API resources on the server.
    ApiResources(api_resources::ApiResources),
}

impl Command {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        match self {
            Command::Apply(c) => c.run(ctx).await,
            Command::Get(c) => c.run(ctx).await,
            Command::Delete(c) => c.run(ctx).await,
            Command::Version(c) => c.run(ctx).await,
            Command::ApiResources(c) => c.run(ctx).await,
        }
    }
}
