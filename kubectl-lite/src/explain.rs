//! `explain KIND[.field.sub]`: field documentation from the `api` types themselves. They derive
//! `schemars::JsonSchema`, so their doc comments are the descriptions; the page is laid out as
//! kubectl's `explain` (its OpenAPI v3 template): `GROUP`/`KIND`/`VERSION`, `FIELD`,
//! `DESCRIPTION`, then `FIELDS` with each field's type (`<string>`, `<[]Container>`,
//! `<map[string]string>`, `<Object>`). No server is asked.

use api::ResourceInfo;
use serde_json::{Map, Value};

/// The JSON schema of a kind's type.
pub fn schema(info: &ResourceInfo) -> Option<Value> {
    let s = match info.kind {
        "Pod" => schemars::schema_for!(api::Pod),
        "ConfigMap" => schemars::schema_for!(api::ConfigMap),
        "Event" => schemars::schema_for!(api::Event),
        "Node" => schemars::schema_for!(api::Node),
        "Namespace" => schemars::schema_for!(api::Namespace),
        "ReplicaSet" => schemars::schema_for!(api::ReplicaSet),
        "Deployment" => schemars::schema_for!(api::Deployment),
        "Lease" => schemars::schema_for!(api::Lease),
        _ => return None,
    };
    Some(s.as_value().clone())
}

/// Descriptions every kind shares, for fields whose type has no doc comment of its own.
fn common_description(field: &str) -> Option<&'static str> {
    Some(match field {
        "apiVersion" => {
            "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
        }
        "kind" => {
            "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
        }
        "metadata" => {
            "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
        }
        _ => return None,
    })
}

/// Follow a `$ref` (`#/$defs/PodSpec`) within the root document.
fn resolve<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
    let mut s = s;
    for _ in 0..16 {
        let Some(r) = s.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let Some(target) = r.strip_prefix('#').and_then(|p| root.pointer(p)) else {
            break;
        };
        s = target;
    }
    s
}

/// `Option<T>` is `anyOf: [T, null]` (or `type: [T, "null"]`): the T.
fn non_null<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
    let s = resolve(root, s);
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            let rest: Vec<&Value> = alts.iter().filter(|a| a["type"] != "null").collect();
            if rest.len() == 1 {
                return non_null(root, rest[0]);
            }
        }
    }
    s
}

fn primitive(s: &Value) -> Option<String> {
    match &s["type"] {
        Value::String(t) => Some(t.clone()),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .map(String::from),
        _ => None,
    }
}

/// kubectl's `typeGuess`: `string`, `integer`, `[]Container`, `map[string]string`, `PodSpec`,
/// `Object`.
pub fn type_name(root: &Value, s: &Value) -> String {
    if let Some(alts) = s.get("anyOf").and_then(Value::as_array) {
        let rest: Vec<&Value> = alts.iter().filter(|a| a["type"] != "null").collect();
        if rest.len() == 1 {
            return type_name(root, rest[0]);
        }
    }
    if let Some(items) = s.get("items").filter(|i| i.is_object()) {
        return format!("[]{}", type_name(root, items));
    }
    if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
        return format!("map[string]{}", type_name(root, ap));
    }
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let target = resolve(root, s);
        return match primitive(target) {
            Some(t) if t != "object" => t,
            _ => r.rsplit('/').next().unwrap_or("Object").to_string(),
        };
    }
    match primitive(s).as_deref() {
        Some("object") | None => "Object".into(),
        Some("array") => "[]Object".into(),
        Some(t) => t.to_string(),
    }
}

/// The schema a field's value has, looking through lists and maps as kubectl does.
fn field<'a>(root: &'a Value, s: &'a Value, name: &str) -> Option<&'a Value> {
    let s = non_null(root, s);
    if let Some(f) = s.get("properties").and_then(|p| p.get(name)) {
        return Some(f);
    }
    if let Some(items) = s.get("items").filter(|i| i.is_object()) {
        return field(root, items, name);
    }
    if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
        return field(root, ap, name);
    }
    None
}

/// The properties of an object schema (through lists and maps), in name order.
fn properties<'a>(root: &'a Value, s: &'a Value) -> Option<&'a Map<String, Value>> {
    let s = non_null(root, s);
    if let Some(p) = s.get("properties").and_then(Value::as_object) {
        return Some(p);
    }
    if let Some(items) = s.get("items").filter(|i| i.is_object()) {
        return properties(root, items);
    }
    if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
        return properties(root, ap);
    }
    None
}

fn description(root: &Value, s: &Value, field_name: Option<&str>) -> String {
    let own = s.get("description").and_then(Value::as_str);
    let target = non_null(root, s);
    let d = own
        .or_else(|| target.get("description").and_then(Value::as_str))
        .or_else(|| {
            let items = target.get("items")?;
            non_null(root, items)
                .get("description")
                .and_then(Value::as_str)
        })
        .or_else(|| field_name.and_then(common_description))
        .unwrap_or_default();
    // Doc comments keep their line breaks; explain wraps paragraphs itself.
    d.split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Sprig's `wrap`: greedy word wrap at `width`, long words left whole, lines kept.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                out.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push(line);
    }
    out
}

