//! Output, as kubectl prints it: server-side Tables laid out by the tabwriter (with the
//! NAMESPACE, LABELS and `kind/` decorations kubectl adds, and a coloured STATUS on a terminal),
//! `-o yaml|json|name|jsonpath=…`, and the one-line results of apply and delete. Everything
//! here is pure: JSON in, `String` out — except [`stdout`], [`stderr`] and [`warning`].

use std::io::Write;

use api::ResourceInfo;
use serde_json::{Map, Value, json};

use crate::errors::{Error, Result};
use crate::{color, tabwriter};

/// `-o` values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// The server's Table, priority-0 columns.
    Table,
    /// The server's Table with every column.
    Wide,
    Yaml,
    Json,
    /// `kind.group/name` per object.
    Name,
    /// A kubectl JSONPath template (see [`crate::jsonpath`]).
    JsonPath(crate::jsonpath::Template),
}

impl Output {
    /// Parse `-o`; the error lists what is allowed, as kubectl's does.
    pub fn parse(s: Option<&str>) -> Result<Output, String> {
        Ok(match s {
            None | Some("") => Output::Table,
            Some("wide") => Output::Wide,
            Some("yaml") => Output::Yaml,
            Some("json") => Output::Json,
            Some("name") => Output::Name,
            Some(t) if t.starts_with("jsonpath=") || t.starts_with("jsonpath-file=") => {
                let (kind, arg) = t.split_once('=').unwrap_or((t, ""));
                let text = if kind == "jsonpath-file" {
                    std::fs::read_to_string(arg)
                        .map_err(|e| format!("error reading --template {arg}, {e}"))?
                } else {
                    arg.to_string()
                };
                if text.is_empty() {
                    return Err("template format specified but no template given".into());
                }
                Output::JsonPath(crate::jsonpath::Template::parse(&text)?)
            }
            Some("jsonpath") | Some("jsonpath-file") => {
                return Err("template format specified but no template given".into());
            }
            Some(other) => {
                return Err(format!(
                    "unable to match a printer suitable for the output format {other:?}, allowed formats are: json,jsonpath,jsonpath-file,name,wide,yaml"
                ));
            }
        })
    }

    pub fn is_human(&self) -> bool {
        matches!(self, Output::Table | Output::Wide)
    }
}

/// How to decorate one kind's table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// `-o wide`: include priority-1 columns.
    pub wide: bool,
    pub no_headers: bool,
    /// `-A` on a namespaced kind: a NAMESPACE column first.
    pub with_namespace: bool,
    /// `--show-labels`: a LABELS column last.
    pub show_labels: bool,
    /// Several kinds in one `get`: names become `deployment.apps/web`.
    pub kind_prefix: Option<String>,
    /// Colour the STATUS column (on a terminal only).
    pub color: bool,
}

/// One kind's rows to print: a `meta.k8s.io/v1` Table.
#[derive(Clone, Debug)]
pub struct Section {
    pub table: Value,
    pub options: TableOptions,
}

/// Print tables one after another, as `kubectl get` does: each aligned on its own, a blank line
/// between non-empty ones (unless `--no-headers`), nothing at all for an empty one.
pub fn tables(sections: &[Section]) -> String {
    let mut out = String::new();
    for s in sections {
        let text = table(&s.table, &s.options);
        if text.is_empty() {
            continue;
        }
        if !out.is_empty() && !s.options.no_headers {
            out.push('\n');
        }
        out.push_str(&text);
    }
    out
}

/// One table, aligned. Empty when it has no rows (kubectl prints no lone header).
pub fn table(table: &Value, o: &TableOptions) -> String {
    tabwriter::align(&table_cells(table, o))
}

