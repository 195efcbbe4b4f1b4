"""One holistic, level-based reconcile of everything Plumbob owns.

Every trigger (a watch event, a schedule tick, an expiry, a restart) wakes the same loop, which
reads the current :class:`~plumbob.controller.store.Snapshot`, decides, and writes only what
differs from what is stored. Running it twice in a row writes nothing the second time. Steps:

1. schedules: due ticks create scans; status shows last/next tick, or ``Stalled`` for a bad cron;
2. rescans: a new ``plumbob.dev/rescan`` annotation value on a profile creates a scan;
3. reports: new raw results (``metadata.generation`` ahead of ``status.observedGeneration``) or
   changed exceptions → status with exceptions applied, drift against the baseline, drift Events;
4. scans: node states from Nodes, Jobs and reports; new Jobs up to the parallel limit; progress;
   completion with per-rule aggregation and drift; history pruned to the limit;
5. profiles: summary, score, drift counters and conditions from the latest completed scan;
6. exception lists: entry states (active / unused / expired), ``ExceptionExpired`` Events.

Only :mod:`plumbob.kube` talks to the API; this module decides what to say.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from plumbob.api import (
    ClusterComplianceException,
    ComplianceException,
    ComplianceProfile,
    ComplianceScan,
    ComplianceSchedule,
)
from plumbob.api.common import (
    ANNOTATION_RESCAN,
    MAX_NODE_NAMES,
    MAX_NODE_PROBLEMS,
    Condition,
    ConditionStatus,
    ResultStatus,
    Summary,
    scan_name,
    set_condition,
)
from plumbob.api.exceptions import EntryState
from plumbob.api.scans import NodeState, ScanPhase, aggregate_status
from plumbob.api.schedules import (
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_MAX_PARALLEL_NODES,
    DEFAULT_NODE_DEADLINE_SECONDS,
)
from plumbob.benchmarks.catalog import CatalogError, load_benchmark
from plumbob.benchmarks.tailoring import Tailoring
from plumbob.benchmarks.versions import benchmark_for
from plumbob.controller import excepting, scanning
from plumbob.controller.digests import ReportDigest
from plumbob.controller.jobs import audit_job
from plumbob.controller.schedules import ScheduleError, due_tick, parse_cron
from plumbob.controller.store import Snapshot, Store
from plumbob.kube import ConflictError, InvalidError, Kube, KubeError

log = logging.getLogger("plumbob.controller")
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Settings:
    namespace: str = field(default_factory=lambda: os.environ.get("PLUMBOB_NAMESPACE", "plumbob-system"))
    image: str = field(
        default_factory=lambda: os.environ.get("PLUMBOB_AGENT_IMAGE", "ghcr.io/plumbob/plumbob:0.1.0")
    )
    job_ttl_seconds: int = field(
        default_factory=lambda: int(os.environ.get("PLUMBOB_JOB_TTL_SECONDS", "300"))
    )
    progress_interval: float = 2.0  # seconds between progress writes of a running scan
    min_interval: float = 0.3  # seconds between reconciles (batches bursts of events)


def _conditions(
    current: list[Condition],
    generation: int | None,
    now: datetime,
    wanted: Mapping[str, tuple[bool, str, str]],
) -> list[dict[str, Any]]:
    """``current`` with each wanted condition set (transition times kept when unchanged), as wire dicts."""
    out = list(current)
    for type_, (ok, reason, message) in wanted.items():
        out = set_condition(
            out,
            Condition(
                type=type_,
                status=ConditionStatus.TRUE if ok else ConditionStatus.FALSE,
                reason=reason,
                message=message,
                last_transition_time=now,
                observed_generation=generation,
            ),
        )
    return [c.to_dict() for c in out]


def _same(current: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` into a status holding ``current`` would change nothing."""
    current = current or {}
    return all(current.get(k) == v for k, v in new.items())


