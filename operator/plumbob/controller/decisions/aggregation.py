"""Per-rule results across the nodes of a scan, with exceptions applied, their summary and drift.

Pure: the node reports' digests, the Nodes (for exception entries scoped by node labels), the
entries and ``now`` in; the ``rules``, ``summary`` and ``drift`` of a scan's status out (the
scan step writes them at completion, the profile step reads its latest scan's through it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from plumbob.api.common import MAX_NODE_NAMES, ResultStatus, Summary, rule_order
from plumbob.api.scans import aggregate_status
from plumbob.controller.decisions import excepting
from plumbob.controller.decisions.digests import NodeDigest, ReportDigest


def aggregate(
    reports: Iterable[ReportDigest],
    nodes: Mapping[str, NodeDigest],
    entries: list[excepting.Entry],
    now: datetime,
) -> dict[str, Any]:
    """Per-rule results of the reports with exceptions applied, their summary, and their drift."""
    per_rule: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    severities: dict[str, str] = {}
    regressions: dict[str, list[str]] = defaultdict(list)
    restorations: dict[str, list[str]] = defaultdict(list)
    for report in reports:
        applied = excepting.exceptions_applied(report, nodes, entries, now)
        for rule, status in applied.effective.items():
            per_rule[rule][status].append(report.node or "")
        severities.update(report.severities)
        drift = report.status.get("drift") or {}
        if drift.get("scan") == report.scan:
            for rule in drift.get("regressions", []):
                regressions[rule].append(report.node or "")
            for rule in drift.get("restorations", []):
                restorations[rule].append(report.node or "")
    rules = []
    statuses = []
    for rule in sorted(per_rule, key=rule_order):
        by_status = per_rule[rule]
        agg = aggregate_status([ResultStatus(s) for s in by_status])
        statuses.append(agg)
        entry: dict[str, Any] = {
            "id": rule,
            "status": agg.value,
            "passCount": len(by_status.get("pass", [])),
            "failCount": len(by_status.get("fail", [])),
            "errorCount": len(by_status.get("error", [])),
            "exceptedCount": len(by_status.get("excepted", [])),
            "manualCount": len(by_status.get("manual", [])),
            "notApplicableCount": len(by_status.get("not-applicable", [])),
            "failingNodes": sorted(by_status.get("fail", []))[:MAX_NODE_NAMES],
        }
        if severities.get(rule):
            entry["severity"] = severities[rule]
        rules.append(entry)

    def entries_of(changes: dict[str, list[str]]) -> list[dict[str, Any]]:
        return [
            {"rule": r, "count": len(n), "nodes": sorted(n)[:MAX_NODE_NAMES]}
            for r, n in sorted(changes.items(), key=lambda kv: rule_order(kv[0]))
        ]

    return {
        "rules": rules,
        "summary": Summary.of(statuses).to_dict(),
        "drift": {
            "regressionCount": sum(len(n) for n in regressions.values()),
            "restorationCount": sum(len(n) for n in restorations.values()),
            "regressions": entries_of(regressions),
            "restorations": entries_of(restorations),
        },
    }
