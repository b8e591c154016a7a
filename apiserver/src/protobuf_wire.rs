//! Protobuf → JSON for kinds too large to declare as `prost` messages field by field: a table of
//! the fields kube-lite reads (tag, JSON name, kind) drives a walk over the wire format.
//!
//! Go's generated marshallers write every non-pointer field, zero or not, so an unknown field
//! holding its zero value (0, "", an empty message) is skipped; an unknown field with a value is
//! refused (415) rather than dropped, so nothing a client sent is lost silently.

use prost::bytes::Buf;
use prost::encoding::{WireType, decode_key, decode_varint};
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

pub enum Kind {
    Str,
    Int,
    Bool,
    Msg(&'static [Field]),
    RepStr,
    RepMsg(&'static [Field]),
    /// `map<string, string>`: entries are messages {1: key, 2: value}.
    MapStr,
    /// `intstr.IntOrString` {type 1, intVal 2, strVal 3}: a JSON number or string.
    IntOrString,
    /// Read-only or server-owned (status, timestamps): accepted and not read.
    Skip,
}

pub struct Field {
    pub tag: u32,
    pub name: &'static str,
    pub kind: Kind,
    /// A pointer field in Go: present means set, even to zero (`replicas: 0`).
    pub keep_zero: bool,
}

const fn f(tag: u32, name: &'static str, kind: Kind) -> Field {
    Field {
        tag,
        name,
        kind,
        keep_zero: false,
    }
}

const fn ptr(tag: u32, name: &'static str, kind: Kind) -> Field {
    Field {
        tag,
        name,
        kind,
        keep_zero: true,
    }
}

// Tags from k8s.io/api's and apimachinery's generated.proto files.

pub const OBJECT_META: &[Field] = &[
    f(1, "name", Kind::Str),
    f(2, "generateName", Kind::Str),
    f(3, "namespace", Kind::Str),
    f(4, "selfLink", Kind::Skip),
    f(5, "uid", Kind::Skip),
    f(6, "resourceVersion", Kind::Str),
    f(7, "generation", Kind::Skip),
    f(8, "creationTimestamp", Kind::Skip),
    f(11, "labels", Kind::MapStr),
    f(12, "annotations", Kind::MapStr),
    f(14, "finalizers", Kind::RepStr),
    f(17, "managedFields", Kind::Skip),
];

const SELECTOR_REQUIREMENT: &[Field] = &[
    f(1, "key", Kind::Str),
    f(2, "operator", Kind::Str),
    f(3, "values", Kind::RepStr),
];

const LABEL_SELECTOR: &[Field] = &[
    f(1, "matchLabels", Kind::MapStr),
    f(2, "matchExpressions", Kind::RepMsg(SELECTOR_REQUIREMENT)),
];

const CONTAINER_PORT: &[Field] = &[
    f(1, "name", Kind::Str),
    f(2, "hostPort", Kind::Int),
    f(3, "containerPort", Kind::Int),
    f(4, "protocol", Kind::Str),
    f(5, "hostIP", Kind::Str),
];

const ENV_VAR: &[Field] = &[f(1, "name", Kind::Str), f(2, "value", Kind::Str)];

const CONTAINER: &[Field] = &[
    f(1, "name", Kind::Str),
    f(2, "image", Kind::Str),
    f(3, "command", Kind::RepStr),
    f(4, "args", Kind::RepStr),
    f(5, "workingDir", Kind::Str),
    f(6, "ports", Kind::RepMsg(CONTAINER_PORT)),
    f(7, "env", Kind::RepMsg(ENV_VAR)),
    f(13, "terminationMessagePath", Kind::Str),
    f(14, "imagePullPolicy", Kind::Str),
    f(20, "terminationMessagePolicy", Kind::Str),
];

const POD_SPEC: &[Field] = &[
    f(2, "containers", Kind::RepMsg(CONTAINER)),
    f(3, "restartPolicy", Kind::Str),
    ptr(4, "terminationGracePeriodSeconds", Kind::Int),
    f(6, "dnsPolicy", Kind::Str),
    f(7, "nodeSelector", Kind::MapStr),
    f(8, "serviceAccountName", Kind::Str),
    f(10, "nodeName", Kind::Str),
    f(19, "schedulerName", Kind::Str),
];

const POD_TEMPLATE_SPEC: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    f(2, "spec", Kind::Msg(POD_SPEC)),
];

const ROLLING_UPDATE_DEPLOYMENT: &[Field] = &[
    f(1, "maxUnavailable", Kind::IntOrString),
    f(2, "maxSurge", Kind::IntOrString),
];

const DEPLOYMENT_STRATEGY: &[Field] = &[
    f(1, "type", Kind::Str),
    f(2, "rollingUpdate", Kind::Msg(ROLLING_UPDATE_DEPLOYMENT)),
];

const DEPLOYMENT_SPEC: &[Field] = &[
    ptr(1, "replicas", Kind::Int),
    f(2, "selector", Kind::Msg(LABEL_SELECTOR)),
    f(3, "template", Kind::Msg(POD_TEMPLATE_SPEC)),
    f(4, "strategy", Kind::Msg(DEPLOYMENT_STRATEGY)),
    f(5, "minReadySeconds", Kind::Int),
    ptr(6, "revisionHistoryLimit", Kind::Int),
    f(7, "paused", Kind::Bool),
    ptr(9, "progressDeadlineSeconds", Kind::Int),
];

/// `apps.v1.Deployment`: what `kubectl create deployment` sends, and the usual spec fields.
pub const DEPLOYMENT: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    f(2, "spec", Kind::Msg(DEPLOYMENT_SPEC)),
    f(3, "status", Kind::Skip),
];

