//! `port-forward TYPE/NAME [LOCAL_PORT:]REMOTE_PORT...`: listen on local ports and forward each
//! connection to a pod through `pods/NAME/portforward` (the API server passes it to the
//! kubelet), over SPDY in a WebSocket ([`crate::portforward`]). As kubectl: `svc/NAME` picks a
//! running pod of the Service and turns the Service port into the container port (`targetPort`
//! by number or by name); `deploy/NAME` and `rs/NAME` pick a pod; `:80` or `0:80` take a free
//! local port; Ctrl-C stops.

use std::sync::Arc;

use api::resource::POD;
use serde_json::Value;

use crate::context::Context;
use crate::errors::{Error, Result};
use crate::portforward::Session;
use crate::util::{name_of, str_of};
use crate::{pods, printer};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  kubectl-lite port-forward pod/web-1 8080:80        # localhost:8080 → the pod's port 80
  kubectl-lite port-forward svc/blog 8080:80         # a pod of the Service, its targetPort
  kubectl-lite port-forward deploy/blog :8000        # a free local port")]
pub struct PortForward {
    /// `POD`, `pod/NAME`, `service/NAME`, `deployment/NAME` or `replicaset/NAME`.
    #[arg(value_name = "TYPE/NAME")]
    pub target: String,
    /// `[LOCAL_PORT:]REMOTE_PORT`, one or more.
    #[arg(required = true, value_name = "[LOCAL_PORT:]REMOTE_PORT")]
    pub ports: Vec<String>,
    /// Addresses to listen on (`localhost` is 127.0.0.1 and ::1).
    #[arg(long, value_delimiter = ',', default_value = "localhost")]
    pub address: Vec<String>,
}

/// `[LOCAL:]REMOTE` → (local, remote as written).
fn parse_port(spec: &str) -> Result<(u16, String)> {
    let (local, remote) = match spec.split_once(':') {
        Some((l, r)) => (l, r),
        None => (spec, spec),
    };
    let local = if local.is_empty() {
        0
    } else {
        local
            .parse::<u16>()
            .map_err(|_| Error::msg(format!("invalid local port {local:?} in {spec:?}")))?
    };
    if remote.is_empty() {
        return Err(Error::msg(format!("invalid port specification {spec:?}")));
    }
    Ok((local, remote.to_string()))
}

/// kubectl's `LookupContainerPortNumberByServicePort`: the container port a Service port leads
/// to in `pod`.
fn container_port(svc: &Value, pod: &Value, remote: &str) -> Result<u16> {
    let ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
    let sp = ports
        .iter()
        .find(|p| {
            p["port"].as_i64().map(|n| n.to_string()).as_deref() == Some(remote)
                || str_of(p, "/name") == remote
        })
        .ok_or_else(|| {
            Error::msg(format!(
                "Service {} does not have a service port {remote}",
                name_of(svc)
            ))
        })?;
    let port = sp["port"].as_u64().unwrap_or(0);
    if str_of(svc, "/spec/clusterIP") == "None" {
        return u16::try_from(port).map_err(|_| Error::msg("invalid service port"));
    }
    let target = match &sp["targetPort"] {
        Value::Number(n) if n.as_u64().is_some_and(|n| n > 0) => n.as_u64().unwrap_or(port),
        Value::String(name) if name.parse::<u64>().is_ok() => name.parse().unwrap_or(port),
        Value::String(name) => pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .find(|cp| str_of(cp, "/name") == name)
            .and_then(|cp| cp["containerPort"].as_u64())
            .ok_or_else(|| {
                Error::msg(format!(
                    "Pod '{}' does not have a named port '{name}'",
                    name_of(pod)
                ))
            })?,
        _ => port,
    };
    u16::try_from(target).map_err(|_| Error::msg(format!("invalid port {target}")))
}

