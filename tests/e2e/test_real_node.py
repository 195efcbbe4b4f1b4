"""Plumbob installed with Helm and run on a real node: containerd + runc + kubelet + kube-proxy, scheduled
by a real kube-scheduler (``tools/testbed/realnode.py``), next to its own testbed control plane.

Cases:
- ``helm install`` of ``charts/plumbob`` with its defaults: the operator Deployment's Pod is placed
  on the real node by the scheduler, runs the image from ``make image`` and becomes Running and
  Ready; it runs as uid 65532 (the CRI's report in the Pod status, and ``kubectl exec``) and cannot
  write to its root file system;
- a profile selecting the real node, a rescan: the audit Job the operator created runs unchanged
  on the real kubelet; the node's report holds results read from the node's own files and
  ``/proc``: anonymous kubelet requests refused and the read-only port off (as the testbed
  configured the kubelet), its ``config.yaml`` mode 644 (kubeadm's, a CIS failure), the
  ``--hostname-override`` flag on the kubelet's command line;
- the Job's hostPath mounts created no directory on the node (the etcd data directory, the
  kubelet's systemd drop-in folders), so the etcd data directory rule does not fail there;
- a Pod with exactly that Job's Pod spec (only its command changed) has DAC_READ_SEARCH as its
  only capability, reads a root-only host file and another user's mode-600 file, but can write
  neither under its hostPath mounts (nor in mounts below them: the kubelet's own bind mount of
  /var/lib/kubelet, another Pod's volume) nor to its root file system, and the host file it
  tried to create does not exist;
- ``helm uninstall``: only the CRDs (and the custom resources in them) remain, listed;
- a real node whose parent process is killed with SIGKILL leaves no process, cgroup folder,
  mount, network namespace or work folder behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_support import apply, get, items, wait_for

from testbed.binaries import ensure_helm
from testbed.controlplane import ControlPlane
from testbed.realnode import CONTROLLERS, ClusterPlan, RealNode

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
NODE, KILLED_NODE = "real-1", "real-2"
NAMESPACE = "plumbob-system"
LABEL = "plumbob.test/real-node"


@dataclass
class RealCluster:
    plan: ClusterPlan
    cp: ControlPlane
    node: RealNode

    def helm(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ensure_helm()), f"--kubeconfig={self.cp.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="module")
def real() -> Iterator[RealCluster]:
    plan = ClusterPlan.create([NODE, KILLED_NODE])
    cp = ControlPlane.start(extra_apiserver_args=plan.apiserver_args(), extra_controllers=CONTROLLERS)
    try:
        node = RealNode.start(plan, cp, NODE)
    except BaseException:
        cp.stop()
        plan.remove()
        raise
    yield RealCluster(plan, cp, node)
    node.stop()
    cp.stop()
    plan.remove()


def _pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _operator_pod(cp: ControlPlane) -> dict[str, Any] | None:
    pods = items(cp, "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=operator")
    return next((p for p in pods if _pod_ready(p)), None)


def _finished_pod(cp: ControlPlane, name: str, namespace: str) -> dict[str, Any] | None:
    pod = get(cp, "pod", name, namespace)
    phase = ((pod or {}).get("status") or {}).get("phase")
    return pod if phase in ("Succeeded", "Failed") else None


WRITE_PROBE = r"""
import json, os
out = {}
for path in ("/host/etc/kubernetes/plumbob-write-probe", "/host/var/lib/kubelet/plumbob-write-probe",
             "/host/proc/sys/kernel/hostname", "/plumbob-write-probe"):
    try:
        with open(path, "a") as f:
            f.write("x")
        out[path] = "written"
    except OSError as exc:
        out[path] = type(exc).__name__ + ": " + (exc.strerror or "")
# a mount below a mount: another Pod's volume (a tmpfs the kubelet mounted under its root folder)
volumes = [line.split()[4] for line in open("/proc/self/mountinfo")
           if line.split()[4].startswith("/host/var/lib/kubelet/pods/")]
out["pod volumes seen"] = len(volumes)
for path in volumes[:1]:
    try:
        open(path + "/plumbob-write-probe", "a").close()
        out["pod volume"] = "written"
    except OSError as exc:
        out["pod volume"] = type(exc).__name__ + ": " + (exc.strerror or "")
with open("/host/etc/kubernetes/kubelet.conf", "rb") as f:
    out["read kubelet.conf (mode 600)"] = len(f.read())
