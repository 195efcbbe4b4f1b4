"""One holistic, level-based reconcile of everything Plumbob owns.

Every trigger (a watch event, a schedule tick, an expiry, a restart) wakes the same loop, which
reads the current :class:`~plumbob.controller.store.Snapshot`, decides, and writes only what
differs from what is stored. Running it twice in a row writes nothing the second time. Each step
lives in the module named after the kind whose status it writes:

1. :mod:`~plumbob.controller.steps.schedule_status`: due ticks create scans; status shows last/next
   tick, or ``Stalled`` for a bad cron;
2. :mod:`~plumbob.controller.steps.profile_status` (rescans): a new ``plumbob.dev/rescan`` annotation
   value on a profile creates a scan;
3. :mod:`~plumbob.controller.steps.report_status`: new raw results or changed exceptions → status with
   exceptions applied, drift against the baseline, drift Events;
4. :mod:`~plumbob.controller.steps.scan_status`: node states from Nodes, Jobs and reports; new Jobs up
   to the parallel limit; progress; completion with per-rule aggregation and drift; history
   pruned to the limit;
5. :mod:`~plumbob.controller.steps.profile_status`: summary, score, drift counters and conditions from
   the latest completed scan;
6. :mod:`~plumbob.controller.steps.cve_status`: the known Kubernetes CVEs of the API server's and the
   profile's nodes' versions (data shipped, or replaced by a ConfigMap);
7. :mod:`~plumbob.controller.steps.exception_status`: entry states (active / unused / expired),
   ``ExceptionExpired`` Events;
8. :mod:`~plumbob.controller.invalid_objects`: objects that could not be parsed are marked
   ``Stalled``, once;
9. :mod:`~plumbob.controller.steps.cluster.cluster_status`: each profile's cluster-level rules and custom
   rules, evaluated from API objects into its cluster-level report (every 30 s, and on a change).

The store is read again between steps, so each step sees what the earlier ones wrote. What the
steps share (client, store, settings, clock, writing only what changed) is
:class:`~plumbob.controller.context.Context`, which the reconciler is. Only :mod:`plumbob.kube`
talks to the API; these modules decide what to say.
"""

from __future__ import annotations

import logging
import threading
import time

from plumbob.controller.context import Clock, Context, Settings, utcnow
from plumbob.controller.decisions import excepting
from plumbob.controller.invalid_objects import InvalidObjects
from plumbob.controller.launching import create_scan
from plumbob.controller.metrics import reconcile_pass, step
from plumbob.controller.steps import (
    cve_status,
    exception_status,
    profile_status,
    schedule_status,
)
from plumbob.controller.steps.cluster.cluster_status import ClusterStatus
from plumbob.controller.steps.policy_reports import PolicyReportExport
from plumbob.controller.steps.report_status import ReportStatus
from plumbob.controller.steps.scan_status import ScanStatus
from plumbob.controller.store import Store
from plumbob.kube import Kube

__all__ = ["Reconciler", "Settings", "utcnow"]

log = logging.getLogger("plumbob.controller")


class Reconciler(Context):
    """The loop and the order of its steps; the steps' memory (rate limits, settled reports)."""

    def __init__(
        self, kube: Kube, store: Store, settings: Settings | None = None, clock: Clock = utcnow
    ) -> None:
        super().__init__(kube, store, settings, clock)
        self._reports = ReportStatus(self)
        self._scans = ScanStatus(self)
        self._invalid = InvalidObjects(self)
        self._cves = cve_status.CveSource(self)
        self._policy_reports = PolicyReportExport(self)
        self.cluster = ClusterStatus(self)  # public: tools and tests wait for its worker

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.store.wake.clear()
            try:
                with reconcile_pass(self.store):
                    delay = self.reconcile()
            except Exception:
                log.exception("reconcile failed; retrying")
                delay = 5.0
            time.sleep(self.settings.min_interval)
            self.store.wake.wait(timeout=max(0.0, min(delay, 30.0)))
        self.cluster.close()

    def reconcile(self) -> float:
        """One pass. Returns the seconds until the next pass is needed without any event.

        Each step runs isolated (and each step isolates its objects): a step that fails is logged
        and retried on the next pass, and the steps after it still run.
        """
        snap = self.store.snapshot()
        now = self.clock()
        waits = [30.0]
        with self.isolated("step", "schedules"):
            waits.append(step("schedules", schedule_status.reconcile, self, snap, now))
        with self.isolated("step", "rescans"):
            step("rescans", profile_status.handle_rescans, self, snap, now)
        snap = self.store.snapshot()
        entries = excepting.flatten([*snap.cluster_exceptions, *snap.exceptions], snap.entry_indices)
        with self.isolated("step", "reports"):
            step("reports", self._reports.reconcile, snap, entries, now)
        snap = self.store.snapshot()
        with self.isolated("step", "scans"):
            waits.append(step("scans", self._scans.reconcile, snap, entries, now))
        snap = self.store.snapshot()  # see the scans completed in this pass
        with self.isolated("step", "profiles"):
            step("profiles", profile_status.reconcile, self, snap, entries, now)
        snap = self.store.snapshot()
        with self.isolated("step", "kubernetes CVEs"):
            waits.append(step("cves", cve_status.reconcile, self, self._cves, snap))
        with self.isolated("step", "exceptions"):
            waits.append(step("exceptions", exception_status.reconcile, self, snap, entries, now))
        with self.isolated("step", "invalid objects"):
            step("invalid", self._invalid.reconcile, snap)
        with self.isolated("step", "policy reports"):
            step("policyreports", self._policy_reports.reconcile, self.store.snapshot())
        with self.isolated("step", "cluster rules"):
            waits.append(step("cluster", self.cluster.reconcile, self.store.snapshot(), entries, now))
        return max(0.05, min(waits))

    # Public for tools and tests that start a scan themselves: launching.create_scan as a method.
    create_scan = create_scan
