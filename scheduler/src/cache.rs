//! The scheduler's view of the cluster: per node, what is allocatable and what pods already
//! take — including "assumed" pods this scheduler bound but whose binding the watch has not
//! echoed yet, so back-to-back decisions never double-book a node.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use api::core::{Node, Pod, Requests};
use client::runtime::key_of;

/// A pod as the cache counts it.
#[derive(Clone, Debug)]
pub struct PodSlot {
    pub node: String,
    pub requests: Requests,
    /// (protocol, hostPort) pairs the pod claims.
    pub host_ports: Vec<(String, i32)>,
    /// UID of the controller owner, for spreading.
    pub owner: Option<String>,
}

impl PodSlot {
    pub fn of(pod: &Pod, node: &str) -> PodSlot {
        PodSlot {
            node: node.to_string(),
            requests: pod.spec.requests(),
            host_ports: host_ports(pod),
            owner: pod.metadata.controller_ref().map(|r| r.uid.clone()),
        }
    }
}

pub fn host_ports(pod: &Pod) -> Vec<(String, i32)> {
    pod.spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter())
        .filter(|p| p.host_port > 0)
        .map(|p| {
            (
                if p.protocol.is_empty() {
                    "TCP".to_string()
                } else {
                    p.protocol.clone()
                },
                p.host_port,
            )
        })
        .collect()
}

/// One node and what is placed on it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub allocatable_cpu: i64,
    pub allocatable_memory: i64,
    pub allocatable_pods: i64,
    pub requested: Requests,
    pub pod_count: i64,
    pub host_ports: HashMap<(String, i32), usize>,
    /// Pods per controller owner uid (for spreading).
    pub owners: HashMap<String, i64>,
}

