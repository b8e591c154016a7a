//! kube-dns-lite: the cluster's DNS server, as CoreDNS with its `kubernetes` plugin. It watches
//! Services and EndpointSlices and answers `<service>.<namespace>.svc.<domain>` and the other
//! names of the Kubernetes DNS specification; other names go to the host's resolver. Pods find
//! it through the `kube-system/kube-dns` Service, whose ClusterIP the kubelets put in every
//! pod's resolv.conf (`--cluster-dns`); this server keeps that Service and an EndpointSlice
//! with its own address, so kube-proxy-lite leads the ClusterIP to it.
//!
//! # Layout
//! - [`records`]: the names, from Services and EndpointSlices (pure, unit-tested).
//! - [`server`]: hickory's DNS server answering from the records, forwarding the rest.
//! - [`publish`]: the `kube-dns` Service and this server's EndpointSlice.
//! - [`run`] / [`Config`]: watch, rebuild the records, serve; `main.rs` is the binary.

pub mod publish;
pub mod records;
pub mod server;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use client::Client;
use client::runtime::services::ServicesAndSlices;
use tokio_util::sync::CancellationToken;

pub use records::Records;

/// The cluster domain Kubernetes uses unless told otherwise.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

#[derive(Clone, Debug)]
pub struct Config {
    /// API server URL.
    pub server: String,
    /// Where to serve DNS (UDP and TCP), e.g. `0.0.0.0:53`.
    pub listen: SocketAddr,
    pub cluster_domain: String,
    /// Where names outside the cluster go; `None`: the first `nameserver` of
    /// `/etc/resolv.conf`.
    pub upstream: Option<SocketAddr>,
    /// Keep `kube-system/kube-dns` (with this ClusterIP) leading to `address`; `None`: serve
    /// only.
    pub publish: Option<publish::Publish>,
    /// The clients that may ask (e.g. the pod network, loopback, the node); empty: anyone.
    pub allowed: Vec<api::net::Cidr>,
}

/// The first `nameserver` of a resolv.conf (port 53).
pub fn upstream_from_resolv_conf(text: &str) -> Option<SocketAddr> {
    text.lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
}

/// Serve the cluster's names until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = Client::new(&config.server, "kube-dns-lite")?;
    let udp = tokio::net::UdpSocket::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (UDP)", config.listen))?;
    let tcp = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (TCP)", config.listen))?;
    let listen = udp.local_addr()?;
    let upstream = config.upstream.or_else(|| {
        std::fs::read_to_string("/etc/resolv.conf")
            .ok()
            .and_then(|t| upstream_from_resolv_conf(&t))
    });
    // Never forward to ourselves.
    let upstream = upstream.filter(|u| *u != listen);
    tracing::info!(%listen, domain = %config.cluster_domain, ?upstream, "kube-dns-lite serving");

    let watch = ServicesAndSlices::start(&client, &shutdown);
    let (services, slices, changed) = (&watch.services, &watch.slices, watch.changed.clone());

    let records = Arc::new(RwLock::new(Records::build(
        &config.cluster_domain,
        &[],
        &[],
    )));
    let mut dns = hickory_server::Server::new(server::Handler {
        records: records.clone(),
        upstream,
        allowed: config.allowed.clone(),
    });
    dns.register_socket(udp);
    dns.register_listener(tcp, Duration::from_secs(10), 64 * 1024);

    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = watch.ready() => {}
    }
    let publisher = config
        .publish
        .clone()
        .map(|p| publish::Publisher::new(client.clone(), p, listen.port()));
    let mut last_published = tokio::time::Instant::now() - Duration::from_secs(3600);
    while !shutdown.is_cancelled() {
        let svcs = services.list();
        let sls = slices.list();
        let built = Records::build(
            &config.cluster_domain,
            &svcs.iter().map(|s| &**s).collect::<Vec<_>>(),
            &sls.iter().map(|s| &**s).collect::<Vec<_>>(),
        );
        tracing::debug!(services = built.len(), "names rebuilt");
        if let Ok(mut r) = records.write() {
            *r = built;
        }
        // The Service and our endpoint: made at start, checked again now and then (someone
        // may delete them).
        if let Some(p) = &publisher
            && last_published.elapsed() >= Duration::from_secs(30)
        {
            match p.ensure().await {
                Ok(()) => last_published = tokio::time::Instant::now(),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot publish the kube-dns Service");
                    last_published = tokio::time::Instant::now() - Duration::from_secs(28);
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = changed.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        // Changes come in bursts (a rollout): take them together.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Some(p) = &publisher {
        p.withdraw().await;
    }
    let _ = dns.shutdown_gracefully().await;
    drop(watch);
    tracing::info!("kube-dns-lite stopped");
    Ok(())
}

/// The address to publish when listening on every address: the one the host uses towards
/// the outside (its default route's source), if any.
pub fn host_address() -> Option<Ipv4Addr> {
    // A UDP "connection" sends nothing; it only picks the route and the source address.
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:53").ok()?;
    match s.local_addr().ok()?.ip() {
        std::net::IpAddr::V4(a) if !a.is_unspecified() && !a.is_loopback() => Some(a),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_is_the_first_nameserver() {
        let conf = "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver 1.1.1.1\n";
        assert_eq!(
            upstream_from_resolv_conf(conf),
            Some("10.0.0.2:53".parse().unwrap())
        );
        assert_eq!(upstream_from_resolv_conf("search x\n"), None);
    }
}
