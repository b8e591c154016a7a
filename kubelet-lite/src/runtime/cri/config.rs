//! Pod and container → CRI configs, as the kubelet's `kuberuntime` builds them: the sandbox's
//! metadata, hostname, log directory, DNS, port mappings, namespaces and labels; a container's
//! image, command, environment, mounts, resources (cgroup settings), log path and labels.
//! Pure functions, unit-tested without a runtime.

use std::collections::HashMap;
use std::path::Path;

use api::core::{Container, Pod};
use cri::v1;
use serde_json::Value;

use crate::runtime::StartRequest;

/// Labels the kubelet puts on every sandbox and container (the real kubelet's names), so it
/// finds its pods again after a restart.
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// kube-lite's own: which node a sandbox or container belongs to, as several kubelet-lite
/// nodes may share one runtime.
pub const LABEL_NODE: &str = "kube-lite.io/node";

/// The CPU period of a CFS quota (100 ms, as the kubelet).
const CPU_PERIOD: i64 = 100_000;
/// The smallest quota the kernel accepts (1 ms).
const MIN_CPU_QUOTA: i64 = 1_000;
const MIN_SHARES: i64 = 2;

/// What the node adds to every pod's configs.
#[derive(Clone, Debug, Default)]
pub struct NodeSettings {
    pub node_name: String,
    /// `--cluster-dns`: the cluster's DNS servers; empty: pods with `ClusterFirst` get the
    /// node's resolvers (as the kubelet does, with a warning event).
    pub cluster_dns: Vec<String>,
    /// `--cluster-domain` (`cluster.local`).
    pub cluster_domain: String,
    /// The node's own `/etc/resolv.conf`.
    pub host_dns: ResolvConf,
}

/// The parts of a resolv.conf that pods inherit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// Parse a resolv.conf (comments, `nameserver`, `search`/`domain`, `options`).
pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut r = ResolvConf::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => r.servers.extend(words.next().map(str::to_string)),
            Some("search") | Some("domain") => r.searches = words.map(str::to_string).collect(),
            Some("options") => r.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    r
}

/// The labels that tie a sandbox to its pod and node.
pub fn pod_labels(pod: &Pod, node: &str) -> HashMap<String, String> {
    let mut l: HashMap<String, String> = pod
        .metadata
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    l.insert(LABEL_POD_NAME.into(), pod.metadata.name.clone());
    l.insert(LABEL_POD_NAMESPACE.into(), pod.metadata.namespace.clone());
    l.insert(LABEL_POD_UID.into(), pod.metadata.uid.clone());
    l.insert(LABEL_NODE.into(), node.to_string());
    l
}

/// The pod's hostname: `spec.hostname` or the pod's name, at most 63 characters, without a
/// trailing `-` or `.` (the kubelet's `GeneratePodHostNameAndDomain`).
pub fn hostname(pod: &Pod) -> String {
    let name = if pod.spec.hostname.is_empty() {
        &pod.metadata.name
    } else {
        &pod.spec.hostname
    };
    let short: String = name.chars().take(63).collect();
    short.trim_end_matches(['-', '.']).to_string()
}

