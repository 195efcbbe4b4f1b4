"""ComplianceProfile: rescan requests, and the status that sums up the profile's compliance.

It decides and writes, for each profile:

- a ``plumbob.dev/rescan`` annotation whose value differs from ``status.lastRescan`` starts a scan
  (once no scan of the profile is running) and is recorded as ``lastRescan``
  (:func:`handle_rescans`, an early step of the pass);
- status (:func:`reconcile`, after the scans): the resolved benchmark, the latest scan, summary and
  score of the latest completed scan with today's exceptions applied, the drift counters of that
  scan, and conditions ``Ready``, ``Reconciling``, ``Stalled``, ``Compliant``;
- a benchmark or variables that cannot be resolved: ``Stalled`` and one ``CannotResolve`` Event
  when the status changes to say so.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from plumbob.api import ComplianceProfile
from plumbob.api.common import ResultStatus, Summary, rule_order
from plumbob.api.profiles import ComplianceProfileStatus
from plumbob.api.scans import ScanPhase, aggregate_status
from plumbob.benchmarks.catalog import CatalogError, load_benchmark
from plumbob.benchmarks.rules import Rule
from plumbob.controller.context import Context, built_status, conditions, iso, ref, stalled
from plumbob.controller.decisions import aggregation, excepting, platforms, scan_settings, scanning
from plumbob.controller.decisions.digests import ReportDigest
from plumbob.controller.launching import create_scan
from plumbob.controller.store import Snapshot
from plumbob.engine.cluster.custom import compile_error
from plumbob.names import ANNOTATION_RESCAN, report_name

LABEL_RESCAN = "plumbob.dev/rescan-request"  # on a scan: digest of the annotation value that started it
MAX_RESCAN_RECORD = 128  # longer annotation values are recorded as a digest (status.lastRescan has a cap)


def rescan_record(value: str) -> str:
    """What ``status.lastRescan`` records for an annotation value: the value, or a digest of a long one."""
    if len(value) <= MAX_RESCAN_RECORD:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:32]


def handle_rescans(ctx: Context, snap: Snapshot, now: datetime) -> None:
    """Start a scan for each profile whose rescan annotation has a value not handled yet.

    A request starts at most one scan even when its record cannot be written: the scan carries the
    request's digest in a label, and a scan with that label means the request was acted on.
    """
    for profile in snap.profiles.values():
        with ctx.isolated("profile rescan", profile.metadata.name, ref(profile)):
            wanted = profile.metadata.annotations.get(ANNOTATION_RESCAN)
            handled = profile.status.last_rescan if profile.status else None
            if not wanted or rescan_record(wanted) == handled:
                continue
            request = hashlib.sha256(wanted.encode()).hexdigest()[:16]
            started = any(
                s.spec.profile == profile.metadata.name and s.metadata.labels.get(LABEL_RESCAN) == request
                for s in snap.scans.values()
            )
            if not started:
                if scan_settings.running_scan(snap.scans, profile.metadata.name) is not None:
                    continue  # acted on once the running scan completes
                if not create_scan(
                    ctx, snap, profile, trigger="rescan", started=now, labels={LABEL_RESCAN: request}
                ):
                    continue
            ctx.patch(
                "complianceprofiles",
                profile.metadata.name,
                profile.status.to_dict() if profile.status else {},
                built_status(ComplianceProfileStatus, {"lastRescan": rescan_record(wanted)}),
            )


def custom_rule_problems(profile: ComplianceProfile) -> list[str]:
    """Each custom rule of the profile that does not compile: its field and the compiler's message."""
    out = []
    for i, rule in enumerate(profile.spec.custom_rules):
        error = compile_error(rule.expression)
        if error is not None:
            out.append(f"spec.customRules[{i}] ({rule.id}): does not compile: {error}")
    return out


def with_cluster(node_rules: dict[str, str], cluster: dict[str, str]) -> dict[str, str]:
    """Each rule's status over the nodes and the cluster-level report together (a section-5 rule
    is not-applicable on every node and decided by the cluster report: the worse status wins)."""
    out = dict(node_rules)
    for rule, status in cluster.items():
        seen = [ResultStatus(status)] + ([ResultStatus(out[rule])] if rule in out else [])
        out[rule] = aggregate_status(seen).value
    return out


def compliance(
    scan: str, reports: list[ReportDigest], on_nodes: dict[str, str], rules: dict[str, str]
) -> tuple[bool, str, str]:
    """The ``Compliant`` condition from a completed scan (``on_nodes``: each rule's status over the
    nodes) and the cluster-level results (``rules``: over both): never true unless the nodes were
    audited and decided something (cluster rules alone do not make a node audit meaningful)."""
    if not reports:
        return (False, "NothingChecked", f"scan {scan} audited no node")
    if not _decided(on_nodes):
        return (
            False,
            "NothingChecked",
            f"scan {scan} decided no rule: every result is manual or not applicable",
        )
    return _failing_or(rules, "every audited rule passes or is excepted")


