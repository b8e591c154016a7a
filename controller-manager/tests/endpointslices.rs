//! The EndpointSlice controller in the controller-manager binary against a real API server.
//! No scheduler or kubelet: the test binds pods and writes their status itself (IP, Ready), and
//! a graceful delete of a bound pod leaves it terminating until the test deletes it for good.

use api::core::{Endpoints, Pod, Service};
use api::discovery::EndpointSlice;
use api::meta::DeleteOptions;
use client::{Api, ListParams, Patch};
use serde_json::json;
use testkit::{ControlPlane, DEFAULT_TIMEOUT, Proc, wait_for};

fn start_controller_manager(cp: &ControlPlane) -> Proc {
    cp.start_component(
        "controller-manager",
        "controller-manager",
        &["--leader-elect=false".into()],
    )
}

fn service(name: &str, selector: serde_json::Value, ports: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": selector, "ports": ports}
    }))
    .unwrap()
}

/// A pod bound to a node, running at `ip`, with a container port.
async fn running_pod(pods: &Api<Pod>, name: &str, app: &str, ip: &str, port_name: &str, port: i32) {
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "web",
                                  "ports": [{"name": port_name, "containerPort": port}]}]}
    }))
    .unwrap();
    pods.create(&pod).await.unwrap();
    pods.bind(name, "worker-1").await.unwrap();
    set_ready(pods, name, ip, false).await;
}

