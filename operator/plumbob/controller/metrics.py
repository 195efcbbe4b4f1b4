"""The operator's metrics: observable instruments read from the in-memory store at scrape time.

Nothing in the reconcile steps records a compliance figure: every gauge below is computed from
the :class:`~plumbob.controller.store.Store` when Prometheus scrapes, so the figures are exactly
what the operator's watches hold, and the controller code carries only two hooks (the pass and
step timers in :mod:`plumbob.controller.reconciler`). Names follow the Prometheus conventions: a
``plumbob_`` prefix, base units in the suffix (``_seconds``, ``_ratio`` for 0-1), ``_total`` for
counters, and labels whose number of values is bounded by what the user declared (profiles,
rules of the benchmark, exception entries) or by the cluster (nodes: the only series that grow
with it, one per profile and node).

===============================================  =========================================
metric                                           labels
===============================================  =========================================
plumbob_profile_score_ratio                      profile
plumbob_profile_rules                            profile, status
plumbob_profile_last_successful_scan_timestamp_seconds  profile
plumbob_profile_scan_nodes                       profile, state   (latest completed scan)
plumbob_scans                                    profile, phase   (scans kept, by phase)
plumbob_scan_duration_seconds (histogram)        profile
plumbob_drift_regressions_total                  profile
plumbob_drift_restorations_total                 profile
plumbob_rule_failing_nodes                       profile, rule, severity
plumbob_node_score_ratio                         profile, node
plumbob_exception_expiry_seconds                 kind, namespace, exception, entry, owner
plumbob_reconcile_duration_seconds (histogram)   —
plumbob_reconcile_step_duration_seconds (hist.)  step
plumbob_reconcile_errors_total                   what
plumbob_api_errors_total                         code  (recorded in plumbob.kube)
===============================================  =========================================
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from plumbob import telemetry
from plumbob.api.common import ResultStatus, Summary
from plumbob.api.scans import ComplianceScan, NodeProgress, ScanPhase
from plumbob.controller.decisions import excepting
from plumbob.controller.store import Snapshot, Store

P = ParamSpec("P")
R = TypeVar("R")

# Bucket bounds: a reconcile pass takes milliseconds to seconds; a scan seconds to an hour.
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
SCAN_BUCKETS = (5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
NODE_STATES = {
    "Done": "done",
    "Failed": "failed",
    "TimedOut": "timed_out",
    "Unschedulable": "unschedulable",
    "Pending": "pending",
    "Running": "running",
}

_meter = telemetry.meter()
_reconcile_duration = _meter.create_histogram(
    "plumbob_reconcile_duration_seconds",
    unit="s",
    description="Duration of one reconcile pass over everything Plumbob owns",
    explicit_bucket_boundaries_advisory=RECONCILE_BUCKETS,
)
_step_duration = _meter.create_histogram(
    "plumbob_reconcile_step_duration_seconds",
    unit="s",
    description="Duration of one step of a reconcile pass",
    explicit_bucket_boundaries_advisory=RECONCILE_BUCKETS,
)
_reconcile_errors = _meter.create_counter(
    "plumbob_reconcile_errors_total",
    description="Unexpected errors while reconciling, by what they were contained to (pass, step, a kind)",
)


def count_error(what: str) -> None:
    """One unexpected error, contained to ``what`` (a step, or the kind of object); see Context.isolated."""
    _reconcile_errors.add(1, {"what": what})


_scan_duration = _meter.create_histogram(
    "plumbob_scan_duration_seconds",
    unit="s",
    description="Duration of completed scans, from start to completion",
    explicit_bucket_boundaries_advisory=SCAN_BUCKETS,
)


def step(name: str, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args, **kwargs)`` as one reconcile step: timed, and traced as a span."""
    started = time.perf_counter()
    try:
        with telemetry.span(f"reconcile {name}", {"plumbob.step": name}):
            return fn(*args, **kwargs)
    finally:
        _step_duration.record(time.perf_counter() - started, {"step": name})


