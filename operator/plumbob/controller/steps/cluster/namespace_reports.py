"""``NamespaceComplianceReport``: a profile's cluster-level findings, one report per namespace.

Called by :mod:`~plumbob.controller.steps.cluster.cluster_status` after each evaluation of a
profile, with every finding (not the cluster report's capped list). For each namespace holding an
object a rule found at fault or listed as expected, the report named after the profile is created
when missing and its status rewritten when what it says changed (the evaluation time aside); a
report of a namespace with no finding left is deleted. A namespace whose findings and exceptions are
the same as at the last evaluation is skipped without building its status; a status is built through
``NamespaceComplianceReportStatus`` (a misspelt key raises) only when it is written. What was last
written is remembered per term; a new term starts from one LIST of the profile's reports, so a
restart rewrites nothing that is current.

Exceptions are applied here as in the cluster report: a namespaced ``ComplianceException`` covers
findings in its own namespace, a ``ClusterComplianceException`` per its ``namespaces`` and
``resources``. The reports are owned by the profile (garbage-collected with it).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from plumbob.api.common import ResultStatus, Summary
from plumbob.api.namespace_reports import (
    MAX_LISTED_PER_RULE,
    NamespaceComplianceReport,
    NamespaceComplianceReportStatus,
)
from plumbob.api.profiles import ComplianceProfile
from plumbob.api.scans import aggregate_status
from plumbob.benchmarks.tailoring import Tailoring
from plumbob.controller.context import Context, built_status
from plumbob.controller.decisions import excepting
from plumbob.controller.decisions.cluster_results import check_result
from plumbob.controller.decisions.digests import LABEL_MANAGED_BY, MANAGER, ObjectResult
from plumbob.engine.findings import Finding, Status
from plumbob.kube import KubeError, NotFoundError
from plumbob.names import API_VERSION, LABEL_PROFILE

log = logging.getLogger("plumbob.controller")
PLURAL = NamespaceComplianceReport.CRD.plural
MAX_RESULTS = 1000


def _order(finding: Finding, excepted: bool) -> int:
    if finding.status is Status.FAIL and not excepted:
        return 0
    if finding.status is Status.ERROR:
        return 1
    return 2 if excepted else 3


def namespace_status(
    profile: str,
    benchmark: str,
    *,
    findings: Sequence[Finding],
    entries: Iterable[excepting.Entry],
    tailoring: Tailoring | None,
    now: datetime,
) -> dict[str, Any]:
    """The status of one namespace's report from its findings (every one about an object there)."""
    entries = [e for e in entries if now < e.expires_at]
    by_rule: dict[str, list[tuple[Finding, excepting.Entry | None]]] = defaultdict(list)
    for f in findings:
        entry = None
        if f.status is Status.FAIL and f.resource is not None and not f.expected:
            result = ObjectResult(
                f.rule_id,
                "fail",
                f.resource.api_group,
                f.resource.kind,
                f.resource.namespace,
                f.resource.name,
            )
            entry = next(
                (
                    e
                    for e in entries
                    if excepting.covers_object_result(e, profile=profile, result=result, now=now)
                ),
                None,
            )
        by_rule[f.rule_id].append((f, entry))
    rules: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    statuses: list[ResultStatus] = []
    for rule_id in sorted(by_rule):
        group = by_rule[rule_id]
        failing = sum(1 for f, e in group if f.status is Status.FAIL and not f.expected and e is None)
        excepted = sum(1 for _f, e in group if e is not None)
        errors = sum(1 for f, _e in group if f.status is Status.ERROR)
        expected = sum(1 for f, _e in group if f.expected)
        seen = [ResultStatus.FAIL] * bool(failing) + [ResultStatus.EXCEPTED] * bool(excepted)
        seen += [ResultStatus.ERROR] * bool(errors) + [ResultStatus.PASS] * bool(expected)
        status = aggregate_status(seen)
        statuses.append(status)
        rules.append(
            {
                "rule": rule_id,
                "status": status.value,
                "failing": failing,
                "excepted": excepted,
                "errors": errors,
                "expected": expected,
            }
        )
        for f, e in sorted(group, key=lambda fe: (_order(fe[0], fe[1] is not None), str(fe[0].resource)))[
            :MAX_LISTED_PER_RULE
        ]:
            listed = check_result(f, tailoring)
            if e is not None:
                listed["exception"] = e.ref()
            results.append(listed)
    failing_rules = [str(r["rule"]) for r in rules if r["status"] == "fail"]
    return {
        "benchmark": benchmark,
        "auditTime": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "summary": Summary.of(statuses).to_dict(),
        "rules": rules,
        "results": results[:MAX_RESULTS],
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Evaluated",
                "message": f"{len(failing_rules)} rule(s) fail here: {', '.join(failing_rules[:10])}"
                if failing_rules
                else "no rule fails here",
                "lastTransitionTime": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        ],
    }


