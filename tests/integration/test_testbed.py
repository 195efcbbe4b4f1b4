"""The testbed itself: a real control plane at the pinned version, and no orphans.

Cases:
- the apiserver reports the stamped version v1.36.3 (unstamped builds say v0.0.0-master);
- the controller-manager runs the service-account controllers (a default SA appears);
- a process that started a control plane and is then SIGKILLed leaves no etcd/apiserver/
  controller-manager behind (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testbed.controlplane import ControlPlane

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_version_is_stamped(control_plane: ControlPlane) -> None:
    version = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == "v1.36.3"
    assert version["clientVersion"]["gitVersion"] == "v1.36.3"


def test_service_account_controller_runs(control_plane: ControlPlane, namespace: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if control_plane.kubectl("get", "sa", "default", "-n", namespace, check=False).returncode == 0:
            return
        time.sleep(0.3)
    pytest.fail("the serviceaccount controller did not create the default service account")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.split(") ", 1)[1][0] != "Z"


def test_killed_parent_leaves_no_orphans(tmp_path: Path) -> None:
    script = (
        "import json, pathlib, sys, time\n"
        "from testbed.controlplane import ControlPlane\n"
        f"cp = ControlPlane.start(pathlib.Path({str(tmp_path / 'cp')!r}), progress=lambda m: None)\n"
        "print(json.dumps(cp.pids), flush=True)\n"
        "time.sleep(600)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tools"), str(REPO / "operator")])}
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line, "the control plane did not start in the child process"
    pids: dict[str, int] = json.loads(line)
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager"}
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(p) for p in pids.values()):
        time.sleep(0.2)
    assert not [n for n, p in pids.items() if _alive(p)], "control-plane processes outlived their parent"