@contextmanager
def reconcile_pass(store: Store) -> Iterator[None]:
    """Time and trace one reconcile pass; afterwards, record the durations of scans it saw complete."""
    started = time.perf_counter()
    try:
        with telemetry.span("reconcile"):
            yield
    except Exception:
        count_error("pass")
        raise
    finally:
        _reconcile_duration.record(time.perf_counter() - started)
        _SCANS.observe(store)


class _ScanDurations:
    """Records each scan's duration once, when the operator first sees it complete.

    Scans that were already complete when this process started are not recorded again (a
    restart would otherwise count them twice); a histogram is per process, as Prometheus expects.
    """

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.since = datetime.now(UTC)
        self.lock = threading.Lock()

    def observe(self, store: Store) -> None:
        with store.lock:
            scans = list(store.objects["compliancescans"].values())
        with self.lock:
            for scan in scans:
                st = scan.status
                if st is None or st.phase is not ScanPhase.COMPLETE or scan.metadata.name in self.seen:
                    continue
                self.seen.add(scan.metadata.name)
                if st.start_time and st.completion_time and st.completion_time >= self.since:
                    seconds = (st.completion_time - st.start_time).total_seconds()
                    _scan_duration.record(max(0.0, seconds), {"profile": scan.spec.profile})
            if len(self.seen) > 10 * max(1, len(scans)):  # forget pruned scans
                self.seen &= {s.metadata.name for s in scans}


_SCANS = _ScanDurations()


def _latest_completed(scans: Iterable[ComplianceScan]) -> dict[str, ComplianceScan]:
    out: dict[str, ComplianceScan] = {}
    for scan in scans:
        st = scan.status
        if st is None or st.phase is not ScanPhase.COMPLETE or st.completion_time is None:
            continue
        best = out.get(scan.spec.profile)
        best_time = best.status.completion_time if best is not None and best.status else None
        if best_time is None or best_time < st.completion_time:
            out[scan.spec.profile] = scan
    return out


def _ratio(summary: Summary) -> float | None:
    score = summary.score()
    return None if score is None else score / 100.0


