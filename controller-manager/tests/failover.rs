//! Failures: a worker node dies (its pods move, it is tainted and untainted, its stale
//! processes are stopped when it returns), and the acting controller-manager dies (the standby
//! takes over within the lease duration, without duplicate pods).

mod support;

use std::time::Duration;

use api::apps::Deployment;
use api::core::{Node, Pod};
use client::{Api, ListParams, Patch};
use nix::sys::signal::Signal;
use serde_json::json;
use support::*;
use testkit::{DEFAULT_TIMEOUT, pid_alive, wait_for};

/// Pids of this node's pod processes (`sleep` children whose sandbox is under the node's root).
fn pod_pids(root: &std::path::Path) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) else {
            continue;
        };
        if cwd.starts_with(root) && pid_alive(pid) {
            out.push(pid);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_node_pods_move_and_the_node_recovers() {
    let args = [
        "--leader-elect=false",
        "--node-monitor-period",
        "0.5",
        "--node-monitor-grace-period",
        "4",
        "--default-unreachable-toleration-seconds",
        "1",
        "--node-eviction-rate",
        "10",
    ];
    let mut c = Cluster::start(&args, 2).await;
    let client = c.client();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    api.create(&deployment(
        "web",
        4,
        "v1",
        json!({"type": "RollingUpdate"}),
    ))
    .await
    .unwrap();
    wait_for("4 pods available", DEFAULT_TIMEOUT, || async {
        api.get("web").await.ok().filter(rolled_out)
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let on_one: Vec<String> = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.spec.node_name == "worker-1")
        .map(|p| p.metadata.name)
        .collect();
    assert!(
        !on_one.is_empty(),
        "the scheduler spreads replicas over both nodes"
    );
    let root1 = c.cp.dir.path().join("node-1");
    let stale = pod_pids(&root1);
    assert!(!stale.is_empty());

    // The node dies hard: its processes keep running, its heartbeats stop.
    c.kubelets[0].kill();
    let nodes: Api<Node> = Api::all(client.clone());
    wait_for(
        "worker-1 Ready=Unknown and tainted",
        DEFAULT_TIMEOUT,
        || async {
            let n = nodes.get("worker-1").await.ok()?;
            let unknown = n.condition("Ready").is_some_and(|c| c.status == "Unknown");
            let tainted = n
                .spec
                .taints
                .iter()
                .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute");
            (unknown && tainted).then_some(())
        },
    )
    .await;
    // Its pods are evicted and replaced on worker-2.
    wait_for("4 pods running on worker-2", DEFAULT_TIMEOUT, || async {
        let l = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        let live: Vec<&Pod> = l
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        (live.len() == 4
            && live
                .iter()
                .all(|p| p.spec.node_name == "worker-2" && p.phase() == "Running"))
        .then_some(())
    })
    .await;

    // The node comes back: untainted, and the processes of its evicted pods are stopped.
    c.kubelets[0] = c.kubelet(1);
    wait_for("worker-1 untainted and Ready", DEFAULT_TIMEOUT, || async {
        let n = nodes.get("worker-1").await.ok()?;
        (n.is_ready()
            && !n
                .spec
                .taints
                .iter()
                .any(|t| t.key == "node.kubernetes.io/unreachable"))
        .then_some(())
    })
    .await;
    wait_for("the stale processes stopped", DEFAULT_TIMEOUT, || async {
        stale.iter().all(|p| !pid_alive(*p)).then_some(())
    })
    .await;
    wait_for("the evicted pods removed", DEFAULT_TIMEOUT, || async {
        let l = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        l.items
            .iter()
            .all(|p| !on_one.contains(&p.metadata.name))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_controller_manager_takes_over_without_duplicates() {
    let c = Cluster::start(&["--leader-elect=false"], 0).await;
    // Replace the default controller-manager with two leader-elected ones.
    let mut procs = c.procs;
    let mut default_cm = procs.pop().unwrap();
    default_cm.stop();
    let le = |label: &str| {
        c.cp.start_component(
            "controller-manager",
            label,
            &[
                "--leader-elect-lease-duration".into(),
                "3".into(),
                "--leader-elect-renew-deadline".into(),
                "2".into(),
                "--leader-elect-retry-period".into(),
                "1".into(),
            ],
        )
    };
    let mut a = le("cm-a");
    let mut b = le("cm-b");
    let client = c.cp.client();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    api.create(&deployment(
        "web",
        3,
        "v1",
        json!({"type": "RollingUpdate"}),
    ))
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    wait_for("3 pods", DEFAULT_TIMEOUT, || async {
        (pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?
            .items
            .len()
            == 3)
            .then_some(())
    })
    .await;
    let rv = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version;
    let log = PodLog::start(&client, "app=web", &rv);

    // Find the leader from the Lease, kill it hard.
    let leases: Api<api::Lease> = Api::namespaced(client.clone(), "kube-system");
    let holder = leases
        .get("kube-controller-manager")
        .await
        .unwrap()
        .spec
        .holder_identity
        .unwrap();
    let a_leads = std::fs::read_to_string(&a.log)
        .unwrap_or_default()
        .contains("became leader");
    let (leader, standby) = if a_leads {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    leader.signal(Signal::SIGKILL);
    let killed_at = std::time::Instant::now();
    wait_for("the standby to take the lease", DEFAULT_TIMEOUT, || async {
        let h = leases
            .get("kube-controller-manager")
            .await
            .ok()?
            .spec
            .holder_identity?;
        (h != holder).then_some(())
    })
    .await;
    let took = killed_at.elapsed();
    println!("standby took over after {took:?}");
    assert!(
        took < Duration::from_secs(3 + 10),
        "hand-over took {took:?}"
    );
    // The new leader acts: scale up, and never more pods than asked for.
    api.patch("web", &Patch::Merge(&json!({"spec": {"replicas": 5}})))
        .await
        .unwrap();
    wait_for("5 pods", DEFAULT_TIMEOUT, || async {
        (pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?
            .items
            .len()
            == 5)
            .then_some(())
    })
    .await;
    let max = log.states().iter().map(|s| s.len()).max().unwrap_or(0);
    assert!(max <= 5, "{max} pods existed at once");
    assert!(!standby.exited());
}
