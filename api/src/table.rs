//! Human-readable tables, column for column as kubectl prints them: the API server serves
//! them for `as=Table`, so kubectl-lite and the real kubectl show the same thing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::apps::{Deployment, ReplicaSet};
use crate::coordination::Lease;
use crate::core::{ConfigMap, Endpoints, Event, Namespace, Node, Pod, Service};
use crate::discovery::EndpointSlice;
use crate::meta::Time;
use crate::resource::ResourceInfo;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnDefinition {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub description: String,
    /// 0: always shown; 1: only with `-o wide`.
    #[serde(default)]
    pub priority: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableRow {
    pub cells: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Value>,
}

fn col(name: &str, type_: &str, priority: i32, description: &str) -> ColumnDefinition {
    ColumnDefinition {
        name: name.into(),
        type_: type_.into(),
        format: if name == "Name" {
            "name".into()
        } else {
            String::new()
        },
        description: description.into(),
        priority,
    }
}

/// Kubernetes' `duration.HumanDuration`: `45s`, `5m3s`, `3h`, `2d5h`, `400d`, `3y`.
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d.num_minutes();
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d.num_hours();
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// Age of a timestamp, `<unknown>` when absent.
pub fn age(t: Option<&Time>, now: DateTime<Utc>) -> String {
    match t {
        Some(t) => human_duration(now - t.0),
        None => "<unknown>".into(),
    }
}

/// Columns of a kind's table.
pub fn columns(info: &ResourceInfo) -> Vec<ColumnDefinition> {
    let name = col(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    );
    let age = col(
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    match info.kind {
        "Pod" => vec![
            name,
            col(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age,
            col("IP", "string", 1, "IP address allocated to the pod."),
            col(
                "Node",
                "string",
                1,
                "Name of the node the pod is assigned to.",
            ),
            col(
                "Nominated Node",
                "string",
                1,
                "Name of the node where the pod is nominated to run.",
            ),
            col(
                "Readiness Gates",
                "string",
                1,
                "The readiness gates of the pod.",
            ),
        ],
        "Deployment" => vec![
            name,
            col("Ready", "string", 0, "Number of the pod with ready state"),
            col(
                "Up-to-date",
                "string",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            col(
                "Available",
                "string",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            age,
            col(
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            col(
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            col("Selector", "string", 1, "Label selector for pods."),
        ],
        "ReplicaSet" => vec![
            name,
            col("Desired", "integer", 0, "Number of desired pods."),
            col("Current", "integer", 0, "Number of actual replicas."),
            col(
                "Ready",
                "integer",
                0,
                "The number of ready replicas for this replica set.",
            ),
            age,
            col(
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            col(
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            col("Selector", "string", 1, "Label selector for pods."),
        ],
        "ConfigMap" => vec![name, col("Data", "string", 0, "Number of keys."), age],
        "Node" => vec![
            name,
            col("Status", "string", 0, "The status of the node"),
            col("Roles", "string", 0, "The roles of the node"),
            age,
            col(
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node.",
            ),
            col("Internal-IP", "string", 1, "List of internal IPs."),
            col("External-IP", "string", 1, "List of external IPs."),
            col("OS-Image", "string", 1, "OS image reported by the node."),
            col(
                "Kernel-Version",
                "string",
                1,
                "Kernel version reported by the node.",
            ),
            col(
                "Container-Runtime",
                "string",
                1,
                "Container runtime reported by the node.",
            ),
        ],
        "Namespace" => vec![
            name,
            col("Status", "string", 0, "The status of the namespace"),
            age,
        ],
        "Event" => vec![
            col(
                "Last Seen",
                "string",
                0,
                "Time when this Event was last seen.",
            ),
            col("Type", "string", 0, "Type of this event (Normal, Warning)."),
            col("Reason", "string", 0, "Reason is why the action was taken."),
            col(
                "Object",
                "string",
                0,
                "The object that this event is about.",
            ),
            col(
                "Subobject",
                "string",
                1,
                "The subobject that this event is about.",
            ),
            col("Source", "string", 1, "The component reporting this event."),
            col(
                "Message",
                "string",
                0,
                "A human-readable description of the status of this operation.",
            ),
            col(
                "First Seen",
                "string",
                1,
                "The first time that this event was seen.",
            ),
            col(
                "Count",
                "string",
                1,
                "The number of times this event has occurred.",
            ),
            col("Name", "string", 1, "The name of the event."),
        ],
        "Lease" => vec![
            name,
            col("Holder", "string", 0, "The holder of the lease."),
            age,
        ],
        "Service" => vec![
            name,
            col(
                "Type",
                "string",
                0,
                "type determines how the Service is exposed. Defaults to ClusterIP.",
            ),
            col(
                "Cluster-IP",
                "string",
                0,
                "clusterIP is the IP address of the service, assigned by the master.",
            ),
            col(
                "External-IP",
                "string",
                0,
                "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            ),
            col(
                "Port(s)",
                "string",
                0,
                "The list of ports that are exposed by this service.",
            ),
            age,
            col(
                "Selector",
                "string",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        "Endpoints" => vec![
            name,
            col(
                "Endpoints",
                "string",
                0,
                "The set of all endpoints is the union of all subsets.",
            ),
            age,
        ],
        "EndpointSlice" => vec![
            name,
            col(
                "AddressType",
                "string",
                0,
                "addressType specifies the type of address carried by this EndpointSlice.",
            ),
            col(
                "Ports",
                "string",
                0,
                "ports specifies the list of network ports exposed by each endpoint in this slice.",
            ),
            col(
                "Endpoints",
                "string",
                0,
                "endpoints is a list of unique endpoints in this slice.",
            ),
            age,
        ],
        _ => vec![name, age],
    }
}

fn decode<T: serde::de::DeserializeOwned + Default>(v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

/// The cells of one object's row.
pub fn cells(info: &ResourceInfo, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    match info.kind {
        "Pod" => pod_cells(&decode(obj), now),
        "Deployment" => deployment_cells(&decode(obj), now),
        "ReplicaSet" => replica_set_cells(&decode(obj), now),
        "ConfigMap" => {
            let cm: ConfigMap = decode(obj);
            vec![
                json!(cm.metadata.name),
                json!(cm.data.len() + cm.binary_data.len()),
                json!(age(cm.metadata.creation_timestamp.as_ref(), now)),
            ]
        }
        "Node" => node_cells(&decode(obj), now),
        "Namespace" => {
            let ns: Namespace = decode(obj);
            let phase = ns.status.map(|s| s.phase).unwrap_or_default();
            vec![
                json!(ns.metadata.name),
                json!(phase),
                json!(age(ns.metadata.creation_timestamp.as_ref(), now)),
            ]
        }
        "Event" => event_cells(&decode(obj), now),
        "Service" => service_cells(&decode(obj), now),
        "Endpoints" => {
            let ep: Endpoints = decode(obj);
            vec![
                json!(ep.metadata.name),
                json!(format_endpoints(&ep)),
                json!(age(ep.metadata.creation_timestamp.as_ref(), now)),
            ]
        }
        "EndpointSlice" => {
            let s: EndpointSlice = decode(obj);
            vec![
                json!(s.metadata.name),
                json!(s.address_type),
                json!(format_slice_ports(&s)),
                json!(format_slice_endpoints(&s)),
                json!(age(s.metadata.creation_timestamp.as_ref(), now)),
            ]
        }
        "Lease" => {
            let l: Lease = decode(obj);
            vec![
                json!(l.metadata.name),
                json!(l.spec.holder_identity.unwrap_or_default()),
                json!(age(l.metadata.creation_timestamp.as_ref(), now)),
            ]
        }
        _ => {
            let name = obj.pointer("/metadata/name").cloned().unwrap_or(json!(""));
            let created: Option<Time> = obj
                .pointer("/metadata/creationTimestamp")
                .and_then(|t| serde_json::from_value(t.clone()).ok());
            vec![name, json!(age(created.as_ref(), now))]
        }
    }
}

/// kubectl's pod STATUS: the phase, overridden by the most telling container reason.
pub fn pod_status_reason(pod: &Pod) -> (String, i32, i32, i32, Option<Time>) {
    let status = pod.status.clone().unwrap_or_default();
    let mut reason = if status.reason.is_empty() {
        pod.phase().to_string()
    } else {
        status.reason.clone()
    };
    let total = pod.spec.containers.len() as i32;
    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart: Option<Time> = None;
    let mut initializing = false;
    for (i, c) in status.init_container_statuses.iter().enumerate() {
        restarts += c.restart_count;
        if let Some(t) = c.last_state.terminated.as_ref().and_then(|t| t.finished_at) {
            last_restart = last_restart.max(Some(t));
        }
        if let Some(t) = &c.state.terminated
            && t.exit_code == 0
        {
            continue;
        }
        initializing = true;
        let n = pod.spec.init_containers.len();
        reason = if let Some(t) = &c.state.terminated {
            if t.reason.is_empty() {
                format!("Init:ExitCode:{}", t.exit_code)
            } else {
                format!("Init:{}", t.reason)
            }
        } else if let Some(w) = c
            .state
            .waiting
            .as_ref()
            .filter(|w| !w.reason.is_empty() && w.reason != "PodInitializing")
        {
            format!("Init:{}", w.reason)
        } else {
            format!("Init:{i}/{n}")
        };
        break;
    }
    if !initializing {
        let mut has_running = false;
        for c in status.container_statuses.iter().rev() {
            restarts += c.restart_count;
            if let Some(t) = c.last_state.terminated.as_ref().and_then(|t| t.finished_at) {
                last_restart = last_restart.max(Some(t));
            }
            if let Some(w) = c.state.waiting.as_ref().filter(|w| !w.reason.is_empty()) {
                reason = w.reason.clone();
            } else if let Some(t) = c.state.terminated.as_ref() {
                reason = if !t.reason.is_empty() {
                    t.reason.clone()
                } else if t.signal != 0 {
                    format!("Signal:{}", t.signal)
                } else {
                    format!("ExitCode:{}", t.exit_code)
                };
            } else if c.ready && c.state.running.is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if pod.is_ready() {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        reason = if status.reason == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    (reason, ready, total, restarts, last_restart)
}

fn pod_cells(pod: &Pod, now: DateTime<Utc>) -> Vec<Value> {
    let (reason, ready, total, restarts, last) = pod_status_reason(pod);
    let restarts = match last {
        Some(t) if restarts > 0 => format!("{restarts} ({} ago)", human_duration(now - t.0)),
        _ => restarts.to_string(),
    };
    let status = pod.status.clone().unwrap_or_default();
    let none = || "<none>".to_string();
    vec![
        json!(pod.metadata.name),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts),
        json!(age(pod.metadata.creation_timestamp.as_ref(), now)),
        json!(if status.pod_ip.is_empty() {
            none()
        } else {
            status.pod_ip.clone()
        }),
        json!(if pod.spec.node_name.is_empty() {
            none()
        } else {
            pod.spec.node_name.clone()
        }),
        json!(if status.nominated_node_name.is_empty() {
            none()
        } else {
            status.nominated_node_name.clone()
        }),
        json!(none()),
    ]
}

fn containers_images(spec: &crate::core::PodSpec) -> (String, String) {
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = spec.containers.iter().map(|c| c.image.as_str()).collect();
    (names.join(","), images.join(","))
}

fn selector_string(ls: &crate::meta::LabelSelector) -> String {
    match crate::selector::Selector::from_label_selector(ls) {
        Ok(s) if s.is_everything() => "<none>".into(),
        Ok(s) => s.to_string(),
        Err(_) => "<error>".into(),
    }
}

fn deployment_cells(d: &Deployment, now: DateTime<Utc>) -> Vec<Value> {
    let st = d.status.clone().unwrap_or_default();
    let (c, i) = containers_images(&d.spec.template.spec);
    vec![
        json!(d.metadata.name),
        json!(format!(
            "{}/{}",
            st.ready_replicas,
            d.spec.replicas.unwrap_or(1)
        )),
        json!(st.updated_replicas),
        json!(st.available_replicas),
        json!(age(d.metadata.creation_timestamp.as_ref(), now)),
        json!(c),
        json!(i),
        json!(selector_string(&d.spec.selector)),
    ]
}

fn replica_set_cells(rs: &ReplicaSet, now: DateTime<Utc>) -> Vec<Value> {
    let st = rs.status.clone().unwrap_or_default();
    let (c, i) = containers_images(&rs.spec.template.spec);
    vec![
        json!(rs.metadata.name),
        json!(rs.spec.replicas.unwrap_or(1)),
        json!(st.replicas),
        json!(st.ready_replicas),
        json!(age(rs.metadata.creation_timestamp.as_ref(), now)),
        json!(c),
        json!(i),
        json!(selector_string(&rs.spec.selector)),
    ]
}

fn node_cells(n: &Node, now: DateTime<Utc>) -> Vec<Value> {
    let st = n.status.clone().unwrap_or_default();
    let mut status = match n.condition("Ready").map(|c| c.status.as_str()) {
        Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if n.spec.unschedulable {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<&str> = n
        .metadata
        .labels
        .keys()
        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
        .collect();
    roles.sort();
    let addr = |t: &str| {
        st.addresses
            .iter()
            .find(|a| a.type_ == t)
            .map(|a| a.address.clone())
            .unwrap_or_else(|| "<none>".into())
    };
    let info = st.node_info.clone().unwrap_or_default();
    vec![
        json!(n.metadata.name),
        json!(status),
        json!(if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }),
        json!(age(n.metadata.creation_timestamp.as_ref(), now)),
        json!(info.kubelet_version),
        json!(addr("InternalIP")),
        json!(addr("ExternalIP")),
        json!(info.os_image),
        json!(info.kernel_version),
        json!(info.container_runtime_version),
    ]
}

fn event_cells(e: &Event, now: DateTime<Utc>) -> Vec<Value> {
    let last = e
        .last_timestamp
        .or(e.event_time.map(|t| Time(t.0)))
        .or(e.metadata.creation_timestamp);
    let first = e
        .first_timestamp
        .or(e.event_time.map(|t| Time(t.0)))
        .or(e.metadata.creation_timestamp);
    let obj = format!(
        "{}/{}",
        e.involved_object.kind.to_ascii_lowercase(),
        e.involved_object.name
    );
    let source = if e.source.host.is_empty() {
        e.source.component.clone()
    } else {
        format!("{}, {}", e.source.component, e.source.host)
    };
    vec![
        json!(age(last.as_ref(), now)),
        json!(e.type_),
        json!(e.reason),
        json!(obj),
        json!(e.involved_object.field_path),
        json!(source),
        json!(e.message.trim()),
        json!(age(first.as_ref(), now)),
        json!(e.count.max(1)),
        json!(e.metadata.name),
    ]
}

/// kubectl's EXTERNAL-IP: external IPs, a load balancer's address (`<pending>` until it has
/// one), an ExternalName's name, else `<none>`.
pub fn service_external_ip(svc: &Service) -> String {
    let ext = svc.spec.external_ips.join(",");
    match svc.spec.type_or_default() {
        "ClusterIP" | "NodePort" if ext.is_empty() => "<none>".into(),
        "ClusterIP" | "NodePort" => ext,
        "LoadBalancer" => {
            let mut ips: Vec<String> = svc
                .status
                .iter()
                .flat_map(|s| s.load_balancer.ingress.iter())
                .map(|i| {
                    if i.ip.is_empty() {
                        i.hostname.clone()
                    } else {
                        i.ip.clone()
                    }
                })
                .filter(|s| !s.is_empty())
                .collect();
            ips.sort();
            ips.dedup();
            ips.extend(svc.spec.external_ips.iter().cloned());
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        "ExternalName" => svc.spec.external_name.clone(),
        _ => "<unknown>".into(),
    }
}

/// kubectl's PORT(S): `80/TCP`, `80:30080/TCP` with a node port, comma-separated.
pub fn service_ports(svc: &Service) -> String {
    let s = svc
        .spec
        .ports
        .iter()
        .map(|p| {
            if p.node_port > 0 {
                format!("{}:{}/{}", p.port, p.node_port, p.protocol)
            } else {
                format!("{}/{}", p.port, p.protocol)
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    if s.is_empty() { "<none>".into() } else { s }
}

fn service_cells(svc: &Service, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(svc.metadata.name),
        json!(svc.spec.type_),
        json!(
            svc.spec
                .cluster_ips
                .first()
                .cloned()
                .unwrap_or_else(|| "<none>".into())
        ),
        json!(service_external_ip(svc)),
        json!(service_ports(svc)),
        json!(age(svc.metadata.creation_timestamp.as_ref(), now)),
        json!(crate::validation::service::format_selector(
            &svc.spec.selector
        )),
    ]
}

/// Up to three items, then ` + N more...` (kubectl's `listWithMoreString`).
fn list_with_more(list: Vec<String>, count: usize, empty: &str) -> String {
    const MAX: usize = 3;
    if count > MAX {
        return format!("{} + {} more...", list.join(","), count - MAX);
    }
    if list.is_empty() {
        return empty.into();
    }
    list.join(",")
}

/// kubectl's ENDPOINTS of an Endpoints object: `ip:port` of the ready addresses.
pub fn format_endpoints(ep: &Endpoints) -> String {
    if ep.subsets.is_empty() {
        return "<none>".into();
    }
    let mut list = Vec::new();
    let mut count = 0;
    for ss in &ep.subsets {
        if ss.ports.is_empty() {
            for a in &ss.addresses {
                count += 1;
                if list.len() < 3 {
                    list.push(a.ip.clone());
                }
            }
            continue;
        }
        for p in &ss.ports {
            for a in &ss.addresses {
                count += 1;
                if list.len() < 3 {
                    list.push(host_port(&a.ip, p.port));
                }
            }
        }
    }
    list_with_more(list, count, "")
}

/// `ip:port`, IPv6 addresses bracketed (Go's `net.JoinHostPort`).
pub fn host_port(ip: &str, port: i32) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// kubectl's PORTS of an EndpointSlice: the numbers, `<unset>` when none.
pub fn format_slice_ports(s: &EndpointSlice) -> String {
    let list: Vec<String> = s
        .ports
        .iter()
        .take(3)
        .map(|p| match (p.port, &p.name) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.clone(),
            (None, None) => "*".into(),
        })
        .collect();
    list_with_more(list, s.ports.len(), "<unset>")
}

/// kubectl's ENDPOINTS of an EndpointSlice: the addresses, `<unset>` when none.
pub fn format_slice_endpoints(s: &EndpointSlice) -> String {
    let all: Vec<&String> = s
        .endpoints
        .iter()
        .flat_map(|e| e.addresses.iter())
        .collect();
    let list = all.iter().take(3).map(|a| a.to_string()).collect();
    list_with_more(list, all.len(), "<unset>")
}

/// A `meta.k8s.io/v1` Table of objects of one kind. `include_object`: `Metadata` (default),
/// `Object` or `None`, as `?includeObject=`.
pub fn table(
    info: &ResourceInfo,
    items: &[Value],
    resource_version: &str,
    continue_: Option<&str>,
    include_object: &str,
    now: DateTime<Utc>,
) -> Value {
    let rows: Vec<TableRow> = items
        .iter()
        .map(|o| TableRow {
            cells: cells(info, o, now),
            object: match include_object {
                "None" => None,
                "Object" => Some(o.clone()),
                _ => Some(json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
                })),
            },
        })
        .collect();
    let mut meta = json!({"resourceVersion": resource_version});
    if let Some(c) = continue_ {
        meta["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns(info),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn human_durations_match_kubernetes() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (303, "5m3s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60 * 5, "3h5m"),
            (9 * 3600, "9h"),
            (50 * 3600, "2d2h"),
            (48 * 3600, "2d"),
            (10 * 24 * 3600, "10d"),
            (3 * 365 * 24 * 3600, "3y"),
        ];
        for (s, want) in cases {
            assert_eq!(human_duration(Duration::seconds(s)), want, "{s}");
        }
    }

    #[test]
    fn pod_status_prefers_container_reasons() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "image": "", "imageID": "", "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 4, "image": "", "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}
        }))
        .unwrap();
        let (reason, ready, total, restarts, _) = pod_status_reason(&pod);
        assert_eq!(
            (reason.as_str(), ready, total, restarts),
            ("CrashLoopBackOff", 1, 2, 4)
        );
    }

    #[test]
    fn service_rows_read_like_kubectl() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                     "selector": {"app": "web", "tier": "front"},
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}
        }))
        .unwrap();
        let cells = service_cells(&svc, Utc::now());
        assert_eq!(cells[1], "NodePort");
        assert_eq!(cells[2], "10.96.0.10");
        assert_eq!(cells[3], "<none>");
        assert_eq!(cells[4], "80:30080/TCP,53/UDP");
        assert_eq!(cells[6], "app=web,tier=front");
        let mut lb = svc.clone();
        lb.spec.type_ = "LoadBalancer".into();
        assert_eq!(service_external_ip(&lb), "<pending>");
        let headless: Service = serde_json::from_value(json!({
            "metadata": {"name": "h"}, "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}
        }))
        .unwrap();
        let cells = service_cells(&headless, Utc::now());
        assert_eq!(
            (cells[2].as_str(), cells[4].as_str(), cells[6].as_str()),
            (Some("None"), Some("<none>"), Some("<none>"))
        );
    }

    #[test]
    fn endpoints_and_slices_list_three_then_more() {
        let ep: Endpoints = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "subsets": [{"addresses": [{"ip": "127.0.0.2"}, {"ip": "127.0.0.3"}, {"ip": "127.0.0.4"}, {"ip": "127.0.0.5"}],
                         "notReadyAddresses": [{"ip": "127.0.0.9"}],
                         "ports": [{"port": 8000, "protocol": "TCP"}]}]
        }))
        .unwrap();
        assert_eq!(
            format_endpoints(&ep),
            "127.0.0.2:8000,127.0.0.3:8000,127.0.0.4:8000 + 1 more..."
        );
        assert_eq!(format_endpoints(&Endpoints::default()), "<none>");
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-x"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.2"]}, {"addresses": ["127.0.0.3"]}],
            "ports": [{"name": "", "port": 8000, "protocol": "TCP"}]
        }))
        .unwrap();
        assert_eq!(format_slice_ports(&slice), "8000");
        assert_eq!(format_slice_endpoints(&slice), "127.0.0.2,127.0.0.3");
        let empty = EndpointSlice::default();
        assert_eq!(
            (format_slice_ports(&empty), format_slice_endpoints(&empty)),
            ("<unset>".to_string(), "<unset>".to_string())
        );
    }
}
