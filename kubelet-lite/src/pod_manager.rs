//! Routes the pods bound to this node to their workers: an informer on
//! `pods?fieldSelector=spec.nodeName=<node>` feeds a loop that starts a worker per new pod uid,
//! hands each worker the latest version of its pod, and tells it when the pod is gone.
//!
//! Before that it settles what an earlier kubelet left: containers recorded in the state
//! directory are re-adopted through their shims (or stopped, if no shim holds them) and pod IPs
//! re-reserved; once the first list is in, re-adopted containers, records and sandboxes of
//! pods that no longer exist are stopped and removed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use api::Pod;
use client::runtime::informer::Informer;
use client::runtime::reflector::Change;
use client::{Api, ListParams};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::context::{Adopted, Context};
use crate::pod_worker::{self, PodUpdate};
use crate::runtime::{Recovered, StopSignal};

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

/// Settle what an earlier kubelet left: re-adopt containers whose shims still hold them, stop
/// any other leftover, restore pod IPs. Returns the uids on record.
pub async fn restore(ctx: &Context) -> HashSet<String> {
    let mut uids = HashSet::new();
    for mut rec in ctx.state.load_all() {
        let key = format!("{}/{}", rec.namespace, rec.name);
        let mut adopted = HashMap::new();
        for (name, p) in std::mem::take(&mut rec.containers) {
            match ctx.runtime.recover(&p).await {
                Recovered::Adopted { running, spec } => {
                    tracing::info!(pod = %key, container = %name, pid = p.pid,
                        exited = running.exited().is_some(), "re-adopted a container started by an earlier kubelet");
                    rec.containers.insert(name.clone(), p.clone());
                    adopted.insert(
                        name,
                        Adopted {
                            running,
                            spec: *spec,
                            record: p,
                        },
                    );
                }
                Recovered::Gone { stopped: true } => {
                    tracing::info!(pod = %key, container = %name, pid = p.pid,
                        "stopped a container left running by an earlier kubelet");
                }
                Recovered::Gone { stopped: false } => {}
            }
        }
        if let Err(e) = ctx.state.save(&rec) {
            tracing::warn!(uid = %rec.uid, error = %e, "cannot update state file");
        }
        if !adopted.is_empty() {
            ctx.adopted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(rec.uid.clone(), adopted);
        }
        if !ctx.runtime.isolated()
            && let Ok(ip) = rec.pod_ip.parse()
        {
            let r = ctx.ips().reserve(&rec.uid, ip);
            if let Err(e) = r {
                tracing::warn!(uid = %rec.uid, error = %e, "cannot restore pod IP");
            }
        }
        uids.insert(rec.uid);
    }
    // A runtime with labels (CRI) knows its pods itself.
    for d in ctx.runtime.discover().await {
        let key = format!("{}/{}", d.namespace, d.name);
        if let Some(sb) = d.sandbox {
            tracing::info!(pod = %key, sandbox = %sb.id, ip = %sb.ip, "re-adopted a pod sandbox");
            ctx.adopted_sandboxes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(d.uid.clone(), sb);
        }
        let mut adopted = HashMap::new();
        for (name, running, spec) in d.containers {
            tracing::info!(pod = %key, container = %name, id = %running.id,
                exited = running.exited().is_some(), "re-adopted a container started by an earlier kubelet");
            let record = crate::state::ProcRecord {
                restart_count: spec.restart_count,
                started_at: Some(running.started_at),
                ..Default::default()
            };
            adopted.insert(
                name,
                Adopted {
                    running,
                    spec,
                    record,
                },
            );
        }
        if !adopted.is_empty() {
            ctx.adopted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(d.uid.clone(), adopted);
        }
        uids.insert(d.uid);
    }
    uids
}

/// Stop re-adopted containers, and remove state, IPs and sandboxes, of pods that are not on
/// this node any more.
async fn collect_garbage(ctx: &Context, live: &HashSet<String>) {
    let orphans: Vec<(String, crate::runtime::Sandbox)> = {
        let mut m = ctx
            .adopted_sandboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let gone: Vec<String> = m.keys().filter(|u| !live.contains(*u)).cloned().collect();
        gone.into_iter()
            .filter_map(|u| m.remove(&u).map(|s| (u, s)))
            .collect()
    };
    for (uid, sb) in orphans {
        tracing::info!(uid = %uid, sandbox = %sb.id, "removing the sandbox of a pod that is gone");
        for (_, a) in ctx.take_adopted(&uid) {
            ctx.runtime.release(&a.running);
        }
        if let Err(e) = ctx.runtime.remove_sandbox(&sb).await {
            tracing::warn!(uid = %uid, sandbox = %sb.id, error = %e, "cannot remove a sandbox");
        }
    }
    for rec in ctx.state.load_all() {
        if live.contains(&rec.uid) {
            continue;
        }
        let key = format!("{}/{}", rec.namespace, rec.name);
        for (name, a) in ctx.take_adopted(&rec.uid) {
            tracing::info!(pod = %key, container = %name, pid = a.running.pid,
                "stopping a re-adopted container whose pod is gone");
            ctx.runtime.signal(&a.running, StopSignal::Kill);
            let mut rx = a.running.exit.clone();
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                rx.wait_for(|e| e.is_some()),
            )
            .await;
            ctx.runtime.release(&a.running);
            if let Some(cg) = &a.running.cgroup {
                crate::cgroups::remove(cg);
            }
        }
        tracing::info!(pod = %key, uid = %rec.uid, "forgetting a pod that is gone");
        ctx.state.remove(&rec.uid);
        ctx.ips().release(&rec.uid);
    }
    if let Ok(rd) = std::fs::read_dir(ctx.dirs.pods()) {
        for e in rd.flatten() {
            let uid = e.file_name().to_string_lossy().into_owned();
            if !live.contains(&uid) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    // Shim directories of pods that are gone (the live ones are released as they exit).
    if let Ok(rd) = std::fs::read_dir(ctx.dirs.shims()) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let uid = name.split('_').next().unwrap_or_default();
            if !live.contains(uid) {
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
                collect_garbage(&ctx, &live).await;
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