impl NodeInfo {
    fn new(node: Arc<Node>) -> Self {
        let (c, m, p) = node
            .status
            .as_ref()
            .map(|s| s.allocatable_resources())
            .unwrap_or((0, 0, 0));
        NodeInfo {
            node,
            allocatable_cpu: c,
            allocatable_memory: m,
            allocatable_pods: p,
            requested: Requests::default(),
            pod_count: 0,
            host_ports: HashMap::new(),
            owners: HashMap::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.node.metadata.name
    }

    fn add(&mut self, slot: &PodSlot) {
        self.requested.cpu_milli += slot.requests.cpu_milli;
        self.requested.memory += slot.requests.memory;
        self.pod_count += 1;
        for p in &slot.host_ports {
            *self.host_ports.entry(p.clone()).or_default() += 1;
        }
        if let Some(o) = &slot.owner {
            *self.owners.entry(o.clone()).or_default() += 1;
        }
    }

    fn remove(&mut self, slot: &PodSlot) {
        self.requested.cpu_milli -= slot.requests.cpu_milli;
        self.requested.memory -= slot.requests.memory;
        self.pod_count -= 1;
        for p in &slot.host_ports {
            if let Some(n) = self.host_ports.get_mut(p) {
                *n -= 1;
                if *n == 0 {
                    self.host_ports.remove(p);
                }
            }
        }
        if let Some(o) = &slot.owner
            && let Some(n) = self.owners.get_mut(o)
        {
            *n -= 1;
            if *n == 0 {
                self.owners.remove(o);
            }
        }
    }
}

#[derive(Default)]
pub struct Cache {
    nodes: HashMap<String, NodeInfo>,
    /// Node names in a stable order, so each decision can start where the last one stopped.
    order: Vec<String>,
    /// Where each counted pod is.
    pods: HashMap<String, PodSlot>,
    /// Pods this scheduler bound that the watch has not confirmed yet.
    assumed: HashSet<String>,
    /// Pods on nodes the cache does not know (yet): counted when the node appears.
    orphans: HashMap<String, PodSlot>,
}

/// Whether a pod occupies its node's resources.
pub fn counts(pod: &Pod) -> bool {
    !pod.spec.node_name.is_empty() && !matches!(pod.phase(), "Succeeded" | "Failed")
}

impl Cache {
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.order.iter().filter_map(|n| self.nodes.get(n))
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name)
    }

    /// The `i`-th node of the stable order (wrapping around).
    pub fn node_at(&self, i: usize) -> Option<&NodeInfo> {
        if self.order.is_empty() {
            return None;
        }
        self.nodes.get(&self.order[i % self.order.len()])
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_assumed(&self, key: &str) -> bool {
        self.assumed.contains(key)
    }

    pub fn upsert_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone();
        match self.nodes.get_mut(&name) {
            Some(info) => {
                let fresh = NodeInfo::new(node);
                info.node = fresh.node;
                info.allocatable_cpu = fresh.allocatable_cpu;
                info.allocatable_memory = fresh.allocatable_memory;
                info.allocatable_pods = fresh.allocatable_pods;
            }
            None => {
                let mut info = NodeInfo::new(node);
                let adopt: Vec<String> = self
                    .orphans
                    .iter()
                    .filter(|(_, s)| s.node == name)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in adopt {
                    if let Some(slot) = self.orphans.remove(&k) {
                        info.add(&slot);
                        self.pods.insert(k, slot);
                    }
                }
                if let Err(i) = self.order.binary_search(&name) {
                    self.order.insert(i, name.clone());
                }
                self.nodes.insert(name, info);
            }
        }
    }

    pub fn remove_node(&mut self, name: &str) {
        self.nodes.remove(name);
        self.order.retain(|n| n != name);
        let gone: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, s)| s.node == name)
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            if let Some(slot) = self.pods.remove(&k) {
                self.orphans.insert(k, slot);
            }
        }
    }

    fn add_slot(&mut self, key: String, slot: PodSlot) {
        match self.nodes.get_mut(&slot.node) {
            Some(info) => {
                info.add(&slot);
                self.pods.insert(key, slot);
            }
            None => {
                self.orphans.insert(key, slot);
            }
        }
    }

    fn remove_slot(&mut self, key: &str) {
        if let Some(slot) = self.pods.remove(key)
            && let Some(info) = self.nodes.get_mut(&slot.node)
        {
            info.remove(&slot);
        }
        self.orphans.remove(key);
    }

    /// A pod as the watch reports it (added or updated).
    pub fn update_pod(&mut self, pod: &Pod) {
        let key = key_of(&pod.metadata);
        self.assumed.remove(&key);
        self.remove_slot(&key);
        if counts(pod) {
            let slot = PodSlot::of(pod, &pod.spec.node_name);
            self.add_slot(key, slot);
        }
    }

    pub fn delete_pod(&mut self, pod: &Pod) {
        let key = key_of(&pod.metadata);
        self.assumed.remove(&key);
        self.remove_slot(&key);
    }

    /// Count a pod on a node before its binding is confirmed.
    pub fn assume(&mut self, pod: &Pod, node: &str) {
        let key = key_of(&pod.metadata);
        self.remove_slot(&key);
        self.add_slot(key.clone(), PodSlot::of(pod, node));
        self.assumed.insert(key);
    }

    /// The binding failed: uncount the pod.
    pub fn forget(&mut self, key: &str) {
        if self.assumed.remove(key) {
            self.remove_slot(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::core::{Container, NodeStatus};
    use api::quantity::Quantity;

    pub fn node(name: &str, cpu: &str, mem: &str) -> Arc<Node> {
        let mut n = Node::default();
        n.metadata.name = name.into();
        let mut st = NodeStatus::default();
        st.allocatable.insert("cpu".into(), Quantity::new(cpu));
        st.allocatable.insert("memory".into(), Quantity::new(mem));
        st.allocatable.insert("pods".into(), Quantity::new("110"));
        n.status = Some(st);
        Arc::new(n)
    }

    pub fn pod(name: &str, cpu: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.namespace = "default".into();
        p.metadata.name = name.into();
        let mut c = Container::default();
        c.resources
            .requests
            .insert("cpu".into(), Quantity::new(cpu));
        p.spec.containers.push(c);
        p
    }

    #[test]
    fn assumed_pods_count_until_confirmed_or_forgotten() {
        let mut cache = Cache::default();
        cache.upsert_node(node("n1", "2", "1Gi"));
        let p = pod("a", "500m");
        cache.assume(&p, "n1");
        assert_eq!(cache.nodes().next().unwrap().requested.cpu_milli, 500);
        // The watch echoes the binding: still counted once.
        let mut bound = p.clone();
        bound.spec.node_name = "n1".into();
        cache.update_pod(&bound);
        assert!(!cache.is_assumed("default/a"));
        assert_eq!(cache.nodes().next().unwrap().requested.cpu_milli, 500);
        cache.delete_pod(&bound);
        assert_eq!(cache.nodes().next().unwrap().requested.cpu_milli, 0);
        cache.assume(&p, "n1");
        cache.forget("default/a");
        assert_eq!(cache.nodes().next().unwrap().pod_count, 0);
    }

    #[test]
    fn pods_before_their_node_are_counted_when_it_appears() {
        let mut cache = Cache::default();
        let mut p = pod("a", "1");
        p.spec.node_name = "late".into();
        cache.update_pod(&p);
        cache.upsert_node(node("late", "4", "1Gi"));
        assert_eq!(cache.nodes().next().unwrap().requested.cpu_milli, 1000);
    }
}
