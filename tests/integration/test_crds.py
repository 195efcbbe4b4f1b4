"""The generated CRDs on the real API server (the testbed's kube-apiserver).

Cases:
- every CRD installs and becomes Established, with its names accepted;
- every sample in docs/examples applies with ``kubectl apply --server-side`` and reads back with
  ``kubectl get``, showing its printer columns; ``kubectl get plumbob`` lists them all;
- every file of the invalid corpus (tests/invalid) is rejected at admission with a message that
  names the field given on its ``# expect:`` line, and nothing is stored;
- transition rules: a scan's spec and a report's node name cannot change after creation;
- selectable fields: reports can be listed by ``spec.nodeName``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from plumbob.api import GROUP, KINDS
from testbed.controlplane import ControlPlane

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "docs" / "examples").glob("*.yaml"))
INVALID = sorted((REPO / "tests" / "invalid").glob("*.yaml"))
NAMESPACED = {k.__name__ for k in KINDS if k.CRD.namespaced}
PLURAL = {k.__name__: k.CRD.plural for k in KINDS}
COLUMNS = {k.__name__: [c.name for c in k.CRD.printer_columns if c.priority == 0] for k in KINDS}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def expectation(path: Path) -> str:
    match = re.fullmatch(r"# expect: (\S+)", path.read_text().splitlines()[0])
    assert match, f"{path.name}: the first line must be '# expect: <field>'"
    return match.group(1)


def ref(obj: dict[str, Any]) -> str:
    return f"{PLURAL[obj['kind']]}.{GROUP}/{obj['metadata']['name']}"


@pytest.fixture(scope="module")
def cp(crds_installed: ControlPlane) -> ControlPlane:
    return crds_installed


@pytest.fixture
def cleanup(cp: ControlPlane) -> Iterator[list[dict[str, Any]]]:
    """Objects to delete after the test (cluster-scoped ones would otherwise outlive it)."""
    created: list[dict[str, Any]] = []
    yield created
    for obj in created:
        ns = ["-n", obj["metadata"]["namespace"]] if obj["metadata"].get("namespace") else []
        cp.kubectl("delete", ref(obj), *ns, "--ignore-not-found", "--wait=false", check=False)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_crd_established(cp: ControlPlane, kind: type) -> None:
    crd = json.loads(cp.kubectl("get", "crd", f"{PLURAL[kind.__name__]}.{GROUP}", "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions.get("Established") == "True", conditions
    assert conditions.get("NamesAccepted") == "True", conditions


def test_samples_apply_and_show_columns(
    cp: ControlPlane, namespace: str, cleanup: list[dict[str, Any]]
) -> None:
    assert EXAMPLES, "docs/examples holds no samples"
    for path in EXAMPLES:
        obj = load(path)
        kind = obj["kind"]
        ns: list[str] = []
        if kind in NAMESPACED:
            obj["metadata"]["namespace"] = namespace
            ns = ["-n", namespace]
        cleanup.append(obj)
        applied = cp.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(obj), check=False)
        assert applied.returncode == 0, f"{path.name}: {applied.stderr}"

        table = cp.kubectl("get", ref(obj), *ns).stdout.splitlines()
        header = re.split(r"\s{2,}", table[0].strip())
        assert header == ["NAME", *(c.upper() for c in COLUMNS[kind])], f"{path.name}: {table[0]}"
        assert table[1].startswith(obj["metadata"]["name"])

        stored = json.loads(cp.kubectl("get", ref(obj), *ns, "-o", "json").stdout)
        assert stored["spec"] == obj["spec"], f"{path.name}: the API server changed the spec"

    listing = cp.kubectl("get", "plumbob", "-A").stdout
    for path in EXAMPLES:
        assert load(path)["metadata"]["name"] in listing


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_rejected_naming_the_field(cp: ControlPlane, namespace: str, path: Path) -> None:
    obj = load(path)
    field = expectation(path)
    result = cp.kubectl("apply", "--server-side", "-n", namespace, "-f", str(path), check=False)
    assert result.returncode != 0, f"{path.name} was accepted"
    assert field in result.stderr, f"{path.name}: {field!r} not named in: {result.stderr}"
    got = cp.kubectl("get", ref(obj), "-n", namespace, check=False)
    assert got.returncode != 0, f"{path.name}: the object was stored"


def _apply(cp: ControlPlane, obj: dict[str, Any]) -> Any:
    return cp.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(obj), check=False)


def test_scan_spec_is_immutable(cp: ControlPlane, cleanup: list[dict[str, Any]]) -> None:
    scan: dict[str, Any] = {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceScan",
        "metadata": {"name": "cis-kubeadm-20260101-120000"},
        "spec": {"profile": "cis-kubeadm", "trigger": "manual"},
    }
    cleanup.append(scan)
    assert _apply(cp, scan).returncode == 0
    scan["spec"]["trigger"] = "rescan"
    changed = _apply(cp, scan)
    assert changed.returncode != 0
    assert "spec" in changed.stderr and "cannot change" in changed.stderr


def test_report_node_is_fixed_and_selectable(cp: ControlPlane, cleanup: list[dict[str, Any]]) -> None:
    def report(name: str, node: str) -> dict[str, Any]:
        return {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ComplianceReport",
            "metadata": {"name": name},
            "spec": {
                "profile": "cis-kubeadm",
                "nodeName": node,
                "scan": "cis-kubeadm-20270101-023000",
                "results": [{"id": "4.2.1", "severity": "high", "status": "pass"}],
            },
        }

    first, second = (
        report("cis-kubeadm.sel-node-a", "sel-node-a"),
        report("cis-kubeadm.sel-node-b", "sel-node-b"),
    )
    cleanup.extend([first, second])
    assert _apply(cp, first).returncode == 0
    assert _apply(cp, second).returncode == 0

    moved = _apply(cp, report("cis-kubeadm.sel-node-a", "sel-node-b"))
    assert moved.returncode != 0
    assert "spec.nodeName" in moved.stderr

    listed = cp.kubectl(
        "get", f"compliancereports.{GROUP}", "--field-selector", "spec.nodeName=sel-node-b", "-o", "name"
    ).stdout.split()
    assert listed == [f"compliancereport.{GROUP}/cis-kubeadm.sel-node-b"]
