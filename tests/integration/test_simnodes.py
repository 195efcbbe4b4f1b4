"""Simulated nodes (``testbed.simnodes``) against the real control plane.

Cases:
- nodes register Ready with the right labels, taints, nodeInfo and a Lease that is renewed;
- a Job pinned with nodeName completes through the real job controller; the container sees the
  documented environment (fieldRefs, $(VAR) expansion, host root override, API host/port, python ->
  sys.executable) and the pod status is what a kubelet writes (terminated, exit code 0, Completed);
- a failing command makes the Job retry up to backoffLimit and fail (BackoffLimitExceeded);
- activeDeadlineSeconds kills a hanging pod: Failed, reason DeadlineExceeded, process gone;
- deleting a Job with propagationPolicy=Background deletes its running pod and the process dies;
- faults: crash (exit 1 without running, then recovery at runtime lets the Job's retry succeed),
  hang (killed at the deadline), vanish (the Node and Lease disappear when the pod starts; setting
  none registers it again), notready (Ready=False, Lease frozen, new pods wait until recovery),
  lost (Lease frozen and no pod is started or updated);
- the pod-bound token, used from inside the pod with the written ca.crt, authenticates as the
  service account with extra ``authentication.kubernetes.io/node-name`` = the node (and pod name);
  no token directory when automountServiceAccountToken is false;
- an API server that is away: a Pod that ends and one that starts while it is stopped both reach
  Succeeded once it is back (statuses are kept and written again, the token request is retried);
- the in-process runner gets argv, env and a cancel event that is set at the deadline; the default
  runner unwraps ``python -m plumbob agent ...``;
- stop() kills running processes and deletes the Nodes; a SIGKILLed owner process leaves no agent
  process behind (PR_SET_PDEATHSIG);
- pure helpers: $(VAR) expansion and fieldRef resolution.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.controlplane import ControlPlane
from testbed.simnodes import (
    Fault,
    SimulatedCluster,
    SimulatedNode,
    default_inprocess_runner,
    expand_vars,
    field_ref,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
Json = dict[str, Any]
MakeCluster = Callable[..., SimulatedCluster]


# ---- helpers ------------------------------------------------------------------------------------
def wait_for(check: Callable[[], Any], what: str, timeout: float = 30, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def get(cp: ControlPlane, path: str) -> Json | None:
    try:
        result: Json = cp.request("GET", path)
        return result
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def wait_default_sa(cp: ControlPlane, ns: str) -> None:
    wait_for(lambda: get(cp, f"/api/v1/namespaces/{ns}/serviceaccounts/default"), "the default SA")


def pod_spec(node: str, command: list[str], **extra: Any) -> Json:
    container: Json = {"name": "agent", "image": "plumbob:test", "command": command}
    container.update(extra.pop("container", {}))
    return {
        "nodeName": node,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 5,
        "containers": [container],
        **extra,
    }


def create_pod(cp: ControlPlane, ns: str, name: str, spec: Json) -> Json:
    wait_default_sa(cp, ns)
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": spec}
    result: Json = cp.request("POST", f"/api/v1/namespaces/{ns}/pods", body)
    return result


def create_job(cp: ControlPlane, ns: str, name: str, spec: Json, backoff_limit: int = 0) -> None:
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"backoffLimit": backoff_limit, "template": {"spec": spec}},
    }
    cp.request("POST", f"/apis/batch/v1/namespaces/{ns}/jobs", body)


def job_conditions(cp: ControlPlane, ns: str, name: str) -> dict[str, Json]:
    job = get(cp, f"/apis/batch/v1/namespaces/{ns}/jobs/{name}") or {}
    return {c["type"]: c for c in job.get("status", {}).get("conditions") or [] if c["status"] == "True"}


def job_pods(cp: ControlPlane, ns: str, name: str) -> list[Json]:
    pods: Json = cp.request("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector=job-name%3D{name}")
    return list(pods["items"])


def pod(cp: ControlPlane, ns: str, name: str) -> Json | None:
    return get(cp, f"/api/v1/namespaces/{ns}/pods/{name}")


def phase(cp: ControlPlane, ns: str, name: str) -> str | None:
    p = pod(cp, ns, name)
    return p.get("status", {}).get("phase") if p else None


def terminated(p: Json) -> Json:
    state: Json = p["status"]["containerStatuses"][0]["state"]
    return dict(state["terminated"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def node_ready(cp: ControlPlane, name: str) -> str | None:
    node = get(cp, f"/api/v1/nodes/{name}")
    if node is None:
        return None
    return str(next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"))


def lease(cp: ControlPlane, name: str) -> Json | None:
    return get(cp, f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}")


SLEEP = ["python", "-c", "import time; time.sleep(600)"]


@pytest.fixture
def make_cluster(control_plane: ControlPlane) -> Iterator[MakeCluster]:
    clusters: list[SimulatedCluster] = []

    def make(*nodes: SimulatedNode, **kwargs: Any) -> SimulatedCluster:
        kwargs.setdefault("lease_interval", 0.5)
        kwargs.setdefault("max_grace_seconds", 2)
        cluster = SimulatedCluster(control_plane.kubeconfig, list(nodes), **kwargs)
        clusters.append(cluster)
        return cluster.start()

    yield make
    for cluster in clusters:
        cluster.stop()


# ---- registration -------------------------------------------------------------------------------
def test_nodes_register_ready_with_labels_taints_and_lease(
    control_plane: ControlPlane, make_cluster: MakeCluster
) -> None:
    cp_name, worker = unique("cp"), unique("worker")
    make_cluster(
        SimulatedNode(cp_name, role="control-plane"),
        SimulatedNode(
            worker, labels={"zone": "a"}, taints=[{"key": "dedicated", "value": "x", "effect": "NoExecute"}]
        ),
    )
    cpn = get(control_plane, f"/api/v1/nodes/{cp_name}")
    wn = get(control_plane, f"/api/v1/nodes/{worker}")
    assert cpn is not None and wn is not None
    assert cpn["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == ""
    for node, name in ((cpn, cp_name), (wn, worker)):
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == name
        assert labels["kubernetes.io/os"] == "linux"
        assert labels["kubernetes.io/arch"] == "amd64"
        status = node["status"]
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True" and ready["lastHeartbeatTime"]
        assert status["nodeInfo"]["kubeletVersion"] == "v1.36.3"
        assert status["allocatable"]["pods"] == "110"
        assert {"type": "Hostname", "address": name} in status["addresses"]
    assert "node-role.kubernetes.io/control-plane" not in wn["metadata"]["labels"]
    assert wn["metadata"]["labels"]["zone"] == "a"
    assert cpn["spec"]["taints"] == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    assert wn["spec"]["taints"] == [{"key": "dedicated", "value": "x", "effect": "NoExecute"}]

    first = lease(control_plane, worker)
    assert first is not None
    assert first["spec"]["holderIdentity"] == worker
    assert first["metadata"]["ownerReferences"][0]["uid"] == wn["metadata"]["uid"]
    wait_for(
        lambda: (
            (lease(control_plane, worker) or {}).get("spec", {}).get("renewTime")
            != first["spec"]["renewTime"]
        ),
        "the lease to be renewed",
        timeout=10,
    )


# ---- running pods -------------------------------------------------------------------------------
def test_job_completes_with_the_pod_environment(
    control_plane: ControlPlane, make_cluster: MakeCluster, namespace: str, tmp_path: Path
) -> None:
    node = unique("n")
    cluster = make_cluster(SimulatedNode(node, host_root=tmp_path))
    script = textwrap.dedent("""
        import json, os, pathlib, sys
        sa = pathlib.Path(os.environ["PLUMBOB_SERVICEACCOUNT_DIR"])
        print("RESULT " + json.dumps({
            "env": dict(os.environ), "argv": sys.argv[1:], "exe": sys.executable,
            "sa": sorted(p.name for p in sa.iterdir()),
            "ns": (sa / "namespace").read_text(),
        }))
    """)
    env = [
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "GREETING", "value": "hello-$(NODE)"},
        {"name": "PLUMBOB_HOST_ROOT", "value": "/host"},
    ]
    create_job(
        control_plane,
        namespace,
        "ok",
        pod_spec(node, ["python", "-c", script], container={"args": ["$(GREETING)", "$$(NODE)"], "env": env}),
    )
    wait_for(lambda: "Complete" in job_conditions(control_plane, namespace, "ok"), "Job Complete")

    [p] = job_pods(control_plane, namespace, "ok")
    assert p["status"]["phase"] == "Succeeded"
    term = terminated(p)
    assert term["exitCode"] == 0 and term["reason"] == "Completed"
    assert term["startedAt"] and term["finishedAt"]
    assert p["status"]["startTime"] and p["status"]["podIP"]
    name = p["metadata"]["name"]
    line = next(x for x in cluster.pod_log(namespace, name).splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    seen = result["env"]
    assert seen["NODE"] == node and seen["POD"] == name and seen["NS"] == namespace
    assert seen["UID"] == p["metadata"]["uid"] and seen["SA"] == "default"
    assert seen["PLUMBOB_HOST_ROOT"] == str(tmp_path)
    assert seen["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert seen["KUBERNETES_SERVICE_PORT"] == str(control_plane.api_port)
    assert {"PATH", "HOME", "LANG"} <= set(seen)
    assert "KUBECONFIG" not in seen
    assert result["argv"] == [f"hello-{node}", "$(NODE)"]
    assert result["exe"] == sys.executable
    assert result["sa"] == ["ca.crt", "namespace", "token"]
    assert result["ns"] == namespace
    # the credentials are removed once the pod has finished
    assert cluster.serviceaccount_dir(namespace, name) is None


def test_failing_job_retries_up_to_backoff_limit(
    control_plane: ControlPlane, make_cluster: MakeCluster, namespace: str
) -> None:
    node = unique("n")
    make_cluster(SimulatedNode(node))
    create_job(
        control_plane,
        namespace,
        "bad",
        pod_spec(node, ["python", "-c", "raise SystemExit(3)"]),
        backoff_limit=1,
    )
    failed = wait_for(
        lambda: job_conditions(control_plane, namespace, "bad").get("Failed"), "Job Failed", timeout=60
    )
    assert failed["reason"] == "BackoffLimitExceeded"
    pods = job_pods(control_plane, namespace, "bad")
    assert len(pods) == 2
    for p in pods:
        assert p["status"]["phase"] == "Failed"
        assert terminated(p)["exitCode"] == 3 and terminated(p)["reason"] == "Error"


def test_active_deadline_kills_a_hanging_pod(
    control_plane: ControlPlane, make_cluster: MakeCluster, namespace: str
) -> None:
    node = unique("n")
    cluster = make_cluster(SimulatedNode(node))
    create_pod(control_plane, namespace, "slow", pod_spec(node, SLEEP, activeDeadlineSeconds=2))
    wait_for(lambda: phase(control_plane, namespace, "slow") == "Running", "pod Running")
    pid = cluster.process_id(namespace, "slow")
    assert pid is not None and alive(pid)
    wait_for(lambda: phase(control_plane, namespace, "slow") == "Failed", "pod Failed", timeout=20)
    p = pod(control_plane, namespace, "slow")
    assert p is not None
    assert p["status"]["reason"] == "DeadlineExceeded"
    assert terminated(p)["exitCode"] != 0
    assert not alive(pid)


def test_background_job_deletion_kills_the_running_pod(
    control_plane: ControlPlane, make_cluster: MakeCluster, namespace: str
) -> None:
    node = unique("n")
    cluster = make_cluster(SimulatedNode(node))
    create_job(control_plane, namespace, "long", pod_spec(node, SLEEP))
    running = wait_for(
        lambda: [
            p for p in job_pods(control_plane, namespace, "long") if p["status"].get("phase") == "Running"
        ],
        "pod Running",
    )
    name = running[0]["metadata"]["name"]
    pid = cluster.process_id(namespace, name)
    assert pid is not None and alive(pid)
    control_plane.request(
        "DELETE",
        f"/apis/batch/v1/namespaces/{namespace}/jobs/long",
        {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
    )
    wait_for(lambda: pod(control_plane, namespace, name) is None, "the pod to be deleted", timeout=60)
    assert not alive(pid)


# ---- faults -------------------------------------------------------------------------------------
def test_crash_fault_then_recovery_at_runtime(
    control_plane: ControlPlane, make_cluster: MakeCluster, namespace: str
) -> None:
    node = unique("n")
    cluster = make_cluster(SimulatedNode(node, fault="crash"))
    create_job(
        control_plane, namespace, "flaky", pod_spec(node, ["python", "-c", "print('ran')"]), backoff_limit=2
    )
    failed = wait_for(
        lambda: [
            p for p in job_pods(control_plane, namespace, "flaky") if p["status"].get("phase") == "Failed"
        ],
        "a crashed pod",
    )
    assert terminated(failed[0])["exitCode"] == 1
    log = cluster.pod_log(namespace, failed[0]["metadata"]["name"])
    assert "simulated crash" in log and "ran" not in log.replace("simulated crash", "")
    assert cluster.process_id(namespace, failed[0]["metadata"]["name"]) is None
    cluster.set_fault(node, "none")
    assert cluster.node(node).fault is Fault.NONE
    wait_for(lambda: "Complete" in job_conditions(control_plane, namespace, "flaky"), "Job Complete", 60)


def test_hang_fault_is_killed_at_the_deadline(
    control_plane: ControlPlane, make_cluster: MakeCluster, namespace: str
) -> None:
    node = unique("n")
    cluster = make_cluster(SimulatedNode(node))
    cluster.set_fault(node, Fault.HANG)
    create_pod(
        control_plane,
        namespace,
        "h",
        pod_spec(node, ["python", "-c", "print('done')"], activeDeadlineSeconds=2),
    )
    wait_for(lambda: phase(control_plane, namespace, "h") == "Running", "pod Running")
    pid = cluster.process_id(namespace, "h")
    assert pid is not None and alive(pid)
    wait_for(lambda: phase(control_plane, namespace, "h") == "Failed", "pod Failed", timeout=20)
    p = pod(control_plane, namespace, "h")
    assert p is not None and p["status"]["reason"] == "DeadlineExceeded"
    assert "done" not in cluster.pod_log(namespace, "h")
    assert not alive(pid)


def test_vanish_fault_deletes_the_node_when_a_pod_starts(
    control_plane: ControlPlane, make_cluster: MakeCluster, namespace: str
) -> None:
    node = unique("n")
    cluster = make_cluster(SimulatedNode(node, fault=Fault.VANISH))
    assert get(control_plane, f"/api/v1/nodes/{node}") is not None
    create_pod(control_plane, namespace, "v", pod_spec(node, ["python", "-c", "print('x')"]))
    wait_for(lambda: get(control_plane, f"/api/v1/nodes/{node}") is None, "the Node to vanish")
    assert lease(control_plane, node) is None
    assert phase(control_plane, namespace, "v") == "Running"  # nobody is left to finish it
    # the node comes back when the fault is cleared
    cluster.set_fault(node, Fault.NONE)
    assert node_ready(control_plane, node) == "True"
    control_plane.request(
        "DELETE",
        f"/api/v1/namespaces/{namespace}/pods/v",
        {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0},
    )


def test_notready_fault_freezes_the_lease_and_holds_new_pods(
    control_plane: ControlPlane, make_cluster: MakeCluster, namespace: str
) -> None:
    node = unique("n")
    cluster = make_cluster(SimulatedNode(node))
    cluster.set_fault(node, "notready")
    assert node_ready(control_plane, node) == "False"
    notready = get(control_plane, f"/api/v1/nodes/{node}") or {}
    assert {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"} in notready["spec"]["taints"]
    frozen = (lease(control_plane, node) or {})["spec"]["renewTime"]
    create_pod(control_plane, namespace, "w", pod_spec(node, ["python", "-c", "print('x')"]))
    time.sleep(4 * cluster.lease_interval)  # several renewal periods: nothing may change
    assert (lease(control_plane, node) or {})["spec"]["renewTime"] == frozen
    p = pod(control_plane, namespace, "w")
    assert p is not None and p["status"]["phase"] == "Pending" and "containerStatuses" not in p["status"]
    cluster.set_fault(node, "none")
    assert node_ready(control_plane, node) == "True"
    wait_for(lambda: phase(control_plane, namespace, "w") == "Succeeded", "the held pod to run")
    assert "taints" not in (get(control_plane, f"/api/v1/nodes/{node}") or {})["spec"]
    assert (lease(control_plane, node) or {})["spec"]["renewTime"] != frozen


def test_lost_fault_stops_all_updates(
    control_plane: ControlPlane, make_cluster: MakeCluster, namespace: str
) -> None:
    node = unique("n")
    cluster = make_cluster(SimulatedNode(node), lease_duration_seconds=2)
    create_pod(control_plane, namespace, "r", pod_spec(node, SLEEP))
    wait_for(lambda: phase(control_plane, namespace, "r") == "Running", "pod Running")
    cluster.set_fault(node, Fault.LOST)
    frozen = (lease(control_plane, node) or {})["spec"]["renewTime"]
    create_pod(control_plane, namespace, "l", pod_spec(node, ["python", "-c", "print('x')"]))
    control_plane.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/r")  # graceful: needs the kubelet
    time.sleep(4 * cluster.lease_interval)
    assert (lease(control_plane, node) or {})["spec"]["renewTime"] == frozen
    p = pod(control_plane, namespace, "l")
    assert p is not None and "containerStatuses" not in p["status"]
    r = pod(control_plane, namespace, "r")
    assert r is not None and r["metadata"].get("deletionTimestamp")  # stuck Terminating
    pid = cluster.process_id(namespace, "r")
    assert pid is not None and alive(pid)
    # in the node-lifecycle controller's place: once the Lease expired, Ready=Unknown and unreachable
    wait_for(lambda: node_ready(control_plane, node) == "Unknown", "the node to turn Unknown", timeout=10)
    taints = (get(control_plane, f"/api/v1/nodes/{node}") or {})["spec"]["taints"]
    assert {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"} in taints
    cluster.set_fault(node, Fault.NONE)
    assert node_ready(control_plane, node) == "True"
    wait_for(lambda: pod(control_plane, namespace, "r") is None, "the terminating pod to be finalised")
    assert not alive(pid)
    wait_for(lambda: phase(control_plane, namespace, "l") == "Succeeded", "the held pod to run")


# ---- identity -----------------------------------------------------------------------------------
REVIEW_SCRIPT = textwrap.dedent("""
    import json, os, ssl, urllib.request
    d = os.environ["PLUMBOB_SERVICEACCOUNT_DIR"]
    token = open(os.path.join(d, "token")).read()
    ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
    url = "https://%s:%s/apis/authentication.k8s.io/v1/selfsubjectreviews" % (
        os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
    body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": "Bearer " + token, "Content-Type": "application/json"})
    print("REVIEW " + urllib.request.urlopen(req, context=ctx).read().decode())
""")


def test_pod_bound_token_carries_the_node_name(
    control_plane: ControlPlane, make_cluster: MakeCluster, namespace: str
) -> None:
    node = unique("n")
    cluster = make_cluster(SimulatedNode(node))
    create_pod(control_plane, namespace, "who", pod_spec(node, ["python", "-c", REVIEW_SCRIPT]))
    wait_for(lambda: phase(control_plane, namespace, "who") in ("Succeeded", "Failed"), "pod finished")
    log = cluster.pod_log(namespace, "who")
    assert phase(control_plane, namespace, "who") == "Succeeded", log
    line = next(x for x in log.splitlines() if x.startswith("REVIEW "))
    user = json.loads(line.removeprefix("REVIEW "))["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{namespace}:default"
    assert user["extra"]["authentication.kubernetes.io/node-name"] == [node]
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["who"]


def test_no_token_when_automount_is_disabled(
    control_plane: ControlPlane, make_cluster: MakeCluster, namespace: str
) -> None:
    node = unique("n")
    cluster = make_cluster(SimulatedNode(node))
    script = "import os; print('SA=' + os.environ.get('PLUMBOB_SERVICEACCOUNT_DIR', 'unset'))"
    create_pod(
        control_plane,
        namespace,
        "anon",
        pod_spec(node, ["python", "-c", script], automountServiceAccountToken=False),
    )
    wait_for(lambda: phase(control_plane, namespace, "anon") == "Succeeded", "pod Succeeded")
    assert "SA=unset" in cluster.pod_log(namespace, "anon")


# ---- an API server that is away ----------------------------------------------------------------
def test_pod_status_written_once_the_api_server_is_back(
    control_plane: ControlPlane, make_cluster: MakeCluster, namespace: str, tmp_path: Path
) -> None:
    """A kubelet never drops what it has to tell the API server. One Pod ends and another starts
    while the API server is stopped; once it is back, both reach Succeeded. (The chaos soak lost
    results this way: a Pod whose first status write met the restarting API server never ran and
    its Job ran into its deadline.)"""
    node = unique("n")
    release = threading.Event()
    ran: list[str] = []

    def runner(argv: list[str], env: dict[str, str], cancel: threading.Event) -> int:
        while argv[-1] == "first" and not (release.is_set() or cancel.is_set()):
            release.wait(0.1)  # holds the only worker until the API server is gone
        ran.append(argv[-1])
        return 0

    cluster = make_cluster(
        SimulatedNode(node, host_root=tmp_path), runner="inprocess", inprocess_runner=runner, max_parallel=1
    )
    for name in ("first", "second"):
        create_pod(control_plane, namespace, name, pod_spec(node, ["python", "-m", "plumbob", "agent", name]))
    wait_for(lambda: phase(control_plane, namespace, "first") == "Running", "the first Pod Running")
    queued = {(namespace, "first"), (namespace, "second")}
    wait_for(lambda: queued <= set(cluster.running_pods()), "the kubelet to know both Pods")
    try:
        control_plane.stop_apiserver()
        release.set()  # the first Pod ends, and the second starts, with no API server to tell
        for name in ("first", "second"):
            wait_for(
                lambda n=name: "[simulated-kubelet]" in cluster.pod_log(namespace, n),  # type: ignore[misc]
                f"the kubelet to meet the missing API server for {name}",
                timeout=60,
            )
    finally:
        control_plane.start_apiserver()
    for name in ("first", "second"):
        wait_for(
            lambda n=name: phase(control_plane, namespace, n) == "Succeeded",  # type: ignore[misc]
            f"{name} Succeeded",
            timeout=120,
        )
    assert ran == ["first", "second"]
    assert "not written yet" in cluster.pod_log(namespace, "second")


# ---- in-process runner --------------------------------------------------------------------------
def test_inprocess_runner_gets_argv_env_and_cancel(
    control_plane: ControlPlane, make_cluster: MakeCluster, namespace: str, tmp_path: Path
) -> None:
    node = unique("n")
    calls: list[tuple[list[str], dict[str, str]]] = []
    cancelled = threading.Event()

    def runner(argv: list[str], env: dict[str, str], cancel: threading.Event) -> int:
        calls.append((argv, env))
        if "wait" in argv:
            if cancel.wait(30):
                cancelled.set()
            return 9
        return 0

    make_cluster(SimulatedNode(node, host_root=tmp_path), runner="inprocess", inprocess_runner=runner)
    create_job(control_plane, namespace, "inproc", pod_spec(node, ["python", "-m", "plumbob", "agent", "go"]))
    wait_for(lambda: "Complete" in job_conditions(control_plane, namespace, "inproc"), "Job Complete")
    argv, env = calls[0]
    assert argv == [sys.executable, "-m", "plumbob", "agent", "go"]
    assert env["PLUMBOB_HOST_ROOT"] == str(tmp_path)
    assert Path(env["PLUMBOB_SERVICEACCOUNT_DIR"], "token").name == "token"

    create_pod(
        control_plane,
        namespace,
        "stuck",
        pod_spec(node, ["python", "-m", "plumbob", "agent", "wait"], activeDeadlineSeconds=1),
    )
    wait_for(lambda: phase(control_plane, namespace, "stuck") == "Failed", "pod Failed", timeout=20)
    p = pod(control_plane, namespace, "stuck")
    assert p is not None and p["status"]["reason"] == "DeadlineExceeded"
    assert cancelled.is_set()


def test_default_inprocess_runner_unwraps_the_agent_command(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    class FakeModule:
        @staticmethod
        def run_agent(args: list[str], env: dict[str, str], cancel: threading.Event) -> int:
            seen.append((args, env))
            return 4

    monkeypatch.setitem(sys.modules, "plumbob.agent.running", FakeModule)
    cancel = threading.Event()
    assert (
        default_inprocess_runner(["/py", "-m", "plumbob", "agent", "--profile", "p"], {"A": "1"}, cancel) == 4
    )
    assert seen == [(["--profile", "p"], {"A": "1"})]
    with pytest.raises(ValueError, match="agent"):
        default_inprocess_runner(["/py", "-c", "pass"], {}, cancel)


# ---- cleanup ------------------------------------------------------------------------------------
def test_stop_kills_processes_and_deletes_nodes(control_plane: ControlPlane, namespace: str) -> None:
    node = unique("n")
    cluster = SimulatedCluster(control_plane.kubeconfig, [SimulatedNode(node)], lease_interval=0.5).start()
    try:
        create_pod(control_plane, namespace, "s", pod_spec(node, SLEEP))
        wait_for(lambda: phase(control_plane, namespace, "s") == "Running", "pod Running")
        pid = cluster.process_id(namespace, "s")
        assert pid is not None and alive(pid)
    finally:
        cluster.stop()
    assert not alive(pid)
    assert get(control_plane, f"/api/v1/nodes/{node}") is None
    assert lease(control_plane, node) is None
    control_plane.request(
        "DELETE",
        f"/api/v1/namespaces/{namespace}/pods/s",
        {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0},
    )


OWNER_SCRIPT = textwrap.dedent("""
    import sys, time
    from testbed.simnodes import SimulatedCluster, SimulatedNode
    kubeconfig, node, ns, workdir = sys.argv[1:5]
    nodes = [SimulatedNode(node)]
    cluster = SimulatedCluster(kubeconfig, nodes, workdir=workdir, delete_nodes_on_stop=False).start()
    while cluster.process_id(ns, "orphan") is None:
        time.sleep(0.1)
    print(cluster.process_id(ns, "orphan"), flush=True)
    time.sleep(600)
""")


def test_agents_die_with_their_owner_process(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    node = unique("n")
    env = {**os.environ, "PYTHONPATH": str(REPO / "tools")}
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER_SCRIPT, str(control_plane.kubeconfig), node, namespace, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_for(lambda: get(control_plane, f"/api/v1/nodes/{node}"), "the node to register")
        create_pod(control_plane, namespace, "orphan", pod_spec(node, SLEEP))
        assert owner.stdout is not None
        pid = int(owner.stdout.readline())
        assert alive(pid)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        wait_for(lambda: not alive(pid), "the agent process to die with its owner", timeout=10)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
        control_plane.request("DELETE", f"/api/v1/nodes/{node}")
        control_plane.request(
            "DELETE",
            f"/api/v1/namespaces/{namespace}/pods/orphan",
            {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0},
        )


# ---- pure helpers -------------------------------------------------------------------------------
def test_var_expansion_and_field_refs() -> None:
    env = {"A": "1", "B_C": "two"}
    assert expand_vars("x$(A)-$(B_C)-$(MISSING)-$$(A)-$$", env) == "x1-two-$(MISSING)-$(A)-$"
    p = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"k": "v"}},
        "spec": {"nodeName": "n", "serviceAccountName": "sa"},
        "status": {},
    }
    assert [
        field_ref(p, f)
        for f in (
            "metadata.name",
            "metadata.namespace",
            "metadata.uid",
            "spec.nodeName",
            "spec.serviceAccountName",
            "metadata.labels['k']",
        )
    ] == ["p", "ns", "u", "n", "sa", "v"]
    with pytest.raises(ValueError, match="unsupported"):
        field_ref(p, "spec.containers")
