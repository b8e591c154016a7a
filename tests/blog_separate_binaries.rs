//! The walking skeleton end to end with the separate binaries: kvstore, apiserver, scheduler,
//! controller-manager and two kubelet-lite nodes as processes; kubectl-lite applies the blog.

mod common;

use api::core::Pod;
use client::Api;
use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use testkit::{ControlPlane, DEFAULT_TIMEOUT, free_port, run_cli, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blog_runs_heals_and_goes_away() {
    let cp = ControlPlane::start().await;
    let _scheduler = cp.start_component("scheduler", "scheduler", &[]);
    let _cm = cp.start_component("controller-manager", "controller-manager", &[]);
    let mut kubelets = Vec::new();
    for i in 1..=2 {
        let root = cp.dir.path().join(format!("node-{i}"));
        kubelets.push(cp.start_component(
            "kubelet-lite",
            &format!("kubelet-{i}"),
            &[
                "--node-name".into(),
                format!("worker-{i}"),
                "--port".into(),
                free_port().to_string(),
                "--root-dir".into(),
                root.display().to_string(),
                "--pod-cidr".into(),
                format!("127.{}.0.0/16", 40 + i),
                "--restart-backoff".into(),
                "1".into(),
            ],
        ));
    }
    let client = cp.client();

    let (code, out, err) = run_cli(
        "kubectl-lite",
        &["--server", &cp.server, "apply", "-f", &blog_manifest()],
        &[],
        None,
    );
    assert_eq!(code, 0, "apply failed: {out}{err}");
    assert!(
        out.contains("configmap/blog-config created")
            && out.contains("deployment.apps/blog created"),
        "{out}"
    );

    // Three pods Running on the workers, each a real process serving the blog.
    let pods = wait_running(&client, 3, "3 blog pods Running").await;
    for p in &pods {
        assert!(
            p.spec.node_name.starts_with("worker-"),
            "{} on {:?}",
            p.metadata.name,
            p.spec.node_name
        );
        wait_serving(p).await;
    }
    let (code, out, _) = run_cli(
        "kubectl-lite",
        &["--server", &cp.server, "get", "pods"],
        &[],
        None,
    );
    assert_eq!(code, 0);
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("blog-") && l.contains("Running"))
            .count(),
        3,
        "{out}"
    );

    // Deleting one pod gets it replaced.
    let victim = pods[0].metadata.name.clone();
    let (code, out, err) = run_cli(
        "kubectl-lite",
        &["--server", &cp.server, "delete", "pod", &victim],
        &[],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let pods = wait_for(
        "a replacement for the deleted pod",
        DEFAULT_TIMEOUT,
        || async {
            let pods = wait_running(&client, 3, "3 blog pods Running").await;
            pods.iter()
                .all(|p| p.metadata.name != victim)
                .then_some(pods)
        },
    )
    .await;
    for p in &pods {
        wait_serving(p).await;
    }

    // Killing one pod's process gets it restarted in place.
    let target = pods[1].clone();
    let pid = wait_for("the pod's server process", SHORT, || async {
        server_pid(&pod_ip(&target))
    })
    .await;
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill");
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    wait_for(
        "the killed container to restart",
        DEFAULT_TIMEOUT,
        || async {
            let p = api.get(&target.metadata.name).await.ok()?;
            (restart_count(&p) >= 1 && p.phase() == "Running").then_some(())
        },
    )
    .await;
    wait_serving(&target).await;
    let new_pid = server_pid(&pod_ip(&target)).expect("restarted process");
    assert_ne!(new_pid, pid);

    // Deleting the Deployment stops every process.
    let ips: Vec<String> = pods.iter().map(pod_ip).collect();
    let (code, out, err) = run_cli(
        "kubectl-lite",
        &["--server", &cp.server, "delete", "deployment", "blog"],
        &[],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    wait_for("every blog pod gone", DEFAULT_TIMEOUT, || async {
        let api: Api<Pod> = Api::namespaced(client.clone(), "default");
        let left = api
            .list(&client::ListParams::default().labels("app=blog"))
            .await
            .ok()?;
        left.items.is_empty().then_some(())
    })
    .await;
    wait_for("every blog process gone", DEFAULT_TIMEOUT, || async {
        serving_pids(&ips).is_empty().then_some(())
    })
    .await;

    for mut k in kubelets {
        assert!(
            k.stop(),
            "kubelet-lite did not stop on SIGTERM:\n{}",
            k.log_tail(20)
        );
    }
}
