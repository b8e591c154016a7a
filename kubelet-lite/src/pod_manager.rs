//! Routes the pods bound to this node to their workers: an informer on
//! `pods?fieldSelector=spec.nodeName=<node>` feeds a loop that starts a worker per new pod uid,
//! hands each worker the latest version of its pod, and tells it when the pod is gone.
//!
//! Before that it settles what an earlier kubelet left: processes recorded in the state
//! directory are stopped and pod IPs re-reserved; once the first list is in, records and
//! sandboxes of pods that no longer exist are removed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use api::Pod;
use client::runtime::informer::Informer;
use client::runtime::reflector::Change;
use client::{Api, ListParams};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::pod_worker::{self, PodUpdate};

enum Msg {
    Applied {
        old: Option<Arc<Pod>>,
        new: Arc<Pod>,
    },
    Deleted(Arc<Pod>),
}

struct WorkerHandle {
    tx: watch::Sender<PodUpdate>,
    handle: JoinHandle<()>,
}

/// Stop leftovers of an earlier kubelet and restore pod IPs. Returns the uids on record.
pub async fn restore(ctx: &Context) -> HashSet<String> {
    let mut uids = HashSet::new();
    for mut rec in ctx.state.load_all() {
        for (name, p) in &rec.containers {
            if ctx.runtime.stop_leftover(p).await {
                tracing::info!(pod = %format!("{}/{}", rec.namespace, rec.name), container = %name,
                    pid = p.pid, "stopped a container left running by an earlier kubelet");
            }
        }
        if !rec.containers.is_empty() {
            rec.containers.clear();
            if let Err(e) = ctx.state.save(&rec) {
                tracing::warn!(uid = %rec.uid, error = %e, "cannot update state file");
            }
        }
        if let Ok(ip) = rec.pod_ip.parse() {
            let r = ctx.ips().reserve(&rec.uid, ip);
            if let Err(e) = r {
                tracing::warn!(uid = %rec.uid, error = %e, "cannot restore pod IP");
            }
        }
        uids.insert(rec.uid);
    }
    uids
}

/// Remove state, IPs and sandboxes of pods that are not on this node any more.
fn collect_garbage(ctx: &Context, live: &HashSet<String>) {
    for rec in ctx.state.load_all() {
        if !live.contains(&rec.uid) {
            tracing::info!(pod = %format!("{}/{}", rec.namespace, rec.name), uid = %rec.uid,
                "forgetting a pod that is gone");
            ctx.state.remove(&rec.uid);
            ctx.ips().release(&rec.uid);
        }
    }
    if let Ok(rd) = std::fs::read_dir(ctx.dirs.pods()) {
        for e in rd.flatten() {
            let uid = e.file_name().to_string_lossy().into_owned();
            if !live.contains(&uid) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Run pod workers until `shutdown`; returns once every worker has stopped its processes.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let params = ListParams::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let informer = Informer::new(api, params);
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    informer.on_change(move |c| {
        let msg = match c {
            Change::Applied { old, new } => Msg::Applied {
                old: old.clone(),
                new: new.clone(),
            },
            Change::Deleted(p) => Msg::Deleted(p.clone()),
        };
        let _ = tx.send(msg);
    });
    let store = informer.store();
    let informer_task = tokio::spawn(informer.run(shutdown.clone()));

    let mut workers: HashMap<String, WorkerHandle> = HashMap::new();
    let mut garbage_collected = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = store.wait_ready(), if !garbage_collected => {
                garbage_collected = true;
                let live: HashSet<String> = store.list().iter().map(|p| p.metadata.uid.clone()).collect();
                collect_garbage(&ctx, &live);
            }
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                workers.retain(|_, w| !w.handle.is_finished());
                match msg {
                    Msg::Applied { old, new } => {
                        if let Some(old) = old.filter(|o| o.metadata.uid != new.metadata.uid)
                            && let Some(w) = workers.get(&old.metadata.uid)
                        {
                            w.tx.send_replace(PodUpdate::Gone);
                        }
                        match workers.get(&new.metadata.uid) {
                            Some(w) => {
                                w.tx.send_replace(PodUpdate::Present(new));
                            }
                            None => {
                                let uid = new.metadata.uid.clone();
                                let (tx, handle) =
                                    pod_worker::spawn(ctx.clone(), new, shutdown.clone());
                                workers.insert(uid, WorkerHandle { tx, handle });
                            }
                        }
                    }
                    Msg::Deleted(p) => {
                        if let Some(w) = workers.get(&p.metadata.uid) {
                            w.tx.send_replace(PodUpdate::Gone);
                        }
                    }
                }
            }
        }
    }
    tracing::info!(
        node = %ctx.node_name,
        pods = workers.len(),
        "stopping pod workers"
    );
    for (_, w) in workers {
        if let Err(e) = w.handle.await {
            tracing::error!(error = %e, "pod worker panicked");
        }
    }
    informer_task.abort();
}
