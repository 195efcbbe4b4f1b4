"""Which schedule governs a profile's scans, with what settings, and whether a scan is running.

Pure: plain mappings of the parsed objects in, names and models out. Shared by the schedule
step (which profiles a tick scans), the profile step (rescans, what a profile waits for) and the
scan step (the parallelism and node deadline of a running scan, the history limit).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from plumbob.api import ComplianceProfile, ComplianceScan, ComplianceSchedule
from plumbob.api.scans import ScanPhase
from plumbob.api.schedules import DEFAULT_MAX_PARALLEL_NODES, DEFAULT_NODE_DEADLINE_SECONDS
from plumbob.controller.decisions.excepting import selector_matches


def covered_profiles(sched: ComplianceSchedule, profiles: Mapping[str, ComplianceProfile]) -> list[str]:
    """The profiles a schedule names, or those its ``profileSelector`` matches, sorted."""
    if sched.spec.profiles is not None:
        return sorted(sched.spec.profiles)
    selector = sched.spec.profile_selector
    if selector is None:
        return []
    return sorted(name for name, p in profiles.items() if selector_matches(selector, p.metadata.labels))


def schedule_for(
    schedules: Iterable[ComplianceSchedule],
    profiles: Mapping[str, ComplianceProfile],
    profile: ComplianceProfile,
) -> ComplianceSchedule | None:
    """The first schedule (by name) that covers the profile: its settings govern the profile's scans."""
    for sched in sorted(schedules, key=lambda s: s.metadata.name):
        if profile.metadata.name in covered_profiles(sched, profiles):
            return sched
    return None


def settings(
    scan: ComplianceScan,
    schedules: Iterable[ComplianceSchedule],
    profiles: Mapping[str, ComplianceProfile],
) -> ComplianceScan:
    """The scan with the parallelism and node deadline that govern it now: those recorded in its
    spec, else those of the schedule that covers its profile, else the defaults. So the order in
    which a profile and its schedule arrive does not change how the scan runs."""
    recorded = scan.spec.model_fields_set
    if {"max_parallel_nodes", "node_deadline_seconds"} <= recorded:
        return scan
    profile = profiles.get(scan.spec.profile)
    sched = schedule_for(schedules, profiles, profile) if profile is not None else None
    update = {}
    if "max_parallel_nodes" not in recorded:
        update["max_parallel_nodes"] = sched.spec.max_parallel_nodes if sched else DEFAULT_MAX_PARALLEL_NODES
    if "node_deadline_seconds" not in recorded:
        update["node_deadline_seconds"] = (
            sched.spec.node_deadline_seconds if sched else DEFAULT_NODE_DEADLINE_SECONDS
        )
    return scan.model_copy(update={"spec": scan.spec.model_copy(update=update)})


def running_scan(scans: Mapping[str, ComplianceScan], profile: str) -> str | None:
    """The name of a scan of the profile that has not finished, if any."""
    for name, scan in scans.items():
        phase = scan.status.phase if scan.status else None
        if scan.spec.profile == profile and phase not in (ScanPhase.COMPLETE, ScanPhase.FAILED):
            return name
    return None
