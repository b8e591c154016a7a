//! The node's presence in the cluster: registration (create the Node, or update it when a
//! restarted kubelet finds it), the heartbeat Lease `kube-node-lease/<node>` renewed every
//! `heartbeat_interval`, and the Node's conditions refreshed every `node_status_interval`
//! (a Node deleted meanwhile is registered again).

use api::annotations::POD_NETWORK;
use std::collections::BTreeMap;
use std::time::Duration;

use api::coordination::{Lease, LeaseSpec};
use api::core::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use api::meta::{MicroTime, OwnerReference, Time};
use api::{ObjectMeta, Quantity, Resource};
use client::{Api, Client, Patch};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::machine::MachineInfo;

pub const KUBELET_VERSION: &str = "v1.37.0-kube-lite";
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const LEASE_DURATION_SECONDS: i32 = 40;

/// Everything the Node object says about this node.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub name: String,
    pub ip: String,
    /// Empty: the controller-manager assigns one (node IPAM), and the kubelet takes it.
    pub pod_cidr: String,
    /// How the pods are networked, in words (the `kube-lite.io/pod-network` annotation).
    pub pod_network: String,
    pub port: u16,
    /// Every label (built-in and user's).
    pub labels: BTreeMap<String, String>,
    pub capacity: BTreeMap<String, Quantity>,
    pub machine: MachineInfo,
    pub runtime_version: String,
    /// `--register-with-taints`: set when the Node is first created, as the kubelet does.
    pub taints: Vec<api::core::Taint>,
    /// The `MemoryLimitsEnforced` condition (status, reason, message); `None` for fake nodes.
    pub memory_limits: Option<(&'static str, &'static str, String)>,
}

/// Parse `--register-with-taints`: `key=value:Effect` or `key:Effect`, comma-separated.
pub fn parse_taints(items: &[String]) -> Result<Vec<api::core::Taint>, String> {
    let mut out = Vec::new();
    for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let bad = || {
            format!(
                "invalid taint {item:?}: expected key=value:Effect or key:Effect, Effect one of NoSchedule, PreferNoSchedule, NoExecute"
            )
        };
        let (kv, effect) = item.rsplit_once(':').ok_or_else(bad)?;
        if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            return Err(bad());
        }
        let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
        if key.is_empty() {
            return Err(bad());
        }
        out.push(api::core::Taint {
            key: key.into(),
            value: value.into(),
            effect: effect.into(),
            time_added: None,
        });
    }
    Ok(out)
}

/// The built-in labels, then the user's (which win).
pub fn node_labels(
    name: &str,
    arch: &str,
    user: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert("kubernetes.io/hostname".to_string(), name.to_string());
    l.insert("kubernetes.io/os".to_string(), "linux".to_string());
    l.insert("kubernetes.io/arch".to_string(), arch.to_string());
    l.extend(user.iter().map(|(k, v)| (k.clone(), v.clone())));
    l
}

