"""The official Kubernetes Python client (PyPI `kubernetes`) against a kube-lite cluster.

Run by `apiserver/tests/kubectl_e2e.rs` with the cluster's kubeconfig in $KUBECONFIG, in the
namespace given as the first argument (which must exist). Prints one JSON object per line,
`{"name": ..., "ok": true|false, "detail": ...}`, for each check; the Rust test turns them into
the compatibility table in docs/kubectl-compat.md and fails on any `"ok": false`.

Every call goes through the client's typed models, so a response missing a field the models
require (or with a malformed timestamp) fails here as it would in a user's program.
"""

import datetime
import json
import sys
import threading
import time
import traceback

from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

NS = sys.argv[1] if len(sys.argv) > 1 else "default"
RESULTS = []


def step(name):
    def wrap(fn):
        try:
            detail = fn() or ""
            RESULTS.append({"name": name, "ok": True, "detail": str(detail)})
        except Exception as e:  # noqa: BLE001 - every failure is a result
            tb = traceback.format_exc(limit=3)
            RESULTS.append({"name": name, "ok": False, "detail": f"{type(e).__name__}: {e}\n{tb}"})
        print(json.dumps(RESULTS[-1]), flush=True)
        return fn

    return wrap


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def until(what, fn, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


config.load_kube_config()
core = client.CoreV1Api()
apps = client.AppsV1Api()
coord = client.CoordinationV1Api()
disc = client.DiscoveryV1Api()


@step("list nodes, namespaces and leases (typed models)")
def _():
    nodes = core.list_node().items
    expect(len(nodes) >= 1, "no nodes")
    for n in nodes:
        expect(n.status.node_info.kubelet_version, "node without kubeletVersion")
    names = {n.metadata.name for n in core.list_namespace().items}
    expect({"default", "kube-system", "kube-node-lease"} <= names, f"namespaces: {names}")
    leases = coord.list_namespaced_lease("kube-node-lease").items
    expect(all(isinstance(l.spec.renew_time, datetime.datetime) for l in leases), "renewTime is not a MicroTime")
    return f"{len(nodes)} nodes, {len(names)} namespaces, {len(leases)} node leases"


@step("list pods in all namespaces (typed models, container statuses)")
def _():
    pods = core.list_pod_for_all_namespaces()
    expect(pods.metadata.resource_version, "list without resourceVersion")
    statuses = [s for p in pods.items for s in (p.status.container_statuses or [])]
    return f"{len(pods.items)} pods, {len(statuses)} container statuses"


@step("list events (typed models) and an empty list has items: []")
def _():
    evs = core.list_event_for_all_namespaces(limit=50)
    empty = core.list_namespaced_config_map(NS, label_selector="nothing=matches")
    expect(empty.items == [], "empty list is not []")
    return f"{len(evs.items)} events in the first page"


@step("create a ConfigMap")
def _():
    cm = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="py-config", labels={"app": "py"}),
        data={"color": "blue"},
    )
    out = core.create_namespaced_config_map(NS, cm)
    expect(out.metadata.uid and out.metadata.resource_version, "no uid/resourceVersion")
    try:
        core.create_namespaced_config_map(NS, cm)
        raise AssertionError("second create succeeded")
    except ApiException as e:
        expect(e.status == 409, f"second create: {e.status}")
        body = json.loads(e.body)
        expect(body["reason"] == "AlreadyExists", body)
    return out.metadata.resource_version


@step("patch: strategic merge, JSON merge and JSON patch")
def _():
    core.patch_namespaced_config_map("py-config", NS, {"data": {"size": "L"}})
    core.patch_namespaced_config_map(
        "py-config", NS, {"data": {"shape": "round"}}, _content_type="application/merge-patch+json"
    )
    out = core.patch_namespaced_config_map(
        "py-config", NS, [{"op": "replace", "path": "/data/color", "value": "red"}]
    )
    expect(out.data == {"color": "red", "size": "L", "shape": "round"}, out.data)
    return out.data


@step("replace (PUT), and 409 Conflict on a stale resourceVersion")
def _():
    cm = core.read_namespaced_config_map("py-config", NS)
    stale = cm.metadata.resource_version
    cm.data["color"] = "green"
    core.replace_namespaced_config_map("py-config", NS, cm)
    cm.metadata.resource_version = stale
    try:
        core.replace_namespaced_config_map("py-config", NS, cm)
        raise AssertionError("stale replace succeeded")
    except ApiException as e:
        expect(e.status == 409 and json.loads(e.body)["reason"] == "Conflict", e.body)
    return "409 Conflict"


