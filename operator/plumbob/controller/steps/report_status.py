"""ComplianceReport: the operator's half of a node report (the agent writes ``spec``, we write ``status``).

It decides and writes, for each node report:

- on new raw results (``metadata.generation`` ahead of ``status.observedGeneration``): drift
  against the baseline kept in the status (rules that passed and now fail, and back), a new
  baseline, running drift totals, and one ``ComplianceDrift`` / ``ComplianceRestored`` Event per
  direction on the profile and on the Node;
- always: the results with exceptions applied (summary and which entry excepts which rule), and
  ``ResultsExcepted`` / ``ExceptionLifted`` Events on the profile when that changes without new
  results (an exception list was edited or an entry expired);
- for a report not named ``<profile>.<node>`` (see :attr:`ReportDigest.authoritative`): it is
  never read as results; its status says so (``Stalled``, reason ``MisnamedReport``) and a
  ``MisnamedReport`` Warning on it and on its profile names the report that counts (once per
  report and process).

:class:`ReportStatus` remembers each report's fingerprint (generations, applicable entries, node
labels) when it was last settled, so that a pass at thousands of nodes skips the unchanged ones.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import TypeAdapter, ValidationError

from plumbob.api.common import Condition, ResultStatus, Summary
from plumbob.api.reports import ComplianceReportStatus
from plumbob.controller.context import Context, built_status, conditions, ref, same, stalled
from plumbob.controller.decisions import excepting
from plumbob.controller.decisions.digests import ReportDigest
from plumbob.controller.store import Snapshot
from plumbob.names import API_VERSION, report_name

_CONDITIONS = TypeAdapter(list[Condition])


class ReportStatus:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._settled: dict[str, tuple[object, ...]] = {}  # report name -> fingerprint when last settled
        self._told: set[tuple[str, str]] = set()  # (name, uid) of misnamed reports with an Event

    def reconcile(self, snap: Snapshot, entries: list[excepting.Entry], now: datetime) -> None:
        """Write the status of every node report that changed since it was last settled."""
        self._misnamed(snap, now)
        # A report needs work only when its results, the applicable exception entries or its node's
        # labels changed since it was last settled: at thousands of nodes, every other pass is cheap.
        active = repr([e for e in entries if now < e.expires_at])
        pending: list[tuple[ReportDigest, tuple[object, ...]]] = []
        for report in snap.reports.values():
            if report.node is None:
                continue
            node = snap.nodes.get(report.node)
            labels = tuple(sorted(node.labels.items())) if node else ()
            fingerprint = (report.generation, report.observed_generation, active, labels)
            if self._settled.get(report.name) != fingerprint:
                pending.append((report, fingerprint))

        def settle(item: tuple[ReportDigest, tuple[object, ...]]) -> None:
            report, fingerprint = item
            with self.ctx.isolated("report", report.name):
                if self._write(snap, report, excepting.exceptions_applied(report, snap.nodes, entries, now)):
                    self._settled[report.name] = fingerprint

        self.ctx.in_parallel(settle, pending)

    def _misnamed(self, snap: Snapshot, now: datetime) -> None:
        """Mark each report not named ``<profile>.<node>`` as not counted, and say so once."""
        self._told &= {(r.name, r.uid) for r in snap.misnamed_reports}
        for report in snap.misnamed_reports:
            subject = f"node {report.node}" if report.node is not None else "the cluster-level rules"
            try:
                counted = f"the report named after them, {report_name(report.profile, report.node)}"
            except ValueError as exc:
                counted = f"a report named after them, and no name fits ({exc})"
            message = (
                f"not counted: the results of profile {report.profile} on {subject} are read only from "
                f"{counted}; this one is named {report.name}"
            )
            try:
                current = _CONDITIONS.validate_python(report.status.get("conditions") or [])
            except ValidationError:
                current = []
            wanted = stalled("MisnamedReport", message, "never read: delete it")
            self.ctx.patch(
                "compliancereports",
                report.name,
                report.status,
                built_status(
                    ComplianceReportStatus,
                    {"conditions": conditions(current, report.generation, now, wanted)},
                ),
            )
            if (report.name, report.uid) in self._told:
                continue
            self._told.add((report.name, report.uid))
            itself = {
                "apiVersion": API_VERSION,
                "kind": "ComplianceReport",
                "name": report.name,
                "uid": report.uid,
            }
            self.ctx.event(itself, "Warning", "MisnamedReport", message)
            profile = snap.profiles.get(report.profile)
            if profile is not None:
                self.ctx.event(ref(profile), "Warning", "MisnamedReport", message)

    def _write(self, snap: Snapshot, report: ReportDigest, applied: excepting.Applied) -> bool:
        """Write the report's status if it differs; whether the report is now settled."""
        status = report.status
        fresh = report.observed_generation != report.generation
        baseline = status.get("baseline") or {}
        drift = dict(status.get("drift") or {})
        if fresh:
            before_pass, before_fail = set(baseline.get("passing", [])), set(baseline.get("failing", []))
            regressions = sorted(r for r, s in report.results.items() if s == "fail" and r in before_pass)
            restorations = sorted(r for r, s in report.results.items() if s == "pass" and r in before_fail)
            drift = {
                "scan": report.scan,
                "regressions": regressions,
                "restorations": restorations,
                "regressionTotal": int(drift.get("regressionTotal", 0)) + len(regressions),
                "restorationTotal": int(drift.get("restorationTotal", 0)) + len(restorations),
            }
            self._drift_events(snap, report, regressions, restorations)
        excepted = [
            {"rule": rule, "exception": entry.ref()} for rule, entry in sorted(applied.excepted.items())
        ]
        summary = Summary.of([ResultStatus(s) for s in applied.effective.values()]).to_dict()
        new = {
            "observedGeneration": report.generation,
            "baseline": {
                "passing": sorted(r for r, s in report.results.items() if s == "pass"),
                "failing": sorted(r for r, s in report.results.items() if s == "fail"),
            },
            "drift": drift,
            "summary": summary,
            "exceptions": excepted,
        }
        if not fresh:
            new.pop("baseline")
            new.pop("drift")
        new = built_status(ComplianceReportStatus, new)
        if fresh or not same(status, new):
            old_excepted = {e["rule"] for e in status.get("exceptions") or []}
            newly = sorted(set(applied.excepted) - old_excepted)
            lifted = sorted(old_excepted - set(applied.excepted))
            if self.ctx.patch("compliancereports", report.name, None if fresh else status, new):
                if not fresh and (newly or lifted):
                    self._exception_events(snap, report, newly, lifted)
                return not fresh  # after a fresh write, settle on the next pass (observedGeneration moved)
            return False
        return True

    def _drift_events(
        self, snap: Snapshot, report: ReportDigest, regressions: list[str], restorations: list[str]
    ) -> None:
        """One Event per direction on the profile and on the Node, listing the rules."""
        profile = snap.profiles.get(report.profile)
        node = snap.nodes.get(report.node or "")
        targets = []
        if profile is not None:
            targets.append(ref(profile))
        if node is not None:
            targets.append({"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": node.uid})
        for rules, type_, reason, verb in (
            (regressions, "Warning", "ComplianceDrift", "now fail (passed before)"),
            (restorations, "Normal", "ComplianceRestored", "pass again (failed before)"),
        ):
            if not rules:
                continue
            shown = ", ".join(rules[:20]) + (f" and {len(rules) - 20} more" if len(rules) > 20 else "")
            message = f"node {report.node}, profile {report.profile}: {len(rules)} rule(s) {verb}: {shown}"
            for target in targets:
                self.ctx.event(target, type_, reason, message)

    def _exception_events(
        self, snap: Snapshot, report: ReportDigest, newly: list[str], lifted: list[str]
    ) -> None:
        """On the profile: which results became excepted, which are no longer excepted."""
        profile = snap.profiles.get(report.profile)
        if profile is None:
            return
        if newly:
            self.ctx.event(
                ref(profile),
                "Normal",
                "ResultsExcepted",
                f"node {report.node}: {', '.join(newly[:20])} now excepted",
            )
        if lifted:
            self.ctx.event(
                ref(profile),
                "Warning",
                "ExceptionLifted",
                f"node {report.node}: {', '.join(lifted[:20])} no longer excepted (fail again)",
            )
