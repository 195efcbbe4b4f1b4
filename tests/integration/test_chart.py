"""The Helm chart: lints, renders, and stays in step with ``crds/``.

Cases:
- ``helm lint`` passes;
- the rendered chart (operator enabled) applies to the real apiserver with a server-side dry run;
- the operator Deployment runs as non-root with a read-only root file system and no capabilities;
- the chart's copy of the node-bound admission policy is byte-for-byte ``crds/policy``'s, and its
  ``crds/`` are the generated CRDs;
- bad values fail ``helm template`` with a message naming the value (``values.schema.json``);
- the values users set reach the Deployment (scheduling, annotations, pull secrets, priority
  class, leader election) and the audit Jobs (resources and pull secrets, as the operator's env);
- on the real apiserver: ``helm install`` with the policy already applied from ``crds/policy``
  skips it; a second release in another namespace installs without colliding when it does not run
  the operator, and is refused with a message when it would run a second one; ``helm
  uninstall`` leaves no cluster-scoped object of either release behind.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

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
    assert "Deployment" in kinds and "ValidatingAdmissionPolicy" in kinds and kinds.count("ClusterRole") == 3
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


def test_chart_crds_are_the_generated_crds() -> None:
    generated = sorted((REPO / "crds").glob("plumbob.dev_*.yaml"))
    shipped = sorted((CHART / "crds").glob("*.yaml"))
    assert [p.name for p in shipped] == [p.name for p in generated]
    for ours, theirs in zip(shipped, generated, strict=True):
        assert ours.read_bytes() == theirs.read_bytes(), f"{ours.name}: run `make crds`"


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("operator.replicas=abc", "/operator/replicas"),
        ("agent.jobTTLSeconds=soon", "jobTTLSeconds"),
        ("image.repository=", "/image/repository"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("operator.leaderElection.leaseDurationSeconds=1", "/operator/leaderElection/leaseDurationSeconds"),
        ("agent.resources.limits.memory=lots", "/agent/resources/limits/memory"),
    ],
)
def test_bad_values_fail_naming_the_value(setting: str, named: str) -> None:
    result = _helm("template", "plumbob", str(CHART), "--kube-version", KUBE_VERSION, "--set", setting)
    assert result.returncode != 0, f"{setting} was accepted"
    assert named in result.stderr, result.stderr


def _render(*sets: str) -> list[dict[str, Any]]:
    args = [a for s in sets for a in ("--set-json", s)]
    result = _helm(
        "template", "plumbob", str(CHART), "--namespace", "ps", "--kube-version", KUBE_VERSION, *args
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_values_reach_the_deployment_and_the_audit_jobs() -> None:
    docs = _render(
        'operator.tolerations=[{"key":"dedicated","operator":"Exists"}]',
        'operator.nodeSelector={"pool":"system"}',
        'operator.affinity={"podAntiAffinity":{}}',
        'operator.podAnnotations={"a":"b"}',
        'operator.priorityClassName="system-cluster-critical"',
        "operator.replicas=2",
        'operator.leaderElection={"leaseDurationSeconds":20}',
        'imagePullSecrets=[{"name":"regcred"}]',
        'agent.resources={"limits":{"memory":"1Gi"}}',
    )
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    template = deployment["spec"]["template"]
    pod = template["spec"]
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert pod["nodeSelector"] == {"pool": "system"}
    assert pod["affinity"] == {"podAntiAffinity": {}}
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert template["metadata"]["annotations"] == {"a": "b"}
    [container] = pod["containers"]
    assert "--lease-duration=20" in container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e.get("value") for e in container["env"]}
    # helm merges a map value into the default: the default requests stay
    assert json.loads(env["PLUMBOB_AGENT_RESOURCES"]) == {
        "limits": {"memory": "1Gi"},
        "requests": {"cpu": "50m", "memory": "64Mi"},
    }
    assert json.loads(env["PLUMBOB_IMAGE_PULL_SECRETS"]) == [{"name": "regcred"}]
    assert env["PLUMBOB_AGENT_IMAGE"] == container["image"]


def _helm_on(cp: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    return _helm(*args, "--kubeconfig", str(cp.kubeconfig))


def _release_objects(cp: ControlPlane, release: str) -> list[str]:
    kinds = "clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings"
    out = cp.kubectl("get", kinds, "-l", f"app.kubernetes.io/instance={release}", "-o", "name").stdout
    return out.split()


def test_second_release_and_existing_policy(crds_installed: ControlPlane) -> None:
    cp = crds_installed
    cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds" / "policy"))
    suffix = uuid.uuid4().hex[:6]
    first, second = f"one-{suffix}", f"two-{suffix}"
    try:
        installed = _helm_on(cp, "install", first, str(CHART), "-n", first, "--create-namespace")
        assert installed.returncode == 0, installed.stderr
        policy = json.loads(
            cp.kubectl("get", "validatingadmissionpolicy", "plumbob-node-bound-reports", "-o", "json").stdout
        )
        assert "meta.helm.sh/release-name" not in (policy["metadata"].get("annotations") or {})
        refused = _helm_on(cp, "install", second, str(CHART), "-n", second, "--create-namespace")
        assert refused.returncode != 0
        assert f"the Plumbob release {first} in namespace {first} already runs the operator" in refused.stderr
        passive = _helm_on(
            cp,
            "install",
            second,
            str(CHART),
            "-n",
            second,
            "--create-namespace",
            "--set",
            "operator.enabled=false",
        )
        assert passive.returncode == 0, passive.stderr
        # operator, agent and namespace-report-viewer ClusterRoles, the two bindings
        assert len(_release_objects(cp, first)) == 5 and len(_release_objects(cp, second)) == 5
    finally:
        for release in (first, second):
            _helm_on(cp, "uninstall", release, "-n", release)
            cp.kubectl("delete", "namespace", release, "--wait=false", check=False)
    assert _release_objects(cp, first) == [] and _release_objects(cp, second) == []
    assert (
        cp.kubectl("get", "validatingadmissionpolicy", "plumbob-node-bound-reports", check=False).returncode
        == 0
    )
