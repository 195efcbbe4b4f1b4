"""Cron schedules in a time zone, as pure functions of an injected clock (no sleeps).

Cases:
- next/previous tick in UTC and in Europe/Berlin (winter and summer offsets);
- spring forward (2025-03-30, 02:00 → 03:00 CEST): a daily 02:30 tick, which does not exist that
  day, fires once, at 03:00 CEST; an hourly schedule has no 02:00 local tick that day;
- fall back (2025-10-26, 03:00 CEST → 02:00 CET): ``previous_at_or_before`` agrees with
  ``next_after`` on every tick; a daily 02:30 schedule polled every minute fires exactly once
  that day; an hourly schedule polled every minute fires once per real hour, none skipped;
- ``due_tick``: nothing before the schedule was created (including a tick at the creation
  instant of a fired schedule), the tick at creation fires for a new schedule, one catch-up tick
  (the most recent) after downtime, never a burst, never the same tick twice;
- ``parse_cron`` errors name ``spec.schedule`` / ``spec.timeZone``; macros and the UTC default;
- whether an expression ever fires is decided without the clock: ``0 0 31 2 *`` is refused with
  the same message, a leap day (``0 0 29 2 *``, every four years) is accepted.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Self

import pytest

from plumbob.controller.decisions import schedules
from plumbob.controller.decisions.schedules import Cron, ScheduleError, due_tick, parse_cron

BERLIN = "Europe/Berlin"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def poll(
    cron: Cron,
    start: datetime,
    end: datetime,
    *,
    created: datetime | None = None,
    step: timedelta = timedelta(minutes=1),
) -> list[tuple[datetime, datetime]]:
    """Simulate the operator polling every ``step``: (when it fired, the tick it fired)."""
    fired: list[tuple[datetime, datetime]] = []
    last: datetime | None = None
    now = start
    while now <= end:
        tick = due_tick(cron, last_fired=last, created=created or start, now=now)
        if tick is not None:
            fired.append((now, tick))
            last = tick
        now += step
    return fired


# ---- next / previous ------------------------------------------------------------------------------


def test_utc_default_next_and_previous() -> None:
    cron = parse_cron("0 3 * * *", None)
    assert cron.zone.key == "UTC"
    assert cron.next_after(utc(2025, 1, 10, 2, 59)) == utc(2025, 1, 10, 3, 0)
    assert cron.next_after(utc(2025, 1, 10, 3, 0)) == utc(2025, 1, 11, 3, 0), "strictly after"
    assert cron.previous_at_or_before(utc(2025, 1, 10, 3, 0)) == utc(2025, 1, 10, 3, 0), "at counts"
    assert cron.previous_at_or_before(utc(2025, 1, 10, 2, 59, 59)) == utc(2025, 1, 9, 3, 0)


def test_berlin_offsets_winter_and_summer() -> None:
    cron = parse_cron("0 3 * * *", BERLIN)
    assert cron.next_after(utc(2025, 1, 10, 0, 0)) == utc(2025, 1, 10, 2, 0)  # CET, +01:00
    assert cron.next_after(utc(2025, 7, 10, 0, 0)) == utc(2025, 7, 10, 1, 0)  # CEST, +02:00
    assert cron.next_after(utc(2025, 1, 10, 0, 0)).tzinfo is not None


def test_macros_parse() -> None:
    assert parse_cron("@daily", None).next_after(utc(2025, 1, 10, 12)) == utc(2025, 1, 11, 0, 0)
    assert parse_cron("@hourly", BERLIN).next_after(utc(2025, 1, 10, 12, 1)) == utc(2025, 1, 10, 13, 0)


# ---- DST: spring forward ----------------------------------------------------------------------------


def test_spring_forward_nonexistent_local_time_fires_once_after_the_jump() -> None:
    cron = parse_cron("30 2 * * *", BERLIN)
    # 02:30 does not exist on 2025-03-30; the tick moves to 03:00 CEST = 01:00 UTC.
    assert cron.next_after(utc(2025, 3, 29, 12)) == utc(2025, 3, 30, 1, 0)
    assert cron.next_after(utc(2025, 3, 30, 1, 0)) == utc(2025, 3, 31, 0, 30)
    fired = poll(cron, utc(2025, 3, 29, 12), utc(2025, 3, 30, 23))
    assert [tick for _, tick in fired] == [utc(2025, 3, 30, 1, 0)]


def test_spring_forward_daily_at_three_is_one_hour_earlier_in_utc() -> None:
    cron = parse_cron("0 3 * * *", BERLIN)
    assert cron.next_after(utc(2025, 3, 29, 12)) == utc(2025, 3, 30, 1, 0)
    assert cron.previous_at_or_before(utc(2025, 3, 30, 0, 59)) == utc(2025, 3, 29, 2, 0)


def test_spring_forward_hourly_polled_every_minute() -> None:
    cron = parse_cron("0 * * * *", BERLIN)
    fired = poll(cron, utc(2025, 3, 29, 21, 30), utc(2025, 3, 30, 3, 30))
    ticks = [tick for _, tick in fired]
    # Every real hour fires once (02:00 local does not exist, 03:00 CEST = 01:00 UTC does).
    assert ticks == [
        utc(2025, 3, 29, 22),
        utc(2025, 3, 29, 23),
        utc(2025, 3, 30, 0),
        utc(2025, 3, 30, 1),
        utc(2025, 3, 30, 2),
        utc(2025, 3, 30, 3),
    ]
    assert all(now == tick for now, tick in fired), "each tick fires on time"


# ---- DST: fall back ---------------------------------------------------------------------------------


@pytest.mark.parametrize("expression", ["30 2 * * *", "0 * * * *", "*/20 * * * *"])
def test_fall_back_previous_agrees_with_next(expression: str) -> None:
    """Every tick ``next_after`` announces (status.nextScheduleTime) is a tick ``previous`` finds."""
    cron = parse_cron(expression, BERLIN)
    moment = utc(2025, 10, 25, 21, 0)
    wrong = []
    while moment < utc(2025, 10, 26, 4, 0):
        tick = cron.next_after(moment)
        if cron.previous_at_or_before(tick) != tick:
            wrong.append((tick.isoformat(), cron.previous_at_or_before(tick).isoformat()))
        moment = tick
    assert wrong == []


def test_fall_back_daily_fires_once_that_day() -> None:
    # 02:30 local happens twice on 2025-10-26 (00:30 UTC in CEST, 01:30 UTC in CET).
    cron = parse_cron("30 2 * * *", BERLIN)
    fired = poll(cron, utc(2025, 10, 25, 12), utc(2025, 10, 26, 12))
    assert len(fired) == 1, f"a daily schedule fired {len(fired)} times on the fall-back day: {fired}"
    assert fired[0][0] == fired[0][1], "and on time"


def test_fall_back_hourly_fires_every_real_hour_on_time() -> None:
    cron = parse_cron("0 * * * *", BERLIN)
    fired = poll(cron, utc(2025, 10, 25, 21, 30), utc(2025, 10, 26, 3, 30))
    fired_at = [now for now, _ in fired]
    gaps = [b - a for a, b in itertools.pairwise(fired_at)]
    assert all(gap == timedelta(hours=1) for gap in gaps), f"firings at {fired_at}"
    assert len({tick for _, tick in fired}) == len(fired), "no tick fired twice"


# ---- due_tick ---------------------------------------------------------------------------------------


def test_no_firing_for_ticks_before_creation() -> None:
    cron = parse_cron("0 3 * * *", None)
    created = utc(2025, 1, 10, 12)
    assert due_tick(cron, last_fired=None, created=created, now=created) is None
    assert due_tick(cron, last_fired=None, created=created, now=utc(2025, 1, 11, 2, 59)) is None
    assert due_tick(cron, last_fired=None, created=created, now=utc(2025, 1, 11, 3, 0)) == utc(2025, 1, 11, 3)


def test_tick_at_the_creation_instant_fires_for_a_new_schedule() -> None:
    cron = parse_cron("0 3 * * *", None)
    created = utc(2025, 1, 10, 3, 0)
    assert due_tick(cron, last_fired=None, created=created, now=created) == created
    # ... but once fired it is not fired again.
    assert due_tick(cron, last_fired=created, created=created, now=utc(2025, 1, 10, 3, 0, 30)) is None


def test_one_catch_up_tick_after_downtime_never_a_burst() -> None:
    cron = parse_cron("0 * * * *", None)
    created = utc(2025, 1, 10, 0, 30)
    last = utc(2025, 1, 10, 1, 0)
    back = utc(2025, 1, 10, 7, 20)  # down from 01:05 to 07:20: ticks 02:00 … 07:00 missed
    tick = due_tick(cron, last_fired=last, created=created, now=back)
    assert tick == utc(2025, 1, 10, 7, 0), "the most recent missed tick"
    assert due_tick(cron, last_fired=tick, created=created, now=back) is None, "only one"
    assert due_tick(cron, last_fired=tick, created=created, now=back + timedelta(minutes=39)) is None
    assert due_tick(cron, last_fired=tick, created=created, now=utc(2025, 1, 10, 8, 0)) == utc(2025, 1, 10, 8)


def test_no_double_firing_of_the_same_tick() -> None:
    cron = parse_cron("*/15 * * * *", None)
    created = utc(2025, 1, 10, 0, 0, 5)
    fired = poll(cron, created, utc(2025, 1, 10, 2, 0, 30), step=timedelta(seconds=7))
    ticks = [tick for _, tick in fired]
    assert len(ticks) == len(set(ticks)) == 8
    assert ticks[0] == utc(2025, 1, 10, 0, 15)


def test_nothing_due_when_last_fired_is_the_latest_tick() -> None:
    cron = parse_cron("0 3 * * *", None)
    assert (
        due_tick(cron, last_fired=utc(2025, 1, 10, 3), created=utc(2025, 1, 1), now=utc(2025, 1, 11, 2, 59))
        is None
    )


# ---- parse errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("expression", ["61 * * * *", "0 3 * *", "", "0 25 * * *", "every day"])
def test_bad_cron_names_spec_schedule(expression: str) -> None:
    with pytest.raises(ScheduleError, match=r"^spec\.schedule"):
        parse_cron(expression, None)


def test_cron_that_never_fires_names_spec_schedule() -> None:
    with pytest.raises(ScheduleError, match=r"^spec\.schedule '0 0 31 2 \*' never fires"):
        parse_cron("0 0 31 2 *", BERLIN)


def test_whether_a_cron_ever_fires_is_decided_without_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoClock(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Self:
            raise AssertionError("a decision read the clock")

    monkeypatch.setattr(schedules, "datetime", NoClock)
    parse_cron.cache_clear()  # parsed afresh, not taken from an earlier test's call
    with pytest.raises(ScheduleError) as refused:
        parse_cron("0 0 31 2 *", BERLIN)
    assert str(refused.value) == "spec.schedule '0 0 31 2 *' never fires: failed to find next date"
    assert parse_cron("0 0 29 2 *", BERLIN).expression == "0 0 29 2 *"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe/Berlinn", "../etc/passwd"])
def test_bad_time_zone_names_spec_time_zone(zone: str) -> None:
    with pytest.raises(ScheduleError, match=r"^spec\.timeZone"):
        parse_cron("0 3 * * *", zone)


def test_schedule_error_is_a_value_error() -> None:
    assert issubclass(ScheduleError, ValueError)
