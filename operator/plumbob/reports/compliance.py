"""The compliance of one profile as people read it: pure views built from the stored objects.

:func:`profile_view` turns what the API holds about a profile (the profile, its scans, its
reports with their evidence, the exception lists, the benchmark's rule data) into a
:class:`ProfileView`: scope, benchmark, every control with its status across nodes and the
evidence behind it, the exceptions that apply, the scan history. The auditor's report
(:mod:`plumbob.reports.auditor`), ``plumbob status`` and the web dashboard all render this one
view, so they cannot disagree. No I/O and no clock here: the caller passes what it read and when.

Nodes that share a rule's status, reason and evidence are grouped into one line, so a control
over a thousand identical nodes stays one line plus the odd ones out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from plumbob.api import ClusterComplianceException, ComplianceException, ComplianceProfile
from plumbob.api.common import ResultStatus, Summary
from plumbob.api.reports import CheckResult, ComplianceReport, ExceptionRef
from plumbob.api.scans import ComplianceScan, RuleResult, ScanPhase, aggregate_status
from plumbob.benchmarks.rules import Benchmark, Rule

CLUSTER = "(cluster)"  # stands for the cluster-level report in node lists


@dataclass(frozen=True)
class EvidenceLine:
    source: str
    location: str
    found: str | None
    expected: str | None

    def text(self) -> str:
        found = "(nothing found)" if self.found is None else self.found
        expected = f"; expected {self.expected}" if self.expected is not None else ""
        where = f"{self.location} " if self.location else ""
        return f"{where}[{self.source}]: {found}{expected}"


@dataclass(frozen=True)
class NodeGroup:
    """Nodes (or objects, for cluster-level rules) on which a rule had the same outcome."""

    status: str
    nodes: tuple[str, ...]
    reason: str
    evidence: tuple[EvidenceLine, ...]
    exception: ExceptionRef | None = None


@dataclass(frozen=True)
class ControlView:
    id: str
    title: str
    section: str
    section_title: str
    severity: str
    scored: bool
    status: str
    counts: dict[str, int]
    remediation: str
    guidance: str
    groups: tuple[NodeGroup, ...]

    @property
    def failing_nodes(self) -> int:
        return self.counts.get(ResultStatus.FAIL.value, 0)


@dataclass(frozen=True)
class NodeView:
    name: str
    scan: str
    audit_time: datetime | None
    summary: Summary
    score: float | None
    regressions: tuple[str, ...]
    restorations: tuple[str, ...]
    results: tuple[tuple[CheckResult, str, ExceptionRef | None], ...]  # result, effective status, exception


@dataclass(frozen=True)
class ExceptionView:
    kind: str
    namespace: str | None
    name: str
    entry: int
    rules: tuple[str, ...]
    reason: str
    owner: str
    ticket: str | None
    expires: str
    expires_at: datetime
    state: str  # active | unused | expired (from the list's status; "unknown" before the operator saw it)
    profiles: tuple[str, ...] = ()  # empty: every profile

    def seconds_left(self, now: datetime) -> float:
        return (self.expires_at - now).total_seconds()


@dataclass(frozen=True)
class ScanView:
    name: str
    trigger: str
    schedule: str | None
    phase: str
    start_time: datetime | None
    completion_time: datetime | None
    nodes_total: int
    nodes_done: int
    nodes_failed: int
    summary: Summary | None
    regressions: int
    restorations: int
    regressed_rules: tuple[str, ...]
    restored_rules: tuple[str, ...]
    problems: tuple[tuple[str, str, str], ...]  # node, state, reason

    @property
    def duration_seconds(self) -> float | None:
        if self.start_time is None or self.completion_time is None:
            return None
        return (self.completion_time - self.start_time).total_seconds()


@dataclass(frozen=True)
class ProfileView:
    name: str
    benchmark_id: str
    benchmark_title: str
    benchmark_version: str
    platform: str
    kubernetes_version: str
    scope: dict[str, str]
    tailoring: dict[str, list[str]]
    summary: Summary
    score: float | None
    scan: ScanView | None
    history: tuple[ScanView, ...]
    controls: tuple[ControlView, ...]
    nodes: tuple[NodeView, ...]
    exceptions: tuple[ExceptionView, ...]
    generated_at: datetime
    generated_by: str
    ready: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def control(self, rule_id: str) -> ControlView | None:
        return next((c for c in self.controls if c.id == rule_id), None)

    def node(self, name: str) -> NodeView | None:
        return next((n for n in self.nodes if n.name == name), None)


def _evidence(result: CheckResult) -> tuple[EvidenceLine, ...]:
    return tuple(EvidenceLine(e.source.value, e.location, e.found, e.expected) for e in result.evidence)


def _scan_view(scan: ComplianceScan) -> ScanView:
    st = scan.status
    nodes = st.nodes if st else None
    drift = st.drift if st else None
    return ScanView(
        name=scan.metadata.name,
        trigger=scan.spec.trigger.value,
        schedule=scan.spec.schedule,
        phase=(st.phase.value if st and st.phase else ScanPhase.PENDING.value),
        start_time=st.start_time if st else None,
        completion_time=st.completion_time if st else None,
        nodes_total=nodes.total if nodes else 0,
        nodes_done=nodes.done if nodes else 0,
        nodes_failed=(nodes.failed + nodes.timed_out) if nodes else 0,
        summary=st.summary if st else None,
        regressions=drift.regression_count if drift else 0,
        restorations=drift.restoration_count if drift else 0,
        regressed_rules=tuple(d.rule for d in drift.regressions) if drift else (),
        restored_rules=tuple(d.rule for d in drift.restorations) if drift else (),
        problems=tuple((p.node, p.state.value, p.reason) for p in nodes.problems) if nodes else (),
    )


def exception_views(
    lists: Iterable[ClusterComplianceException | ComplianceException], profile: str | None = None
) -> list[ExceptionView]:
    """Entries of the lists (those that can apply to ``profile``, when given), soonest expiry first."""
    out = []
    for exc in lists:
        states = {e.index: e.state.value for e in (exc.status.entries if exc.status else [])}
        for i, entry in enumerate(exc.spec.entries):
            if profile is not None and entry.profiles and profile not in entry.profiles:
                continue
            out.append(
                ExceptionView(
                    kind=exc.kind,
                    namespace=exc.metadata.namespace,
                    name=exc.metadata.name,
                    entry=i,
                    rules=tuple(entry.rules),
                    reason=entry.reason,
                    owner=entry.owner,
                    ticket=entry.ticket,
                    expires=entry.expires,
                    expires_at=entry.expiry(),
                    state=states.get(i, "unknown"),
                    profiles=tuple(entry.profiles),
                )
            )
    return sorted(out, key=lambda e: (e.expires_at, e.kind, e.namespace or "", e.name, e.entry))


def _node_view(report: ComplianceReport) -> NodeView:
    results = tuple(
        (r, report.effective_status(r).value, report.exception_for(r)) for r in report.spec.results
    )
    summary = Summary.of([ResultStatus(s) for _, s, _ in results])
    drift = report.status.drift if report.status else None
    return NodeView(
        name=report.spec.node_name or CLUSTER,
        scan=report.spec.scan,
        audit_time=report.spec.audit_time,
        summary=summary,
        score=summary.score(),
        regressions=tuple(drift.regressions) if drift else (),
        restorations=tuple(drift.restorations) if drift else (),
        results=results,
    )


def _control(
    rule_id: str,
    outcomes: list[tuple[str, CheckResult, str, ExceptionRef | None]],
    rule: Rule | None,
    sections: dict[str, str],
) -> ControlView:
    groups: dict[tuple[object, ...], list[str]] = {}
    firsts: dict[tuple[object, ...], tuple[str, CheckResult, ExceptionRef | None]] = {}
    for node, result, status, exception in outcomes:
        where = node if result.resource is None else _resource_name(result)
        key = (status, result.reason, _evidence(result), exception)
        groups.setdefault(key, []).append(where)
        firsts.setdefault(key, (status, result, exception))
    order = [ResultStatus.FAIL, ResultStatus.ERROR, ResultStatus.EXCEPTED, ResultStatus.MANUAL]
    rank = {s.value: i for i, s in enumerate(order)}
    node_groups = sorted(
        (
            NodeGroup(
                status=firsts[key][0],
                nodes=tuple(sorted(nodes)),
                reason=firsts[key][1].reason,
                evidence=_evidence(firsts[key][1]),
                exception=firsts[key][2],
            )
            for key, nodes in groups.items()
        ),
        key=lambda g: (rank.get(g.status, len(order)), -len(g.nodes), g.nodes),
    )
    statuses = [ResultStatus(s) for _, _, s, _ in outcomes]
    counts = {s.value: 0 for s in ResultStatus}
    for s in statuses:
        counts[s.value] += 1
    first = outcomes[0][1]
    section = rule.section if rule else rule_id.rsplit(".", 1)[0]
    return ControlView(
        id=rule_id,
        title=rule.title if rule else first.title,
        section=section,
        section_title=sections.get(section, sections.get(section.split(".")[0], "")),
        severity=rule.severity.value if rule else first.severity.value,
        scored=rule.scored if rule else True,
        status=aggregate_status(statuses).value,
        counts=counts,
        remediation=rule.remediation.strip() if rule else "",
        guidance=(rule.guidance or "").strip() if rule else "",
        groups=tuple(node_groups),
    )


def _summary_control(result: RuleResult, rule: Rule | None, sections: dict[str, str]) -> ControlView:
    """A control from a scan's per-rule aggregation: counts, no per-node groups."""
    counts = {
        ResultStatus.PASS.value: result.pass_count,
        ResultStatus.FAIL.value: result.fail_count,
        ResultStatus.MANUAL.value: result.manual_count,
        ResultStatus.NOT_APPLICABLE.value: result.not_applicable_count,
        ResultStatus.ERROR.value: result.error_count,
        ResultStatus.EXCEPTED.value: result.excepted_count,
    }
    section = rule.section if rule else result.id.rsplit(".", 1)[0]
    return ControlView(
        id=result.id,
        title=rule.title if rule else "",
        section=section,
        section_title=sections.get(section, ""),
        severity=(result.severity.value if result.severity else (rule.severity.value if rule else "")),
        scored=rule.scored if rule else True,
        status=result.status.value,
        counts=counts,
        remediation=rule.remediation.strip() if rule else "",
        guidance=(rule.guidance or "").strip() if rule else "",
        groups=(),
    )


