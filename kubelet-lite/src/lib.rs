//! kubelet-lite: the kube-lite node agent. It registers a Node, keeps its Lease fresh, runs the
//! pods bound to it — as host process groups, each with its own loopback pod IP, or as real
//! containers through a CRI runtime (containerd), each in its own network namespace — reports
//! their status, restarts crashed containers with Kubernetes' backoff, stops them gracefully
//! on deletion, and serves their logs and `kubectl exec` sessions through the API server.
//!
//! # Layout
//! - [`run`] / [`Config`]: the entry point; `kube-lite up` calls it in-process, once per node.
//! - [`node`]: registration, the heartbeat Lease, Node conditions. [`machine`]: what the
//!   machine has (CPUs, memory, kernel, OS).
//! - [`pod_manager`]: the pod informer (`spec.nodeName=<node>`) → one worker per pod uid;
//!   start-up re-adoption of what an earlier kubelet left.
//! - [`pod_worker`]: the per-pod sync loop — the heart of the kubelet.
//! - [`runtime`]: the container runtime trait; [`runtime::process`] runs containers as process
//!   groups, each under a [`runtime::shim`] so it outlives a kubelet crash and is re-adopted;
//!   [`runtime::cri`] drives containerd (or CRI-O) through the CRI, with CNI networking;
//!   [`cgroups`]: memory limits.
//! - [`env`](mod@env): `env`/`envFrom` resolution and `$(VAR)` expansion. [`status`]: phase, container
//!   statuses, conditions, merge patches. [`backoff`]: crash-loop backoff.
//! - [`ip_alloc`]: pod IPs from the node's pod CIDR.
//! - [`logs`]: CRI-style log capture and reading. [`server`]: the HTTP server
//!   (`/containerLogs`, `/exec`, `/healthz`); [`exec`]: one `kubectl exec` session (WebSocket ⇄
//!   runtime). [`registry`]: what the server knows of the pods.
//! - [`state`]: what survives a kubelet restart. [`dirs`]: the layout of `--root-dir`.
//! - [`context`]: what all of the above share, per kubelet (no global state).
//!
//! # Decisions where Kubernetes has no answer for a process runtime
//! - A container is `command` + `args` run on the host; with no `command`, `args` alone is the
//!   command line (there is no image entrypoint); with neither, the container waits with
//!   `CreateContainerError`. `image` is only recorded (`imageID: kube-lite://<image>`).
//! - The working directory is the pod's sandbox `<root>/pods/<uid>/`; a `workingDir`, relative
//!   or absolute, is resolved inside it (`/app` → `<sandbox>/app`, created if missing).
//! - The process environment is `PATH` (the kubelet's), `HOME` (the sandbox) and `HOSTNAME`
//!   (the pod name), then `envFrom`, then `env`. `$(VAR)` references see only the container's
//!   own variables, as in Kubernetes.
//! - Pod IPs are 127.X.a.b from the node's `/16` (any /8–/30 inside 127.0.0.0/8 works):
//!   loopback addresses need no network setup, and each pod can bind its own.

pub mod backoff;
pub mod cgroups;
pub mod context;
pub mod dirs;
pub mod env;
pub mod exec;
pub mod ip_alloc;
pub mod logs;
pub mod machine;
pub mod network;
pub mod node;
pub mod pod_manager;
pub mod pod_worker;
pub mod portforward;
pub mod prober;
pub mod registry;
pub mod runtime;
pub mod server;
pub mod state;
pub mod status;
pub mod volumes;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use api::Quantity;
use tokio_util::sync::CancellationToken;

use crate::context::{Allocatable, Context};
use crate::ip_alloc::IpAllocator;
use crate::runtime::Runtime;

