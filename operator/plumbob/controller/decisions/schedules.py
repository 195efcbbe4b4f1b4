"""When schedules fire: cron expressions in a time zone, as pure functions of an injected clock.

A schedule fires at most once per tick: if the operator was down across several ticks, it runs
one catch-up scan for the most recent missed tick (like a CronJob with ``concurrencyPolicy:
Forbid`` and no backlog), never a burst.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

# Where parse_cron starts looking for a first tick. A five-field expression (all the spec allows)
# that fires at all fires at least every eight years (29 February skips 2100), well within the
# 50 years croniter searches, so the answer is the same from any starting moment: a fixed one
# keeps this module free of the clock.
_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)


class ScheduleError(ValueError):
    """The cron expression or time zone cannot be used; the message names the problem."""


@dataclass(frozen=True)
class Cron:
    expression: str
    zone: ZoneInfo
    # [tick, next tick] around the moment last asked about: every moment in between has the same
    # previous and next tick, so the reconciler's passes between two ticks ask croniter nothing.
    _window: list[datetime] = field(default_factory=list, compare=False, repr=False)

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment``, in UTC.

        When a DST fall-back repeats an hour, a schedule with fixed hours fires at the first of
        the two identical wall-clock times only (as cron does); one with a wildcard hour fires
        every real hour.
        """
        window = self._window
        if window and window[0] <= moment < window[1]:
            return window[1]
        local = moment.astimezone(self.zone)
        tick: datetime = croniter(self.expression, local).get_next(datetime)
        tick = tick.astimezone(UTC)
        if self._fixed_hours and self._is_repeat(tick):
            return self.next_after(tick)
        return tick

    @property
    def _fixed_hours(self) -> bool:
        fields = croniter.expand(self.expression)[0]
        return len(fields) > 1 and fields[1] != ["*"]

    def _is_repeat(self, tick: datetime) -> bool:
        wall = tick.astimezone(self.zone).replace(tzinfo=None)
        first = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        return first < tick

    def previous_at_or_before(self, moment: datetime) -> datetime:
        """The latest tick at or before ``moment``, in UTC.

        Found by walking forward with :meth:`next_after` from a tick well before ``moment``, so
        the two always agree (croniter's backwards search is unreliable across a DST fall-back).
        """
        window = self._window
        if window and window[0] <= moment < window[1]:
            return window[0]
        local = moment.astimezone(self.zone) + timedelta(seconds=1)
        tick: datetime = croniter(self.expression, local).get_prev(datetime).astimezone(UTC)
        if tick > moment or (self._fixed_hours and self._is_repeat(tick)):  # start from well before
            seed = moment.astimezone(self.zone) - timedelta(days=2)
            tick = croniter(self.expression, seed).get_prev(datetime).astimezone(UTC)
        while True:
            following = self.next_after(tick)
            if following > moment:
                self._window[:] = [tick, following]
                return tick
            tick = following


@functools.lru_cache(maxsize=256)  # parsed once per expression and zone, not at every pass
def parse_cron(expression: str, time_zone: str | None) -> Cron:
    """Validate and build a :class:`Cron`; raise :class:`ScheduleError` naming the bad part."""
    zone_name = time_zone or "UTC"
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"spec.timeZone {zone_name!r} is not a known IANA time zone") from exc
    if not croniter.is_valid(expression):
        raise ScheduleError(
            f"spec.schedule {expression!r} is not a valid cron expression "
            "(five fields: minute hour day-of-month month day-of-week, or @hourly/@daily/@weekly)"
        )
    try:
        croniter(expression, _REFERENCE.astimezone(zone)).get_next(datetime)
    except (CroniterBadCronError, CroniterBadDateError) as exc:
        raise ScheduleError(f"spec.schedule {expression!r} never fires: {exc}") from exc
    return Cron(expression, zone)


def due_tick(cron: Cron, *, last_fired: datetime | None, created: datetime, now: datetime) -> datetime | None:
    """The tick to fire now, or ``None``.

    A tick is due when it is at or before ``now`` and after both the last fired tick and the
    schedule's creation (a new schedule does not fire for ticks before it existed).
    """
    latest = cron.previous_at_or_before(now)
    floor = max(created, last_fired) if last_fired else created
    if latest > floor or (last_fired is None and latest == floor):
        return latest
    return None
