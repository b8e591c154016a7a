//! The zero-downtime promise, measured: a client sends requests to a Service's ClusterIP in a
//! loop (a new connection each time, so every request is load-balanced by kube-proxy-lite's
//! rules) while `kubectl-lite set image` rolls the Deployment of `examples/cri/web-rollout.yaml`
//! to kube-lite/web:2 and `rollout undo` rolls it back: not one request fails, and every
//! answer comes from a pod that was Ready. Readiness probes, maxUnavailable 0, terminating
//! endpoints and a preStop sleep make it so.
//!
//! Needs root, containerd, runc, the CNI plugins and a static busybox; without them it prints
//! why and passes, unless `KUBE_LITE_REQUIRE_CRI=1` (CI) makes that a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::core::Pod;
use client::{Api, ListParams};
use testkit::{DEFAULT_TIMEOUT, run_cli, wait_for};

fn manifest() -> String {
    format!(
        "{}/examples/cri/web-rollout.yaml",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[derive(Default)]
struct Tally {
    ok: usize,
    failed: Vec<String>,
    /// Answers by pod name.
    by_pod: BTreeMap<String, usize>,
    versions: BTreeSet<String>,
}

fn kubectl(kc: &str, args: &[&str]) -> String {
    let mut all = vec!["--kubeconfig", kc];
    all.extend_from_slice(args);
    let (code, out, err) = run_cli("kubectl-lite", &all, &[], None);
    assert_eq!(code, 0, "kubectl-lite {args:?}: {out}{err}");
    out
}

/// Wait until every answer names `version` ("v1" or "v2").
async fn wait_version(tally: &Arc<Mutex<Tally>>, version: &str) {
    let from = tally.lock().map(|t| t.ok).unwrap_or(0);
    wait_for(
        &format!("only {version} answering"),
        DEFAULT_TIMEOUT,
        || async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let t = tally.lock().ok()?;
            // Fresh answers came and the last ones were all of this version.
            (t.ok > from + 20 && t.versions.len() == 1 && t.versions.contains(version))
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_and_rollback_without_a_failed_request() {
    if !testkit::cri::available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let up = testkit::up::KubeLiteUp::start(dir.path(), 2, &["--runtime", "cri"]).await;
    let client = up.client();
    let kc = up.kubeconfig();
    let mut cluster = up.proc;
    kubectl(&kc, &["apply", "-f", &manifest()]);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let svc = Api::<api::Service>::namespaced(client.clone(), "default")
        .get("web")
        .await
        .expect("service");
    let url = format!("http://{}/", svc.spec.cluster_ip);
    wait_for("the Service to answer", DEFAULT_TIMEOUT, || {
        testkit::http_get(&url)
    })
    .await;

    // Pods seen Ready, sampled while the test runs (a pod stays Ready until it is deleted).
    let ever_ready = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let sampler = {
        let (pods, ever_ready, stop) = (pods.clone(), ever_ready.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                if let Ok(l) = pods.list(&ListParams::default().labels("app=web")).await
                    && let Ok(mut r) = ever_ready.lock()
                {
                    for p in l.items.iter().filter(|p| p.is_ready()) {
                        r.insert(p.metadata.name.clone());
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // The clients: four loops, one request after another, each on a new connection.
    let tally = Arc::new(Mutex::new(Tally::default()));
    let recent = Arc::new(Mutex::new(std::collections::VecDeque::<String>::new()));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (tally, recent, stop, url) =
                (tally.clone(), recent.clone(), stop.clone(), url.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .no_proxy()
                    .pool_max_idle_per_host(0)
                    .timeout(Duration::from_secs(5))
                    .build()
                    .expect("http");
                while !stop.is_cancelled() {
                    let r = match http.get(&url).send().await {
                        Ok(r) if r.status().is_success() => {
                            r.text().await.map_err(|e| e.to_string())
                        }
                        Ok(r) => Err(format!("HTTP {}", r.status())),
                        Err(e) => Err(format!("{e:?}")),
                    };
                    {
                        let Ok(mut t) = tally.lock() else { break };
                        match r {
                            Ok(body) => {
                                t.ok += 1;
                                let body = body.trim();
                                let rest = body.trim_start_matches("Hello from ");
                                let (pod, version) = match rest.split_once(" (") {
                                    Some((p, v)) => {
                                        (p.to_string(), v.trim_end_matches(')').to_string())
                                    }
                                    None => (rest.to_string(), "v1".to_string()),
                                };
                                *t.by_pod.entry(pod).or_default() += 1;
                                // The versions among the last 20 answers.
                                if let Ok(mut q) = recent.lock() {
                                    q.push_back(version);
                                    if q.len() > 20 {
                                        q.pop_front();
                                    }
                                    t.versions = q.iter().cloned().collect();
                                }
                            }
                            Err(e) => t.failed.push(e),
                        }
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    wait_version(&tally, "v1").await;

    kubectl(
        &kc,
        &["set", "image", "deployment/web", "web=kube-lite/web:2"],
    );
    kubectl(&kc, &["rollout", "status", "deployment/web"]);
    wait_version(&tally, "v2").await;
    kubectl(&kc, &["rollout", "undo", "deployment/web"]);
    kubectl(&kc, &["rollout", "status", "deployment/web"]);
    wait_version(&tally, "v1").await;

    stop.cancel();
    for l in load {
        let _ = l.await;
    }
    let _ = sampler.await;
    let t = tally.lock().expect("tally");
    let ready = ever_ready.lock().expect("ready");
    let not_ready: Vec<&String> = t.by_pod.keys().filter(|p| !ready.contains(*p)).collect();
    eprintln!(
        "zero-downtime rollout (v1 → v2 → v1): {} requests, {} failed, answered by {} pods",
        t.ok + t.failed.len(),
        t.failed.len(),
        t.by_pod.len()
    );
    assert!(
        t.failed.is_empty(),
        "{} of {} requests failed: {:?}\n{}",
        t.failed.len(),
        t.ok + t.failed.len(),
        t.failed.iter().take(5).collect::<Vec<_>>(),
        cluster.log_tail(60)
    );
    assert!(t.ok >= 1000, "only {} requests", t.ok);
    // 3 v1 pods, 3 v2 pods, 3 v1 pods again.
    assert!(t.by_pod.len() >= 9, "{:?}", t.by_pod);
    assert!(
        not_ready.is_empty(),
        "answers from pods never Ready: {not_ready:?}"
    );
    drop(t);
    drop(ready);

    kubectl(&kc, &["delete", "-f", &manifest()]);
    assert!(
        cluster.stop_within(Duration::from_secs(60)),
        "kube-lite did not stop:\n{}",
        cluster.log_tail(30)
    );
}