/// The pod's DNS, as the kubelet's `GetPodDNS` decides it from `dnsPolicy` and `dnsConfig`.
pub fn dns_config(pod: &Pod, node: &NodeSettings) -> v1::DnsConfig {
    let policy = if pod.spec.dns_policy.is_empty() {
        "ClusterFirst"
    } else {
        pod.spec.dns_policy.as_str()
    };
    let cluster_first = match policy {
        "ClusterFirst" => !pod.spec.host_network,
        "ClusterFirstWithHostNet" => true,
        _ => false,
    };
    let mut dns = match policy {
        "None" => v1::DnsConfig::default(),
        _ if cluster_first && !node.cluster_dns.is_empty() => {
            let ns = &pod.metadata.namespace;
            let domain = &node.cluster_domain;
            let mut searches = vec![
                format!("{ns}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.clone(),
            ];
            searches.extend(node.host_dns.searches.iter().cloned());
            v1::DnsConfig {
                servers: node.cluster_dns.clone(),
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        _ => v1::DnsConfig {
            servers: node.host_dns.servers.clone(),
            searches: node.host_dns.searches.clone(),
            options: node.host_dns.options.clone(),
        },
    };
    // dnsConfig: servers and searches appended, options merged by name.
    if let Some(cfg) = &pod.spec.dns_config {
        let strings = |v: &Value, k: &str| -> Vec<String> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        dns.servers.extend(strings(cfg, "nameservers"));
        dns.searches.extend(strings(cfg, "searches"));
        if let Some(opts) = cfg.get("options").and_then(Value::as_array) {
            for o in opts {
                let Some(name) = o.get("name").and_then(Value::as_str) else {
                    continue;
                };
                let opt = match o.get("value").and_then(Value::as_str) {
                    Some(v) => format!("{name}:{v}"),
                    None => name.to_string(),
                };
                dns.options
                    .retain(|x| x.split(':').next() != Some(name) && x != name);
                dns.options.push(opt);
            }
        }
    }
    dedup(&mut dns.servers);
    dedup(&mut dns.searches);
    // The resolver's limits (glibc): 3 servers, 32 search domains.
    dns.servers.truncate(3);
    dns.searches.truncate(32);
    dns
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(x.clone()));
}

fn i64_at(v: Option<&Value>, key: &str) -> Option<i64> {
    v?.get(key)?.as_i64()
}

/// The sandbox's config. `log_directory` holds the containers' logs (`<name>/<n>.log`).
pub fn sandbox_config(
    pod: &Pod,
    attempt: u32,
    log_directory: &Path,
    node: &NodeSettings,
) -> v1::PodSandboxConfig {
    use v1::NamespaceMode;
    let spec = &pod.spec;
    let mode = |host: bool, otherwise: NamespaceMode| {
        if host {
            NamespaceMode::Node as i32
        } else {
            otherwise as i32
        }
    };
    let namespaces = v1::NamespaceOption {
        network: mode(spec.host_network, NamespaceMode::Pod),
        pid: mode(
            spec.host_pid,
            if spec.share_process_namespace == Some(true) {
                NamespaceMode::Pod
            } else {
                NamespaceMode::Container
            },
        ),
        ipc: mode(spec.host_ipc, NamespaceMode::Pod),
        ..Default::default()
    };
    let psc = spec.security_context.as_ref();
    let port_mappings = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter())
        .filter(|p| p.host_port > 0)
        .map(|p| v1::PortMapping {
            protocol: protocol(&p.protocol),
            container_port: p.container_port,
            host_port: p.host_port,
            host_ip: String::new(),
        })
        .collect();
    v1::PodSandboxConfig {
        metadata: Some(v1::PodSandboxMetadata {
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            namespace: pod.metadata.namespace.clone(),
            attempt,
        }),
        hostname: if spec.host_network {
            String::new()
        } else {
            hostname(pod)
        },
        log_directory: log_directory.display().to_string(),
        dns_config: Some(dns_config(pod, node)),
        port_mappings,
        labels: pod_labels(pod, &node.node_name),
        annotations: pod
            .metadata
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        linux: Some(v1::LinuxPodSandboxConfig {
            security_context: Some(v1::LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces),
                run_as_user: i64_at(psc, "runAsUser").map(|value| v1::Int64Value { value }),
                run_as_group: i64_at(psc, "runAsGroup").map(|value| v1::Int64Value { value }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn protocol(p: &str) -> i32 {
    match p {
        "UDP" => v1::Protocol::Udp as i32,
        "SCTP" => v1::Protocol::Sctp as i32,
        _ => v1::Protocol::Tcp as i32,
    }
}

/// Resource requests and limits → cgroup settings, as the kubelet computes them: CPU shares
/// from the request (the limit when only that is set; 2 when neither), a CFS quota from the
/// limit, the memory limit, and an OOM score by QoS class.
pub fn resources(c: &Container, qos_class: &str, node_memory: i64) -> v1::LinuxContainerResources {
    let milli = |m: &std::collections::BTreeMap<String, api::Quantity>, k: &str| {
        m.get(k).and_then(|q| q.milli_value().ok())
    };
    let bytes = |m: &std::collections::BTreeMap<String, api::Quantity>, k: &str| {
        m.get(k).and_then(|q| q.value().ok())
    };
    let r = &c.resources;
    let cpu_request = milli(&r.requests, "cpu").or_else(|| milli(&r.limits, "cpu"));
    let cpu_limit = milli(&r.limits, "cpu");
    let memory_limit = bytes(&r.limits, "memory").unwrap_or(0).max(0);
    let memory_request = bytes(&r.requests, "memory")
        .or_else(|| bytes(&r.limits, "memory"))
        .unwrap_or(0);
    let cpu_shares = cpu_request
        .map(|m| (m.saturating_mul(1024) / 1000).max(MIN_SHARES))
        .unwrap_or(MIN_SHARES);
    let cpu_quota = cpu_limit
        .map(|m| (m.saturating_mul(CPU_PERIOD) / 1000).max(MIN_CPU_QUOTA))
        .unwrap_or(0);
    let oom_score_adj = match qos_class {
        "Guaranteed" => -997,
        "BestEffort" => 1000,
        _ => {
            // Burstable: the more memory requested, the less likely to be killed.
            let adj = if node_memory > 0 {
                1000 - (1000i128 * memory_request as i128 / node_memory as i128) as i64
            } else {
                1000
            };
            adj.clamp(2, 999)
        }
    };
    v1::LinuxContainerResources {
        cpu_period: if cpu_quota > 0 { CPU_PERIOD } else { 0 },
        cpu_quota,
        cpu_shares,
        memory_limit_in_bytes: memory_limit,
        oom_score_adj,
        ..Default::default()
    }
}

/// The container's CRI config. `log_path` is relative to the sandbox's log directory.
pub fn container_config(
    req: &StartRequest,
    log_path: String,
    node: &NodeSettings,
    node_memory: i64,
) -> v1::ContainerConfig {
    use v1::NamespaceMode;
    let pod = &req.pod;
    let c = &req.container;
    let mut labels = pod_labels(pod, &node.node_name);
    labels.retain(|k, _| k.starts_with("io.kubernetes.") || k == LABEL_NODE);
    labels.insert(LABEL_CONTAINER_NAME.into(), c.name.clone());
    let qos = pod
        .status
        .as_ref()
        .map(|s| s.qos_class.as_str())
        .unwrap_or_default();
    let sc = c.security_context.as_ref();
    let psc = pod.spec.security_context.as_ref();
    let bool_at = |v: Option<&Value>, k: &str| {
        v.and_then(|v| v.get(k)).and_then(Value::as_bool) == Some(true)
    };
    let caps = |k: &str| -> Vec<String> {
        sc.and_then(|v| v.pointer(&format!("/capabilities/{k}")))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (add, drop) = (caps("add"), caps("drop"));
    let spec = &pod.spec;
    let namespaces = v1::NamespaceOption {
        network: if spec.host_network {
            NamespaceMode::Node as i32
        } else {
            NamespaceMode::Pod as i32
        },
        pid: if spec.host_pid {
            NamespaceMode::Node as i32
        } else if spec.share_process_namespace == Some(true) {
            NamespaceMode::Pod as i32
        } else {
            NamespaceMode::Container as i32
        },
        ipc: if spec.host_ipc {
            NamespaceMode::Node as i32
        } else {
            NamespaceMode::Pod as i32
        },
        ..Default::default()
    };
    let user = |k: &str| {
        i64_at(sc, k)
            .or_else(|| i64_at(psc, k))
            .map(|value| v1::Int64Value { value })
    };
    v1::ContainerConfig {
        metadata: Some(v1::ContainerMetadata {
            name: c.name.clone(),
            attempt: u32::try_from(req.spec.restart_count).unwrap_or(0),
        }),
        image: Some(v1::ImageSpec {
            image: req.image_ref.clone(),
            user_specified_image: c.image.clone(),
            ..Default::default()
        }),
        command: req.command.clone(),
        args: req.args.clone(),
        working_dir: c.working_dir.clone(),
        envs: req
            .env
            .iter()
            .map(|(key, value)| v1::KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        mounts: req
            .mounts
            .iter()
            .map(|m| v1::Mount {
                container_path: m.container_path.clone(),
                host_path: m.host_path.display().to_string(),
                readonly: m.readonly,
                ..Default::default()
            })
            .collect(),
        labels,
        annotations: HashMap::from([(
            "io.kubernetes.container.restartCount".to_string(),
            req.spec.restart_count.to_string(),
        )]),
        log_path,
        stdin: c.stdin,
        stdin_once: c.stdin_once,
        tty: c.tty,
        linux: Some(v1::LinuxContainerConfig {
            resources: Some(resources(c, qos, node_memory)),
            security_context: Some(v1::LinuxContainerSecurityContext {
                capabilities: (!add.is_empty() || !drop.is_empty()).then_some(v1::Capability {
                    add_capabilities: add,
                    drop_capabilities: drop,
                    ..Default::default()
                }),
                privileged: bool_at(sc, "privileged"),
                namespace_options: Some(namespaces),
                run_as_user: user("runAsUser"),
                run_as_group: user("runAsGroup"),
                readonly_rootfs: bool_at(sc, "readOnlyRootFilesystem"),
                no_new_privs: sc
                    .and_then(|v| v.get("allowPrivilegeEscalation"))
                    .and_then(Value::as_bool)
                    == Some(false),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::runtime::{ContainerSpec, Mount};

    fn pod(v: Value) -> Pod {
        let mut base = json!({"metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1",
            "labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}});
        merge(&mut base, v);
        serde_json::from_value(base).expect("pod")
    }

    fn merge(a: &mut Value, b: Value) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn node() -> NodeSettings {
        NodeSettings {
            node_name: "worker-1".into(),
            cluster_dns: vec![],
            cluster_domain: "cluster.local".into(),
            host_dns: parse_resolv_conf(
                "# generated\nnameserver 10.0.0.2\nnameserver 10.0.0.3 # second\nsearch corp.example lab\noptions edns0 rotate\n",
            ),
        }
    }

    #[test]
    fn resolv_conf() {
        let r = node().host_dns;
        assert_eq!(r.servers, ["10.0.0.2", "10.0.0.3"]);
        assert_eq!(r.searches, ["corp.example", "lab"]);
        assert_eq!(r.options, ["edns0", "rotate"]);
        assert_eq!(parse_resolv_conf(""), ResolvConf::default());
    }

    #[test]
    fn dns_follows_the_policy() {
        let n = node();
        // No cluster DNS yet: ClusterFirst falls back to the node's resolvers.
        let d = dns_config(&pod(json!({})), &n);
        assert_eq!(d.servers, ["10.0.0.2", "10.0.0.3"]);
        let mut with_dns = n.clone();
        with_dns.cluster_dns = vec!["10.96.0.10".into()];
        let d = dns_config(&pod(json!({})), &with_dns);
        assert_eq!(d.servers, ["10.96.0.10"]);
        assert_eq!(
            d.searches,
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example",
                "lab"
            ]
        );
        assert_eq!(d.options, ["ndots:5"]);
        // Host network: the node's own, unless ClusterFirstWithHostNet.
        let d = dns_config(&pod(json!({"spec": {"hostNetwork": true}})), &with_dns);
        assert_eq!(d.servers, ["10.0.0.2", "10.0.0.3"]);
        let p = pod(json!({"spec": {"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.1.1.1"], "searches": ["a.b"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}}));
        let d = dns_config(&p, &with_dns);
        assert_eq!(d.servers, ["1.1.1.1"]);
        assert_eq!(d.searches, ["a.b"]);
        assert_eq!(d.options, ["ndots:2", "edns0"]);
        let p = pod(json!({"spec": {"dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}}}));
        assert_eq!(dns_config(&p, &with_dns).options, ["ndots:1"]);
    }

    #[test]
    fn sandbox_config_names_the_pod() {
        let p = pod(
            json!({"spec": {"containers": [{"name": "web", "image": "nginx",
            "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "protocol": "UDP"}]}]}}),
        );
        let c = sandbox_config(&p, 2, Path::new("/r/pods/u-1/logs"), &node());
        let m = c.metadata.as_ref().expect("metadata");
        assert_eq!(
            (
                m.name.as_str(),
                m.namespace.as_str(),
                m.uid.as_str(),
                m.attempt
            ),
            ("web-1", "shop", "u-1", 2)
        );
        assert_eq!(c.hostname, "web-1");
        assert_eq!(c.log_directory, "/r/pods/u-1/logs");
        assert_eq!(c.labels["app"], "web");
        assert_eq!(c.labels[LABEL_POD_UID], "u-1");
        assert_eq!(c.labels[LABEL_NODE], "worker-1");
        assert_eq!(c.port_mappings.len(), 1);
        assert_eq!(c.port_mappings[0].host_port, 8080);
        let ns = c
            .linux
            .and_then(|l| l.security_context)
            .and_then(|s| s.namespace_options)
            .expect("namespaces");
        assert_eq!(ns.network, v1::NamespaceMode::Pod as i32);
        assert_eq!(ns.pid, v1::NamespaceMode::Container as i32);
        let host = pod(json!({"spec": {"hostNetwork": true, "hostname": "x"}}));
        let c = sandbox_config(&host, 0, Path::new("/l"), &node());
        assert_eq!(c.hostname, "", "host network pods keep the node's hostname");
    }

    #[test]
    fn hostnames_are_cut_to_63() {
        let long = format!("{}-x", "a".repeat(62));
        let p = pod(json!({"metadata": {"name": long}}));
        assert_eq!(hostname(&p), "a".repeat(62));
        let p = pod(json!({"spec": {"hostname": "db"}}));
        assert_eq!(hostname(&p), "db");
    }

    fn container(v: Value) -> Container {
        serde_json::from_value(v).expect("container")
    }

    #[test]
    fn resources_become_cgroup_settings() {
        let c = container(json!({"name": "c", "resources": {
            "requests": {"cpu": "250m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "128Mi"}}}));
        let r = resources(&c, "Burstable", 1 << 30);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!((r.cpu_period, r.cpu_quota), (100_000, 50_000));
        assert_eq!(r.memory_limit_in_bytes, 128 << 20);
        assert_eq!(r.oom_score_adj, 1000 - 1000 * 64 / 1024);
        let none = resources(&container(json!({"name": "c"})), "BestEffort", 1 << 30);
        assert_eq!(
            (
                none.cpu_shares,
                none.cpu_quota,
                none.memory_limit_in_bytes,
                none.oom_score_adj
            ),
            (2, 0, 0, 1000)
        );
        let g =
            container(json!({"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}));
        let r = resources(&g, "Guaranteed", 1 << 30);
        assert_eq!((r.cpu_shares, r.oom_score_adj), (1024, -997));
    }

    #[test]
    fn container_config_carries_the_spec() {
        let p = Arc::new(pod(
            json!({"spec": {"containers": [{"name": "web", "image": "nginx:1.14.2",
            "workingDir": "/srv", "tty": true,
            "securityContext": {"privileged": true, "runAsUser": 1000,
                "capabilities": {"add": ["NET_ADMIN"]}}}]}}),
        ));
        let c = p.spec.containers[0].clone();
        let req = StartRequest {
            spec: ContainerSpec {
                pod_uid: "u-1".into(),
                pod_key: "shop/web-1".into(),
                container: "web".into(),
                restart_count: 3,
                argv: vec![],
                env: vec![],
                working_dir: "/".into(),
                log_path: "/r/pods/u-1/logs/web/3.log".into(),
                log_max_size: 0,
                cgroup: None,
            },
            pod: p.clone(),
            container: c,
            sandbox: None,
            image_ref: "sha256:abc".into(),
            command: vec!["nginx".into()],
            args: vec!["-g".into(), "daemon off;".into()],
            env: vec![("A".into(), "1".into())],
            mounts: vec![Mount {
                container_path: "/etc/nginx/conf.d".into(),
                host_path: "/r/pods/u-1/volumes/conf".into(),
                readonly: true,
            }],
        };
        let cfg = container_config(&req, "web/3.log".into(), &node(), 1 << 30);
        let m = cfg.metadata.as_ref().expect("metadata");
        assert_eq!((m.name.as_str(), m.attempt), ("web", 3));
        let image = cfg.image.as_ref().expect("image");
        assert_eq!(image.image, "sha256:abc");
        assert_eq!(image.user_specified_image, "nginx:1.14.2");
        assert_eq!(cfg.command, ["nginx"]);
        assert_eq!(cfg.args, ["-g", "daemon off;"]);
        assert_eq!(cfg.working_dir, "/srv");
        assert_eq!(cfg.envs[0].key, "A");
        assert_eq!(cfg.mounts[0].host_path, "/r/pods/u-1/volumes/conf");
        assert!(cfg.mounts[0].readonly);
        assert_eq!(cfg.log_path, "web/3.log");
        assert!(cfg.tty);
        assert_eq!(cfg.labels[LABEL_CONTAINER_NAME], "web");
        assert_eq!(cfg.labels[LABEL_POD_UID], "u-1");
        assert!(
            !cfg.labels.contains_key("app"),
            "pod labels stay on the sandbox"
        );
        let sc = cfg
            .linux
            .and_then(|l| l.security_context)
            .expect("security context");
        assert!(sc.privileged);
        assert_eq!(sc.run_as_user.map(|u| u.value), Some(1000));
        assert_eq!(
            sc.capabilities.map(|c| c.add_capabilities),
            Some(vec!["NET_ADMIN".to_string()])
        );
    }
}
