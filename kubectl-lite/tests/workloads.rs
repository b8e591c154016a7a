//! kubectl-lite against a whole cluster (`kube-lite up --nodes 2`: API server, scheduler,
//! controllers and two kubelets running pods as processes), so Deployments really roll out and
//! containers really write logs: apply --wait, get, describe, logs, exec, set image, rollout
//! status|history|undo|restart|pause|resume, scale, wait, cordon, uncordon, drain, delete;
//! expose, and the Service's slices, Endpoints and describe page.
//!
//! One cluster for the whole story (starting one is the slow part); each step polls with a
//! deadline, never a bare sleep.

use std::io::BufRead;
use std::path::PathBuf;

use testkit::{DEFAULT_TIMEOUT, Proc, free_port, wait_for};

struct Cluster {
    _up: Proc,
    dir: tempfile::TempDir,
    kubeconfig: String,
}

impl Cluster {
    async fn up() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let up = Proc::start(
            "kube-lite",
            "kube-lite-up",
            &[
                "up".into(),
                "--data-dir".into(),
                dir.path().join("cluster").display().to_string(),
                "--api-port".into(),
                port.to_string(),
                "--nodes".into(),
                "2".into(),
            ],
            dir.path(),
            &[],
        );
        let readyz = format!("http://127.0.0.1:{port}/readyz");
        wait_for("kube-lite up to serve", DEFAULT_TIMEOUT, || {
            testkit::http_get(&readyz)
        })
        .await;
        let kubeconfig = dir.path().join("cluster").join("kubeconfig");
        wait_for("the kubeconfig", DEFAULT_TIMEOUT, || async {
            kubeconfig.exists().then_some(())
        })
        .await;
        Cluster {
            _up: up,
            kubeconfig: kubeconfig.display().to_string(),
            dir,
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("KUBECONFIG", self.kubeconfig.clone()),
            ("HOME", self.dir.path().display().to_string()),
        ]
    }

    fn kubectl(&self, args: &[&str]) -> (i32, String, String) {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        testkit::run_cli("kubectl-lite", args, &env, None)
    }

    /// Run until it succeeds; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.kubectl(args);
        assert_eq!(code, 0, "kubectl-lite {args:?} failed:\n{out}{err}");
        out
    }

    /// Poll a command until its stdout satisfies `f`.
    async fn until(&self, what: &str, args: &[&str], f: impl Fn(&str) -> bool) -> String {
        wait_for(what, DEFAULT_TIMEOUT, || async {
            let (code, out, _) = self.kubectl(args);
            (code == 0 && f(&out)).then_some(out)
        })
        .await
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p: PathBuf = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write manifest");
        p.display().to_string()
    }

    fn spawn(&self, args: &[&str]) -> std::process::Child {
        let mut cmd = std::process::Command::new(testkit::bin("kubectl-lite"));
        cmd.args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd.spawn().expect("spawn kubectl-lite")
    }
}

/// A Deployment whose containers say hello, then tick every second.
fn web(image: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: {image}
        command: ["/bin/sh", "-c"]
        args:
        - 'echo hello from $HOSTNAME; i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done'
        resources:
          requests: {{cpu: 50m, memory: 16Mi}}
"#
    )
}

