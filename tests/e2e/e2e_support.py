"""Shared pieces of the end-to-end tests: environment handles, polling and reading helpers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from testbed.controlplane import ControlPlane
from testbed.deploy import NAMESPACE, Operator, start_operator
from testbed.simnodes import SimulatedCluster

RUN_LABEL = "plumbob.test/run"

T = TypeVar("T")


@dataclass
class Plumbob:
    cp: ControlPlane
    operator: Operator
    workdir: Path
    namespace: str = NAMESPACE

    def restart_operator(self) -> None:
        self.operator.stop()
        self.operator = start_operator(self.cp, self.workdir)


@dataclass
class NodeSpec:
    name: str
    kind: str = "worker"  # control-plane | worker
    misconfigurations: list[str] = field(default_factory=list)
    fault: str = "none"
    taints: list[dict[str, str]] | None = None  # None: the role's default taints
    tree: str | None = None  # host tree kind when not the role's (k3s, rke2, eks, gke, aks)
    labels: dict[str, str] = field(default_factory=dict)
    kubelet_version: str | None = None  # None: the simulated kubelet's own
    provider_id: str = ""


MakeCluster = Callable[..., SimulatedCluster]


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 90, interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def get(cp: ControlPlane, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    args = ["get", kind, name, "-o", "json"] + (["-n", namespace] if namespace else [])
    result = cp.kubectl(*args, check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def items(cp: ControlPlane, kind: str, *args: str) -> list[dict[str, Any]]:
    return list(json.loads(cp.kubectl("get", kind, "-o", "json", *args).stdout)["items"])


def events(
    cp: ControlPlane, reason: str, name: str | None = None, kind: str | None = None
) -> list[dict[str, Any]]:
    out = []
    for ev in items(cp, "events", "-A"):
        inv = ev.get("involvedObject") or {}
        if (
            ev.get("reason") == reason
            and (name is None or inv.get("name") == name)
            and (kind is None or inv.get("kind") == kind)
        ):
            out.append(ev)
    return out


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def profile_body(name: str, run_id: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceProfile",
        "metadata": {"name": name},
        "spec": {
            "benchmark": {"name": "cis-kubernetes", "version": "auto"},
            "nodeSelector": {"matchLabels": {"plumbob.test/run": run_id}},
            **spec,
        },
    }


def apply(cp: ControlPlane, body: dict[str, Any]) -> None:
    cp.kubectl("apply", "-f", "-", input=json.dumps(body))


def rescan(cp: ControlPlane, profile: str, value: str) -> None:
    cp.kubectl("annotate", "--overwrite", "complianceprofile", profile, f"plumbob.dev/rescan={value}")


def completed_scan(cp: ControlPlane, profile: str, exclude: set[str] = frozenset()) -> dict[str, Any] | None:  # type: ignore[assignment]
    for scan in items(cp, "compliancescans"):
        if (
            scan["spec"]["profile"] == profile
            and scan["metadata"]["name"] not in exclude
            and ((scan.get("status") or {}).get("phase") == "Complete")
        ):
            return scan
    return None
