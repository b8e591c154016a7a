//! kubectl-lite end to end: the real `kubectl-lite` binary against real `kvstore` and `apiserver`
//! processes on free loopback ports. The live objects are checked over plain HTTP, not through
//! kubectl-lite itself. (No scheduler or controllers run: objects just sit in the store.)

use std::path::PathBuf;

use serde_json::Value;
use testkit::ControlPlane;

/// A control plane, a kubeconfig pointing at it, and a directory for manifests.
struct Cluster {
    cp: ControlPlane,
    dir: tempfile::TempDir,
    kubeconfig: String,
}

impl Cluster {
    async fn start() -> Cluster {
        let cp = ControlPlane::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let config = client::config::Kubeconfig::single("kube-lite", &cp.server);
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, serde_yaml::to_string(&config).expect("yaml"))
            .expect("write kubeconfig");
        Cluster {
            cp,
            kubeconfig: path.display().to_string(),
            dir,
        }
    }

    /// Run kubectl-lite with the cluster's kubeconfig (and no ~/.kube of the machine's).
    fn kubectl(&self, args: &[&str]) -> (i32, String, String) {
        self.kubectl_stdin(args, None)
    }

    fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        let home = self.dir.path().display().to_string();
        testkit::run_cli(
            "kubectl-lite",
            args,
            &[
                ("KUBECONFIG", self.kubeconfig.as_str()),
                ("HOME", home.as_str()),
            ],
            stdin,
        )
    }

    /// Write a manifest file; returns its path.
    fn write(&self, name: &str, text: &str) -> String {
        let p: PathBuf = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write manifest");
        p.display().to_string()
    }

    /// The live object over plain HTTP; None when it does not exist.
    async fn live(&self, path: &str) -> Option<Value> {
        let body = testkit::http_get(&format!("{}{path}", self.cp.server)).await?;
        serde_json::from_str(&body).ok()
    }
}

const CM: &str = "/api/v1/namespaces/default/configmaps/blog-config";
const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments/blog";

