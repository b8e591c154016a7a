//! The API server's Kubernetes semantics, against the real kvstore and apiserver binaries:
//! status codes and `Status` bodies, optimistic concurrency, watch resume, subresources,
//! graceful deletion, patches, and bad input that writes nothing; the watch cache (many
//! watchers, one kvstore watch; consistent lists), compaction and 410 Expired, event TTLs,
//! evictions, protobuf bodies, OpenAPI, aggregated discovery and metrics.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use testkit::ControlPlane;

struct Http {
    base: String,
    c: reqwest::Client,
}

impl Http {
    fn new(cp: &ControlPlane) -> Self {
        Self::at(&cp.server)
    }

    fn at(base: &str) -> Self {
        Http {
            base: base.to_string(),
            c: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    async fn send(&self, method: &str, path: &str, ct: &str, body: Option<String>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self.c.request(m, format!("{}{}", self.base, path));
        if let Some(b) = body {
            r = r.header("Content-Type", ct).body(b);
        }
        let resp = r.send().await.unwrap();
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn json(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        self.send(method, path, "application/json", Some(body.to_string()))
            .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, "", None).await
    }
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

#[tokio::test]
async fn crud_with_optimistic_concurrency() {
    let cp = ControlPlane::start().await;
    let h = Http::new(&cp);
    let (code, created) = h.json("POST", CMS, cm("c1")).await;
    assert_eq!(code, 201, "{created}");
    assert!(
        created["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );
    assert!(
        created["metadata"]["creationTimestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let (code, s) = h.json("POST", CMS, cm("c1")).await;
    assert_eq!((code, s["reason"].as_str()), (409, Some("AlreadyExists")));
    assert_eq!(s["message"], "configmaps \"c1\" already exists");

    let mut upd = created.clone();
    upd["data"]["k"] = json!("v2");
    let (code, updated) = h.json("PUT", &format!("{CMS}/c1"), upd.clone()).await;
    assert_eq!(code, 200, "{updated}");
    assert_ne!(updated["metadata"]["resourceVersion"], json!(rv));
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);

    // The same write again carries a stale resourceVersion.
    let (code, s) = h.json("PUT", &format!("{CMS}/c1"), upd).await;
    assert_eq!(code, 409);
    assert_eq!(
        s["message"],
        "Operation cannot be fulfilled on configmaps \"c1\": the object has been modified; please apply your changes to the latest version and try again"
    );

    let (code, _) = h.send("DELETE", &format!("{CMS}/c1"), "", None).await;
    assert_eq!(code, 200);
    let (code, s) = h.get(&format!("{CMS}/c1")).await;
    assert_eq!(
        (code, s["kind"].as_str(), s["reason"].as_str()),
        (404, Some("Status"), Some("NotFound"))
    );
    assert_eq!(s["message"], "configmaps \"c1\" not found");
    let (_, s) = h
        .get("/apis/apps/v1/namespaces/default/deployments/web")
        .await;
    assert_eq!(s["message"], "deployments.apps \"web\" not found");
}

#[tokio::test]
async fn bad_input_gets_4xx_and_writes_nothing() {
    let cp = ControlPlane::start().await;
    let h = Http::new(&cp);
    let (code, s) = h
        .send("POST", CMS, "application/json", Some("{not json".into()))
        .await;
    assert_eq!((code, s["reason"].as_str()), (400, Some("BadRequest")));
    let (code, s) = h
        .json("POST", "/api/v1/namespaces/default/widgets", json!({}))
        .await;
    assert_eq!((code, s["kind"].as_str()), (404, Some("Status")));
    let (code, s) = h.json("POST", CMS, cm("Bad_Name")).await;
    assert_eq!((code, s["reason"].as_str()), (422, Some("Invalid")), "{s}");
    assert!(
        s["message"].as_str().unwrap().starts_with(
            "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""
        ),
        "{s}"
    );
    assert_eq!(s["details"]["causes"][0]["field"], "metadata.name");
    let mut unknown = cm("u");
    unknown["spec"] = json!({"x": 1});
    let (code, s) = h
        .json("POST", &format!("{CMS}?fieldValidation=Strict"), unknown)
        .await;
    assert_eq!(code, 400, "{s}");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"spec\""),
        "{s}"
    );
    let (code, s) = h
        .json("POST", "/api/v1/namespaces/nope/configmaps", cm("x"))
        .await;
    assert_eq!(
        (code, s["message"].as_str()),
        (404, Some("namespaces \"nope\" not found"))
    );
    let mut big = cm("big");
    big["data"]["k"] = json!("x".repeat(4 * 1024 * 1024));
    let (code, _) = h.json("POST", CMS, big).await;
    assert_eq!(code, 413);
    let (code, s) = h.json(
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
               "spec": {"replicas": -1, "selector": {"matchLabels": {"a": "b"}},
                        "template": {"metadata": {"labels": {"a": "c"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
    )
    .await;
    assert_eq!(code, 422);
    let fields: Vec<&str> = s["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"spec.replicas") && fields.contains(&"spec.template.metadata.labels"),
        "{s}"
    );
    let (_, list) = h.get(CMS).await;
    assert_eq!(list["items"], json!([]), "nothing was written");
    let (_, list) = h.get("/apis/apps/v1/deployments").await;
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version() {
    let cp = ControlPlane::start().await;
    let h = Http::new(&cp);
    let (_, a) = h.json("POST", CMS, cm("a")).await;
    let rv = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    h.json("POST", CMS, cm("b")).await;
    let mut a2 = a.clone();
    a2["data"]["k"] = json!("changed");
    h.json("PUT", &format!("{CMS}/a"), a2).await;
    h.send("DELETE", &format!("{CMS}/b"), "", None).await;

    // Resume after `a` was created: b added, a modified, b deleted — in order.
    let resp =
        h.c.get(format!(
            "{}{CMS}?watch=true&resourceVersion={rv}&timeoutSeconds=5",
            h.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let events: Vec<client::Result<api::meta::WatchEvent<Value>>> =
        client::ndjson::decode::<api::meta::WatchEvent<Value>, _, _>(resp.bytes_stream())
            .take(3)
            .map(|r| r.map_err(|e| client::Error::Transport(e.to_string())))
            .collect()
            .await;
    let seen: Vec<(String, String)> = events
        .into_iter()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.type_,
                e.object["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")];
    assert_eq!(
        seen,
        want.iter()
            .map(|(t, n)| (t.to_string(), n.to_string()))
            .collect::<Vec<_>>()
    );

    // resourceVersion=0: the current objects first, as ADDED.
    let resp =
        h.c.get(format!(
            "{}{CMS}?watch=1&resourceVersion=0&timeoutSeconds=2",
            h.base
        ))
        .send()
        .await
        .unwrap();
    let first =
        Box::pin(client::ndjson::decode::<api::meta::WatchEvent<Value>, _, _>(resp.bytes_stream()))
            .next()
            .await
            .unwrap()
            .unwrap();
    assert_eq!(
        (
            first.type_.as_str(),
            first.object["metadata"]["name"].as_str()
        ),
        ("ADDED", Some("a"))
    );
}

#[tokio::test]
async fn watch_list_ends_initial_events_with_a_bookmark() {
    let cp = ControlPlane::start().await;
    let h = Http::new(&cp);
    h.json("POST", CMS, cm("a")).await;
    let url = format!(
        "{}{CMS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=3",
        h.base
    );
    let resp = h.c.get(url).send().await.unwrap();
    let evs: Vec<_> =
        client::ndjson::decode::<api::meta::WatchEvent<Value>, _, _>(resp.bytes_stream())
            .take(2)
            .collect()
            .await;
    let evs: Vec<_> = evs.into_iter().map(|e| e.unwrap()).collect();
    assert_eq!(evs[0].type_, "ADDED");
    assert_eq!(evs[1].type_, "BOOKMARK");
    assert_eq!(
        evs[1].object["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    let (code, _) = h
        .get(&format!("{CMS}?watch=true&sendInitialEvents=true"))
        .await;
    assert_eq!(
        code, 422,
        "sendInitialEvents without resourceVersionMatch is rejected, never ignored"
    );
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}})
}

#[tokio::test]
async fn generation_status_and_scale_subresources() {
    let cp = ControlPlane::start().await;
    let h = Http::new(&cp);
    let d = "/apis/apps/v1/namespaces/default/deployments";
    let (code, created) = h.json("POST", d, deployment()).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(
        created["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%",
        "defaults are filled in"
    );

    // Status writes change status only.
    let mut s = created.clone();
    s["status"] = json!({"replicas": 2, "observedGeneration": 1});
    s["spec"]["replicas"] = json!(9);
    let (code, after) = h.json("PUT", &format!("{d}/web/status"), s).await;
    assert_eq!(code, 200, "{after}");
    assert_eq!(
        (
            after["status"]["replicas"].as_i64(),
            after["spec"]["replicas"].as_i64()
        ),
        (Some(2), Some(2))
    );
    // Main-resource writes keep status; a spec change bumps the generation.
    let mut m = after.clone();
    m["status"] = json!({"replicas": 77});
    m["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    let (_, after) = h.json("PUT", &format!("{d}/web"), m).await;
    assert_eq!(
        (
            after["status"]["replicas"].as_i64(),
            after["metadata"]["generation"].as_i64()
        ),
        (Some(2), Some(2))
    );
    let (_, same) = h.json("PUT", &format!("{d}/web"), after.clone()).await;
    assert_eq!(
        same["metadata"]["resourceVersion"], after["metadata"]["resourceVersion"],
        "a no-op update writes nothing"
    );

    let (code, scale) = h.get(&format!("{d}/web/scale")).await;
    assert_eq!(
        (
            code,
            scale["kind"].as_str(),
            scale["spec"]["replicas"].as_i64()
        ),
        (200, Some("Scale"), Some(2))
    );
    assert_eq!(scale["status"]["selector"], "app=web");
    let (code, scale) = h
        .send(
            "PATCH",
            &format!("{d}/web/scale"),
            "application/merge-patch+json",
            Some(r#"{"spec":{"replicas":5}}"#.into()),
        )
        .await;
    assert_eq!((code, scale["spec"]["replicas"].as_i64()), (200, Some(5)));
    let (_, now) = h.get(&format!("{d}/web")).await;
    assert_eq!(
        (
            now["spec"]["replicas"].as_i64(),
            now["metadata"]["generation"].as_i64()
        ),
        (Some(5), Some(3))
    );
}

#[tokio::test]
async fn patches_merge_json_and_strategic() {
    let cp = ControlPlane::start().await;
    let h = Http::new(&cp);
    let d = "/apis/apps/v1/namespaces/default/deployments";
    h.json("POST", d, deployment()).await;
    let (code, out) = h
        .send("PATCH", &format!("{d}/web"), "application/strategic-merge-patch+json",
              Some(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:3"}]}}}}).to_string()))
        .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:3"
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["name"],
        "c"
    );
    let (code, out) = h
        .send(
            "PATCH",
            &format!("{d}/web"),
            "application/json-patch+json",
            Some(json!([{"op": "replace", "path": "/spec/replicas", "value": 4}]).to_string()),
        )
        .await;
    assert_eq!((code, out["spec"]["replicas"].as_i64()), (200, Some(4)));
    let (code, out) = h
        .send(
            "PATCH",
            &format!("{d}/web"),
            "application/merge-patch+json",
            Some(json!({"metadata": {"labels": {"x": "y"}}}).to_string()),
        )
        .await;
    assert_eq!(
        (code, out["metadata"]["labels"]["x"].as_str()),
        (200, Some("y"))
    );
    let (code, _) = h
        .send("PATCH", &format!("{d}/web"), "text/plain", Some("x".into()))
        .await;
    assert_eq!(code, 415);
}

#[tokio::test]
async fn binding_and_graceful_pod_deletion() {
    let cp = ControlPlane::start().await;
    let h = Http::new(&cp);
    let pods = "/api/v1/namespaces/default/pods";
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "p-"},
                     "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1000"]}]}});
    let (code, p) = h.json("POST", pods, pod).await;
    assert_eq!(code, 201, "{p}");
    let name = p["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("p-") && name.len() == 7, "{name}");
    assert_eq!(p["status"]["phase"], "Pending");

    let bind = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name}, "target": {"kind": "Node", "name": "n1"}});
    let (code, _) = h
        .json("POST", &format!("{pods}/{name}/binding"), bind.clone())
        .await;
    assert_eq!(code, 201);
    let (code, s) = h
        .json("POST", &format!("{pods}/{name}/binding"), bind)
        .await;
    assert_eq!(code, 409, "{s}");
    let (_, bound) = h.get(&format!("{pods}/{name}")).await;
    assert_eq!(bound["spec"]["nodeName"], "n1");
    assert_eq!(bound["status"]["conditions"][0]["type"], "PodScheduled");

    // A bound pod is deleted gracefully: marked, kept, until deleted again with grace 0.
    let (code, marked) = h.send("DELETE", &format!("{pods}/{name}"), "", None).await;
    assert_eq!(code, 200);
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
    let (code, _) = h.get(&format!("{pods}/{name}")).await;
    assert_eq!(code, 200);
    let (code, _) = h
        .json(
            "DELETE",
            &format!("{pods}/{name}"),
            json!({"gracePeriodSeconds": 0}),
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = h.get(&format!("{pods}/{name}")).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let cp = ControlPlane::start().await;
    let h = Http::new(&cp);
    let mut c = cm("f");
    c["metadata"]["finalizers"] = json!(["example.com/hold"]);
    h.json("POST", CMS, c).await;
    let (code, marked) = h.send("DELETE", &format!("{CMS}/f"), "", None).await;
    assert_eq!(code, 200);
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    let (code, out) = h
        .send(
            "PATCH",
            &format!("{CMS}/f"),
            "application/merge-patch+json",
            Some(r#"{"metadata":{"finalizers":null}}"#.into()),
        )
        .await;
    assert_eq!(code, 200, "{out}");
    let (code, _) = h.get(&format!("{CMS}/f")).await;
    assert_eq!(code, 404, "the last finalizer going lets the object go");
    let _ = Duration::from_secs(0);
}

#[tokio::test]
async fn discovery_and_tables() {
    let cp = ControlPlane::start().await;
    let h = Http::new(&cp);
    let (code, v) = h.get("/version").await;
    assert_eq!((code, v["major"].as_str()), (200, Some("1")));
    let (_, apis) = h.get("/apis").await;
    assert!(
        apis["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "apps")
    );
    let (_, ns) = h.get("/api/v1/namespaces").await;
    let names: Vec<&str> = ns["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    for want in ["default", "kube-system", "kube-node-lease"] {
        assert!(names.contains(&want), "{names:?}");
    }
    let resp =
        h.c.get(format!("{}/api/v1/namespaces", h.base))
            .header(
                "Accept",
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            )
            .send()
            .await
            .unwrap();
    let t: Value = resp.json().await.unwrap();
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["columnDefinitions"][0]["name"], "Name");
    assert!(t["metadata"]["resourceVersion"].is_string());
}

/// A kvstore and an API server started with extra flags (`--etcd-compaction-interval`, …).
struct Custom {
    _dir: tempfile::TempDir,
    _kv: testkit::Proc,
    api: testkit::Proc,
    kv_url: String,
    server: String,
}

async fn start_with(flags: &[&str]) -> Custom {
    let dir = tempfile::tempdir().unwrap();
    let (kv, kv_url) = testkit::start_kvstore(dir.path(), "kv");
    let port = testkit::free_port();
    let mut args = vec![
        "--kvstore-servers".to_string(),
        kv_url.clone(),
        "--port".into(),
        port.to_string(),
    ];
    args.extend(flags.iter().map(|s| s.to_string()));
    let api = testkit::Proc::start("apiserver", "apiserver", &args, dir.path(), &[]);
    let server = format!("http://127.0.0.1:{port}");
    let readyz = format!("{server}/readyz");
    testkit::wait_for("apiserver /readyz", testkit::DEFAULT_TIMEOUT, || {
        testkit::http_get(&readyz)
    })
    .await;
    Custom {
        _dir: dir,
        _kv: kv,
        api,
        kv_url,
        server,
    }
}

/// The value of one metric line (`name{labels}`) in `/metrics`.
async fn metric(h: &Http, series: &str) -> Option<f64> {
    let text =
        h.c.get(format!("{}/metrics", h.base))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

/// The id the kvstore gives a new watch (ids are sequential): opening one before and after
/// shows how many watches were opened in between, by anyone.
async fn next_kv_watch_id(kv_url: &str) -> i64 {
    let kv = kvclient::KvClient::new(vec![kv_url.to_string()]).unwrap();
    let stream = kv
        .watch(&kvclient::proto::WatchCreateRequest {
            key: "/probe".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let first = Box::pin(stream).next().await.unwrap().unwrap();
    assert!(first.created);
    first.watch_id
}

/// Read watch events from a streaming response until `n` arrived.
async fn events(resp: reqwest::Response, n: usize) -> Vec<api::meta::WatchEvent<Value>> {
    let evs: Vec<_> =
        client::ndjson::decode::<api::meta::WatchEvent<Value>, _, _>(resp.bytes_stream())
            .take(n)
            .collect()
            .await;
    evs.into_iter().map(|e| e.unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watchers_share_one_kvstore_watch() {
    let cp = ControlPlane::start().await;
    let h = Http::new(&cp);
    testkit::wait_for(
        "the pods cache to watch",
        testkit::DEFAULT_TIMEOUT,
        || async {
            (metric(
                &h,
                "apiserver_watch_cache_kvstore_watches_total{resource=\"pods\"}",
            )
            .await?
                >= 1.0)
                .then_some(())
        },
    )
    .await;
    let before = next_kv_watch_id(&cp.kv_url).await;

    const WATCHERS: usize = 60;
    let pods = "/api/v1/namespaces/default/pods";
    let mut streams = Vec::new();
    for i in 0..WATCHERS {
        // A mix of what clients do: informers (rv from a list), kubectl get -w (rv=0), watch-list.
        let q = match i % 3 {
            0 => "watch=true&resourceVersion=0&timeoutSeconds=60".to_string(),
            1 => {
                let (_, list) = h.get(pods).await;
                format!(
                    "watch=true&resourceVersion={}&allowWatchBookmarks=true&timeoutSeconds=60",
                    list["metadata"]["resourceVersion"].as_str().unwrap()
                )
            }
            _ => "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=60".to_string(),
        };
        let resp =
            h.c.get(format!("{}{pods}?{q}", h.base))
                .send()
                .await
                .unwrap();
        assert_eq!(resp.status(), 200);
        streams.push((i % 3, resp));
    }
    testkit::wait_for(
        "every watcher registered",
        testkit::DEFAULT_TIMEOUT,
        || async {
            (metric(
                &h,
                "apiserver_registered_watchers{group=\"\",kind=\"Pod\",version=\"v1\"}",
            )
            .await?
                >= WATCHERS as f64)
                .then_some(())
        },
    )
    .await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fanout"},
                     "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let (code, _) = h.json("POST", pods, pod).await;
    assert_eq!(code, 201);
    let mut got = 0;
    for (kind, resp) in streams {
        // Watch-list streams begin with the initial-events-end bookmark (no pods yet).
        let n = if kind == 2 { 2 } else { 1 };
        let evs = events(resp, n).await;
        let last = evs.last().unwrap();
        assert_eq!(
            (
                last.type_.as_str(),
                last.object["metadata"]["name"].as_str()
            ),
            ("ADDED", Some("fanout")),
            "{evs:?}"
        );
        got += 1;
    }
    assert_eq!(got, WATCHERS);
    let after = next_kv_watch_id(&cp.kv_url).await;
    assert_eq!(
        after - before - 1,
        0,
        "{WATCHERS} client watches opened no kvstore watch: the cache's one serves them all"
    );
    assert_eq!(
        metric(
            &h,
            "apiserver_watch_cache_kvstore_watches_total{resource=\"pods\"}"
        )
        .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_from_the_cache_are_consistent_and_paginate() {
    let cp = ControlPlane::start().await;
    let h = Http::new(&cp);
    // Read-your-writes: a list right after a write (no resourceVersion) always has it.
    for i in 0..15 {
        let (code, created) = h.json("POST", CMS, cm(&format!("c{i:02}"))).await;
        assert_eq!(code, 201);
        let (_, list) = h.get(CMS).await;
        assert_eq!(list["items"].as_array().unwrap().len(), i + 1, "{list}");
        assert!(
            list["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap()
                >= created["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .parse::<i64>()
                    .unwrap()
        );
        // resourceVersion=N (not older than N) too.
        let rv = created["metadata"]["resourceVersion"].as_str().unwrap();
        let (_, list) = h.get(&format!("{CMS}?resourceVersion={rv}")).await;
        assert_eq!(list["items"].as_array().unwrap().len(), i + 1);
    }
    assert!(
        metric(&h, "apiserver_list_served_total{source=\"cache\"}")
            .await
            .unwrap()
            >= 30.0
    );

    // Pages of 4 with a selector, the first from the cache, the rest from the store at the
    // same revision: nothing missed, nothing twice, even with writes in between.
    for i in 0..15 {
        if i % 2 == 0 {
            let mut c = cm(&format!("c{i:02}"));
            c["metadata"]["labels"] = json!({"even": "yes"});
            let (_, cur) = h.get(&format!("{CMS}/c{i:02}")).await;
            c["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
            let (code, _) = h.json("PUT", &format!("{CMS}/c{i:02}"), c).await;
            assert_eq!(code, 200);
        }
    }
    let mut names = vec![];
    let mut url = format!("{CMS}?labelSelector=even%3Dyes&limit=3");
    let mut first_rv = None;
    loop {
        let (code, page) = h.get(&url).await;
        assert_eq!(code, 200, "{page}");
        let rv = page["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            first_rv.get_or_insert(rv.clone()),
            &rv,
            "one revision for every page"
        );
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        names.extend(
            items
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(c) => {
                h.json("POST", CMS, cm(&format!("late{}", names.len())))
                    .await;
                url = format!("{CMS}?labelSelector=even%3Dyes&limit=3&continue={c}");
            }
            None => break,
        }
    }
    let want: Vec<String> = (0..15)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("c{i:02}"))
        .collect();
    assert_eq!(names, want);

    // A resourceVersion from the future: 504 Too large resource version.
    let (_, list) = h.get(CMS).await;
    let future = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .unwrap()
        + 1000;
    let (code, s) = h.get(&format!("{CMS}?resourceVersion={future}")).await;
    assert_eq!((code, s["reason"].as_str()), (504, Some("Timeout")), "{s}");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .starts_with("Too large resource version"),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_makes_old_revisions_expire() {
    let c = start_with(&["--etcd-compaction-interval", "1s"]).await;
    let h = Http::at(&c.server);
    let (_, a) = h.json("POST", CMS, cm("old")).await;
    let rv: i64 = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for v in ["1", "2", "3"] {
        h.send(
            "PATCH",
            &format!("{CMS}/old"),
            "application/merge-patch+json",
            Some(json!({"data": {"k": v}}).to_string()),
        )
        .await;
    }
    testkit::wait_for(
        "a compaction past the ConfigMap's first revision",
        testkit::DEFAULT_TIMEOUT,
        || async {
            (metric(&h, "apiserver_storage_compacted_revision").await? > (rv + 1) as f64)
                .then_some(())
        },
    )
    .await;
    assert!(
        metric(&h, "apiserver_storage_compactions_total")
            .await
            .unwrap()
            >= 1.0
    );

    // A watch from there: an ERROR event with 410 Expired, then the stream ends.
    let resp =
        h.c.get(format!("{}{CMS}?watch=true&resourceVersion={rv}", h.base))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 200);
    let evs = events(resp, 1).await;
    assert_eq!(evs[0].type_, "ERROR");
    assert_eq!(
        (
            evs[0].object["code"].as_i64(),
            evs[0].object["reason"].as_str()
        ),
        (Some(410), Some("Expired")),
        "{:?}",
        evs[0]
    );
    assert!(
        evs[0].object["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version"),
        "{:?}",
        evs[0]
    );
    // An exact list at that revision: 410 too.
    let (code, s) = h
        .get(&format!(
            "{CMS}?resourceVersion={rv}&resourceVersionMatch=Exact"
        ))
        .await;
    assert_eq!((code, s["reason"].as_str()), (410, Some("Expired")), "{s}");
    // A watch from now is fine.
    let (_, list) = h.get(CMS).await;
    let now = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let resp =
        h.c.get(format!(
            "{}{CMS}?watch=true&resourceVersion={now}&timeoutSeconds=30",
            h.base
        ))
        .send()
        .await
        .unwrap();
    h.json("POST", CMS, cm("new")).await;
    let evs = events(resp, 1).await;
    assert_eq!(
        (
            evs[0].type_.as_str(),
            evs[0].object["metadata"]["name"].as_str()
        ),
        ("ADDED", Some("new"))
    );
    drop(c.api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_expire_after_the_event_ttl() {
    let c = start_with(&["--event-ttl", "3s"]).await;
    let h = Http::at(&c.server);
    let evs = "/api/v1/namespaces/default/events";
    let event = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
               "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
               "reason": "Tested", "message": "m", "type": "Normal", "count": 1,
               "eventTime": "2026-01-02T03:04:05.123456Z", "reportingComponent": "t", "reportingInstance": "t"})
    };
    let (code, created) = h.json("POST", evs, event("e1")).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["eventTime"], "2026-01-02T03:04:05.123456Z");
    h.json("POST", evs, event("e2")).await;
    // An update (as the event recorder's count bumps) keeps a TTL too.
    let mut upd = created.clone();
    upd["count"] = json!(2);
    let (code, _) = h.json("PUT", &format!("{evs}/e1"), upd).await;
    assert_eq!(code, 200);
    let kv = kvclient::KvClient::new(vec![c.kv_url.clone()]).unwrap();
    let (stored, _) = kv.get("/registry/events/default/e1").await.unwrap();
    assert_ne!(
        stored.unwrap().lease,
        0,
        "the event key is attached to a lease"
    );
    let (stored, _) = kv.get("/registry/configmaps/default/none").await.unwrap();
    assert!(stored.is_none());
    let started = std::time::Instant::now();
    testkit::wait_for(
        "both events to expire",
        testkit::DEFAULT_TIMEOUT,
        || async {
            let (_, list) = h.get(evs).await;
            list["items"].as_array()?.is_empty().then_some(())
        },
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "not before the TTL"
    );
    let (code, _) = h.get(&format!("{evs}/e1")).await;
    assert_eq!(code, 404);
    // Other kinds never expire.
    let (code, _) = h.json("POST", CMS, cm("stays")).await;
    assert_eq!(code, 201);
    let (stored, _) = kv.get("/registry/configmaps/default/stays").await.unwrap();
    assert_eq!(stored.unwrap().lease, 0);
}

#[tokio::test]
async fn eviction_and_protobuf_bodies() {
    use prost::Message;
    let cp = ControlPlane::start().await;
    let h = Http::new(&cp);
    let pods = "/api/v1/namespaces/default/pods";
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ev"},
                     "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    h.json("POST", pods, pod).await;
    let bind = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "ev"}, "target": {"kind": "Node", "name": "n1"}});
    h.json("POST", &format!("{pods}/ev/binding"), bind).await;
    let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "ev", "namespace": "default"},
                          "deleteOptions": {"gracePeriodSeconds": 7}});
    let (code, s) = h
        .json("POST", &format!("{pods}/ev/eviction"), eviction)
        .await;
    assert_eq!((code, s["status"].as_str()), (201, Some("Success")), "{s}");
    let (_, p) = h.get(&format!("{pods}/ev")).await;
    assert!(p["metadata"]["deletionTimestamp"].is_string(), "{p}");
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 7);
    let (code, _) = h
        .json(
            "POST",
            &format!("{pods}/nope/eviction"),
            json!({"metadata": {"name": "nope"}}),
        )
        .await;
    assert_eq!(code, 404);

    // `kubectl create configmap` sends protobuf: magic, runtime.Unknown, ConfigMap.
    let cm = apiserver::protobuf::ConfigMap {
        metadata: Some(apiserver::protobuf::ObjectMeta {
            name: Some("proto".into()),
            namespace: Some("default".into()),
            ..Default::default()
        }),
        data: [("k".to_string(), "v".to_string())].into(),
        binary_data: Default::default(),
        immutable: None,
    };
    let mut body = b"k8s\0".to_vec();
    apiserver::protobuf::Unknown {
        type_meta: Some(apiserver::protobuf::TypeMeta {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
        }),
        raw: Some(cm.encode_to_vec()),
        content_encoding: None,
        content_type: None,
    }
    .encode(&mut body)
    .unwrap();
    let resp =
        h.c.post(format!("{}{CMS}", h.base))
            .header("Content-Type", "application/vnd.kubernetes.protobuf")
            .header(
                "Accept",
                "application/vnd.kubernetes.protobuf,application/json",
            )
            .body(body)
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["data"]["k"], "v");
    assert_eq!(created["kind"], "ConfigMap");
}

#[tokio::test]
async fn openapi_discovery_and_metrics_for_kubectl() {
    let cp = ControlPlane::start().await;
    let h = Http::new(&cp);
    let (code, idx) = h.get("/openapi/v3").await;
    assert_eq!(code, 200);
    let url = idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, doc) = h.get(&url).await;
    assert_eq!(code, 200);
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"]["kind"],
        "Deployment"
    );
    assert!(
        patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation")
    );
    let (code, _) = h.get("/openapi/v2").await;
    assert_eq!(code, 404);

    // Aggregated discovery when asked for it (as kubectl does), legacy otherwise.
    let resp = h
        .c
        .get(format!("{}/apis", h.base))
        .header(
            "Accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let agg: Value = resp.json().await.unwrap();
    assert_eq!(agg["kind"], "APIGroupDiscoveryList");
    let (_, legacy) = h.get("/apis").await;
    assert_eq!(legacy["kind"], "APIGroupList");
    let (_, core) = h.get("/api/v1").await;
    assert!(
        core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "pods/eviction" && r["group"] == "policy")
    );

    h.get(CMS).await;
    h.get(&format!("{CMS}/missing")).await;
    let resp = h.c.get(format!("{}/metrics", h.base)).send().await.unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    assert!(text.contains("apiserver_request_total{code=\"200\",group=\"\",resource=\"configmaps\",subresource=\"\",verb=\"LIST\",version=\"v1\"}"), "{text}");
    assert!(text.contains("apiserver_request_total{code=\"404\",group=\"\",resource=\"configmaps\",subresource=\"\",verb=\"GET\",version=\"v1\"} 1"), "{text}");
    assert!(text.contains("apiserver_request_duration_seconds_bucket{"));
    assert!(
        text.contains("apiserver_storage_objects{resource=\"namespaces\"} 4"),
        "{text}"
    );
}