impl PortForward {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        let specs = self
            .ports
            .iter()
            .map(|s| parse_port(s))
            .collect::<Result<Vec<_>>>()?;
        let service = match self.target.split_once('/') {
            Some(("svc" | "service" | "services", name)) => Some(
                ctx.get(&format!(
                    "/api/v1/namespaces/{}/services/{name}",
                    ctx.namespace
                ))
                .await?,
            ),
            _ => None,
        };
        let pod = match &service {
            Some(svc) => {
                let selector: Vec<String> = svc["spec"]["selector"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                            .collect()
                    })
                    .unwrap_or_default();
                if selector.is_empty() {
                    return Err(Error::msg(format!(
                        "cannot attach to *v1.Service: invalid service '{}': Service is defined without a selector",
                        name_of(svc)
                    )));
                }
                let mut found = ctx
                    .list(
                        &POD.collection_path(Some(&ctx.namespace)),
                        &[("labelSelector", selector.join(","))],
                    )
                    .await?;
                found.sort_by_key(pods::pod_rank);
                if found.is_empty() {
                    return Err(Error::msg(format!(
                        "timed out waiting for the condition: no pods found for service {:?}",
                        name_of(svc)
                    )));
                }
                found.swap_remove(0)
            }
            None => pods::for_target(ctx, &self.target, "port-forward").await?,
        };
        let phase = str_of(&pod, "/status/phase");
        if phase != "Running" {
            return Err(Error::msg(format!(
                "unable to forward port because pod is not running. Current status={phase}"
            )));
        }
        let mut forwards = Vec::new();
        for (local, remote) in specs {
            let remote = match &service {
                Some(svc) => container_port(svc, &pod, &remote)?,
                None => remote
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| Error::msg(format!("invalid remote port {remote:?}")))?,
            };
            forwards.push((local, remote));
        }
        let path = format!(
            "{}/portforward",
            POD.object_path(Some(&ctx.namespace), name_of(&pod))
        );
        let url = crate::remotecommand::websocket_url(ctx.server(), &path)?;
        let session = Session::connect(&url, crate::context::USER_AGENT).await?;
        let (failed_tx, mut failed_rx) = tokio::sync::mpsc::channel::<String>(1);
        for (local, remote) in forwards {
            let mut bound_port = local;
            let mut listeners = Vec::new();
            for addr in &self.address {
                let hosts: Vec<&str> = if addr == "localhost" {
                    vec!["127.0.0.1", "::1"]
                } else {
                    vec![addr.as_str()]
                };
                for host in hosts {
                    match tokio::net::TcpListener::bind((host, bound_port)).await {
                        Ok(l) => {
                            bound_port = l.local_addr().map(|a| a.port()).unwrap_or(bound_port);
                            let shown = if host.contains(':') {
                                format!("[{host}]:{bound_port}")
                            } else {
                                format!("{host}:{bound_port}")
                            };
                            printer::stdout(&format!("Forwarding from {shown} -> {remote}\n"));
                            listeners.push(l);
                        }
                        // No IPv6 loopback here: 127.0.0.1 is enough.
                        Err(_) if host == "::1" => {}
                        Err(e) => {
                            return Err(Error::msg(format!(
                                "unable to listen on port {local}: {e}"
                            )));
                        }
                    }
                }
            }
            for l in listeners {
                let (session, failed) = (Arc::clone(&session), failed_tx.clone());
                tokio::spawn(async move {
                    while let Ok((conn, _)) = l.accept().await {
                        printer::stdout(&format!("Handling connection for {bound_port}\n"));
                        let (session, failed) = (Arc::clone(&session), failed.clone());
                        tokio::spawn(async move {
                            if let Err(e) = session.forward(conn, remote).await {
                                printer::stderr(&format!(
                                    "an error occurred forwarding {bound_port} -> {remote}: {e}\n"
                                ));
                                let _ = failed.try_send(e.to_string());
                            }
                        });
                    }
                });
            }
        }
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::select! {
            _ = ctrl_c => Ok(()),
            _ = session.closed.cancelled() => Err(Error::msg("lost connection to pod")),
            _ = failed_rx.recv() => Err(Error::msg("lost connection to pod")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn port_specs() {
        assert_eq!(parse_port("8080:80").unwrap(), (8080, "80".into()));
        assert_eq!(parse_port("80").unwrap(), (80, "80".into()));
        assert_eq!(parse_port(":80").unwrap(), (0, "80".into()));
        assert!(parse_port("x:80").is_err());
        assert!(parse_port("80:").is_err());
    }

    #[test]
    fn service_ports_become_container_ports_as_kubectl_does() {
        let svc = json!({"metadata": {"name": "blog"}, "spec": {"clusterIP": "10.96.0.5", "ports": [
            {"name": "http", "port": 80, "targetPort": "web"},
            {"port": 8080, "targetPort": 8000},
            {"port": 9000}
        ]}});
        let pod = json!({"metadata": {"name": "blog-1"}, "spec": {"containers": [
            {"name": "c", "ports": [{"name": "web", "containerPort": 8081}]}]}});
        assert_eq!(container_port(&svc, &pod, "80").unwrap(), 8081);
        assert_eq!(container_port(&svc, &pod, "http").unwrap(), 8081);
        assert_eq!(container_port(&svc, &pod, "8080").unwrap(), 8000);
        assert_eq!(container_port(&svc, &pod, "9000").unwrap(), 9000);
        assert!(container_port(&svc, &pod, "81").is_err());
        let headless = json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None",
            "ports": [{"port": 5432, "targetPort": 6000}]}});
        assert_eq!(container_port(&headless, &pod, "5432").unwrap(), 5432);
    }
}
