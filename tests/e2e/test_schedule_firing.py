"""Schedules on the real testbed.

Cases:
- a schedule with a per-minute cron fires: a scan with trigger ``schedule`` naming it appears,
  the schedule's status shows last and next tick, and the scan completes;
- a suspended schedule starts nothing and says so in its Ready condition;
- a cron that parses but can never fire (31 February) gives ``Stalled`` naming ``spec.schedule``
  and one ``InvalidSchedule`` Event; other schedules keep working.
"""

from __future__ import annotations

import pytest
from e2e_support import (
    MakeCluster,
    NodeSpec,
    Plumbob,
    apply,
    condition,
    events,
    get,
    items,
    profile_body,
    wait_for,
)

pytestmark = pytest.mark.e2e


def _schedule(name: str, cron: str, profiles: list[str], **spec: object) -> dict[str, object]:
    return {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceSchedule",
        "metadata": {"name": name},
        "spec": {"schedule": cron, "profiles": profiles, **spec},
    }


def test_schedules_fire_suspend_and_stall(plumbob: Plumbob, make_cluster: MakeCluster, run_id: str) -> None:
    cp = plumbob.cp
    make_cluster([NodeSpec(f"s-{run_id}")])
    fired, paused = f"cron-{run_id}", f"paused-{run_id}"
    apply(cp, profile_body(fired, run_id))
    apply(cp, profile_body(paused, run_id))
    apply(cp, _schedule(f"every-minute-{run_id}", "* * * * *", [fired], timeZone="Europe/Berlin"))
    apply(cp, _schedule(f"suspended-{run_id}", "* * * * *", [paused], suspend=True))
    apply(cp, _schedule(f"never-{run_id}", "0 0 31 2 *", [paused]))

    bad = wait_for(
        "the impossible schedule to stall",
        lambda: (
            (s := get(cp, "complianceschedule", f"never-{run_id}"))
            and (condition(s, "Stalled") or {}).get("status") == "True"
            and s
        ),
    )
    assert "spec.schedule" in condition(bad, "Stalled")["message"]  # type: ignore[index]
    assert (
        len(wait_for("InvalidSchedule event", lambda: events(cp, "InvalidSchedule", f"never-{run_id}"))) == 1
    )

    def scheduled_scan() -> dict[str, object] | None:
        for scan in items(cp, "compliancescans"):
            if scan["spec"]["profile"] == fired and scan["spec"]["trigger"] == "schedule":
                return scan
        return None

    scan = wait_for("the per-minute schedule to fire", scheduled_scan, timeout=110)
    assert scan["spec"]["schedule"] == f"every-minute-{run_id}"  # type: ignore[index]
    sched = wait_for(
        "schedule status",
        lambda: (
            (s := get(cp, "complianceschedule", f"every-minute-{run_id}"))
            and (s.get("status") or {}).get("lastScheduleTime")
            and s
        ),
    )
    assert sched["status"]["nextScheduleTime"] > sched["status"]["lastScheduleTime"]
    wait_for(
        "the scheduled scan to complete",
        lambda: (
            (s := get(cp, "compliancescan", scan["metadata"]["name"]))  # type: ignore[index]
            and (s.get("status") or {}).get("phase") == "Complete"
        ),
        timeout=90,
    )

    suspended = get(cp, "complianceschedule", f"suspended-{run_id}")
    assert suspended is not None and condition(suspended, "Ready")["reason"] == "Suspended"  # type: ignore[index]
    assert not [s for s in items(cp, "compliancescans") if s["spec"]["profile"] == paused]
    assert len(events(cp, "InvalidSchedule", f"never-{run_id}")) == 1  # not one per reconcile
