"""A cluster-level finding as a report result: the shape both the profile's cluster report and the
namespace reports (:mod:`~plumbob.controller.steps.cluster.namespace_reports`) write, with the size caps."""

from __future__ import annotations

from typing import Any

from plumbob.benchmarks.tailoring import Tailoring
from plumbob.engine.findings import Finding, Status

MAX_LISTED = 25  # failing objects listed per rule
MAX_EXPECTED = 10  # expected holders listed per rule
MAX_EVIDENCE, MAX_TEXT = 8, 512


def clip(text: str | None, limit: int = MAX_TEXT) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def check_result(finding: Finding, tailoring: Tailoring | None) -> dict[str, Any]:
    """A finding as a ``spec.results[]`` entry of the cluster-level report."""
    status, reason = finding.status.value, finding.reason or ""
    rationale = tailoring.manual_rationale(finding.rule_id) if tailoring else None
    if rationale is not None and finding.status is not Status.NOT_APPLICABLE:
        status, reason = Status.MANUAL.value, f"tailored to manual by the profile: {rationale}"
    elif finding.expected:
        reason = f"expected: {finding.expected} — {reason}"
    out: dict[str, Any] = {
        "id": finding.rule_id,
        "title": clip(finding.title, 256),
        "severity": finding.severity,
        "status": status,
        "evidence": [
            {
                "source": "api",
                "location": clip(ev.subject + (f" ({ev.location})" if ev.location else "")),
                **({"found": clip(ev.found)} if ev.found is not None else {}),
                **({"expected": clip(ev.expected)} if ev.expected is not None else {}),
            }
            for ev in finding.evidence[:MAX_EVIDENCE]
        ],
    }
    if reason:
        out["reason"] = clip(reason, 1024)
    if finding.resource is not None:
        ref = finding.resource
        out["resource"] = {"apiGroup": ref.api_group, "kind": ref.kind, "name": ref.name}
        if ref.namespace:
            out["resource"]["namespace"] = ref.namespace
    return out
