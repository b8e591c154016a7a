//! kvstore: kube-lite's only state — a Raft-replicated key-value store with etcd v3 semantics
//! (revisions, MVCC reads, txns, watches, leases, compaction), spoken over the HTTP/JSON
//! protocol of [`kvclient::proto`].
//!
//! # Layout
//! - [`command`]: what goes through Raft — batches of write commands and their results.
//! - [`error`]: request errors with their wire code and HTTP status.
//! - [`mvcc`]: the revisioned key space in memory (reads, writes, compaction, snapshot images).
//! - [`state_machine`]: the Raft state machine over [`mvcc`]: apply, snapshot, install.
//! - [`raft`]: openraft setup and handle — type config, redb log store, HTTP network, group
//!   commit of concurrent writes, bootstrap.
//! - [`watch`]: the watcher hub — broadcast of applied revisions plus history catch-up.
//! - [`lease`]: lease deadlines and the leader's expiry loop.
//! - [`server`]: the axum router of the client API (also served on the peer listener).
//!
//! [`run`] wires them together; `main.rs` is the `kvstore` command.
//!
//! # Durability
//! A write is acknowledged only after its Raft entry was fsync'ed on a majority (by the log
//! store's `append`, one fsync per group of concurrent writes) and applied. The state lives in
//! memory; snapshots are written (and fsync'ed) before the log entries they cover are purged, and
//! a starting member restores its latest snapshot and re-applies the log after it.

pub mod command;
pub mod error;
pub mod lease;
pub mod mvcc;
// openraft's `StorageError` is large, and its traits fix the error types.
#[allow(clippy::result_large_err)]
pub mod raft;
pub mod server;
#[allow(clippy::result_large_err)]
pub mod state_machine;
pub mod watch;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use kvclient::proto::ResponseHeader;
use tokio_util::sync::CancellationToken;

use crate::command::Command;
use crate::lease::Leases;
use crate::mvcc::{MemberAttrs, Store};
use crate::raft::log_store::LogStore;
use crate::raft::{RaftNode, StartOptions};
use crate::state_machine::StateMachine;
use crate::watch::WatchHub;

/// How one member runs.
pub struct Config {
    /// This member's name; must appear in `initial_cluster`.
    pub name: String,
    /// Holds `raft-log.redb` and `snapshot/`.
    pub data_dir: PathBuf,
    /// Already bound (callers may bind port 0): serves the client API.
    pub client_listener: TcpListener,
    /// Already bound: serves Raft RPCs (and the client API, for forwarding between members).
    pub peer_listener: TcpListener,
    pub advertise_client_url: String,
    pub advertise_peer_url: String,
    /// Every initial member as (name, peer URL).
    pub initial_cluster: Vec<(String, String)>,
}

/// Whether a member with an empty data directory starts a new cluster or joins one
/// (etcd's `--initial-cluster-state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClusterState {
    /// Bootstrap the cluster from `initial_cluster` (every initial member does).
    #[default]
    New,
    /// Join a running cluster: wait until the leader adds this member (`member add`), then
    /// catch up from its log or a snapshot.
    Existing,
}

/// Settings beyond [`Config`] (kept apart so `Config` literals stay valid).
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub initial_cluster_state: ClusterState,
}

/// This member's identity for response headers.
pub struct Identity {
    cluster_id: AtomicU64,
    pub member_id: u64,
    term: AtomicU64,
}

impl Identity {
    pub fn new(cluster_id: u64, member_id: u64) -> Identity {
        Identity {
            cluster_id: AtomicU64::new(cluster_id),
            member_id,
            term: AtomicU64::new(0),
        }
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id.load(Ordering::Relaxed)
    }

    /// Set once the store tells (a joining member learns it from the leader's data).
    pub fn set_cluster_id(&self, id: u64) {
        self.cluster_id.store(id, Ordering::Relaxed);
    }

