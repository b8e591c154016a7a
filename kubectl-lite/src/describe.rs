//! `describe`'s pages, laid out as kubectl's `pkg/describe` lays them out: `Name:`,
//! `Namespace:`, `Labels:`, `Annotations:`, the kind's own fields, then `Events:`. Pure: the
//! objects (and the events, ReplicaSets, pods they need) in, text out, so every page is
//! snapshot-tested; `cmd/describe.rs` fetches.
//!
//! Each page is written as tab-separated lines and aligned with kubectl's describe tabwriter
//! settings (minimum width 0, padding 2); like kubectl, the Events table is aligned on its own.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::tabwriter::{self, DESCRIBE};
use crate::util::{age, int_of, map_get, name_of, rfc1123z, str_of};

/// Annotations describe leaves out (kubectl's `skipAnnotations`).
const SKIP_ANNOTATIONS: &[&str] = &[api::annotations::LAST_APPLIED];
/// Longer `key: value` annotations are printed on lines of their own, cut at this width.
const MAX_ANNOTATION_LEN: usize = 140;

/// kubectl's `PrefixWriter`: lines at indentation levels of two spaces, cells separated by tabs.
#[derive(Default)]
pub struct Writer {
    /// Sections aligned separately (kubectl flushes its tabwriter before the Events table).
    done: String,
    current: String,
}

impl Writer {
    pub fn line(&mut self, level: usize, text: &str) {
        for _ in 0..level {
            self.current.push_str("  ");
        }
        self.current.push_str(text);
        self.current.push('\n');
    }

    /// Write without a newline (the start of a multi-line label list).
    fn raw(&mut self, text: &str) {
        self.current.push_str(text);
    }

    fn flush(&mut self) {
        let text = std::mem::take(&mut self.current);
        self.done.push_str(&tabwriter::align_with(&text, DESCRIBE));
    }

    pub fn finish(mut self) -> String {
        self.flush();
        self.done
    }
}

/// `Labels:  app=web` then one `key=value` per line, sorted; `<none>` when empty.
fn labels(w: &mut Writer, indent: &str, title: &str, map: Option<&Value>) {
    let mut keys: Vec<(&String, &Value)> = map
        .and_then(Value::as_object)
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    w.raw(&format!("{indent}{title}:\t"));
    if keys.is_empty() {
        w.raw("<none>\n");
        return;
    }
    for (i, (k, v)) in keys.iter().enumerate() {
        if i > 0 {
            w.raw(&format!("{indent}\t"));
        }
        w.raw(&format!("{k}={}\n", v.as_str().unwrap_or_default()));
    }
}