class Reconciler:
    def __init__(
        self, kube: Kube, store: Store, settings: Settings | None = None, clock: Clock = utcnow
    ) -> None:
        self.kube = kube
        self.store = store
        self.settings = settings or Settings()
        self.clock = clock
        self._kubernetes_version: str | None = None
        self._last_progress: dict[str, float] = {}
        self._stalled_events: set[tuple[str, str, str]] = set()
        self._settled: dict[str, tuple[object, ...]] = {}  # report name -> fingerprint when last settled

    # ---- loop --------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.store.wake.clear()
            try:
                delay = self.reconcile()
            except Exception:
                log.exception("reconcile failed; retrying")
                delay = 5.0
            time.sleep(self.settings.min_interval)
            self.store.wake.wait(timeout=max(0.0, min(delay, 30.0)))

    def reconcile(self) -> float:
        """One pass. Returns the seconds until the next pass is needed without any event."""
        snap = self.store.snapshot()
        now = self.clock()
        waits = [30.0]
        waits.append(self._schedules(snap, now))
        self._rescans(snap, now)
        snap = self.store.snapshot()
        entries = excepting.flatten([*snap.cluster_exceptions, *snap.exceptions])
        self._reports(snap, entries, now)
        snap = self.store.snapshot()
        waits.append(self._scans(snap, entries, now))
        snap = self.store.snapshot()  # see the scans completed in this pass
        self._profiles(snap, entries, now)
        waits.append(self._exceptions(snap, entries, now))
        self._invalid(snap)
        return max(0.05, min(waits))

    # ---- helpers -----------------------------------------------------------------------------
    def kubernetes_version(self) -> str:
        if self._kubernetes_version is None:
            self._kubernetes_version = self.kube.server_version()
        return self._kubernetes_version

    def resolve(self, profile: ComplianceProfile) -> Tailoring:
        """The profile's benchmark and tailoring; raises CatalogError when it cannot be resolved."""
        bench = profile.spec.benchmark
        version = str(bench.version)
        if version == "auto":
            platform = bench.platform.value if bench.platform.value != "auto" else "generic"
            benchmark_id = benchmark_for(self.kubernetes_version(), platform)
        else:
            benchmark_id = f"cis-{version}"
        load_benchmark(benchmark_id, profile.spec.variables or None)  # validates id and variables
        rules = profile.spec.rules
        return Tailoring(
            benchmark=benchmark_id,
            include=tuple(rules.include),
            exclude=tuple(rules.exclude),
            manual={m.rule: m.rationale for m in rules.manual},
            variables=dict(profile.spec.variables),
        )

    def _event(self, involved: dict[str, str], type_: str, reason: str, message: str) -> None:
        try:
            self.kube.post_event(involved, type_=type_, reason=reason, message=message)
        except KubeError as exc:
            log.warning("could not post %s event: %s", reason, exc)

    @staticmethod
    def _ref(obj: ComplianceProfile | ComplianceSchedule | ComplianceScan) -> dict[str, str]:
        return {
            "apiVersion": obj.api_version,
            "kind": obj.kind,
            "name": obj.metadata.name,
            "uid": obj.metadata.uid or "",
        }

    def _patch(
        self,
        plural: str,
        name: str,
        current: Mapping[str, Any] | None,
        new: dict[str, Any],
        namespace: str | None = None,
    ) -> bool:
        if _same(current, new):
            return False
        try:
            written = self.kube.patch_status(plural, name, new, namespace)
        except KubeError as exc:
            log.warning("could not update status of %s %s: %s", plural, name, exc)
            return False
        if plural != "compliancereports" and written.get("metadata"):
            self.store.upsert(plural, dict(written))  # later steps of this pass see it at once
        return True

    def _schedule_for(self, snap: Snapshot, profile: ComplianceProfile) -> ComplianceSchedule | None:
        for sched in sorted(snap.schedules.values(), key=lambda s: s.metadata.name):
            if profile.metadata.name in self._schedule_profiles(sched, snap):
                return sched
        return None

    @staticmethod
    def _schedule_profiles(sched: ComplianceSchedule, snap: Snapshot) -> list[str]:
        if sched.spec.profiles is not None:
            return sorted(sched.spec.profiles)
        selector = sched.spec.profile_selector
        if selector is None:
            return []
        return sorted(
            name
            for name, p in snap.profiles.items()
            if excepting.selector_matches(selector, p.metadata.labels)
        )

    def create_scan(
        self,
        snap: Snapshot,
        profile: ComplianceProfile,
        *,
        trigger: str,
        started: datetime,
        schedule: ComplianceSchedule | None = None,
    ) -> str | None:
        sched = schedule or self._schedule_for(snap, profile)
        name = scan_name(profile.metadata.name, started)
        spec: dict[str, Any] = {
            "profile": profile.metadata.name,
            "trigger": trigger,
            "maxParallelNodes": sched.spec.max_parallel_nodes if sched else DEFAULT_MAX_PARALLEL_NODES,
            "nodeDeadlineSeconds": sched.spec.node_deadline_seconds
            if sched
            else DEFAULT_NODE_DEADLINE_SECONDS,
        }
        if profile.metadata.generation:
            spec["profileGeneration"] = profile.metadata.generation
        if trigger == "schedule" and sched is not None:
            spec["schedule"] = sched.metadata.name
        body = {
            "apiVersion": profile.api_version,
            "kind": "ComplianceScan",
            "metadata": {
                "name": name,
                "labels": {"plumbob.dev/profile": profile.metadata.name},
                "ownerReferences": [profile.owner_reference().to_dict()],
            },
            "spec": spec,
        }
        try:
            created = self.kube.create_object("compliancescans", body)
        except ConflictError:
            return None  # this tick's scan exists already: the trigger was handled before
        except KubeError as exc:
            log.warning("could not create scan for %s: %s", profile.metadata.name, exc)
            return None
        self.store.upsert("compliancescans", created)
        self._event(self._ref(profile), "Normal", "ScanCreated", f"scan {name} started ({trigger})")
        return name

    def _running_scan(self, snap: Snapshot, profile: str) -> str | None:
        for name, scan in snap.scans.items():
            phase = scan.status.phase if scan.status else None
            if scan.spec.profile == profile and phase not in (ScanPhase.COMPLETE, ScanPhase.FAILED):
                return name
        return None

    # ---- 1. schedules ------------------------------------------------------------------------
    def _schedules(self, snap: Snapshot, now: datetime) -> float:
        wait = 30.0
        for sched in snap.schedules.values():
            meta, status = sched.metadata, sched.status
            current = status.to_dict() if status else {}
            conds = list(status.conditions) if status else []
            try:
                cron = parse_cron(sched.spec.schedule, sched.spec.time_zone)
            except ScheduleError as exc:
                new: dict[str, Any] = {
                    "observedGeneration": meta.generation,
                    "nextScheduleTime": None,
                    "conditions": _conditions(
                        conds,
                        meta.generation,
                        now,
                        {
                            "Ready": (False, "InvalidSchedule", str(exc)),
                            "Stalled": (True, "InvalidSchedule", str(exc)),
                            "Reconciling": (
                                False,
                                "InvalidSchedule",
                                "nothing to do until the schedule is fixed",
                            ),
                        },
                    ),
                }
                if self._patch("complianceschedules", meta.name, current, new):
                    self._event(self._ref(sched), "Warning", "InvalidSchedule", str(exc))
                continue
            profiles = self._schedule_profiles(sched, snap)
            missing = [p for p in profiles if p not in snap.profiles]
            last = status.last_schedule_time if status else None
            created = meta.creation_timestamp or now
            if not sched.spec.suspend:
                tick = due_tick(cron, last_fired=last, created=created, now=now)
                if tick is not None:
                    for name in profiles:
                        profile = snap.profiles.get(name)
                        if profile is None:
                            continue
                        running = self._running_scan(snap, name)
                        if running:
                            self._event(
                                self._ref(sched),
                                "Normal",
                                "ScanSkipped",
                                f"{name}: scan {running} is still running",
                            )
                            continue
                        self.create_scan(snap, profile, trigger="schedule", started=tick, schedule=sched)
                    last = tick
            nxt = cron.next_after(now)
            wait = min(wait, max(0.05, (nxt - now).total_seconds()))
            message = (
                f"next scan at {_iso(nxt)}" if not sched.spec.suspend else "suspended: no new scans start"
            )
            if missing:
                message += f"; profiles not found: {', '.join(missing)}"
            new = {
                "observedGeneration": meta.generation,
                "lastScheduleTime": _iso(last),
                "nextScheduleTime": None if sched.spec.suspend else _iso(nxt),
                "profiles": [p for p in profiles if p in snap.profiles],
                "conditions": _conditions(
                    conds,
                    meta.generation,
                    now,
                    {
                        "Ready": (True, "Suspended" if sched.spec.suspend else "Scheduled", message),
                        "Stalled": (False, "Valid", "the schedule is valid"),
                        "Reconciling": (False, "Idle", "waiting for the next tick"),
                    },
                ),
            }
            self._patch("complianceschedules", meta.name, current, new)
        return wait

    # ---- 2. rescans --------------------------------------------------------------------------
    def _rescans(self, snap: Snapshot, now: datetime) -> None:
        for profile in snap.profiles.values():
            wanted = profile.metadata.annotations.get(ANNOTATION_RESCAN)
            handled = profile.status.last_rescan if profile.status else None
            if not wanted or wanted == handled:
                continue
            if self._running_scan(snap, profile.metadata.name) is not None:
                continue  # acted on once the running scan completes
            self.create_scan(snap, profile, trigger="rescan", started=now)
            self._patch(
                "complianceprofiles",
                profile.metadata.name,
                profile.status.to_dict() if profile.status else {},
                {"lastRescan": wanted},
            )

    # ---- 3. reports --------------------------------------------------------------------------
    def _reports(self, snap: Snapshot, entries: list[excepting.Entry], now: datetime) -> None:
        # A report needs work only when its results, the applicable exception entries or its node's
        # labels changed since it was last settled: at thousands of nodes, every other pass is cheap.
        active = repr([e for e in entries if now < e.expires_at])
        for report in snap.reports.values():
            if report.node is None:
                continue
            node = snap.nodes.get(report.node)
            labels = tuple(sorted(node.labels.items())) if node else ()
            fingerprint = (report.generation, report.observed_generation, active, labels)
            if self._settled.get(report.name) == fingerprint:
                continue
            applied = excepting.apply_to_node(
                report.results,
                entries,
                profile=report.profile,
                node=report.node,
                node_labels=node.labels if node else {},
                now=now,
            )
            if self._report_status(snap, report, applied):
                self._settled[report.name] = fingerprint

    def _report_status(self, snap: Snapshot, report: ReportDigest, applied: excepting.Applied) -> bool:
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
        if fresh or not _same(status, new):
            old_excepted = {e["rule"] for e in status.get("exceptions") or []}
            newly = sorted(set(applied.excepted) - old_excepted)
            lifted = sorted(old_excepted - set(applied.excepted))
            if self._patch("compliancereports", report.name, None if fresh else status, new):
                merged = {**status, **new}
                self.store.put_report(
                    ReportDigest(
                        name=report.name,
                        uid=report.uid,
                        profile=report.profile,
                        node=report.node,
                        scan=report.scan,
                        generation=report.generation,
                        results=report.results,
                        severities=report.severities,
                        observed_generation=report.generation,
                        status=merged,
                    )
                )
                if not fresh and (newly or lifted):
                    self._exception_events(snap, report, newly, lifted)
                return not fresh  # after a fresh write, settle on the next pass (observedGeneration moved)
            return False
        return True

    def _drift_events(
        self, snap: Snapshot, report: ReportDigest, regressions: list[str], restorations: list[str]
    ) -> None:
        profile = snap.profiles.get(report.profile)
        node = snap.nodes.get(report.node or "")
        targets = []
        if profile is not None:
            targets.append(self._ref(profile))
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
                self._event(target, type_, reason, message)

    def _exception_events(
        self, snap: Snapshot, report: ReportDigest, newly: list[str], lifted: list[str]
    ) -> None:
        profile = snap.profiles.get(report.profile)
        if profile is None:
            return
        if newly:
            self._event(
                self._ref(profile),
                "Normal",
                "ResultsExcepted",
                f"node {report.node}: {', '.join(newly[:20])} now excepted",
            )
        if lifted:
            self._event(
                self._ref(profile),
                "Warning",
                "ExceptionLifted",
                f"node {report.node}: {', '.join(lifted[:20])} no longer excepted (fail again)",
            )

    # ---- 4. scans ----------------------------------------------------------------------------
    def _scans(self, snap: Snapshot, entries: list[excepting.Entry], now: datetime) -> float:
        wait = 30.0
        by_scan: dict[str, dict[str, Any]] = defaultdict(dict)
        for job in snap.jobs.values():
            by_scan[job.scan][job.node] = job
        reports_by_node: dict[tuple[str, str], ReportDigest] = {
            (r.profile, r.node): r for r in snap.reports.values() if r.node is not None
        }
        for scan in snap.scans.values():
            phase = scan.status.phase if scan.status else None
            if phase in (ScanPhase.COMPLETE, ScanPhase.FAILED):
                continue
            wait = min(
                wait,
                self._scan(snap, scan, by_scan.get(scan.metadata.name, {}), reports_by_node, entries, now),
            )
        self._prune(snap)
        return wait

    def _scan(  # noqa: PLR0917 - private step with one caller, which passes all six
        self,
        snap: Snapshot,
        scan: ComplianceScan,
        jobs: dict[str, Any],
        reports_by_node: Mapping[tuple[str, str], ReportDigest],
        entries: list[excepting.Entry],
        now: datetime,
    ) -> float:
        name, meta = scan.metadata.name, scan.metadata
        current = scan.status.to_dict() if scan.status else {}
        conds = list(scan.status.conditions) if scan.status else []
        start = (scan.status.start_time if scan.status else None) or now
        profile = snap.profiles.get(scan.spec.profile)
        try:
            if profile is None:
                raise CatalogError(f"profile {scan.spec.profile} does not exist")
            tailoring = self.resolve(profile)
        except CatalogError as exc:
            new: dict[str, Any] = {
                "observedGeneration": meta.generation,
                "phase": ScanPhase.FAILED.value,
                "startTime": _iso(start),
                "completionTime": _iso(now),
                "conditions": _conditions(
                    conds,
                    meta.generation,
                    now,
                    {
                        "Ready": (False, "CannotResolve", str(exc)),
                        "Stalled": (True, "CannotResolve", str(exc)),
                        "Reconciling": (False, "CannotResolve", "the scan cannot run"),
                    },
                ),
            }
            if self._patch("compliancescans", name, current, new) and profile is not None:
                self._event(self._ref(profile), "Warning", "ScanFailed", f"scan {name}: {exc}")
            return 30.0
        targets = scanning.target_nodes(
            snap.nodes.values(),
            selector=profile.spec.node_selector,
            roles=[r.value for r in profile.spec.node_roles],
            scan_created=meta.creation_timestamp,
            jobs=jobs,
        )
        # Nodes already judged Failed/TimedOut/Unschedulable stay in the scan even once their Node
        # and Job are gone (a node deleted mid-scan must be reported, not forgotten).
        earlier = {
            p.node: scanning.NodeVerdict(p.state, p.reason, p.message)
            for p in (scan.status.nodes.problems if scan.status and scan.status.nodes else [])
        }
        verdicts = {}
        for node_name in sorted(set(targets) | set(earlier)):
            report = reports_by_node.get((profile.metadata.name, node_name))
            if node_name in earlier and node_name not in snap.nodes and node_name not in jobs:
                verdicts[node_name] = earlier[node_name]
                continue
            verdicts[node_name] = scanning.node_verdict(
                node_name,
                node=snap.nodes.get(node_name),
                job=jobs.get(node_name),
                report=report,
                scan=name,
                tolerations=list(profile.spec.tolerations),
                now=now,
            )
        for node_name in scanning.pods_to_start(verdicts, scan.spec.max_parallel_nodes):
            body = audit_job(
                scan=scan,
                node=node_name,
                tailoring=tailoring,
                tolerations=list(profile.spec.tolerations),
                namespace=self.settings.namespace,
                image=self.settings.image,
                ttl_seconds=self.settings.job_ttl_seconds,
            )
            try:
                self.kube.create_job(self.settings.namespace, body)
            except ConflictError:
                pass  # created by an earlier pass whose event has not arrived yet
            except KubeError as exc:
                log.warning("could not create audit Job for %s on %s: %s", name, node_name, exc)
                continue
            verdicts[node_name] = scanning.NodeVerdict(NodeState.RUNNING)
        for node_name, job in jobs.items():  # a Job whose node is gone can never finish: remove it
            if node_name not in snap.nodes and job.active:
                try:
                    self.kube.delete_job(job.namespace, job.name)
                except KubeError as exc:
                    log.warning("could not delete Job %s: %s", job.name, exc)
        counts = {s: 0 for s in NodeState}
        for v in verdicts.values():
            counts[v.state] += 1
        done = all(v.state in scanning.TERMINAL for v in verdicts.values())
        problems = [
            {"node": n, "state": v.state.value, "reason": v.reason, "message": v.message}
            for n, v in sorted(verdicts.items())
            if v.state in (NodeState.FAILED, NodeState.TIMED_OUT, NodeState.UNSCHEDULABLE)
        ][:MAX_NODE_PROBLEMS]
        nodes: dict[str, Any] = {
            "total": len(verdicts),
            "pending": counts[NodeState.PENDING],
            "running": counts[NodeState.RUNNING],
            "done": counts[NodeState.DONE],
            "failed": counts[NodeState.FAILED],
            "timedOut": counts[NodeState.TIMED_OUT],
            "unschedulable": counts[NodeState.UNSCHEDULABLE],
            "problems": problems,
        }
        new = {
            "observedGeneration": meta.generation,
            "phase": (ScanPhase.COMPLETE if done else ScanPhase.RUNNING).value,
            "startTime": _iso(start),
            "benchmark": {
                "id": tailoring.benchmark,
                "name": "cis-kubernetes",
                "version": tailoring.benchmark.removeprefix("cis-"),
                "platform": profile.spec.benchmark.platform.value,
            },
            "nodes": nodes,
        }
        message = f"{counts[NodeState.DONE]}/{len(verdicts)} nodes audited"
        if done:
            done_reports = [
                r
                for n, v in verdicts.items()
                if v.state is NodeState.DONE
                and (r := reports_by_node.get((profile.metadata.name, n))) is not None
            ]
            new |= self._aggregate(snap, done_reports, entries, now)
            previous_scans = sorted(
                (
                    s
                    for s in snap.scans.values()
                    if s.spec.profile == scan.spec.profile
                    and s.metadata.name != name
                    and s.status is not None
                    and s.status.phase is ScanPhase.COMPLETE
                    and (s.metadata.creation_timestamp or now) <= (meta.creation_timestamp or now)
                ),
                key=lambda s: s.metadata.creation_timestamp or now,
            )
            if previous_scans:
                new["drift"]["previousScan"] = previous_scans[-1].metadata.name
            new["completionTime"] = _iso(now)
            new["conditions"] = _conditions(
                conds,
                meta.generation,
                now,
                {
                    "Ready": (True, "Complete", message),
                    "Reconciling": (False, "Complete", message),
                    "Stalled": (False, "Complete", message),
                },
            )
        else:
            new["conditions"] = _conditions(
                conds,
                meta.generation,
                now,
                {
                    "Ready": (False, "Running", message),
                    "Reconciling": (True, "Running", message),
                    "Stalled": (False, "Running", message),
                },
            )
            last = self._last_progress.get(name, 0.0)
            known = {p.get("node") for p in (current.get("nodes") or {}).get("problems", [])}
            new_problem = any(p["node"] not in known for p in problems)
            if (
                time.monotonic() - last < self.settings.progress_interval
                and current.get("phase")
                and not new_problem
            ):
                return self.settings.progress_interval
        if self._patch("compliancescans", name, current, new):
            self._last_progress[name] = time.monotonic()
            if done:
                self._last_progress.pop(name, None)
                summary = new.get("summary", {})
                self._event(
                    self._ref(profile),
                    "Normal",
                    "ScanComplete",
                    f"scan {name}: {message}; {summary.get('fail', 0)} rule(s) failing, "
                    f"{nodes['failed'] + nodes['timedOut']} node(s) failed, "
                    f"{nodes['unschedulable']} unschedulable",
                )
        return 1.0 if not done else 30.0

    def _aggregate(
        self, snap: Snapshot, reports: Iterable[ReportDigest], entries: list[excepting.Entry], now: datetime
    ) -> dict[str, Any]:
        per_rule: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        severities: dict[str, str] = {}
        regressions: dict[str, list[str]] = defaultdict(list)
        restorations: dict[str, list[str]] = defaultdict(list)
        for report in reports:
            node = snap.nodes.get(report.node or "")
            applied = excepting.apply_to_node(
                report.results,
                entries,
                profile=report.profile,
                node=report.node or "",
                node_labels=node.labels if node else {},
                now=now,
            )
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
        for rule in sorted(per_rule, key=_rule_key):
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
                for r, n in sorted(changes.items(), key=lambda kv: _rule_key(kv[0]))
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

    def _prune(self, snap: Snapshot) -> None:
        by_profile: dict[str, list[ComplianceScan]] = defaultdict(list)
        for scan in snap.scans.values():
            if scan.status and scan.status.phase in (ScanPhase.COMPLETE, ScanPhase.FAILED):
                by_profile[scan.spec.profile].append(scan)
        for profile_name, scans in by_profile.items():
            profile = snap.profiles.get(profile_name)
            sched = self._schedule_for(snap, profile) if profile else None
            limit = sched.spec.history_limit if sched else DEFAULT_HISTORY_LIMIT
            scans.sort(key=lambda s: s.metadata.creation_timestamp or datetime.min.replace(tzinfo=UTC))
            for old in scans[:-limit] if len(scans) > limit else []:
                try:
                    self.kube.delete_object("compliancescans", old.metadata.name)
                except KubeError as exc:
                    log.warning("could not prune scan %s: %s", old.metadata.name, exc)

    # ---- 5. profiles -------------------------------------------------------------------------
    def _profiles(self, snap: Snapshot, entries: list[excepting.Entry], now: datetime) -> None:
        for profile in snap.profiles.values():
            meta = profile.metadata
            status = profile.status
            current = status.to_dict() if status else {}
            conds = list(status.conditions) if status else []
            try:
                tailoring = self.resolve(profile)
            except CatalogError as exc:
                new: dict[str, Any] = {
                    "observedGeneration": meta.generation,
                    "conditions": _conditions(
                        conds,
                        meta.generation,
                        now,
                        {
                            "Ready": (False, "CannotResolve", str(exc)),
                            "Stalled": (True, "CannotResolve", str(exc)),
                            "Reconciling": (False, "CannotResolve", "fix the profile to continue"),
                        },
                    ),
                }
                if self._patch("complianceprofiles", meta.name, current, new):
                    self._event(self._ref(profile), "Warning", "CannotResolve", str(exc))
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
            new["resolvedBenchmark"] = {
                "id": bench.id,
                "name": "cis-kubernetes",
                "version": bench.version,
                "platform": profile.spec.benchmark.platform.value,
                "kubernetesVersion": self.kubernetes_version(),
                "rules": len(tailoring.node_rules(bench.rules)),
            }
            if latest is not None:
                ls = latest.status
                new["lastScan"] = {
                    k: v
                    for k, v in {
                        "name": latest.metadata.name,
                        "startTime": _iso(ls.start_time) if ls else None,
                        "completionTime": _iso(ls.completion_time) if ls else None,
                    }.items()
                    if v is not None
                }
            compliant: tuple[bool, str, str] = (False, "NotScanned", "no completed scan yet")
            agg: dict[str, Any] = {}
            if last_done is not None:
                of_scan = [r for r in reports if r.scan == last_done.metadata.name]
                agg = self._aggregate(snap, of_scan, entries, now)
                summary = agg["summary"]
                new["summary"] = summary
                score = Summary.model_validate(summary).score()
                if score is not None:
                    new["score"] = score
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
                new["drift"]["lastRegressionTime"] = _iso(status.drift.last_regression_time)
            done_at = last_done.status.completion_time if last_done and last_done.status else None
            if new["drift"]["regressions"] and done_at is not None:
                new["drift"]["lastRegressionTime"] = _iso(done_at)
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
            }
            new["conditions"] = _conditions(conds, meta.generation, now, wanted)
            self._patch("complianceprofiles", meta.name, current, new)

    # ---- 6. exception lists ------------------------------------------------------------------
    def _exceptions(self, snap: Snapshot, entries: list[excepting.Entry], now: datetime) -> float:
        matched: dict[excepting.EntryKey, int] = defaultdict(int)
        for report in snap.reports.values():
            if report.node is None:
                continue
            node = snap.nodes.get(report.node)
            applied = excepting.apply_to_node(
                report.results,
                entries,
                profile=report.profile,
                node=report.node,
                node_labels=node.labels if node else {},
                now=now,
            )
            for entry in applied.excepted.values():
                matched[entry.key] += 1
        wait = 30.0
        nxt = excepting.next_expiry(entries, now)
        if nxt is not None:
            wait = max(0.05, (nxt - now).total_seconds())
        exception_lists: list[ClusterComplianceException | ComplianceException] = [
            *snap.cluster_exceptions,
            *snap.exceptions,
        ]
        for exc_obj in exception_lists:
            meta = exc_obj.metadata
            mine = [
                e
                for e in entries
                if e.key.kind == exc_obj.kind
                and e.key.name == meta.name
                and e.key.namespace == meta.namespace
            ]
            states = [(e, excepting.entry_state(e, matched[e.key], now)) for e in mine]
            current = exc_obj.status.to_dict() if exc_obj.status else {}
            before = {s.index: s.state for s in exc_obj.status.entries} if exc_obj.status else {}
            conds = list(exc_obj.status.conditions) if exc_obj.status else []
            counts = {s: sum(1 for _, st in states if st is s) for s in EntryState}
            upcoming = excepting.next_expiry(mine, now)
            message = (
                f"{counts[EntryState.ACTIVE]} active, {counts[EntryState.UNUSED]} unused, "
                f"{counts[EntryState.EXPIRED]} expired"
            )
            new = {
                "observedGeneration": meta.generation,
                "summary": {
                    "total": len(states),
                    "active": counts[EntryState.ACTIVE],
                    "unused": counts[EntryState.UNUSED],
                    "expired": counts[EntryState.EXPIRED],
                },
                "entries": [
                    {
                        "index": e.key.index,
                        "state": st.value,
                        "matched": matched[e.key],
                        "expiresAt": _iso(e.expires_at),
                    }
                    for e, st in states
                ],
                "nextExpiry": _iso(upcoming),
                "conditions": _conditions(
                    conds,
                    meta.generation,
                    now,
                    {
                        "Ready": (True, "Applied", message),
                        "Stalled": (False, "Valid", "entries are valid"),
                        "Reconciling": (False, "Applied", message),
                    },
                ),
            }
            if new["nextExpiry"] is None:
                new["nextExpiry"] = None
            ns = meta.namespace
            if self._patch(f"{exc_obj.kind.lower()}s", meta.name, current, new, ns):
                involved = {
                    "apiVersion": exc_obj.api_version,
                    "kind": exc_obj.kind,
                    "name": meta.name,
                    "uid": meta.uid or "",
                    "namespace": ns or "",
                }
                for e, st in states:
                    if st is EntryState.EXPIRED and before.get(e.key.index) not in (None, EntryState.EXPIRED):
                        self._event(
                            involved,
                            "Warning",
                            "ExceptionExpired",
                            f"entry {e.key.index} ({', '.join(e.rules)}; owner {e.owner}) expired at "
                            f"{_iso(e.expires_at)}: the results it excepted count as failures again",
                        )
        return wait

    # ---- invalid objects ---------------------------------------------------------------------
    def _invalid(self, snap: Snapshot) -> None:
        # Forget objects that became valid or were deleted, so breaking them again is reported again.
        self._stalled_events &= {(b.kind, b.namespace or "", b.name) for b in snap.invalid}
        for bad in snap.invalid:
            key = (bad.kind, bad.namespace or "", bad.name)
            if key in self._stalled_events or bad.kind in ("jobs", "nodes", "compliancereports"):
                continue
            self._stalled_events.add(key)
            reason = "InvalidSchedule" if bad.kind == "complianceschedules" else "InvalidSpec"
            kind = {
                "complianceprofiles": "ComplianceProfile",
                "complianceschedules": "ComplianceSchedule",
                "complianceexceptions": "ComplianceException",
                "clustercomplianceexceptions": "ClusterComplianceException",
                "compliancescans": "ComplianceScan",
            }.get(bad.kind, bad.kind)
            involved = {
                "apiVersion": "plumbob.dev/v1alpha1",
                "kind": kind,
                "name": bad.name,
                "uid": bad.uid,
                "namespace": bad.namespace or "",
            }
            self._event(involved, "Warning", reason, bad.message)
            now = self.clock()
            conditions = _conditions(
                [],
                None,
                now,
                {
                    "Stalled": (True, reason, bad.message[:1000]),
                    "Ready": (False, reason, "the spec cannot be used"),
                },
            )
            try:
                self.kube.patch_status(bad.kind, bad.name, {"conditions": conditions}, bad.namespace)
            except (KubeError, InvalidError) as exc:
                log.warning("could not mark %s %s stalled: %s", kind, bad.name, exc)


def _rule_key(rule: str) -> tuple[int | str, ...]:
    return tuple(int(p) if p.isdigit() else p for p in rule.split("."))
