//! `/openapi/v3`: the index of group-versions and one OpenAPI 3 document per group-version,
//! with the paths and operations of every served resource and the kinds' schemas (generated
//! from the `api` types, so `kubectl explain` has something to show).
//!
//! What kubectl reads here: `apply`/`create`/`replace` with the default `--validate=strict`
//! look for the kind's PATCH operation (by `x-kubernetes-group-version-kind`) and check that
//! it declares the `fieldValidation` query parameter — then the server validates
//! (`fieldValidation=Strict`) and kubectl needs nothing more. The PATCH request bodies list
//! JSON patch and JSON merge patch but deliberately not strategic merge patch: kubectl would
//! then compute its strategic merge patches from these generated schemas, which carry no merge
//! keys; without it kubectl uses its compiled-in Kubernetes types, which are exact.
//!
//! `/openapi/v2` (which kubectl asks for as protobuf only) is not served: 404.

use std::sync::OnceLock;

use api::ResourceInfo;
use api::resource::RESOURCES;
use schemars::JsonSchema;
use serde_json::{Map, Value, json};

/// A served group-version: its index key (`api/v1`, `apis/apps/v1`) and document.
struct Doc {
    key: String,
    hash: String,
    body: Vec<u8>,
}

fn docs() -> &'static [Doc] {
    static DOCS: OnceLock<Vec<Doc>> = OnceLock::new();
    DOCS.get_or_init(build_docs)
}

/// `{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=…"}, …}}`.
pub fn index() -> Value {
    let mut paths = Map::new();
    for d in docs() {
        paths.insert(
            d.key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{}?hash={}", d.key, d.hash)}),
        );
    }
    json!({"paths": paths})
}

/// The document of `api/v1` or `apis/<group>/<version>`, if served.
pub fn document(key: &str) -> Option<&'static [u8]> {
    docs()
        .iter()
        .find(|d| d.key == key)
        .map(|d| d.body.as_slice())
}

fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut gvs: Vec<(&str, &str)> = RESOURCES.iter().map(|r| (r.group, r.version)).collect();
    gvs.sort();
    gvs.dedup();
    gvs
}

/// FNV-1a, hex: the cache-busting `hash` of a document (kubectl caches documents by URL).
fn hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}

fn build_docs() -> Vec<Doc> {
    let schemas = schemas();
    group_versions()
        .into_iter()
        .map(|(group, version)| {
            let key = if group.is_empty() {
                format!("api/{version}")
            } else {
                format!("apis/{group}/{version}")
            };
            let doc = document_for(group, version, &schemas);
            let body = serde_json::to_vec(&doc).unwrap_or_default();
            Doc {
                key,
                hash: hash(&body),
                body,
            }
        })
        .collect()
}