with open("/host/etc/kubernetes/plumbob-foreign-secret", "rb") as f:  # uid 4242, mode 600
    out["read a file of uid 4242 (mode 600)"] = f.read().decode().strip()
out["CapEff"] = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("CapEff:"))
print(json.dumps(out))
"""


def test_helm_install_scan_and_uninstall_on_the_real_node(real: RealCluster, tmp_path: Path) -> None:
    cp, node = real.cp, real.node
    cp.kubectl("label", "node", NODE, f"{LABEL}=yes")
    installed = real.helm(
        "install", "plumbob", str(REPO / "charts" / "plumbob"), "--namespace", NAMESPACE, "--create-namespace"
    )
    assert installed.returncode == 0, installed.stderr

    # the operator: scheduled onto the real node, Running and Ready, as uid 65532
    try:
        pod = wait_for("the operator Pod to be Ready", lambda: _operator_pod(cp), timeout=240)
    except AssertionError:
        print(cp.kubectl("get", "pods,events", "-n", NAMESPACE, "-o", "wide").stdout)
        for flag in ("--previous", ""):
            logs = cp.kubectl(
                "logs", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=operator", "--tail=80",
                *([flag] if flag else []), check=False,
            )  # fmt: skip
            print(f"operator log {flag or '(current)'}:\n{logs.stdout}{logs.stderr}")
        node.print_logs()
        raise
    assert pod["spec"]["nodeName"] == NODE
    scheduled = [e for e in items(cp, "events", "-n", NAMESPACE) if e["reason"] == "Scheduled"]
    assert any(pod["metadata"]["name"] in e["message"] for e in scheduled), scheduled
    [status] = pod["status"]["containerStatuses"]
    assert status["image"] == "localhost/plumbob:0.1.0" and status["containerID"].startswith("containerd://")
    assert status["user"]["linux"]["uid"] == 65532, status.get("user")
    name = pod["metadata"]["name"]
    exec_probe = (
        "import os, json; r = {'uid': os.getuid()}\n"
        "try:\n open('/probe', 'w')\nexcept OSError as e:\n r['write'] = e.strerror\n"
        "print(json.dumps(r))"
    )
    execed = cp.kubectl("exec", "-n", NAMESPACE, name, "--", "python", "-c", exec_probe)
    assert json.loads(execed.stdout) == {"uid": 65532, "write": "Read-only file system"}, execed.stdout

    # a scan of the real node, by the operator running in its Pod
    profile = "real-node"
    apply(cp, {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceProfile",
        "metadata": {"name": profile},
        "spec": {"benchmark": {"name": "cis-kubernetes", "version": "auto"},
                 "nodeSelector": {"matchLabels": {LABEL: "yes"}}},
    })  # fmt: skip
    cp.kubectl("annotate", "--overwrite", "complianceprofile", profile, "plumbob.dev/rescan=1")
    selector = f"plumbob.dev/profile={profile}"
    job = wait_for(
        "the audit Job",
        lambda: next(iter(items(cp, "jobs", "-n", NAMESPACE, "-l", selector)), None),
        timeout=120,
        interval=0.1,  # caught while it exists: the operator deletes it once the scan completes
    )
    template = job["spec"]["template"]["spec"]
    assert template["nodeName"] == NODE and template["containers"][0]["image"] == "localhost/plumbob:0.1.0"
    audit_pods = wait_for(
        "the audit Pod to run",
        lambda: [p for p in items(cp, "pods", "-n", NAMESPACE, "-l", f"job-name={job['metadata']['name']}")
                 if p["status"].get("phase") in ("Running", "Succeeded")],
        timeout=120, interval=0.2,
    )  # fmt: skip
    assert audit_pods[0]["spec"]["nodeName"] == NODE
    assert audit_pods[0]["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")
    report = wait_for(
        "the real node's report",
        lambda: (r := get(cp, "compliancereport", f"{profile}.{NODE}")) and r["spec"].get("results") and r,
        timeout=180,
    )
    results = {r["id"]: r for r in report["spec"]["results"]}
    print(
        json.dumps({k: results[k] for k in ("4.1.5", "4.1.9", "4.2.1", "4.2.3", "4.2.4", "4.2.7")}, indent=1)
    )

    def evidence(rule: str, key: str) -> str:
        return " | ".join(str(e.get(key)) for e in results[rule]["evidence"])

    # the kubelet's config file, found through its process's --config flag in the node's /proc
    assert results["4.2.1"]["status"] == "pass" and results["4.2.3"]["status"] == "pass"
    assert "/var/lib/kubelet/config.yaml: authentication.anonymous.enabled" in evidence("4.2.1", "location")
    assert "/etc/kubernetes/pki/ca.crt" in evidence("4.2.3", "found")
    assert results["4.1.9"]["status"] == "fail" and evidence("4.1.9", "found") == "0644"  # kubeadm's mode
    assert "/var/lib/kubelet/config.yaml (--config of pid" in evidence("4.1.9", "location")
    assert results["4.1.5"]["status"] == "pass" and evidence("4.1.5", "found") == "0600"  # kubelet.conf
    # unscored rules stay manual, with the automated result as a hint
    assert results["4.2.4"]["status"] == "manual" and "automated hint: pass" in results["4.2.4"]["reason"]
    assert results["4.2.7"]["status"] == "manual" and "automated hint: fail" in results["4.2.7"]["reason"]
    assert evidence("4.2.7", "found") == NODE  # the --hostname-override the testbed gives the kubelet

    # the Job's mounts created nothing on the node (a runtime creates a missing hostPath source)
    for created in (
        "var/lib/etcd",
        "etc/systemd/system/kubelet.service.d",
        "usr/lib/systemd/system/kubelet.service.d",
    ):
        top, _, rest = created.partition("/")
        assert not (node.layout.upper(top) / rest).exists(), f"the audit Job created /{created} on the node"
    assert results["1.1.11"]["status"] != "fail", results["1.1.11"]  # no etcd data directory here

    # the same Pod spec, another command: reads a root-only file, writes nothing on the host
    secret = "/etc/kubernetes/plumbob-foreign-secret"  # another user's file: only DAC_READ_SEARCH reads it
    subprocess.run(
        ["nsenter", "-t", str(node.info()["init"]), "-m", "--", "sh", "-c",
         f"echo not-for-root > {secret} && chown 4242:4242 {secret} && chmod 600 {secret}"],
        check=True,
    )  # fmt: skip
    spec = json.loads(json.dumps(template))
    spec["containers"][0]["command"] = ["python", "-c", WRITE_PROBE]
    spec["containers"][0]["env"] = []
    probe = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "write-probe", "namespace": NAMESPACE},
        "spec": spec,
    }
    apply(cp, probe)
    done = wait_for(
        "the write probe to finish", lambda: _finished_pod(cp, "write-probe", NAMESPACE), timeout=120
    )
    out = json.loads(cp.kubectl("logs", "-n", NAMESPACE, "write-probe").stdout)
    print(out)
    assert done["status"]["phase"] == "Succeeded"
    assert out["read kubelet.conf (mode 600)"] > 0
    assert out["read a file of uid 4242 (mode 600)"] == "not-for-root"
    assert out["CapEff"] == "0000000000000004", out  # DAC_READ_SEARCH and nothing else
    assert out["pod volumes seen"] > 0 and out["pod volume"].startswith("OSError: Read-only file system"), out
    for path in ("/host/etc/kubernetes/plumbob-write-probe", "/host/var/lib/kubelet/plumbob-write-probe",
                 "/host/proc/sys/kernel/hostname", "/plumbob-write-probe"):  # fmt: skip
        assert out[path].startswith("OSError: Read-only file system"), out
    for upper in ("etc/kubernetes", "var/lib/kubelet"):  # where a write would have landed
        top, _, rest = upper.partition("/")
        assert not (node.layout.upper(top) / rest / "plumbob-write-probe").exists()
    cp.kubectl("delete", "pod", "write-probe", "-n", NAMESPACE)

    # uninstall: nothing of the release remains, only the CRDs and what was stored in them
    cp.kubectl("delete", "complianceprofile", profile, "--wait=true")
    uninstalled = real.helm("uninstall", "plumbob", "--namespace", NAMESPACE, "--wait")
    assert uninstalled.returncode == 0, uninstalled.stderr
    kinds = ("deployments,replicasets,pods,services,serviceaccounts,configmaps,secrets,roles,rolebindings,"
             "jobs,leases")  # fmt: skip
    wait_for("the release's Pods to go", lambda: not items(cp, "pods", "-n", NAMESPACE), timeout=120)
    remaining = [
        f"{o['kind']}/{o['metadata']['name']}"
        for o in items(cp, kinds, "-n", NAMESPACE)
        if o["kind"] != "ConfigMap" or o["metadata"]["name"] != "kube-root-ca.crt"  # the namespace's own
        if o["kind"] != "ServiceAccount" or o["metadata"]["name"] != "default"
    ]
    cluster_wide = [
        f"{o['kind']}/{o['metadata']['name']}"
        for o in items(
            cp,
            "clusterroles,clusterrolebindings,validatingadmissionpolicies,"
            "validatingadmissionpolicybindings,customresourcedefinitions",
        )
        if "plumbob" in o["metadata"]["name"]
    ]
    print("left after helm uninstall:", remaining, cluster_wide)
    assert remaining == [], remaining
    assert sorted(cluster_wide) == sorted(
        f"CustomResourceDefinition/{p.stem.split('_', 1)[1]}.plumbob.dev"
        for p in (REPO / "charts" / "plumbob" / "crds").glob("plumbob.dev_*.yaml")
    )


KILLED_PARENT = r"""
import json, sys
from pathlib import Path
from testbed.controlplane import ControlPlane
from testbed.realnode import ClusterPlan, RealNode
args = json.loads(sys.argv[1])
plan = ClusterPlan(Path(args["plan"]), args["nodes"], args["tokens"])
cp = ControlPlane(workdir=Path(args["cp"]), binaries={k: Path(v) for k, v in args["binaries"].items()},
                  api_port=args["api_port"], keep_workdir=True)
