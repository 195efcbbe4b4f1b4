"""Two operator replicas: exactly one reconciles; a SIGKILLed leader is replaced mid-scan.

Runs on its own control plane, whose apiserver writes an audit log of every request by the
operator's service account, so writes are counted by the API server, not by the operator. The
two replicas authenticate with two tokens of the same service account, told apart in the log by
each token's credential id.

Cases:
- the two replicas elect one leader (the Lease names it); while both run, the standby makes no
  successful write (it reads: its watches and the Lease; its only write attempt may be a create
  of the Lease that lost the race at start, refused with 409);
- the leader is SIGKILLed while the scan's first audit Job runs: the standby takes the Lease (the
  test waits for that state; the time it took is printed, not asserted: on this 2-core machine
  under the load of two other suites it took 16 s for a 6 s lease);
- the scan completes once: one scan, every node Done with its report from this scan, every audit
  Job created exactly once (one successful ``create jobs`` per Job name across both replicas);
- after the takeover, writes come from the new leader only;
- a leader stopped cleanly (SIGTERM) releases the Lease: once its process has exited, the Lease
  no longer names it (it names nobody, or already the other replica), and the other takes it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import RUN_LABEL, apply, completed_scan, items, profile_body, rescan, wait_for

from testbed.controlplane import ControlPlane
from testbed.deploy import NAMESPACE, Operator, install, start_operator
from testbed.hosttrees import build_tree
from testbed.simnodes import SimulatedCluster, SimulatedNode

pytestmark = pytest.mark.e2e
LEASE_SECONDS = 6
OPERATOR_USER = f"system:serviceaccount:{NAMESPACE}:plumbob-operator"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
NOT_STATE = {"selfsubjectaccessreviews"}  # the permission check at start asks, it writes nothing


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlane, Path]]:
    wd = tmp_path_factory.mktemp("ha")
    policy = wd / "audit-policy.json"
    policy.write_text(
        json.dumps(
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "omitStages": ["RequestReceived"],
                "rules": [{"level": "Metadata", "users": [OPERATOR_USER]}, {"level": "None"}],
            }
        )
    )
    log = wd / "audit.log"
    cp = ControlPlane.start(
        wd / "cp",
        extra_apiserver_args=[
            f"--audit-policy-file={policy}",
            f"--audit-log-path={log}",
            "--audit-log-format=json",
            "--audit-log-mode=blocking",
            "--audit-log-maxsize=0",
        ],
    )
    try:
        install(cp)
        yield cp, log
    finally:
        cp.stop()


def _ok(ev: dict[str, Any]) -> bool:
    return int((ev.get("responseStatus") or {}).get("code") or 0) < 400


def _writes(log: Path) -> list[dict[str, Any]]:
    """Write requests of the operator's service account (successful or not), in log order."""
    out = []
    for line in log.read_text().splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        ref = ev.get("objectRef") or {}
        if (
            ev.get("stage") == "ResponseComplete"
            and ev.get("user", {}).get("username") == OPERATOR_USER
            and ev.get("verb") in WRITE_VERBS
            and ref.get("resource") not in NOT_STATE
        ):
            out.append(ev)
    return out


def _credential(ev: dict[str, Any]) -> str:
    extra = ev.get("user", {}).get("extra") or {}
    [credential] = extra["authentication.kubernetes.io/credential-id"]
    return str(credential)


def _time(ev: dict[str, Any]) -> float:
    from datetime import datetime  # noqa: PLC0415

    return datetime.fromisoformat(ev["stageTimestamp"].replace("Z", "+00:00")).timestamp()


def _holder(cp: ControlPlane) -> str | None:
    out = cp.kubectl("get", "lease", "plumbob-operator", "-n", NAMESPACE, "-o", "json", check=False)
    if out.returncode != 0:
        return None
    return (json.loads(out.stdout).get("spec") or {}).get("holderIdentity") or None


def _lease_writes_of(writes: list[dict[str, Any]], identity_credential: str) -> int:
    return sum(
        1
        for ev in writes
        if _credential(ev) == identity_credential and (ev.get("objectRef") or {}).get("resource") == "leases"
    )


