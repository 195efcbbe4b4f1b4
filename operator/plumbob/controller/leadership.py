"""Leader election between operator replicas through a ``coordination.k8s.io/v1`` Lease.

Every replica watches (so a standby's store is current when it takes over); only the replica
holding the Lease reconciles. Why a Lease and not kopf's peering:
``docs/decisions/2026-12-02-leader-election-lease.md``.

The rules are those of client-go's leader election, in two parts:

- :func:`decide` is pure: from the Lease as read, who we are, what we observed before and the
  clock, it says whether to take the Lease, renew it, or stand by, and gives the body to write.
  A Lease held by another replica counts as expired only when *we* have seen its record
  unchanged for a whole ``leaseDurationSeconds`` (measured on our own monotonic clock, so clock
  skew between machines does not matter).
- :class:`Elector` is the loop: every ``retry_period`` it reads the Lease and writes what
  :func:`decide` says, with the read's ``resourceVersion`` so two replicas taking the same
  expired Lease cannot both win. It holds leadership only while its last successful renewal is
  younger than ``renew_deadline`` (shorter than the lease duration), so it stops reconciling
  before any other replica may start.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from plumbob.kube import Kube, KubeError

log = logging.getLogger("plumbob.controller.leadership")
LEASE_NAME = "plumbob-operator"
DEFAULT_LEASE_SECONDS = 15


def default_identity() -> str:
    """The Pod's name in a cluster (a restarted container takes its own Lease back at once);
    host and a random suffix for a local process, so two processes on one host never share one."""
    pod = os.environ.get("PLUMBOB_POD_NAME")
    return pod or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


def micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Action(StrEnum):
    ACQUIRE = "acquire"  # create the Lease, or take over an expired or released one
    RENEW = "renew"  # we hold it: write a new renewTime
    STANDBY = "standby"  # another replica holds a live Lease


@dataclass(frozen=True)
class Observation:
    """The holder, renewTime and version we last saw, and when (our monotonic clock) they changed."""

    record: tuple[str, str, str]
    since: float


@dataclass(frozen=True)
class Decision:
    action: Action
    body: dict[str, Any] | None  # the Lease to create or replace; None when standing by
    observation: Observation


def _record(lease: dict[str, Any] | None) -> tuple[str, str, str]:
    """Who holds the Lease, and its version: any write (a renewal) changes the version."""
    spec = (lease or {}).get("spec") or {}
    version = ((lease or {}).get("metadata") or {}).get("resourceVersion") or ""
    return (str(spec.get("holderIdentity") or ""), str(spec.get("renewTime") or ""), str(version))


def decide(
    lease: dict[str, Any] | None,
    *,
    identity: str,
    namespace: str,
    name: str,
    duration_seconds: int,
    previous: Observation | None,
    monotonic: float,
    now: datetime,
) -> Decision:
    record = _record(lease)
    observation = (
        previous if previous is not None and previous.record == record else Observation(record, monotonic)
    )
    holder = record[0]
    spec = dict((lease or {}).get("spec") or {})
    if lease is None:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "holderIdentity": identity,
                "leaseDurationSeconds": duration_seconds,
                "acquireTime": micro_time(now),
                "renewTime": micro_time(now),
                "leaseTransitions": 0,
            },
        }
        return Decision(Action.ACQUIRE, body, observation)
    held_by_other = bool(holder) and holder != identity
    their_duration = int(spec.get("leaseDurationSeconds") or duration_seconds)
    if held_by_other and monotonic - observation.since < their_duration:
        return Decision(Action.STANDBY, None, observation)
    new_spec = {**spec, "holderIdentity": identity, "leaseDurationSeconds": duration_seconds}
    new_spec["renewTime"] = micro_time(now)
    action = Action.RENEW if holder == identity else Action.ACQUIRE
    if action is Action.ACQUIRE:
        new_spec["acquireTime"] = micro_time(now)
        new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
    body = {**lease, "spec": new_spec}
    return Decision(action, body, observation)


def released(lease: dict[str, Any]) -> dict[str, Any]:
    """The Lease given up on a clean shutdown: no holder, so the next replica need not wait."""
    spec = {**(lease.get("spec") or {}), "holderIdentity": None, "leaseDurationSeconds": 1}
    return {**lease, "spec": spec}


@dataclass
class Elector:
    """Keeps trying to hold the Lease; :meth:`leading` says whether this replica may reconcile."""

    kube: Kube
    namespace: str
    name: str = LEASE_NAME
    identity: str = field(default_factory=default_identity)
    duration_seconds: int = DEFAULT_LEASE_SECONDS
    on_change: Callable[[bool], None] = lambda _leading: None
    monotonic: Callable[[], float] = time.monotonic
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _observation: Observation | None = None
    _renewed_at: float | None = None
    _lease: dict[str, Any] | None = None
    _was_leading: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def renew_deadline(self) -> float:
        return self.duration_seconds * 2 / 3

    @property
    def retry_period(self) -> float:
        return max(0.5, self.duration_seconds / 7.5)

    def leading(self) -> bool:
        with self._lock:
            return self._renewed_at is not None and self.monotonic() - self._renewed_at < self.renew_deadline

    def try_once(self) -> bool:
        """One read and at most one write; returns whether this replica leads afterwards."""
        try:
            lease = self.kube.get_lease(self.namespace, self.name)
            decision = decide(
                lease,
                identity=self.identity,
                namespace=self.namespace,
                name=self.name,
                duration_seconds=self.duration_seconds,
                previous=self._observation,
                monotonic=self.monotonic(),
                now=self.clock(),
            )
            self._observation = decision.observation
            if decision.body is not None:
                if lease is None:
                    written = self.kube.create_lease(self.namespace, decision.body)
                else:
                    written = self.kube.replace_lease(self.namespace, decision.body)
                with self._lock:
                    self._renewed_at = self.monotonic()
                    self._lease = written
                self._observation = Observation(_record(written), self.monotonic())
                if decision.action is Action.ACQUIRE:
                    log.info(
                        "leader election: %s now holds lease %s/%s", self.identity, self.namespace, self.name
                    )
        except KubeError as exc:
            # A conflict means another replica wrote first; anything else is an unreachable API.
            # Either way we did not renew: leading() turns false once the renew deadline passes.
            log.info("leader election: lease %s/%s not written (%s)", self.namespace, self.name, exc)
        return self._report()

    def _report(self) -> bool:
        leading = self.leading()
        if leading != self._was_leading:
            if not leading:
                log.warning("leader election: %s lost lease %s/%s", self.identity, self.namespace, self.name)
            self._was_leading = leading
            self.on_change(leading)
        return leading

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.try_once()
            except Exception:  # an unreachable API server (a refused connection is not a KubeError)
                log.exception(
                    "leader election: lease %s/%s not read; trying again", self.namespace, self.name
                )
                self._report()  # leading() turns false once the renew deadline passes
            stop.wait(self.retry_period)

    def release(self) -> None:
        """Give the Lease up if we hold it (a clean stop, after the reconciler has stopped); a
        killed replica's Lease simply expires."""
        with self._lock:
            lease, held = self._lease, self._renewed_at is not None
            self._renewed_at = None
        if lease is None or not held:
            return
        try:
            self.kube.replace_lease(self.namespace, released(lease))
            log.info("leader election: %s released lease %s/%s", self.identity, self.namespace, self.name)
        except KubeError as exc:
            log.info("leader election: release of %s/%s failed (%s)", self.namespace, self.name, exc)
        if self._was_leading:
            self._was_leading = False
            self.on_change(False)