@step("watch with resume from a resourceVersion")
def _():
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(
        NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-watched"), data={"n": "1"})
    )
    core.patch_namespaced_config_map("py-watched", NS, {"data": {"n": "2"}})
    core.delete_namespaced_config_map("py-watched", NS)
    seen = []
    w = watch.Watch()
    for ev in w.stream(
        core.list_namespaced_config_map,
        NS,
        resource_version=start,
        field_selector="metadata.name=py-watched",
        timeout_seconds=10,
    ):
        seen.append((ev["type"], ev["object"].metadata.name, ev["object"].data.get("n")))
        if len(seen) == 3:
            w.stop()
    expect(
        seen == [("ADDED", "py-watched", "1"), ("MODIFIED", "py-watched", "2"), ("DELETED", "py-watched", "2")],
        seen,
    )
    return " ".join(t for t, _, _ in seen)


@step("watch events arrive live (ADDED then DELETED)")
def _():
    rv = core.list_namespaced_config_map(NS).metadata.resource_version

    def create_later():
        time.sleep(1.0)
        core.create_namespaced_config_map(
            NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-live"), data={"x": "y"})
        )

    threading.Thread(target=create_later, daemon=True).start()
    w = watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_config_map, NS, resource_version=rv, timeout_seconds=20):
        if ev["object"].metadata.name != "py-live":
            continue
        seen.append(ev["type"])
        if ev["type"] == "ADDED":
            core.delete_namespaced_config_map("py-live", NS)
        if ev["type"] == "DELETED":
            w.stop()
    expect(seen == ["ADDED", "DELETED"], seen)
    return " ".join(seen)


@step("create a Deployment (typed), read its scale, scale it, delete it with propagationPolicy")
def _():
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="py-deploy", labels={"app": "py-deploy"}),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels={"app": "py-deploy"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "py-deploy"}),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="main", image="busybox:1.36", command=["sleep", "3600"])]
                ),
            ),
        ),
    )
    out = apps.create_namespaced_deployment(NS, dep)
    expect(out.metadata.generation == 1, out.metadata.generation)
    expect(out.status is not None, "a new Deployment has status {} as in Kubernetes")
    until(
        "py-deploy available",
        lambda: ((apps.read_namespaced_deployment_status("py-deploy", NS).status or client.V1DeploymentStatus()).available_replicas or 0) >= 1,
    )
    scale = apps.read_namespaced_deployment_scale("py-deploy", NS)
    expect(scale.spec.replicas == 1 and scale.status.selector == "app=py-deploy", scale)
    apps.patch_namespaced_deployment_scale("py-deploy", NS, {"spec": {"replicas": 2}})
    until(
        "2 ready replicas",
        lambda: ((apps.read_namespaced_deployment("py-deploy", NS).status or client.V1DeploymentStatus()).ready_replicas or 0) == 2,
    )
    pods = core.list_namespaced_pod(NS, label_selector="app=py-deploy").items
    expect(len(pods) == 2, [p.metadata.name for p in pods])
    apps.delete_namespaced_deployment(
        "py-deploy", NS, body=client.V1DeleteOptions(propagation_policy="Foreground")
    )
    until(
        "the deployment and its pods gone",
        lambda: not apps.list_namespaced_deployment(NS, field_selector="metadata.name=py-deploy").items
        and not core.list_namespaced_pod(NS, label_selector="app=py-deploy").items,
    )
    return "scaled 1 → 2, deleted in the foreground"


def _try_log(name):
    try:
        t = core.read_namespaced_pod_log(name, NS, tail_lines=5)
        return t if "hello from python" in t else None
    except ApiException:
        return None


@step("read pod logs")
def _():
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="py-logger"),
        spec=client.V1PodSpec(
            restart_policy="Never",
            containers=[client.V1Container(name="log", image="busybox", command=["sh", "-c", "echo hello from python; sleep 3600"])],
        ),
    )
    core.create_namespaced_pod(NS, pod)
    text = until(
        "the log line",
        lambda: _try_log("py-logger"),
    )
    core.delete_namespaced_pod("py-logger", NS, grace_period_seconds=0)
    return text.strip()


def _try_exec(name):
    try:
        out = stream(core.connect_get_namespaced_pod_exec, name, NS, command=["echo", "ready"],
                     stdout=True, stderr=True, stdin=False, tty=False)
        return out if "ready" in out else None
    except ApiException:
        return None


