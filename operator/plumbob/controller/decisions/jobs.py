"""The audit Job for one node: pinned, bounded, owned, and as unprivileged as reading a node allows.

- ``spec.nodeName`` pins the Pod (no scheduler decision; taints are checked by the operator first).
- ``activeDeadlineSeconds`` bounds the audit and ``backoffLimit`` bounds retries. There is no
  ``ttlSecondsAfterFinished``: a failed Job is the record of its node's failure until the scan
  completes, so the operator deletes a scan's Jobs itself once the scan is finished (a TTL shorter
  than the scan made a failed node look Pending again and re-audited it). The owner reference to
  the scan lets the garbage collector remove anything left when the scan goes.
- The Pod reads the host through read-only hostPath mounts under ``/host``: the host's ``/proc``
  (with ``hostPID``) to see component flags, and the directories that hold every file the CIS
  rules inspect. These are directories every Linux node has (``/etc``, ``/var/lib``, ``/usr/lib``,
  ``/lib``), of type ``Directory``: container runtimes create a missing hostPath source directory,
  so mounting the rules' own folders (``/var/lib/etcd``, ``/etc/systemd/system/kubelet.service.d``…)
  created them, as root with mode 755, on every node audited, and an etcd data directory made that
  way failed 1.1.11 and 1.1.12 on a control-plane node whose etcd runs elsewhere (found on the
  testbed's real node). A ``Directory`` mount is checked by the kubelet and never created.
  The mounts are read-only recursively: the testbed's real node showed a plain read-only mount of
  ``/var/lib`` leaving ``/var/lib/kubelet`` (a mount of its own, made by the kubelet) writable.
- A platform whose nodes keep files outside those directories names them in its benchmark
  (``host_directories``: GKE's ``/home/kubernetes``, where the kubelet's ``--config`` file is);
  they are mounted the same way, but only on a node that shows that platform itself (its labels
  or kubelet version, :func:`platform_host_paths`): a ``Directory`` mount that is absent keeps
  the Pod from ever starting, so a platform pinned in the profile or detected from the other
  nodes must not put one on a node that may lack it. Unmounted, such a file is reported by the
  agent as not mounted (``PLUMBOB_HOST_PATHS`` tells it what is), an error the scan completes with.
- It runs as uid 0 because the files it must read are root-owned with mode 600, but with every
  capability dropped except ``DAC_READ_SEARCH`` (read any file, write none), a read-only root file
  system, no privilege escalation and the runtime's default seccomp profile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from plumbob.api import ComplianceScan
from plumbob.api.common import Toleration
from plumbob.benchmarks.detection import NodeSignals, node_platform
from plumbob.benchmarks.rules import Benchmark
from plumbob.benchmarks.tailoring import Tailoring
from plumbob.controller.decisions.digests import ANNOTATION_NODE, LABEL_MANAGED_BY, MANAGER, NodeDigest
from plumbob.controller.decisions.scanning import DEFAULT_TOLERATIONS, job_name
from plumbob.names import LABEL_NODE, LABEL_PROFILE, LABEL_SCAN

HOST_ROOT = "/host"
# The tailoring travels in one environment variable; the kernel refuses an exec whose single
# environment string exceeds 128 KiB, and the Pod must stay a small object. Manual rationales are
# clipped to fit this budget (the profile keeps them whole; the report says where to read them).
TAILORING_BUDGET = 48 * 1024
# Host directories mounted read-only under /host: /proc, and the directories every Linux node has
# that hold what the CIS node rules read (/etc/kubernetes, /etc/passwd, /var/lib/kubelet,
# /var/lib/etcd, /etc/cni/net.d, the kubelet's systemd drop-ins under /etc, /usr/lib and /lib…).
HOST_PATHS = ("/proc", "/etc", "/var/lib", "/usr/lib", "/lib")
AGENT_SERVICE_ACCOUNT = "plumbob-agent"
# The chart's agent.resources default; the operator gets the chart's value as PLUMBOB_AGENT_RESOURCES.
DEFAULT_AGENT_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"memory": "256Mi"},
}


def _profile_uid(scan: ComplianceScan) -> str:
    owner = next((o for o in scan.metadata.owner_references if o.kind == "ComplianceProfile"), None)
    return owner.uid if owner else ""


def agent_tailoring(tailoring: Tailoring) -> str:
    """The tailoring as the agent's JSON, with manual rationales clipped to :data:`TAILORING_BUDGET`."""
    text = tailoring.to_json()
    if len(text.encode()) <= TAILORING_BUDGET:
        return text
    base = len(replace(tailoring, manual=dict.fromkeys(tailoring.manual, "")).to_json())
    each = max(0, (TAILORING_BUDGET - base) // max(1, len(tailoring.manual)) // 4 - 16)  # 4: UTF-8 worst case
    suffix = " … (clipped; the whole rationale is in the profile)"
    manual = {
        rule: why if len(why) <= each else why[: max(0, each - len(suffix))] + suffix
        for rule, why in tailoring.manual.items()
    }
    return replace(tailoring, manual=manual).to_json()


def _volume_name(path: str) -> str:
    return "host" + path.replace("/", "-").replace(".", "-").lower()


def platform_host_paths(benchmark: Benchmark, node: NodeDigest | None) -> tuple[str, ...]:
    """The benchmark's platform directories to mount on ``node`` besides :data:`HOST_PATHS`: all
    of them when the node itself shows the benchmark's platform, else none (see the module)."""
    if not benchmark.host_directories or node is None:
        return ()
    signals = NodeSignals(node.name, node.labels, node.provider_id, node.kubelet_version)
    platform, _ = node_platform(signals)
    return tuple(benchmark.host_directories) if platform == benchmark.platform else ()


def audit_job(
    *,
    scan: ComplianceScan,
    node: str,
    tailoring: Tailoring,
    tolerations: list[Toleration],
    namespace: str,
    image: str,
    backoff_limit: int = 1,
    resources: Mapping[str, Any] | None = None,
    image_pull_secrets: Sequence[str] = (),
    platform_paths: Sequence[str] = (),
) -> dict[str, Any]:
    """The Job; ``platform_paths``: host directories mounted besides :data:`HOST_PATHS`
    (:func:`platform_host_paths`)."""
    host_paths = tuple(dict.fromkeys((*HOST_PATHS, *platform_paths)))
    name = job_name(scan.metadata.name, node)
    labels = {
        LABEL_SCAN: scan.metadata.name,
        LABEL_PROFILE: scan.spec.profile,
        LABEL_MANAGED_BY: MANAGER,
        "app.kubernetes.io/name": "plumbob",
        "app.kubernetes.io/component": "agent",
    }
    if len(node) <= 63:
        labels[LABEL_NODE] = node
    env = [
        {"name": "PLUMBOB_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "PLUMBOB_PROFILE", "value": scan.spec.profile},
        {"name": "PLUMBOB_SCAN", "value": scan.metadata.name},
        {"name": "PLUMBOB_PROFILE_UID", "value": _profile_uid(scan)},
        {"name": "PLUMBOB_TAILORING", "value": agent_tailoring(tailoring)},
        {"name": "PLUMBOB_HOST_ROOT", "value": HOST_ROOT},
        # what is mounted there: the agent reports a path outside it as not mounted, not as absent
        {"name": "PLUMBOB_HOST_PATHS", "value": ":".join(host_paths)},
    ]
    # type Directory: checked by the kubelet, never created (a runtime creates a missing source)
    volumes = [{"name": _volume_name(p), "hostPath": {"path": p, "type": "Directory"}} for p in host_paths]
    # recursiveReadOnly: the mounts below a host directory (the kubelet bind-mounts /var/lib/kubelet
    # on itself; /var/lib/etcd or a runtime's folder is often a disk of its own) are read-only too.
    # "Enabled", not "IfPossible": a runtime that cannot do it fails the Pod with a clear event
    # rather than leaving those mounts writable (Kubernetes 1.30+, containerd 2.0+, CRI-O 1.30+).
    mounts = [
        {
            "name": _volume_name(p),
            "mountPath": HOST_ROOT + p,
            "readOnly": True,
            "recursiveReadOnly": "Enabled",
        }
        for p in host_paths
    ]
    all_tolerations = [t.to_dict() for t in (*DEFAULT_TOLERATIONS, *tolerations)]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {ANNOTATION_NODE: node},
            "ownerReferences": [scan.owner_reference().to_dict()],
        },
        "spec": {
            "backoffLimit": backoff_limit,
            "activeDeadlineSeconds": scan.spec.node_deadline_seconds,
            "template": {
                "metadata": {"labels": labels, "annotations": {ANNOTATION_NODE: node}},
                "spec": {
                    "nodeName": node,
                    "restartPolicy": "Never",
                    "serviceAccountName": AGENT_SERVICE_ACCOUNT,
                    "automountServiceAccountToken": True,
                    "hostPID": True,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 5,
                    "tolerations": all_tolerations,
                    "imagePullSecrets": [{"name": s} for s in image_pull_secrets],
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {
                            "name": "agent",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["python", "-m", "plumbob", "agent"],
                            "env": env,
                            "resources": dict(DEFAULT_AGENT_RESOURCES if resources is None else resources),
                            "securityContext": {
                                "runAsUser": 0,
                                "runAsNonRoot": False,
                                "readOnlyRootFilesystem": True,
                                "allowPrivilegeEscalation": False,
                                "privileged": False,
                                "capabilities": {"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]},
                            },
                            "volumeMounts": mounts,
                        }
                    ],
                    "volumes": volumes,
                },
            },
        },
    }
