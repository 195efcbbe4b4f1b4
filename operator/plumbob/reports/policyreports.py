"""A ``ComplianceReport`` as PolicyReports (``wgpolicyk8s.io/v1alpha2``) or OpenReports.

OpenReports are ``openreports.io/v1alpha1``.

Pure: the report model in, object bodies out. The controller decides when to write them
(:mod:`plumbob.controller.steps.policy_reports`). What goes where:

- a node's report → one cluster-scoped ``ClusterPolicyReport`` / ``ClusterReport`` whose
  ``scope`` is the Node;
- the profile's cluster-level report → one ``PolicyReport`` / ``Report`` per namespace for the
  findings about namespaced objects (in that namespace), and one cluster-scoped report for the
  rest (cluster-scoped objects, results about no object).

Each is named ``plumbob-<ComplianceReport name>`` and owned by the ``ComplianceReport`` (which
is owned by its profile), so deleting the profile garbage-collects them.

Status mapping (the target enum is ``pass | fail | warn | error | skip``): pass → pass, fail →
fail, error → error, manual → warn (a person must look), excepted → skip (an accepted deviation;
the exception is in the properties), not-applicable → skip. The plumbob status is always kept in
``properties.status``; the CIS id is ``properties.index`` (as the OpenReports CIS sample does).
Size is bounded: at most :data:`MAX_RESULTS` results, property values cut to
:data:`MAX_PROPERTY`, evidence only for results that need it (fail, error, manual, excepted).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from plumbob.api.common import ResultStatus
from plumbob.api.reports import CheckResult, ComplianceReport
from plumbob.benchmarks.rules import Benchmark
from plumbob.names import LABEL_PROFILE

SOURCE = "plumbob"
MAX_RESULTS = 500
MAX_PROPERTY = 512
MAX_MESSAGE = 1024
ANNOTATION_FINGERPRINT = "plumbob.dev/source-fingerprint"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"

STATUS_MAP = {
    ResultStatus.PASS: "pass",
    ResultStatus.FAIL: "fail",
    ResultStatus.ERROR: "error",
    ResultStatus.MANUAL: "warn",
    ResultStatus.EXCEPTED: "skip",
    ResultStatus.NOT_APPLICABLE: "skip",
}
WITH_EVIDENCE = {ResultStatus.FAIL, ResultStatus.ERROR, ResultStatus.MANUAL, ResultStatus.EXCEPTED}


@dataclass(frozen=True)
class Flavour:
    """One of the two report APIs: group/version and its namespaced and cluster kinds."""

    group: str
    version: str
    kind: str
    plural: str
    cluster_kind: str
    cluster_plural: str
    top_level_source: bool  # OpenReports also has ``source`` at the top level

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


WGPOLICY = Flavour(
    "wgpolicyk8s.io",
    "v1alpha2",
    "PolicyReport",
    "policyreports",
    "ClusterPolicyReport",
    "clusterpolicyreports",
    False,
)
OPENREPORTS = Flavour(
    "openreports.io", "v1alpha1", "Report", "reports", "ClusterReport", "clusterreports", True
)
FLAVOURS = (WGPOLICY, OPENREPORTS)


def _cut(text: str, limit: int = MAX_PROPERTY) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fingerprint(report: ComplianceReport) -> str:
    """Changes whenever anything exported from ``report`` changes (results or the operator's status)."""
    body = {
        "uid": report.metadata.uid,
        "spec": report.spec.to_dict(),
        "status": report.status.to_dict() if report.status else None,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]


def result_entry(
    report: ComplianceReport, result: CheckResult, benchmark: Benchmark | None, when: datetime
) -> dict[str, Any]:
    status = report.effective_status(result)
    rule = next((r for r in benchmark.rules if r.id == result.id), None) if benchmark else None
    properties = {
        "index": result.id,
        "benchmark": report.spec.benchmark,
        "profile": report.spec.profile,
        "scan": report.spec.scan,
        "status": status.value,
    }
    if report.spec.node_name:
        properties["node"] = report.spec.node_name
    if result.reason:
        properties["reason"] = _cut(result.reason)
    if status in WITH_EVIDENCE and result.evidence:
        lines = []
        for e in result.evidence:
            found = "(nothing found)" if e.found is None else e.found
            expected = f"; expected {e.expected}" if e.expected is not None else ""
            lines.append(f"{e.location} [{e.source.value}]: {found}{expected}")
        properties["evidence"] = _cut("\n".join(lines))
    exception = report.exception_for(result)
    if status is ResultStatus.EXCEPTED and exception is not None:
        where = f"{exception.namespace}/" if exception.namespace else ""
        properties |= {
            "exception": f"{exception.kind} {where}{exception.name}#{exception.entry}",
            "exceptionReason": _cut(exception.reason),
            "exceptionOwner": _cut(exception.owner),
            "exceptionExpires": exception.expires,
        }
        if exception.ticket:
            properties["exceptionTicket"] = _cut(exception.ticket)
    title = result.title or (rule.title if rule else "")
    entry: dict[str, Any] = {
        "source": SOURCE,
        "policy": f"{report.spec.benchmark or 'benchmark'}/{result.id}",
        "rule": result.id,
        "category": _cut(_category(result.id, benchmark), 256),
        "severity": result.severity.value,
        "result": STATUS_MAP[status],
        "scored": bool(rule.scored) if rule else status is not ResultStatus.MANUAL,
        "timestamp": {"seconds": int(when.timestamp()), "nanos": 0},
        "message": _cut(
            f"{result.id} {title}".strip() + (f": {result.reason}" if result.reason else ""), MAX_MESSAGE
        ),
        "properties": properties,
    }
    if result.resource is not None:
        res = result.resource
        ref = {"kind": res.kind, "name": res.name}
        if res.api_group:  # the finding names no version: the group goes into the properties
            properties["apiGroup"] = res.api_group
        else:
            ref["apiVersion"] = "v1"
        if res.namespace:
            ref["namespace"] = res.namespace
        entry["resources"] = [ref]
    return entry


def _category(rule_id: str, benchmark: Benchmark | None) -> str:
    if benchmark is None:
        return ""
    parts = rule_id.split(".")
    for n in range(len(parts) - 1, 0, -1):
        title = benchmark.sections.get(".".join(parts[:n]))
        if title:
            return title
    return ""


def _summary(results: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts = {"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0}
    for r in results:
        counts[r["result"]] += 1
    return counts


def export_name(report: ComplianceReport) -> str:
    name = f"plumbob-{report.metadata.name}"
    if len(name) <= 253:
        return name
    return f"{name[:242].rstrip('.-')}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def policy_reports(
    report: ComplianceReport, flavour: Flavour, benchmark: Benchmark | None, now: datetime
) -> list[dict[str, Any]]:
    """The bodies to write for ``report`` in ``flavour`` (namespaced ones carry ``metadata.namespace``)."""
    if not report.metadata.uid:
        raise ValueError(f"report {report.metadata.name!r} has no uid")
    when = report.spec.audit_time or now
    groups: dict[str | None, list[dict[str, Any]]] = {}
    for result in report.spec.results:
        namespace = result.resource.namespace if result.resource is not None else None
        groups.setdefault(namespace, []).append(result_entry(report, result, benchmark, when))
    if report.spec.node_name is not None or not groups:
        groups = {None: groups.get(None, [])}
    fp = fingerprint(report)
    name = export_name(report)
    out = []
    for namespace, results in sorted(groups.items(), key=lambda kv: kv[0] or ""):
        truncated = len(results) > MAX_RESULTS
        kept = sorted(results, key=lambda r: ("fail", "error", "warn", "skip", "pass").index(r["result"]))
        kept = kept[:MAX_RESULTS]
        metadata: dict[str, Any] = {
            "name": name,
            "labels": {LABEL_MANAGED_BY: SOURCE, LABEL_PROFILE: report.spec.profile},
            "annotations": {ANNOTATION_FINGERPRINT: fp},
            "ownerReferences": [
                {
                    "apiVersion": report.api_version,
                    "kind": report.kind,
                    "name": report.metadata.name,
                    "uid": report.metadata.uid,
                    "controller": True,
                }
            ],
        }
        body: dict[str, Any] = {
            "apiVersion": flavour.api_version,
            "kind": flavour.kind if namespace else flavour.cluster_kind,
            "metadata": metadata,
            "summary": _summary(kept),
            "results": kept,
        }
        if namespace:
            metadata["namespace"] = namespace
        if report.spec.node_name is not None:
            body["scope"] = {"apiVersion": "v1", "kind": "Node", "name": report.spec.node_name}
        if flavour.top_level_source:
            body["source"] = SOURCE
            body["configuration"] = {"limits": {"maxResults": MAX_RESULTS}}
        if truncated:
            metadata["annotations"]["plumbob.dev/truncated"] = (
                f"{len(results) - MAX_RESULTS} results left out"
            )
        out.append(body)
    return out
