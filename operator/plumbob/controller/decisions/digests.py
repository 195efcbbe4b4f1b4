"""Compact, frozen views of the objects the controller watches.

The operator keeps one digest per watched object in memory, never the whole body: a report's
evidence stays in the API server, and the controller holds only ``rule id → status``. This is what
keeps memory flat at thousands of nodes. Digests are built from raw API dicts at the edge
(:func:`node_digest`, :func:`job_digest`, :func:`report_digest`); everything past the edge is pure.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from plumbob.api.common import RULE_ID, ResultStatus, Severity
from plumbob.names import LABEL_NODE, LABEL_PROFILE, LABEL_SCAN, report_name

ANNOTATION_NODE = "plumbob.dev/node-name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "plumbob"

_RULE_ID = re.compile(RULE_ID)
# What an agent may write into a report's spec: a raw result is never "excepted" (that is applied later).
_RESULT_STATUSES = frozenset(s.value for s in ResultStatus) - {ResultStatus.EXCEPTED.value}
_SEVERITIES = frozenset({"", *(s.value for s in Severity)})


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str


@dataclass(frozen=True)
class NodeDigest:
    name: str
    uid: str
    labels: dict[str, str]
    taints: tuple[Taint, ...]
    ready: bool
    created: datetime | None
    # what the node says of itself: platform detection and Kubernetes CVE exposure read these
    provider_id: str = ""
    kubelet_version: str = ""
    kube_proxy_version: str = ""


@dataclass(frozen=True)
class JobDigest:
    name: str
    namespace: str
    scan: str
    node: str
    active: int
    succeeded: int
    failed: int
    complete: bool
    failed_reason: str | None  # DeadlineExceeded, BackoffLimitExceeded, ... when the Job failed
    failed_message: str = ""
    finished_at: datetime | None = None


@dataclass(frozen=True)
class ObjectResult:
    """One result of the cluster-level report about one API object (``spec.results[].resource``)."""

    rule: str
    status: str
    api_group: str
    kind: str
    namespace: str | None
    name: str


@dataclass(frozen=True)
class ReportDigest:
    """A node report: raw results of the last audit and what the operator made of them."""

    name: str
    uid: str
    profile: str
    node: str | None
    scan: str
    generation: int
    results: dict[str, str]  # rule id -> raw status as audited (spec)
    severities: dict[str, str]
    observed_generation: int | None
    status: dict[str, Any] = field(default_factory=dict)
    objects: tuple[ObjectResult, ...] = ()  # cluster-level report: the results naming an object

    @functools.cached_property  # read for every report at every snapshot: decided once per digest
    def authoritative(self) -> bool:
        """Whether this is *the* report of its profile and node: the one named ``<profile>.<node>``.

        Object names are unique, so no two reports are; any other report about the same profile
        and node (an admin's copy, a leftover) is never read as the node's results.
        """
        try:
            return self.name == report_name(self.profile, self.node)
        except ValueError:  # no name fits: no report of this profile and node is authoritative
            return False


def node_digest(body: dict[str, Any]) -> NodeDigest:
    meta, spec, status = body.get("metadata", {}), body.get("spec") or {}, body.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    taints = tuple(
        Taint(str(t.get("key", "")), str(t.get("value") or ""), str(t.get("effect", "")))
        for t in spec.get("taints") or []
    )
    return NodeDigest(
        name=meta["name"],
        uid=meta.get("uid", ""),
        labels=dict(meta.get("labels") or {}),
        taints=taints,
        ready=ready,
        created=parse_time(meta.get("creationTimestamp")),
        provider_id=str(spec.get("providerID") or ""),
        kubelet_version=str((status.get("nodeInfo") or {}).get("kubeletVersion") or ""),
        kube_proxy_version=str((status.get("nodeInfo") or {}).get("kubeProxyVersion") or ""),
    )


def job_digest(body: dict[str, Any]) -> JobDigest | None:
    meta, status = body.get("metadata", {}), body.get("status") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    scan = labels.get(LABEL_SCAN)
    node = annotations.get(ANNOTATION_NODE) or labels.get(LABEL_NODE)
    if not scan or not node:
        return None
    complete, failed_reason, failed_message = False, None, ""
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            complete = True
        elif cond.get("type") == "Failed":
            failed_reason = str(cond.get("reason") or "Failed")
            failed_message = str(cond.get("message") or "")
    return JobDigest(
        name=meta["name"],
        namespace=meta.get("namespace", ""),
        scan=scan,
        node=node,
        active=int(status.get("active") or 0),
        succeeded=int(status.get("succeeded") or 0),
        failed=int(status.get("failed") or 0),
        complete=complete,
        failed_reason=failed_reason,
        failed_message=failed_message,
        finished_at=parse_time(status.get("completionTime")),
    )


def report_digest(body: dict[str, Any]) -> ReportDigest | None:
    meta, spec = body.get("metadata", {}), body.get("spec") or {}
    profile = spec.get("profile") or (meta.get("labels") or {}).get(LABEL_PROFILE)
    if not profile:
        return None
    results: dict[str, str] = {}
    severities: dict[str, str] = {}
    objects: list[ObjectResult] = []
    raw_results = spec.get("results") or []
    if not isinstance(raw_results, list):
        raise ValueError("spec.results: not a list")
    for i, r in enumerate(raw_results):
        if not isinstance(r, dict):
            raise ValueError(f"spec.results[{i}]: not an object")
        rule, result, severity = r.get("id"), r.get("status"), r.get("severity") or ""
        if not isinstance(rule, str) or not _RULE_ID.match(rule):
            raise ValueError(f"spec.results[{i}].id: {rule!r} is not a rule id")
        if result not in _RESULT_STATUSES:
            raise ValueError(f"spec.results[{i}].status: {result!r} is not one of {sorted(_RESULT_STATUSES)}")
        if severity not in _SEVERITIES:
            raise ValueError(f"spec.results[{i}].severity: {severity!r} is not one of {sorted(_SEVERITIES)}")
        severities[rule] = severity
        resource = r.get("resource")
        if resource:  # cluster-level results are keyed by object
            if not isinstance(resource, dict) or not resource.get("kind") or not resource.get("name"):
                raise ValueError(f"spec.results[{i}].resource: needs a kind and a name")
            objects.append(
                ObjectResult(
                    rule=rule,
                    status=result,
                    api_group=str(resource.get("apiGroup") or ""),
                    kind=str(resource["kind"]),
                    namespace=str(resource["namespace"]) if resource.get("namespace") else None,
                    name=str(resource["name"]),
                )
            )
        else:
            results[rule] = result
    status = body.get("status") or {}
    if not isinstance(status, dict):
        raise ValueError("status: not an object")
    return ReportDigest(
        name=meta["name"],
        uid=meta.get("uid", ""),
        profile=str(profile),
        node=spec.get("nodeName"),
        scan=str(spec.get("scan", "")),
        generation=int(meta.get("generation") or 1),
        results=results,
        severities=severities,
        observed_generation=status.get("observedGeneration"),
        status=dict(status),
        objects=tuple(objects),
    )
