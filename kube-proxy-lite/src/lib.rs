//! kube-proxy-lite: the node's service proxy, as kube-proxy. It watches Services and
//! EndpointSlices and makes each Service's virtual IP (and node port) lead to its ready
//! endpoints: with nftables rules where it has the privileges, with a small user-space proxy
//! on loopback virtual IPs where it has not (a laptop without root).
//!
//! # Layout
//! - [`model`]: what is programmed — Service ports and their endpoints.
//! - [`nft`]: the nftables back end (one table, replaced atomically).
//! - [`userspace`]: the back end without privileges: listeners on loopback virtual IPs.
//! - [`translate`]: Services and EndpointSlices → Service ports.
//! - [`run`] / [`Config`]: watch, translate, program; `main.rs` is the binary.

pub mod model;
pub mod nft;
pub mod translate;
pub mod userspace;

use std::collections::BTreeSet;
use std::time::Duration;

use api::net::Cidr;
use client::Client;
use client::runtime::events::{Recorder, object_ref};
use client::runtime::services::ServicesAndSlices;
use tokio_util::sync::CancellationToken;

/// How Service traffic is steered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Kernel rules (needs CAP_NET_ADMIN and the `nft` tool).
    Nftables,
    /// Listeners on the virtual IPs, in this process (no privileges needed).
    Userspace,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// API server URL.
    pub server: String,
    pub node_name: String,
    /// `None`: nftables where it works, else user space.
    pub mode: Option<Mode>,
    /// The pods' addresses (`--cluster-cidr`): traffic to a ClusterIP from outside them is
    /// masqueraded, so replies come back through this node.
    pub cluster_cidr: Option<Cidr>,
}

/// Whether nftables rules can be written here: an empty table is made and removed.
async fn nftables_works() -> Result<(), String> {
    nft::apply(&format!(
        "table ip {t}\ndelete table ip {t}\ntable ip {t} {{\n}}\n",
        t = nft::TABLE
    ))
    .await?;
    nft::remove().await
}

/// Program Services until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = Client::new(
        &config.server,
        &format!("kube-proxy-lite/{}", config.node_name),
    )?;
    let mode = match config.mode {
        Some(m) => m,
        None => match nftables_works().await {
            Ok(()) => Mode::Nftables,
            Err(e) => {
                tracing::info!(reason = %e, "nftables not usable here; proxying in user space");
                Mode::Userspace
            }
        },
    };
    tracing::info!(node = %config.node_name, ?mode, "kube-proxy-lite starting");
    let watch = ServicesAndSlices::start(&client, &shutdown);
    let (services, slices, changed) = (&watch.services, &watch.slices, watch.changed.clone());
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = watch.ready() => {}
    }
    let recorder = Recorder::new(client.clone(), "kube-proxy", &config.node_name);
    let mut userspace = userspace::Userspace::default();
    let mut last_rules: Option<nft::Ruleset> = None;
    let mut last_errors: Vec<String> = Vec::new();
    let mut without_endpoints: BTreeSet<String> = BTreeSet::new();
    loop {
        let svcs = services.list();
        let sls = slices.list();
        let ports = translate::service_ports(
            &svcs.iter().map(|s| &**s).collect::<Vec<_>>(),
            &sls.iter().map(|s| &**s).collect::<Vec<_>>(),
        );
        // An event when a Service port loses its last endpoint (its connections are refused).
        let empty: BTreeSet<String> = ports
            .iter()
            .filter(|p| p.targets().is_empty())
            .map(|p| p.id())
            .collect();
        for p in ports.iter().filter(|p| p.targets().is_empty()) {
            if without_endpoints.contains(&p.id()) {
                continue;
            }
            if let Some(svc) = svcs
                .iter()
                .find(|s| s.metadata.namespace == p.namespace && s.metadata.name == p.name)
            {
                recorder.warning(
                    &object_ref(&**svc),
                    "NoReadyEndpoints",
                    format!(
                        "Service {} has no ready endpoints: connections to {}:{} are refused",
                        p.id(),
                        p.cluster_ip,
                        p.port
                    ),
                );
            }
        }
        without_endpoints = empty;
        match mode {
            Mode::Nftables => {
                let rules = nft::build(&ports, config.cluster_cidr.as_ref());
                // The first time and after a failure the whole table; else what changed.
                let script = match &last_rules {
                    Some(old) => nft::diff(old, &rules),
                    None => Some(nft::full(&rules)),
                };
                if let Some(script) = script {
                    let whole = last_rules.is_none();
                    match nft::apply(&script).await {
                        Ok(()) => {
                            tracing::info!(
                                service_ports = ports.len(),
                                whole,
                                "nftables rules written"
                            );
                            last_rules = Some(rules);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot write the nftables rules");
                            last_rules = None;
                        }
                    }
                }
            }
            Mode::Userspace => {
                let errors = userspace.sync(&ports).await;
                if errors != last_errors {
                    for e in &errors {
                        tracing::warn!(error = %e, "cannot proxy a Service");
                    }
                    last_errors = errors;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = changed.notified() => {}
            // Now and then the whole table anyway: rules someone removed come back.
            _ = tokio::time::sleep(Duration::from_secs(60)) => { last_rules = None; }
        }
        // Changes come in bursts (a rollout): take them together.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    match mode {
        Mode::Nftables => {
            if let Err(e) = nft::remove().await {
                tracing::warn!(error = %e, "cannot remove the nftables rules");
            }
        }
        Mode::Userspace => userspace.stop(),
    }
    drop(watch);
    tracing::info!(node = %config.node_name, "kube-proxy-lite stopped");
    Ok(())
}