const SERVICE_PORT: &[Field] = &[
    f(1, "name", Kind::Str),
    f(2, "protocol", Kind::Str),
    f(3, "port", Kind::Int),
    f(4, "targetPort", Kind::IntOrString),
    f(5, "nodePort", Kind::Int),
    ptr(6, "appProtocol", Kind::Str),
];

const SERVICE_SPEC: &[Field] = &[
    f(1, "ports", Kind::RepMsg(SERVICE_PORT)),
    f(2, "selector", Kind::MapStr),
    f(3, "clusterIP", Kind::Str),
    f(4, "type", Kind::Str),
    f(5, "externalIPs", Kind::RepStr),
    f(7, "sessionAffinity", Kind::Str),
    f(8, "loadBalancerIP", Kind::Str),
    f(9, "loadBalancerSourceRanges", Kind::RepStr),
    f(10, "externalName", Kind::Str),
    f(11, "externalTrafficPolicy", Kind::Str),
    f(12, "healthCheckNodePort", Kind::Int),
    f(13, "publishNotReadyAddresses", Kind::Bool),
    ptr(17, "ipFamilyPolicy", Kind::Str),
    f(18, "clusterIPs", Kind::RepStr),
    f(19, "ipFamilies", Kind::RepStr),
    ptr(20, "allocateLoadBalancerNodePorts", Kind::Bool),
    ptr(21, "loadBalancerClass", Kind::Str),
    ptr(22, "internalTrafficPolicy", Kind::Str),
];

/// `core.v1.Service`: what `kubectl create service` sends, and the usual spec fields.
pub const SERVICE: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    f(2, "spec", Kind::Msg(SERVICE_SPEC)),
    f(3, "status", Kind::Skip),
];

fn malformed(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("error decoding {what} from protobuf: {e}"))
}

/// A field's raw value.
enum Raw<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed(u64),
}

impl Raw<'_> {
    fn is_zero(&self) -> bool {
        match self {
            Raw::Varint(v) | Raw::Fixed(v) => *v == 0,
            Raw::Bytes(b) => b.is_empty(),
        }
    }
}

fn next_field<'a>(buf: &mut &'a [u8], what: &str) -> ApiResult<(u32, Raw<'a>)> {
    let (tag, wire) = decode_key(buf).map_err(|e| malformed(what, e))?;
    let short = || malformed(what, "truncated field");
    let raw = match wire {
        WireType::Varint => Raw::Varint(decode_varint(buf).map_err(|e| malformed(what, e))?),
        WireType::LengthDelimited => {
            let len = decode_varint(buf).map_err(|e| malformed(what, e))?;
            let len = usize::try_from(len).map_err(|_| short())?;
            let bytes = buf.get(..len).ok_or_else(short)?;
            buf.advance(len);
            Raw::Bytes(bytes)
        }
        WireType::SixtyFourBit => {
            let b: [u8; 8] = buf
                .get(..8)
                .ok_or_else(short)?
                .try_into()
                .map_err(|_| short())?;
            buf.advance(8);
            Raw::Fixed(u64::from_le_bytes(b))
        }
        WireType::ThirtyTwoBit => {
            let b: [u8; 4] = buf
                .get(..4)
                .ok_or_else(short)?
                .try_into()
                .map_err(|_| short())?;
            buf.advance(4);
            Raw::Fixed(u64::from(u32::from_le_bytes(b)))
        }
        WireType::StartGroup | WireType::EndGroup => {
            return Err(malformed(what, "groups are not used by Kubernetes"));
        }
    };
    Ok((tag, raw))
}

