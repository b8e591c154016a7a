//! The subcommands, one file each; this module only dispatches.

pub mod api_resources;
pub mod apply;
pub mod cluster_info;
pub mod completion;
pub mod config;
pub mod create;
pub mod delete;
pub mod describe;
pub mod edit;
pub mod exec;
pub mod explain;
pub mod expose;
pub mod get;
pub mod label;
pub mod logs;
pub mod node;
pub mod port_forward;
pub mod replace;
pub mod rollout;
pub mod scale;
pub mod set;
pub mod version;
pub mod wait;

use crate::context::{Context, GlobalArgs};
use crate::errors::Result;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Apply a configuration to a resource by file name or stdin (create or update it).
    #[command(next_help_heading = None, display_order = 1)]
    Apply(apply::Apply),
    /// Create a resource from a file or stdin, or from flags (configmap, namespace, deployment).
    Create(create::Create),
    /// Take a deployment, replica set, pod or service and expose it as a new Service.
    Expose(expose::Expose),
    /// Replace a resource by file name or stdin.
    Replace(replace::Replace),
    /// Display one or many resources.
    Get(get::Get),
    /// Show details of a specific resource or group of resources, with their events.
    Describe(describe::Describe),
    /// Delete resources by file names, stdin, resources and names, or by resources and label selector.
    Delete(delete::Delete),
    /// Edit a resource on the server with your editor ($KUBE_EDITOR, $EDITOR or vi).
    Edit(edit::Edit),
    /// Print the logs for a container in a pod.
    Logs(logs::Logs),
    /// Execute a command in a container.
    Exec(exec::Exec),
    /// Forward one or more local ports to a pod (or a Service's, Deployment's pod).
    PortForward(port_forward::PortForward),
    /// Set a new size for a deployment or replica set.
    Scale(scale::Scale),
    /// Manage the rollout of a deployment: status, history, undo, restart, pause, resume.
    Rollout(rollout::Rollout),
    /// Set specific features on objects (set image).
    Set(set::Set),
    /// Update the labels on a resource.
    Label(label::Label),
    /// Update the annotations on a resource.
    Annotate(label::Annotate),
    /// Mark node as unschedulable.
    Cordon(node::Cordon),
    /// Mark node as schedulable.
    Uncordon(node::Uncordon),
    /// Drain node in preparation for maintenance (cordon, then evict its pods).
    Drain(node::Drain),
    /// Wait for a specific condition on one or many resources (condition=…, delete, jsonpath=…).
    Wait(wait::Wait),
    /// Get documentation for a resource and its fields.
    Explain(explain::Explain),
    /// Display the address of the control plane.
    ClusterInfo(cluster_info::ClusterInfo),
    /// Print the client and server version information.
    Version(version::Version),
    /// Print the supported API resources on the server.
    ApiResources(api_resources::ApiResources),
    /// Modify kubeconfig files (view, use-context, set-context, …).
    Config(config::Config),
    /// Output shell completion code for the specified shell (bash, zsh, fish, powershell).
    Completion(completion::Completion),
}

impl Command {
    /// Whether the command talks to the API server (the others need no kubeconfig either).
    pub fn needs_server(&self) -> bool {
        match self {
            Command::Config(_) | Command::Completion(_) | Command::Explain(_) => false,
            Command::Version(c) => !c.client,
            _ => true,
        }
    }

    /// Run a command that needs no server.
    pub fn run_offline(self, global: &GlobalArgs) -> Result<()> {
        match self {
            Command::Config(c) => c.run(global),
            Command::Completion(c) => c.run(),
            Command::Explain(c) => c.run(),
            Command::Version(c) => c.run_client_only(),
            _ => Ok(()),
        }
    }

    pub async fn run(self, ctx: &Context) -> Result<()> {
        match self {
            Command::Apply(c) => c.run(ctx).await,
            Command::Create(c) => c.run(ctx).await,
            Command::Expose(c) => c.run(ctx).await,
            Command::Replace(c) => c.run(ctx).await,
            Command::Get(c) => c.run(ctx).await,
            Command::Describe(c) => c.run(ctx).await,
            Command::Delete(c) => c.run(ctx).await,
            Command::Edit(c) => c.run(ctx).await,
            Command::Logs(c) => c.run(ctx).await,
            Command::Exec(c) => c.run(ctx).await,
            Command::PortForward(c) => c.run(ctx).await,
            Command::Scale(c) => c.run(ctx).await,
            Command::Rollout(c) => c.run(ctx).await,
            Command::Set(c) => c.run(ctx).await,
            Command::Label(c) => c.run(ctx).await,
            Command::Annotate(c) => c.run(ctx).await,
            Command::Cordon(c) => c.run(ctx).await,
            Command::Uncordon(c) => c.run(ctx).await,
            Command::Drain(c) => c.run(ctx).await,
            Command::Wait(c) => c.run(ctx).await,
            Command::ClusterInfo(c) => c.run(ctx, ctx.namespace_explicit).await,
            Command::Version(c) => c.run(ctx).await,
            Command::ApiResources(c) => c.run(ctx).await,
            Command::Explain(c) => c.run(),
            Command::Config(_) | Command::Completion(_) => Ok(()),
        }
    }
}