/// The names of the pods matching `app=web` that are Running (and not terminating).
fn running_pods(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains(" Running "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

fn last_line(s: &str) -> &str {
    s.trim_end().lines().last().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_roll_log_scale_and_drain() {
    let c = Cluster::up().await;

    // Two nodes come up Ready.
    c.until("2 Ready nodes", &["get", "nodes", "--no-headers"], |o| {
        o.lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("Ready"))
            .count()
            == 2
    })
    .await;

    // apply --wait: created, then live rollout progress until done.
    let f = c.write("web.yaml", &web("busybox:1", 2));
    let (code, out, err) = c.kubectl(&["apply", "-f", &f, "--wait", "--timeout=120s"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("deployment.apps/web created\nWaiting for deployment"),
        "{out}"
    );
    assert_eq!(
        last_line(&out),
        "deployment \"web\" successfully rolled out"
    );

    // get: READY, STATUS, RESTARTS, AGE; -o wide adds the IP and the node.
    let pods = c
        .until(
            "2 web pods Running",
            &["get", "pods", "-l", "app=web"],
            |o| running_pods(o).len() == 2,
        )
        .await;
    assert!(pods.starts_with("NAME "), "{pods}");
    assert!(
        pods.lines()
            .nth(1)
            .is_some_and(|l| l.contains("   1/1     Running   0          ")),
        "{pods}"
    );
    let wide = c.ok(&["get", "pods", "-o", "wide", "-l", "app=web"]);
    assert!(
        wide.lines()
            .next()
            .is_some_and(|h| h.contains(" IP ") && h.contains(" NODE ")),
        "{wide}"
    );
    assert!(wide.contains("127.1"), "{wide}");
    let pod = running_pods(&pods)[0].clone();
    // Short names, several kinds, field selectors.
    let out = c.ok(&["get", "no,ns"]);
    assert!(
        out.contains("node/worker-1") && out.contains("namespace/kube-system"),
        "{out}"
    );
    let out = c.ok(&["get", "rs", "-l", "app=web", "--no-headers"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    // (Events are recorded asynchronously.)
    let out = c
        .until(
            "Scheduled events",
            &[
                "get",
                "ev",
                "--field-selector",
                "reason=Scheduled",
                "-o",
                "name",
            ],
            |o| o.lines().count() >= 2,
        )
        .await;
    assert!(out.starts_with("event/"), "{out}");
    let node_of_pod = c.ok(&["get", "pod", &pod, "-o", "jsonpath={.spec.nodeName}"]);
    let out = c.ok(&[
        "get",
        "po",
        "--field-selector",
        &format!("spec.nodeName={node_of_pod}"),
        "-o",
        "name",
    ]);
    assert!(out.contains(&format!("pod/{pod}\n")), "{out}");
    let all = c.ok(&["get", "all"]);
    assert!(
        all.contains("pod/web-")
            && all.contains("replicaset.apps/web-")
            && all.contains("deployment.apps/web"),
        "{all}"
    );

    // expose: a Service selecting the Deployment's pods, its slices, Endpoints and describe.
    let out = c.ok(&[
        "expose",
        "deployment",
        "web",
        "--port",
        "80",
        "--target-port",
        "8000",
    ]);
    assert_eq!(out, "service/web exposed\n");
    let svc = c.ok(&["get", "svc", "web"]);
    let header: Vec<&str> = svc
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ],
        "{svc}"
    );
    let row: Vec<&str> = svc
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        (row[1], row[3], row[4]),
        ("ClusterIP", "<none>", "80/TCP"),
        "{svc}"
    );
    // kube-lite up (process runtime) gives loopback ClusterIPs, which its user-space proxy serves.
    assert!(row[2].starts_with("127.96."), "{svc}");
    let wide = c.ok(&["get", "svc", "web", "-o", "wide"]);
    assert!(
        wide.lines().nth(1).is_some_and(|l| l.ends_with("app=web")),
        "{wide}"
    );
    let slices = c
        .until(
            "a slice with both pods",
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
            ],
            |o| {
                o.lines()
                    .nth(1)
                    .is_some_and(|l| l.matches("127.").count() == 2)
            },
        )
        .await;
    assert!(slices.starts_with("NAME "), "{slices}");
    assert!(
        slices.contains(" IPv4 ") && slices.contains(" 8000 "),
        "{slices}"
    );
    let eps = c
        .until(
            "Endpoints with both pods",
            &["get", "endpoints", "web"],
            |o| o.matches(":8000").count() == 2,
        )
        .await;
    assert!(eps.starts_with("NAME "), "{eps}");
    let three = c.ok(&["get", "svc,endpointslices,endpoints", "-l", "app=web"]);
    assert!(
        three.contains("service/web") && three.contains("endpoints/web"),
        "{three}"
    );
    let described = c.ok(&["describe", "svc", "web"]);
    for want in [
        "Selector:                 app=web",
        "Type:                     ClusterIP",
        "TargetPort:               8000/TCP",
        "Session Affinity:         None",
    ] {
        assert!(described.contains(want), "{want:?} in\n{described}");
    }
    let endpoints_line = described
        .lines()
        .find(|l| l.starts_with("Endpoints:"))
        .unwrap_or_default();
    assert_eq!(endpoints_line.matches(":8000").count(), 2, "{described}");
    assert!(c.ok(&["get", "all"]).contains("service/web"));

    // logs: of a Deployment (one of its pods), --tail, -c, --timestamps, -f.
    c.until("hello in the log", &["logs", "deploy/web"], |o| {
        o.starts_with("hello from web-")
    })
    .await;
    let (code, _, err) = c.kubectl(&["logs", "deploy/web"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.starts_with("Found 2 pods, using pod/web-"), "{err}");
    let out = c
        .until("a tick in the log", &["logs", &pod, "--tail=1"], |o| {
            o.starts_with("tick ")
        })
        .await;
    assert_eq!(out.lines().count(), 1, "{out}");
    let out = c.ok(&["logs", &pod, "-c", "web", "--timestamps", "--tail=1"]);
    assert!(out.starts_with("20") && out.contains("Z tick "), "{out}");
    let mut follower = c.spawn(&["logs", "-f", &pod, "--tail=1"]);
    let mut lines = std::io::BufReader::new(follower.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
    let second = lines.next().and_then(|l| l.ok()).unwrap_or_default();
    let n = |l: &str| l.strip_prefix("tick ").and_then(|n| n.parse::<u64>().ok());
    assert!(
        n(&second) > n(&first),
        "{first:?} then {second:?}: new lines arrive as they are written"
    );
    let _ = follower.kill();
    let _ = follower.wait();

    // exec: stdout and stderr apart, the remote exit code as ours, stdin to EOF, TYPE/NAME.
    let (code, out, err) = c.kubectl(&[
        "exec",
        &pod,
        "--",
        "sh",
        "-c",
        "echo \"out $HOSTNAME\"; echo err >&2; exit 3",
    ]);
    assert_eq!(code, 3, "{out}{err}");
    assert_eq!(out, format!("out {pod}\n"));
    assert_eq!(err, "err\ncommand terminated with exit code 3\n");
    let env = c.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let input = "piped in\nand a second line ✓\n";
    let (code, out, err) = testkit::run_cli(
        "kubectl-lite",
        &["exec", "-i", &pod, "--", "cat"],
        &env,
        Some(input),
    );
    assert_eq!((code, out.as_str(), err.as_str()), (0, input, ""));
    let (code, out, err) = c.kubectl(&[
        "exec",
        "deploy/web",
        "-c",
        "web",
        "--",
        "printenv",
        "HOSTNAME",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("web-"), "{out}");
    assert!(err.starts_with("Found 2 pods, using pod/web-"), "{err}");
    // -t without a terminal: kubectl's warning, then no TTY.
    let (code, out, err) = testkit::run_cli(
        "kubectl-lite",
        &["exec", "-it", &pod, "--", "sh", "-c", "tty || true"],
        &env,
        Some(""),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "not a tty\n");
    assert_eq!(
        err,
        "Unable to use a TTY - input is not a terminal or the right kind of file\n"
    );
    // Errors, worded as kubectl's.
    let (code, _, err) = c.kubectl(&["exec", &pod, "-c", "nope", "--", "true"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!("Error from server (BadRequest): container nope is not valid for pod {pod}\n")
    );
    let (code, _, err) = c.kubectl(&["exec", &pod, "--", "no-such-command"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: Internal error occurred: error executing command in container: exec: \"no-such-command\": executable file not found in $PATH\n"
    );
    let (code, _, err) = c.kubectl(&["exec", "ghost", "--", "true"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Error from server (NotFound): pods \"ghost\" not found\n"
    );
    let (code, _, err) = c.kubectl(&["exec", &pod]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: you must specify at least one command for the container\n"
    );

    // describe: the Deployment with its ReplicaSet and events, a pod, a node.
    let d = c
        .until(
            "the Deployment's events",
            &["describe", "deployment", "web"],
            |o| o.contains("ScalingReplicaSet"),
        )
        .await;
    assert!(d.contains("\nReplicas:               2 desired | 2 updated | 2 total | 2 available | 0 unavailable\n"), "{d}");
    assert!(d.contains("\nNewReplicaSet:   web-"), "{d}");
    assert!(d.contains("ScalingReplicaSet"), "{d}");
    let p = c
        .until("the pod's events", &["describe", "pod", &pod], |o| {
            o.contains("Scheduled")
        })
        .await;
    assert!(p.contains(&format!("Name:         {pod}\n")), "{p}");
    assert!(p.contains("\nStatus:       Running\n"), "{p}");
    assert!(p.contains("Controlled By:  ReplicaSet/web-"), "{p}");
    assert!(p.contains("\nEvents:\n  Type    Reason"), "{p}");
    assert!(p.contains("Scheduled"), "{p}");
    let node = c.ok(&["describe", "node", "worker-1"]);
    assert!(node.starts_with("Name:               worker-1\n"), "{node}");
    assert!(node.contains("\nNon-terminated Pods:"), "{node}");
    assert!(node.contains("\nAllocated resources:\n"), "{node}");
    assert!(node.contains("\n  cpu                "), "{node}");

    // set image starts a rollout; rollout status follows it to the end.
    let out = c.ok(&["set", "image", "deploy/web", "web=busybox:2"]);
    assert_eq!(out, "deployment.apps/web image updated\n");
    let out = c.ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    assert_eq!(
        last_line(&out),
        "deployment \"web\" successfully rolled out",
        "{out}"
    );
    let history = c.ok(&["rollout", "history", "deployment/web"]);
    assert_eq!(
        history,
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\n"
    );
    let one = c.ok(&["rollout", "history", "deploy/web", "--revision=1"]);
    assert!(
        one.starts_with("deployment.apps/web with revision #1\nPod Template:\n"),
        "{one}"
    );
    assert!(one.contains("    Image:      busybox:1\n"), "{one}");

    // undo goes back to revision 1's template (as revision 3).
    let out = c.ok(&["rollout", "undo", "deploy/web"]);
    assert_eq!(out, "deployment.apps/web rolled back\n");
    c.ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    let image = c.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "busybox:1");
    let (code, _, err) = c.kubectl(&["rollout", "undo", "deploy/web", "--to-revision=99"]);
    assert_eq!(code, 1);
    // kubectl warns that apply's annotation is left as it was, then says what went wrong.
    assert!(err.starts_with("Warning: resource deployments.apps/web was previously managed with 'kubectl-lite apply'."), "{err}");
    assert!(
        err.ends_with("\nerror: unable to find specified revision 99 in history\n"),
        "{err}"
    );
    let history = c.ok(&["rollout", "history", "deploy/web"]);
    assert!(
        history.ends_with("2         <none>\n3         <none>\n\n"),
        "{history}"
    );

    // restart rolls the same template out again; pause and resume.
    let out = c.ok(&["rollout", "restart", "deploy/web"]);
    assert_eq!(out, "deployment.apps/web restarted\n");
    c.ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    let restarted = c.ok(&[
        "get",
        "deploy/web",
        "-o",
        "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
    ]);
    assert!(restarted.starts_with("20"), "{restarted}");
    assert_eq!(
        c.ok(&["rollout", "pause", "deploy/web"]),
        "deployment.apps/web paused\n"
    );
    let (code, _, err) = c.kubectl(&["rollout", "pause", "deploy/web"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: deployments.apps \"web\" is already paused\n")
    );
    let (code, _, err) = c.kubectl(&["rollout", "restart", "deploy/web"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "error: deployments.apps \"web\" can't restart paused deployment (run rollout resume first)\n"
        )
    );
    assert_eq!(
        c.ok(&["rollout", "resume", "deploy/web"]),
        "deployment.apps/web resumed\n"
    );

    // scale through the scale subresource, then wait for it.
    assert_eq!(
        c.ok(&["scale", "deploy/web", "--replicas=3"]),
        "deployment.apps/web scaled\n"
    );
    let out = c.ok(&[
        "wait",
        "deploy/web",
        "--for=jsonpath={.status.readyReplicas}=3",
        "--timeout=120s",
    ]);
    assert_eq!(out, "deployment.apps/web condition met\n");
    let out = c.ok(&[
        "wait",
        "--for=condition=Available",
        "deployment",
        "web",
        "--timeout=120s",
    ]);
    assert_eq!(out, "deployment.apps/web condition met\n");
    let (code, _, err) = c.kubectl(&[
        "scale",
        "deploy/web",
        "--current-replicas=1",
        "--replicas=2",
    ]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: Expected replicas to be 1, was 3\n")
    );

    // A crashing container: STATUS shows why, RESTARTS counts, --previous shows the last run.
    let crash = c.write(
        "crash.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: crash}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox\n    command: [/bin/sh, -c, 'echo attempt; exit 1']\n",
    );
    c.ok(&["apply", "-f", &crash]);
    let row = c
        .until(
            "crash to restart",
            &["get", "pod", "crash", "--no-headers"],
            |o| {
                let cols: Vec<&str> = o.split_whitespace().collect();
                cols.get(3)
                    .and_then(|r| r.parse::<u32>().ok())
                    .is_some_and(|r| r >= 1)
            },
        )
        .await;
    let status = row
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string();
    assert!(
        ["CrashLoopBackOff", "Error", "Running", "Completed"].contains(&status.as_str()),
        "{row}"
    );
    let prev = c
        .until("the previous log", &["logs", "crash", "--previous"], |o| {
            o == "attempt\n"
        })
        .await;
    assert_eq!(prev, "attempt\n");

    // cordon/uncordon.
    assert_eq!(c.ok(&["cordon", "worker-1"]), "node/worker-1 cordoned\n");
    assert_eq!(
        c.ok(&["cordon", "worker-1"]),
        "node/worker-1 already cordoned\n"
    );
    let nodes = c.ok(&["get", "nodes"]);
    assert!(nodes.contains("Ready,SchedulingDisabled"), "{nodes}");
    assert_eq!(
        c.ok(&["uncordon", "worker-1"]),
        "node/worker-1 uncordoned\n"
    );

    // drain: refused while a pod without a controller is on the node; --force evicts it all.
    let bare = c.write(
        "bare.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bare}\nspec:\n  nodeName: worker-1\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, '3600']\n",
    );
    c.ok(&["apply", "-f", &bare]);
    c.until(
        "bare to run",
        &["get", "pod", "bare", "--no-headers"],
        |o| o.contains(" Running "),
    )
    .await;
    let (code, out, err) = c.kubectl(&["drain", "worker-1", "--ignore-daemonsets"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(out, "node/worker-1 cordoned\n");
    assert!(
        err.starts_with("error: unable to drain node \"worker-1\" due to error: cannot delete Pods that declare no controller (use --force to override): default/bare"),
        "{err}"
    );
    assert!(
        err.contains("There are pending nodes to be drained:\n worker-1\n"),
        "{err}"
    );
    let (code, out, err) = c.kubectl(&[
        "drain",
        "worker-1",
        "--ignore-daemonsets",
        "--force",
        "--timeout=120s",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("node/worker-1 already cordoned\n"), "{out}");
    assert!(
        out.contains("evicting pod default/bare\n") || out.contains("pod/bare deleted\n"),
        "{out}"
    );
    assert!(
        out.contains("pod/bare evicted\n") || out.contains("pod/bare deleted\n"),
        "{out}"
    );
    assert_eq!(last_line(&out), "node/worker-1 drained");
    assert!(
        err.contains("Warning: deleting Pods that declare no controller: default/bare"),
        "{err}"
    );
    let wide = c
        .until(
            "3 web pods, none on worker-1",
            &["get", "pods", "-l", "app=web", "-o", "wide"],
            |o| running_pods(o).len() == 3 && !o.contains("worker-1"),
        )
        .await;
    assert!(wide.contains("worker-2"), "{wide}");
    assert_eq!(
        c.ok(&["uncordon", "worker-1"]),
        "node/worker-1 uncordoned\n"
    );

    // delete waits for the Deployment to be gone.
    let out = c.ok(&["delete", "deploy", "web", "--timeout=120s"]);
    assert_eq!(
        out,
        "deployment.apps \"web\" deleted from default namespace\n"
    );
    let (code, _, err) = c.kubectl(&["get", "deploy", "web"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error from server (NotFound): deployments.apps \"web\" not found\n"
        )
    );
}
