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

from datetime import datetime
from typing import Any

from plumbob.api.common import ANNOTATION_RESCAN, Summary
from plumbob.api.scans import ScanPhase
from plumbob.benchmarks.catalog import CatalogError, load_benchmark
from plumbob.benchmarks.rules import Rule
from plumbob.controller import excepting, platforms, scan_status
from plumbob.controller.context import Context, conditions, iso, ref, stalled
from plumbob.controller.store import Snapshot


def handle_rescans(ctx: Context, snap: Snapshot, now: datetime) -> None:
    """Start a scan for each profile whose rescan annotation has a value not handled yet."""
    for profile in snap.profiles.values():
        wanted = profile.metadata.annotations.get(ANNOTATION_RESCAN)
        handled = profile.status.last_rescan if profile.status else None
        if not wanted or wanted == handled:
            continue
        if scan_status.running_scan(snap, profile.metadata.name) is not None:
            continue  # acted on once the running scan completes
        scan_status.create_scan(ctx, snap, profile, trigger="rescan", started=now)
        ctx.patch(
            "complianceprofiles",
            profile.metadata.name,
            profile.status.to_dict() if profile.status else {},
            {"lastRescan": wanted},
        )


def reconcile(ctx: Context, snap: Snapshot, entries: list[excepting.Entry], now: datetime) -> None:
    """Write every profile's status from its scans and reports."""
    for profile in snap.profiles.values():
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
        if last_done is not None:
            of_scan = [r for r in reports if r.scan == last_done.metadata.name]
            agg = scan_status.aggregate(snap, of_scan, entries, now)
            summary = agg["summary"]
            new["summary"] = summary
            score = Summary.model_validate(summary).score()
            if score is not None:
                new["score"] = score
            new["coverage"] = coverage(agg["rules"], node_rules)
            failing = [r["id"] for r in agg["rules"] if r["status"] == "fail"]
            compliant = (
                (True, "NoFailures", "every audited rule passes or is excepted")
                if not failing
                else (False, "RulesFailing", f"{len(failing)} rule(s) failing: {', '.join(failing[:10])}")
            )
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
        wanted = {
            "Reconciling": (True, "Scanning", f"scan {latest.metadata.name} is running")
            if running and latest
            else (False, "Idle", "no scan running"),
            "Stalled": (False, "Resolved", f"benchmark {tailoring.benchmark}"),
            "Ready": (True, "Scanned", f"last completed scan {last_done.metadata.name}")
            if last_done
            else (False, "NotScanned", "waiting for the first scan to complete"),
            "Compliant": compliant,
            "PlatformSupported": platforms.condition(choice, bench.id),
        }
        new["conditions"] = conditions(conds, meta.generation, now, wanted)
        ctx.patch("complianceprofiles", meta.name, current, new)


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
