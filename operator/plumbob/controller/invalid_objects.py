"""Objects the store could not parse into a model (a spec that got past admission but not our
checks): each version of such an object is reported once per process, with an ``InvalidSpec``
(``InvalidSchedule`` for a schedule, ``InvalidReport`` for a report) Warning Event, and a status
that kstatus and the documented Argo CD check read as failed: ``observedGeneration`` current,
``Stalled=True`` and ``Ready=False`` with the problems named by field, ``Reconciling=False``,
built through the status model of the object's kind (:data:`STATUS_MODELS`).
Derived fields that would claim the object works (a schedule's ``nextScheduleTime``, an
exception list's entry states) are cleared; the rest of the last good status (a profile's last
scan and summary) is kept.

Jobs and Nodes get neither. An object that becomes valid or is deleted is forgotten, and each new
bad edit (a new generation, or a new message) is reported again.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from plumbob.api.common import Model
from plumbob.api.exceptions import ExceptionStatus
from plumbob.api.profiles import ComplianceProfileStatus
from plumbob.api.reports import ComplianceReportStatus
from plumbob.api.scans import ComplianceScanStatus
from plumbob.api.schedules import ComplianceScheduleStatus
from plumbob.controller.context import Context, built_status, conditions
from plumbob.controller.kinds import OWN_KINDS
from plumbob.controller.store import Invalid, Snapshot
from plumbob.kube import KubeError

log = logging.getLogger("plumbob.controller")

# The model each kind's status is built through (a misspelt field raises instead of being pruned).
STATUS_MODELS: dict[str, type[Model]] = {
    "complianceprofiles": ComplianceProfileStatus,
    "complianceschedules": ComplianceScheduleStatus,
    "complianceexceptions": ExceptionStatus,
    "clustercomplianceexceptions": ExceptionStatus,
    "compliancescans": ComplianceScanStatus,
    "compliancereports": ComplianceReportStatus,
}
# Status fields that describe a working object; an unusable one must not keep showing them.
CLAIMS = {
    "complianceschedules": ("nextScheduleTime",),
    # a list that cannot be parsed applies no entry: its entry states and next expiry would lie
    "complianceexceptions": ("entries", "summary", "nextExpiry"),
    "clustercomplianceexceptions": ("entries", "summary", "nextExpiry"),
}


def _reason(plural: str) -> str:
    return {"complianceschedules": "InvalidSchedule", "compliancereports": "InvalidReport"}.get(
        plural, "InvalidSpec"
    )


def failed_status(bad: Invalid, now: datetime) -> dict[str, Any]:
    """The status of an object that cannot be used, built through its kind's status model: failed
    for kstatus, with the claims of a working object (:data:`CLAIMS`) removed."""
    reason = _reason(bad.kind)
    status: dict[str, Any] = {
        "observedGeneration": bad.generation,
        "conditions": conditions(
            [],
            bad.generation,
            now,
            {
                "Ready": (False, reason, "the spec cannot be used; see Stalled"),
                "Stalled": (True, reason, bad.message[:1000]),
                "Reconciling": (False, reason, "nothing to do until the spec is fixed"),
            },
        ),
    }
    status |= dict.fromkeys(CLAIMS.get(bad.kind, ()))
    return built_status(STATUS_MODELS[bad.kind], status)


class InvalidObjects:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._reported: set[tuple[str, str, str, int | None, str]] = set()

    @staticmethod
    def _key(bad: Invalid) -> tuple[str, str, str, int | None, str]:
        return (bad.kind, bad.namespace or "", bad.name, bad.generation, bad.message)

    def reconcile(self, snap: Snapshot) -> None:
        """Report each invalid object version not reported yet: an Event and a failed status."""
        # Forget objects that became valid or were deleted, so breaking them again is reported again.
        self._reported &= {self._key(b) for b in snap.invalid}
        for bad in snap.invalid:
            key = self._key(bad)
            if key in self._reported or bad.kind not in OWN_KINDS:
                continue
            self._reported.add(key)
            reason = _reason(bad.kind)
            involved = {
                "apiVersion": "plumbob.dev/v1alpha1",
                "kind": OWN_KINDS[bad.kind],
                "name": bad.name,
                "uid": bad.uid,
                "namespace": bad.namespace or "",
            }
            status = failed_status(bad, self.ctx.clock())
            self.ctx.event(involved, "Warning", reason, bad.message)
            try:
                self.ctx.kube.patch_status(bad.kind, bad.name, status, bad.namespace)
            except KubeError as exc:
                log.warning("could not mark %s %s stalled: %s", OWN_KINDS[bad.kind], bad.name, exc)