def _watch_term(
    elector: Elector,
    stop: threading.Event,
    over: threading.Event,
    changed: threading.Event,
    wake: threading.Event,
) -> None:
    """Ends the term (``over``) as soon as this replica no longer leads, and wakes the reconciler."""
    while not (stop.is_set() or over.is_set()):
        if not elector.leading():
            break
        changed.wait(timeout=0.5)
        changed.clear()
    over.set()
    wake.set()


def lead_while_elected(
    elector: Elector,
    stop: threading.Event,
    changed: threading.Event,
    wake: threading.Event,
    work: Callable[[threading.Event], None],
) -> None:
    """Run ``work(term_over)`` for each term this replica leads, until ``stop``.

    ``work`` must return soon after ``term_over`` is set (the reconciler finishes its pass and
    returns; ``wake`` interrupts its sleep). ``changed`` is set by the elector on every change.
    """
    while not stop.is_set():
        if not elector.leading():
            changed.wait(timeout=elector.retry_period)
            changed.clear()
            continue
        over = threading.Event()
        watcher = threading.Thread(
            target=_watch_term, args=(elector, stop, over, changed, wake), name="plumbob-term", daemon=True
        )
        watcher.start()
        log.info("leading: reconciling")
        try:
            work(over)
        except Exception:  # the term ends; the next one starts afresh (this loop must not die)
            log.exception("the reconciler stopped with an error; its term ends")
            stop.wait(elector.retry_period)
        finally:
            over.set()
            watcher.join()
        if not stop.is_set():
            log.warning("no longer leading: reconciler paused")
