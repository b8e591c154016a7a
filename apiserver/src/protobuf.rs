//! The protobuf request bodies kubectl's typed clients send (`Content-Type:
//! application/vnd.kubernetes.protobuf`): `kubectl create configmap` and `create namespace`
//! POST a ConfigMap / Namespace, `kubectl create deployment` a Deployment and `kubectl create
//! service` a Service (both decoded by [`crate::protobuf_wire`]), `kubectl drain` POSTs an Eviction, a scheduler may POST a
//! Binding. The envelope is the magic `k8s\0` followed by a `runtime.Unknown` whose `raw` holds
//! the object. The messages are declared by hand (fields and tags from Kubernetes'
//! `generated.proto` files) and decoded with `prost`; only these kinds are accepted, anything
//! else is 415 Unsupported Media Type.
//!
//! The decoded object becomes the same JSON a JSON client would have sent, and takes the same
//! path from there (defaulting, validation, storage). Responses are JSON, which these clients
//! accept.

use std::collections::BTreeMap;

use prost::Message;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};

pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

#[derive(Clone, PartialEq, Message)]
pub struct TypeMeta {
    #[prost(string, optional, tag = "1")]
    pub api_version: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub kind: Option<String>,
}

/// `runtime.Unknown`: the envelope of every protobuf object.
#[derive(Clone, PartialEq, Message)]
pub struct Unknown {
    #[prost(message, optional, tag = "1")]
    pub type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub raw: Option<Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    pub content_encoding: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub content_type: Option<String>,
}

/// `meta.v1.Time`.
#[derive(Clone, PartialEq, Message)]
pub struct Time {
    #[prost(int64, optional, tag = "1")]
    pub seconds: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    pub nanos: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OwnerReference {
    #[prost(string, optional, tag = "1")]
    pub kind: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub uid: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub api_version: Option<String>,
    #[prost(bool, optional, tag = "6")]
    pub controller: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub block_owner_deletion: Option<bool>,
}

/// `meta.v1.ObjectMeta` (managedFields is not read).
#[derive(Clone, PartialEq, Message)]
pub struct ObjectMeta {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub generate_name: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub namespace: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub uid: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub resource_version: Option<String>,
    #[prost(int64, optional, tag = "7")]
    pub generation: Option<i64>,
    #[prost(message, optional, tag = "8")]
    pub creation_timestamp: Option<Time>,
    #[prost(message, optional, tag = "9")]
    pub deletion_timestamp: Option<Time>,
    #[prost(int64, optional, tag = "10")]
    pub deletion_grace_period_seconds: Option<i64>,
    #[prost(btree_map = "string, string", tag = "11")]
    pub labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    pub annotations: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "13")]
    pub owner_references: Vec<OwnerReference>,
    #[prost(string, repeated, tag = "14")]
    pub finalizers: Vec<String>,
}