/// The schemas of every kind (and what they reference), named as schemars names the types,
/// the kinds' own carrying `x-kubernetes-group-version-kind`.
fn schemas() -> Map<String, Value> {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let mut kinds: Vec<(String, &ResourceInfo)> = Vec::new();
    macro_rules! kind {
        ($t:ty, $info:expr) => {{
            generator.subschema_for::<$t>();
            kinds.push((<$t as JsonSchema>::schema_name().into_owned(), &$info));
        }};
    }
    kind!(api::core::Pod, api::resource::POD);
    kind!(api::core::ConfigMap, api::resource::CONFIG_MAP);
    kind!(api::core::Event, api::resource::EVENT);
    kind!(api::core::Node, api::resource::NODE);
    kind!(api::core::Namespace, api::resource::NAMESPACE);
    kind!(api::apps::ReplicaSet, api::resource::REPLICA_SET);
    kind!(api::apps::Deployment, api::resource::DEPLOYMENT);
    kind!(api::coordination::Lease, api::resource::LEASE);
    kind!(api::core::Service, api::resource::SERVICE);
    kind!(api::core::Endpoints, api::resource::ENDPOINTS);
    kind!(api::discovery::EndpointSlice, api::resource::ENDPOINT_SLICE);
    generator.subschema_for::<api::apps::Scale>();
    generator.subschema_for::<api::meta::DeleteOptions>();
    generator.subschema_for::<api::meta::Status>();
    let mut defs = generator.take_definitions(true);
    for (name, info) in kinds {
        if let Some(Value::Object(s)) = defs.get_mut(&name) {
            s.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": info.group, "kind": info.kind, "version": info.version}]),
            );
        }
    }
    if let Some(Value::Object(s)) = defs.get_mut("Scale") {
        s.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": "autoscaling", "kind": "Scale", "version": "v1"}]),
        );
    }
    defs.insert(
        "Patch".into(),
        json!({"type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."}),
    );
    defs.insert(
        "Eviction".into(),
        json!({"type": "object", "description": "Eviction evicts a pod from its node subject to certain policies and safety constraints.",
               "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                              "metadata": {"$ref": "#/components/schemas/ObjectMeta"},
                              "deleteOptions": {"$ref": "#/components/schemas/DeleteOptions"}},
               "x-kubernetes-group-version-kind": [{"group": "policy", "kind": "Eviction", "version": "v1"}]}),
    );
    defs.insert(
        "Binding".into(),
        json!({"type": "object", "description": "Binding ties one object to another; for example, a pod is bound to a node by a scheduler.",
               "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                              "metadata": {"$ref": "#/components/schemas/ObjectMeta"},
                              "target": {"type": "object", "properties": {"kind": {"type": "string"}, "name": {"type": "string"}}}},
               "required": ["target"],
               "x-kubernetes-group-version-kind": [{"group": "", "kind": "Binding", "version": "v1"}]}),
    );
    defs
}

fn param(name: &str, in_: &str, type_: &str, description: &str) -> Value {
    let mut p = json!({"name": name, "in": in_, "description": description, "schema": {"type": type_, "uniqueItems": true}});
    if in_ == "path" {
        p["required"] = json!(true);
    }
    p
}