/// One table as tab-separated cells, not aligned yet (`get -w` aligns each new row against
/// the widths printed before).
pub fn table_cells(table: &Value, o: &TableOptions) -> String {
    let columns = table["columnDefinitions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let rows = table["rows"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if rows.is_empty() {
        return String::new();
    }
    let shown: Vec<bool> = columns
        .iter()
        .map(|c| o.wide || c["priority"].as_i64().unwrap_or(0) == 0)
        .collect();
    let name_column = o.kind_prefix.as_ref().and_then(|_| {
        columns
            .iter()
            .position(|c| c["format"] == "name" && c["type"] == "string")
    });
    let status_column = columns.iter().position(|c| {
        c["name"]
            .as_str()
            .is_some_and(|n| n.eq_ignore_ascii_case("status"))
    });
    let mut text = String::new();
    if !o.no_headers {
        let mut header: Vec<String> = Vec::new();
        if o.with_namespace {
            header.push("NAMESPACE".into());
        }
        header.extend(
            columns
                .iter()
                .zip(&shown)
                .filter(|(_, s)| **s)
                .map(|(c, _)| c["name"].as_str().unwrap_or_default().to_uppercase()),
        );
        if o.show_labels {
            header.push("LABELS".into());
        }
        text.push_str(&header.join("\t"));
        text.push('\n');
    }
    for row in rows {
        let meta = &row["object"]["metadata"];
        let mut cells: Vec<String> = Vec::new();
        if o.with_namespace {
            cells.push(meta["namespace"].as_str().unwrap_or_default().to_string());
        }
        let row_cells = row["cells"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        // Never more cells than columns (a server bug must not shift the layout).
        for (i, cell) in row_cells.iter().enumerate().take(columns.len()) {
            if !shown[i] {
                continue;
            }
            let mut s = cell_text(cell);
            if name_column == Some(i)
                && let Some(prefix) = &o.kind_prefix
            {
                s = format!("{prefix}/{s}");
            }
            if o.color
                && status_column == Some(i)
                && let Some(c) = color::status(&s)
            {
                s = color::paint(true, c, &s);
            }
            cells.push(s);
        }
        if o.show_labels {
            cells.push(format_labels(&meta["labels"]));
        }
        text.push_str(&cells.join("\t"));
        text.push('\n');
    }
    text
}

/// What `get` says on stderr when it printed nothing: the namespace when every kind asked for
/// is namespaced and no `-A` was given.
pub fn no_resources(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("No resources found in {ns} namespace.\n"),
        None => "No resources found\n".to_string(),
    }
}

/// A cell as Go's `fmt.Sprint` shows it; cut at a line break with `...` as kubectl does.
fn cell_text(v: &Value) -> String {
    let s = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(cell_text).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(_) => v.to_string(),
    };
    match s.find(['\n', '\r', '\x0c']) {
        Some(i) => format!("{}...", &s[..i]),
        None => s.replace('\t', " "),
    }
}

/// `app=web,tier=front`, sorted by key; `<none>` when there are none.
pub fn format_labels(labels: &Value) -> String {
    let Some(m) = labels.as_object().filter(|m| !m.is_empty()) else {
        return "<none>".into();
    };
    let mut pairs: Vec<(&String, &Value)> = m.iter().collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
}

/// What `-o yaml|json` prints for several objects: a `v1` `List`.
pub fn list(items: Vec<Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    })
}

/// Objects as `-o yaml|json|name` prints them (yaml and json: the object itself when
/// `single`, else a `List`).
pub fn generic(
    output: &Output,
    objects: Vec<(&'static ResourceInfo, Value)>,
    single: bool,
) -> Result<String, String> {
    if *output == Output::Name {
        return Ok(objects
            .iter()
            .map(|(info, o)| {
                info.qualified_name(o["metadata"]["name"].as_str().unwrap_or_default()) + "\n"
            })
            .collect());
    }
    let value = if single && objects.len() == 1 {
        objects
            .into_iter()
            .map(|(_, o)| o)
            .next()
            .unwrap_or(Value::Null)
    } else {
        list(objects.into_iter().map(|(_, o)| o).collect())
    };
    match output {
        Output::Json => Ok(to_json(&value) + "\n"),
        Output::JsonPath(t) => t.render(&value),
        _ => to_yaml(&value),
    }
}

/// `apiVersion` and `kind` on an object from a list (list items may come without them).
pub fn with_type_meta(info: &ResourceInfo, mut obj: Value) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(info.api_version()));
        m.insert("kind".into(), json!(info.kind));
    }
    obj
}

/// Keys sorted at every level, as Go prints maps.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// kubectl's `-o yaml`: sorted keys.
pub fn to_yaml(v: &Value) -> Result<String, String> {
    serde_yaml::to_string(&sorted(v)).map_err(|e| format!("failed to print YAML: {e}"))
}

