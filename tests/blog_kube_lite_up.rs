//! The walking skeleton through `kube-lite up`: one process runs the cluster; the blog runs and
//! heals; Ctrl-C (SIGTERM) stops every pod process; starting again resumes the same cluster.

mod common;

use common::*;
use testkit::{DEFAULT_TIMEOUT, Proc, free_port, run_cli, wait_for};

fn up(dir: &std::path::Path, port: u16) -> Proc {
    Proc::start(
        "kube-lite",
        "kube-lite-up",
        &[
            "up".into(),
            "--data-dir".into(),
            dir.join("cluster").display().to_string(),
            "--api-port".into(),
            port.to_string(),
            "--nodes".into(),
            "2".into(),
        ],
        dir,
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_the_blog_and_resumes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = format!("http://127.0.0.1:{port}");
    let mut cluster = up(dir.path(), port);
    let readyz = format!("{server}/readyz");
    wait_for("kube-lite up to serve", DEFAULT_TIMEOUT, || {
        testkit::http_get(&readyz)
    })
    .await;
    let kubeconfig = dir.path().join("cluster").join("kubeconfig");
    wait_for("the kubeconfig", DEFAULT_TIMEOUT, || async {
        kubeconfig.exists().then_some(())
    })
    .await;
    let kc = kubeconfig.display().to_string();
    let client = client::Client::new(&server, "e2e").unwrap();

    // kubectl-lite finds the cluster through the kubeconfig kube-lite wrote.
    let (code, out, err) = run_cli(
        "kubectl-lite",
        &["apply", "-f", &blog_manifest()],
        &[("KUBECONFIG", &kc)],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let pods = wait_running(&client, 3, "3 blog pods Running").await;
    for p in &pods {
        wait_serving(p).await;
    }
    let (code, out, _) = run_cli(
        "kubectl-lite",
        &["--kubeconfig", &kc, "get", "pods"],
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

    // A Service: its ClusterIP is a loopback address the user-space proxy listens on, so the
    // user's own shell reaches the blog right after `expose`.
    let (code, out, err) = run_cli(
        "kubectl-lite",
        &[
            "--kubeconfig",
            &kc,
            "expose",
            "deployment",
            "blog",
            "--port",
            "8080",
            "--target-port",
            "8000",
        ],
        &[],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let svcs: client::Api<api::Service> = client::Api::namespaced(client.clone(), "default");
    let vip = svcs.get("blog").await.expect("service").spec.cluster_ip;
    assert!(vip.starts_with("127.96."), "{vip}");
    let url = format!("http://{vip}:8080/");
    let served_by = std::sync::Mutex::new(std::collections::BTreeSet::new());
    wait_for(
        "the blog through its ClusterIP, from every replica",
        DEFAULT_TIMEOUT,
        || async {
            let body = testkit::http_get(&url).await?;
            let name = pods.iter().find(|p| body.contains(&p.metadata.name))?;
            let mut seen = served_by.lock().expect("lock");
            seen.insert(name.metadata.name.clone());
            (seen.len() == 3).then_some(())
        },
    )
    .await;

    // Ctrl-C stops the cluster and every pod process with it.
    let ips: Vec<String> = pods.iter().map(pod_ip).collect();
    assert!(!serving_pids(&ips).is_empty());
    assert!(
        cluster.stop_within(std::time::Duration::from_secs(60)),
        "kube-lite did not stop:\n{}",
        cluster.log_tail(30)
    );
    assert!(
        serving_pids(&ips).is_empty(),
        "pod processes survived the cluster"
    );

    // Starting again resumes the same cluster: same objects, pods running again.
    let _cluster = up(dir.path(), port);
    wait_for("kube-lite up to serve again", DEFAULT_TIMEOUT, || {
        testkit::http_get(&readyz)
    })
    .await;
    let (code, out, err) = run_cli(
        "kubectl-lite",
        &[
            "--kubeconfig",
            &kc,
            "get",
            "deployment",
            "blog",
            "-o",
            "json",
        ],
        &[],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["metadata"]["name"], "blog");
    let (code, out, _) = run_cli(
        "kubectl-lite",
        &[
            "--kubeconfig",
            &kc,
            "get",
            "configmap",
            "blog-config",
            "-o",
            "name",
        ],
        &[],
        None,
    );
    assert_eq!((code, out.trim()), (0, "configmap/blog-config"));
    let pods = wait_running(&client, 3, "3 blog pods Running after the restart").await;
    for p in &pods {
        wait_serving(p).await;
    }
}

/// `--api-port 0` picks a free port, and the kubeconfig and every component use the port bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_port_0_serves_on_a_free_port_named_in_the_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let _cluster = up(dir.path(), 0);
    let kubeconfig = dir.path().join("cluster").join("kubeconfig");
    wait_for("the kubeconfig", DEFAULT_TIMEOUT, || async {
        kubeconfig.exists().then_some(())
    })
    .await;
    let server = client::config::Kubeconfig::load(&kubeconfig)
        .unwrap()
        .target(None)
        .unwrap()
        .server;
    assert!(!server.ends_with(":0"), "{server}");
    let kc = kubeconfig.display().to_string();
    // The nodes register through the same URL.
    wait_for(
        "both nodes listed through the kubeconfig",
        DEFAULT_TIMEOUT,
        || async {
            let (code, out, _) = run_cli(
                "kubectl-lite",
                &["--kubeconfig", &kc, "get", "nodes", "-o", "name"],
                &[],
                None,
            );
            (code == 0 && out.lines().count() == 2).then_some(())
        },
    )
    .await;
}