/// `Annotations:` as kubectl prints them: long or multi-line values on lines of their own.
fn annotations(w: &mut Writer, indent: &str, title: &str, map: Option<&Value>) {
    let mut keys: Vec<(&String, &Value)> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !SKIP_ANNOTATIONS.contains(&k.as_str()))
                .collect()
        })
        .unwrap_or_default();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    w.raw(&format!("{indent}{title}:\t"));
    if keys.is_empty() {
        w.raw("<none>\n");
        return;
    }
    for (i, (k, v)) in keys.iter().enumerate() {
        if i > 0 {
            w.raw(&format!("{indent}\t"));
        }
        let value = v.as_str().unwrap_or_default().trim_end_matches('\n');
        if value.len() + k.len() + 2 > MAX_ANNOTATION_LEN || value.contains('\n') {
            w.raw(&format!("{k}:\n"));
            for s in value.split('\n') {
                let cut: String = s.chars().take(MAX_ANNOTATION_LEN - 2).collect();
                let more = if cut.len() < s.len() { "..." } else { "" };
                w.raw(&format!("{indent}\t  {cut}{more}\n"));
            }
        } else {
            w.raw(&format!("{k}: {value}\n"));
        }
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

fn arr(v: &Value, pointer: &str) -> Vec<Value> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// `Kind/name` of the controller owner, if any.
fn controlled_by(obj: &Value) -> Option<String> {
    arr(obj, "/metadata/ownerReferences")
        .into_iter()
        .find(|o| o["controller"] == true)
        .map(|o| format!("{}/{}", str_of(&o, "/kind"), str_of(&o, "/name")))
}

/// A label selector object in its string form (`app=web,tier in (a,b)`).
pub fn selector_string(selector: &Value) -> String {
    serde_json::from_value::<api::meta::LabelSelector>(selector.clone())
        .ok()
        .and_then(|ls| api::selector::Selector::from_label_selector(&ls).ok())
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// The Events table, oldest first; `Events:  <none>` when there are none.
pub fn events(w: &mut Writer, events: &[Value], now: DateTime<Utc>) {
    if events.is_empty() {
        w.line(0, "Events:\t<none>");
        return;
    }
    w.flush();
    let mut sorted = events.to_vec();
    let when = |e: &Value| {
        crate::util::time(&e["lastTimestamp"])
            .or_else(|| crate::util::time(&e["eventTime"]))
            .or_else(|| crate::util::time(&e["firstTimestamp"]))
    };
    sorted.sort_by_key(|e| when(e));
    w.line(0, "Events:");
    w.line(1, "Type\tReason\tAge\tFrom\tMessage");
    w.line(1, "----\t------\t----\t----\t-------");
    for e in &sorted {
        let first = if e["eventTime"].is_string() {
            age(&e["eventTime"], now)
        } else {
            age(&e["firstTimestamp"], now)
        };
        let count = int_of(e, "/count");
        let interval = if e["series"].is_object() {
            format!(
                "{} (x{} over {first})",
                age(&e["series"]["lastObservedTime"], now),
                int_of(e, "/series/count")
            )
        } else if count > 1 {
            format!("{} (x{count} over {first})", age(&e["lastTimestamp"], now))
        } else {
            first
        };
        let mut source = str_of(e, "/source/component").to_string();
        if source.is_empty() {
            source = str_of(e, "/reportingComponent").to_string();
        }
        let mut message = str_of(e, "/message").trim().to_string();
        let field_path = str_of(e, "/involvedObject/fieldPath");
        if !field_path.is_empty() {
            message = format!("{field_path}: {message}");
        }
        w.line(
            1,
            &format!(
                "{}\t{}\t{interval}\t{source}\t{message}",
                str_of(e, "/type"),
                str_of(e, "/reason")
            ),
        );
    }
}

/// `80/TCP (http), 443/TCP`.
fn ports(container: &Value, host: bool) -> String {
    arr(container, "/ports")
        .iter()
        .map(|p| {
            let port = if host {
                int_of(p, "/hostPort")
            } else {
                int_of(p, "/containerPort")
            };
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            let name = str_of(p, "/name");
            if name.is_empty() {
                format!("{port}/{proto}")
            } else {
                format!("{port}/{proto} ({name})")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn resources(w: &mut Writer, level: usize, r: &Value) {
    for (title, key) in [("Limits", "limits"), ("Requests", "requests")] {
        if let Some(m) = r
            .get(key)
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
        {
            w.line(level, &format!("{title}:"));
            let mut names: Vec<&String> = m.keys().collect();
            names.sort();
            for n in names {
                w.line(
                    level + 1,
                    &format!("{n}:\t{}", m[n].as_str().unwrap_or_default()),
                );
            }
        }
    }
}

fn container_state(w: &mut Writer, title: &str, state: &Value) {
    if let Some(r) = state.get("running").filter(|v| v.is_object()) {
        w.line(2, &format!("{title}:\tRunning"));
        w.line(3, &format!("Started:\t{}", rfc1123z(&r["startedAt"])));
    } else if let Some(t) = state.get("terminated").filter(|v| v.is_object()) {
        w.line(2, &format!("{title}:\tTerminated"));
        if !str_of(t, "/reason").is_empty() {
            w.line(3, &format!("Reason:\t{}", str_of(t, "/reason")));
        }
        if !str_of(t, "/message").is_empty() {
            w.line(3, &format!("Message:\t{}", str_of(t, "/message")));
        }
        w.line(3, &format!("Exit Code:\t{}", int_of(t, "/exitCode")));
        if int_of(t, "/signal") > 0 {
            w.line(3, &format!("Signal:\t{}", int_of(t, "/signal")));
        }
        w.line(3, &format!("Started:\t{}", rfc1123z(&t["startedAt"])));
        w.line(3, &format!("Finished:\t{}", rfc1123z(&t["finishedAt"])));
    } else {
        w.line(2, &format!("{title}:\tWaiting"));
        let reason = str_of(state, "/waiting/reason");
        if !reason.is_empty() {
            w.line(3, &format!("Reason:\t{reason}"));
        }
        let message = str_of(state, "/waiting/message");
        if !message.is_empty() {
            w.line(3, &format!("Message:\t{message}"));
        }
    }
}

/// The `Containers:` section, with each container's status when the pod has one.
fn containers(
    w: &mut Writer,
    label: &str,
    indent: &str,
    list: &[Value],
    statuses: &[Value],
    pod: Option<&Value>,
) {
    if list.is_empty() {
        w.line(0, &format!("{indent}{label}: <none>"));
        return;
    }
    w.line(0, &format!("{indent}{label}:"));
    let name_indent = if indent.is_empty() { "" } else { " " };
    for c in list {
        let name = str_of(c, "/name");
        let status = statuses.iter().find(|s| str_of(s, "/name") == name);
        w.line(1, &format!("{name_indent}{name}:"));
        if let Some(s) = status {
            w.line(2, &format!("Container ID:\t{}", str_of(s, "/containerID")));
        }
        w.line(2, &format!("Image:\t{}", str_of(c, "/image")));
        if let Some(s) = status {
            w.line(2, &format!("Image ID:\t{}", str_of(s, "/imageID")));
        }
        let p = ports(c, false);
        if p.contains(',') {
            w.line(2, &format!("Ports:\t{p}"));
        } else {
            w.line(2, &format!("Port:\t{}", or_none(&p)));
        }
        let hp = ports(c, true);
        if hp.contains(',') {
            w.line(2, &format!("Host Ports:\t{hp}"));
        } else {
            w.line(2, &format!("Host Port:\t{}", or_none(&hp)));
        }
        for (title, key) in [("Command", "command"), ("Args", "args")] {
            let items = arr(c, &format!("/{key}"));
            if !items.is_empty() {
                w.line(2, &format!("{title}:"));
                for item in items {
                    for line in item.as_str().unwrap_or_default().split('\n') {
                        w.line(3, line);
                    }
                }
            }
        }
        if let Some(s) = status {
            container_state(w, "State", &s["state"]);
            if s["lastState"]["terminated"].is_object() {
                container_state(w, "Last State", &s["lastState"]);
            }
            let ready = if s["ready"] == true { "True" } else { "False" };
            w.line(2, &format!("Ready:\t{ready}"));
            w.line(
                2,
                &format!("Restart Count:\t{}", int_of(s, "/restartCount")),
            );
        }
        resources(w, 2, &c["resources"]);
        let env_from = arr(c, "/envFrom");
        if !env_from.is_empty() {
            w.line(2, "Environment Variables from:");
            for e in env_from {
                let (from, r) = if e["configMapRef"].is_object() {
                    ("ConfigMap", &e["configMapRef"])
                } else {
                    ("Secret", &e["secretRef"])
                };
                let optional = r["optional"] == true;
                let prefix = str_of(&e, "/prefix");
                if prefix.is_empty() {
                    w.line(
                        3,
                        &format!("{}\t{from}\tOptional: {optional}", str_of(r, "/name")),
                    );
                } else {
                    w.line(
                        3,
                        &format!(
                            "{}\t{from} with prefix '{prefix}'\tOptional: {optional}",
                            str_of(r, "/name")
                        ),
                    );
                }
            }
        }
        let env = arr(c, "/env");
        if env.is_empty() {
            w.line(2, "Environment:\t<none>");
        } else {
            w.line(2, "Environment:");
        }
        for e in env {
            let name = str_of(&e, "/name");
            let from = &e["valueFrom"];
            if let Some(f) = from.get("fieldRef").filter(|v| v.is_object()) {
                let path = str_of(f, "/fieldPath");
                let value = pod.map(|p| field_value(p, path)).unwrap_or_default();
                let version = f["apiVersion"].as_str().unwrap_or("v1");
                w.line(3, &format!("{name}:\t{value} ({version}:{path})"));
            } else if let Some(r) = from.get("resourceFieldRef").filter(|v| v.is_object()) {
                w.line(3, &format!("{name}:\t ({})", str_of(r, "/resource")));
            } else if let Some(r) = from.get("configMapKeyRef").filter(|v| v.is_object()) {
                w.line(
                    3,
                    &format!(
                        "{name}:\t<set to the key '{}' of config map '{}'>\tOptional: {}",
                        str_of(r, "/key"),
                        str_of(r, "/name"),
                        r["optional"] == true
                    ),
                );
            } else if let Some(r) = from.get("secretKeyRef").filter(|v| v.is_object()) {
                w.line(
                    3,
                    &format!(
                        "{name}:\t<set to the key '{}' in secret '{}'>\tOptional: {}",
                        str_of(r, "/key"),
                        str_of(r, "/name"),
                        r["optional"] == true
                    ),
                );
            } else {
                for (i, line) in str_of(&e, "/value").split('\n').enumerate() {
                    if i == 0 {
                        w.line(3, &format!("{name}:\t{line}"));
                    } else {
                        w.line(3, &format!("\t{line}"));
                    }
                }
            }
        }
        let mounts = arr(c, "/volumeMounts");
        if mounts.is_empty() {
            w.line(2, "Mounts:\t<none>");
        } else {
            w.line(2, "Mounts:");
            for m in mounts {
                let mode = if m["readOnly"] == true { "ro" } else { "rw" };
                w.line(
                    3,
                    &format!(
                        "{} from {} ({mode})",
                        str_of(&m, "/mountPath"),
                        str_of(&m, "/name")
                    ),
                );
            }
        }
    }
}

/// The value a `fieldRef` resolves to, as the kubelet resolves it.
fn field_value(pod: &Value, path: &str) -> String {
    if let Some(key) = path
        .strip_prefix("metadata.labels['")
        .and_then(|k| k.strip_suffix("']"))
    {
        return map_get(pod, "/metadata/labels", key)
            .unwrap_or_default()
            .to_string();
    }
    if let Some(key) = path
        .strip_prefix("metadata.annotations['")
        .and_then(|k| k.strip_suffix("']"))
    {
        return map_get(pod, "/metadata/annotations", key)
            .unwrap_or_default()
            .to_string();
    }
    let pointer = format!("/{}", path.replace('.', "/"));
    match pod.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

fn volumes(w: &mut Writer, indent: &str, list: &[Value]) {
    if list.is_empty() {
        w.line(0, &format!("{indent}Volumes:\t<none>"));
        return;
    }
    w.line(0, &format!("{indent}Volumes:"));
    for v in list {
        w.line(1, &format!("{indent}{}:", str_of(v, "/name")));
        if let Some(cm) = v.get("configMap").filter(|x| x.is_object()) {
            w.line(
                2,
                &format!("{indent}Type:\tConfigMap (a volume populated by a ConfigMap)"),
            );
            w.line(2, &format!("{indent}Name:\t{}", str_of(cm, "/name")));
            w.line(2, &format!("{indent}Optional:\t{}", cm["optional"] == true));
        } else if let Some(e) = v.get("emptyDir").filter(|x| x.is_object()) {
            w.line(
                2,
                &format!(
                    "{indent}Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)"
                ),
            );
            w.line(2, &format!("{indent}Medium:\t{}", str_of(e, "/medium")));
            let limit = str_of(e, "/sizeLimit");
            w.line(
                2,
                &format!(
                    "{indent}SizeLimit:\t{}",
                    if limit.is_empty() { "<unset>" } else { limit }
                ),
            );
        } else {
            let kind = v
                .as_object()
                .and_then(|m| m.keys().find(|k| *k != "name"))
                .cloned()
                .unwrap_or_default();
            w.line(2, &format!("{indent}Type:\t{kind}"));
        }
    }
}

fn tolerations(w: &mut Writer, indent: &str, list: &[Value]) {
    w.raw(&format!("{indent}Tolerations:\t"));
    if list.is_empty() {
        w.raw("<none>\n");
        return;
    }
    for (i, t) in list.iter().enumerate() {
        if i > 0 {
            w.raw(&format!("{indent}\t"));
        }
        let mut s = str_of(t, "/key").to_string();
        let value = str_of(t, "/value");
        if !value.is_empty() {
            s = format!("{s}={value}");
        }
        let effect = str_of(t, "/effect");
        if !effect.is_empty() {
            s = format!("{s}:{effect}");
        }
        if str_of(t, "/operator") == "Exists" && value.is_empty() {
            s = if s.is_empty() {
                "op=Exists".into()
            } else {
                format!("{s} op=Exists")
            };
        }
        if let Some(secs) = t["tolerationSeconds"].as_i64() {
            s = format!("{s} for {secs}s");
        }
        w.raw(&format!("{s}\n"));
    }
}

/// As kubectl: the class the server set (`status.qosClass`), else the one the spec makes
/// ([`api::core::PodSpec::qos_class`]).
pub fn qos_class(pod: &Value) -> &'static str {
    match pod["status"]["qosClass"].as_str() {
        Some("Guaranteed") => "Guaranteed",
        Some("Burstable") => "Burstable",
        Some("BestEffort") => "BestEffort",
        _ => serde_json::from_value::<api::core::PodSpec>(pod["spec"].clone())
            .map(|s| s.qos_class())
            .unwrap_or("BestEffort"),
    }
}

/// `describe pod`.
pub fn pod(pod: &Value, evs: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Writer::default();
    w.line(0, &format!("Name:\t{}", name_of(pod)));
    w.line(
        0,
        &format!("Namespace:\t{}", str_of(pod, "/metadata/namespace")),
    );
    if let Some(p) = pod["spec"]["priority"].as_i64() {
        w.line(0, &format!("Priority:\t{p}"));
    }
    let sa = str_of(pod, "/spec/serviceAccountName");
    if !sa.is_empty() {
        w.line(0, &format!("Service Account:\t{sa}"));
    }
    let node = str_of(pod, "/spec/nodeName");
    if node.is_empty() {
        w.line(0, "Node:\t<none>");
    } else {
        w.line(
            0,
            &format!("Node:\t{node}/{}", str_of(pod, "/status/hostIP")),
        );
    }
    if pod["status"]["startTime"].is_string() {
        w.line(
            0,
            &format!("Start Time:\t{}", rfc1123z(&pod["status"]["startTime"])),
        );
    }
    labels(&mut w, "", "Labels", pod.pointer("/metadata/labels"));
    annotations(
        &mut w,
        "",
        "Annotations",
        pod.pointer("/metadata/annotations"),
    );
    let phase = str_of(pod, "/status/phase");
    let phase = if phase.is_empty() { "Pending" } else { phase };
    if pod["metadata"]["deletionTimestamp"].is_string() && phase != "Failed" && phase != "Succeeded"
    {
        w.line(
            0,
            &format!(
                "Status:\tTerminating (lasts {})",
                age(&pod["metadata"]["deletionTimestamp"], now)
            ),
        );
        w.line(
            0,
            &format!(
                "Termination Grace Period:\t{}s",
                int_of(pod, "/metadata/deletionGracePeriodSeconds")
            ),
        );
    } else {
        w.line(0, &format!("Status:\t{phase}"));
    }
    for (title, key) in [("Reason", "reason"), ("Message", "message")] {
        let v = str_of(pod, &format!("/status/{key}"));
        if !v.is_empty() {
            w.line(0, &format!("{title}:\t{v}"));
        }
    }
    w.line(0, &format!("IP:\t{}", str_of(pod, "/status/podIP")));
    let ips = arr(pod, "/status/podIPs");
    if ips.is_empty() {
        w.line(0, "IPs:\t<none>");
    } else {
        w.line(0, "IPs:");
        for ip in ips {
            w.line(1, &format!("IP:\t{}", str_of(&ip, "/ip")));
        }
    }
    if let Some(c) = controlled_by(pod) {
        w.line(0, &format!("Controlled By:\t{c}"));
    }
    let init = arr(pod, "/spec/initContainers");
    if !init.is_empty() {
        containers(
            &mut w,
            "Init Containers",
            "",
            &init,
            &arr(pod, "/status/initContainerStatuses"),
            Some(pod),
        );
    }
    containers(
        &mut w,
        "Containers",
        "",
        &arr(pod, "/spec/containers"),
        &arr(pod, "/status/containerStatuses"),
        Some(pod),
    );
    let conditions = arr(pod, "/status/conditions");
    if !conditions.is_empty() {
        w.line(0, "Conditions:");
        w.line(1, "Type\tStatus");
        for c in conditions {
            w.line(
                1,
                &format!("{} \t{} ", str_of(&c, "/type"), str_of(&c, "/status")),
            );
        }
    }
    volumes(&mut w, "", &arr(pod, "/spec/volumes"));
    w.line(0, &format!("QoS Class:\t{}", qos_class(pod)));
    labels(
        &mut w,
        "",
        "Node-Selectors",
        pod.pointer("/spec/nodeSelector"),
    );
    tolerations(&mut w, "", &arr(pod, "/spec/tolerations"));
    events(&mut w, evs, now);
    w.finish()
}

/// kubectl's `DescribePodTemplate` (deployments, ReplicaSets, `rollout history --revision`).
pub fn pod_template(w: &mut Writer, template: &Value) {
    w.line(0, "Pod Template:");
    labels(w, "  ", "Labels", template.pointer("/metadata/labels"));
    if template["metadata"]["annotations"]
        .as_object()
        .is_some_and(|m| !m.is_empty())
    {
        annotations(
            w,
            "  ",
            "Annotations",
            template.pointer("/metadata/annotations"),
        );
    }
    let sa = str_of(template, "/spec/serviceAccountName");
    if !sa.is_empty() {
        w.line(1, &format!("Service Account:\t{sa}"));
    }
    let init = arr(template, "/spec/initContainers");
    if !init.is_empty() {
        containers(w, "Init Containers", "  ", &init, &[], None);
    }
    containers(
        w,
        "Containers",
        "  ",
        &arr(template, "/spec/containers"),
        &[],
        None,
    );
    volumes(w, "  ", &arr(template, "/spec/volumes"));
    labels(
        w,
        "  ",
        "Node-Selectors",
        template.pointer("/spec/nodeSelector"),
    );
    tolerations(w, "  ", &arr(template, "/spec/tolerations"));
}

/// `rollout history --revision=N`: the pod template of one revision.
pub fn pod_template_page(template: &Value) -> String {
    let mut w = Writer::default();
    pod_template(&mut w, template);
    w.finish()
}

fn conditions_table(w: &mut Writer, obj: &Value) {
    let conditions = arr(obj, "/status/conditions");
    if conditions.is_empty() {
        return;
    }
    w.line(0, "Conditions:");
    w.line(1, "Type\tStatus\tReason");
    w.line(1, "----\t------\t------");
    for c in conditions {
        w.line(
            1,
            &format!(
                "{} \t{}\t{}",
                str_of(&c, "/type"),
                str_of(&c, "/status"),
                str_of(&c, "/reason")
            ),
        );
    }
}

/// `web-7d4b9c (3/3 replicas created), …`; `<none>` when there are none.
fn replica_sets_line(rss: &[Value]) -> String {
    let list: Vec<String> = rss
        .iter()
        .map(|rs| {
            format!(
                "{} ({}/{} replicas created)",
                name_of(rs),
                int_of(rs, "/status/replicas"),
                rs["spec"]["replicas"].as_i64().unwrap_or(1)
            )
        })
        .collect();
    if list.is_empty() {
        "<none>".into()
    } else {
        list.join(", ")
    }
}

/// `describe deployment`, with its old and new ReplicaSets.
pub fn deployment(
    d: &Value,
    old: &[Value],
    new: Option<&Value>,
    evs: &[Value],
    now: DateTime<Utc>,
) -> String {
    let mut w = Writer::default();
    w.line(0, &format!("Name:\t{}", name_of(d)));
    w.line(
        0,
        &format!("Namespace:\t{}", str_of(d, "/metadata/namespace")),
    );
    w.line(
        0,
        &format!(
            "CreationTimestamp:\t{}",
            rfc1123z(&d["metadata"]["creationTimestamp"])
        ),
    );
    labels(&mut w, "", "Labels", d.pointer("/metadata/labels"));
    annotations(
        &mut w,
        "",
        "Annotations",
        d.pointer("/metadata/annotations"),
    );
    w.line(
        0,
        &format!("Selector:\t{}", selector_string(&d["spec"]["selector"])),
    );
    w.line(
        0,
        &format!(
            "Replicas:\t{} desired | {} updated | {} total | {} available | {} unavailable",
            d["spec"]["replicas"].as_i64().unwrap_or(1),
            int_of(d, "/status/updatedReplicas"),
            int_of(d, "/status/replicas"),
            int_of(d, "/status/availableReplicas"),
            int_of(d, "/status/unavailableReplicas")
        ),
    );
    let strategy = d["spec"]["strategy"]["type"]
        .as_str()
        .unwrap_or("RollingUpdate");
    w.line(0, &format!("StrategyType:\t{strategy}"));
    w.line(
        0,
        &format!("MinReadySeconds:\t{}", int_of(d, "/spec/minReadySeconds")),
    );
    if let Some(ru) = d["spec"]["strategy"]["rollingUpdate"].as_object() {
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => "25%".into(),
        };
        w.line(
            0,
            &format!(
                "RollingUpdateStrategy:\t{} max unavailable, {} max surge",
                text(ru.get("maxUnavailable")),
                text(ru.get("maxSurge"))
            ),
        );
    }
    pod_template(&mut w, &d["spec"]["template"]);
    conditions_table(&mut w, d);
    if !old.is_empty() || new.is_some() {
        w.line(0, &format!("OldReplicaSets:\t{}", replica_sets_line(old)));
        w.line(
            0,
            &format!(
                "NewReplicaSet:\t{}",
                replica_sets_line(&new.into_iter().cloned().collect::<Vec<_>>())
            ),
        );
    }
    events(&mut w, evs, now);
    w.finish()
}

/// Pods of a controller by phase: running, waiting (pending), succeeded, failed.
pub fn pod_phases(pods: &[Value]) -> (usize, usize, usize, usize) {
    let count = |p: &str| {
        pods.iter()
            .filter(|x| str_of(x, "/status/phase") == p)
            .count()
    };
    let pending = pods
        .iter()
        .filter(|x| matches!(str_of(x, "/status/phase"), "Pending" | ""))
        .count();
    (
        count("Running"),
        pending,
        count("Succeeded"),
        count("Failed"),
    )
}

/// `describe replicaset`.
pub fn replica_set(rs: &Value, pods: &[Value], evs: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Writer::default();
    w.line(0, &format!("Name:\t{}", name_of(rs)));
    w.line(
        0,
        &format!("Namespace:\t{}", str_of(rs, "/metadata/namespace")),
    );
    w.line(
        0,
        &format!("Selector:\t{}", selector_string(&rs["spec"]["selector"])),
    );
    labels(&mut w, "", "Labels", rs.pointer("/metadata/labels"));
    annotations(
        &mut w,
        "",
        "Annotations",
        rs.pointer("/metadata/annotations"),
    );
    if let Some(c) = controlled_by(rs) {
        w.line(0, &format!("Controlled By:\t{c}"));
    }
    w.line(
        0,
        &format!(
            "Replicas:\t{} current / {} desired",
            int_of(rs, "/status/replicas"),
            rs["spec"]["replicas"].as_i64().unwrap_or(1)
        ),
    );
    let (running, waiting, succeeded, failed) = pod_phases(pods);
    w.line(
        0,
        &format!("Pods Status:\t{running} Running / {waiting} Waiting / {succeeded} Succeeded / {failed} Failed"),
    );
    pod_template(&mut w, &rs["spec"]["template"]);
    conditions_table(&mut w, rs);
    events(&mut w, evs, now);
    w.finish()
}

/// A pod's cpu (millicores) and memory (bytes) requests and limits, as Kubernetes totals
/// them ([`api::core::PodSpec::resources`]).
pub fn pod_resources(pod: &Value) -> api::core::PodResources {
    serde_json::from_value::<api::core::PodSpec>(pod["spec"].clone())
        .map(|s| s.resources())
        .unwrap_or_default()
}

fn cpu_text(milli: i64) -> String {
    api::Quantity::from_milli(milli).0
}

fn memory_text(bytes: i64) -> String {
    if bytes == 0 {
        "0".into()
    } else {
        api::Quantity::from_bytes(bytes).0
    }
}

fn percent(part: i64, whole: i64) -> i64 {
    if whole == 0 {
        0
    } else {
        (part as f64 / whole as f64 * 100.0) as i64
    }
}

/// `describe node`, with its non-terminated pods and what they have been allocated.
pub fn node(
    node: &Value,
    pods: &[Value],
    lease: Option<&Value>,
    evs: &[Value],
    now: DateTime<Utc>,
) -> String {
    let mut w = Writer::default();
    w.line(0, &format!("Name:\t{}", name_of(node)));
    let mut roles: Vec<String> = node["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/").map(String::from))
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    w.line(
        0,
        &format!(
            "Roles:\t{}",
            if roles.is_empty() {
                "<none>".into()
            } else {
                roles.join(",")
            }
        ),
    );
    labels(&mut w, "", "Labels", node.pointer("/metadata/labels"));
    annotations(
        &mut w,
        "",
        "Annotations",
        node.pointer("/metadata/annotations"),
    );
    w.line(
        0,
        &format!(
            "CreationTimestamp:\t{}",
            rfc1123z(&node["metadata"]["creationTimestamp"])
        ),
    );
    let taints = arr(node, "/spec/taints");
    w.raw("Taints:\t");
    if taints.is_empty() {
        w.raw("<none>\n");
    }
    for (i, t) in taints.iter().enumerate() {
        if i > 0 {
            w.raw("\t");
        }
        let value = str_of(t, "/value");
        let kv = if value.is_empty() {
            str_of(t, "/key").to_string()
        } else {
            format!("{}={value}", str_of(t, "/key"))
        };
        w.raw(&format!("{kv}:{}\n", str_of(t, "/effect")));
    }
    w.line(
        0,
        &format!("Unschedulable:\t{}", node["spec"]["unschedulable"] == true),
    );
    if let Some(l) = lease {
        w.line(0, "Lease:");
        w.line(
            1,
            &format!(
                "HolderIdentity:\t{}",
                or_unset(str_of(l, "/spec/holderIdentity"))
            ),
        );
        w.line(
            1,
            &format!("AcquireTime:\t{}", rfc1123z(&l["spec"]["acquireTime"])),
        );
        w.line(
            1,
            &format!("RenewTime:\t{}", rfc1123z(&l["spec"]["renewTime"])),
        );
    }
    let conditions = arr(node, "/status/conditions");
    if !conditions.is_empty() {
        w.line(0, "Conditions:");
        w.line(
            1,
            "Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage",
        );
        w.line(
            1,
            "----\t------\t-----------------\t------------------\t------\t-------",
        );
        for c in conditions {
            w.line(
                1,
                &format!(
                    "{} \t{} \t{} \t{} \t{} \t{}",
                    str_of(&c, "/type"),
                    str_of(&c, "/status"),
                    rfc1123z(&c["lastHeartbeatTime"]),
                    rfc1123z(&c["lastTransitionTime"]),
                    str_of(&c, "/reason"),
                    str_of(&c, "/message")
                ),
            );
        }
    }
    w.line(0, "Addresses:");
    for a in arr(node, "/status/addresses") {
        w.line(
            1,
            &format!("{}:\t{}", str_of(&a, "/type"), str_of(&a, "/address")),
        );
    }
    for (title, key) in [("Capacity", "capacity"), ("Allocatable", "allocatable")] {
        if let Some(m) = node["status"][key].as_object().filter(|m| !m.is_empty()) {
            w.line(0, &format!("{title}:"));
            let mut names: Vec<&String> = m.keys().collect();
            names.sort();
            for n in names {
                w.line(1, &format!("{n}:\t{}", m[n].as_str().unwrap_or_default()));
            }
        }
    }
    let info = &node["status"]["nodeInfo"];
    w.line(0, "System Info:");
    for (title, key) in [
        ("Machine ID", "machineID"),
        ("System UUID", "systemUUID"),
        ("Boot ID", "bootID"),
        ("Kernel Version", "kernelVersion"),
        ("OS Image", "osImage"),
        ("Operating System", "operatingSystem"),
        ("Architecture", "architecture"),
        ("Container Runtime Version", "containerRuntimeVersion"),
        ("Kubelet Version", "kubeletVersion"),
    ] {
        w.line(
            1,
            &format!("{title}:\t{}", str_of(info, &format!("/{key}"))),
        );
    }
    let cidr = str_of(node, "/spec/podCIDR");
    if !cidr.is_empty() {
        w.line(0, &format!("PodCIDR:\t{cidr}"));
    }
    let cidrs: Vec<String> = arr(node, "/spec/podCIDRs")
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    if !cidrs.is_empty() {
        w.line(0, &format!("PodCIDRs:\t{}", cidrs.join(",")));
    }
    // kube-lite's: which kind of pod network the node has.
    let network = str_of(
        node,
        &format!(
            "/metadata/annotations/{}",
            api::annotations::POD_NETWORK.replace('/', "~1")
        ),
    );
    if !network.is_empty() {
        w.line(0, &format!("Pod Network:\t{network}"));
    }
    // What the pods on the node asked for, against what the node can give.
    let alloc = if node["status"]["allocatable"]
        .as_object()
        .is_some_and(|m| !m.is_empty())
    {
        &node["status"]["allocatable"]
    } else {
        &node["status"]["capacity"]
    };
    let alloc_cpu = alloc["cpu"]
        .as_str()
        .and_then(|s| api::Quantity::new(s).milli_value().ok())
        .unwrap_or(0);
    let alloc_mem = alloc["memory"]
        .as_str()
        .and_then(|s| api::Quantity::new(s).value().ok())
        .unwrap_or(0);
    w.line(
        0,
        &format!("Non-terminated Pods:\t({} in total)", pods.len()),
    );
    w.line(
        1,
        "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge",
    );
    w.line(
        1,
        "---------\t----\t\t------------\t----------\t---------------\t-------------\t---",
    );
    let mut total = [0i64; 4];
    for p in pods {
        let t = pod_resources(p);
        // Requests and limits of cpu, then of memory: the columns' order.
        let r = [
            t.requests.cpu_milli,
            t.limits.cpu_milli,
            t.requests.memory,
            t.limits.memory,
        ];
        for i in 0..4 {
            total[i] += r[i];
        }
        w.line(
            1,
            &format!(
                "{}\t{}\t\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{}",
                str_of(p, "/metadata/namespace"),
                name_of(p),
                cpu_text(r[0]),
                percent(r[0], alloc_cpu),
                cpu_text(r[1]),
                percent(r[1], alloc_cpu),
                memory_text(r[2]),
                percent(r[2], alloc_mem),
                memory_text(r[3]),
                percent(r[3], alloc_mem),
                age(&p["metadata"]["creationTimestamp"], now)
            ),
        );
    }
    w.line(0, "Allocated resources:");
    w.line(
        0,
        "  (Total limits may be over 100 percent, i.e., overcommitted.)",
    );
    w.line(1, "Resource\tRequests\tLimits");
    w.line(1, "--------\t--------\t------");
    w.line(
        1,
        &format!(
            "cpu\t{} ({}%)\t{} ({}%)",
            cpu_text(total[0]),
            percent(total[0], alloc_cpu),
            cpu_text(total[1]),
            percent(total[1], alloc_cpu)
        ),
    );
    w.line(
        1,
        &format!(
            "memory\t{} ({}%)\t{} ({}%)",
            memory_text(total[2]),
            percent(total[2], alloc_mem),
            memory_text(total[3]),
            percent(total[3], alloc_mem)
        ),
    );
    w.line(1, "ephemeral-storage\t0 (0%)\t0 (0%)");
    events(&mut w, evs, now);
    w.finish()
}

fn or_unset(s: &str) -> &str {
    if s.is_empty() { "<unset>" } else { s }
}

/// `describe configmap`.
pub fn config_map(cm: &Value, evs: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Writer::default();
    w.line(0, &format!("Name:\t{}", name_of(cm)));
    w.line(
        0,
        &format!("Namespace:\t{}", str_of(cm, "/metadata/namespace")),
    );
    labels(&mut w, "", "Labels", cm.pointer("/metadata/labels"));
    annotations(
        &mut w,
        "",
        "Annotations",
        cm.pointer("/metadata/annotations"),
    );
    w.line(0, "");
    w.line(0, "Data");
    w.line(0, "====");
    let data: BTreeMap<String, Value> = cm["data"]
        .as_object()
        .map(|m| m.clone().into_iter().collect())
        .unwrap_or_default();
    for (k, v) in &data {
        w.line(0, &format!("{k}:"));
        w.line(0, "----");
        w.line(0, v.as_str().unwrap_or_default());
        w.line(0, "");
    }
    w.line(0, "");
    w.line(0, "BinaryData");
    w.line(0, "====");
    let binary: BTreeMap<String, Value> = cm["binaryData"]
        .as_object()
        .map(|m| m.clone().into_iter().collect())
        .unwrap_or_default();
    for (k, v) in &binary {
        // Base64: 4 characters for every 3 bytes, less the padding.
        let s = v.as_str().unwrap_or_default();
        let bytes = s.len() / 4 * 3 - s.chars().rev().take_while(|c| *c == '=').count();
        w.line(0, &format!("{k}: {bytes} bytes"));
    }
    w.line(0, "");
    events(&mut w, evs, now);
    w.finish()
}

/// `describe namespace`.
pub fn namespace(ns: &Value) -> String {
    let mut w = Writer::default();
    w.line(0, &format!("Name:\t{}", name_of(ns)));
    labels(&mut w, "", "Labels", ns.pointer("/metadata/labels"));
    annotations(
        &mut w,
        "",
        "Annotations",
        ns.pointer("/metadata/annotations"),
    );
    w.line(0, &format!("Status:\t{}", str_of(ns, "/status/phase")));
    w.line(0, "");
    w.line(0, "No resource quota.");
    w.line(0, "");
    w.line(0, "No LimitRange resource.");
    w.finish()
}

/// Any other kind: kubectl's generic describer — the metadata, then every other field with
/// its name spelled out (`Spec:`, `Holder Identity:`).
pub fn generic(obj: &Value, evs: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Writer::default();
    w.line(0, &format!("Name:\t{}", name_of(obj)));
    let ns = str_of(obj, "/metadata/namespace");
    if !ns.is_empty() {
        w.line(0, &format!("Namespace:\t{ns}"));
    }
    labels(&mut w, "", "Labels", obj.pointer("/metadata/labels"));
    annotations(
        &mut w,
        "",
        "Annotations",
        obj.pointer("/metadata/annotations"),
    );
    w.line(0, &format!("API Version:\t{}", str_of(obj, "/apiVersion")));
    w.line(0, &format!("Kind:\t{}", str_of(obj, "/kind")));
    if let Some(m) = obj.as_object() {
        let mut keys: Vec<&String> = m
            .keys()
            .filter(|k| !matches!(k.as_str(), "apiVersion" | "kind"))
            .collect();
        keys.sort();
        for k in keys {
            generic_field(&mut w, 0, k, &m[k]);
        }
    }
    events(&mut w, evs, now);
    w.finish()
}

/// `holderIdentity` → `Holder Identity`.
fn field_title(key: &str) -> String {
    let mut out = String::new();
    for (i, c) in key.chars().enumerate() {
        if i == 0 {
            out.extend(c.to_uppercase());
        } else if c.is_uppercase() {
            out.push(' ');
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out
}

fn generic_field(w: &mut Writer, level: usize, key: &str, v: &Value) {
    let title = field_title(key);
    match v {
        Value::Object(m) => {
            w.line(level, &format!("{title}:"));
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                generic_field(w, level + 1, k, &m[k]);
            }
        }
        Value::Array(items) => {
            w.line(level, &format!("{title}:"));
            for item in items {
                match item {
                    Value::Object(m) => {
                        let mut first = true;
                        let mut keys: Vec<&String> = m.keys().collect();
                        keys.sort();
                        for k in keys {
                            let mut sub = Writer::default();
                            generic_field(&mut sub, 0, k, &m[k]);
                            for line in sub.current.lines() {
                                let prefix = if first { "- " } else { "  " };
                                first = false;
                                w.line(level + 1, &format!("{prefix}{line}"));
                            }
                        }
                    }
                    other => w.line(level + 1, &scalar(other)),
                }
            }
        }
        other => w.line(level, &format!("{title}:\t{}", scalar(other))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        other => other.to_string(),
    }
}

/// The ReplicaSet of a Deployment that runs its current template (kubectl's
/// `FindNewReplicaSet`, [`api::workload::new_replica_set`]), and the others, oldest first.
pub fn split_replica_sets(d: &Value, owned: &[Value]) -> (Vec<Value>, Option<Value>) {
    let mut sorted = owned.to_vec();
    sorted.sort_by_key(|rs| crate::util::time(&rs["metadata"]["creationTimestamp"]));
    // Only what the rule reads: name, creation time, template.
    let typed: Vec<api::apps::ReplicaSet> = sorted
        .iter()
        .map(|rs| {
            let mut t = api::apps::ReplicaSet::default();
            let meta = serde_json::json!({"name": rs["metadata"]["name"],
                "creationTimestamp": rs["metadata"]["creationTimestamp"]});
            t.metadata = serde_json::from_value(meta).unwrap_or_default();
            t.spec.template =
                serde_json::from_value(rs["spec"]["template"].clone()).unwrap_or_default();
            t
        })
        .collect();
    let mut deployment = api::apps::Deployment::default();
    let new_index = serde_json::from_value(d["spec"]["template"].clone())
        .ok()
        .and_then(|t| {
            deployment.spec.template = t;
            api::workload::new_replica_set(&deployment, &typed)
        });
    let new = new_index.map(|i| sorted.remove(i));
    (sorted, new)
}

/// Owned by `owner` as its controller.
pub fn controlled_by_uid(obj: &Value, uid: &str) -> bool {
    arr(obj, "/metadata/ownerReferences")
        .iter()
        .any(|o| o["controller"] == true && str_of(o, "/uid") == uid)
}

mod service;

pub use service::{endpoint_slice, endpoints, format_endpoint_slices, service};

#[cfg(test)]
mod tests;