/// kubectl's `-o json`: sorted keys, four-space indent, `<`, `>`, `&` escaped as Go does.
pub fn to_json(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if serde::Serialize::serialize(&sorted(v), &mut ser).is_err() {
        return v.to_string();
    }
    go_escape(&String::from_utf8_lossy(&buf))
}

/// Compact JSON exactly as Go's `json.Marshal` writes it (sorted keys, HTML characters escaped).
pub fn to_compact_json(v: &Value) -> String {
    go_escape(&sorted(v).to_string())
}

/// Go escapes these inside JSON strings; they cannot occur outside strings.
fn go_escape(s: &str) -> String {
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Write to stdout; a closed pipe (`| head`) is not an error worth a panic.
pub fn stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Write to stderr.
pub fn stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// `Warning: …` on stderr, as kubectl prints the server's warnings (yellow on a terminal).
pub fn warning(text: &str) {
    let head = color::paint(color::stderr(), color::Color::Yellow, "Warning:");
    stderr(&format!("{head} {text}\n"));
}

/// `-o name` or nothing: the only outputs of `create -f`, `replace` and friends.
pub fn name_only(output: Option<&str>) -> Result<bool> {
    match output {
        None | Some("") => Ok(false),
        Some("name") => Ok(true),
        Some(other) => Err(Error::msg(format!(
            "unable to match a printer suitable for the output format {other:?}, allowed formats are: name"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::resource::{CONFIG_MAP, DEPLOYMENT, POD};
    use chrono::{DateTime, Utc};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("time")
    }

    fn pod(ns: &str, name: &str, app: &str, node: &str, age_s: i64, phase: &str) -> Value {
        let created = now() - chrono::Duration::seconds(age_s);
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": app, "pod-template-hash": "7d4b9c"},
                         "creationTimestamp": created.format("%Y-%m-%dT%H:%M:%SZ").to_string()},
            "spec": {"nodeName": node, "containers": [{"name": "web", "image": "nginx:1.27"}]},
            "status": {"phase": phase, "podIP": if node.is_empty() { "" } else { "10.244.0.7" },
                       "containerStatuses": [{"name": "web", "ready": phase == "Running", "restartCount": 0,
                                              "image": "nginx:1.27", "imageID": "",
                                              "state": if phase == "Running" { json!({"running": {}}) } else { json!({"waiting": {"reason": "ContainerCreating"}}) }}]}
        })
    }

    fn deployment(name: &str, ready: i64, replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name},
                         "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "sidecar", "image": "busybox"}]}}},
            "status": {"replicas": replicas, "readyReplicas": ready, "updatedReplicas": replicas, "availableReplicas": ready}
        })
    }

    /// The Table the API server sends, built by the same code it uses.
    fn server_table(info: &ResourceInfo, items: &[Value]) -> Value {
        api::table::table(info, items, "42", None, "Metadata", now())
    }

    fn pods() -> Vec<Value> {
        vec![
            pod(
                "default",
                "blog-7d4b9c-x2x9q",
                "blog",
                "node-1",
                65,
                "Running",
            ),
            pod(
                "default",
                "blog-7d4b9c-zq5lm",
                "blog",
                "",
                3 * 3600 + 120,
                "Pending",
            ),
        ]
    }

    #[test]
    fn pods_table() {
        let t = server_table(&POD, &pods());
        insta::assert_snapshot!(table(&t, &TableOptions::default()));
    }

    #[test]
    fn pods_table_wide() {
        let t = server_table(&POD, &pods());
        let o = TableOptions {
            wide: true,
            ..Default::default()
        };
        insta::assert_snapshot!(table(&t, &o));
    }

    #[test]
    fn deployments_table() {
        let t = server_table(
            &DEPLOYMENT,
            &[deployment("blog", 2, 3), deployment("api-server", 1, 1)],
        );
        insta::assert_snapshot!(table(&t, &TableOptions::default()));
    }

    #[test]
    fn deployments_table_wide_without_headers() {
        let t = server_table(&DEPLOYMENT, &[deployment("blog", 2, 3)]);
        let o = TableOptions {
            wide: true,
            no_headers: true,
            ..Default::default()
        };
        insta::assert_snapshot!(table(&t, &o));
    }

    #[test]
    fn all_namespaces_adds_a_namespace_column() {
        let mut items = pods();
        items.push(pod(
            "kube-system",
            "coredns-5d78c9869d-abcde",
            "dns",
            "node-1",
            86400 * 3,
            "Running",
        ));
        let t = server_table(&POD, &items);
        let o = TableOptions {
            with_namespace: true,
            ..Default::default()
        };
        insta::assert_snapshot!(table(&t, &o));
    }

    #[test]
    fn show_labels_adds_a_labels_column() {
        let mut items = pods();
        let mut bare = pod("default", "bare", "x", "", 5, "Pending");
        bare["metadata"]["labels"] = json!({});
        items.push(bare);
        let t = server_table(&POD, &items);
        let o = TableOptions {
            show_labels: true,
            ..Default::default()
        };
        insta::assert_snapshot!(table(&t, &o));
    }

    #[test]
    fn several_kinds_are_prefixed_and_separated() {
        let prefixed = |info: &ResourceInfo, items: &[Value]| Section {
            table: server_table(info, items),
            options: TableOptions {
                kind_prefix: Some(info.kind_string()),
                ..Default::default()
            },
        };
        let cm = json!({"metadata": {"name": "blog-config", "namespace": "default", "creationTimestamp": "2024-05-01T11:59:30Z"},
                        "data": {"a": "1", "b": "2"}});
        let out = tables(&[
            prefixed(&DEPLOYMENT, &[deployment("blog", 3, 3)]),
            prefixed(&CONFIG_MAP, &[]),
            prefixed(&POD, &pods()),
            prefixed(&CONFIG_MAP, &[cm]),
        ]);
        insta::assert_snapshot!(out);
    }

    /// Every other kind's table, default and wide, as `get` prints it.
    #[test]
    fn replica_sets_nodes_events_config_maps_namespaces_and_leases() {
        use api::resource::{EVENT, LEASE, NAMESPACE, NODE, REPLICA_SET};
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "blog-7d4b9c", "namespace": "default", "creationTimestamp": "2024-05-01T11:58:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "blog", "pod-template-hash": "7d4b9c"}},
                     "template": {"metadata": {"labels": {"app": "blog"}}, "spec": {"containers": [{"name": "web", "image": "python:3.12"}]}}},
            "status": {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2}});
        let node = |name: &str, ready: &str, cordoned: bool| {
            json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "creationTimestamp": "2024-04-29T12:00:00Z",
                         "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": name}},
            "spec": {"unschedulable": cordoned},
            "status": {"conditions": [{"type": "Ready", "status": ready}],
                       "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                       "nodeInfo": {"kubeletVersion": "v1.37.0-kube-lite", "osImage": "Debian GNU/Linux 12 (bookworm)",
                                    "kernelVersion": "6.1.0", "containerRuntimeVersion": "kube-lite-process://0.1"}}})
        };
        let event = json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "blog-7d4b9c-x2x9q.17a", "namespace": "default", "creationTimestamp": "2024-05-01T11:59:00Z"},
            "involvedObject": {"kind": "Pod", "name": "blog-7d4b9c-x2x9q", "namespace": "default"},
            "reason": "Scheduled", "message": "Successfully assigned default/blog-7d4b9c-x2x9q to node-1",
            "type": "Normal", "source": {"component": "scheduler"}, "count": 1,
            "firstTimestamp": "2024-05-01T11:59:00Z", "lastTimestamp": "2024-05-01T11:59:00Z"});
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "blog-config", "namespace": "default", "creationTimestamp": "2024-05-01T11:59:30Z"},
            "data": {"title": "Notes", "motd": "hello"}});
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "kube-system", "creationTimestamp": "2024-04-29T12:00:00Z"},
            "status": {"phase": "Active"}});
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "node-1", "namespace": "kube-node-lease", "creationTimestamp": "2024-04-29T12:00:00Z"},
            "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}});
        let wide = TableOptions {
            wide: true,
            ..Default::default()
        };
        let mut out = String::new();
        for (info, items) in [
            (&REPLICA_SET, vec![rs]),
            (
                &NODE,
                vec![
                    node("node-1", "True", false),
                    node("node-2", "Unknown", true),
                ],
            ),
            (&EVENT, vec![event]),
            (&CONFIG_MAP, vec![cm]),
            (&NAMESPACE, vec![ns]),
            (&LEASE, vec![lease]),
        ] {
            let t = server_table(info, &items);
            out.push_str(&format!("--- {} ---\n", info.plural));
            out.push_str(&table(&t, &TableOptions::default()));
            out.push_str(&format!("--- {} -o wide ---\n", info.plural));
            out.push_str(&table(&t, &wide));
        }
        insta::assert_snapshot!(out);
    }

    /// STATUS shows the container's reason, as kubectl does.
    #[test]
    fn pod_status_column_shows_container_reasons() {
        let mut crash = pod("default", "web-crash", "web", "node-1", 300, "Running");
        crash["status"]["containerStatuses"][0]["ready"] = json!(false);
        crash["status"]["containerStatuses"][0]["restartCount"] = json!(4);
        crash["status"]["containerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "CrashLoopBackOff"}});
        let mut config = pod("default", "web-config", "web", "node-1", 30, "Pending");
        config["status"]["containerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "CreateContainerConfigError"}});
        let mut done = pod("default", "job-done", "job", "node-2", 600, "Succeeded");
        done["status"]["containerStatuses"][0]["state"] =
            json!({"terminated": {"reason": "Completed", "exitCode": 0}});
        let mut deleting = pod("default", "web-old", "web", "node-2", 900, "Running");
        deleting["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:58Z");
        let creating = pod("default", "web-new", "web", "node-2", 1, "Pending");
        let t = server_table(&POD, &[crash, config, done, deleting, creating]);
        insta::assert_snapshot!(table(&t, &TableOptions::default()));
    }

    #[test]
    fn empty_tables_print_nothing_but_a_note() {
        let t = server_table(&POD, &[]);
        assert_eq!(table(&t, &TableOptions::default()), "");
        let stdout = tables(&[Section {
            table: t,
            options: TableOptions::default(),
        }]);
        let stderr = no_resources(Some("default")) + &no_resources(None);
        insta::assert_snapshot!(format!("stdout:\n{stdout}stderr:\n{stderr}"));
    }

    #[test]
    fn cells_print_like_go() {
        assert_eq!(cell_text(&json!(3)), "3");
        assert_eq!(cell_text(&json!(null)), "");
        assert_eq!(cell_text(&json!("two\nlines")), "two...");
        assert_eq!(cell_text(&json!(true)), "true");
    }

    #[test]
    fn generic_output() {
        let d = deployment("blog", 1, 1);
        let one = generic(&Output::Yaml, vec![(&DEPLOYMENT, d.clone())], true).unwrap();
        assert!(
            one.starts_with("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n"),
            "{one}"
        );
        let many = generic(&Output::Yaml, vec![(&DEPLOYMENT, d.clone())], false).unwrap();
        assert!(
            many.starts_with("apiVersion: v1\nitems:\n- apiVersion: apps/v1\n"),
            "{many}"
        );
        assert!(
            many.ends_with("kind: List\nmetadata:\n  resourceVersion: ''\n"),
            "{many}"
        );
        let j = generic(&Output::Json, vec![], false).unwrap();
        assert_eq!(
            j,
            "{\n    \"apiVersion\": \"v1\",\n    \"items\": [],\n    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n"
        );
        let n = generic(
            &Output::Name,
            vec![(&DEPLOYMENT, d), (&POD, pods()[0].clone())],
            false,
        )
        .unwrap();
        assert_eq!(n, "deployment.apps/blog\npod/blog-7d4b9c-x2x9q\n");
    }

    #[test]
    fn compact_json_is_go_json() {
        assert_eq!(
            to_compact_json(&json!({"b": "<x&y>", "a": {"d": 1, "c": [2]}})),
            r#"{"a":{"c":[2],"d":1},"b":"\u003cx\u0026y\u003e"}"#
        );
    }

    #[test]
    fn output_flags() {
        assert_eq!(Output::parse(None), Ok(Output::Table));
        assert_eq!(Output::parse(Some("wide")), Ok(Output::Wide));
        assert!(matches!(
            Output::parse(Some("jsonpath={.x}")),
            Ok(Output::JsonPath(_))
        ));
        assert_eq!(
            Output::parse(Some("xml")),
            Err("unable to match a printer suitable for the output format \"xml\", allowed formats are: json,jsonpath,jsonpath-file,name,wide,yaml".into())
        );
    }
}
