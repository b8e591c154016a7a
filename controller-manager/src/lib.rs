//! The kube-lite controller manager: the loops that make the cluster's state match the
//! desired state.
//!
//! # Layout
//! - [`replicaset`]: keep `replicas` pods of a template running.
//! - [`deployment`]: roll ReplicaSets (RollingUpdate, Recreate), scale, revisions, status.
//! - [`garbage_collector`]: delete dependents of deleted owners; orphan and foreground deletion.
//! - [`namespace`]: empty a deleted namespace, then let it go.
//! - [`node_lifecycle`]: mark silent nodes unknown, taint them, evict their pods, untaint on return.
//! - [`node_ipam`]: give each node a pod CIDR from `--cluster-cidr` (with `--allocate-node-cidrs`).
//! - [`endpointslice`]: keep each Service's EndpointSlices (and legacy Endpoints) listing the
//!   pods it selects, ready or not, terminating or not.
//! - [`context`]: what the controllers share (client, informer caches, event recorder).

pub mod context;
pub mod deployment;
pub mod endpointslice;
pub mod garbage_collector;
pub mod namespace;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod replicaset;

use std::sync::Arc;

use api::apps::{Deployment, ReplicaSet};
use api::coordination::Lease;
use api::core::{Endpoints, Namespace, Node, Pod, Service};
use api::discovery::EndpointSlice;
use client::runtime::controller::run_workers;
use client::runtime::events::Recorder;
use client::runtime::informer::Informer;
use client::runtime::leader_election::{self, LeaderElectionConfig, default_identity};
use client::{Api, Client, ListParams};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct Config {
    /// API server URL.
    pub server: String,
    /// Workers per controller.
    pub workers: usize,
    /// Lease-based leader election (None: act at once, alone).
    pub leader_election: Option<LeaderElectionConfig>,
    pub node_lifecycle: node_lifecycle::NodeLifecycleConfig,
    /// Node IPAM (`--allocate-node-cidrs --cluster-cidr …`); `None`: nodes bring their own.
    pub node_ipam: Option<node_ipam::NodeIpamConfig>,
}

impl Config {
    /// Defaults: 4 workers, leader election through Lease `kube-system/kube-controller-manager`,
    /// Kubernetes' node-lifecycle timings.
    pub fn new(server: impl Into<String>) -> Self {
        Config {
            server: server.into(),
            workers: 4,
            leader_election: Some(LeaderElectionConfig::new(
                "kube-controller-manager",
                &default_identity(),
            )),
            node_lifecycle: Default::default(),
            node_ipam: None,
        }
    }
}

/// Run every controller until `shutdown` (while leader, when leader election is on).
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = Client::new(&config.server, "kube-lite-controller-manager")?;
    tracing::info!(server = %config.server, "controller-manager starting");
    match config.leader_election.clone() {
        None => run_controllers(client, config, shutdown).await,
        Some(le) => {
            let (tx, _rx) = tokio::sync::watch::channel(false);
            let c = client.clone();
            let mut inner = config.clone();
            inner.leader_election = None;
            leader_election::run(client, le, shutdown, tx, move |lead| {
                let (c, config) = (c.clone(), inner.clone());
                async move {
                    if let Err(e) = run_controllers(c, config, lead).await {
                        tracing::error!(error = %e, "controllers failed");
                    }
                }
            })
            .await;
            Ok(())
        }
    }
}