class StoreMetrics:
    """The observable instruments, each reading the store when Prometheus scrapes."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        meter: Meter | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        for what in ("pass", "step"):
            _reconcile_errors.add(0, {"what": what})  # the series exist (at 0) from the start, for alerts
        m = meter or telemetry.meter()
        for name, unit, help_, callback in (
            ("plumbob_profile_score_ratio", "", "Compliance score of the profile, 0-1: (pass+excepted) / (pass+excepted+fail+error) rules", self._score),  # noqa: E501
            ("plumbob_profile_rules", "", "Rules of the profile by status, exceptions applied", self._rules),
            ("plumbob_profile_last_successful_scan_timestamp_seconds", "s", "Completion time of the profile's latest completed scan", self._last_scan),  # noqa: E501
            ("plumbob_profile_scan_nodes", "", "Target nodes of the profile's latest completed scan by state", self._scan_nodes),  # noqa: E501
            ("plumbob_scans", "", "Scans kept in the cluster by profile and phase", self._scans),
            ("plumbob_rule_failing_nodes", "", "Nodes where the rule fails in the latest completed scan, exceptions applied", self._failing_nodes),  # noqa: E501
            ("plumbob_node_score_ratio", "", "Compliance score of a node's latest results, 0-1, exceptions applied", self._node_score),  # noqa: E501
            ("plumbob_exception_expiry_seconds", "s", "Seconds until the exception entry expires (negative: expired)", self._expiry),  # noqa: E501
        ):  # fmt: skip
            m.create_observable_gauge(name, [callback], unit=unit, description=help_)
        for name, help_, callback in (
            ("plumbob_drift_regressions_total", "Node results gone from pass to fail, summed over the profile's reports", self._regressions),  # noqa: E501
            ("plumbob_drift_restorations_total", "Node results gone from fail to pass, summed over the profile's reports", self._restorations),  # noqa: E501
        ):  # fmt: skip
            m.create_observable_counter(name, [callback], description=help_)

    def snapshot(self) -> Snapshot:
        """The store as it is now (shallow copies of its dicts: cheap even at thousands of nodes)."""
        return self.store.snapshot()

    # ---- per profile ------------------------------------------------------------------------
    def _score(self, _: CallbackOptions) -> Iterator[Observation]:
        for name, profile in self.snapshot().profiles.items():
            if profile.status and profile.status.score is not None:
                yield Observation(profile.status.score / 100.0, {"profile": name})

    def _rules(self, _: CallbackOptions) -> Iterator[Observation]:
        for name, profile in self.snapshot().profiles.items():
            summary = profile.status.summary if profile.status else None
            if summary is None:
                continue
            for status in ResultStatus:
                field = "pass_" if status is ResultStatus.PASS else status.value.replace("-", "_")
                yield Observation(getattr(summary, field), {"profile": name, "status": status.value})

    def _last_scan(self, _: CallbackOptions) -> Iterator[Observation]:
        for profile, scan in _latest_completed(self.snapshot().scans.values()).items():
            assert scan.status is not None and scan.status.completion_time is not None
            yield Observation(scan.status.completion_time.timestamp(), {"profile": profile})

    def _scan_nodes(self, _: CallbackOptions) -> Iterator[Observation]:
        for profile, scan in _latest_completed(self.snapshot().scans.values()).items():
            nodes = (scan.status.nodes if scan.status else None) or NodeProgress()
            for state, field in NODE_STATES.items():
                yield Observation(getattr(nodes, field), {"profile": profile, "state": state})

    def _scans(self, _: CallbackOptions) -> Iterator[Observation]:
        snap = self.snapshot()
        counts = {(p, phase.value): 0 for p in snap.profiles for phase in ScanPhase}
        for scan in snap.scans.values():
            phase = (scan.status.phase if scan.status else None) or ScanPhase.PENDING
            key = (scan.spec.profile, phase.value)
            counts[key] = counts.get(key, 0) + 1
        for (profile, phase_name), n in counts.items():
            yield Observation(n, {"profile": profile, "phase": phase_name})

    def _drift(self, key: str) -> Iterator[Observation]:
        snap = self.snapshot()
        totals = dict.fromkeys(snap.profiles, 0)
        for report in snap.reports.values():
            drift = report.status.get("drift") or {}
            totals[report.profile] = totals.get(report.profile, 0) + int(drift.get(key) or 0)
        for profile, total in totals.items():
            yield Observation(total, {"profile": profile})

    def _regressions(self, _: CallbackOptions) -> Iterator[Observation]:
        return self._drift("regressionTotal")

    def _restorations(self, _: CallbackOptions) -> Iterator[Observation]:
        return self._drift("restorationTotal")

    # ---- per rule, per node -------------------------------------------------------------------
    def _failing_nodes(self, _: CallbackOptions) -> Iterator[Observation]:
        for profile, scan in _latest_completed(self.snapshot().scans.values()).items():
            for rule in scan.status.rules if scan.status else []:
                severity = rule.severity.value if rule.severity else "unknown"
                labels = {"profile": profile, "rule": rule.id, "severity": severity}
                yield Observation(rule.fail_count, labels)

    def _node_score(self, _: CallbackOptions) -> Iterator[Observation]:
        for report in self.snapshot().reports.values():
            if report.node is None or not report.status.get("summary"):
                continue
            ratio = _ratio(Summary.model_validate(report.status["summary"]))
            if ratio is not None:
                yield Observation(ratio, {"profile": report.profile, "node": report.node})

    # ---- exceptions ------------------------------------------------------------------------------
    def _expiry(self, _: CallbackOptions) -> Iterator[Observation]:
        snap = self.snapshot()
        now = self.clock()
        for entry in excepting.flatten([*snap.cluster_exceptions, *snap.exceptions]):
            yield Observation(
                (entry.expires_at - now).total_seconds(),
                {
                    "kind": entry.key.kind,
                    "namespace": entry.key.namespace or "",
                    "exception": entry.key.name,
                    "entry": str(entry.key.index),
                    "owner": entry.owner,
                },
            )
