"""The operator checks its permissions before it watches anything.

Cases:
- with a service account that has no RBAC, ``plumbob operator`` exits at once with code 4 and
  lists what is missing (a bare kopf retry loop would be the alternative);
- every permission it asks for is granted by the Helm chart's RBAC (the same check, run with the
  chart's ``plumbob-operator`` service account, finds nothing missing).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.controlplane import ControlPlane
from testbed.deploy import NAMESPACE, install, service_account_kubeconfig

pytestmark = pytest.mark.integration


def _operator(kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PLUMBOB_NAMESPACE": NAMESPACE,
        # it should exit before it listens; if not, on a loopback port of its own, never the
        # defaults (0.0.0.0:8081 and 8082) that another suite's operator on this machine may hold
        "PLUMBOB_METRICS_ADDRESS": "127.0.0.1:0",
        "PLUMBOB_DASHBOARD_ADDRESS": "127.0.0.1:0",
    }
    return subprocess.run(
        [sys.executable, "-m", "plumbob", "operator"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_operator_without_rbac_says_what_is_missing(
    crds_installed: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    cp = crds_installed
    cp.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    result = _operator(service_account_kubeconfig(cp, "nobody", namespace, tmp_path / "kubeconfig"))
    assert result.returncode == 4, result.stderr[-2000:]
    assert "missing permissions" in result.stderr
    assert "watch complianceprofiles.plumbob.dev cluster-wide" in result.stderr
    assert f"create jobs.batch in namespace {NAMESPACE}" in result.stderr


def test_chart_rbac_grants_everything_the_operator_checks(
    crds_installed: ControlPlane, tmp_path: Path
) -> None:
    cp = crds_installed
    install(cp)
    kubeconfig = service_account_kubeconfig(cp, "plumbob-operator", NAMESPACE, tmp_path / "kubeconfig")
    script = (
        "from plumbob.controller.operating import missing_permissions\n"
        f"print(repr(missing_permissions({NAMESPACE!r})))\n"
    )
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
