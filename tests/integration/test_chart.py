"""The Helm chart: lints, renders, and stays in step with ``crds/``.

Cases:
- ``helm lint`` passes;
- the rendered chart (operator enabled) applies to the real apiserver with a server-side dry run;
- the operator Deployment runs as non-root with a read-only root file system and no capabilities;
- the chart's copy of the node-bound admission policy is byte-for-byte ``crds/policy``'s.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from testbed.binaries import KUBE_VERSION, ensure_helm
from testbed.controlplane import ControlPlane

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "plumbob"


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ensure_helm()), *args], capture_output=True, text=True, check=False)


def test_chart_lints() -> None:
    result = _helm("lint", str(CHART), "--kube-version", KUBE_VERSION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_renders_and_applies(control_plane: ControlPlane) -> None:
    rendered = _helm(
        "template", "plumbob", str(CHART), "--namespace", "plumbob-system", "--kube-version", KUBE_VERSION
    )
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert "Deployment" in kinds and "ValidatingAdmissionPolicy" in kinds and kinds.count("ClusterRole") == 2
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]["securityContext"]
    assert container["readOnlyRootFilesystem"] is True and container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    control_plane.kubectl("create", "namespace", "plumbob-system", check=False)
    applied = control_plane.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", input=rendered.stdout, check=False
    )
    assert applied.returncode == 0, applied.stderr


def test_chart_policy_is_the_shipped_policy() -> None:
    chart_copy = (CHART / "files" / "node-bound-reports.yaml").read_bytes()
    assert chart_copy == (REPO / "crds" / "policy" / "node-bound-reports.yaml").read_bytes(), (
        "charts/plumbob/files/node-bound-reports.yaml differs from crds/policy/: copy that file over it"
    )
