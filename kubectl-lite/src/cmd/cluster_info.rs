//! `cluster-info`: where the control plane is (and that it answers); `cluster-info dump`:
//! everything a bug report needs — nodes, then per namespace its events, Deployments,
//! ReplicaSets and pods as JSON, then each container's log.

use api::resource::{DEPLOYMENT, EVENT, NAMESPACE, NODE, POD, REPLICA_SET};
use serde_json::Value;

use crate::color::{self, Color};
use crate::context::{Context, query};
use crate::errors::Result;
use crate::printer;
use crate::util::{name_of, str_of};

#[derive(clap::Args, Debug)]
pub struct ClusterInfo {
    #[command(subcommand)]
    pub dump: Option<Dump>,
}

#[derive(clap::Subcommand, Debug)]
pub enum Dump {
    /// Print the cluster's state and logs, for debugging (JSON).
    Dump(DumpArgs),
}

#[derive(clap::Args, Debug)]
pub struct DumpArgs {
    /// Every namespace (default: default and kube-system, or -n).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// kubectl's first line, coloured on a terminal.
pub fn running_at(server: &str, on: bool) -> String {
    format!(
        "{} is running at {}\n\nTo further debug and diagnose cluster problems, use 'kubectl-lite cluster-info dump'.\n",
        color::paint(on, Color::Green, "Kubernetes control plane"),
        color::paint(on, Color::Yellow, server)
    )
}

impl ClusterInfo {
    pub async fn run(self, ctx: &Context, namespace_explicit: bool) -> Result<()> {
        match self.dump {
            None => {
                // Ask something, so that a cluster that is not there says so.
                ctx.get("/version").await?;
                printer::stdout(&running_at(ctx.server(), color::stdout()));
                Ok(())
            }
            Some(Dump::Dump(a)) => dump(ctx, a.all_namespaces, namespace_explicit).await,
        }
    }
}

async fn dump(ctx: &Context, all: bool, namespace_explicit: bool) -> Result<()> {
    let list = |items: Vec<Value>, kind: &str| {
        printer::to_json(
            &serde_json::json!({"kind": kind, "apiVersion": "v1", "metadata": {}, "items": items}),
        ) + "\n"
    };
    printer::stdout(&list(
        ctx.list(&NODE.collection_path(None), &[]).await?,
        "NodeList",
    ));
    let namespaces: Vec<String> = if all {
        ctx.list(&NAMESPACE.collection_path(None), &[])
            .await?
            .iter()
            .map(|n| name_of(n).to_string())
            .collect()
    } else if namespace_explicit {
        vec![ctx.namespace.clone()]
    } else {
        vec!["kube-system".into(), "default".into()]
    };
    for ns in &namespaces {
        for (info, kind) in [
            (&EVENT, "EventList"),
            (&DEPLOYMENT, "DeploymentList"),
            (&REPLICA_SET, "ReplicaSetList"),
            (&POD, "PodList"),
        ] {
            let items = ctx.list(&info.collection_path(Some(ns)), &[]).await?;
            printer::stdout(&list(items, kind));
        }
        for pod in ctx.list(&POD.collection_path(Some(ns)), &[]).await? {
            let name = name_of(&pod);
            for c in pod["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let container = str_of(&c, "/name");
                printer::stdout(&format!(
                    "==== START logs for container {container} of pod {ns}/{name} ====\n"
                ));
                let path = format!(
                    "{}/log{}",
                    POD.object_path(Some(ns), name),
                    query(&[("container", container.to_string())])
                );
                match ctx.stream(&path).await {
                    Ok(resp) => {
                        let text = resp.text().await.unwrap_or_default();
                        printer::stdout(&text);
                    }
                    Err(e) => printer::stdout(&format!("Request log error: {e}\n")),
                }
                printer::stdout(&format!(
                    "==== END logs for container {container} of pod {ns}/{name} ====\n"
                ));
            }
        }
    }
    Ok(())
}
