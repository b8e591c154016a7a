//! Snapshots of every describe page, from fixed objects and a fixed "now".

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::*;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .expect("time")
}

fn event(type_: &str, reason: &str, from: &str, message: &str, age_s: i64, count: i64) -> Value {
    let last = now() - chrono::Duration::seconds(age_s);
    let first = last - chrono::Duration::seconds(60 * (count - 1));
    json!({"involvedObject": {"namespace": "default"},
           "type": type_, "reason": reason, "message": message, "count": count,
           "source": {"component": from},
           "firstTimestamp": first.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
           "lastTimestamp": last.format("%Y-%m-%dT%H:%M:%SZ").to_string()})
}

fn container() -> Value {
    json!({"name": "web", "image": "python:3.12-alpine",
           "command": ["/bin/sh", "-c"], "args": ["mkdir -p www\nexec python3 -m http.server 8000"],
           "ports": [{"containerPort": 8000, "protocol": "TCP"}],
           "env": [{"name": "PORT", "value": "8000"},
                   {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                   {"name": "TITLE", "valueFrom": {"configMapKeyRef": {"name": "blog-config", "key": "BLOG_TITLE"}}}],
           "envFrom": [{"configMapRef": {"name": "blog-config"}}],
           "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}})
}

fn sample_pod() -> Value {
    json!({
        "metadata": {"name": "blog-7d4b9c-x2x9q", "namespace": "default", "uid": "u-pod",
                     "creationTimestamp": "2024-05-01T11:55:00Z",
                     "labels": {"app": "blog", "pod-template-hash": "7d4b9c"},
                     "annotations": {"note": "hello"},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "blog-7d4b9c", "uid": "u-rs", "controller": true}]},
        "spec": {"nodeName": "worker-1", "containers": [container()],
                 "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]},
        "status": {"phase": "Running", "hostIP": "127.0.0.1", "podIP": "127.11.0.2", "podIPs": [{"ip": "127.11.0.2"}],
                   "startTime": "2024-05-01T11:55:01Z",
                   "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": "web", "ready": true, "restartCount": 1,
                                          "image": "python:3.12-alpine", "imageID": "kube-lite://python:3.12-alpine",
                                          "containerID": "kube-lite://4242",
                                          "state": {"running": {"startedAt": "2024-05-01T11:58:00Z"}},
                                          "lastState": {"terminated": {"exitCode": 137, "reason": "Error",
                                                                       "startedAt": "2024-05-01T11:55:02Z", "finishedAt": "2024-05-01T11:57:59Z"}}}]}
    })
}

#[test]
fn pod_page() {
    let events = vec![
        event(
            "Normal",
            "Scheduled",
            "default-scheduler",
            "Successfully assigned default/blog-7d4b9c-x2x9q to worker-1",
            300,
            1,
        ),
        event(
            "Normal",
            "Started",
            "kubelet",
            "Started container web",
            120,
            2,
        ),
        event(
            "Warning",
            "BackOff",
            "kubelet",
            "Back-off restarting failed container web",
            150,
            1,
        ),
    ];
    insta::assert_snapshot!(pod(&sample_pod(), &events, now()));
}

#[test]
fn pending_pod_without_events() {
    let p = json!({"metadata": {"name": "lonely", "namespace": "default"},
                   "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                   "status": {"phase": "Pending",
                              "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0, "image": "busybox", "imageID": "",
                                                     "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
    insta::assert_snapshot!(pod(&p, &[], now()));
}

fn template(hash: &str, image: &str) -> Value {
    let mut c = container();
    c["image"] = json!(image);
    json!({"metadata": {"labels": {"app": "blog", "pod-template-hash": hash}}, "spec": {"containers": [c]}})
}

fn rs(name: &str, hash: &str, image: &str, replicas: i64, created: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"), "creationTimestamp": created,
                        "labels": {"app": "blog", "pod-template-hash": hash},
                        "annotations": {"deployment.kubernetes.io/revision": "2"},
                        "ownerReferences": [{"kind": "Deployment", "name": "blog", "uid": "u-deploy", "controller": true}]},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "blog", "pod-template-hash": hash}},
                    "template": template(hash, image)},
           "status": {"replicas": replicas}})
}