/// The controllers themselves: shared informers, handlers that enqueue keys, workers.
async fn run_controllers(
    client: Client,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pod_inf = Informer::new(Api::<Pod>::all(client.clone()), ListParams::default());
    let rs_inf = Informer::new(
        Api::<ReplicaSet>::all(client.clone()),
        ListParams::default(),
    );
    let d_inf = Informer::new(
        Api::<Deployment>::all(client.clone()),
        ListParams::default(),
    );
    let ns_inf = Informer::new(Api::<Namespace>::all(client.clone()), ListParams::default());
    let node_inf = Informer::new(Api::<Node>::all(client.clone()), ListParams::default());
    let lease_inf = Informer::new(
        Api::<Lease>::namespaced(client.clone(), "kube-node-lease"),
        ListParams::default(),
    );
    let svc_inf = Informer::new(Api::<Service>::all(client.clone()), ListParams::default());
    let slice_inf = Informer::new(
        Api::<EndpointSlice>::all(client.clone()),
        ListParams::default(),
    );
    let ep_inf = Informer::new(Api::<Endpoints>::all(client.clone()), ListParams::default());
    let ctx = Arc::new(context::Context {
        client: client.clone(),
        pods: pod_inf.store(),
        replica_sets: rs_inf.store(),
        deployments: d_inf.store(),
        namespaces: ns_inf.store(),
        nodes: node_inf.store(),
        leases: lease_inf.store(),
        services: svc_inf.store(),
        endpoint_slices: slice_inf.store(),
        endpoints: ep_inf.store(),
        recorder: Recorder::new(client.clone(), "controller-manager", ""),
    });
    let rsc = replicaset::ReplicaSetController::new(ctx.clone());
    let dc = deployment::DeploymentController::new(ctx.clone());
    let gc = garbage_collector::GarbageCollector::new(ctx.clone());
    let nsc = namespace::NamespaceController::new(ctx.clone());
    let nlc =
        node_lifecycle::NodeLifecycleController::new(ctx.clone(), config.node_lifecycle.clone());
    let ipam = match &config.node_ipam {
        Some(c) => {
            Some(node_ipam::NodeIpamController::new(ctx.clone(), c).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    if let Some(i) = ipam.clone() {
        node_inf.on_change(move |c| i.on_node(c));
    }
    let esc = endpointslice::EndpointSliceController::new(ctx.clone());
    {
        let (r, d, g, e) = (rsc.clone(), dc.clone(), gc.clone(), esc.clone());
        pod_inf.on_change(move |c| {
            r.on_pod(c);
            d.on_pod(c);
            g.on_pod(c);
            e.on_pod(c);
        });
        let (e, g) = (esc.clone(), gc.clone());
        svc_inf.on_change(move |c| {
            e.on_service(c);
            g.on_service(c);
        });
        let (e, g) = (esc.clone(), gc.clone());
        slice_inf.on_change(move |c| {
            e.on_endpoint_slice(c);
            g.on_endpoint_slice(c);
        });
        let e = esc.clone();
        ep_inf.on_change(move |c| e.on_endpoints(c));
        let (r, d, g) = (rsc.clone(), dc.clone(), gc.clone());
        rs_inf.on_change(move |c| {
            r.on_replica_set(c);
            d.on_replica_set(c);
            g.on_replica_set(c);
        });
        let (d, g) = (dc.clone(), gc.clone());
        d_inf.on_change(move |c| {
            d.on_deployment(c);
            g.on_deployment(c);
        });
        let n = nsc.clone();
        ns_inf.on_change(move |c| n.on_namespace(c));
    }
    let stores = [
        pod_inf.spawn(shutdown.clone()).wait_ready_owned(),
        rs_inf.spawn(shutdown.clone()).wait_ready_owned(),
        d_inf.spawn(shutdown.clone()).wait_ready_owned(),
        ns_inf.spawn(shutdown.clone()).wait_ready_owned(),
        node_inf.spawn(shutdown.clone()).wait_ready_owned(),
        lease_inf.spawn(shutdown.clone()).wait_ready_owned(),
        svc_inf.spawn(shutdown.clone()).wait_ready_owned(),
        slice_inf.spawn(shutdown.clone()).wait_ready_owned(),
        ep_inf.spawn(shutdown.clone()).wait_ready_owned(),
    ];
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = futures::future::join_all(stores) => {}
    }
    tracing::info!(server = %config.server, "controller-manager caches synced; controllers starting");
    if let Some(i) = &ipam {
        i.start();
    }
    let ipam_workers = async {
        if let Some(i) = ipam.clone() {
            let q = i.queue.clone();
            run_workers("nodeipam", q, 1, shutdown.clone(), move |k| {
                i.clone().sync(k)
            })
            .await;
        }
    };
    let w = config.workers;
    let (r, d, g, n, e) = (
        rsc.clone(),
        dc.clone(),
        gc.clone(),
        nsc.clone(),
        esc.clone(),
    );
    tokio::join!(
        run_workers(
            "replicaset",
            rsc.queue.clone(),
            w,
            shutdown.clone(),
            move |k| r.clone().sync(k)
        ),
        run_workers(
            "deployment",
            dc.queue.clone(),
            w,
            shutdown.clone(),
            move |k| d.clone().sync(k)
        ),
        run_workers(
            "garbagecollector",
            gc.queue.clone(),
            w,
            shutdown.clone(),
            move |k| g.clone().sync(k)
        ),
        run_workers(
            "namespace",
            nsc.queue.clone(),
            1,
            shutdown.clone(),
            move |k| n.clone().sync(k)
        ),
        run_workers(
            "endpointslice",
            esc.queue.clone(),
            w,
            shutdown.clone(),
            move |k| e.clone().sync(k)
        ),
        nlc.run(shutdown.clone()),
        ipam_workers,
    );
    Ok(())
}
