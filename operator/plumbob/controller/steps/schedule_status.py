"""ComplianceSchedule: due ticks start scans; the status says when, or why never.

It decides and writes, for each schedule:

- a due tick (:func:`~plumbob.controller.decisions.schedules.due_tick`, in the schedule's time zone) creates
  one scan per covered profile, or a ``ScanSkipped`` Event when that profile's scan is still
  running, and moves ``lastScheduleTime`` to the tick (unless the schedule is suspended);
- status: last and next tick, the covered profiles that exist, conditions ``Ready`` (``Scheduled``
  or ``Suspended``, naming missing profiles), ``Stalled`` and ``Reconciling``;
- a cron expression that never fires or cannot be parsed: ``Stalled`` with the reason and one
  ``InvalidSchedule`` Event when the status changes to say so.

Which profiles a schedule covers is decided in
:mod:`~plumbob.controller.decisions.scan_settings`; :mod:`~plumbob.controller.launching` creates
the scans.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from plumbob.api.schedules import ComplianceScheduleStatus
from plumbob.controller.context import Context, built_status, conditions, iso, ref, stalled
from plumbob.controller.decisions.scan_settings import covered_profiles, running_scan
from plumbob.controller.decisions.schedules import ScheduleError, due_tick, parse_cron
from plumbob.controller.launching import create_scan
from plumbob.controller.store import Snapshot


def reconcile(ctx: Context, snap: Snapshot, now: datetime) -> float:
    """Fire due ticks and write every schedule's status; the seconds until the next tick."""
    wait = 30.0
    for sched in snap.schedules.values():
        with ctx.isolated("schedule", sched.metadata.name, ref(sched)):
            meta, status = sched.metadata, sched.status
            current = status.to_dict() if status else {}
            conds = list(status.conditions) if status else []
            try:
                cron = parse_cron(sched.spec.schedule, sched.spec.time_zone)
            except ScheduleError as exc:
                new: dict[str, Any] = {
                    "observedGeneration": meta.generation,
                    "nextScheduleTime": None,
                    "conditions": conditions(
                        conds,
                        meta.generation,
                        now,
                        stalled("InvalidSchedule", str(exc), "nothing to do until the schedule is fixed"),
                    ),
                }
                new = built_status(ComplianceScheduleStatus, new)
                if ctx.patch("complianceschedules", meta.name, current, new):
                    ctx.event(ref(sched), "Warning", "InvalidSchedule", str(exc))
                continue
            profiles = covered_profiles(sched, snap.profiles)
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
                        running = running_scan(snap.scans, name)
                        if running:
                            ctx.event(
                                ref(sched),
                                "Normal",
                                "ScanSkipped",
                                f"{name}: scan {running} is still running",
                                once=("ScanSkipped", meta.uid or meta.name, name, iso(tick)),
                            )
                            continue
                        create_scan(ctx, snap, profile, trigger="schedule", started=tick, schedule=sched)
                    last = tick
            nxt = cron.next_after(now)
            wait = min(wait, max(0.05, (nxt - now).total_seconds()))
            message = (
                f"next scan at {iso(nxt)}" if not sched.spec.suspend else "suspended: no new scans start"
            )
            health = {
                "Ready": (True, "Suspended" if sched.spec.suspend else "Scheduled", message),
                "Stalled": (False, "Valid", "the schedule is valid"),
                "Reconciling": (False, "Idle", "waiting for the next tick"),
            }
            problem = None
            if missing:
                problem = ("ProfileNotFound", f"spec.profiles: no such profile: {', '.join(missing)}")
            elif not profiles:
                problem = (
                    "NoProfilesSelected",
                    "spec.profileSelector matches no profile: the schedule scans nothing",
                )
            if problem is not None:
                health = stalled(problem[0], problem[1], "waiting for the profiles to exist")
            new = {
                "observedGeneration": meta.generation,
                "lastScheduleTime": iso(last),
                "nextScheduleTime": None if sched.spec.suspend else iso(nxt),
                "profiles": [p for p in profiles if p in snap.profiles],
                "conditions": conditions(conds, meta.generation, now, health),
            }
            new = built_status(ComplianceScheduleStatus, new)
            was = next((c.message for c in conds if c.type == "Stalled" and c.status == "True"), None)
            if ctx.patch("complianceschedules", meta.name, current, new) and problem and was != problem[1]:
                ctx.event(ref(sched), "Warning", problem[0], problem[1])
    return wait