fn write_params(patch: bool) -> Vec<Value> {
    let mut ps = vec![
        param(
            "dryRun",
            "query",
            "string",
            "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
        ),
        param(
            "fieldManager",
            "query",
            "string",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        param(
            "fieldValidation",
            "query",
            "string",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn (the default) - Strict",
        ),
        param(
            "pretty",
            "query",
            "string",
            "If 'true', then the output is pretty printed.",
        ),
    ];
    if patch {
        ps.push(param(
            "force",
            "query",
            "boolean",
            "Force is going to \"force\" Apply requests.",
        ));
    }
    ps
}

fn list_params() -> Vec<Value> {
    [
        ("allowWatchBookmarks", "boolean"),
        ("continue", "string"),
        ("fieldSelector", "string"),
        ("labelSelector", "string"),
        ("limit", "integer"),
        ("resourceVersion", "string"),
        ("resourceVersionMatch", "string"),
        ("sendInitialEvents", "boolean"),
        ("timeoutSeconds", "integer"),
        ("watch", "boolean"),
        ("pretty", "string"),
    ]
    .iter()
    .map(|(n, t)| param(n, "query", t, ""))
    .collect()
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn responses(code: &str, schema: &str) -> Value {
    let content = json!({"application/json": {"schema": schema_ref(schema)},
                         "application/yaml": {"schema": schema_ref(schema)}});
    let mut r = json!({"401": {"description": "Unauthorized"}});
    r[code] = json!({"description": "OK", "content": content});
    r
}

fn op(
    id: &str,
    action: &str,
    gvk: &Value,
    params: Vec<Value>,
    body: Option<Value>,
    resp: Value,
) -> Value {
    let mut o = json!({
        "operationId": id,
        "parameters": params,
        "responses": resp,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    });
    if let Some(b) = body {
        o["requestBody"] = json!({"content": b, "required": true});
    }
    o
}

fn body_of(schema: &str) -> Value {
    json!({"*/*": {"schema": schema_ref(schema)}})
}

fn patch_body() -> Value {
    let p = json!({"schema": schema_ref("Patch")});
    json!({"application/json-patch+json": p, "application/merge-patch+json": p})
}

fn document_for(group: &str, version: &str, schemas: &Map<String, Value>) -> Value {
    let mut paths = Map::new();
    let gv_title = if group.is_empty() {
        format!("Core{}", capitalize(version))
    } else {
        format!(
            "{}{}",
            group.split('.').next().map(capitalize).unwrap_or_default(),
            capitalize(version)
        )
    };
    let mut used: Vec<String> = vec!["Patch".into(), "DeleteOptions".into(), "Status".into()];
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let scope = if r.namespaced { "Namespaced" } else { "" };
        let base = r.group_version_path();
        let coll = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        let item = format!("{coll}/{{name}}");
        let ns_param = param(
            "namespace",
            "path",
            "string",
            "object name and auth scope, such as for teams and projects",
        );
        let name_param = param("name", "path", "string", &format!("name of the {}", r.kind));
        let mut coll_path = json!({
            "get": op(&format!("list{gv_title}{scope}{}", r.kind), "list", &gvk, list_params(), None, responses("200", r.kind)),
            "post": op(&format!("create{gv_title}{scope}{}", r.kind), "post", &gvk, write_params(false), Some(body_of(r.kind)), responses("201", r.kind)),
            "delete": op(&format!("deletecollection{gv_title}{scope}{}", r.kind), "deletecollection", &gvk, list_params(), Some(body_of("DeleteOptions")), responses("200", "Status")),
        });
        let mut item_path = json!({
            "get": op(&format!("read{gv_title}{scope}{}", r.kind), "get", &gvk, vec![param("pretty", "query", "string", "")], None, responses("200", r.kind)),
            "put": op(&format!("replace{gv_title}{scope}{}", r.kind), "put", &gvk, write_params(false), Some(body_of(r.kind)), responses("200", r.kind)),
            "patch": op(&format!("patch{gv_title}{scope}{}", r.kind), "patch", &gvk, write_params(true), Some(patch_body()), responses("200", r.kind)),
            "delete": op(&format!("delete{gv_title}{scope}{}", r.kind), "delete", &gvk,
                         vec![param("dryRun", "query", "string", ""), param("gracePeriodSeconds", "query", "integer", ""),
                              param("propagationPolicy", "query", "string", "")],
                         Some(body_of("DeleteOptions")), responses("200", "Status")),
        });
        let mut common = vec![name_param.clone()];
        if r.namespaced {
            common.push(ns_param.clone());
            coll_path["parameters"] = json!([ns_param.clone()]);
        }
        item_path["parameters"] = json!(common);
        paths.insert(coll, coll_path);
        paths.insert(item.clone(), item_path);
        if r.namespaced {
            paths.insert(
                format!("{base}/{}", r.plural),
                json!({"get": op(&format!("list{gv_title}{}ForAllNamespaces", r.kind), "list", &gvk, list_params(), None, responses("200", r.kind))}),
            );
        }
        let mut sub = |name: &str, kind_schema: &str, sub_gvk: &Value, verbs: &[&str]| {
            let mut p = Map::new();
            for v in verbs {
                let o = match *v {
                    "get" => op(
                        &format!("read{gv_title}{scope}{}{}", r.kind, capitalize(name)),
                        "get",
                        sub_gvk,
                        vec![],
                        None,
                        responses("200", kind_schema),
                    ),
                    "put" => op(
                        &format!("replace{gv_title}{scope}{}{}", r.kind, capitalize(name)),
                        "put",
                        sub_gvk,
                        write_params(false),
                        Some(body_of(kind_schema)),
                        responses("200", kind_schema),
                    ),
                    "patch" => op(
                        &format!("patch{gv_title}{scope}{}{}", r.kind, capitalize(name)),
                        "patch",
                        sub_gvk,
                        write_params(true),
                        Some(patch_body()),
                        responses("200", kind_schema),
                    ),
                    _ => op(
                        &format!("create{gv_title}{scope}{}{}", r.kind, capitalize(name)),
                        "post",
                        sub_gvk,
                        write_params(false),
                        Some(body_of(kind_schema)),
                        responses("201", kind_schema),
                    ),
                };
                p.insert(v.to_string(), o);
            }
            p.insert("parameters".into(), json!(common.clone()));
            paths.insert(format!("{item}/{name}"), Value::Object(p));
        };
        if r.has_status {
            sub("status", r.kind, &gvk, &["get", "put", "patch"]);
        }
        if r.has_scale {
            let scale_gvk = json!({"group": "autoscaling", "version": "v1", "kind": "Scale"});
            sub("scale", "Scale", &scale_gvk, &["get", "put", "patch"]);
            used.push("Scale".into());
        }
        if r.kind == "Pod" {
            sub(
                "binding",
                "Binding",
                &json!({"group": "", "version": "v1", "kind": "Binding"}),
                &["post"],
            );
            sub(
                "eviction",
                "Eviction",
                &json!({"group": "policy", "version": "v1", "kind": "Eviction"}),
                &["post"],
            );
            used.push("Binding".into());
            used.push("Eviction".into());
            let mut log = json!({"get": op("readCoreV1NamespacedPodLog", "get", &gvk,
                ["container", "follow", "limitBytes", "previous", "sinceSeconds", "sinceTime", "tailLines", "timestamps"]
                    .iter().map(|n| param(n, "query", "string", "")).collect(), None,
                json!({"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}))});
            log["parameters"] = json!(common.clone());
            paths.insert(format!("{item}/log"), log);
        }
        used.push(r.kind.to_string());
    }
    // The schemas this document's paths use, and everything they reference.
    let mut components = Map::new();
    let mut todo = used;
    while let Some(name) = todo.pop() {
        if components.contains_key(&name) {
            continue;
        }
        if let Some(s) = schemas.get(&name) {
            collect_refs(s, &mut todo);
            components.insert(name, s.clone());
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", crate::discovery::KUBE_MAJOR, crate::discovery::KUBE_MINOR)},
        "paths": paths,
        "components": {"schemas": components},
    })
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref")
                && let Some(name) = r.strip_prefix("#/components/schemas/")
            {
                out.push(name.to_string());
            }
            m.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_documents() {
        let idx = index();
        let paths = idx["paths"].as_object().unwrap();
        for k in [
            "api/v1",
            "apis/apps/v1",
            "apis/coordination.k8s.io/v1",
            "apis/discovery.k8s.io/v1",
        ] {
            let url = paths[k]["serverRelativeURL"].as_str().unwrap();
            assert!(url.starts_with(&format!("/openapi/v3/{k}?hash=")), "{url}");
            let doc: Value = serde_json::from_slice(document(k).unwrap()).unwrap();
            assert_eq!(doc["openapi"], "3.0.0");
        }
        let apps: Value = serde_json::from_slice(document("apis/apps/v1").unwrap()).unwrap();
        let patch =
            &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        assert!(
            patch["requestBody"]["content"]
                .get("application/strategic-merge-patch+json")
                .is_none(),
            "kubectl uses its compiled-in types for strategic merge"
        );
        let schemas = apps["components"]["schemas"].as_object().unwrap();
        assert_eq!(
            schemas["Deployment"]["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        // Every reference resolves.
        let mut refs = vec![];
        collect_refs(&apps, &mut refs);
        for r in refs {
            assert!(schemas.contains_key(&r), "dangling $ref {r}");
        }
        assert!(document("apis/batch/v1").is_none());
        let core: Value = serde_json::from_slice(document("api/v1").unwrap()).unwrap();
        let svc = &core["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]["patch"];
        assert_eq!(svc["x-kubernetes-group-version-kind"]["kind"], "Service");
        let schemas = core["components"]["schemas"].as_object().unwrap();
        assert!(
            schemas.contains_key("CoreV1EndpointPort"),
            "Endpoints' port type"
        );
        let mut refs = vec![];
        collect_refs(&core, &mut refs);
        for r in refs {
            assert!(schemas.contains_key(&r), "dangling $ref {r}");
        }
    }
}
