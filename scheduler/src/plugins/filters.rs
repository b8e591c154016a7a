//! Filter plugins: NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, NodePorts,
//! NodeResourcesFit — with the reasons kube-scheduler prints.

use std::collections::BTreeMap;

use api::core::{NodeSelectorRequirement, NodeSelectorTerm, Taint, Toleration};

use super::{Filter, PodInfo};
use crate::cache::NodeInfo;

pub struct NodeUnschedulable;
impl Filter for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }
    fn filter(&self, p: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
        let pod = p.pod;
        if !node.node.spec.unschedulable {
            return Ok(());
        }
        let tolerated = pod.spec.tolerations.iter().any(|t| {
            tolerates(
                t,
                &Taint {
                    key: "node.kubernetes.io/unschedulable".into(),
                    effect: "NoSchedule".into(),
                    ..Default::default()
                },
            )
        });
        if tolerated {
            Ok(())
        } else {
            Err(vec!["node(s) were unschedulable".into()])
        }
    }
}

pub struct NodeName;
impl Filter for NodeName {
    fn name(&self) -> &'static str {
        "NodeName"
    }
    fn filter(&self, p: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
        let pod = p.pod;
        if pod.spec.node_name.is_empty() || pod.spec.node_name == node.name() {
            Ok(())
        } else {
            Err(vec!["node(s) didn't match the requested node name".into()])
        }
    }
}

/// Whether a toleration tolerates a taint (Kubernetes' `ToleratesTaint`).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if !t.effect.is_empty() && t.effect != taint.effect {
        return false;
    }
    if !t.key.is_empty() && t.key != taint.key {
        return false;
    }
    match t.operator.as_str() {
        "Exists" => true,
        "" | "Equal" => t.value == taint.value,
        _ => false,
    }
}

pub struct TaintToleration;
impl Filter for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }
    fn filter(&self, p: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
        let pod = p.pod;
        let untolerated = node.node.spec.taints.iter().find(|taint| {
            (taint.effect == "NoSchedule" || taint.effect == "NoExecute")
                && !pod.spec.tolerations.iter().any(|t| tolerates(t, taint))
        });
        match untolerated {
            None => Ok(()),
            Some(t) => {
                let kv = if t.value.is_empty() {
                    t.key.clone()
                } else {
                    format!("{}: {}", t.key, t.value)
                };
                Err(vec![format!("node(s) had untolerated taint {{{kv}}}")])
            }
        }
    }
}

/// A node-selector requirement against node labels (and `metadata.name` for match fields).
pub fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| r.values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !r.values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                r.values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

pub fn term_matches(
    term: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    name: &str,
) -> bool {
    if term.match_expressions.is_empty() && term.match_fields.is_empty() {
        return false;
    }
    term.match_expressions
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && term
            .match_fields
            .iter()
            .all(|r| requirement_matches(r, (r.key == "metadata.name").then_some(name)))
}

pub struct NodeAffinity;
impl Filter for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }
    fn filter(&self, p: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
        let pod = p.pod;
        let labels = &node.node.metadata.labels;
        let selector_ok = pod
            .spec
            .node_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v));
        let required = pod
            .spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| {
                na.required_during_scheduling_ignored_during_execution
                    .as_ref()
            });
        let affinity_ok = required.is_none_or(|r| {
            r.node_selector_terms
                .iter()
                .any(|t| term_matches(t, labels, node.name()))
        });
        if selector_ok && affinity_ok {
            Ok(())
        } else {
            Err(vec![
                "node(s) didn't match Pod's node affinity/selector".into(),
            ])
        }
    }
}

pub struct NodePorts;
impl Filter for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }
    fn filter(&self, p: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
        if p.host_ports
            .iter()
            .any(|hp| node.host_ports.contains_key(hp))
        {
            Err(vec![
                "node(s) didn't have free ports for the requested pod ports".into(),
            ])
        } else {
            Ok(())
        }
    }
}

