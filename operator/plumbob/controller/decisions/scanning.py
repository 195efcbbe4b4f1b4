"""A scan's progress as a pure function of what exists: nodes, audit Jobs and reports.

Nothing about a scan's progress is remembered in memory: the target nodes are the nodes that
match the profile and existed when the scan was created (plus any node that already has a Job
of the scan); each node's state follows from its Job and its report. So a restarted operator
converges to the same state, and a duplicate trigger creates nothing twice (Job names are
derived from scan and node).

Node states (the first that holds):

- ``Done``: the node's report carries this scan's results;
- ``Failed``/``TimedOut``: its Job failed (``DeadlineExceeded`` → TimedOut), or the node was
  deleted while its audit ran (``NodeDeleted``), or the Job completed without results; once
  recorded in the scan's status this is final for the scan, whether or not the Job still exists
  (a Job deleted by hand or by a TTL must not make the node Pending and start its audit again);
- ``Running``: its Job exists and has not finished;
- ``Unschedulable``: no Job, and the node is NotReady or has a taint the audit does not tolerate,
  or its name is too long for a report name ``<profile>.<node>`` (over 253 characters);
- ``Pending``: waiting for a free slot (at most ``maxParallelNodes`` Jobs run at once).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from plumbob.api.common import LabelSelector, Toleration
from plumbob.api.scans import NodeState
from plumbob.controller.decisions.digests import JobDigest, NodeDigest, ReportDigest, Taint
from plumbob.controller.decisions.excepting import selector_matches
from plumbob.names import report_name

ROLE_LABELS = {
    "control-plane": ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"),
    "etcd": ("node-role.kubernetes.io/etcd",),
}
# The audit must reach control-plane nodes: their standard NoSchedule taints are tolerated by default.
DEFAULT_TOLERATIONS: tuple[Toleration, ...] = (
    Toleration(key="node-role.kubernetes.io/control-plane", operator="Exists", effect="NoSchedule"),
    Toleration(key="node-role.kubernetes.io/master", operator="Exists", effect="NoSchedule"),
)
NO_RESULTS_GRACE = timedelta(seconds=30)
# Outcomes that, once recorded in the scan's status, hold for the rest of the scan.
FINAL_FAILURES = frozenset({NodeState.FAILED, NodeState.TIMED_OUT})


@dataclass(frozen=True)
class NodeVerdict:
    state: NodeState
    reason: str = ""
    message: str = ""


def node_roles(node: NodeDigest) -> set[str]:
    roles = {role for role, keys in ROLE_LABELS.items() if any(k in node.labels for k in keys)}
    return roles or {"worker"}


def selects(node: NodeDigest, selector: LabelSelector | None, roles: Sequence[str]) -> bool:
    if selector is not None and not selector_matches(selector, node.labels):
        return False
    return not roles or bool(node_roles(node) & set(roles))


def tolerated(taint: Taint, tolerations: Iterable[Toleration]) -> bool:
    for t in tolerations:
        if t.effect and t.effect != taint.effect:
            continue
        if t.key is None or t.key == "":
            if t.operator == "Exists":
                return True
            continue
        if t.key != taint.key:
            continue
        if t.operator == "Exists" or (t.value or "") == taint.value:
            return True
    return False


def unschedulable_reason(node: NodeDigest, tolerations: Sequence[Toleration]) -> NodeVerdict | None:
    if not node.ready:
        return NodeVerdict(
            NodeState.UNSCHEDULABLE, "NodeNotReady", "the node is not Ready: no audit Pod can run"
        )
    all_tolerations = (*DEFAULT_TOLERATIONS, *tolerations)
    for taint in node.taints:
        if taint.effect in ("NoSchedule", "NoExecute") and not tolerated(taint, all_tolerations):
            shown = (
                f"{taint.key}={taint.value}:{taint.effect}" if taint.value else f"{taint.key}:{taint.effect}"
            )
            return NodeVerdict(
                NodeState.UNSCHEDULABLE,
                "UntoleratedTaint",
                f"taint {shown} is not tolerated; "
                "add a toleration to the profile's spec.tolerations to audit it",
            )
    return None


def job_name(scan: str, node: str) -> str:
    """``<scan>-<10 hex digits of a hash of scan and node>``: at most 63 characters (a label value).

    The Job controller names the Job's Pod ``<job name>-<5 random characters>``, cut to 58
    characters before the random part, so the Pod's name always starts with ``<scan>-`` (scan
    names have at most 52 characters). The admission policy relies on it: the agent's token names
    its Pod, and a report may only carry the scan that Pod was started for.
    """
    digest = hashlib.sha256(f"{scan}\0{node}".encode()).hexdigest()[:10]
    return f"{scan}-{digest}"


def target_nodes(
    nodes: Iterable[NodeDigest],
    *,
    selector: LabelSelector | None,
    roles: Sequence[str],
    scan_created: datetime | None,
    jobs: Mapping[str, JobDigest],
) -> list[str]:
    targets = {
        n.name
        for n in nodes
        if selects(n, selector, roles)
        and (scan_created is None or n.created is None or n.created <= scan_created)
    }
    return sorted(targets | set(jobs))


def node_verdict(
    node_name: str,
    *,
    profile: str,
    node: NodeDigest | None,
    job: JobDigest | None,
    report: ReportDigest | None,
    scan: str,
    tolerations: Sequence[Toleration],
    now: datetime,
    earlier: NodeVerdict | None = None,
) -> NodeVerdict:
    """The node's state in the scan; ``earlier`` is its problem as last recorded in the scan status."""
    if report is not None and report.scan == scan:
        return NodeVerdict(NodeState.DONE)
    if job is None and earlier is not None and earlier.state in FINAL_FAILURES:
        return earlier
    if job is not None:
        if job.failed_reason == "DeadlineExceeded":
            return NodeVerdict(
                NodeState.TIMED_OUT, "DeadlineExceeded", "the audit did not finish before its deadline"
            )
        if job.failed_reason is not None:
            return NodeVerdict(
                NodeState.FAILED,
                "AgentFailed",
                f"the audit Job failed ({job.failed_reason}): {job.failed_message}"[:500],
            )
        if node is None:
            return NodeVerdict(NodeState.FAILED, "NodeDeleted", "the node was deleted while its audit ran")
        if job.complete and job.finished_at is not None and now - job.finished_at > NO_RESULTS_GRACE:
            return NodeVerdict(NodeState.FAILED, "NoResults", "the audit finished but wrote no results")
        return NodeVerdict(NodeState.RUNNING)  # running, or finished and its report not yet seen
    if node is None:
        return NodeVerdict(NodeState.FAILED, "NodeDeleted", "the node was deleted before its audit ran")
    try:
        report_name(profile, node_name)
    except ValueError as exc:  # its results could not be stored under a name the API server checks
        return NodeVerdict(NodeState.UNSCHEDULABLE, "ReportNameTooLong", str(exc))
    blocked = unschedulable_reason(node, tolerations)
    return blocked or NodeVerdict(NodeState.PENDING)


TERMINAL = frozenset({NodeState.DONE, NodeState.FAILED, NodeState.TIMED_OUT, NodeState.UNSCHEDULABLE})


def pods_to_start(verdicts: Mapping[str, NodeVerdict], max_parallel: int) -> list[str]:
    running = sum(1 for v in verdicts.values() if v.state is NodeState.RUNNING)
    free = max(0, max_parallel - running)
    return [n for n, v in sorted(verdicts.items()) if v.state is NodeState.PENDING][:free]
