//! The `kube-system/kube-dns` Service (no selector: this server writes its endpoints) and one
//! EndpointSlice per server, `kube-dns-<identity>`, holding the server's address, so that
//! kube-proxy-lite leads the ClusterIP kubelets give pods to a running server. The slice goes
//! when the server stops cleanly.

use std::net::Ipv4Addr;

use anyhow::Context as _;
use api::core::Service;
use api::discovery::{EndpointSlice, LABEL_MANAGED_BY, LABEL_SERVICE_NAME};
use client::{Api, Client};

pub const NAMESPACE: &str = "kube-system";
pub const SERVICE: &str = "kube-dns";
/// Who writes the slices (`endpointslice.kubernetes.io/managed-by`).
pub const MANAGER: &str = "kube-dns-lite";

#[derive(Clone, Debug)]
pub struct Publish {
    /// The Service's ClusterIP (what kubelets' `--cluster-dns` says).
    pub cluster_ip: String,
    /// This server's address, as pods reach it.
    pub address: Ipv4Addr,
    /// Names this server's slice (e.g. the host name).
    pub identity: String,
}

pub struct Publisher {
    services: Api<Service>,
    slices: Api<EndpointSlice>,
    publish: Publish,
    port: u16,
}

/// The Service as this server makes it.
pub fn service(cluster_ip: &str) -> Result<Service, serde_json::Error> {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE,
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "KubeDNS",
                "kubernetes.io/cluster-service": "true"}},
        "spec": {"clusterIP": cluster_ip, "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}
        ]}
    }))
}

/// This server's slice: one ready endpoint, its address and port for both protocols.
pub fn slice(p: &Publish, port: u16) -> Result<EndpointSlice, serde_json::Error> {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": slice_name(&p.identity), "namespace": NAMESPACE,
            "labels": {LABEL_SERVICE_NAME: SERVICE, LABEL_MANAGED_BY: MANAGER}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [p.address.to_string()],
            "conditions": {"ready": true, "serving": true, "terminating": false}}],
        "ports": [
            {"name": "dns", "port": port, "protocol": "UDP"},
            {"name": "dns-tcp", "port": port, "protocol": "TCP"}
        ]
    }))
}

/// `kube-dns-<identity>`, made a valid object name.
pub fn slice_name(identity: &str) -> String {
    let clean: String = identity
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(50)
        .collect();
    let clean = clean.trim_matches('-');
    if clean.is_empty() {
        format!("{SERVICE}-server")
    } else {
        format!("{SERVICE}-{clean}")
    }
}

impl Publisher {
    pub fn new(client: Client, publish: Publish, port: u16) -> Publisher {
        Publisher {
            services: Api::namespaced(client.clone(), NAMESPACE),
            slices: Api::namespaced(client, NAMESPACE),
            publish,
            port,
        }
    }

    /// Make the Service and the slice if missing, and the slice right if it is not.
    pub async fn ensure(&self) -> anyhow::Result<()> {
        match self.services.get_opt(SERVICE).await? {
            Some(s) if s.spec.cluster_ip != self.publish.cluster_ip => {
                tracing::warn!(
                    have = %s.spec.cluster_ip, want = %self.publish.cluster_ip,
                    "the kube-dns Service has another ClusterIP than kubelets are told; leaving it"
                );
            }
            Some(_) => {}
            None => {
                self.services
                    .create(&service(&self.publish.cluster_ip)?)
                    .await
                    .context("creating Service kube-system/kube-dns")?;
                tracing::info!(cluster_ip = %self.publish.cluster_ip, "created Service kube-system/kube-dns");
            }
        }
        let want = slice(&self.publish, self.port)?;
        let name = want.metadata.name.clone();
        match self.slices.get_opt(&name).await? {
            None => {
                self.slices
                    .create(&want)
                    .await
                    .with_context(|| format!("creating EndpointSlice kube-system/{name}"))?;
                tracing::info!(slice = %name, address = %self.publish.address, "published this server's endpoint");
            }
            Some(have) if have.endpoints != want.endpoints || have.ports != want.ports => {
                let mut next = want;
                next.metadata.resource_version = have.metadata.resource_version.clone();
                self.slices.replace(&name, &next).await?;
                tracing::info!(slice = %name, address = %self.publish.address, "updated this server's endpoint");
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Remove this server's slice (the Service stays: other servers may serve it).
    pub async fn withdraw(&self) {
        let name = slice_name(&self.publish.identity);
        if let Err(e) = self.slices.delete(&name, &Default::default()).await {
            tracing::warn!(slice = %name, error = %e, "cannot remove this server's endpoint");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_and_slice_are_what_kube_proxy_reads() {
        let s = service("10.96.0.10").unwrap();
        assert_eq!(s.spec.cluster_ip, "10.96.0.10");
        assert!(s.spec.selector.is_empty());
        assert_eq!(s.spec.ports.len(), 2);
        let p = Publish {
            cluster_ip: "10.96.0.10".into(),
            address: "192.0.2.2".parse().unwrap(),
            identity: "My_Host.example".into(),
        };
        let sl = slice(&p, 53).unwrap();
        assert_eq!(sl.metadata.name, "kube-dns-my-host-example");
        assert_eq!(sl.metadata.labels[LABEL_SERVICE_NAME], SERVICE);
        assert_eq!(sl.endpoints[0].addresses, ["192.0.2.2"]);
        assert_eq!(slice_name("--"), "kube-dns-server");
    }
}