    pub fn set_term(&self, term: u64) {
        self.term.store(term, Ordering::Relaxed);
    }

    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id(),
            member_id: self.member_id,
            revision,
            raft_term: self.term.load(Ordering::Relaxed),
        }
    }
}

const SNAPSHOT_DIR: &str = "snapshot";
const LOG_FILE: &str = "raft-log.redb";
/// How long a stop waits for connections and tasks before giving up on them.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Run a member until `shutdown` is cancelled, then stop cleanly: servers closed, Raft shut
/// down and the log database closed.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_with(config, Options::default(), shutdown).await
}

/// [`run`] with [`Options`].
pub async fn run_with(
    config: Config,
    options: Options,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Config {
        name,
        data_dir,
        client_listener,
        peer_listener,
        advertise_client_url,
        advertise_peer_url,
        initial_cluster,
    } = config;
    check_cluster(&name, &advertise_peer_url, &initial_cluster)?;
    let id = raft::node_id(&name);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;

    let store = Arc::new(Store::new());
    let hub = Arc::new(WatchHub::new(store.read()?.revision()));
    let leases = Arc::new(Leases::new());
    let bootstrap = options.initial_cluster_state == ClusterState::New;
    // A joining member learns the cluster id from the data it receives.
    let initial_id = if bootstrap {
        raft::cluster_id(
            initial_cluster
                .iter()
                .map(|(n, u)| (raft::node_id(n), u.as_str())),
        )
    } else {
        0
    };
    let ident = Arc::new(Identity::new(initial_id, id));
    let sm = StateMachine::new(
        store.clone(),
        hub.clone(),
        leases.clone(),
        &data_dir.join(SNAPSHOT_DIR),
    )?
    .with_identity(ident.clone())?;
    let log = LogStore::open(&data_dir.join(LOG_FILE))?;
    let log_probe = log.clone();
    if !bootstrap {
        tracing::info!(%name, "joining an existing cluster: waiting for the leader to add this member");
    }
    let node = RaftNode::start(
        StartOptions {
            id,
            initial_cluster: &initial_cluster,
            bootstrap,
        },
        log,
        sm,
    )
    .await?;

    let stop = shutdown.child_token();
    let state = Arc::new(server::AppState {
        store: store.clone(),
        node: node.clone(),
        hub,
        leases: leases.clone(),
        ident: ident.clone(),
        http: reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_millis(500))
            .build()?,
        shutdown: stop.clone(),
        name: name.clone(),
        advertise_client_url: advertise_client_url.clone(),
        data_files: vec![
            data_dir.join(LOG_FILE),
            data_dir
                .join(SNAPSHOT_DIR)
                .join(state_machine::SNAPSHOT_FILE),
        ],
    });

    let mut servers = tokio::task::JoinSet::new();
    for (what, listener, app) in [
        (
            "client",
            client_listener,
            server::client_router(state.clone()),
        ),
        (
            "peer",
            peer_listener,
            raft::network::peer_router(node.clone()).merge(server::client_router(state.clone())),
        ),
    ] {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tracing::info!(%name, "serving {what} requests on {}", listener.local_addr()?);
        let stopped = stop.clone().cancelled_owned();
        // Small request/response messages: no Nagle delay.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        servers.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
                .with_context(|| format!("{what} server"))
        });
    }
    let mut tasks = tokio::task::JoinSet::new();
    let removed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tasks.spawn(watch_removal(node.clone(), removed.clone(), stop.clone()));
    tasks.spawn(lease::expiry_loop(leases, node.clone(), stop.clone()));
    tasks.spawn(track_term(node.clone(), ident, stop.clone()));
    tasks.spawn(publish(
        node.clone(),
        store.clone(),
        MemberAttrs {
            name: name.clone(),
            client_urls: vec![advertise_client_url],
        },
        stop.clone(),
    ));

    // Run until asked to stop, or until a server fails.
    let mut result = Ok(());
    tokio::select! {
        biased;
        _ = stop.cancelled() => {}
        Some(r) = servers.join_next() => {
            // A server ends by itself only on an error (or when the stop raced this select).
            if !stop.is_cancelled() {
                result = r.map_err(anyhow::Error::from).and_then(|r| r).and_then(|()| {
                    bail!("a server stopped unexpectedly")
                });
            }
        }
    }
    tracing::info!(%name, "stopping");
    stop.cancel();
    let drain = async {
        while servers.join_next().await.is_some() {}
        while tasks.join_next().await.is_some() {}
    };
    if tokio::time::timeout(STOP_GRACE, drain).await.is_err() {
        tracing::warn!("connections did not close in time; dropping them");
    }
    servers.abort_all();
    tasks.abort_all();
    node.shutdown().await;
    drop(state);
    drop(node);
    // Raft's state machine worker and log readers end on their own after the shutdown; wait
    // for them so the databases are really closed when we return.
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    while (Arc::strong_count(&store) > 1 || log_probe.handles() > 1)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if Arc::strong_count(&store) > 1 || log_probe.handles() > 1 {
        tracing::warn!("raft tasks still hold the databases after shutdown");
    }
    tracing::info!(%name, "stopped");
    if removed.load(Ordering::Relaxed) {
        bail!("this member was removed from the cluster");
    }
    result
}

