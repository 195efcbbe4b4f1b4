"""Shared fixtures.

- ``control_plane`` (session): one real etcd + kube-apiserver + kube-controller-manager for the
  whole run, started on first use. If it cannot start, every test that needs it FAILS (never
  skips): a broken testbed must not look like a green run.
- ``namespace``: a fresh namespace per test, deleted afterwards (without waiting).
- ``crds_installed`` (session): the generated CRDs applied and Established.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from testbed.controlplane import ControlPlane
from testbed.deploy import crd_names

REPO = Path(__file__).resolve().parent.parent

# Property tests judge correctness, not speed: no per-example deadline on a loaded 2-core machine.
settings.register_profile("plumbob", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("plumbob")


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    cp = ControlPlane.start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def crds_installed(control_plane: ControlPlane) -> ControlPlane:
    control_plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", *crd_names())
    return control_plane


# ---- a run that skipped tests is not a green run --------------------------------------------------
_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped and exitstatus == 0:
        print(
            f"\nerror: {len(_skipped)} test(s) skipped; skips count as failures here:", *_skipped, sep="\n  "
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