def cluster_compliance(rules: dict[str, str]) -> tuple[bool, str, str]:
    """The ``Compliant`` condition of a profile of cluster-level rules only (it scans no node):
    never true unless a rule was decided."""
    if not _decided(rules):
        return (False, "NothingChecked", "no cluster-level rule was decided: every result is manual")
    return _failing_or(rules, "every cluster-level rule passes or is excepted")


def _decided(rules: dict[str, str]) -> bool:
    summary = Summary.of([ResultStatus(s) for s in rules.values()]).to_dict()
    return bool(summary.get("pass", 0) + summary.get("fail", 0) + summary.get("excepted", 0))


def _failing_or(rules: dict[str, str], passed: str) -> tuple[bool, str, str]:
    failing = sorted((r for r, s in rules.items() if s == "fail"), key=rule_order)
    if failing:
        return (False, "RulesFailing", f"{len(failing)} rule(s) failing: {', '.join(failing[:10])}")
    return (True, "NoFailures", passed)


def waiting_for(snap: Snapshot, profile: ComplianceProfile) -> str:
    """What a profile without a scan yet waits for, as a condition message."""
    sched = scan_settings.schedule_for(snap.schedules.values(), snap.profiles, profile)
    if sched is None:
        return (
            "no schedule covers this profile; request a scan with "
            f"`plumbob rescan {profile.metadata.name}` or the plumbob.dev/rescan annotation"
        )
    nxt = sched.status.next_schedule_time if sched.status else None
    return (
        f"next scan at {iso(nxt)} (schedule {sched.metadata.name})"
        if nxt
        else f"waiting for schedule {sched.metadata.name}"
    )


