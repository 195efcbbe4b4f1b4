"""Starting a scan of a profile: shared by the schedule step (a due tick), the profile step (a
rescan request) and tools that start a scan themselves.

:func:`create_scan` creates a ``ComplianceScan`` named after the profile and the trigger's moment,
owned by the profile, with the parallelism and node deadline of the schedule that covers the
profile (:func:`~plumbob.controller.decisions.scan_settings.schedule_for`); a second trigger for
the same moment hits the existing name and creates nothing. It posts a ``ScanCreated`` Event on
the profile and puts the scan into the store, so the rest of the pass sees it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from plumbob.api import ComplianceProfile, ComplianceSchedule
from plumbob.api.common import scan_name
from plumbob.controller.context import Context, ref
from plumbob.controller.decisions.scan_settings import schedule_for
from plumbob.controller.store import Snapshot
from plumbob.kube import ConflictError, KubeError

log = logging.getLogger("plumbob.controller")


def create_scan(
    ctx: Context,
    snap: Snapshot,
    profile: ComplianceProfile,
    *,
    trigger: str,
    started: datetime,
    schedule: ComplianceSchedule | None = None,
    labels: dict[str, str] | None = None,
) -> str | None:
    """Create a scan of the profile; its name, or None when it exists already or cannot be created."""
    sched = schedule or schedule_for(snap.schedules.values(), snap.profiles, profile)
    name = scan_name(profile.metadata.name, started)
    spec: dict[str, Any] = {"profile": profile.metadata.name, "trigger": trigger}
    if sched is not None:
        # Without a schedule the settings stay open: a schedule applied together with the profile
        # (a GitOps folder) may arrive a moment later, and then governs this scan (see settings()).
        spec["maxParallelNodes"] = sched.spec.max_parallel_nodes
        spec["nodeDeadlineSeconds"] = sched.spec.node_deadline_seconds
    if profile.metadata.generation:
        spec["profileGeneration"] = profile.metadata.generation
    if trigger == "schedule" and sched is not None:
        spec["schedule"] = sched.metadata.name
    body = {
        "apiVersion": profile.api_version,
        "kind": "ComplianceScan",
        "metadata": {
            "name": name,
            "labels": {"plumbob.dev/profile": profile.metadata.name, **(labels or {})},
            "ownerReferences": [profile.owner_reference().to_dict()],
        },
        "spec": spec,
    }
    try:
        created = ctx.kube.create_object("compliancescans", body)
    except ConflictError:
        return None  # this tick's scan exists already: the trigger was handled before
    except KubeError as exc:
        log.warning("could not create scan for %s: %s", profile.metadata.name, exc)
        return None
    ctx.store.upsert("compliancescans", created)
    ctx.event(ref(profile), "Normal", "ScanCreated", f"scan {name} started ({trigger})")
    return name