fn check_cluster(
    name: &str,
    advertise_peer_url: &str,
    initial_cluster: &[(String, String)],
) -> anyhow::Result<()> {
    let Some((_, url)) = initial_cluster.iter().find(|(n, _)| n == name) else {
        bail!("member {name:?} is not in the initial cluster");
    };
    if url.trim_end_matches('/') != advertise_peer_url.trim_end_matches('/') {
        bail!(
            "member {name:?} advertises peer URL {advertise_peer_url} but the initial cluster lists {url}"
        );
    }
    let mut ids: Vec<u64> = initial_cluster
        .iter()
        .map(|(n, _)| raft::node_id(n))
        .collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        bail!("the initial cluster names a member twice");
    }
    Ok(())
}

/// Stop this member once an applied membership no longer includes it, after one did (etcd
/// stops a removed member too; a member still catching up applies old memberships without
/// itself, hence "after one did").
async fn watch_removal(node: Arc<RaftNode>, removed: Arc<AtomicBool>, stop: CancellationToken) {
    let mut metrics = node.raft().metrics();
    let mut seen_self = false;
    loop {
        let gone = {
            let m = metrics.borrow_and_update();
            let applied = m.last_applied.as_ref().map_or(0, |l| l.index);
            let mc = &m.membership_config;
            let in_effect = mc.log_id().as_ref().is_some_and(|l| l.index <= applied);
            let contains = mc.membership().get_node(&node.id()).is_some();
            if in_effect && contains {
                seen_self = true;
            }
            seen_self && in_effect && !contains && mc.membership().nodes().next().is_some()
        };
        if gone || node.told_removed() {
            tracing::warn!("this member was removed from the cluster; stopping");
            removed.store(true, Ordering::Relaxed);
            stop.cancel();
            return;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            r = metrics.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Keep the term in response headers current.
async fn track_term(node: Arc<RaftNode>, ident: Arc<Identity>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => ident.set_term(node.term().0),
        }
    }
}

/// Record this member's name and client URLs in the store (etcd's "publish"), once a leader
/// accepts it.
async fn publish(
    node: Arc<RaftNode>,
    store: Arc<Store>,
    attrs: MemberAttrs,
    stop: CancellationToken,
) {
    let id = node.id();
    loop {
        let known = store
            .read()
            .and_then(|r| r.members())
            .map(|m| m.into_iter().any(|(mid, a)| mid == id && a == attrs))
            .unwrap_or(false);
        if known {
            return;
        }
        let cmd = Command::PublishMember {
            id,
            name: attrs.name.clone(),
            client_urls: attrs.client_urls.clone(),
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            r = node.propose_via_leader(cmd) => if let Ok(Ok(_)) = r { return },
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}