/// The four conditions, all heartbeating at `now`; transition times kept from `old` when the
/// status did not change. `runtime_problem`: why the container runtime cannot run pods (the
/// node is then not Ready, as the kubelet reports a runtime that is down).
pub fn node_conditions(
    old: Option<&NodeStatus>,
    now: Time,
    runtime_problem: Option<&str>,
) -> Vec<NodeCondition> {
    let ready = match runtime_problem {
        None => ("True", "KubeletReady", "kubelet is posting ready status"),
        Some(p) => ("False", "KubeletNotReady", p),
    };
    let specs = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        (
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        (
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        ("Ready", ready.0, ready.1, ready.2),
    ];
    specs
        .iter()
        .map(|(type_, status, reason, message)| condition(old, now, type_, status, reason, message))
        .collect()
}

/// One condition heartbeating at `now`, its transition time kept from `old` if unchanged.
pub fn condition(
    old: Option<&NodeStatus>,
    now: Time,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> NodeCondition {
    let prev = old.and_then(|s| s.conditions.iter().find(|c| c.type_ == type_));
    let last_transition_time = match prev {
        Some(p) if p.status == status => p.last_transition_time.or(Some(now)),
        _ => Some(now),
    };
    NodeCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        last_heartbeat_time: Some(now),
        last_transition_time,
        reason: reason.to_string(),
        message: message.to_string(),
    }
}

impl NodeInfo {
    pub fn status(
        &self,
        old: Option<&NodeStatus>,
        now: Time,
        runtime_problem: Option<&str>,
    ) -> NodeStatus {
        let m = &self.machine;
        NodeStatus {
            capacity: self.capacity.clone(),
            allocatable: self.capacity.clone(),
            phase: String::new(),
            conditions: {
                let mut c = node_conditions(old, now, runtime_problem);
                // kube-lite's own: whether container memory limits are enforced (cgroups).
                if let Some((status, reason, message)) = &self.memory_limits {
                    c.push(condition(
                        old,
                        now,
                        "MemoryLimitsEnforced",
                        status,
                        reason,
                        message,
                    ));
                }
                c
            },
            addresses: vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: self.ip.clone(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: self.name.clone(),
                },
            ],
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: DaemonEndpoint {
                    port: self.port as i32,
                },
            }),
            node_info: Some(NodeSystemInfo {
                machine_id: m.machine_id.clone(),
                system_uuid: m.system_uuid.clone(),
                boot_id: m.boot_id.clone(),
                kernel_version: m.kernel_version.clone(),
                os_image: m.os_image.clone(),
                container_runtime_version: self.runtime_version.clone(),
                kubelet_version: KUBELET_VERSION.into(),
                kube_proxy_version: String::new(),
                operating_system: "linux".into(),
                architecture: m.architecture.clone(),
            }),
            images: vec![],
        }
    }

    /// The Node as this kubelet registers it; `runtime_problem`: why it is not Ready yet.
    pub fn desired(&self, now: Time, runtime_problem: Option<&str>) -> Node {
        let mut n = Node {
            metadata: ObjectMeta {
                name: self.name.clone(),
                labels: self.labels.clone(),
                annotations: [(POD_NETWORK.to_string(), self.pod_network.clone())].into(),
                ..Default::default()
            },
            spec: NodeSpec {
                pod_cidr: self.pod_cidr.clone(),
                pod_cidrs: if self.pod_cidr.is_empty() {
                    Vec::new()
                } else {
                    vec![self.pod_cidr.clone()]
                },
                taints: self.taints.clone(),
                ..Default::default()
            },
            status: Some(self.status(None, now, runtime_problem)),
            ..Default::default()
        };
        n.set_type_meta();
        n
    }
}

/// Registration and heartbeats for one node.
pub struct NodeAgent {
    pub info: NodeInfo,
    pub client: Client,
    /// Asked for its health at every heartbeat: a runtime that is down makes the node NotReady.
    pub runtime: std::sync::Arc<dyn crate::runtime::Runtime>,
    pub heartbeat_interval: Duration,
    pub status_interval: Duration,
}