/// `core.v1.ConfigMap`.
#[derive(Clone, PartialEq, Message)]
pub struct ConfigMap {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, string", tag = "2")]
    pub data: BTreeMap<String, String>,
    #[prost(btree_map = "string, bytes", tag = "3")]
    pub binary_data: BTreeMap<String, Vec<u8>>,
    #[prost(bool, optional, tag = "4")]
    pub immutable: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NamespaceSpec {
    #[prost(string, repeated, tag = "1")]
    pub finalizers: Vec<String>,
}

/// `core.v1.Namespace` (status is the server's: not read).
#[derive(Clone, PartialEq, Message)]
pub struct Namespace {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<NamespaceSpec>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Preconditions {
    #[prost(string, optional, tag = "1")]
    pub uid: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub resource_version: Option<String>,
}

/// `meta.v1.DeleteOptions`.
#[derive(Clone, PartialEq, Message)]
pub struct DeleteOptions {
    #[prost(int64, optional, tag = "1")]
    pub grace_period_seconds: Option<i64>,
    #[prost(message, optional, tag = "2")]
    pub preconditions: Option<Preconditions>,
    #[prost(bool, optional, tag = "3")]
    pub orphan_dependents: Option<bool>,
    #[prost(string, optional, tag = "4")]
    pub propagation_policy: Option<String>,
    #[prost(string, repeated, tag = "5")]
    pub dry_run: Vec<String>,
}

/// `policy.v1.Eviction`.
#[derive(Clone, PartialEq, Message)]
pub struct Eviction {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub delete_options: Option<DeleteOptions>,
}

/// `core.v1.ObjectReference`.
#[derive(Clone, PartialEq, Message)]
pub struct ObjectReference {
    #[prost(string, optional, tag = "1")]
    pub kind: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub namespace: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub uid: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub api_version: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub resource_version: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub field_path: Option<String>,
}

/// `core.v1.Binding`.
#[derive(Clone, PartialEq, Message)]
pub struct Binding {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub target: Option<ObjectReference>,
}

fn insert_str(m: &mut Map<String, Value>, k: &str, v: &Option<String>) {
    if let Some(s) = v.as_ref().filter(|s| !s.is_empty()) {
        m.insert(k.into(), json!(s));
    }
}

fn time_json(t: &Time) -> Value {
    let secs = t.seconds.unwrap_or(0);
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(d) => json!(d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        None => Value::Null,
    }
}

fn meta_json(m: &ObjectMeta) -> Value {
    let mut o = Map::new();
    insert_str(&mut o, "name", &m.name);
    insert_str(&mut o, "generateName", &m.generate_name);
    insert_str(&mut o, "namespace", &m.namespace);
    insert_str(&mut o, "uid", &m.uid);
    insert_str(&mut o, "resourceVersion", &m.resource_version);
    if let Some(g) = m.generation.filter(|g| *g != 0) {
        o.insert("generation".into(), json!(g));
    }
    if let Some(t) = &m.creation_timestamp {
        o.insert("creationTimestamp".into(), time_json(t));
    }
    if let Some(t) = &m.deletion_timestamp {
        o.insert("deletionTimestamp".into(), time_json(t));
    }
    if let Some(g) = m.deletion_grace_period_seconds {
        o.insert("deletionGracePeriodSeconds".into(), json!(g));
    }
    if !m.labels.is_empty() {
        o.insert("labels".into(), json!(m.labels));
    }
    if !m.annotations.is_empty() {
        o.insert("annotations".into(), json!(m.annotations));
    }
    if !m.owner_references.is_empty() {
        let refs: Vec<Value> = m
            .owner_references
            .iter()
            .map(|r| {
                let mut x = Map::new();
                insert_str(&mut x, "apiVersion", &r.api_version);
                insert_str(&mut x, "kind", &r.kind);
                insert_str(&mut x, "name", &r.name);
                insert_str(&mut x, "uid", &r.uid);
                if let Some(c) = r.controller {
                    x.insert("controller".into(), json!(c));
                }
                if let Some(b) = r.block_owner_deletion {
                    x.insert("blockOwnerDeletion".into(), json!(b));
                }
                Value::Object(x)
            })
            .collect();
        o.insert("ownerReferences".into(), json!(refs));
    }
    if !m.finalizers.is_empty() {
        o.insert("finalizers".into(), json!(m.finalizers));
    }
    Value::Object(o)
}

fn delete_options_json(d: &DeleteOptions) -> Value {
    let mut o = Map::new();
    if let Some(g) = d.grace_period_seconds {
        o.insert("gracePeriodSeconds".into(), json!(g));
    }
    if let Some(p) = &d.preconditions {
        let mut x = Map::new();
        insert_str(&mut x, "uid", &p.uid);
        insert_str(&mut x, "resourceVersion", &p.resource_version);
        o.insert("preconditions".into(), Value::Object(x));
    }
    if let Some(b) = d.orphan_dependents {
        o.insert("orphanDependents".into(), json!(b));
    }
    insert_str(&mut o, "propagationPolicy", &d.propagation_policy);
    if !d.dry_run.is_empty() {
        o.insert("dryRun".into(), json!(d.dry_run));
    }
    Value::Object(o)
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn bad(kind: &str, e: prost::DecodeError) -> ApiError {
    ApiError::bad_request(format!("error decoding {kind} from protobuf: {e}"))
}

/// Decode a protobuf request body into the JSON object a JSON client would have sent.
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let rest = body.strip_prefix(MAGIC).ok_or_else(|| {
        ApiError::bad_request("protobuf body does not start with the Kubernetes magic number")
    })?;
    let unknown = Unknown::decode(rest).map_err(|e| bad("runtime.Unknown", e))?;
    let tm = unknown.type_meta.unwrap_or(TypeMeta {
        api_version: None,
        kind: None,
    });
    let api_version = tm.api_version.unwrap_or_default();
    let kind = tm.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let mut obj = match (api_version.as_str(), kind.as_str()) {
        ("v1", "ConfigMap") => {
            let c = ConfigMap::decode(raw.as_slice()).map_err(|e| bad(&kind, e))?;
            let mut o = json!({"metadata": meta_json(&c.metadata.unwrap_or_default())});
            if !c.data.is_empty() {
                o["data"] = json!(c.data);
            }
            if !c.binary_data.is_empty() {
                let b: BTreeMap<&String, String> =
                    c.binary_data.iter().map(|(k, v)| (k, base64(v))).collect();
                o["binaryData"] = json!(b);
            }
            if let Some(i) = c.immutable {
                o["immutable"] = json!(i);
            }
            o
        }
        ("v1", "Namespace") => {
            let n = Namespace::decode(raw.as_slice()).map_err(|e| bad(&kind, e))?;
            let mut o = json!({"metadata": meta_json(&n.metadata.unwrap_or_default())});
            if let Some(s) = n.spec.filter(|s| !s.finalizers.is_empty()) {
                o["spec"] = json!({"finalizers": s.finalizers});
            }
            o
        }
        ("policy/v1", "Eviction") => {
            let e = Eviction::decode(raw.as_slice()).map_err(|e| bad(&kind, e))?;
            let mut o = json!({"metadata": meta_json(&e.metadata.unwrap_or_default())});
            if let Some(d) = &e.delete_options {
                o["deleteOptions"] = delete_options_json(d);
            }
            o
        }
        ("v1", "DeleteOptions") | ("meta.k8s.io/v1", "DeleteOptions") => {
            let d = DeleteOptions::decode(raw.as_slice()).map_err(|e| bad(&kind, e))?;
            delete_options_json(&d)
        }
        ("apps/v1", "Deployment") => {
            crate::protobuf_wire::to_json(&raw, crate::protobuf_wire::DEPLOYMENT, "Deployment")?
        }
        ("v1", "Service") => {
            crate::protobuf_wire::to_json(&raw, crate::protobuf_wire::SERVICE, "Service")?
        }
        ("v1", "Binding") => {
            let b = Binding::decode(raw.as_slice()).map_err(|e| bad(&kind, e))?;
            let t = b.target.unwrap_or_default();
            let mut target = Map::new();
            insert_str(&mut target, "kind", &t.kind);
            insert_str(&mut target, "namespace", &t.namespace);
            insert_str(&mut target, "name", &t.name);
            insert_str(&mut target, "uid", &t.uid);
            insert_str(&mut target, "apiVersion", &t.api_version);
            json!({"metadata": meta_json(&b.metadata.unwrap_or_default()), "target": target})
        }
        _ => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - a protobuf {kind:?} ({api_version}) is not accepted: send it as application/json"
                ),
            ));
        }
    };
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        }
        .encode(&mut out)
        .unwrap();
        out
    }

    #[test]
    fn config_map_as_kubectl_create_sends_it() {
        let cm = ConfigMap {
            metadata: Some(ObjectMeta {
                name: Some("game".into()),
                namespace: Some("default".into()),
                labels: [("a".to_string(), "b".to_string())].into(),
                creation_timestamp: Some(Time::default()),
                ..Default::default()
            }),
            data: [("k".to_string(), "v".to_string())].into(),
            binary_data: [("bin".to_string(), vec![0u8, 1, 2, 255])].into(),
            immutable: None,
        };
        let v = decode(&envelope("v1", "ConfigMap", cm.encode_to_vec())).unwrap();
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["kind"], "ConfigMap");
        assert_eq!(v["metadata"]["name"], "game");
        assert_eq!(v["metadata"]["labels"]["a"], "b");
        assert_eq!(v["data"]["k"], "v");
        assert_eq!(v["binaryData"]["bin"], "AAEC/w==");
        assert!(v.get("immutable").is_none());
    }

    #[test]
    fn eviction_with_delete_options() {
        let e = Eviction {
            metadata: Some(ObjectMeta {
                name: Some("p".into()),
                ..Default::default()
            }),
            delete_options: Some(DeleteOptions {
                grace_period_seconds: Some(5),
                preconditions: None,
                orphan_dependents: None,
                propagation_policy: None,
                dry_run: vec![],
            }),
        };
        let v = decode(&envelope("policy/v1", "Eviction", e.encode_to_vec())).unwrap();
        assert_eq!(v["deleteOptions"]["gracePeriodSeconds"], 5);
        assert_eq!(v["metadata"]["name"], "p");
    }

    #[test]
    fn other_kinds_and_garbage_are_refused() {
        let err = decode(&envelope("apps/v1", "StatefulSet", vec![])).unwrap_err();
        assert_eq!(err.status().code, 415);
        assert_eq!(decode(b"{}").unwrap_err().status().code, 400);
        assert_eq!(
            decode(&[b'k', b'8', b's', 0, 0xff, 0xff])
                .unwrap_err()
                .status()
                .code,
            400
        );
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }
}
