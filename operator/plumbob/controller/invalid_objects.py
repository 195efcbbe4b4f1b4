"""Objects the store could not parse into a model (a spec that got past admission but not our
checks): each is reported once per process, with an ``InvalidSpec`` (``InvalidSchedule`` for a
schedule) Warning Event and status conditions ``Stalled`` and ``Ready=False`` carrying the reason.

Jobs, Nodes and node reports get neither. An object that becomes valid or is deleted is
forgotten, so breaking it again is reported again.
"""

from __future__ import annotations

import logging

from plumbob.controller.context import Context, conditions
from plumbob.controller.store import Snapshot
from plumbob.kube import InvalidError, KubeError

log = logging.getLogger("plumbob.controller")


class InvalidObjects:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._reported: set[tuple[str, str, str]] = set()  # (plural, namespace, name) with an Event

    def reconcile(self, snap: Snapshot) -> None:
        """Report each invalid object not reported yet: an Event and a ``Stalled`` condition."""
        # Forget objects that became valid or were deleted, so breaking them again is reported again.
        self._reported &= {(b.kind, b.namespace or "", b.name) for b in snap.invalid}
        for bad in snap.invalid:
            key = (bad.kind, bad.namespace or "", bad.name)
            if key in self._reported or bad.kind in ("jobs", "nodes", "compliancereports"):
                continue
            self._reported.add(key)
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
            self.ctx.event(involved, "Warning", reason, bad.message)
            now = self.ctx.clock()
            stalled = conditions(
                [],
                None,
                now,
                {
                    "Stalled": (True, reason, bad.message[:1000]),
                    "Ready": (False, reason, "the spec cannot be used"),
                },
            )
            try:
                self.ctx.kube.patch_status(bad.kind, bad.name, {"conditions": stalled}, bad.namespace)
            except (KubeError, InvalidError) as exc:
                log.warning("could not mark %s %s stalled: %s", kind, bad.name, exc)