/// How one kubelet runs.
#[derive(Debug)]
pub struct Config {
    /// API server URL.
    pub server: String,
    pub node_name: String,
    /// The kubelet's HTTP server (`/healthz`, `/containerLogs`), already bound; its port is
    /// advertised in the Node's `daemonEndpoints`.
    pub listener: TcpListener,
    /// Sandboxes, logs and state of this node's pods.
    pub root_dir: PathBuf,
    /// Where pod IPs come from: a range inside 127.0.0.0/8 (`127.11.0.0/16`) for the process
    /// runtime; any range for the CRI runtime, where empty means "the one the controller-manager
    /// assigns to the Node" (node IPAM).
    pub pod_cidr: String,
    /// The node's InternalIP (where the API server reaches the kubelet).
    pub node_ip: String,
    /// Capacity overrides; `None`: detected (CPU count, `/proc/meminfo` MemTotal).
    pub cpu: Option<Quantity>,
    pub memory: Option<Quantity>,
    pub max_pods: u32,
    /// Extra node labels.
    pub node_labels: BTreeMap<String, String>,
    /// How often the node Lease is renewed.
    pub heartbeat_interval: Duration,
    /// How often the Node's conditions are re-posted.
    pub node_status_interval: Duration,
    /// Crash-loop backoff: first delay, doubling up to the max.
    pub restart_backoff_base: Duration,
    pub restart_backoff_max: Duration,
    /// SIGTERM → SIGKILL delay for pod processes when this kubelet stops.
    pub shutdown_grace: Duration,
    /// How often ConfigMap volumes are refreshed (kubelet's `--sync-frequency`, 1 min).
    pub sync_frequency: Duration,
    /// Real processes, or none at all (kwok-style, for scale).
    pub runtime: RuntimeKind,
    /// Taints the Node is registered with.
    pub register_with_taints: Vec<api::core::Taint>,
    /// A container's log file is rotated at this size (kubelet's `containerLogMaxSize`, 10Mi).
    pub container_log_max_size: u64,
    /// The binary to re-execute as each container's shim (see [`runtime::shim`]), so containers
    /// outlive a kubelet restart: the kubelet binaries pass themselves. `None`: containers are
    /// direct children of this process and are stopped with it.
    pub shim_program: Option<PathBuf>,
    /// With [`RuntimeKind::Cri`]: the runtime's socket (`--container-runtime-endpoint`).
    pub container_runtime_endpoint: String,
    /// With [`RuntimeKind::Cri`]: where the runtime reads CNI configs (`--cni-conf-dir`);
    /// kubelet-lite writes the node's there. `None`: the network is configured by someone else.
    pub cni_conf_dir: Option<PathBuf>,
    /// `--cluster-dns` / `--cluster-domain`: what pods with `dnsPolicy: ClusterFirst` resolve
    /// with (CRI runtime).
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RuntimeKind {
    /// Containers are host processes on loopback pod IPs.
    #[default]
    Process,
    /// Nothing runs (kwok-style).
    Fake,
    /// Real containers through the CRI (containerd, CRI-O).
    Cri,
}

impl Config {
    /// Defaults for everything but the essentials; the pod CIDR is derived from the node name.
    pub fn new(
        server: impl Into<String>,
        node_name: impl Into<String>,
        listener: TcpListener,
        root_dir: impl Into<PathBuf>,
    ) -> Self {
        let node_name = node_name.into();
        Config {
            server: server.into(),
            pod_cidr: ip_alloc::default_pod_cidr(&node_name),
            node_name,
            listener,
            root_dir: root_dir.into(),
            node_ip: "127.0.0.1".into(),
            cpu: None,
            memory: None,
            max_pods: 110,
            node_labels: BTreeMap::new(),
            heartbeat_interval: Duration::from_secs(10),
            node_status_interval: Duration::from_secs(60),
            restart_backoff_base: Duration::from_secs(10),
            restart_backoff_max: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(5),
            sync_frequency: Duration::from_secs(60),
            runtime: RuntimeKind::Process,
            register_with_taints: Vec::new(),
            container_log_max_size: 10 << 20,
            shim_program: None,
            container_runtime_endpoint: "unix:///run/containerd/containerd.sock".into(),
            cni_conf_dir: None,
            cluster_dns: Vec::new(),
            cluster_domain: "cluster.local".into(),
        }
    }
}

/// The capacity the node reports: overrides, else what the machine has.
pub fn capacity(
    config: &Config,
    machine: &machine::MachineInfo,
) -> anyhow::Result<BTreeMap<String, Quantity>> {
    let mut c = BTreeMap::new();
    let cpu = match &config.cpu {
        Some(q) => {
            q.milli_value()
                .map_err(|e| anyhow::anyhow!("invalid cpu {:?}: {e}", q.0))?;
            q.clone()
        }
        None => Quantity::from_units(machine.cpus),
    };
    let memory = match &config.memory {
        Some(q) => {
            q.value()
                .map_err(|e| anyhow::anyhow!("invalid memory {:?}: {e}", q.0))?;
            q.clone()
        }
        None => Quantity::from_bytes(machine.memory_bytes),
    };
    c.insert("cpu".to_string(), cpu);
    c.insert("memory".to_string(), memory);
    c.insert(
        "pods".to_string(),
        Quantity::from_units(config.max_pods as i64),
    );
    if let Some(s) = machine.ephemeral_storage_bytes {
        c.insert("ephemeral-storage".to_string(), Quantity::from_bytes(s));
    }
    Ok(c)
}

/// Run the node until `shutdown`. Before returning, every pod process this kubelet started
/// is stopped (SIGTERM, `shutdown_grace`, SIGKILL).
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let name_errors = api::validation::dns1123_subdomain(&config.node_name);
    if !name_errors.is_empty() {
        bail!(
            "invalid node name {:?}: {}",
            config.node_name,
            name_errors.join("; ")
        );
    }
    let cri = config.runtime == RuntimeKind::Cri;
    // A CRI node may wait for the controller-manager to assign its range; the loopback
    // allocator is then unused.
    let assigned_later = cri && config.pod_cidr.is_empty();
    let cidr = if assigned_later {
        ip_alloc::parse_pod_cidr("127.0.0.0/30").map_err(anyhow::Error::msg)?
    } else {
        ip_alloc::parse_pod_cidr(&config.pod_cidr).map_err(anyhow::Error::msg)?
    };
    if !cidr.is_loopback() && !cri {
        bail!(
            "pod CIDR {cidr} is not inside 127.0.0.0/8: the process runtime gives pods loopback addresses"
        );
    }
    if config.node_ip.parse::<std::net::IpAddr>().is_err() {
        bail!("invalid node IP {:?}", config.node_ip);
    }
    std::fs::create_dir_all(&config.root_dir)
        .with_context(|| format!("cannot create root dir {}", config.root_dir.display()))?;
    let root = std::fs::canonicalize(&config.root_dir)
        .with_context(|| format!("cannot resolve root dir {}", config.root_dir.display()))?;
    let dirs = dirs::Dirs::new(&root);
    std::fs::create_dir_all(dirs.pods())?;
    let machine = machine::detect(&root);
    let capacity = capacity(&config, &machine)?;
    let q = |k: &str| api::quantity::amount(&capacity, k);
    let allocatable = Allocatable {
        cpu_milli: q("cpu"),
        memory: q("memory"),
        ephemeral_storage: q("ephemeral-storage"),
    };
    let port = config.listener.local_addr()?.port();
    let client = client::Client::new(
        &config.server,
        &format!("kubelet-lite/{}", config.node_name),
    )?;
    // Ends the kubelet's helpers (server, node agent, the runtime's relist loop) once every
    // pod worker has stopped.
    let aux = CancellationToken::new();
    let mut cri_runtime: Option<Arc<runtime::cri::CriRuntime>> = None;
    let runtime: Arc<dyn Runtime> = match config.runtime {
        RuntimeKind::Process => Arc::new(runtime::process::ProcessRuntime {
            shim: config
                .shim_program
                .clone()
                .map(|program| runtime::shim::ShimConfig {
                    program,
                    dir: dirs.shims(),
                }),
        }),
        RuntimeKind::Fake => Arc::new(runtime::fake::FakeRuntime::default()),
        RuntimeKind::Cri => {
            let host_dns = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            let cri = runtime::cri::CriRuntime::connect(
                runtime::cri::CriConfig {
                    endpoint: config.container_runtime_endpoint.clone(),
                    node: runtime::cri::config::NodeSettings {
                        node_name: config.node_name.clone(),
                        cluster_dns: config.cluster_dns.clone(),
                        cluster_domain: config.cluster_domain.clone(),
                        host_dns: runtime::cri::config::parse_resolv_conf(&host_dns),
                    },
                    node_memory: allocatable.memory,
                    dirs: dirs.clone(),
                    cni_conf_dir: config.cni_conf_dir.clone(),
                    relist_period: Duration::from_secs(1),
                    connect_timeout: Duration::from_secs(30),
                    log_max_size: config.container_log_max_size,
                },
                aux.clone(),
            )
            .await
            .map_err(anyhow::Error::msg)?;
            let cri = Arc::new(cri);
            if !assigned_later {
                cri.install_network(&cidr.to_string())
                    .map_err(anyhow::Error::msg)?;
            }
            cri_runtime = Some(cri.clone());
            cri
        }
    };
    let cgroups = match config.runtime {
        RuntimeKind::Process => cgroups::Cgroups::detect(),
        RuntimeKind::Fake => cgroups::Cgroups::Unavailable {
            reason: "the fake runtime runs no processes".into(),
        },
        RuntimeKind::Cri => cgroups::Cgroups::Unavailable {
            reason: "the container runtime enforces limits".into(),
        },
    };
    tracing::info!(node = %config.node_name, cgroups = ?cgroups, "memory limits");
    let state = state::StateStore::new(&dirs.state())
        .with_context(|| format!("cannot create state dir {}", dirs.state().display()))?;
    let ctx = Arc::new(Context {
        node_name: config.node_name.clone(),
        node_ip: config.node_ip.clone(),
        recorder: client::runtime::events::Recorder::new(
            client.clone(),
            "kubelet",
            &config.node_name,
        ),
        client: client.clone(),
        runtime: runtime.clone(),
        dirs: dirs.clone(),
        state,
        ips: Mutex::new(IpAllocator::new(cidr)),
        registry: registry::Registry::default(),
        allocatable,
        restart_backoff_base: config.restart_backoff_base,
        restart_backoff_max: config.restart_backoff_max,
        shutdown_grace: config.shutdown_grace,
        path_env: std::env::var("PATH").unwrap_or_else(|_| {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
        }),
        boot_id: machine.boot_id.clone(),
        sync_frequency: config.sync_frequency,
        container_log_max_size: config.container_log_max_size,
        cgroups: cgroups.clone(),
        adopted: Mutex::new(Default::default()),
        adopted_sandboxes: Mutex::new(Default::default()),
    });
    tracing::info!(node = %config.node_name, server = %config.server, root = %root.display(),
        pod_cidr = %cidr, port, "kubelet-lite starting");