@step("exec with stdin; stdout, stderr and the exit code (WebSocket v4.channel.k8s.io)")
def _():
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="py-exec"),
        spec=client.V1PodSpec(
            restart_policy="Never",
            containers=[client.V1Container(name="box", image="busybox", command=["sleep", "3600"])],
        ),
    )
    core.create_namespaced_pod(NS, pod)
    until("the container to take commands", lambda: _try_exec("py-exec"))
    resp = stream(core.connect_get_namespaced_pod_exec, "py-exec", NS,
                  command=["sh", "-c", "read x; echo got $x; echo err >&2; exit 4"],
                  stdout=True, stderr=True, stdin=True, tty=False, _preload_content=False)
    resp.write_stdin("abc\n")
    resp.run_forever(timeout=60)
    out, err, code = resp.read_stdout(), resp.read_stderr(), resp.returncode
    resp.close()
    core.delete_namespaced_pod("py-exec", NS, grace_period_seconds=0)
    expect((out, err, code) == ("got abc\n", "err\n", 4), f"got {(out, err, code)!r}")
    return f"stdout {out!r}, stderr {err!r}, exit code {code}"


@step("create a core/v1 Event (MicroTime eventTime) and find it by involvedObject")
def _():
    now = datetime.datetime.now(datetime.timezone.utc)
    ev = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name="py-event-"),
        involved_object=client.V1ObjectReference(kind="ConfigMap", name="py-config", namespace=NS),
        reason="Tested",
        message="from the python client",
        type="Normal",
        event_time=now,
        reporting_component="e2e",
        reporting_instance="e2e-1",
        action="Test",
    )
    out = core.create_namespaced_event(NS, ev)
    found = core.list_namespaced_event(
        NS, field_selector="involvedObject.kind=ConfigMap,involvedObject.name=py-config"
    ).items
    expect(any(e.metadata.name == out.metadata.name for e in found), [e.metadata.name for e in found])
    expect(isinstance(out.event_time, datetime.datetime), out.event_time)
    return out.metadata.name


@step("create a Service (typed), read it and its EndpointSlice, 422 for a taken ClusterIP, delete it")
def _():
    svc = client.V1Service(
        metadata=client.V1ObjectMeta(name="py-svc", labels={"app": "py-svc"}),
        spec=client.V1ServiceSpec(
            selector={"app": "py-svc"}, ports=[client.V1ServicePort(port=80, target_port=8080)]
        ),
    )
    out = core.create_namespaced_service(NS, svc)
    ip = out.spec.cluster_ip
    expect(ip and out.spec.cluster_ips == [ip], out.spec)
    port = out.spec.ports[0]
    expect(out.spec.type == "ClusterIP" and port.protocol == "TCP" and port.target_port == 8080, out.spec)
    expect(core.read_namespaced_service("py-svc", NS).spec.cluster_ip == ip, "read back")
    slices = until(
        "the Service's EndpointSlice",
        lambda: disc.list_namespaced_endpoint_slice(NS, label_selector="kubernetes.io/service-name=py-svc").items,
    )
    expect(slices[0].address_type == "IPv4" and slices[0].endpoints == [], slices[0])
    taken = client.V1Service(
        metadata=client.V1ObjectMeta(name="py-svc-2"),
        spec=client.V1ServiceSpec(cluster_ip=ip, ports=[client.V1ServicePort(port=80)]),
    )
    try:
        core.create_namespaced_service(NS, taken)
        raise AssertionError("a taken ClusterIP was accepted")
    except ApiException as e:
        expect(e.status == 422, e.status)
        body = json.loads(e.body)
        expect("provided IP is already allocated" in body["message"], body["message"])
        expect(body["details"]["causes"][0]["field"] == "spec.clusterIPs", body)
    gone = core.delete_namespaced_service("py-svc", NS)
    expect(gone.metadata.name == "py-svc", gone)
    until(
        "py-svc gone",
        lambda: not core.list_namespaced_service(NS, field_selector="metadata.name=py-svc").items,
    )
    return f"ClusterIP {ip}"


@step("dynamic client (legacy discovery): list Deployments")
def _():
    dyn = dynamic.DynamicClient(client.ApiClient())
    res = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    lst = res.get(namespace=NS)
    expect(lst.kind == "DeploymentList", lst.kind)
    return f"{len(lst.items)} deployments"


@step("delete (with preconditions) and 404 NotFound afterwards")
def _():
    cm = core.read_namespaced_config_map("py-config", NS)
    core.delete_namespaced_config_map(
        "py-config",
        NS,
        body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=cm.metadata.uid)),
    )
    try:
        core.read_namespaced_config_map("py-config", NS)
        raise AssertionError("still there")
    except ApiException as e:
        expect(e.status == 404, e.status)
        expect(json.loads(e.body)["message"] == 'configmaps "py-config" not found', e.body)
    return "404 NotFound"


if __name__ == "__main__":
    sys.exit(0 if all(r["ok"] for r in RESULTS) else 1)
