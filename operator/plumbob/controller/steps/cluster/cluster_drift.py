"""Drift of cluster-level results: ``ComplianceDrift`` and ``ComplianceRestored`` Events.

Each evaluation of a profile's cluster rules is compared with the report it replaces: a (rule,
object) pair that fails now and did not before is a violation that appeared; one that failed
before and does not now (fixed, or the object is gone) is one that was restored. The first report
of a profile is the baseline and announces nothing, as a node's first audit does.

Events are aggregated and rate-limited, so that a bad rollout gives a handful of Events, not one
per object:

- on the profile, one ``ComplianceDrift`` (and one ``ComplianceRestored``) per evaluation that
  changed something, naming the first changes and how many there are in all;
- on each object, one ``ComplianceDrift``/``ComplianceRestored`` naming its rules (so ``kubectl
  describe`` shows it), at most :data:`OBJECT_EVENTS_PER_MINUTE` per profile and minute (a token
  bucket); objects beyond that are counted in the profile's Event. An object that no longer
  exists gets none.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from plumbob.api.profiles import ComplianceProfile
from plumbob.controller.context import Context, ref

OBJECT_EVENTS_PER_MINUTE = 30
LISTED = 10  # changes named in the profile's Event


@dataclass(frozen=True, order=True)
class Violation:
    """One rule failing on one API object."""

    rule: str
    api_group: str
    kind: str
    namespace: str | None
    name: str

    def key(self) -> tuple[str, str, str | None, str]:
        return (self.api_group, self.kind, self.namespace, self.name)

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.rule} on {self.kind} {where}{self.name}"


class _Bucket:
    """A token bucket: ``rate`` tokens per minute, at most ``rate`` saved up."""

    def __init__(self, rate: int, clock: Callable[[], float]) -> None:
        self.rate, self.clock = rate, clock
        self.tokens, self.at = float(rate), clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(float(self.rate), self.tokens + (now - self.at) * self.rate / 60.0)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class DriftEvents:
    """Announces the difference between two sets of violations of one profile."""

    def __init__(self, ctx: Context, clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def announce(
        self,
        profile: ComplianceProfile,
        before: set[Violation],
        after: set[Violation],
        objects: Mapping[tuple[str, str, str | None, str], Mapping[str, str]],
    ) -> None:
        """``objects``: what each existing object's Event names (apiVersion, kind, namespace, name, uid)."""
        appeared, restored = sorted(after - before), sorted(before - after)
        name = profile.metadata.name or ""
        with self._lock:
            bucket = self._buckets.setdefault(name, _Bucket(OBJECT_EVENTS_PER_MINUTE, self.clock))
        for changes, type_, reason, verb in (
            (appeared, "Warning", "ComplianceDrift", "now fails"),
            (restored, "Normal", "ComplianceRestored", "no longer fails"),
        ):
            if not changes:
                continue
            quiet = 0
            by_object: dict[tuple[str, str, str | None, str], list[str]] = {}
            for v in changes:
                by_object.setdefault(v.key(), []).append(v.rule)
            for key, rules in by_object.items():
                involved = objects.get(key)
                if involved is None:
                    continue  # the object is gone: nothing to describe it on
                if not bucket.take():
                    quiet += 1
                    continue
                said = f"rule {rules[0]}" if len(rules) == 1 else f"rules {', '.join(rules)}"
                self.ctx.event(dict(involved), type_, reason, f"profile {name}: {said} {verb} on this object")
            self.ctx.event(ref(profile), type_, reason, _summary(changes, verb, quiet))


def _summary(changes: Iterable[Violation], verb: str, quiet: int) -> str:
    changes = list(changes)
    shown = ", ".join(str(v) for v in changes[:LISTED])
    more = f" and {len(changes) - LISTED} more" if len(changes) > LISTED else ""
    held = f" ({quiet} object(s) not told on the object itself: rate limit)" if quiet else ""
    return f"{len(changes)} cluster-level result(s) {verb}: {shown}{more}{held}"