def test_one_leader_and_takeover_mid_scan(audited: tuple[ControlPlane, Path], tmp_path: Path) -> None:
    cp, log = audited
    nodes = []
    for i in range(4):
        name = f"ha-w{i}"
        root = tmp_path / "hosts" / name
        build_tree(root, "worker", [], hostname=name)
        nodes.append(SimulatedNode(name=name, role="worker", host_root=root, labels={RUN_LABEL: "ha"}))
    cluster = SimulatedCluster(cp.kubeconfig, nodes, ca_file=cp.ca_file, workdir=tmp_path / "simnodes")
    cluster.start()
    replicas: dict[str, Operator] = {}
    try:
        for name in ("a", "b"):
            workdir = tmp_path / name
            workdir.mkdir()
            replicas[f"operator-{name}"] = start_operator(
                cp, workdir, log_name=f"{name}.log", lease_seconds=LEASE_SECONDS
            )
        leader_id = wait_for("a replica to hold the Lease", lambda: _holder(cp), timeout=60)
        standby_id = next(i for i in replicas if i != leader_id)
        leader, standby = replicas[leader_id], replicas[standby_id]

        profile = "ha"
        apply(cp, profile_body(profile, "ha"))
        apply(
            cp,
            {
                "apiVersion": "plumbob.dev/v1alpha1",
                "kind": "ComplianceSchedule",
                "metadata": {"name": "ha"},
                "spec": {"schedule": "0 0 1 1 *", "profiles": [profile], "maxParallelNodes": 1},
            },
        )
        rescan(cp, profile, "ha-1")
        scan = wait_for(
            "the scan and its first audit Job",
            lambda: next(
                (j["metadata"]["labels"]["plumbob.dev/scan"] for j in items(cp, "jobs", "-n", NAMESPACE)),
                None,
            ),
            timeout=90,
        )

        # Before the kill: every write is the leader's. Which credential is whose follows from the
        # Lease writes (only the holder writes the Lease).
        attempts = _writes(log)
        before = [ev for ev in attempts if _ok(ev)]
        credentials = Counter(_credential(ev) for ev in before)
        assert len(credentials) == 1, "two replicas wrote: " + "; ".join(
            f"{_credential(ev)[-6:]} {ev['verb']} {ev['objectRef'].get('resource')}" for ev in before
        )
        [leader_credential] = credentials
        assert _lease_writes_of(before, leader_credential) >= 1
        # The standby's only write attempt may be losing the race for the Lease at start (409).
        refused = [ev for ev in attempts if _credential(ev) != leader_credential]
        assert all(
            ev["objectRef"].get("resource") == "leases" and ev["responseStatus"]["code"] == 409
            for ev in refused
        ), refused
        assert any((ev.get("objectRef") or {}).get("resource") == "jobs" for ev in before)

        assert completed_scan(cp, profile) is None, "the scan finished before the kill: not mid-scan"
        leader.kill()
        killed_at = time.time()
        wait_for("the standby to take the Lease", lambda: _holder(cp) == standby_id or None, timeout=60)
        takeover = time.time() - killed_at

        done = wait_for("the scan to complete", lambda: completed_scan(cp, profile), timeout=180)
        assert done["metadata"]["name"] == scan
        assert done["status"]["nodes"]["total"] == 4 and done["status"]["nodes"]["done"] == 4, json.dumps(
            done["status"]["nodes"]
        )
        assert [s["metadata"]["name"] for s in items(cp, "compliancescans")] == [scan]
        for node in nodes:
            report = json.loads(
                cp.kubectl("get", "compliancereport", f"{profile}.{node.name}", "-o", "json").stdout
            )
            assert report["spec"]["scan"] == scan

        after = [ev for ev in _writes(log) if _ok(ev)]
        created = Counter(
            ev["objectRef"]["name"]
            for ev in after
            if ev["verb"] == "create"
            and ev["objectRef"].get("resource") == "jobs"
            and (ev.get("responseStatus") or {}).get("code") == 201
        )
        assert len(created) == 4 and set(created.values()) == {1}, f"Job creates: {created}"
        late = [ev for ev in after if _time(ev) > killed_at + 0.5]
        late_credentials = {_credential(ev) for ev in late}
        assert late and late_credentials.isdisjoint({leader_credential}), late_credentials
        assert len(late_credentials) == 1
        print(
            f"[ha] leader {leader_id} wrote {len(before)} times before the kill, the standby 0; "
            f"takeover after SIGKILL {takeover:.1f}s (lease {LEASE_SECONDS}s); "
            f"{len(late)} writes by the new leader after it"
        )
        assert standby.alive()

        # A clean stop hands over at once: the killed replica comes back (same identity, now the
        # standby); the leader gets SIGTERM, releases the Lease, and the other takes it well
        # before the Lease would have expired.
        leader.stop()  # closes its log
        name = leader_id.removeprefix("operator-")
        replicas[leader_id] = start_operator(
            cp, tmp_path / name, log_name=f"{name}.log", lease_seconds=LEASE_SECONDS
        )
        wait_for(
            "the restarted replica to stand by",
            lambda: replicas[leader_id].log.read_text().count("leader election as") >= 2,
            timeout=60,
        )
        stopped_at = time.monotonic()
        standby.stop()  # returns once the process has exited
        assert _holder(cp) != standby_id, "a cleanly stopped leader still holds the Lease: not released"
        wait_for("the Lease to pass on a clean stop", lambda: _holder(cp) == leader_id or None, timeout=60)
        handover = time.monotonic() - stopped_at
        print(f"[ha] handover after SIGTERM {handover:.1f}s")
    finally:
        for operator in replicas.values():
            operator.stop()
        cluster.stop()
