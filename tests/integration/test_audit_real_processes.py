"""Audit the real kube-apiserver, etcd and kube-controller-manager started by the testbed.

The agent reads the real ``/proc`` and the real files these processes name. To stay independent of
any other Kubernetes processes on the machine, the audit reads a private proc directory holding
links to exactly the testbed's processes (the gatherer treats it as ``/proc``).

Cases:
- the three processes are found with their real pids and argv; roles: control-plane and etcd;
- flag evidence names the real pid (``--profiling=false`` passes, ``--authorization-mode`` has
  Node, ``--token-auth-file`` is set so 1.2.2 fails, etcd without ``--cert-file`` fails 2.1,
  ``--use-service-account-credentials=false`` fails 1.3.3);
- the etcd data directory is located from etcd's own ``--data-dir`` and audited on disk;
- no scheduler runs: scheduler rules are not-applicable; no rule errors.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plumbob.agent.auditing import run_audit
from plumbob.engine.findings import AuditResult, Finding, Status
from testbed.controlplane import ControlPlane

pytestmark = pytest.mark.integration


def _finding(result: AuditResult, rule_id: str) -> Finding:
    return next(f for f in result.findings if f.rule_id == rule_id)


@pytest.fixture
def audited(control_plane: ControlPlane, tmp_path: Path) -> tuple[AuditResult, dict[str, int]]:
    proc = tmp_path / "proc"
    proc.mkdir()
    pids = control_plane.pids
    for pid in pids.values():
        (proc / str(pid)).symlink_to(f"/proc/{pid}")
    return run_audit("/", proc_dir=proc), pids


def test_real_processes_are_found(audited: tuple[AuditResult, dict[str, int]]) -> None:
    result, _ = audited
    assert {"control-plane", "etcd"} <= set(result.roles)


def test_real_flags_with_pids(audited: tuple[AuditResult, dict[str, int]]) -> None:
    result, pids = audited
    api, etcd, kcm = pids["kube-apiserver"], pids["etcd"], pids["kube-controller-manager"]
    profiling = _finding(result, "1.2.15")
    assert profiling.status is Status.PASS
    assert profiling.evidence[0].location == f"pid {api} --profiling"
    assert _finding(result, "1.2.7").status is Status.PASS
    token = _finding(result, "1.2.2")
    assert token.status is Status.FAIL and (token.evidence[0].found or "").endswith("tokens.csv")
    cert = _finding(result, "2.1")
    assert cert.status is Status.FAIL
    assert any((e.location and str(etcd) in e.location) or e.source == "unset" for e in cert.evidence)
    sa_creds = _finding(result, "1.3.3")
    assert (
        sa_creds.status is Status.FAIL
        and sa_creds.evidence[0].location == f"pid {kcm} --use-service-account-credentials"
    )


def test_real_files(control_plane: ControlPlane, audited: tuple[AuditResult, dict[str, int]]) -> None:
    result, pids = audited
    data_dir = _finding(result, "1.1.11")
    assert data_dir.status in (Status.PASS, Status.FAIL)
    assert data_dir.evidence[0].subject == str(control_plane.workdir / "etcd-data")
    assert data_dir.evidence[0].location == f"--data-dir of pid {pids['etcd']}"


def test_absent_scheduler_and_no_errors(audited: tuple[AuditResult, dict[str, int]]) -> None:
    result, _ = audited
    scheduler = _finding(result, "1.4.1")
    assert scheduler.status is Status.NOT_APPLICABLE and "kube-scheduler is not running" in (
        scheduler.reason or ""
    )
    assert [f.rule_id for f in result.findings if f.status is Status.ERROR] == []
