//! The API server's Kubernetes semantics, against the real kvstore and apiserver binaries:
//! status codes and `Status` bodies, optimistic concurrency, watch resume, subresources,
//! graceful deletion, patches, and bad input that writes nothing.

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
        Http {
            base: cp.server.clone(),
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