def reconcile(ctx: Context, snap: Snapshot, entries: list[excepting.Entry], now: datetime) -> None:
    """Write every profile's status from its scans and reports."""
    for profile in list(snap.profiles.values()):
        with ctx.isolated("profile", profile.metadata.name, ref(profile)):
            meta = profile.metadata
            status = profile.status
            current = status.to_dict() if status else {}
            conds = list(status.conditions) if status else []
            try:
                tailoring = ctx.resolve(profile)
            except CatalogError as exc:
                new: dict[str, Any] = {
                    "observedGeneration": meta.generation,
                    "conditions": conditions(
                        conds,
                        meta.generation,
                        now,
                        stalled("CannotResolve", str(exc), "fix the profile to continue"),
                    ),
                }
                new = built_status(ComplianceProfileStatus, new)
                if ctx.patch("complianceprofiles", meta.name, current, new):
                    ctx.event(ref(profile), "Warning", "CannotResolve", str(exc))
                continue
            scans = sorted(
                (s for s in snap.scans.values() if s.spec.profile == meta.name),
                key=lambda s: s.metadata.creation_timestamp or now,
            )
            latest = scans[-1] if scans else None
            completed = [s for s in scans if s.status and s.status.phase is ScanPhase.COMPLETE]
            last_done = completed[-1] if completed else None
            reports = [r for r in snap.reports.values() if r.profile == meta.name and r.node is not None]
            new = {"observedGeneration": meta.generation}
            bench = load_benchmark(tailoring.benchmark, tailoring.variables or None)
            choice = ctx.platform(profile)
            node_rules = tailoring.node_rules(bench.rules)
            new["resolvedBenchmark"] = {
                "id": bench.id,
                "name": "cis-kubernetes",
                "version": bench.version,
                "platform": choice.platform,
                "platformReason": choice.reason[:256],
                "kubernetesVersion": ctx.kubernetes_version(),
                "rules": len(node_rules),
            }
            if latest is not None:
                ls = latest.status
                new["lastScan"] = {
                    k: v
                    for k, v in {
                        "name": latest.metadata.name,
                        "startTime": iso(ls.start_time) if ls else None,
                        "completionTime": iso(ls.completion_time) if ls else None,
                    }.items()
                    if v is not None
                }
            compliant: tuple[bool, str, str] = (False, "NotScanned", "no completed scan yet")
            agg: dict[str, Any] = {}
            cluster_report = snap.reports.get(report_name(meta.name or "", None))
            cluster: dict[str, str] = {}
            if cluster_report is not None and cluster_report.node is None:
                cluster = excepting.apply_to_cluster_report(cluster_report, entries, now).effective
            if last_done is not None or cluster:
                of_scan = [r for r in reports if last_done and r.scan == last_done.metadata.name]
                agg = aggregation.aggregate(of_scan, snap.nodes, entries, now)
                on_nodes = {r["id"]: r["status"] for r in agg["rules"]}
                rules = with_cluster(on_nodes, cluster)
                summary = Summary.of([ResultStatus(s) for s in rules.values()])
                new["summary"] = summary.to_dict()
                score = summary.score()
                if score is not None:
                    new["score"] = score
                if last_done is not None and node_rules:
                    new["coverage"] = coverage(agg["rules"], node_rules)
                    compliant = compliance(last_done.metadata.name, of_scan, on_nodes, rules)
                elif not node_rules:
                    compliant = cluster_compliance(rules)
            # Drift counters: what the latest completed scan changed against the one before it.
            last_drift = agg.get("drift") or {}
            new["drift"] = {
                "regressions": int(last_drift.get("regressionCount", 0)),
                "restorations": int(last_drift.get("restorationCount", 0)),
            }
            if status and status.drift and status.drift.last_regression_time:
                new["drift"]["lastRegressionTime"] = iso(status.drift.last_regression_time)
            done_at = last_done.status.completion_time if last_done and last_done.status else None
            if new["drift"]["regressions"] and done_at is not None:
                new["drift"]["lastRegressionTime"] = iso(done_at)
            running = (
                latest is not None
                and latest.status is not None
                and latest.status.phase not in (ScanPhase.COMPLETE, ScanPhase.FAILED)
            ) or (latest is not None and latest.status is None)
            targets = [
                n
                for n in snap.nodes.values()
                if scanning.selects(n, profile.spec.node_selector, [r.value for r in profile.spec.node_roles])
            ]
            if not node_rules:
                wanted = {
                    "Reconciling": (False, "Idle", "cluster-level rules only: no node to scan"),
                    "Stalled": (False, "Resolved", f"benchmark {tailoring.benchmark}"),
                    "Ready": (
                        True,
                        "Evaluated",
                        "cluster-level rules only, evaluated continuously from the API",
                    )
                    if cluster_report is not None
                    else (
                        False,
                        "FirstEvaluation",
                        "the first evaluation of the cluster-level rules is under way",
                    ),
                    "Compliant": compliant,
                    "PlatformSupported": platforms.condition(choice, bench.id),
                }
            elif not targets:
                why = "spec.nodeSelector and spec.nodeRoles match no node: nothing can be checked"
                wanted = {
                    **stalled("NoNodesSelected", why, "waiting for a node that matches"),
                    "Compliant": (False, "NothingChecked", why),
                    "PlatformSupported": platforms.condition(choice, bench.id),
                }
            else:
                wanted = {
                    "Reconciling": (True, "Scanning", f"scan {latest.metadata.name} is running")
                    if running and latest
                    else (False, "Idle", "no scan running"),
                    "Stalled": (False, "Resolved", f"benchmark {tailoring.benchmark}"),
                    "Ready": (True, "Scanned", f"last completed scan {last_done.metadata.name}")
                    if last_done
                    else (True, "WaitingForScan", waiting_for(snap, profile))
                    if not running
                    else (False, "FirstScanRunning", "the first scan is running"),
                    "Compliant": compliant,
                    "PlatformSupported": platforms.condition(choice, bench.id),
                }
            broken = custom_rule_problems(profile)
            if broken:
                message = "; ".join(broken)[:1000]
                wanted.update(stalled("InvalidCustomRule", message, "the other rules are still evaluated"))
                ctx.event(
                    ref(profile), "Warning", "InvalidCustomRule", message,
                    once=(meta.name, str(meta.generation), "InvalidCustomRule"),
                )  # fmt: skip
            new["conditions"] = conditions(conds, meta.generation, now, wanted)
            ctx.patch("complianceprofiles", meta.name, current, built_status(ComplianceProfileStatus, new))


def coverage(rules: list[dict[str, Any]], node_rules: list[Rule]) -> dict[str, int]:
    """What the last scan tested, what the provider of a hosted control plane attests, what a
    person must judge: per rule, counted apart so an auditor sees tested from attested."""
    managed = {r.id for r in node_rules if r.provider_managed is not None}
    out = {"tested": 0, "providerManaged": 0, "manual": 0, "notApplicable": 0}
    for result in rules:
        status = result["status"]
        if result["id"] in managed:
            out["providerManaged"] += 1
        elif status in ("pass", "fail", "error", "excepted"):
            out["tested"] += 1
        elif status == "manual":
            out["manual"] += 1
        else:
            out["notApplicable"] += 1
    return out
