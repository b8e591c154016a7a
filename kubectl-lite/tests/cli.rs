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
    /// Run a command that must fail with exit code 1 and exactly `stderr`.
    #[track_caller]
    fn fails(&self, args: &[&str], stderr: &str) {
        let (code, _, err) = self.kubectl(args);
        assert_eq!((code, err.as_str()), (1, stderr), "kubectl-lite {args:?}");
    }

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

    // Subdirectories only with -R, as kubectl.
    std::fs::create_dir(c.dir.path().join("site/more")).expect("mkdir");
    c.write(
        "site/more/c.yml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    );
    let (code, out, err) = c.kubectl(&["apply", "-f", &dir]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("configmap/c"), "{out}");
    let (code, out, err) = c.kubectl(&["apply", "-f", &dir, "-R"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("configmap/c created\n"), "{out}");
    assert!(out.contains("configmap/a unchanged\n"), "{out}");
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
    c.fails(
        &["get", "deploy", "web", "-o", "json"],
        "Error from server (NotFound): deployments.apps \"web\" not found\n",
    );
    c.fails(
        &["get", "widgets"],
        "error: the server doesn't have a resource type \"widgets\"\n",
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

    c.fails(
        &["delete", "cm/nope"],
        "Error from server (NotFound): configmaps \"nope\" not found\n",
    );
    let (code, out, _) = c.kubectl(&["delete", "cm", "nope", "--ignore-not-found"]);
    assert_eq!((code, out.as_str()), (0, ""));
    let (code, out, err) = c.kubectl(&["delete", "cm/keep", "--wait=false", "-o", "name"]);
    assert_eq!((code, out.as_str()), (0, "configmap/keep\n"), "{err}");
    c.fails(
        &["delete", "cm"],
        "error: resource(s) were provided, but no name was specified\n",
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

#[tokio::test(flavor = "multi_thread")]
async fn create_replace_label_and_annotate() {
    let c = Cluster::start().await;
    let f = c.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: site, labels: {app: blog}}\ndata: {a: '1', b: '2'}\n",
    );
    let (code, out, err) = c.kubectl(&["create", "-f", &f]);
    assert_eq!(
        (code, out.as_str()),
        (0, "configmap/site created\n"),
        "{err}"
    );
    // create is not apply: the second time it already exists.
    let (code, out, err) = c.kubectl(&["create", "-f", &f]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        format!(
            "Error from server (AlreadyExists): error when creating \"{f}\": configmaps \"site\" already exists\n"
        )
    );

    // replace: the object becomes the file, fields left out are gone.
    let f2 = c.write(
        "cm2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: site}\ndata: {a: '10'}\n",
    );
    let (code, out, err) = c.kubectl(&["replace", "-f", &f2]);
    assert_eq!(
        (code, out.as_str()),
        (0, "configmap/site replaced\n"),
        "{err}"
    );
    let cm = c
        .live("/api/v1/namespaces/default/configmaps/site")
        .await
        .expect("configmap");
    assert_eq!(cm["data"], serde_json::json!({"a": "10"}));
    assert!(cm["metadata"].get("labels").is_none(), "{cm}");
    let uid = cm["metadata"]["uid"].clone();
    let (code, out, err) = c.kubectl(&["replace", "--force", "-f", &f2]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "configmap \"site\" deleted\nconfigmap/site replaced\n");
    let cm = c
        .live("/api/v1/namespaces/default/configmaps/site")
        .await
        .expect("re-created");
    assert_ne!(cm["metadata"]["uid"], uid);

    // Generators.
    let dir = c.dir.path();
    std::fs::write(dir.join("app.conf"), "port=80\n").expect("write");
    std::fs::write(dir.join("app.env"), "# env\nMODE=prod\nLEVEL=3\n").expect("write");
    let conf = dir.join("app.conf").display().to_string();
    let env = dir.join("app.env").display().to_string();
    let (code, out, err) = c.kubectl(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=title=Hello",
        "--from-file",
        &conf,
        "--from-env-file",
        &env,
    ]);
    assert_eq!(
        (code, out.as_str()),
        (0, "configmap/settings created\n"),
        "{err}"
    );
    let cm = c
        .live("/api/v1/namespaces/default/configmaps/settings")
        .await
        .expect("configmap");
    assert_eq!(
        cm["data"],
        serde_json::json!({"title": "Hello", "app.conf": "port=80\n", "MODE": "prod", "LEVEL": "3"})
    );
    let (code, out, _) = c.kubectl(&[
        "create",
        "configmap",
        "dry",
        "--from-literal=a=b",
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("apiVersion: v1\ndata:\n  a: b\nkind: ConfigMap\n"),
        "{out}"
    );
    assert!(
        c.live("/api/v1/namespaces/default/configmaps/dry")
            .await
            .is_none()
    );
    c.fails(
        &["create", "configmap", "bad", "--from-literal=oops"],
        "error: invalid literal source oops, expected key=value\n",
    );
    let (code, out, err) = c.kubectl(&["create", "namespace", "team-a"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "namespace/team-a created\n"),
        "{err}"
    );
    let (code, out, err) = c.kubectl(&[
        "-n",
        "team-a",
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=2",
        "--",
        "sleep",
        "3600",
    ]);
    assert_eq!(
        (code, out.as_str()),
        (0, "deployment.apps/web created\n"),
        "{err}"
    );
    let d = c
        .live("/apis/apps/v1/namespaces/team-a/deployments/web")
        .await
        .expect("deployment");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["command"],
        serde_json::json!(["sleep", "3600"])
    );

    // label and annotate: set, refuse to overwrite, overwrite, remove, list.
    let (code, out, err) = c.kubectl(&["label", "cm", "settings", "tier=config", "team=blue"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "configmap/settings labeled\n"),
        "{err}"
    );
    c.fails(
        &["label", "cm/settings", "tier=other"],
        "error: 'tier' already has a value (config), and --overwrite is false\n",
    );
    let (code, out, err) =
        c.kubectl(&["label", "cm/settings", "tier=other", "team-", "--overwrite"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "configmap/settings modified\n"),
        "{err}"
    );
    let (_, out, _) = c.kubectl(&["label", "cm/settings", "tier=other"]);
    assert_eq!(out, "configmap/settings not labeled\n");
    let (code, out, _) = c.kubectl(&["label", "cm", "settings", "--list"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "Listing labels for ConfigMap./settings:\n tier=other\n")
    );
    let (code, out, err) = c.kubectl(&["annotate", "cm", "-l", "tier=other", "note=hello world"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "configmap/settings annotated\n"),
        "{err}"
    );
    let cm = c
        .live("/api/v1/namespaces/default/configmaps/settings")
        .await
        .expect("configmap");
    assert_eq!(
        cm["metadata"]["labels"],
        serde_json::json!({"tier": "other"})
    );
    assert_eq!(cm["metadata"]["annotations"]["note"], "hello world");
    c.fails(&["annotate", "cm", "settings", "note=changed"], "error: --overwrite is false but found the following declared annotation(s): 'note' already has a value (hello world)\n");
    c.fails(
        &["label", "cm", "nope", "a=b"],
        "Error from server (NotFound): configmaps \"nope\" not found\n",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn get_jsonpath_and_watch() {
    use std::io::BufRead;

    let c = Cluster::start().await;
    let f = c.write(
        "blog.yaml",
        &blog("a: '1'", "app: blog", 2, "{name: MODE, value: prod}"),
    );
    assert_eq!(c.kubectl(&["apply", "-f", &f]).0, 0);

    let (code, out, err) = c.kubectl(&["get", "deploy", "blog", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].env[?(@.name==\"MODE\")].value}"]);
    assert_eq!((code, out.as_str()), (0, "2 prod"), "{err}");
    let (_, out, _) = c.kubectl(&[
        "get",
        "cm,deploy",
        "-o",
        "jsonpath={range .items[*]}{.kind}/{.metadata.name}{\"\\n\"}{end}",
    ]);
    assert_eq!(out, "ConfigMap/blog-config\nDeployment/blog\n");
    c.fails(
        &["get", "cm", "-o", "jsonpath={.items[0]"],
        "error: error parsing jsonpath {.items[0], unclosed action\n",
    );

    // -w: the table, then a row per change, aligned with it.
    let mut watcher = std::process::Command::new(testkit::bin("kubectl-lite"))
        .args(["get", "cm", "-w"])
        .env("KUBECONFIG", &c.kubeconfig)
        .env("HOME", c.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn kubectl-lite");
    let mut lines = std::io::BufReader::new(watcher.stdout.take().expect("stdout")).lines();
    let mut next = || lines.next().and_then(|l| l.ok()).unwrap_or_default();
    assert!(next().starts_with("NAME          DATA   AGE"));
    assert!(next().starts_with("blog-config   1      "));
    let (code, _, err) = c.kubectl(&["create", "configmap", "later", "--from-literal=x=1"]);
    assert_eq!(code, 0, "{err}");
    let row = next();
    assert!(row.starts_with("later         1      "), "{row:?}");
    let _ = watcher.kill();
    let _ = watcher.wait();

    // -w -o name: one line per event.
    let mut watcher = std::process::Command::new(testkit::bin("kubectl-lite"))
        .args(["get", "cm", "later", "-w", "-o", "name"])
        .env("KUBECONFIG", &c.kubeconfig)
        .env("HOME", c.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn kubectl-lite");
    let mut lines = std::io::BufReader::new(watcher.stdout.take().expect("stdout")).lines();
    assert_eq!(
        lines.next().and_then(|l| l.ok()).as_deref(),
        Some("configmap/later")
    );
    assert_eq!(c.kubectl(&["label", "cm", "later", "x=y"]).0, 0);
    assert_eq!(
        lines.next().and_then(|l| l.ok()).as_deref(),
        Some("configmap/later")
    );
    let _ = watcher.kill();
    let _ = watcher.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_for_delete_and_jsonpath() {
    let c = Cluster::start().await;
    assert_eq!(
        c.kubectl(&["create", "configmap", "flag", "--from-literal=state=off"])
            .0,
        0
    );
    let (code, out, err) = c.kubectl(&["wait", "cm/flag", "--for=jsonpath={.data.state}=off"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "configmap/flag condition met\n"),
        "{err}"
    );
    let (code, _, err) = c.kubectl(&[
        "wait",
        "cm/flag",
        "--for=jsonpath={.data.state}=on",
        "--timeout=1s",
    ]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "error: timed out waiting for the condition on configmaps/flag\n"
        )
    );
    // A waiter that sees the change as it happens. Delete only once it watches: a waiter that
    // starts after the delete finds nothing to wait for (and rightly prints nothing).
    let metrics = format!("{}/metrics", c.cp.server);
    let watches = |text: &str| -> u64 {
        text.lines()
            .filter(|l| {
                l.starts_with("apiserver_request_total{")
                    && l.contains("resource=\"configmaps\"")
                    && l.contains("verb=\"WATCH\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let before = watches(&testkit::http_get(&metrics).await.expect("metrics"));
    let waiter = std::process::Command::new(testkit::bin("kubectl-lite"))
        .args(["wait", "cm/flag", "--for=delete", "--timeout=60s"])
        .env("KUBECONFIG", &c.kubeconfig)
        .env("HOME", c.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn kubectl-lite");
    testkit::wait_for("the waiter's watch", testkit::DEFAULT_TIMEOUT, || async {
        let text = testkit::http_get(&metrics).await?;
        (watches(&text) > before).then_some(())
    })
    .await;
    assert_eq!(c.kubectl(&["delete", "cm", "flag"]).0, 0);
    let out = waiter.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "configmap/flag condition met\n"
    );
    // Already gone: nothing to wait for.
    let (code, out, _) = c.kubectl(&["wait", "cm/flag", "--for=delete"]);
    assert_eq!((code, out.as_str()), (0, ""));
    let (code, _, err) = c.kubectl(&["wait", "cm", "--all", "--for=condition=Ready"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: no matching resources found\n")
    );
    let (code, _, err) = c.kubectl(&["wait", "cm/x", "--for=ready"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: unrecognized condition: \"ready\"\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn edit_patches_and_reopens_on_invalid() {
    let c = Cluster::start().await;
    let f = c.write("blog.yaml", &blog("title: Hello", "app: blog", 1, ""));
    assert_eq!(c.kubectl(&["apply", "-f", &f]).0, 0);
    // An "editor" that makes the replica count invalid the first time, and fixes it when the
    // file comes back with the server's complaint at the top.
    let editor = c.write(
        "editor.sh",
        "#!/bin/sh\nif grep -q 'was not valid' \"$1\"; then\n  grep -q '^# \\* spec.replicas' \"$1\" || exit 3\n  sed -i 's/replicas: -1/replicas: 2/' \"$1\"\nelse\n  sed -i 's/replicas: 1/replicas: -1/' \"$1\"\nfi\n",
    );
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let home = c.dir.path().display().to_string();
    let (code, out, err) = testkit::run_cli(
        "kubectl-lite",
        &["edit", "deployment/blog"],
        &[
            ("KUBECONFIG", c.kubeconfig.as_str()),
            ("HOME", home.as_str()),
            ("EDITOR", editor.as_str()),
        ],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "deployment.apps/blog edited\n");
    assert_eq!(err, "error: deployments.apps \"blog\" is invalid\n");
    let d = c.live(DEPLOY).await.expect("deployment");
    assert_eq!(d["spec"]["replicas"], 2);

    // An editor that changes nothing: nothing is sent.
    let (code, _, err) = testkit::run_cli(
        "kubectl-lite",
        &["edit", "cm", "blog-config"],
        &[
            ("KUBECONFIG", c.kubeconfig.as_str()),
            ("HOME", home.as_str()),
            ("EDITOR", "true"),
        ],
        None,
    );
    assert_eq!(
        (code, err.as_str()),
        (0, "Edit cancelled, no changes made.\n")
    );

    // An editor that keeps making it invalid: the second identical save gives up.
    let stubborn = c.write(
        "stubborn.sh",
        "#!/bin/sh\nsed -i 's/replicas: 2/replicas: -5/' \"$1\"\n",
    );
    std::fs::set_permissions(
        &stubborn,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let (code, _, err) = testkit::run_cli(
        "kubectl-lite",
        &["edit", "deploy", "blog"],
        &[
            ("KUBECONFIG", c.kubeconfig.as_str()),
            ("HOME", home.as_str()),
            ("KUBE_EDITOR", stubborn.as_str()),
            // The edits are kept in a file: keep it in the test's directory.
            ("TMPDIR", home.as_str()),
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(err.starts_with("error: deployments.apps \"blog\" is invalid\nA copy of your changes has been stored to \""), "{err}");
    assert!(
        err.ends_with("error: Edit cancelled, no valid changes were saved.\n"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_info_and_errors() {
    let c = Cluster::start().await;
    let (code, out, err) = c.kubectl(&["cluster-info"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "Kubernetes control plane is running at {}\n\nTo further debug and diagnose cluster problems, use 'kubectl-lite cluster-info dump'.\n",
            c.cp.server
        )
    );
    let (code, out, _) = c.kubectl(&["cluster-info", "dump"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("{\n    \"apiVersion\": \"v1\",\n    \"items\": ["),
        "{out}"
    );
    // Errors name what went wrong, as kubectl's do, and exit 1.
    let (code, _, err) = c.kubectl(&["describe", "pod", "nope"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "Error from server (NotFound): pods \"nope\" not found\n")
    );
    c.fails(&["scale", "deploy/nope"], "error: The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0\n");
    c.fails(
        &["rollout", "status", "cm/x"],
        "Error from server (NotFound): configmaps \"x\" not found\n",
    );
    let (code, _, err) = c.kubectl(&["logs"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: expected POD or TYPE/NAME is a required argument"),
        "{err}"
    );
    c.fails(&["get", "pods", "-o", "xml"], "error: unable to match a printer suitable for the output format \"xml\", allowed formats are: json,jsonpath,jsonpath-file,name,wide,yaml\n");
    let (code, _, err) = c.kubectl(&["frobnicate"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("unrecognized subcommand 'frobnicate'"),
        "{err}"
    );
}

/// Commands that need no cluster: config, completion, explain, version --client.
#[test]
fn offline_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().display().to_string();
    let kubeconfig = dir.path().join("config").display().to_string();
    let run = |args: &[&str]| {
        testkit::run_cli(
            "kubectl-lite",
            args,
            &[("HOME", home.as_str()), ("KUBECONFIG", kubeconfig.as_str())],
            None,
        )
    };
    // Building a kubeconfig from nothing, as a newcomer might.
    let (code, out, err) = run(&[
        "config",
        "set-cluster",
        "lab",
        "--server",
        "http://127.0.0.1:9",
    ]);
    assert_eq!((code, out.as_str()), (0, "Cluster \"lab\" set.\n"), "{err}");
    let (code, out, _) = run(&[
        "config",
        "set-context",
        "lab",
        "--cluster",
        "lab",
        "--user",
        "admin",
        "--namespace",
        "blog",
    ]);
    assert_eq!((code, out.as_str()), (0, "Context \"lab\" created.\n"));
    let (code, _, err) = run(&["config", "current-context"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: current-context is not set\n")
    );
    let (code, out, _) = run(&["config", "use-context", "lab"]);
    assert_eq!((code, out.as_str()), (0, "Switched to context \"lab\".\n"));
    let (code, out, _) = run(&[
        "config",
        "set-context",
        "--current",
        "--namespace",
        "team-a",
    ]);
    assert_eq!((code, out.as_str()), (0, "Context \"lab\" modified.\n"));
    let (_, out, _) = run(&["config", "get-contexts"]);
    assert_eq!(
        out,
        "CURRENT   NAME   CLUSTER   AUTHINFO   NAMESPACE\n*         lab    lab       admin      team-a\n"
    );
    let (_, out, _) = run(&[
        "config",
        "view",
        "-o",
        "jsonpath={.contexts[0].context.namespace}",
    ]);
    assert_eq!(out, "team-a");
    let (code, _, err) = run(&["config", "use-context", "nope"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: no context exists with the name: \"nope\"\n")
    );
    // The context is used: the server it names is not there.
    let (code, _, err) = run(&["get", "pods"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "The connection to the server 127.0.0.1:9 was refused - did you specify the right host or port?\n"
        )
    );

    // --context picks another context of the file.
    let (code, _, err) = run(&["get", "pods", "--context", "nope"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "error: context was not found for specified context: nope\n"
        )
    );
    // Without KUBECONFIG, ~/.kube/config is the file (created by `config set-*`).
    let home_only = |args: &[&str]| {
        testkit::run_cli(
            "kubectl-lite",
            args,
            &[("HOME", home.as_str()), ("KUBECONFIG", "")],
            None,
        )
    };
    let (code, out, err) = home_only(&["config", "set-context", "home", "--namespace", "x"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "Context \"home\" created.\n"),
        "{err}"
    );
    assert!(dir.path().join(".kube").join("config").exists());
    assert_eq!(home_only(&["config", "use-context", "home"]).0, 0);
    assert_eq!(home_only(&["config", "current-context"]).1, "home\n");

    // With no kubeconfig anywhere, the one `kube-lite up` wrote in this directory is used.
    let project = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(project.path().join(".kube-lite")).expect("mkdir");
    let port = testkit::free_port();
    let local =
        client::config::Kubeconfig::single("kube-lite", &format!("http://127.0.0.1:{port}"));
    std::fs::write(
        project.path().join(".kube-lite").join("kubeconfig"),
        serde_yaml::to_string(&local).expect("yaml"),
    )
    .expect("write");
    let out = std::process::Command::new(testkit::bin("kubectl-lite"))
        .args(["get", "pods"])
        .current_dir(project.path())
        .env("HOME", project.path())
        .env_remove("KUBECONFIG")
        .output()
        .expect("run");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "The connection to the server 127.0.0.1:{port} was refused - did you specify the right host or port?\n"
        )
    );

    let (code, out, _) = run(&["completion", "bash"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("_kubectl__lite()") && out.contains("complete -F"),
        "{}",
        &out[..out.len().min(300)]
    );
    let (code, out, _) = run(&["completion", "zsh"]);
    assert!(
        code == 0 && out.starts_with("#compdef kubectl-lite"),
        "{out}"
    );
    let (code, out, _) = run(&["completion", "fish"]);
    assert!(
        code == 0 && out.contains("complete -c kubectl-lite"),
        "{out}"
    );

    let (code, out, err) = run(&["explain", "deploy.spec.replicas"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n\nFIELD: replicas <integer>\n"), "{out}");
    let (_, out, _) = run(&["explain", "pods"]);
    assert!(out.contains("\nFIELDS:\n  apiVersion\t<string>\n"), "{out}");
    let (code, _, err) = run(&["explain", "pods.spec.bogus"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: field \"bogus\" does not exist\n")
    );
    let (code, _, err) = run(&["explain", "widgets"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "error: the server doesn't have a resource type \"widgets\"\n"
        )
    );

    let (code, out, _) = run(&["version", "--client"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("Client Version: v1.37.0-kube-lite."),
        "{out}"
    );
}
