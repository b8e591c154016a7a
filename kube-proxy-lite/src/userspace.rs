//! The user-space back end, for a node without the privileges nftables needs (a laptop
//! running `kube-lite up` without root): a TCP listener on each Service's virtual IP and port —
//! ClusterIPs come from a loopback range there, which needs no network set-up — and on its node
//! port, that copies each connection to one of the ready endpoints in turn (round robin). A
//! Service without endpoints has no listener, so connections to it are refused, not hung. UDP
//! and SCTP are not proxied in this mode.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::model::{Protocol, ServicePort};

/// Where a listener listens: a ClusterIP and port, or a node port on every address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frontend {
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// The endpoints one listener sends to, and whose turn it is.
#[derive(Debug, Default)]
pub struct Backends {
    targets: RwLock<Vec<SocketAddr>>,
    next: AtomicUsize,
}

impl Backends {
    fn set(&self, t: Vec<SocketAddr>) {
        if let Ok(mut g) = self.targets.write() {
            *g = t;
        }
    }

    /// The targets in the order to try them, starting with the next in turn.
    pub fn order(&self) -> Vec<SocketAddr> {
        let t = self.targets.read().map(|g| g.clone()).unwrap_or_default();
        if t.is_empty() {
            return t;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % t.len();
        t[start..].iter().chain(&t[..start]).copied().collect()
    }
}

struct Listener {
    backends: Arc<Backends>,
    stop: CancellationToken,
}

/// The listeners for the current Services.
#[derive(Default)]
pub struct Userspace {
    listeners: HashMap<Frontend, Listener>,
}

/// What listens where, and to which endpoints: TCP Service ports with somewhere to send to.
pub fn frontends(ports: &[ServicePort]) -> HashMap<Frontend, Vec<SocketAddr>> {
    let mut out = HashMap::new();
    for sp in ports.iter().filter(|p| p.protocol == Protocol::Tcp) {
        let targets: Vec<SocketAddr> = sp
            .targets()
            .iter()
            .map(|e| SocketAddr::from((e.ip, e.port)))
            .collect();
        if targets.is_empty() {
            continue;
        }
        out.insert(
            Frontend {
                ip: sp.cluster_ip,
                port: sp.port,
            },
            targets.clone(),
        );
        if let Some(np) = sp.node_port {
            out.insert(
                Frontend {
                    ip: Ipv4Addr::UNSPECIFIED,
                    port: np,
                },
                targets,
            );
        }
    }
    out
}

impl Userspace {
    /// Listen where `ports` say, stop listening where they no longer do, and point every
    /// listener at its current endpoints. Returns what could not be bound, as messages.
    pub async fn sync(&mut self, ports: &[ServicePort]) -> Vec<String> {
        let want = frontends(ports);
        self.listeners.retain(|f, l| {
            let keep = want.contains_key(f);
            if !keep {
                l.stop.cancel();
                tracing::info!(ip = %f.ip, port = f.port, "stopped proxying (no endpoints, or no Service)");
            }
            keep
        });
        let mut errors = Vec::new();
        for (f, targets) in want {
            if let Some(l) = self.listeners.get(&f) {
                l.backends.set(targets);
                continue;
            }
            match TcpListener::bind((f.ip, f.port)).await {
                Ok(listener) => {
                    let backends = Arc::new(Backends::default());
                    backends.set(targets);
                    let stop = CancellationToken::new();
                    tokio::spawn(serve(listener, backends.clone(), stop.clone()));
                    tracing::info!(ip = %f.ip, port = f.port, "proxying");
                    self.listeners.insert(f, Listener { backends, stop });
                }
                Err(e) => errors.push(format!("cannot listen on {}:{}: {e}", f.ip, f.port)),
            }
        }
        errors
    }

    /// Stop every listener.
    pub fn stop(&mut self) {
        for (_, l) in self.listeners.drain() {
            l.stop.cancel();
        }
    }
}

async fn serve(listener: TcpListener, backends: Arc<Backends>, stop: CancellationToken) {
    loop {
        let (client, _) = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let backends = backends.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            let mut client = client;
            for target in backends.order() {
                let c =
                    tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(target)).await;
                let Ok(Ok(mut upstream)) = c else {
                    tracing::debug!(%target, "endpoint did not answer; trying the next");
                    continue;
                };
                let _ = upstream.set_nodelay(true);
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                }
                return;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Endpoint;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers every connection with `name`.
    async fn named_server(name: &'static str) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(name.as_bytes()).await;
            }
        });
        addr
    }

    fn service(vip: Ipv4Addr, port: u16, eps: &[SocketAddr]) -> ServicePort {
        ServicePort {
            namespace: "default".into(),
            name: "web".into(),
            port_name: String::new(),
            protocol: Protocol::Tcp,
            cluster_ip: vip,
            port,
            node_port: None,
            endpoints: eps
                .iter()
                .map(|a| Endpoint {
                    ip: match a.ip() {
                        std::net::IpAddr::V4(ip) => ip,
                        std::net::IpAddr::V6(_) => Ipv4Addr::LOCALHOST,
                    },
                    port: a.port(),
                    ready: true,
                    serving: true,
                })
                .collect(),
        }
    }

    async fn ask(addr: SocketAddr) -> std::io::Result<String> {
        let mut s = TcpStream::connect(addr).await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn spreads_connections_and_refuses_without_endpoints() {
        let a = named_server("a").await;
        let b = named_server("b").await;
        // A loopback virtual IP, as the laptop mode's ClusterIPs.
        let vip: Ipv4Addr = "127.96.201.7".parse().unwrap();
        let port = std::net::TcpListener::bind((vip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut u = Userspace::default();
        assert!(u.sync(&[service(vip, port, &[a, b])]).await.is_empty());
        let front = SocketAddr::from((vip, port));
        let mut seen = HashMap::new();
        for _ in 0..20 {
            *seen.entry(ask(front).await.unwrap()).or_insert(0) += 1;
        }
        assert_eq!(seen.get("a"), Some(&10), "{seen:?}");
        assert_eq!(seen.get("b"), Some(&10), "{seen:?}");
        // No endpoints: no listener, the connection is refused.
        assert!(u.sync(&[service(vip, port, &[])]).await.is_empty());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let refused = loop {
            match TcpStream::connect(front).await {
                // A connection queued as the listener closed is reset; the next is refused.
                Err(e) if e.kind() != std::io::ErrorKind::ConnectionReset => break e,
                _ => {
                    assert!(tokio::time::Instant::now() < deadline, "still listening");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        u.stop();
    }
}
