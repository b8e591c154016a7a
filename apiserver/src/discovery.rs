//! API discovery: `/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>` and `/version`.
//!
//! `/api` and `/apis` are served in two formats, chosen by the `Accept` header as the real API
//! server does: clients that ask for aggregated discovery
//! (`application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`, kubectl and
//! client-go) get every group's resources in one `APIGroupDiscoveryList`, labelled so in the
//! `Content-Type`; others get the legacy `APIVersions`/`APIGroupList` with plain
//! `application/json`, and then read `/api/v1` and each `/apis/<group>/<version>`.

use api::ResourceInfo;
use api::resource::RESOURCES;
use serde_json::{Value, json};

/// The Kubernetes version kube-lite speaks (kubectl warns on more than one minor of skew).
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "37";

pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "emulationMajor": KUBE_MAJOR,
        "emulationMinor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0-kube-lite.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "n/a (rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a }),
    })
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn groups() -> Vec<&'static str> {
    let mut gs: Vec<&str> = RESOURCES
        .iter()
        .map(|r| r.group)
        .filter(|g| !g.is_empty())
        .collect();
    gs.dedup();
    gs.sort();
    gs.dedup();
    gs
}

pub fn api_group_list() -> Value {
    let groups: Vec<Value> = groups()
        .into_iter()
        .map(|g| {
            let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn resource_entries(r: &ResourceInfo) -> Vec<Value> {
    let mut out = vec![json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": VERBS,
        "shortNames": r.short_names,
        "categories": r.categories,
    })];
    if r.has_status {
        out.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                        "kind": r.kind, "verbs": ["get", "patch", "update"]}));
    }
    if r.has_scale {
        out.push(json!({"name": format!("{}/scale", r.plural), "singularName": "", "namespaced": r.namespaced,
                        "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
    }
    if r.kind == "Pod" {
        out.push(json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}));
        out.push(json!({"name": "pods/exec", "singularName": "", "namespaced": true, "kind": "PodExecOptions", "verbs": ["create", "get"]}));
        out.push(json!({"name": "pods/binding", "singularName": "", "namespaced": true, "kind": "Binding", "verbs": ["create"]}));
        out.push(json!({"name": "pods/eviction", "singularName": "", "namespaced": true, "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]}));
    }
    if r.kind == "Namespace" {
        out.push(json!({"name": "namespaces/finalize", "singularName": "", "namespaced": false, "kind": "Namespace", "verbs": ["update"]}));
    }
    out
}

/// The media type of aggregated discovery (apidiscovery.k8s.io/v2).
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an `Accept` header asks for aggregated discovery before anything else it accepts.
pub fn wants_aggregated(accept: &str) -> bool {
    for alt in accept.split(',') {
        let params: Vec<&str> = alt.split(';').map(str::trim).collect();
        let base = params.first().copied().unwrap_or("");
        let aggregated = base == "application/json"
            && params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
            && params.contains(&"as=APIGroupDiscoveryList");
        if aggregated {
            return true;
        }
        if matches!(base, "application/json" | "*/*" | "application/*") {
            return false;
        }
    }
    false
}

fn subresource(name: &str, kind: (&str, &str, &str), verbs: &[&str]) -> Value {
    json!({"subresource": name, "responseKind": {"group": kind.0, "version": kind.1, "kind": kind.2}, "verbs": verbs})
}

fn resource_discovery(r: &ResourceInfo) -> Value {
    let mut subs = Vec::new();
    if r.has_status {
        subs.push(subresource(
            "status",
            (r.group, r.version, r.kind),
            &["get", "patch", "update"],
        ));
    }
    if r.has_scale {
        subs.push(subresource(
            "scale",
            ("autoscaling", "v1", "Scale"),
            &["get", "patch", "update"],
        ));
    }
    if r.kind == "Pod" {
        subs.push(subresource("binding", ("", "v1", "Binding"), &["create"]));
        subs.push(subresource(
            "eviction",
            ("policy", "v1", "Eviction"),
            &["create"],
        ));
        subs.push(subresource("log", ("", "v1", "Pod"), &["get"]));
        subs.push(subresource(
            "exec",
            ("", "v1", "PodExecOptions"),
            &["create", "get"],
        ));
        subs.push(subresource(
            "portforward",
            ("", "v1", "PodPortForwardOptions"),
            &["create", "get"],
        ));
    }
    if r.kind == "Namespace" {
        subs.push(subresource(
            "finalize",
            ("", "v1", "Namespace"),
            &["update"],
        ));
    }
    let mut v = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": VERBS,
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    if !subs.is_empty() {
        v["subresources"] = json!(subs);
    }
    v
}

/// The aggregated discovery document of `/api` (`core`) or `/apis` (every group).
pub fn aggregated(core: bool) -> Value {
    let groups: Vec<&str> = if core { vec![""] } else { groups() };
    let items: Vec<Value> = groups
        .into_iter()
        .map(|g| {
            let resources: Vec<Value> = RESOURCES
                .iter()
                .filter(|r| r.group == g && r.version == "v1")
                .map(resource_discovery)
                .collect();
            let mut meta = json!({"creationTimestamp": null});
            if !g.is_empty() {
                meta["name"] = json!(g);
            }
            json!({"metadata": meta, "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}]})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// The APIResourceList of a group-version, or None if it is not served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let rs: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .flat_map(resource_entries)
        .collect();
    if rs.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": rs}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_documents() {
        let core = api_resource_list("", "v1").unwrap();
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        for n in [
            "pods",
            "pods/status",
            "pods/log",
            "pods/exec",
            "pods/binding",
            "configmaps",
            "nodes",
            "namespaces",
            "events",
        ] {
            assert!(names.contains(&n), "{n}");
        }
        let apps = api_resource_list("apps", "v1").unwrap();
        assert!(
            apps["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "deployments/scale" && r["group"] == "autoscaling")
        );
        assert!(api_resource_list("batch", "v1").is_none());
        let groups = api_group_list();
        assert_eq!(groups["groups"].as_array().unwrap().len(), 3);
        for n in ["services", "services/status", "endpoints"] {
            assert!(names.contains(&n), "{n}");
        }
    }

    #[test]
    fn aggregated_discovery() {
        let kubectl =
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(kubectl));
        assert!(!wants_aggregated("application/json"));
        assert!(!wants_aggregated(
            "application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        ));
        assert!(!wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ));
        let core = aggregated(true);
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        let pods = core["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap();
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert!(
            pods["subresources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["subresource"] == "eviction" && s["responseKind"]["group"] == "policy")
        );
        let apis = aggregated(false);
        let names: Vec<&str> = apis["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["apps", "coordination.k8s.io", "discovery.k8s.io"]);
    }
}