fn blog(data: &str, labels: &str, replicas: u32, env: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: blog-config
  labels: {{{labels}}}
data: {{{data}}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: blog
  labels: {{app: blog}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: blog}}
  template:
    metadata:
      labels: {{app: blog}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
        env: [{env}]
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_creates_configures_and_prunes() {
    let c = Cluster::start().await;
    let v1 = blog(
        "title: Hello, theme: dark",
        "app: blog, tier: config",
        2,
        "{name: MODE, value: prod}, {name: DEBUG, value: '0'}",
    );
    let f = c.write("blog.yaml", &v1);

    let (code, out, err) = c.kubectl(&["apply", "-f", &f]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "configmap/blog-config created\ndeployment.apps/blog created\n"
    );
    let live = c.live(DEPLOY).await.expect("deployment created");
    let recorded =
        live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .expect("last-applied annotation");
    assert!(recorded.starts_with(r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{},"labels":{"app":"blog"},"name":"blog","namespace":"default"}"#), "{recorded}");

    // Same manifest again: nothing to do, nothing sent.
    let rv = live["metadata"]["resourceVersion"].clone();
    let (code, out, err) = c.kubectl(&["apply", "-f", &f]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "configmap/blog-config unchanged\ndeployment.apps/blog unchanged\n"
    );
    assert_eq!(
        c.live(DEPLOY).await.expect("deployment")["metadata"]["resourceVersion"],
        rv
    );

    // A changed field is configured; the deployment is untouched.
    let v2 = blog(
        "title: Hello again, theme: dark",
        "app: blog, tier: config",
        2,
        "{name: MODE, value: prod}, {name: DEBUG, value: '0'}",
    );
    let (code, out, err) = c.kubectl_stdin(&["apply", "-f", "-"], Some(&v2));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "configmap/blog-config configured\ndeployment.apps/blog unchanged\n"
    );
    assert_eq!(
        c.live(CM).await.expect("configmap")["data"]["title"],
        "Hello again"
    );

    // Fields removed from the manifest are removed from the live object; others change in place.
    let v3 = blog(
        "title: Hello again",
        "app: blog",
        3,
        "{name: MODE, value: staging}",
    );
    let f3 = c.write("blog.yaml", &v3);
    let (code, out, err) = c.kubectl(&["apply", "-f", &f3]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "configmap/blog-config configured\ndeployment.apps/blog configured\n"
    );
    let cm = c.live(CM).await.expect("configmap");
    assert!(cm["data"].get("theme").is_none(), "{cm}");
    assert!(cm["metadata"]["labels"].get("tier").is_none(), "{cm}");
    assert_eq!(cm["metadata"]["labels"]["app"], "blog");
    let d = c.live(DEPLOY).await.expect("deployment");
    assert_eq!(d["spec"]["replicas"], 3);
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["env"],
        serde_json::json!([{"name": "MODE", "value": "staging"}]),
        "{d}"
    );
    assert_eq!(container["ports"][0]["containerPort"], 80);

    // And applying that again is a no-op.
    let (code, out, _) = c.kubectl(&["apply", "-f", &f3]);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "configmap/blog-config unchanged\ndeployment.apps/blog unchanged\n"
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_takes_directories_and_lists() {
    let c = Cluster::start().await;
    std::fs::create_dir(c.dir.path().join("site")).expect("mkdir");
    c.write(
        "site/b.json",
        r#"{"apiVersion": "v1", "kind": "List", "items": [
             {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b1"}},
             {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b2"}}]}"#,
    );
    c.write(
        "site/a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
    );
    c.write("site/README.md", "not a manifest");
    let dir = c.dir.path().join("site").display().to_string();
    let (code, out, err) = c.kubectl(&["apply", "-f", &dir]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "configmap/a created\nconfigmap/b1 created\nconfigmap/b2 created\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn get_in_every_output_format() {
    let c = Cluster::start().await;
    let f = c.write("blog.yaml", &blog("a: '1', b: '2'", "app: blog", 2, ""));
    assert_eq!(c.kubectl(&["apply", "-f", &f]).0, 0);

    let (code, out, err) = c.kubectl(&["get", "deploy"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("NAME   READY   UP-TO-DATE   AVAILABLE   AGE"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("blog   0/2     0            0           "),
        "{out}"
    );

    let (_, out, _) = c.kubectl(&["get", "deployments.apps", "blog", "-o", "wide"]);
    assert!(
        out.starts_with("NAME   READY   UP-TO-DATE   AVAILABLE   AGE"),
        "{out}"
    );
    assert!(out.contains("CONTAINERS   IMAGES       SELECTOR"), "{out}");
    assert!(out.contains("web          nginx:1.27   app=blog"), "{out}");

    let (_, out, _) = c.kubectl(&["get", "cm/blog-config", "--show-labels"]);
    assert!(
        out.lines()
            .next()
            .is_some_and(|h| h.starts_with("NAME") && h.ends_with("LABELS")),
        "{out}"
    );
    assert!(
        out.contains("blog-config   2      ") && out.trim_end().ends_with("app=blog"),
        "{out}"
    );

    // Several kinds: names prefixed with the kind, tables separated by a blank line.
    let (_, out, _) = c.kubectl(&["get", "deploy,cm"]);
    assert!(out.contains("deployment.apps/blog"), "{out}");
    assert!(
        out.contains("\n\nNAME                    DATA   AGE\nconfigmap/blog-config   2"),
        "{out}"
    );

    // All namespaces: a NAMESPACE column.
    let (_, out, _) = c.kubectl(&["get", "cm", "-A", "-l", "app=blog"]);
    assert!(
        out.starts_with("NAMESPACE   NAME          DATA   AGE\ndefault     blog-config   2 "),
        "{out}"
    );
    let (_, out, _) = c.kubectl(&["get", "cm", "-l", "app=nope", "--no-headers"]);
    assert_eq!(out, "");

    let (code, out, _) = c.kubectl(&["get", "deploy", "blog", "-o", "yaml"]);
    assert_eq!(code, 0);
    let obj: Value = serde_yaml::from_str(&out).expect("yaml");
    assert_eq!(
        (obj["kind"].as_str(), obj["metadata"]["name"].as_str()),
        (Some("Deployment"), Some("blog"))
    );

    let (_, out, _) = c.kubectl(&["get", "cm", "-o", "json"]);
    let list: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(list["kind"], "List");
    assert_eq!(list["metadata"]["resourceVersion"], "");
    assert_eq!(list["items"][0]["kind"], "ConfigMap");
    assert_eq!(list["items"][0]["apiVersion"], "v1");
    assert!(
        out.starts_with("{\n    \"apiVersion\": \"v1\",\n    \"items\": ["),
        "{out}"
    );

    let (_, out, _) = c.kubectl(&["get", "deploy,cm", "-o", "name"]);
    assert_eq!(out, "deployment.apps/blog\nconfigmap/blog-config\n");

    // Nothing there: kubectl's note on stderr, success.
    let (code, out, err) = c.kubectl(&["get", "pods"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "", "No resources found in default namespace.\n")
    );
    let (code, _, err) = c.kubectl(&["get", "all", "-n", "kube-system"]);
    assert_eq!(
        (code, err.as_str()),
        (0, "No resources found in kube-system namespace.\n")
    );

    // Not found: the server's Status, exit 1.
    let (code, out, err) = c.kubectl(&["get", "deploy", "web"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        "Error from server (NotFound): deployments.apps \"web\" not found\n"
    );
    let (code, _, err) = c.kubectl(&["get", "deploy", "web", "-o", "json"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error from server (NotFound): deployments.apps \"web\" not found\n"
        )
    );
    let (code, _, err) = c.kubectl(&["get", "widgets"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "error: the server doesn't have a resource type \"widgets\"\n"
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_by_name_file_and_selector() {
    let c = Cluster::start().await;
    let f = c.write("blog.yaml", &blog("a: '1'", "app: blog", 1, ""));
    assert_eq!(c.kubectl(&["apply", "-f", &f]).0, 0);
    let extra = c.write(
        "extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x1, labels: {tier: cache}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x2, labels: {tier: cache}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\n",
    );
    assert_eq!(c.kubectl(&["apply", "-f", &extra]).0, 0);

    let (code, out, err) = c.kubectl(&["delete", "deploy", "blog"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "deployment.apps \"blog\" deleted from default namespace\n"
    );
    assert!(
        c.live(DEPLOY).await.is_none(),
        "--wait returns once it is gone"
    );

    let (code, out, err) = c.kubectl(&["delete", "-f", &f]);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "configmap \"blog-config\" deleted from default namespace\n"
    );
    assert_eq!(
        err,
        format!(
            "Error from server (NotFound): error when deleting \"{f}\": deployments.apps \"blog\" not found\n"
        )
    );
    assert!(c.live(CM).await.is_none());

    let (code, out, err) = c.kubectl(&["delete", "cm", "-l", "tier=cache"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "configmap \"x1\" deleted from default namespace\nconfigmap \"x2\" deleted from default namespace\n"
    );
    assert!(
        c.live("/api/v1/namespaces/default/configmaps/keep")
            .await
            .is_some()
    );
    let (code, out, _) = c.kubectl(&["delete", "cm", "-l", "tier=cache"]);
    assert_eq!((code, out.as_str()), (0, "No resources found\n"));

    let (code, _, err) = c.kubectl(&["delete", "cm/nope"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error from server (NotFound): configmaps \"nope\" not found\n"
        )
    );
    let (code, out, _) = c.kubectl(&["delete", "cm", "nope", "--ignore-not-found"]);
    assert_eq!((code, out.as_str()), (0, ""));
    let (code, out, err) = c.kubectl(&["delete", "cm/keep", "--wait=false", "-o", "name"]);
    assert_eq!((code, out.as_str()), (0, "configmap/keep\n"), "{err}");
    let (code, _, err) = c.kubectl(&["delete", "cm"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "error: resource(s) were provided, but no name was specified\n"
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_waits_while_a_pod_terminates() {
    use std::io::BufRead;

    let c = Cluster::start().await;
    let pod = c.write(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  nodeName: node-1\n  containers: [{name: c, image: busybox}]\n",
    );
    assert_eq!(c.kubectl(&["apply", "-f", &pod]).0, 0);
    const POD: &str = "/api/v1/namespaces/default/pods/p";

    // Bound to a node, the pod is deleted gracefully: it stays, terminating, until its kubelet
    // is done — and no kubelet runs here, so waiting times out.
    let (code, out, err) = c.kubectl(&["delete", "pod", "p", "--timeout=1s"]);
    assert_eq!(code, 1);
    assert_eq!(out, "pod \"p\" deleted from default namespace\n");
    assert_eq!(
        err,
        "error: timed out waiting for the condition on pods/p\n"
    );
    let live = c.live(POD).await.expect("a terminating pod is kept");
    assert!(live["metadata"]["deletionTimestamp"].is_string(), "{live}");

    // A waiting delete returns once the pod is really gone (here: force-deleted meanwhile).
    let mut waiter = std::process::Command::new(testkit::bin("kubectl-lite"))
        .args(["delete", "pod", "p"])
        .env("KUBECONFIG", &c.kubeconfig)
        .env("HOME", c.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn kubectl-lite");
    let mut stdout = std::io::BufReader::new(waiter.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("read");
    // The DELETE went through; now it waits.
    assert_eq!(first, "pod \"p\" deleted from default namespace\n");
    assert!(c.live(POD).await.is_some());
    let (code, out, err) = c.kubectl(&["delete", "pod", "p", "--grace-period=0", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "pod \"p\" force deleted from default namespace\n");
    assert!(
        err.starts_with("Warning: Immediate deletion does not wait"),
        "{err}"
    );
    let status = waiter.wait().expect("wait");
    assert!(status.success());
    assert!(c.live(POD).await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_manifests_write_nothing() {
    let c = Cluster::start().await;

    // Malformed YAML after a good document: one line, exit 1, nothing created.
    let f = c.write(
        "broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: blog-config}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [oops\n",
    );
    let (code, out, err) = c.kubectl(&["apply", "-f", &f]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.starts_with(&format!("error: error parsing {f}: ")),
        "{err}"
    );
    assert!(err.contains("line"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(c.live(CM).await.is_none());

    // An invalid name: the server's Invalid error, as kubectl words it; nothing created.
    let bad = c.write(
        "bad.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: Bad_Name}\nspec:\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: x}}\n    spec: {containers: [{name: web, image: nginx}]}\n",
    );
    let (code, out, err) = c.kubectl(&["apply", "-f", &bad]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.starts_with("The Deployment \"Bad_Name\" is invalid: "),
        "{err}"
    );
    assert!(
        err.contains("metadata.name: Invalid value: \"Bad_Name\""),
        "{err}"
    );
    assert!(
        c.live("/apis/apps/v1/namespaces/default/deployments/Bad_Name")
            .await
            .is_none()
    );
    let (_, out, _) = c.kubectl(&["get", "deploy", "-o", "name"]);
    assert_eq!(out, "");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_kinds_are_reported_and_the_rest_applied() {
    let c = Cluster::start().await;
    let f = c.write(
        "mixed.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: blog-config}\n",
    );
    let (code, out, err) = c.kubectl(&["apply", "-f", &f]);
    assert_eq!(code, 1);
    assert_eq!(out, "configmap/blog-config created\n");
    assert_eq!(
        err,
        format!(
            "error: resource mapping not found for name: \"w\" namespace: \"\" from \"{f}\": no matches for kind \"Widget\" in version \"example.com/v1\"\n"
        )
    );
    assert!(c.live(CM).await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn version_and_api_resources() {
    let c = Cluster::start().await;
    let (code, out, err) = c.kubectl(&["version"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("Client Version: v1.37.0-kube-lite."),
        "{out}"
    );
    assert!(out.contains("\nServer Version: v1."), "{out}");
    let (code, out, err) = c.kubectl(&["api-resources"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("NAME "), "{out}");
    let pods = out
        .lines()
        .find(|l| l.starts_with("pods "))
        .expect("pods row");
    assert_eq!(
        pods.split_whitespace().collect::<Vec<_>>(),
        ["pods", "po", "v1", "true", "Pod"]
    );
    assert!(!out.contains("pods/log"), "{out}");
    let (_, out, _) = c.kubectl(&["api-resources", "-o", "name", "--api-group", "apps"]);
    assert_eq!(out, "deployments.apps\nreplicasets.apps\n");
}

#[test]
fn a_server_that_is_not_there() {
    let port = testkit::free_port();
    let server = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().display().to_string();
    let (code, out, err) = testkit::run_cli(
        "kubectl-lite",
        &["get", "pods", "-s", &server],
        &[("HOME", home.as_str()), ("KUBECONFIG", "")],
        None,
    );
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        format!(
            "The connection to the server 127.0.0.1:{port} was refused - did you specify the right host or port?\n"
        )
    );
}
