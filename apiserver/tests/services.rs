//! Services against the real kvstore and apiserver binaries: ClusterIPs and node ports are
//! allocated on create, kept on re-apply, released on delete and on a type change; what a
//! client asks for that is taken or out of range is a 422 naming the field, and nothing is
//! written; two API servers creating Services at once never hand out the same IP or port.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::{ControlPlane, Proc, free_port, http_get, wait_for};

struct Http {
    base: String,
    c: reqwest::Client,
}

impl Http {
    fn at(base: &str) -> Self {
        Http {
            base: base.to_string(),
            c: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    async fn send(&self, method: &str, path: &str, ct: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self.c.request(m, format!("{}{}", self.base, path));
        if let Some(b) = body {
            r = r.header("Content-Type", ct).body(b.to_string());
        }
        let resp = r.send().await.unwrap();
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, "application/json", Some(body))
            .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, "", None).await
    }
}

const SVCS: &str = "/api/v1/namespaces/default/services";

fn svc(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

/// The field every cause of a 422 names.
fn cause_fields(status: &Value) -> Vec<String> {
    status["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["field"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn services_get_addresses_keep_them_and_give_them_back() {
    let cp = ControlPlane::start().await;
    let h = Http::at(&cp.server);

    // Create: a ClusterIP from the default range, and Kubernetes' defaults.
    let manifest = svc(
        "web",
        json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8000}]}),
    );
    let (code, created) = h.post(SVCS, manifest.clone()).await;
    assert_eq!(code, 201, "{created}");
    let spec = &created["spec"];
    let ip = spec["clusterIP"].as_str().unwrap().to_string();
    let parsed: std::net::Ipv4Addr = ip.parse().unwrap();
    assert_eq!(parsed.octets()[0], 10);
    assert!(
        (96..112).contains(&parsed.octets()[1]),
        "{ip} in 10.96.0.0/12"
    );
    assert_eq!(spec["clusterIPs"], json!([ip]));
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    assert_eq!(spec["internalTrafficPolicy"], "Cluster");
    assert_eq!(spec["ports"][0]["protocol"], "TCP");
    assert_eq!(spec["ports"][0]["targetPort"], 8000);
    assert_eq!(created["status"], json!({"loadBalancer": {}}));
    let (code, got) = h.get(&format!("{SVCS}/web")).await;
    assert_eq!((code, &got["spec"]["clusterIP"]), (200, &json!(ip)));

    // The same manifest again (no clusterIP in it): the allocated one is kept.
    let mut again = manifest.clone();
    again["metadata"]["resourceVersion"] = got["metadata"]["resourceVersion"].clone();
    let (code, replaced) = h
        .send(
            "PUT",
            &format!("{SVCS}/web"),
            "application/json",
            Some(again),
        )
        .await;
    assert_eq!(code, 200, "{replaced}");
    assert_eq!(replaced["spec"]["clusterIP"], json!(ip));

    // The ClusterIP may not change.
    let (code, st) = h
        .send(
            "PATCH",
            &format!("{SVCS}/web"),
            "application/merge-patch+json",
            Some(json!({"spec": {"clusterIP": "10.96.0.77"}})),
        )
        .await;
    assert_eq!(code, 422, "{st}");
    assert_eq!(
        st["message"],
        "Service \"web\" is invalid: spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.77\"}: may not change once set"
    );
    assert_eq!(cause_fields(&st), ["spec.clusterIPs[0]"]);

    // Another Service asking for the same IP: taken.
    let (code, st) = h
        .post(
            SVCS,
            svc("same", json!({"clusterIP": ip, "ports": [{"port": 80}]})),
        )
        .await;
    assert_eq!(code, 422, "{st}");
    assert_eq!(
        st["message"],
        format!(
            "Service \"same\" is invalid: spec.clusterIPs: Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"
        )
    );
    assert_eq!(cause_fields(&st), ["spec.clusterIPs"]);
    assert_eq!(
        h.get(&format!("{SVCS}/same")).await.0,
        404,
        "nothing written"
    );

    // Outside the range.
    let (code, st) = h
        .post(
            SVCS,
            svc(
                "far",
                json!({"clusterIP": "192.168.0.1", "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, 422, "{st}");
    assert!(
        st["message"].as_str().unwrap().ends_with(
            "failed to allocate IP 192.168.0.1: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12"
        ),
        "{st}"
    );

    // Delete answers with the Service (as Kubernetes) and gives the IP back.
    let (code, deleted) = h.send("DELETE", &format!("{SVCS}/web"), "", None).await;
    assert_eq!(
        (code, &deleted["kind"]),
        (200, &json!("Service")),
        "{deleted}"
    );
    let (code, same) = h
        .post(
            SVCS,
            svc("same", json!({"clusterIP": ip, "ports": [{"port": 80}]})),
        )
        .await;
    assert_eq!(code, 201, "the IP was released: {same}");
    assert_eq!(same["spec"]["clusterIP"], json!(ip));

    // Headless: no IP.
    let (code, headless) = h
        .post(
            SVCS,
            svc(
                "db",
                json!({"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{headless}");
    assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));

    // Tables: kubectl's columns.
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}{SVCS}", cp.server))
        .header(
            "Accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .send()
        .await
        .unwrap();
    let table: Value = resp.json().await.unwrap();
    let cols: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        [
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age",
            "Selector"
        ]
    );
    let db = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cells"][0] == "db")
        .unwrap();
    assert_eq!(
        db["cells"].as_array().unwrap()[1..5],
        [
            json!("ClusterIP"),
            json!("None"),
            json!("<none>"),
            json!("5432/TCP")
        ]
    );
}

#[tokio::test]
async fn node_ports_are_checked_and_released_on_type_change() {
    let cp = ControlPlane::start().await;
    let h = Http::at(&cp.server);
    let (code, np) = h
        .post(
            SVCS,
            svc(
                "np",
                json!({"type": "NodePort", "selector": {"app": "np"},
                       "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "extra", "port": 81}]}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{np}");
    assert_eq!(np["spec"]["ports"][0]["nodePort"], 30080);
    let auto = np["spec"]["ports"][1]["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&auto) && auto != 30080, "{auto}");
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");

    let taken = svc(
        "other",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
    );
    let (code, st) = h.post(SVCS, taken.clone()).await;
    assert_eq!(code, 422, "{st}");
    assert_eq!(
        st["message"],
        "Service \"other\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    );
    assert_eq!(cause_fields(&st), ["spec.ports[0].nodePort"]);

    let (code, st) = h
        .post(
            SVCS,
            svc(
                "low",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, 422, "{st}");
    assert_eq!(
        st["message"],
        "Service \"low\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );

    // NodePort → ClusterIP: the node ports (and externalTrafficPolicy) go, and are free again.
    let (code, cip) = h
        .send(
            "PATCH",
            &format!("{SVCS}/np"),
            "application/merge-patch+json",
            Some(json!({"spec": {"type": "ClusterIP"}})),
        )
        .await;
    assert_eq!(code, 200, "{cip}");
    assert!(cip["spec"]["ports"][0].get("nodePort").is_none(), "{cip}");
    assert!(cip["spec"].get("externalTrafficPolicy").is_none(), "{cip}");
    assert_eq!(cip["spec"]["clusterIP"], np["spec"]["clusterIP"]);
    let (code, other) = h.post(SVCS, taken).await;
    assert_eq!(code, 201, "30080 was released: {other}");

    // Back to NodePort: new node ports are allocated on update.
    let (code, back) = h
        .send(
            "PATCH",
            &format!("{SVCS}/np"),
            "application/merge-patch+json",
            Some(json!({"spec": {"type": "NodePort"}})),
        )
        .await;
    assert_eq!(code, 200, "{back}");
    let ports: Vec<i64> = back["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nodePort"].as_i64().unwrap())
        .collect();
    assert!(
        ports
            .iter()
            .all(|p| *p != 30080 && (30000..=32767).contains(p)),
        "{ports:?}"
    );
    assert_ne!(ports[0], ports[1]);
}

#[tokio::test]
async fn bad_services_are_422s_that_name_the_field_and_write_nothing() {
    let cp = ControlPlane::start().await;
    let h = Http::at(&cp.server);
    let cases = [
        (
            svc("two", json!({"ports": [{"port": 80}, {"port": 81}]})),
            "spec.ports[0].name",
            "spec.ports[0].name: Required value",
        ),
        (
            svc("zero", json!({"ports": [{"port": 0}]})),
            "spec.ports[0].port",
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        ),
        (
            svc(
                "proto",
                json!({"ports": [{"port": 80, "protocol": "HTTP"}]}),
            ),
            "spec.ports[0].protocol",
            "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        ),
        (
            svc(
                "sel",
                json!({"selector": {"app": "no good"}, "ports": [{"port": 80}]}),
            ),
            "spec.selector",
            "spec.selector: Invalid value: \"no good\": a valid label must be an empty string",
        ),
        (
            svc("Bad", json!({"ports": [{"port": 80}]})),
            "metadata.name",
            "metadata.name: Invalid value: \"Bad\": a DNS-1035 label must consist of lower case alphanumeric characters",
        ),
        (
            svc("noports", json!({"selector": {"app": "x"}})),
            "spec.ports",
            "spec.ports: Required value",
        ),
    ];
    for (body, field, msg) in cases {
        let name = body["metadata"]["name"].as_str().unwrap().to_string();
        let (code, st) = h.post(SVCS, body).await;
        assert_eq!(code, 422, "{name}: {st}");
        assert_eq!(st["reason"], "Invalid");
        assert!(
            st["message"].as_str().unwrap().contains(msg),
            "{name}: {}",
            st["message"]
        );
        assert!(
            cause_fields(&st).contains(&field.to_string()),
            "{name}: {st}"
        );
        assert_eq!(
            h.get(&format!("{SVCS}/{name}")).await.0,
            404,
            "{name} written"
        );
    }
    // A bad Service asking for an IP must not keep it: a good one gets it afterwards.
    let (code, _) = h
        .post(
            SVCS,
            svc(
                "x",
                json!({"clusterIP": "10.96.0.50", "ports": [{"port": 0}]}),
            ),
        )
        .await;
    assert_eq!(code, 422);
    let (code, ok) = h
        .post(
            SVCS,
            svc(
                "y",
                json!({"clusterIP": "10.96.0.50", "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{ok}");
    let (_, list) = h.get(SVCS).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

/// Another API server on the same kvstore, with its own (small) ranges.
async fn apiserver(
    cp: &ControlPlane,
    label: &str,
    ip_range: &str,
    port_range: &str,
) -> (Proc, String) {
    let port = free_port();
    let p = Proc::start(
        "apiserver",
        label,
        &[
            "--kvstore-servers".into(),
            cp.kv_url.clone(),
            "--port".into(),
            port.to_string(),
            "--service-cluster-ip-range".into(),
            ip_range.into(),
            "--service-node-port-range".into(),
            port_range.into(),
        ],
        cp.dir.path(),
        &[],
    );
    let url = format!("http://127.0.0.1:{port}");
    wait_for(&format!("{label} ready"), Duration::from_secs(60), || {
        let u = format!("{url}/readyz");
        async move { http_get(&u).await }
    })
    .await;
    (p, url)
}

#[tokio::test]
async fn two_api_servers_creating_at_once_never_hand_out_an_ip_or_port_twice() {
    let cp = ControlPlane::start().await;
    // 30 addresses and 30 node ports: exactly enough for 30 NodePort Services.
    let (_a, url_a) = apiserver(&cp, "apiserver-a", "10.100.0.0/27", "30000-30029").await;
    let (_b, url_b) = apiserver(&cp, "apiserver-b", "10.100.0.0/27", "30000-30029").await;
    let (a, b) = (Http::at(&url_a), Http::at(&url_b));
    let creates = (0..30).map(|i| {
        let h = if i % 2 == 0 { &a } else { &b };
        h.post(
            SVCS,
            svc(
                &format!("s{i}"),
                json!({"type": "NodePort", "ports": [{"port": 80}]}),
            ),
        )
    });
    let results = futures::future::join_all(creates).await;
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for (code, s) in &results {
        assert_eq!(*code, 201, "{s}");
        assert!(
            ips.insert(s["spec"]["clusterIP"].as_str().unwrap().to_string()),
            "IP handed out twice: {s}"
        );
        assert!(
            ports.insert(s["spec"]["ports"][0]["nodePort"].as_i64().unwrap()),
            "node port handed out twice: {s}"
        );
    }
    assert_eq!((ips.len(), ports.len()), (30, 30));
    let logs: String = [&_a, &_b]
        .iter()
        .map(|p| std::fs::read_to_string(&p.log).unwrap_or_default())
        .collect();
    let most = logs
        .lines()
        .filter(|l| l.contains("lost a race"))
        .filter_map(|l| {
            l.split("attempt=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u32>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    eprintln!(
        "{} allocations lost a race and picked again (at most {most} times for one Service)",
        logs.matches("lost a race").count()
    );
    // Full: Kubernetes' 500.
    let (code, st) = a
        .post(SVCS, svc("one-more", json!({"ports": [{"port": 80}]})))
        .await;
    assert_eq!(code, 500, "{st}");
    assert_eq!(
        st["message"],
        "Internal error occurred: failed to allocate a serviceIP: range is full"
    );
    // Deleting one frees exactly its IP and port for the next.
    let (code, gone) = b.send("DELETE", &format!("{SVCS}/s7"), "", None).await;
    assert_eq!(code, 200, "{gone}");
    let (code, next) = a
        .post(
            SVCS,
            svc(
                "one-more",
                json!({"type": "NodePort", "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{next}");
    assert_eq!(next["spec"]["clusterIP"], gone["spec"]["clusterIP"]);
    assert_eq!(
        next["spec"]["ports"][0]["nodePort"],
        gone["spec"]["ports"][0]["nodePort"]
    );
}
