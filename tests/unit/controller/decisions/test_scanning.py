"""A scan's node states as a pure function of nodes, Jobs and reports.

Cases:
- taint toleration: Exists by key, Equal by key and value (a different value does not tolerate),
  an omitted operator means Equal, empty key + Exists tolerates every taint, a toleration's
  effect must match the taint's (absent effect matches all); PreferNoSchedule taints never block;
  NoExecute blocks like NoSchedule; the default control-plane/master NoSchedule tolerations;
- a NotReady node is Unschedulable with NodeNotReady; an untolerated taint gives UntoleratedTaint
  with a message naming the taint and the profile field to change;
- node_verdict: report of this scan → Done; of an older scan → not Done; DeadlineExceeded →
  TimedOut; any other Job failure → Failed AgentFailed with the reason; node gone with an
  unfinished Job → Failed NodeDeleted; node gone before any Job → Failed NodeDeleted; a Job that
  completed without a report → Running within 30 s, Failed NoResults after; active Job → Running;
  no Job → Pending or Unschedulable;
- pods_to_start: never more Running than max parallel, sorted, only Pending nodes;
- target_nodes: selector and roles, nodes created after the scan excluded (same instant kept),
  nodes that already have a Job of the scan kept (even if gone or no longer selected);
- a node whose report name <profile>.<node> would exceed 253 characters is Unschedulable
  (ReportNameTooLong, saying how short the profile name must be), not audited;
- job_name: at most 63 characters, a DNS label, deterministic, distinct per node and per scan;
  the audit Pod's name satisfies the admission policy's rule for its scan and no other scan's.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from plumbob.api.common import MAX_PROFILE_NAME, LabelSelector, Toleration
from plumbob.api.scans import NodeState
from plumbob.controller.decisions.digests import JobDigest, NodeDigest, ReportDigest, Taint
from plumbob.controller.decisions.scanning import (
    DEFAULT_TOLERATIONS,
    TERMINAL,
    NodeVerdict,
    job_name,
    node_roles,
    node_verdict,
    pods_to_start,
    target_nodes,
    tolerated,
    unschedulable_reason,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SCAN = "cis-20260601-115500"


def node(
    name: str = "worker-1",
    *,
    ready: bool = True,
    taints: tuple[Taint, ...] = (),
    labels: dict[str, str] | None = None,
    created: datetime | None = None,
) -> NodeDigest:
    return NodeDigest(
        name=name,
        uid=f"uid-{name}",
        labels=labels or {},
        taints=taints,
        ready=ready,
        created=created or NOW - timedelta(days=1),
    )


def job(
    node_name: str = "worker-1",
    *,
    complete: bool = False,
    failed_reason: str | None = None,
    finished_at: datetime | None = None,
    active: int = 1,
) -> JobDigest:
    return JobDigest(
        name=job_name(SCAN, node_name),
        namespace="plumbob-system",
        scan=SCAN,
        node=node_name,
        active=active,
        succeeded=int(complete),
        failed=int(failed_reason is not None),
        complete=complete,
        failed_reason=failed_reason,
        failed_message="boom" if failed_reason else "",
        finished_at=finished_at,
    )


def report(scan: str = SCAN, node_name: str = "worker-1") -> ReportDigest:
    return ReportDigest(
        name=f"cis.{node_name}",
        uid="r",
        profile="cis",
        node=node_name,
        scan=scan,
        generation=1,
        results={"4.1.1": "pass"},
        severities={},
        observed_generation=None,
    )


def tol(**fields: Any) -> Toleration:
    return Toleration.model_validate(fields)


# ---- tolerations ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toleration", "taint", "ok"),
    [
        ({"key": "dedicated", "operator": "Exists"}, Taint("dedicated", "db", "NoSchedule"), True),
        ({"key": "dedicated", "operator": "Exists"}, Taint("other", "db", "NoSchedule"), False),
        (
            {"key": "dedicated", "operator": "Equal", "value": "db"},
            Taint("dedicated", "db", "NoSchedule"),
            True,
        ),
        (
            {"key": "dedicated", "operator": "Equal", "value": "db"},
            Taint("dedicated", "web", "NoSchedule"),
            False,
        ),
        ({"key": "dedicated", "value": "db"}, Taint("dedicated", "db", "NoSchedule"), True),
        ({"key": "dedicated", "value": "db"}, Taint("dedicated", "web", "NoSchedule"), False),
        ({"key": "dedicated", "operator": "Equal"}, Taint("dedicated", "", "NoSchedule"), True),
        ({"operator": "Exists"}, Taint("anything", "x", "NoExecute"), True),
        ({"key": "", "operator": "Exists"}, Taint("anything", "x", "NoSchedule"), True),
        ({"operator": "Exists", "effect": "NoSchedule"}, Taint("anything", "x", "NoExecute"), False),
        (
            {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"},
            Taint("dedicated", "", "NoSchedule"),
            True,
        ),
        (
            {"key": "dedicated", "operator": "Exists", "effect": "NoExecute"},
            Taint("dedicated", "", "NoSchedule"),
            False,
        ),
    ],
)
def test_toleration_semantics(toleration: dict[str, Any], taint: Taint, ok: bool) -> None:
    assert tolerated(taint, [tol(**toleration)]) is ok


def test_no_tolerations_tolerate_nothing() -> None:
    assert not tolerated(Taint("a", "", "NoSchedule"), [])


def test_default_tolerations_cover_control_plane_no_schedule_only() -> None:
    assert tolerated(Taint("node-role.kubernetes.io/control-plane", "", "NoSchedule"), DEFAULT_TOLERATIONS)
    assert tolerated(Taint("node-role.kubernetes.io/master", "", "NoSchedule"), DEFAULT_TOLERATIONS)
    assert not tolerated(Taint("node-role.kubernetes.io/control-plane", "", "NoExecute"), DEFAULT_TOLERATIONS)
    cp = node("cp-1", taints=(Taint("node-role.kubernetes.io/control-plane", "", "NoSchedule"),))
    assert unschedulable_reason(cp, []) is None


def test_untolerated_taint_is_unschedulable_with_reason() -> None:
    n = node(taints=(Taint("dedicated", "db", "NoSchedule"),))
    verdict = unschedulable_reason(n, [])
    assert verdict is not None
    assert verdict.state is NodeState.UNSCHEDULABLE
    assert verdict.reason == "UntoleratedTaint"
    assert "dedicated=db:NoSchedule" in verdict.message
    assert "spec.tolerations" in verdict.message
    assert unschedulable_reason(n, [tol(key="dedicated", operator="Exists")]) is None


def test_no_execute_blocks_and_prefer_no_schedule_does_not() -> None:
    blocked = unschedulable_reason(node(taints=(Taint("gpu", "", "NoExecute"),)), [])
    assert blocked is not None
    assert "gpu:NoExecute" in blocked.message
    assert unschedulable_reason(node(taints=(Taint("gpu", "", "PreferNoSchedule"),)), []) is None


def test_not_ready_node_is_unschedulable() -> None:
    verdict = unschedulable_reason(node(ready=False), [tol(operator="Exists")])
    assert verdict is not None
    assert (verdict.state, verdict.reason) == (NodeState.UNSCHEDULABLE, "NodeNotReady")
    assert "not Ready" in verdict.message


# ---- node verdicts ----------------------------------------------------------------------------------


def verdict(
    *,
    name: str = "worker-1",
    n: NodeDigest | None = None,
    j: JobDigest | None = None,
    r: ReportDigest | None = None,
    now: datetime = NOW,
    gone: bool = False,
    tolerations: list[Toleration] | None = None,
) -> NodeVerdict:
    return node_verdict(
        name,
        profile="cis",
        node=None if gone else (n or node(name)),
        job=j,
        report=r,
        scan=SCAN,
        tolerations=tolerations or [],
        now=now,
    )


def test_report_of_this_scan_is_done() -> None:
    assert verdict(j=job(complete=True, finished_at=NOW), r=report()).state is NodeState.DONE
    assert verdict(r=report(), gone=True).state is NodeState.DONE, "results count even if the node left"


def test_node_whose_report_name_is_too_long_is_not_audited() -> None:
    fits, too_long = "n" * (253 - len("cis.")), "n" * (254 - len("cis."))
    assert verdict(name=fits).state is NodeState.PENDING
    v = verdict(name=too_long)
    assert (v.state, v.reason) == (NodeState.UNSCHEDULABLE, "ReportNameTooLong")
    assert "profile name of at most 2 characters" in v.message


def test_report_of_an_older_scan_is_not_done() -> None:
    assert verdict(r=report(scan="cis-20260501-000000")).state is NodeState.PENDING
    assert verdict(j=job(), r=report(scan="cis-20260501-000000")).state is NodeState.RUNNING


def test_deadline_exceeded_is_timed_out() -> None:
    v = verdict(j=job(failed_reason="DeadlineExceeded", active=0))
    assert (v.state, v.reason) == (NodeState.TIMED_OUT, "DeadlineExceeded")


def test_failed_job_is_agent_failed() -> None:
    v = verdict(j=job(failed_reason="BackoffLimitExceeded", active=0))
    assert (v.state, v.reason) == (NodeState.FAILED, "AgentFailed")
    assert "BackoffLimitExceeded" in v.message
    assert "boom" in v.message
    assert len(v.message) <= 500


def test_failed_job_on_a_deleted_node_keeps_the_job_reason() -> None:
    v = verdict(j=job(failed_reason="DeadlineExceeded", active=0), gone=True)
    assert v.state is NodeState.TIMED_OUT


def test_node_deleted_while_job_runs() -> None:
    v = verdict(j=job(), gone=True)
    assert (v.state, v.reason) == (NodeState.FAILED, "NodeDeleted")


def test_node_deleted_before_its_job() -> None:
    v = verdict(gone=True)
    assert (v.state, v.reason) == (NodeState.FAILED, "NodeDeleted")


def test_complete_without_report_waits_30_seconds_then_fails() -> None:
    finished = NOW - timedelta(seconds=30)
    assert verdict(j=job(complete=True, finished_at=finished, active=0)).state is NodeState.RUNNING
    late = verdict(j=job(complete=True, finished_at=finished, active=0), now=NOW + timedelta(seconds=1))
    assert (late.state, late.reason) == (NodeState.FAILED, "NoResults")


def test_active_job_is_running() -> None:
    assert verdict(j=job()).state is NodeState.RUNNING


def test_no_job_pending_or_unschedulable() -> None:
    assert verdict().state is NodeState.PENDING
    assert verdict(n=node(ready=False)).state is NodeState.UNSCHEDULABLE
    assert verdict(n=node(taints=(Taint("x", "", "NoSchedule"),))).reason == "UntoleratedTaint"
    tolerant = verdict(
        n=node(taints=(Taint("x", "", "NoSchedule"),)), tolerations=[tol(key="x", operator="Exists")]
    )
    assert tolerant.state is NodeState.PENDING


def test_terminal_states() -> None:
    assert {NodeState.DONE, NodeState.FAILED, NodeState.TIMED_OUT, NodeState.UNSCHEDULABLE} == TERMINAL
    assert NodeState.RUNNING not in TERMINAL
    assert NodeState.PENDING not in TERMINAL


# ---- pods to start ----------------------------------------------------------------------------------


def test_pods_to_start_respects_max_parallel() -> None:
    pending, running, done = (
        NodeVerdict(NodeState.PENDING),
        NodeVerdict(NodeState.RUNNING),
        NodeVerdict(NodeState.DONE),
    )
    verdicts = {f"n{i}": pending for i in range(5)} | {"r1": running, "r2": running, "d": done}
    assert pods_to_start(verdicts, 3) == ["n0"]
    assert pods_to_start(verdicts, 2) == []
    assert pods_to_start(verdicts, 1) == []
    assert pods_to_start(verdicts, 10) == ["n0", "n1", "n2", "n3", "n4"]
    assert pods_to_start({"b": pending, "a": pending, "c": pending}, 2) == ["a", "b"]


# ---- target nodes -----------------------------------------------------------------------------------


def test_target_nodes_selector_roles_and_creation() -> None:
    created = NOW - timedelta(minutes=5)
    nodes = [
        node("cp-1", labels={"node-role.kubernetes.io/control-plane": "", "zone": "a"}),
        node("worker-1", labels={"zone": "a"}),
        node("worker-2", labels={"zone": "b"}),
        node("worker-3", labels={"zone": "a"}, created=NOW),  # joined after the scan started
        node("worker-4", labels={"zone": "a"}, created=created),  # joined the same instant
    ]
    assert target_nodes(nodes, selector=None, roles=[], scan_created=created, jobs={}) == [
        "cp-1",
        "worker-1",
        "worker-2",
        "worker-4",
    ]
    zone_a = LabelSelector.model_validate({"matchLabels": {"zone": "a"}})
    assert target_nodes(nodes, selector=zone_a, roles=["worker"], scan_created=created, jobs={}) == [
        "worker-1",
        "worker-4",
    ]
    assert target_nodes(nodes, selector=None, roles=["control-plane"], scan_created=created, jobs={}) == [
        "cp-1"
    ]
    assert target_nodes(nodes, selector=None, roles=[], scan_created=None, jobs={}) == [
        "cp-1",
        "worker-1",
        "worker-2",
        "worker-3",
        "worker-4",
    ]


def test_target_nodes_keep_nodes_with_a_job() -> None:
    created = NOW - timedelta(minutes=5)
    nodes = [node("worker-1"), node("worker-3", created=NOW)]
    jobs = {"worker-3": job("worker-3"), "gone-1": job("gone-1")}
    assert target_nodes(nodes, selector=None, roles=[], scan_created=created, jobs=jobs) == [
        "gone-1",
        "worker-1",
        "worker-3",
    ]


def test_node_roles() -> None:
    assert node_roles(node(labels={})) == {"worker"}
    assert node_roles(node(labels={"node-role.kubernetes.io/master": ""})) == {"control-plane"}
    assert node_roles(
        node(labels={"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": ""})
    ) == {"control-plane", "etcd"}


# ---- job names --------------------------------------------------------------------------------------


def test_job_name_bounded_deterministic_distinct() -> None:
    longest_scan = "p" * MAX_PROFILE_NAME + "-20260601-120000"
    long_node = "ip-10-0-0-1." + "x" * 200 + ".compute.internal"
    names = {job_name(scan, n) for scan in (SCAN, longest_scan) for n in ("worker-1", "worker-2", long_node)}
    assert len(names) == 6
    for name in names:
        assert len(name) <= 63
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
    assert job_name(SCAN, "worker-1") == job_name(SCAN, "worker-1")
    assert job_name(SCAN, "worker-1") != job_name(SCAN, "worker-10")


@pytest.mark.parametrize("profile_length", [1, 3, 30, 31, 32, MAX_PROFILE_NAME])
def test_audit_pod_names_carry_the_scan_as_the_policy_expects(profile_length: int) -> None:
    """The admission policy's rule 6, in Python: the Pod the Job controller creates for the Job
    (``generateName: <job>-``, cut to 58 characters, plus 5 random ones) starts with ``<scan>-``
    and has min(len(scan) + 17, 63) characters; another scan's Pods never match."""
    scans = [f"{'p' * profile_length}-2026060{d}-120000" for d in (1, 2)]

    def pod(scan: str, node: str) -> str:
        return (job_name(scan, node) + "-")[:58] + "bcd42"

    def policy_admits(scan: str, pod_name: str) -> bool:
        return pod_name.startswith(scan + "-") and len(pod_name) == min(len(scan) + 17, 63)

    if len(scans[0]) <= MAX_PROFILE_NAME:  # a profile named like another profile's scan
        scans.append(f"{scans[0]}-20260603-120000")
    for node_name in ("worker-1", "n" * 253):
        assert policy_admits(scans[0], pod(scans[0], node_name))
        for other in scans[1:]:
            assert not policy_admits(scans[0], pod(other, node_name))
            assert not policy_admits(other, pod(scans[0], node_name))