pub struct NodeResourcesFit;
impl Filter for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }
    fn filter(&self, p: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
        let r = p.requests;
        let mut reasons = Vec::new();
        if node.pod_count + 1 > node.allocatable_pods {
            reasons.push("Too many pods".to_string());
        }
        if r.cpu_milli > 0 && node.requested.cpu_milli + r.cpu_milli > node.allocatable_cpu {
            reasons.push("Insufficient cpu".to_string());
        }
        if r.memory > 0 && node.requested.memory + r.memory > node.allocatable_memory {
            reasons.push("Insufficient memory".to_string());
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Cache;
    use api::core::Pod;
    use api::core::{
        Affinity, Container, ContainerPort, Node, NodeAffinity as NA, NodeSelector, NodeStatus,
    };
    use api::quantity::Quantity;
    use std::sync::Arc;

    fn info(name: &str, cpu: &str, f: impl FnOnce(&mut Node)) -> NodeInfo {
        let mut n = Node::default();
        n.metadata.name = name.into();
        let mut st = NodeStatus::default();
        st.allocatable.insert("cpu".into(), Quantity::new(cpu));
        st.allocatable.insert("memory".into(), Quantity::new("1Gi"));
        st.allocatable.insert("pods".into(), Quantity::new("2"));
        n.status = Some(st);
        f(&mut n);
        let mut c = Cache::default();
        c.upsert_node(Arc::new(n));
        c.nodes().next().unwrap().clone()
    }

    fn pod(cpu: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = "p".into();
        let mut c = Container::default();
        c.resources
            .requests
            .insert("cpu".into(), Quantity::new(cpu));
        p.spec.containers.push(c);
        p
    }

    #[test]
    fn resources_fit() {
        let n = info("n", "1", |_| {});
        assert!(
            NodeResourcesFit
                .filter(&PodInfo::new(&pod("500m")), &n)
                .is_ok()
        );
        assert_eq!(
            NodeResourcesFit.filter(&PodInfo::new(&pod("2")), &n),
            Err(vec!["Insufficient cpu".to_string()])
        );
        let mut full = n.clone();
        full.pod_count = 2;
        assert_eq!(
            NodeResourcesFit.filter(&PodInfo::new(&pod("0")), &full),
            Err(vec!["Too many pods".to_string()])
        );
    }

    #[test]
    fn cordon_and_taints() {
        let cordoned = info("n", "1", |n| n.spec.unschedulable = true);
        assert!(
            NodeUnschedulable
                .filter(&PodInfo::new(&pod("0")), &cordoned)
                .is_err()
        );
        let tainted = info("n", "1", |n| {
            n.spec.taints.push(Taint {
                key: "dedicated".into(),
                value: "gpu".into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            })
        });
        let err = TaintToleration
            .filter(&PodInfo::new(&pod("0")), &tainted)
            .unwrap_err();
        assert_eq!(
            err,
            vec!["node(s) had untolerated taint {dedicated: gpu}".to_string()]
        );
        let mut tol = pod("0");
        tol.spec.tolerations.push(Toleration {
            key: "dedicated".into(),
            operator: "Equal".into(),
            value: "gpu".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        });
        assert!(
            TaintToleration
                .filter(&PodInfo::new(&tol), &tainted)
                .is_ok()
        );
        let mut any = pod("0");
        any.spec.tolerations.push(Toleration {
            operator: "Exists".into(),
            ..Default::default()
        });
        assert!(
            TaintToleration
                .filter(&PodInfo::new(&any), &tainted)
                .is_ok()
        );
        let prefer = info("n", "1", |n| {
            n.spec.taints.push(Taint {
                key: "x".into(),
                effect: "PreferNoSchedule".into(),
                ..Default::default()
            })
        });
        assert!(
            TaintToleration
                .filter(&PodInfo::new(&pod("0")), &prefer)
                .is_ok()
        );
    }

    #[test]
    fn selector_and_affinity() {
        let ssd = info("n", "1", |n| {
            n.metadata.labels.insert("disk".into(), "ssd".into());
        });
        let mut p = pod("0");
        p.spec.node_selector.insert("disk".into(), "ssd".into());
        assert!(NodeAffinity.filter(&PodInfo::new(&p), &ssd).is_ok());
        p.spec.node_selector.insert("disk".into(), "hdd".into());
        assert!(NodeAffinity.filter(&PodInfo::new(&p), &ssd).is_err());
        let mut a = pod("0");
        a.spec.affinity = Some(Affinity {
            node_affinity: Some(NA {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: vec![NodeSelectorRequirement {
                            key: "disk".into(),
                            operator: "In".into(),
                            values: vec!["ssd".into(), "nvme".into()],
                        }],
                        match_fields: vec![],
                    }],
                }),
                preferred_during_scheduling_ignored_during_execution: vec![],
            }),
            ..Default::default()
        });
        assert!(NodeAffinity.filter(&PodInfo::new(&a), &ssd).is_ok());
        assert!(
            NodeAffinity
                .filter(&PodInfo::new(&a), &info("m", "1", |_| {}))
                .is_err()
        );
    }

    #[test]
    fn host_ports_conflict() {
        let mut n = info("n", "1", |_| {});
        n.host_ports.insert(("TCP".into(), 8080), 1);
        let mut p = pod("0");
        p.spec.containers[0].ports.push(ContainerPort {
            container_port: 80,
            host_port: 8080,
            ..Default::default()
        });
        assert!(NodePorts.filter(&PodInfo::new(&p), &n).is_err());
        p.spec.containers[0].ports[0].host_port = 8081;
        assert!(NodePorts.filter(&PodInfo::new(&p), &n).is_ok());
    }
}