#[test]
fn deployment_page_with_its_replica_sets() {
    let mut t = template("", "python:3.13-alpine");
    t["metadata"]["labels"] = json!({"app": "blog"});
    let d = json!({
        "metadata": {"name": "blog", "namespace": "default", "uid": "u-deploy", "generation": 2,
                     "creationTimestamp": "2024-05-01T11:00:00Z", "labels": {"app": "blog"},
                     "annotations": {"deployment.kubernetes.io/revision": "2",
                                     "kubectl.kubernetes.io/last-applied-configuration": "{…}"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "blog"}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                 "template": t},
        "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2, "unavailableReplicas": 1,
                   "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                                  {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}
    });
    let owned = vec![
        rs(
            "blog-5f6d7c",
            "5f6d7c",
            "python:3.13-alpine",
            3,
            "2024-05-01T11:50:00Z",
        ),
        rs(
            "blog-7d4b9c",
            "7d4b9c",
            "python:3.12-alpine",
            0,
            "2024-05-01T11:00:00Z",
        ),
    ];
    let (old, new) = split_replica_sets(&d, &owned);
    assert_eq!(new.as_ref().map(name_of), Some("blog-5f6d7c"));
    let events = vec![
        event(
            "Normal",
            "ScalingReplicaSet",
            "deployment-controller",
            "Scaled up replica set blog-5f6d7c from 0 to 1",
            600,
            1,
        ),
        event(
            "Normal",
            "ScalingReplicaSet",
            "deployment-controller",
            "Scaled down replica set blog-7d4b9c from 3 to 0",
            540,
            1,
        ),
    ];
    insta::assert_snapshot!(deployment(&d, &old, new.as_ref(), &events, now()));
}

#[test]
fn replica_set_page() {
    let r = rs(
        "blog-7d4b9c",
        "7d4b9c",
        "python:3.12-alpine",
        3,
        "2024-05-01T11:00:00Z",
    );
    let pods = vec![
        sample_pod(),
        json!({"status": {"phase": "Pending"}}),
        json!({"status": {"phase": "Failed"}}),
    ];
    insta::assert_snapshot!(replica_set(&r, &pods, &[], now()));
}

#[test]
fn node_page_with_allocated_resources() {
    let worker = json!({
        "metadata": {"name": "worker-1", "creationTimestamp": "2024-05-01T10:00:00Z",
                     "labels": {"kubernetes.io/hostname": "worker-1", "kubernetes.io/os": "linux"}},
        "spec": {"podCIDR": "127.11.0.0/16", "podCIDRs": ["127.11.0.0/16"], "unschedulable": true,
                 "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]},
        "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                   "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
                                   "lastHeartbeatTime": "2024-05-01T11:59:50Z", "lastTransitionTime": "2024-05-01T10:00:05Z"}],
                   "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": "worker-1"}],
                   "nodeInfo": {"machineID": "m1", "systemUUID": "s1", "bootID": "b1", "kernelVersion": "6.1.0",
                                "osImage": "Debian GNU/Linux 12", "operatingSystem": "linux", "architecture": "amd64",
                                "containerRuntimeVersion": "kube-lite-process://0.1.0", "kubeletVersion": "v1.37.0-kube-lite.0.1.0"}}
    });
    let mut other = sample_pod();
    other["metadata"]["name"] = json!("bare");
    other["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": "1500m"}, "limits": {"cpu": "2", "memory": "1Gi"}});
    let lease =
        json!({"spec": {"holderIdentity": "worker-1", "renewTime": "2024-05-01T11:59:58.123456Z"}});
    let events = vec![event(
        "Normal",
        "NodeNotSchedulable",
        "kubelet",
        "Node worker-1 status is now: NodeNotSchedulable",
        30,
        1,
    )];
    insta::assert_snapshot!(node(
        &worker,
        &[sample_pod(), other],
        Some(&lease),
        &events,
        now()
    ));
}

#[test]
fn config_map_and_namespace_pages() {
    let cm = json!({"metadata": {"name": "blog-config", "namespace": "default", "labels": {"app": "blog"}},
                    "data": {"BLOG_TITLE": "Notes from a tiny cluster", "BLOG_AUTHOR": "kube-lite"},
                    "binaryData": {"logo.png": "iVBORw0KGgo="}});
    let ns = json!({"metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"}},
                    "status": {"phase": "Active"}});
    insta::assert_snapshot!(format!(
        "{}---\n{}",
        config_map(&cm, &[], now()),
        namespace(&ns)
    ));
}