impl NodeAgent {
    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    /// Create the Node, or bring an existing one up to date (a restarted kubelet).
    pub async fn register(&self) -> client::Result<Node> {
        let api = self.nodes();
        let problem = self.runtime.health().await.err();
        let desired = self.info.desired(Time::now(), problem.as_deref());
        match api.create(&desired).await {
            Ok(n) => {
                tracing::info!(node = %self.info.name, "node registered");
                return Ok(n);
            }
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e),
        }
        let mut cur = api.get(&self.info.name).await?;
        let mut changed = false;
        for (k, v) in &self.info.labels {
            if cur.metadata.labels.get(k) != Some(v) {
                cur.metadata.labels.insert(k.clone(), v.clone());
                changed = true;
            }
        }
        if cur.metadata.annotations.get(POD_NETWORK) != Some(&self.info.pod_network) {
            cur.metadata
                .annotations
                .insert(POD_NETWORK.to_string(), self.info.pod_network.clone());
            changed = true;
        }
        if !self.info.pod_cidr.is_empty() && cur.spec.pod_cidr != self.info.pod_cidr {
            tracing::info!(node = %self.info.name, old = %cur.spec.pod_cidr, new = %self.info.pod_cidr, "pod CIDR changed");
            cur.spec.pod_cidr = self.info.pod_cidr.clone();
            cur.spec.pod_cidrs = vec![self.info.pod_cidr.clone()];
            changed = true;
        }
        if changed {
            cur = api.replace(&self.info.name, &cur).await?;
        }
        let n = self
            .patch_status(cur.status.as_ref(), problem.as_deref())
            .await?;
        tracing::info!(node = %self.info.name, "node re-registered (it existed)");
        Ok(n)
    }

    /// Write the full status (conditions heartbeating now).
    async fn patch_status(
        &self,
        old: Option<&NodeStatus>,
        runtime_problem: Option<&str>,
    ) -> client::Result<Node> {
        let status = self.info.status(old, Time::now(), runtime_problem);
        let patch = json!({ "status": status });
        self.nodes()
            .patch_status(&self.info.name, &Patch::Merge(&patch))
            .await
    }

    /// Renew (or create) the node's Lease.
    async fn renew_lease(&self, cached: &mut Option<Lease>, node: &Node) -> client::Result<()> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), LEASE_NAMESPACE);
        let now = MicroTime::now();
        let current = match cached.take() {
            Some(l) => Some(l),
            None => api.get_opt(&self.info.name).await?,
        };
        let result = match current {
            Some(mut l) => {
                l.spec.holder_identity = Some(self.info.name.clone());
                l.spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
                l.spec.renew_time = Some(now);
                api.replace(&self.info.name, &l).await
            }
            None => {
                let mut l = Lease {
                    metadata: ObjectMeta {
                        name: self.info.name.clone(),
                        namespace: LEASE_NAMESPACE.into(),
                        owner_references: vec![OwnerReference {
                            api_version: "v1".into(),
                            kind: "Node".into(),
                            name: node.metadata.name.clone(),
                            uid: node.metadata.uid.clone(),
                            controller: None,
                            block_owner_deletion: None,
                        }],
                        ..Default::default()
                    },
                    spec: LeaseSpec {
                        holder_identity: Some(self.info.name.clone()),
                        lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                        renew_time: Some(now),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                l.set_type_meta();
                api.create(&l).await
            }
        };
        *cached = Some(result?);
        Ok(())
    }

    /// Register, then heartbeat until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut retry = Duration::from_millis(200);
        let mut node = loop {
            match self.register().await {
                Ok(n) => break n,
                Err(e) => {
                    tracing::warn!(node = %self.info.name, error = %e, "cannot register the node; retrying");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(retry) => {}
            }
            retry = (retry * 2).min(Duration::from_secs(5));
        };
        let mut lease: Option<Lease> = None;
        let mut last_status = tokio::time::Instant::now();
        let recorder =
            client::runtime::events::Recorder::new(self.client.clone(), "kubelet", &self.info.name);
        let mut problem = node
            .condition("Ready")
            .filter(|c| c.status != "True")
            .map(|c| c.message.clone());
        let mut tick = tokio::time::interval(self.heartbeat_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_lease = tokio::time::Instant::now() - self.heartbeat_interval;
        loop {
            // While not ready, the runtime is asked every second, so the node turns Ready as
            // soon as it can run pods (e.g. once its pod network is installed).
            let recheck = async {
                if problem.is_some() {
                    tokio::time::sleep(Duration::from_secs(1)).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                _ = recheck => {}
            }
            if last_lease.elapsed() + Duration::from_millis(200) >= self.heartbeat_interval {
                if let Err(e) = self.renew_lease(&mut lease, &node).await {
                    tracing::warn!(node = %self.info.name, error = %e, "cannot renew the node lease");
                }
                last_lease = tokio::time::Instant::now();
            }
            let now_problem = self.runtime.health().await.err();
            let changed = now_problem != problem;
            if changed {
                let r = client::runtime::events::object_ref(&node);
                match &now_problem {
                    Some(p) => {
                        tracing::warn!(node = %self.info.name, problem = %p, "node is not ready");
                        recorder.normal(
                            &r,
                            "NodeNotReady",
                            format!("Node {} status is now: NodeNotReady", self.info.name),
                        );
                        recorder.warning(&r, "ContainerRuntimeUnhealthy", p.clone());
                    }
                    None => {
                        tracing::info!(node = %self.info.name, "node is ready again");
                        recorder.normal(
                            &r,
                            "NodeReady",
                            format!("Node {} status is now: NodeReady", self.info.name),
                        );
                    }
                }
                problem = now_problem;
            }
            if !changed && last_status.elapsed() < self.status_interval {
                continue;
            }
            match self
                .patch_status(node.status.as_ref(), problem.as_deref())
                .await
            {
                Ok(n) => {
                    node = n;
                    last_status = tokio::time::Instant::now();
                }
                Err(e) if e.is_not_found() => {
                    tracing::warn!(node = %self.info.name, "the Node was deleted; registering again");
                    match self.register().await {
                        Ok(n) => {
                            node = n;
                            lease = None;
                            last_status = tokio::time::Instant::now();
                        }
                        Err(e) => {
                            tracing::warn!(node = %self.info.name, error = %e, "cannot register the node")
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(node = %self.info.name, error = %e, "cannot update node status")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> NodeInfo {
        let mut capacity = BTreeMap::new();
        capacity.insert("cpu".to_string(), Quantity::new("4"));
        capacity.insert("memory".to_string(), Quantity::new("8Gi"));
        capacity.insert("pods".to_string(), Quantity::new("110"));
        NodeInfo {
            name: "worker-1".into(),
            ip: "127.0.0.1".into(),
            pod_cidr: "127.11.0.0/16".into(),
            pod_network: "loopback".into(),
            port: 10250,
            labels: node_labels(
                "worker-1",
                "amd64",
                &[("disk".to_string(), "ssd".to_string())].into(),
            ),
            capacity,
            machine: MachineInfo {
                architecture: "amd64".into(),
                ..Default::default()
            },
            runtime_version: "kube-lite-process://0.1".into(),
            taints: parse_taints(&["dedicated=gpu:NoSchedule".into()]).unwrap(),
            memory_limits: None,
        }
    }

    fn t(s: i64) -> Time {
        Time(chrono::DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap())
    }

    #[test]
    fn taints_parse_like_register_with_taints() {
        let t = parse_taints(&["a=b:NoSchedule".into(), "c:NoExecute".into(), " ".into()]).unwrap();
        assert_eq!(
            t.iter()
                .map(|t| (t.key.as_str(), t.value.as_str(), t.effect.as_str()))
                .collect::<Vec<_>>(),
            [("a", "b", "NoSchedule"), ("c", "", "NoExecute")]
        );
        assert!(parse_taints(&["a=b".into()]).is_err());
        assert!(parse_taints(&["a=b:Sometimes".into()]).is_err());
        assert!(parse_taints(&[":NoSchedule".into()]).is_err());
    }

    #[test]
    fn desired_node_looks_like_a_kubelets() {
        let n = info().desired(t(0), None);
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["kind"], "Node");
        assert_eq!(
            v["metadata"]["labels"]["kubernetes.io/hostname"],
            "worker-1"
        );
        assert_eq!(v["metadata"]["labels"]["kubernetes.io/os"], "linux");
        assert_eq!(v["metadata"]["labels"]["disk"], "ssd");
        assert_eq!(v["spec"]["podCIDR"], "127.11.0.0/16");
        assert_eq!(v["spec"]["taints"][0]["key"], "dedicated");
        assert_eq!(v["status"]["capacity"]["pods"], "110");
        assert_eq!(v["status"]["allocatable"]["cpu"], "4");
        assert_eq!(
            v["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
            10250
        );
        assert_eq!(v["status"]["nodeInfo"]["kubeletVersion"], KUBELET_VERSION);
        assert_eq!(
            v["status"]["nodeInfo"]["containerRuntimeVersion"],
            "kube-lite-process://0.1"
        );
        assert_eq!(v["status"]["addresses"][0]["type"], "InternalIP");
        assert_eq!(v["status"]["addresses"][0]["address"], "127.0.0.1");
        assert!(n.is_ready());
        let ready = n.condition("Ready").unwrap();
        assert_eq!(ready.reason, "KubeletReady");
        assert_eq!(ready.message, "kubelet is posting ready status");
        assert_eq!(n.condition("MemoryPressure").unwrap().status, "False");
    }

    #[test]
    fn heartbeats_move_but_transitions_stay() {
        let i = info();
        let s0 = i.status(None, t(0), None);
        let s1 = i.status(Some(&s0), t(60), None);
        for c in &s1.conditions {
            assert_eq!(c.last_heartbeat_time, Some(t(60)));
            assert_eq!(c.last_transition_time, Some(t(0)));
        }
    }

    #[test]
    fn a_runtime_that_is_down_makes_the_node_not_ready() {
        let i = info();
        let s0 = i.status(None, t(0), None);
        let s1 = i.status(Some(&s0), t(10), Some("container runtime is down: x"));
        let ready = s1
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready");
        assert_eq!(
            (
                ready.status.as_str(),
                ready.reason.as_str(),
                ready.message.as_str()
            ),
            ("False", "KubeletNotReady", "container runtime is down: x")
        );
        assert_eq!(ready.last_transition_time, Some(t(10)));
    }
}