fn indented(lines: &[String], n: usize) -> String {
    let pad = " ".repeat(n);
    lines
        .iter()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_required(parent: &Value, name: &str) -> bool {
    parent["required"]
        .as_array()
        .is_some_and(|r| r.iter().any(|x| x == name))
}

/// The `FIELDS:` list, one level (or every level with `recursive`).
fn field_list(
    root: &Value,
    s: &Value,
    level: usize,
    recursive: bool,
    seen: &mut Vec<String>,
    out: &mut String,
) {
    let parent = non_null(root, s);
    let Some(props) = properties(root, s) else {
        return;
    };
    let mut names: Vec<&String> = props.keys().collect();
    names.sort();
    for name in names {
        let f = &props[name];
        let indent = level * 2;
        let required = if is_required(parent, name) {
            " -required-"
        } else {
            ""
        };
        out.push_str(&format!(
            "{}{name}\t<{}>{required}\n",
            " ".repeat(indent),
            type_name(root, f)
        ));
        if recursive {
            let r = non_null(root, f).get("$ref").or_else(|| f.get("$ref"));
            let key = r.and_then(Value::as_str).unwrap_or_default().to_string();
            if key.is_empty() || !seen.contains(&key) {
                if !key.is_empty() {
                    seen.push(key.clone());
                }
                field_list(root, f, level + 1, true, seen, out);
                if !key.is_empty() {
                    seen.pop();
                }
            }
        } else {
            let d = description(root, f, Some(name));
            let d = if d.is_empty() {
                "<no description>".to_string()
            } else {
                d
            };
            out.push_str(&indented(&wrap(&d, 78 - indent), indent + 2));
            out.push_str("\n\n");
        }
    }
}

/// The explain page of `info` at `path` (`["spec", "replicas"]`; empty for the kind).
pub fn explain(info: &ResourceInfo, path: &[&str], recursive: bool) -> Result<String, String> {
    let root = schema(info).ok_or_else(|| format!("no documentation for {}", info.kind))?;
    let mut out = String::new();
    if !info.group.is_empty() {
        out.push_str(&format!("GROUP:      {}\n", info.group));
    }
    out.push_str(&format!("KIND:       {}\n", info.kind));
    out.push_str(&format!("VERSION:    {}\n\n", info.version));
    let mut s = &root;
    for (i, name) in path.iter().enumerate() {
        s = field(&root, s, name).ok_or_else(|| format!("field {name:?} does not exist"))?;
        if i + 1 == path.len() {
            out.push_str(&format!("FIELD: {name} <{}>\n\n", type_name(&root, s)));
        }
    }
    let d = description(&root, s, path.last().copied());
    let d = if d.is_empty() {
        "<empty>".to_string()
    } else {
        d
    };
    out.push_str("DESCRIPTION:\n");
    out.push_str(&indented(&wrap(&d, 76), 4));
    out.push_str("\n    \n");
    let mut fields = String::new();
    field_list(&root, s, 1, recursive, &mut Vec::new(), &mut fields);
    if !fields.is_empty() {
        out.push_str("FIELDS:\n");
        out.push_str(&fields);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::resource::{DEPLOYMENT, POD};

    #[test]
    fn kinds_and_fields() {
        let page = explain(&POD, &[], false).unwrap();
        assert!(
            page.starts_with(
                "KIND:       Pod\nVERSION:    v1\n\nDESCRIPTION:\n    The smallest deployable unit"
            ),
            "{page}"
        );
        assert!(
            page.contains("\nFIELDS:\n  apiVersion\t<string>\n    APIVersion defines"),
            "{page}"
        );
        assert!(
            page.contains("\n  spec\t<PodSpec>\n    The desired behaviour of the pod.\n"),
            "{page}"
        );
        let containers = explain(&POD, &["spec", "containers"], false).unwrap();
        assert!(
            containers.contains("FIELD: containers <[]Container>\n"),
            "{containers}"
        );
        assert!(containers.contains("\n  image\t<string>\n"), "{containers}");
        let replicas = explain(&DEPLOYMENT, &["spec", "replicas"], false).unwrap();
        assert!(replicas.starts_with("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n\nFIELD: replicas <integer>\n"), "{replicas}");
        assert!(!replicas.contains("FIELDS:"), "{replicas}");
        assert_eq!(
            explain(&POD, &["spec", "nope"], false).unwrap_err(),
            "field \"nope\" does not exist"
        );
    }

    #[test]
    fn recursive_lists_nested_fields() {
        let page = explain(&DEPLOYMENT, &["spec", "template"], true).unwrap();
        assert!(
            page.contains("\n  spec\t<PodSpec>\n    activeDeadlineSeconds\t<integer>\n"),
            "{page}"
        );
        assert!(
            page.contains("\n    containers\t<[]Container>\n      args\t<[]string>\n"),
            "{page}"
        );
    }

    #[test]
    fn wrapping_keeps_words_whole() {
        assert_eq!(wrap("aaa bbb ccc", 7), ["aaa bbb", "ccc"]);
        assert_eq!(
            wrap("averyveryverylongword x", 5),
            ["averyveryverylongword", "x"]
        );
    }

    #[test]
    fn snapshot_of_a_page() {
        insta::assert_snapshot!(explain(&DEPLOYMENT, &["spec", "strategy"], false).unwrap());
    }
}
