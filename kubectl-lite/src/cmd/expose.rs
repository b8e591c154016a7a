//! `expose (deployment|replicaset|pod|service) NAME --port P`: a Service that selects the
//! object's pods, built as kubectl's `expose` builds it — the selector from the object
//! (`spec.selector.matchLabels`, a pod's labels, a Service's selector), the ports from
//! `--port` or from the object's container ports, `targetPort` from `--target-port` or the
//! port itself, the labels copied from the object — and POSTed. The API server picks the
//! ClusterIP (and node ports for `--type NodePort`).

use std::collections::BTreeMap;

use api::ResourceInfo;
use api::resource::SERVICE;
use serde_json::{Map, Value, json};

use crate::builder;
use crate::context::{Context, query};
use crate::errors::{Error, Result};
use crate::printer::{self, Output};
use crate::util::name_of;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  kubectl-lite expose deployment blog --port 80 --target-port 8000
  kubectl-lite expose deploy/blog --port 80 --target-port 8000 --type NodePort --name blog-public
  kubectl-lite expose pod counter --port 8080
  kubectl-lite expose deployment blog --port 80 --dry-run=client -o yaml")]
pub struct Expose {
    /// `TYPE NAME` or `TYPE/NAME`: a deployment, replicaset, pod or service.
    #[arg(value_name = "RESOURCE", required = true)]
    pub args: Vec<String>,
    /// The port the Service serves on (default: the object's container ports).
    #[arg(long)]
    pub port: Option<String>,
    /// The port (number or container port name) on the pods traffic goes to (default: --port).
    #[arg(long)]
    pub target_port: Option<String>,
    /// ClusterIP (default), NodePort, LoadBalancer or ExternalName.
    #[arg(long = "type", value_name = "TYPE")]
    pub type_: Option<String>,
    /// The Service's name (default: the object's).
    #[arg(long)]
    pub name: Option<String>,
    /// TCP, UDP or SCTP (default: the container port's, else TCP).
    #[arg(long)]
    pub protocol: Option<String>,
    /// A selector `k=v,k2=v2` instead of the object's.
    #[arg(long)]
    pub selector: Option<String>,
    /// Labels `k=v,k2=v2` instead of the object's.
    #[arg(short = 'l', long)]
    pub labels: Option<String>,
    /// A ClusterIP to ask for, or `None` for a headless Service.
    #[arg(long)]
    pub cluster_ip: Option<String>,
    /// A name for the port (with one port).
    #[arg(long)]
    pub port_name: Option<String>,
    /// `none` (create it), `client` (only print it) or `server`.
    #[arg(long, default_value = "none", num_args = 0..=1, require_equals = true, default_missing_value = "client", value_name = "STRATEGY")]
    pub dry_run: String,
    /// Output format: yaml, json or name.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
}

/// What the Service is generated from, read off the exposed object.
#[derive(Debug, Default, PartialEq)]
pub struct Introspected {
    pub selector: BTreeMap<String, String>,
    /// Container (or Service) port numbers, in order, and their protocols.
    pub ports: Vec<(i64, String)>,
    pub labels: BTreeMap<String, String>,
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn container_ports(pod_spec: &Value) -> Vec<(i64, String)> {
    pod_spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| {
            let n = p["containerPort"].as_i64()?;
            let proto = p["protocol"].as_str().unwrap_or("TCP").to_string();
            Some((n, proto))
        })
        .collect()
}

/// kubectl's `MapBasedSelectorForObject`, `PortsForObject` and the object's labels.
pub fn introspect(kind: &str, obj: &Value) -> Result<Introspected> {
    let labels = string_map(&obj["metadata"]["labels"]);
    let (selector, ports) = match kind {
        "Pod" => {
            let sel = labels.clone();
            if sel.is_empty() {
                return Err(Error::msg(
                    "couldn't retrieve selectors via --selector flag or introspection: the pod has no labels and cannot be exposed",
                ));
            }
            (sel, container_ports(&obj["spec"]))
        }
        "Service" => {
            let sel = string_map(&obj["spec"]["selector"]);
            if sel.is_empty() {
                return Err(Error::msg(
                    "couldn't retrieve selectors via --selector flag or introspection: the service has no pod selector set",
                ));
            }
            let ports = obj["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    Some((
                        p["port"].as_i64()?,
                        p["protocol"].as_str().unwrap_or("TCP").to_string(),
                    ))
                })
                .collect();
            (sel, ports)
        }
        "Deployment" | "ReplicaSet" => {
            let selector = &obj["spec"]["selector"];
            if selector["matchExpressions"]
                .as_array()
                .is_some_and(|e| !e.is_empty())
            {
                return Err(Error::msg(format!(
                    "couldn't retrieve selectors via --selector flag or introspection: couldn't convert expressions - \"{}\" to map-based selector format",
                    selector["matchExpressions"]
                )));
            }
            (
                string_map(&selector["matchLabels"]),
                container_ports(&obj["spec"]["template"]["spec"]),
            )
        }
        other => {
            return Err(Error::msg(format!("cannot expose a {other}")));
        }
    };
    Ok(Introspected {
        selector,
        ports,
        labels,
    })
}