async fn set_ready(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) {
    let status = if ready { "True" } else { "False" };
    let patch = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                                   "conditions": [{"type": "Ready", "status": status}]}});
    pods.patch_status(name, &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn slices_of(api: &Api<EndpointSlice>, svc: &str) -> Vec<EndpointSlice> {
    api.list(&ListParams::default().labels(&format!("kubernetes.io/service-name={svc}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// (pod, ready, serving, terminating) of every endpoint of the Service's slices, by pod name.
async fn endpoint_states(api: &Api<EndpointSlice>, svc: &str) -> Vec<(String, bool, bool, bool)> {
    let mut out: Vec<_> = slices_of(api, svc)
        .await
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .map(|e| {
            let c = &e.conditions;
            (
                e.target_ref
                    .as_ref()
                    .map(|r| r.name.clone())
                    .unwrap_or_default(),
                c.ready == Some(true),
                c.serving == Some(true),
                c.terminating == Some(true),
            )
        })
        .collect();
    out.sort();
    out
}

/// (ready IPs, not-ready IPs) of the legacy Endpoints.
async fn endpoints_ips(api: &Api<Endpoints>, name: &str) -> Option<(Vec<String>, Vec<String>)> {
    let ep = api.get_opt(name).await.ok()??;
    let mut ready: Vec<String> = ep
        .subsets
        .iter()
        .flat_map(|s| s.addresses.iter().map(|a| a.ip.clone()))
        .collect();
    let mut not_ready: Vec<String> = ep
        .subsets
        .iter()
        .flat_map(|s| s.not_ready_addresses.iter().map(|a| a.ip.clone()))
        .collect();
    ready.sort();
    not_ready.sort();
    Some((ready, not_ready))
}

fn s(v: &str) -> String {
    v.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_follow_pods_becoming_ready_terminating_and_gone() {
    let cp = ControlPlane::start().await;
    let _cm = start_controller_manager(&cp);
    let client = cp.client();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    let svc = services
        .create(&service(
            "web",
            json!({"app": "web"}),
            json!([{"port": 80, "targetPort": 8000}]),
        ))
        .await
        .unwrap();

    // No pods yet: one empty slice (owned by the Service) and empty Endpoints.
    let placeholder = wait_for("the placeholder slice", DEFAULT_TIMEOUT, || async {
        slices_of(&slices, "web").await.into_iter().next()
    })
    .await;
    assert!(placeholder.endpoints.is_empty());
    assert!(
        placeholder.metadata.name.starts_with("web-"),
        "{}",
        placeholder.metadata.name
    );
    assert_eq!(placeholder.address_type, "IPv4");
    assert_eq!(
        placeholder.metadata.labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    let owner = &placeholder.metadata.owner_references[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Service", svc.metadata.uid.as_str(), Some(true))
    );
    wait_for("empty Endpoints", DEFAULT_TIMEOUT, || async {
        endpoints_ips(&endpoints, "web")
            .await
            .filter(|e| *e == (vec![], vec![]))
    })
    .await;

    // Two running pods, not ready: listed, not ready, not serving.
    running_pod(&pods, "a", "web", "127.50.0.2", "http", 8000).await;
    running_pod(&pods, "b", "web", "127.50.0.3", "http", 8000).await;
    wait_for("two not-ready endpoints", DEFAULT_TIMEOUT, || async {
        let st = endpoint_states(&slices, "web").await;
        (st == vec![(s("a"), false, false, false), (s("b"), false, false, false)]).then_some(())
    })
    .await;
    let slice = &slices_of(&slices, "web").await[0];
    assert_eq!(
        slice.metadata.name, placeholder.metadata.name,
        "the placeholder slice is reused"
    );
    assert_eq!(slice.ports[0].port, Some(8000));
    assert_eq!(slice.endpoints[0].node_name.as_deref(), Some("worker-1"));
    wait_for("Endpoints: two not ready", DEFAULT_TIMEOUT, || async {
        endpoints_ips(&endpoints, "web")
            .await
            .filter(|e| *e == (vec![], vec![s("127.50.0.2"), s("127.50.0.3")]))
    })
    .await;

    // a becomes Ready.
    set_ready(&pods, "a", "127.50.0.2", true).await;
    wait_for("a ready and serving", DEFAULT_TIMEOUT, || async {
        let st = endpoint_states(&slices, "web").await;
        (st == vec![(s("a"), true, true, false), (s("b"), false, false, false)]).then_some(())
    })
    .await;
    wait_for("Endpoints: a ready", DEFAULT_TIMEOUT, || async {
        endpoints_ips(&endpoints, "web")
            .await
            .filter(|e| *e == (vec![s("127.50.0.2")], vec![s("127.50.0.3")]))
    })
    .await;

    // a is deleted (gracefully: it is bound, so it terminates first): not ready, still
    // serving, terminating — and out of the legacy Endpoints.
    pods.delete("a", &DeleteOptions::default()).await.unwrap();
    wait_for("a terminating", DEFAULT_TIMEOUT, || async {
        let st = endpoint_states(&slices, "web").await;
        (st == vec![(s("a"), false, true, true), (s("b"), false, false, false)]).then_some(())
    })
    .await;
    wait_for("Endpoints without a", DEFAULT_TIMEOUT, || async {
        endpoints_ips(&endpoints, "web")
            .await
            .filter(|e| *e == (vec![], vec![s("127.50.0.3")]))
    })
    .await;

    // a is gone for good; b stops matching the selector.
    let now = DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    pods.delete("a", &now).await.unwrap();
    wait_for("a gone", DEFAULT_TIMEOUT, || async {
        let st = endpoint_states(&slices, "web").await;
        (st == vec![(s("b"), false, false, false)]).then_some(())
    })
    .await;
    pods.patch(
        "b",
        &Patch::Merge(&json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await
    .unwrap();
    wait_for("no endpoints", DEFAULT_TIMEOUT, || async {
        endpoint_states(&slices, "web")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    assert_eq!(
        slices_of(&slices, "web").await.len(),
        1,
        "one (empty) slice, never two"
    );

    // Deleting the Service deletes its slices (garbage collector) and Endpoints.
    services
        .delete("web", &DeleteOptions::default())
        .await
        .unwrap();
    wait_for("slices and Endpoints gone", DEFAULT_TIMEOUT, || async {
        let slices_gone = slices_of(&slices, "web").await.is_empty();
        let ep_gone = endpoints.get_opt("web").await.ok()?.is_none();
        (slices_gone && ep_gone).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_target_port_resolves_in_each_pod() {
    let cp = ControlPlane::start().await;
    let _cm = start_controller_manager(&cp);
    let client = cp.client();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    services
        .create(&service(
            "api",
            json!({"app": "api"}),
            json!([{"name": "web", "port": 80, "targetPort": "http"}]),
        ))
        .await
        .unwrap();
    // Two versions of the app listen on different ports under the same name; a third pod
    // has no port of that name and serves nothing.
    running_pod(&pods, "v1", "api", "127.50.1.2", "http", 8000).await;
    running_pod(&pods, "v2", "api", "127.50.1.3", "http", 9000).await;
    running_pod(&pods, "odd", "api", "127.50.1.4", "metrics", 9100).await;
    for p in ["v1", "v2", "odd"] {
        let ip = match p {
            "v1" => "127.50.1.2",
            "v2" => "127.50.1.3",
            _ => "127.50.1.4",
        };
        set_ready(&pods, p, ip, true).await;
    }
    wait_for("one slice per resolved port", DEFAULT_TIMEOUT, || async {
        let mut v: Vec<(i32, Vec<String>)> = slices_of(&slices, "api")
            .await
            .iter()
            .map(|s| {
                (
                    s.ports.first().and_then(|p| p.port).unwrap_or(0),
                    s.endpoints.iter().map(|e| e.addresses[0].clone()).collect(),
                )
            })
            .collect();
        v.sort();
        (v == vec![(8000, vec![s("127.50.1.2")]), (9000, vec![s("127.50.1.3")])]).then_some(())
    })
    .await;
    let slice = &slices_of(&slices, "api").await[0];
    assert_eq!(
        slice.ports[0].name.as_deref(),
        Some("web"),
        "the Service port's name"
    );
    let ep = wait_for("Endpoints with two subsets", DEFAULT_TIMEOUT, || async {
        endpoints
            .get_opt("api")
            .await
            .ok()?
            .filter(|e| e.subsets.len() == 2)
    })
    .await;
    let ports: Vec<i32> = ep.subsets.iter().map(|s| s.ports[0].port).collect();
    assert_eq!(ports, vec![8000, 9000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_without_a_selector_are_left_alone() {
    let cp = ControlPlane::start().await;
    let _cm = start_controller_manager(&cp);
    let client = cp.client();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    services
        .create(&service("external", json!({}), json!([{"port": 5432}])))
        .await
        .unwrap();
    let mine: Endpoints = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "external", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432}]}]
    }))
    .unwrap();
    endpoints.create(&mine).await.unwrap();
    // A Service with a selector, created after: once it has its slice, the controller has
    // seen both.
    services
        .create(&service(
            "later",
            json!({"app": "later"}),
            json!([{"port": 80}]),
        ))
        .await
        .unwrap();
    wait_for("the later Service's slice", DEFAULT_TIMEOUT, || async {
        slices_of(&slices, "later").await.into_iter().next()
    })
    .await;
    assert!(slices_of(&slices, "external").await.is_empty());
    let ep = endpoints.get("external").await.unwrap();
    assert_eq!(
        ep.subsets[0].addresses[0].ip, "192.0.2.10",
        "the user's Endpoints are kept"
    );
}
