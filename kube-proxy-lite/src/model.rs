//! What the proxy programs, independent of how: each Service port (its virtual IP, port and
//! node port) with the endpoints that may take new connections — kube-proxy's `ServicePort`
//! and `Endpoint`. Built from Services and EndpointSlices by the watch loop; read by the
//! nftables and user-space back ends.

use std::net::Ipv4Addr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn parse(s: &str) -> Protocol {
        match s {
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            _ => Protocol::Tcp,
        }
    }

    /// As nftables names it.
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One endpoint of a Service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    /// Ready: takes new connections. A terminating endpoint is not ready (Kubernetes'
    /// EndpointSlice conditions), so a rolling update drains.
    pub ready: bool,
    /// Serving: its readiness probe passes, terminating or not.
    pub serving: bool,
}

/// One port of one Service.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    /// The port's name in the Service (may be empty).
    pub port_name: String,
    pub protocol: Protocol,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    /// A NodePort Service's port on every node.
    pub node_port: Option<u16>,
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// `namespace/name:port` (`default/blog:http`), as kube-proxy names service ports.
    pub fn id(&self) -> String {
        if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.name)
        } else {
            format!("{}/{}:{}", self.namespace, self.name, self.port_name)
        }
    }

    /// The endpoints new connections go to: the ready ones; when none is ready, those still
    /// serving while they terminate (Kubernetes' "terminating endpoints" fallback), so a
    /// Service whose last pods are being replaced does not drop connections.
    pub fn targets(&self) -> Vec<&Endpoint> {
        let ready: Vec<&Endpoint> = self.endpoints.iter().filter(|e| e.ready).collect();
        if !ready.is_empty() {
            return ready;
        }
        self.endpoints.iter().filter(|e| e.serving).collect()
    }
}
