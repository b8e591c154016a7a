//! Documents in and out: multi-document YAML or JSON to JSON values, and strict decoding that
//! reports unknown fields by their path (as `fieldValidation=Strict` does).

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("error parsing YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("error parsing JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("document {index}: {message}")]
    Document { index: usize, message: String },
}

/// Parse every document of a YAML (or JSON) stream; `kind: List` documents are flattened into
/// their items, empty documents skipped. Each document must be a mapping.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, CodecError> {
    let mut out = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc)?;
        match v {
            Value::Null => continue,
            Value::Object(ref m) => {
                let is_list = m
                    .get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k == "List" || k.ends_with("List"))
                    && m.get("items").is_some_and(Value::is_array);
                if is_list {
                    if let Some(Value::Array(items)) = m.get("items") {
                        out.extend(items.iter().cloned());
                    }
                } else {
                    out.push(v);
                }
            }
            _ => {
                return Err(CodecError::Document {
                    index: index + 1,
                    message: "expected a mapping (an object with apiVersion, kind and metadata)"
                        .into(),
                });
            }
        }
    }
    Ok(out)
}

/// Decode a value into `T`, collecting the paths of fields `T` does not know
/// (`spec.template.spec.containers[0].imagee`).
pub fn decode_collecting_unknown<T: DeserializeOwned>(
    v: &Value,
) -> Result<(T, Vec<String>), serde_json::Error> {
    let mut unknown = Vec::new();
    let t: T = serde_ignored::deserialize(v, |path| unknown.push(kube_path(&path.to_string())))?;
    Ok((t, unknown))
}

/// serde_ignored prints `spec.containers.0.x`; Kubernetes prints `spec.containers[0].x`.
fn kube_path(p: &str) -> String {
    let mut out = String::new();
    for seg in p.split('.') {
        if !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

/// YAML of any serializable value.
pub fn to_yaml<T: serde::Serialize>(v: &T) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Pod;

    #[test]
    fn multi_document_and_lists() {
        let docs =
            parse_documents("a: 1\n---\n---\nkind: List\nitems: [{b: 2}, {c: 3}]\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert!(parse_documents("- 1\n- 2\n").is_err());
        assert!(parse_documents("a: [1\n").is_err());
        assert_eq!(parse_documents("{\"a\": 1}").unwrap().len(), 1);
    }

    #[test]
    fn unknown_fields_by_path() {
        let v: Value = serde_json::json!({
            "metadata": {"name": "p", "nmae": 1},
            "spec": {"containers": [{"name": "c", "imagee": "x"}]}
        });
        let (_pod, unknown) = decode_collecting_unknown::<Pod>(&v).unwrap();
        assert_eq!(unknown, vec!["metadata.nmae", "spec.containers[0].imagee"]);
    }
}
