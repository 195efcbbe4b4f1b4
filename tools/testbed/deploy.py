"""Install Plumbob on a testbed control plane and run its operator as a local process.

What a cluster admin does with the chart, done for tests, the demo and the benchmarks:

1. apply the CRDs (``crds/``) and the node-bound admission policy (``crds/policy/``);
2. render the Helm chart with the operator Deployment disabled (there is no container runtime)
   and apply it: namespace objects, service accounts, RBAC;
3. start ``python -m plumbob operator`` as a child process that authenticates with a token of
   the chart's ``plumbob-operator`` service account, so the chart's RBAC is what it runs under.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from testbed.binaries import KUBE_VERSION, ensure_helm
from testbed.controlplane import ControlPlane, _die_with_parent, write_token_kubeconfig

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "plumbob-system"


def crd_names() -> list[str]:
    """``crd/<plural>.plumbob.dev`` for every generated CRD file."""
    return [
        f"crd/{p.stem.split('_', 1)[1]}.plumbob.dev"
        for p in sorted((REPO / "crds").glob("plumbob.dev_*.yaml"))
    ]


def install(cp: ControlPlane, namespace: str = NAMESPACE) -> None:
    """CRDs, admission policy, namespace, service accounts and RBAC (idempotent)."""
    cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", *crd_names())
    _wait_served(cp)
    cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds" / "policy"))
    if cp.kubectl("get", "namespace", namespace, check=False).returncode != 0:
        cp.kubectl("create", "namespace", namespace)
    helm = ensure_helm()
    rendered = subprocess.run(
        [
            str(helm),
            "template",
            "plumbob",
            str(REPO / "charts" / "plumbob"),
            "--namespace",
            namespace,
            "--kube-version",
            KUBE_VERSION,
            "--set",
            "operator.enabled=false",
            "--set",
            "nodeBoundReports=false",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if rendered.returncode != 0:
        raise RuntimeError(f"helm template failed: {rendered.stderr}")
    cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=rendered.stdout)
    _wait_policy_ready(cp)


def _wait_served(cp: ControlPlane, timeout: float = 30) -> None:
    """Established is not yet served: the apiserver answers 429 while a new CRD's storage starts."""
    plurals = ",".join(name.removeprefix("crd/") for name in crd_names())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cp.kubectl("get", plurals, "-A", check=False).returncode == 0:
            return
        time.sleep(0.3)


def _wait_policy_ready(cp: ControlPlane, timeout: float = 30) -> None:
    """The apiserver type-checks a new policy before enforcing it; wait until it has."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = cp.kubectl(
            "get", "validatingadmissionpolicy", "plumbob-node-bound-reports", "-o", "json"
        ).stdout
        status = json.loads(out).get("status") or {}
        if status.get("observedGeneration"):
            return
        time.sleep(0.2)


def service_account_kubeconfig(cp: ControlPlane, name: str, namespace: str, path: Path) -> Path:
    token = cp.kubectl("create", "token", name, "-n", namespace, "--duration=24h").stdout.strip()
    return write_token_kubeconfig(path, cp.server, cp.ca_file, name, token, namespace=namespace)


@dataclass
class Operator:
    process: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes]

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the operator gets no chance to clean up (crash test)."""
        if self.alive():
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.handle.close()

    def url(self, what: str, timeout: float = 60) -> str:
        """The base URL the operator logged for ``what`` ("metrics" or "dashboard"), once it has."""
        pattern = re.compile(rf"{what} on (http://[0-9.:]+)/")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = pattern.search(self.log.read_text(errors="replace") if self.log.exists() else "")
            if found:
                return found.group(1)
            if not self.alive():
                break
            time.sleep(0.2)
        raise RuntimeError(f"the operator logged no {what} address:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def start_operator(
    cp: ControlPlane,
    workdir: Path,
    *,
    namespace: str = NAMESPACE,
    extra_env: dict[str, str] | None = None,
    log_name: str = "operator.log",
    lease_seconds: int | None = None,
) -> Operator:
    """``python -m plumbob operator`` as a child process.

    Its leader-election identity is derived from ``log_name``, like a Pod's name: a restarted
    operator with the same log takes its Lease back at once, while two operators started with
    different logs are two replicas of which one leads.
    """
    kubeconfig = service_account_kubeconfig(
        cp, "plumbob-operator", namespace, workdir / "operator.kubeconfig"
    )
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PLUMBOB_NAMESPACE": namespace,
        "PYTHONPATH": str(REPO / "operator"),
        # Loopback and a free port: several operators (tests, helpers) share one machine. The
        # bound addresses are in the log ("metrics on http://...", "dashboard on http://...").
        "PLUMBOB_METRICS_ADDRESS": "127.0.0.1:0",
        "PLUMBOB_DASHBOARD_ADDRESS": "127.0.0.1:0",
        "PLUMBOB_POD_NAME": "operator-" + Path(log_name).stem,
        **(extra_env or {}),
    }
    args = ["--lease-duration", str(lease_seconds)] if lease_seconds else []
    log = workdir / log_name
    handle = log.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "plumbob", "operator", *args],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - single-threaded parent
    )
    return Operator(process, log, handle)