fn string(raw: &Raw, what: &str) -> ApiResult<String> {
    match raw {
        Raw::Bytes(b) => std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|e| malformed(what, e)),
        _ => Err(malformed(what, "expected a length-delimited field")),
    }
}

fn varint(raw: &Raw, what: &str) -> ApiResult<u64> {
    match raw {
        Raw::Varint(v) => Ok(*v),
        _ => Err(malformed(what, "expected a varint field")),
    }
}

fn bytes<'a>(raw: &Raw<'a>, what: &str) -> ApiResult<&'a [u8]> {
    match raw {
        Raw::Bytes(b) => Ok(b),
        _ => Err(malformed(what, "expected a length-delimited field")),
    }
}

/// int32 and int64 fields are varints of the two's-complement 64-bit value.
fn int(raw: &Raw, what: &str) -> ApiResult<Value> {
    Ok(Value::from(varint(raw, what)? as i64))
}

fn map_entry(b: &[u8], what: &str) -> ApiResult<(String, String)> {
    let mut buf = b;
    let (mut k, mut v) = (String::new(), String::new());
    while !buf.is_empty() {
        match next_field(&mut buf, what)? {
            (1, raw) => k = string(&raw, what)?,
            (2, raw) => v = string(&raw, what)?,
            _ => return Err(malformed(what, "unexpected field in a map entry")),
        }
    }
    Ok((k, v))
}

fn int_or_string(b: &[u8], what: &str) -> ApiResult<Value> {
    let mut buf = b;
    let (mut ty, mut int_val, mut str_val) = (0, Value::from(0), String::new());
    while !buf.is_empty() {
        match next_field(&mut buf, what)? {
            (1, raw) => ty = varint(&raw, what)?,
            (2, raw) => int_val = int(&raw, what)?,
            (3, raw) => str_val = string(&raw, what)?,
            _ => return Err(malformed(what, "unexpected field in an IntOrString")),
        }
    }
    Ok(if ty == 1 {
        Value::String(str_val)
    } else {
        int_val
    })
}

/// Decode the message in `b` by `schema` into the JSON object a JSON client would send.
/// `path` names it in errors (`Deployment.spec.template`).
pub fn to_json(b: &[u8], schema: &[Field], path: &str) -> ApiResult<Value> {
    let mut out = Map::new();
    let mut buf = b;
    while !buf.is_empty() {
        let (tag, raw) = next_field(&mut buf, path)?;
        let Some(field) = schema.iter().find(|f| f.tag == tag) else {
            if raw.is_zero() {
                continue;
            }
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "field {tag} of {path} is not read from protobuf by kube-lite: send the object as application/json"
                ),
            ));
        };
        let what = format!("{path}.{}", field.name);
        let repeated = matches!(field.kind, Kind::RepStr | Kind::RepMsg(_));
        if raw.is_zero() && !field.keep_zero && !repeated {
            continue;
        }
        let value = match &field.kind {
            Kind::Skip => continue,
            Kind::Str => Value::String(string(&raw, &what)?),
            Kind::Int => int(&raw, &what)?,
            Kind::Bool => Value::Bool(varint(&raw, &what)? != 0),
            Kind::Msg(s) => match to_json(bytes(&raw, &what)?, s, &what)? {
                // Only zero-valued fields inside (Go's `strategy: {type: ""}`).
                Value::Object(m) if m.is_empty() && !field.keep_zero => continue,
                v => v,
            },
            Kind::IntOrString => int_or_string(bytes(&raw, &what)?, &what)?,
            Kind::RepStr => {
                push(&mut out, field.name, Value::String(string(&raw, &what)?));
                continue;
            }
            Kind::RepMsg(s) => {
                push(
                    &mut out,
                    field.name,
                    to_json(bytes(&raw, &what)?, s, &what)?,
                );
                continue;
            }
            Kind::MapStr => {
                let (k, v) = map_entry(bytes(&raw, &what)?, &what)?;
                let m = out
                    .entry(field.name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = m {
                    m.insert(k, Value::String(v));
                }
                continue;
            }
        };
        out.insert(field.name.to_string(), value);
    }
    Ok(Value::Object(out))
}

