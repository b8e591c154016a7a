//! Two kubelets in one process, as `kube-lite up` runs them: `run` per node, no global state;
//! cancelling the token stops every pod process before `run` returns.

mod common;

use std::time::Duration;

use common::*;
use testkit::{ControlPlane, DEFAULT_TIMEOUT};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_in_one_process_stop_all_their_pods_on_cancel() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let token = CancellationToken::new();
    let mut runs = Vec::new();
    for (i, node) in ["inproc-1", "inproc-2"].iter().enumerate() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut config =
            kubelet_lite::Config::new(&cp.server, *node, listener, cp.dir.path().join(node));
        config.pod_cidr = format!("127.{}.0.0/16", 57 + i);
        config.restart_backoff_base = Duration::from_secs(1);
        config.heartbeat_interval = Duration::from_millis(500);
        runs.push(tokio::spawn(kubelet_lite::run(config, token.clone())));
        create_pod(&client, node, sh_pod(&format!("p{i}"), "exec sleep 3600")).await;
    }
    let mut pids = Vec::new();
    for i in 0..2 {
        let name = format!("p{i}");
        let p = wait_pod(&client, &name, "Running", running_with_ip).await;
        assert!(
            pod_ip(&p).starts_with(&format!("127.{}.", 57 + i)),
            "{}",
            pod_ip(&p)
        );
        pids.push(container_pid(&p, &name).expect("pid"));
    }
    token.cancel();
    for r in runs {
        tokio::time::timeout(DEFAULT_TIMEOUT, r)
            .await
            .expect("run returns after cancel")
            .expect("no panic")
            .expect("run succeeds");
    }
    for pid in pids {
        assert!(
            !testkit::pid_alive(pid),
            "pod process {pid} outlived its kubelet"
        );
    }
}