#[test]
fn other_kinds_use_the_generic_page() {
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                       "metadata": {"name": "kube-scheduler", "namespace": "kube-system"},
                       "spec": {"holderIdentity": "host_1234", "leaseDurationSeconds": 15,
                                "renewTime": "2024-05-01T11:59:58.000000Z"}});
    insta::assert_snapshot!(generic(&lease, &[], now()));
}

#[test]
fn long_and_multiline_annotations_get_their_own_lines() {
    let mut w = Writer::default();
    let long = "x".repeat(200);
    annotations(
        &mut w,
        "",
        "Annotations",
        Some(&json!({"a": "short", "b": "two\nlines", "c": long})),
    );
    insta::assert_snapshot!(w.finish());
}

#[test]
fn qos_classes() {
    assert_eq!(qos_class(&sample_pod()), "Burstable");
    assert_eq!(
        qos_class(&json!({"spec": {"containers": [{"name": "c"}]}})),
        "BestEffort"
    );
    let g = json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
    assert_eq!(qos_class(&g), "Guaranteed");
}

fn sample_slices() -> Vec<Value> {
    vec![json!({
        "metadata": {"name": "blog-x7k2p", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "blog",
                                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}, {"name": "metrics", "port": 9100, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["127.11.0.2"], "conditions": {"ready": true, "serving": true, "terminating": false},
             "nodeName": "worker-1", "targetRef": {"kind": "Pod", "namespace": "default", "name": "blog-7d4b9c-x2x9q"}},
            {"addresses": ["127.12.0.2"], "conditions": {"ready": false, "serving": true, "terminating": true},
             "nodeName": "worker-2", "targetRef": {"kind": "Pod", "namespace": "default", "name": "blog-7d4b9c-q8r2z"}},
            {"addresses": ["127.12.0.3"], "conditions": {"ready": true, "serving": true, "terminating": false},
             "nodeName": "worker-2", "targetRef": {"kind": "Pod", "namespace": "default", "name": "blog-7d4b9c-m4n5p"}}
        ]
    })]
}

#[test]
fn service_pages() {
    let svc = json!({
        "metadata": {"name": "blog", "namespace": "default", "labels": {"app": "blog"}},
        "spec": {"type": "NodePort", "selector": {"app": "blog"}, "clusterIP": "10.96.183.4",
                 "clusterIPs": ["10.96.183.4"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "sessionAffinity": "None", "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
                 "ports": [{"name": "http", "port": 80, "targetPort": 8000, "nodePort": 30080, "protocol": "TCP"},
                           {"name": "metrics", "port": 9100, "targetPort": "metrics", "nodePort": 31234, "protocol": "TCP"}]}
    });
    let events = [event(
        "Warning",
        "FailedToUpdateEndpointSlices",
        "endpoint-slice-controller",
        "Error updating Endpoint Slices for Service default/blog: timeout",
        30,
        1,
    )];
    let headless = json!({
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"], "sessionAffinity": "None",
                 "ports": [{"port": 5432, "targetPort": 5432, "protocol": "TCP"}]}
    });
    insta::assert_snapshot!(format!(
        "{}---\n{}",
        service(&svc, &sample_slices(), &events, now()),
        service(&headless, &[], &[], now())
    ));
}

#[test]
fn endpoints_and_endpoint_slice_pages() {
    let ep = json!({
        "metadata": {"name": "blog", "namespace": "default", "labels": {"app": "blog"}},
        "subsets": [{"addresses": [{"ip": "127.11.0.2"}, {"ip": "127.12.0.3"}],
                     "notReadyAddresses": [{"ip": "127.12.0.4"}],
                     "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}]}]
    });
    insta::assert_snapshot!(format!(
        "{}---\n{}",
        endpoints(&ep, &[], now()),
        endpoint_slice(&sample_slices()[0], &[], now())
    ));
}

#[test]
fn service_endpoints_list_ready_ones_three_then_more() {
    let mut slices = sample_slices();
    assert_eq!(
        format_endpoint_slices(&slices, "http"),
        "127.11.0.2:8000,127.12.0.3:8000"
    );
    for i in 4..7 {
        slices[0]["endpoints"]
            .as_array_mut()
            .unwrap()
            .push(json!({"addresses": [format!("127.13.0.{i}")], "conditions": {"ready": true}}));
    }
    assert_eq!(
        format_endpoint_slices(&slices, "http"),
        "127.11.0.2:8000,127.12.0.3:8000,127.13.0.4:8000 + 2 more..."
    );
    assert_eq!(format_endpoint_slices(&[], "http"), "<none>");
}