/// `k=v,k2=v2` → a map.
fn parse_pairs(flag: &str, s: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for pair in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| Error::msg(format!("invalid {flag} {pair:?}: expected key=value")))?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

/// A number as a JSON number, a name as a string (kubectl's `intstr.Parse`).
fn int_or_string(s: &str) -> Value {
    match s.parse::<i64>() {
        Ok(n) => json!(n),
        Err(_) => json!(s),
    }
}

impl Expose {
    /// The Service, from the flags and what was read off the object.
    pub fn service(&self, object_name: &str, intro: &Introspected) -> Result<Value> {
        let headless = self.cluster_ip.as_deref() == Some("None");
        let selector = match &self.selector {
            Some(s) => parse_pairs("selector", s)?,
            None => intro.selector.clone(),
        };
        let labels = match &self.labels {
            Some(l) => parse_pairs("labels", l)?,
            None => intro.labels.clone(),
        };
        let protocol_of = |port: i64| -> Option<String> {
            self.protocol.clone().or_else(|| {
                intro
                    .ports
                    .iter()
                    .find(|(n, _)| *n == port)
                    .map(|(_, p)| p.clone())
            })
        };
        let numbers: Vec<i64> = match &self.port {
            Some(p) => p
                .split(',')
                .map(|n| {
                    n.trim()
                        .parse::<i64>()
                        .map_err(|_| Error::msg(format!("invalid port {n:?}: must be a number")))
                })
                .collect::<Result<_>>()?,
            None => intro.ports.iter().map(|(n, _)| *n).collect(),
        };
        if numbers.is_empty() && !headless {
            return Err(Error::msg(
                "couldn't find port via --port flag or introspection\nSee 'kubectl-lite expose -h' for help and examples",
            ));
        }
        let several = numbers.len() > 1;
        let ports: Vec<Value> = numbers
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut p = Map::new();
                if several {
                    p.insert("name".into(), json!(format!("port-{}", i + 1)));
                } else if let Some(name) = &self.port_name {
                    p.insert("name".into(), json!(name));
                }
                p.insert("port".into(), json!(n));
                if let Some(proto) = protocol_of(*n) {
                    p.insert("protocol".into(), json!(proto));
                }
                let target = match &self.target_port {
                    Some(t) => int_or_string(t),
                    None => json!(n),
                };
                p.insert("targetPort".into(), target);
                Value::Object(p)
            })
            .collect();
        let name: String = self
            .name
            .clone()
            .unwrap_or_else(|| object_name.chars().take(63).collect());
        let mut spec = json!({"ports": ports, "selector": selector});
        if let Some(t) = &self.type_ {
            spec["type"] = json!(t);
        }
        if let Some(ip) = &self.cluster_ip {
            spec["clusterIP"] = json!(ip);
        }
        let mut meta = json!({"name": name});
        if !labels.is_empty() {
            meta["labels"] = json!(labels);
        }
        Ok(json!({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}))
    }

    pub async fn run(self, ctx: &Context) -> Result<()> {
        let output = Output::parse(self.output.as_deref()).map_err(Error::Message)?;
        let dry = match self.dry_run.as_str() {
            "none" | "false" => None,
            "client" | "true" => Some("client"),
            "server" => Some("server"),
            other => {
                return Err(Error::msg(format!(
                    "Invalid dry-run value ({other}). Must be \"none\", \"server\", or \"client\"."
                )));
            }
        };
        let selections = builder::parse(&self.args)?;
        let mut targets: Vec<(&'static ResourceInfo, String)> = Vec::new();
        for sel in &selections {
            if sel.names.is_empty() {
                return Err(Error::msg(
                    "resource(s) were provided, but no name was specified",
                ));
            }
            targets.extend(sel.names.iter().map(|n| (sel.info, n.clone())));
        }
        for (info, name) in targets {
            if !matches!(info.kind, "Deployment" | "ReplicaSet" | "Pod" | "Service") {
                return Err(Error::msg(format!(
                    "cannot expose a {}",
                    info.qualified_kind()
                )));
            }
            let obj = ctx
                .get(&info.object_path(Some(&ctx.namespace), &name))
                .await?;
            let intro = introspect(info.kind, &obj)?;
            let svc = self.service(name_of(&obj), &intro)?;
            let svc_name = name_of(&svc).to_string();
            let result = match dry {
                Some("client") => svc,
                _ => {
                    let q = if dry == Some("server") {
                        query(&[("dryRun", "All".to_string())])
                    } else {
                        String::new()
                    };
                    let path = SERVICE.collection_path(Some(&ctx.namespace));
                    ctx.post(&format!("{path}{q}"), &svc).await?
                }
            };
            let suffix = match dry {
                Some("client") => " (dry run)",
                Some(_) => " (server dry run)",
                None => "",
            };
            let text = match &output {
                Output::Table | Output::Wide => {
                    format!("{} exposed{suffix}\n", SERVICE.qualified_name(&svc_name))
                }
                Output::Name => format!("{}\n", SERVICE.qualified_name(&svc_name)),
                other => printer::generic(other, vec![(&SERVICE, result)], true)
                    .map_err(Error::Message)?,
            };
            printer::stdout(&text);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        expose: Expose,
    }

    fn expose(args: &[&str]) -> Expose {
        let mut argv = vec!["expose"];
        argv.extend(args);
        Cli::parse_from(argv).expose
    }

    fn deployment() -> Value {
        json!({
            "metadata": {"name": "blog", "labels": {"app": "blog", "tier": "web"}},
            "spec": {"selector": {"matchLabels": {"app": "blog"}},
                     "template": {"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 8000, "protocol": "TCP"}]}]}}}
        })
    }

    #[test]
    fn a_deployment_with_port_and_target_port() {
        let e = expose(&[
            "deployment",
            "blog",
            "--port",
            "80",
            "--target-port",
            "8000",
        ]);
        let intro = introspect("Deployment", &deployment()).unwrap();
        assert_eq!(intro.ports, vec![(8000, "TCP".to_string())]);
        let svc = e.service("blog", &intro).unwrap();
        assert_eq!(
            svc,
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "blog", "labels": {"app": "blog", "tier": "web"}},
                   "spec": {"ports": [{"port": 80, "targetPort": 8000}], "selector": {"app": "blog"}}})
        );
    }

    #[test]
    fn ports_come_from_the_containers_when_not_given() {
        let e = expose(&["deploy/blog", "--type", "NodePort", "--name", "public"]);
        let svc = e
            .service("blog", &introspect("Deployment", &deployment()).unwrap())
            .unwrap();
        assert_eq!(svc["metadata"]["name"], "public");
        assert_eq!(svc["spec"]["type"], "NodePort");
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"port": 8000, "protocol": "TCP", "targetPort": 8000}])
        );
        let named = expose(&["deploy/blog", "--port", "80", "--target-port", "http"]);
        let svc = named
            .service("blog", &introspect("Deployment", &deployment()).unwrap())
            .unwrap();
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
    }

    #[test]
    fn what_cannot_be_exposed_says_why() {
        let mut d = deployment();
        d["spec"]["selector"] = json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]});
        let err = introspect("Deployment", &d).unwrap_err().to_string();
        assert!(err.contains("to map-based selector format"), "{err}");
        let err = introspect("Pod", &json!({"metadata": {"name": "p"}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("the pod has no labels"), "{err}");
        let no_ports = Introspected {
            selector: [("app".to_string(), "x".to_string())].into(),
            ..Default::default()
        };
        let err = expose(&["pod", "p"])
            .service("p", &no_ports)
            .unwrap_err()
            .to_string();
        assert!(err.contains("couldn't find port"), "{err}");
    }
}