def _fingerprint(status: dict[str, Any]) -> str:
    """What a status says, without when it was said."""
    said = {k: v for k, v in status.items() if k not in ("auditTime", "conditions")} | {
        "ready": [c.get("message") for c in status.get("conditions") or []]
    }
    return hashlib.sha256(json.dumps(said, sort_keys=True, default=str).encode()).hexdigest()


class NamespaceReports:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._written: dict[str, dict[str, str]] = {}  # profile → namespace → fingerprint
        # profile → namespace → what its status was last built from: built again only when it changed
        self._inputs: dict[str, dict[str, tuple[object, ...]]] = {}

    def _existing(self, profile: str) -> dict[str, str]:
        known = self._written.get(profile)
        if known is None:
            known = {}
            for item in self.ctx.kube.list_objects(PLURAL, labels=f"{LABEL_PROFILE}={profile}"):
                body = item if isinstance(item, dict) else {}
                meta = body.get("metadata") or {}
                if meta.get("name") == profile and meta.get("namespace"):
                    known[meta["namespace"]] = _fingerprint(body.get("status") or {})
            self._written[profile] = known
        return known

    def write(
        self,
        profile: ComplianceProfile,
        benchmark: str,
        *,
        findings: Sequence[Finding],
        entries: Sequence[excepting.Entry],
        tailoring: Tailoring | None,
        now: datetime,
    ) -> None:
        name = profile.metadata.name or ""
        by_ns: dict[str, list[Finding]] = defaultdict(list)
        for f in findings:
            if f.resource is not None and f.resource.namespace:
                by_ns[f.resource.namespace].append(f)
        try:
            existing = self._existing(name)
        except KubeError as exc:
            log.warning("could not list the namespace reports of %s: %s", name, exc)
            return
        inputs = self._inputs.setdefault(name, {})
        basis = (benchmark, repr(tailoring), repr([e for e in entries if now < e.expires_at]))
        for namespace, group in sorted(by_ns.items()):
            built_from = (basis, tuple(group))
            if namespace in existing and inputs.get(namespace) == built_from:
                continue  # the same findings and exceptions: the same status
            status = namespace_status(
                name, benchmark, findings=group, entries=entries, tailoring=tailoring, now=now
            )
            fingerprint = _fingerprint(status)
            if existing.get(namespace) == fingerprint:
                inputs[namespace] = built_from
                continue
            with self.ctx.isolated("namespace report", f"{namespace}/{name}"):
                try:
                    self._put(profile, namespace, status)
                except NotFoundError:
                    continue  # the namespace is gone
                except KubeError as exc:
                    if exc.status == 403 and "being terminated" in str(exc):
                        continue  # the namespace is being deleted: its findings go with it
                    raise
                existing[namespace] = fingerprint
                inputs[namespace] = built_from
        for namespace in sorted(set(existing) - set(by_ns)):
            with self.ctx.isolated("namespace report", f"{namespace}/{name}"):
                self.ctx.kube.delete_object(PLURAL, name, namespace)
                del existing[namespace]
                inputs.pop(namespace, None)

    def _put(self, profile: ComplianceProfile, namespace: str, status: dict[str, Any]) -> None:
        """Create the namespace's report if missing and write ``status``, built through the model
        here (only a status that is written: an evaluation at scale builds hundreds, most of them
        skipped by their inputs or fingerprint)."""
        status = built_status(NamespaceComplianceReportStatus, status)
        name = profile.metadata.name or ""
        body = {
            "apiVersion": API_VERSION,
            "kind": "NamespaceComplianceReport",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {LABEL_PROFILE: name, LABEL_MANAGED_BY: MANAGER},
                "ownerReferences": [
                    {
                        "apiVersion": API_VERSION,
                        "kind": "ComplianceProfile",
                        "name": name,
                        "uid": profile.metadata.uid,
                    }
                ],
            },
            "spec": {"profile": name},
        }
        try:
            self.ctx.kube.create_object(PLURAL, body, namespace)
        except KubeError as exc:
            if exc.status != 409:
                raise
        self.ctx.kube.patch_status(PLURAL, name, status, namespace)

    def forget(self, profiles: Iterable[str]) -> None:
        """Drop what is remembered of profiles that are gone (their reports go with them)."""
        for gone in set(self._written) - set(profiles):
            del self._written[gone]
            self._inputs.pop(gone, None)