    // What an earlier kubelet left running is re-adopted (or stopped) before anything starts.
    pod_manager::restore(&ctx).await;

    let server_task = tokio::spawn(server::serve(
        config.listener,
        server::ServerState {
            node_name: config.node_name.clone(),
            registry: ctx.registry.clone(),
            dirs: dirs.clone(),
            runtime: runtime.clone(),
            shutdown: aux.clone(),
        },
        aux.clone(),
    ));
    let agent = node::NodeAgent {
        info: node::NodeInfo {
            name: config.node_name.clone(),
            ip: config.node_ip.clone(),
            pod_cidr: if assigned_later {
                String::new()
            } else {
                cidr.to_string()
            },
            port,
            pod_network: match config.runtime {
                RuntimeKind::Cri => format!(
                    "CNI bridge {} on this node; other nodes' pod ranges routed via their node IPs",
                    cri::cni::bridge_name(&config.node_name)
                ),
                RuntimeKind::Process => "loopback: pod IPs are addresses of this machine's lo, reachable from this machine only".into(),
                RuntimeKind::Fake => "none (fake runtime)".into(),
            },
            labels: node::node_labels(
                &config.node_name,
                &machine.architecture,
                &config.node_labels,
            ),
            capacity,
            machine,
            runtime_version: runtime.version(),
            taints: config.register_with_taints.clone(),
            memory_limits: (config.runtime == RuntimeKind::Process).then(|| cgroups.condition()),
        },
        client: client.clone(),
        runtime: runtime.clone(),
        heartbeat_interval: config.heartbeat_interval,
        status_interval: config.node_status_interval,
    };
    let agent_task = tokio::spawn(agent.run(aux.clone()));
    // With the CRI runtime: the pod CIDR from the controller-manager when none was given, and
    // routes to the other nodes' pods.
    let mut network_tasks = Vec::new();
    if let Some(cri) = cri_runtime {
        if assigned_later {
            network_tasks.push(tokio::spawn(network::await_pod_cidr(
                client.clone(),
                config.node_name.clone(),
                cri,
                aux.clone(),
            )));
        }
        network_tasks.push(tokio::spawn(network::run_routes(
            client.clone(),
            config.node_name.clone(),
            aux.clone(),
        )));
    }

    pod_manager::run(ctx.clone(), shutdown).await;

    aux.cancel();
    let _ = agent_task.await;
    for t in network_tasks {
        let _ = t.await;
    }
    match server_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "kubelet HTTP server failed"),
        Err(e) => tracing::warn!(error = %e, "kubelet HTTP server panicked"),
    }
    tracing::info!(node = %config.node_name, "kubelet-lite stopped");
    Ok(())
}