def _resource_name(result: CheckResult) -> str:
    res = result.resource
    assert res is not None
    kind = f"{res.kind}.{res.api_group}" if res.api_group else res.kind
    return f"{kind} {res.namespace}/{res.name}" if res.namespace else f"{kind} {res.name}"


def _rule_key(rule_id: str) -> tuple[object, ...]:
    return tuple(int(p) if p.isdigit() else p for p in rule_id.split("."))


def profile_view(
    profile: ComplianceProfile,
    scans: Sequence[ComplianceScan],
    reports: Sequence[ComplianceReport] | None,
    exceptions: Iterable[ClusterComplianceException | ComplianceException],
    benchmark: Benchmark | None,
    *,
    generated_at: datetime,
    generated_by: str,
) -> ProfileView:
    """The view of one profile. ``reports`` are the profile's; the newest report of each node is used.

    ``reports=None`` builds the summary view (for lists of profiles): controls from the latest
    completed scan's per-rule aggregation, with counts but no per-node evidence and no nodes, so
    it costs no read of the reports however many nodes there are.
    """
    name = profile.metadata.name
    ordered = sorted(
        (s for s in scans if s.spec.profile == name),
        key=lambda s: (s.status.start_time if s.status and s.status.start_time else None) or generated_at,
    )
    completed = [s for s in ordered if s.status and s.status.phase is ScanPhase.COMPLETE]
    scan = completed[-1] if completed else None
    own = sorted((r for r in reports or [] if r.spec.profile == name), key=lambda r: r.spec.node_name or "")
    nodes = tuple(_node_view(r) for r in own)
    rules = {r.id: r for r in benchmark.rules} if benchmark else {}
    sections = dict(benchmark.sections) if benchmark else {}
    outcomes: dict[str, list[tuple[str, CheckResult, str, ExceptionRef | None]]] = {}
    for node in nodes:
        for result, effective, exception in node.results:
            outcomes.setdefault(result.id, []).append((node.name, result, effective, exception))
    if reports is None:
        controls = tuple(
            _summary_control(r, rules.get(r.id), sections)
            for r in (scan.status.rules if scan and scan.status else [])
        )
    else:
        controls = tuple(
            _control(rule_id, outcomes[rule_id], rules.get(rule_id), sections)
            for rule_id in sorted(outcomes, key=_rule_key)
        )
    summary = Summary.of([ResultStatus(c.status) for c in controls])
    status = profile.status
    resolved = status.resolved_benchmark if status else None
    bench_id = (
        (scan.status.benchmark.id if scan and scan.status and scan.status.benchmark else None)
        or (resolved.id if resolved else None)
        or (benchmark.id if benchmark else "")
    )
    spec = profile.spec
    selector = spec.node_selector
    scope = {
        "nodes": ", ".join(f"{k}={v}" for k, v in selector.match_labels.items()) or "all nodes"
        if selector and (selector.match_labels or selector.match_expressions)
        else "all nodes",
        "roles": ", ".join(r.value for r in spec.node_roles) or "all roles",
        "audited": str(sum(1 for n in nodes if n.name != CLUSTER)),
    }
    if selector and selector.match_expressions:
        scope["nodes"] += "; " + "; ".join(
            f"{e.key} {e.operator} {','.join(e.values)}".strip() for e in selector.match_expressions
        )
    tailoring = {
        "include": list(spec.rules.include),
        "exclude": list(spec.rules.exclude),
        "manual": [f"{m.rule}: {m.rationale}" for m in spec.rules.manual],
        "variables": [f"{k}={v}" for k, v in sorted(spec.variables.items())],
    }
    ready = next((c for c in (status.conditions if status else []) if c.type == "Ready"), None)
    notes = []
    if scan is None:
        notes.append("no completed scan yet: the controls below are the latest results received, if any")
    stale = [n.name for n in nodes if scan is not None and n.scan != scan.metadata.name]
    if reports is None and scan is not None:
        scope["audited"] = str(scan.status.nodes.done if scan.status and scan.status.nodes else 0)
    if stale:
        notes.append(
            f"{len(stale)} node(s) hold results of another scan than {scan.metadata.name if scan else ''}: "
            + ", ".join(stale[:10])
            + ("…" if len(stale) > 10 else "")
        )
    return ProfileView(
        name=name,
        benchmark_id=bench_id,
        benchmark_title=benchmark.title if benchmark else bench_id,
        benchmark_version=benchmark.version if benchmark else (resolved.version if resolved else ""),
        platform=resolved.platform.value if resolved else spec.benchmark.platform.value,
        kubernetes_version=(resolved.kubernetes_version or "") if resolved else "",
        scope=scope,
        tailoring=tailoring,
        summary=summary,
        score=summary.score(),
        scan=_scan_view(scan) if scan else None,
        history=tuple(_scan_view(s) for s in reversed(ordered)),
        controls=controls,
        nodes=nodes,
        exceptions=tuple(exception_views(exceptions, name)),
        generated_at=generated_at,
        generated_by=generated_by,
        ready=f"{ready.status.value}: {ready.reason}" if ready else "",
        notes=tuple(notes),
    )