node = RealNode.start(plan, cp, args["node"], scheduler=False)
print(json.dumps(node.info()), flush=True)
sys.stdin.read()  # until killed
"""


def _finished_or_running(cp: ControlPlane, name: str) -> str:
    return str(((get(cp, "pod", name, "default") or {}).get("status") or {}).get("phase"))


def _processes_in(netns_inode: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "ns" / "net").stat().st_ino == netns_inode:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_sigkill_of_the_parent_leaves_nothing_behind(real: RealCluster) -> None:
    plan, cp = real.plan, real.cp
    args = {
        "plan": str(plan.workdir), "nodes": plan.nodes, "tokens": plan.tokens, "cp": str(cp.workdir),
        "binaries": {k: str(v) for k, v in cp.binaries.items()}, "api_port": cp.api_port, "node": KILLED_NODE,
    }  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'tools'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    parent = subprocess.Popen(
        [sys.executable, "-c", KILLED_PARENT, json.dumps(args)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True,
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line, f"the parent exited with {parent.wait()} before its node was Ready"
        info = json.loads(line)
        # a container on it, so that there are Pod cgroups, a sandbox, a shim, a Pod network namespace
        sleeper = {
            "name": "s",
            "image": "localhost/plumbob:0.1.0",
            "imagePullPolicy": "Never",
            "command": ["python", "-c", "import time; time.sleep(3600)"],
        }
        spec = {"nodeName": KILLED_NODE, "terminationGracePeriodSeconds": 0, "containers": [sleeper]}
        apply(
            cp,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "sleeper", "namespace": "default"},
                "spec": spec,
            },
        )
        wait_for("the sleeper to run", lambda: _finished_or_running(cp, "sleeper") == "Running", timeout=120)
        assert len(_processes_in(info["netns"])) >= 5  # containerd, kubelet, kube-proxy, shim, pause, ...
        pod_cgroups = [d for d, _, _ in os.walk(info["cgroups"][0]) if "pod" in d]
        assert pod_cgroups, "no Pod cgroup under the node's cgroup root"
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        for pipe in (parent.stdin, parent.stdout):
            if pipe is not None:
                pipe.close()

    def gone() -> dict[str, Any]:
        left: dict[str, Any] = {
            "processes": _processes_in(info["netns"]),
            "cgroups": [c for c in info["cgroups"] if Path(c).exists()],
            "workdir": Path(info["workdir"]).exists(),
            "mounts": [
                m for m in Path("/proc/self/mountinfo").read_text().splitlines() if info["workdir"] in m
            ],
        }
        for pid in (info["supervisor"], info["init"]):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().find(b"testbed.realnode") >= 0:
                    left.setdefault("pids", []).append(pid)
            except OSError:
                pass
        return {k: v for k, v in left.items() if v}

    started = time.monotonic()
    while (left := gone()) and time.monotonic() < started + 120:
        time.sleep(0.2)
    assert not left, f"left 120 s after the parent's SIGKILL: {left}"
    print(f"cleaned up {time.monotonic() - started:.1f}s after the SIGKILL")
    cp.kubectl("delete", "pod", "sleeper", "--force", "--grace-period=0", check=False)