fn push(out: &mut Map<String, Value>, name: &str, v: Value) {
    let list = out.entry(name).or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(a) = list {
        a.push(v);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The bodies are what kubectl 1.37 sent for `kubectl create deployment web --image=busybox
    /// --replicas=2 --port=8000 -- sh -c 'sleep 100'` and `kubectl create deployment zero
    /// --image=registry.k8s.io/pause:3.9 --replicas=0`, captured on the wire.
    #[test]
    fn kubectl_create_deployment_decodes_as_its_json() {
        let web =
            crate::protobuf::decode(include_bytes!("testdata/kubectl-create-deployment-web.pb"))
                .unwrap();
        assert_eq!(
            web,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{
                            "name": "busybox",
                            "image": "busybox",
                            "command": ["sh", "-c", "sleep 100"],
                            "ports": [{"containerPort": 8000}],
                        }]},
                    },
                },
            })
        );
        let zero =
            crate::protobuf::decode(include_bytes!("testdata/kubectl-create-deployment-zero.pb"))
                .unwrap();
        // A pointer field set to zero is kept: 0 replicas, not the default 1.
        assert_eq!(zero["spec"]["replicas"], 0);
        assert_eq!(
            zero["spec"]["template"]["spec"]["containers"][0]["image"],
            "registry.k8s.io/pause:3.9"
        );
    }

    #[test]
    fn kubectl_create_service_bodies_decode() {
        let cip = crate::protobuf::decode(include_bytes!(
            "testdata/kubectl-create-service-clusterip.pb"
        ))
        .unwrap();
        assert_eq!(
            cip,
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "my-cs", "labels": {"app": "my-cs"}},
                "spec": {"type": "ClusterIP", "selector": {"app": "my-cs"},
                         "ports": [{"name": "5678-8080", "protocol": "TCP", "port": 5678, "targetPort": 8080}]},
            })
        );
        let np = crate::protobuf::decode(include_bytes!(
            "testdata/kubectl-create-service-nodeport.pb"
        ))
        .unwrap();
        assert_eq!(np["spec"]["type"], "NodePort");
        assert_eq!(np["spec"]["ports"][0]["nodePort"], 30099);
    }

    /// Field 8 of a Container (resources) with a value, inside a Deployment.
    fn deployment_with_container(container: &[u8]) -> Vec<u8> {
        let ld = |tag: u8, body: &[u8]| {
            let mut v = vec![tag << 3 | 2, body.len() as u8];
            v.extend_from_slice(body);
            v
        };
        let pod_spec = ld(2, container);
        let template = ld(2, &pod_spec);
        let spec = ld(3, &template);
        ld(2, &spec)
    }

    #[test]
    fn an_unread_field_with_a_value_is_refused_and_one_at_zero_is_skipped() {
        let mut container = vec![0x0a, 1, b'c'];
        container.extend([0x42, 0]); // resources: {} (Go writes it always)
        container.extend([0x80, 0x01, 0]); // stdin: false
        let ok = to_json(
            &deployment_with_container(&container),
            DEPLOYMENT,
            "Deployment",
        );
        assert_eq!(
            ok.unwrap()["spec"]["template"]["spec"]["containers"],
            json!([{"name": "c"}])
        );

        container.extend([0x42, 2, 0x0a, 0]); // resources with a (zero) limits entry
        let err = to_json(
            &deployment_with_container(&container),
            DEPLOYMENT,
            "Deployment",
        )
        .unwrap_err();
        assert_eq!(err.status().code, 415);
        assert!(
            err.status()
                .message
                .contains("field 8 of Deployment.spec.template.spec.containers"),
            "{:?}",
            err.status().message
        );
    }

    #[test]
    fn repeated_empty_strings_keep_their_place_and_int_or_string_picks_its_type() {
        let args = [0x22, 0, 0x22, 1, b'x']; // args: ["", "x"]
        let v = to_json(&args, CONTAINER, "Container").unwrap();
        assert_eq!(v["args"], json!(["", "x"]));
        let rolling = [
            0x0a, 2, 0x10, 4, // maxUnavailable: {type 0, intVal 4}
            0x12, 7, 0x08, 1, 0x1a, 3, b'2', b'5', b'%', // maxSurge: "25%"
        ];
        let v = to_json(&rolling, ROLLING_UPDATE_DEPLOYMENT, "RollingUpdate").unwrap();
        assert_eq!(v, json!({"maxUnavailable": 4, "maxSurge": "25%"}));
        assert_eq!(
            to_json(&[0x0a, 5, b'a'], CONTAINER, "Container")
                .unwrap_err()
                .status()
                .code,
            400
        );
    }
}
