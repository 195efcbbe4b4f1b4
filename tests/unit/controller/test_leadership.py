"""Leader election through a Lease: the decision rules and the elector's bookkeeping.

Cases:
- no Lease: create it, holding it, transitions 0;
- our own Lease: renew (acquireTime and transitions kept);
- another replica's Lease: stand by until *we* have seen it unchanged for its whole duration,
  however old its renewTime looks (clock skew does not matter), then take it over and count a
  transition; a renewal seen in between restarts the wait;
- a released Lease (no holder) is taken at once;
- the elector leads only while its last renewal is younger than the renew deadline, and a write
  that loses a race (409) does not make it leader;
- a released Lease is written with no holder.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from plumbob.controller.leadership import Action, Elector, Observation, decide, released
from plumbob.kube import ConflictError

NOW = datetime(2026, 12, 2, 1, 0, 0, tzinfo=UTC)


def lease(
    holder: str | None, renew: str = "2020-01-01T00:00:00.000000Z", transitions: int = 2
) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "plumbob-operator", "namespace": "ns", "resourceVersion": "7"},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "acquireTime": "2020-01-01T00:00:00.000000Z",
            "renewTime": renew,
            "leaseTransitions": transitions,
        },
    }


def run(current: dict[str, Any] | None, previous: Observation | None = None, at: float = 100.0) -> Any:
    return decide(
        current,
        identity="me",
        namespace="ns",
        name="plumbob-operator",
        duration_seconds=15,
        previous=previous,
        monotonic=at,
        now=NOW,
    )


def test_no_lease_creates_it() -> None:
    d = run(None)
    assert d.action is Action.ACQUIRE
    assert d.body["metadata"] == {"name": "plumbob-operator", "namespace": "ns"}
    assert d.body["spec"]["holderIdentity"] == "me"
    assert d.body["spec"]["renewTime"] == "2026-12-02T01:00:00.000000Z"
    assert d.body["spec"]["leaseTransitions"] == 0


def test_own_lease_is_renewed() -> None:
    d = run(lease("me"))
    assert d.action is Action.RENEW
    assert d.body["spec"]["renewTime"] == "2026-12-02T01:00:00.000000Z"
    assert d.body["spec"]["acquireTime"] == "2020-01-01T00:00:00.000000Z"
    assert d.body["spec"]["leaseTransitions"] == 2
    assert d.body["metadata"]["resourceVersion"] == "7"  # the write is conditional on what we read


def test_other_holder_waits_a_full_duration_of_our_own_observation() -> None:
    first = run(lease("other"), at=100.0)  # renewTime is years old, but we have only just seen it
    assert first.action is Action.STANDBY and first.body is None
    later = run(lease("other"), previous=first.observation, at=114.9)
    assert later.action is Action.STANDBY
    expired = run(lease("other"), previous=later.observation, at=115.0)
    assert expired.action is Action.ACQUIRE
    assert expired.body["spec"]["holderIdentity"] == "me"
    assert expired.body["spec"]["leaseTransitions"] == 3
    assert expired.body["spec"]["acquireTime"] == "2026-12-02T01:00:00.000000Z"


def test_a_renewal_restarts_the_wait() -> None:
    first = run(lease("other", renew="2026-12-02T00:59:50.000000Z"), at=100.0)
    renewed = run(lease("other", renew="2026-12-02T00:59:52.000000Z"), previous=first.observation, at=110.0)
    assert renewed.observation.since == 110.0
    assert (
        run(
            lease("other", renew="2026-12-02T00:59:52.000000Z"), previous=renewed.observation, at=120.0
        ).action
        is Action.STANDBY
    )


def test_released_lease_is_taken_at_once() -> None:
    d = run(lease(None))
    assert d.action is Action.ACQUIRE and d.body["spec"]["holderIdentity"] == "me"


def test_release_clears_the_holder() -> None:
    out = released(lease("me"))
    assert out["spec"]["holderIdentity"] is None
    assert out["metadata"]["resourceVersion"] == "7"


class FakeKube:
    """An in-memory Lease with the API server's optimistic concurrency (resourceVersion)."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.unreachable = False

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.lease)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)

    def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.lease is not None:
            raise ConflictError(409, "exists")
        return self._store(body)

    def replace_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self.lease is not None
        if body["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise ConflictError(409, "changed")
        return self._store(body)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def elector(kube: FakeKube, identity: str, clock: Clock, changes: list[bool]) -> Elector:
    return Elector(
        kube,  # type: ignore[arg-type]  # the four lease calls are all the elector uses
        namespace="ns",
        identity=identity,
        duration_seconds=15,
        on_change=changes.append,
        monotonic=clock,
        clock=lambda: NOW,
    )


def test_one_leader_and_takeover_after_the_leader_stops_renewing() -> None:
    kube, clock = FakeKube(), Clock()
    changes_a: list[bool] = []
    changes_b: list[bool] = []
    a, b = elector(kube, "a", clock, changes_a), elector(kube, "b", clock, changes_b)
    assert a.try_once() is True
    assert b.try_once() is False
    for _ in range(10):  # a renews every 2 s; b never gets in
        clock.t += 2
        assert a.try_once() is True
        assert b.try_once() is False
    # a dies after its last renewal at t=20 (b saw it at t=20). a stops counting itself leader
    # after the renew deadline (10 s)...
    clock.t = 29.9
    assert a.leading() is True
    clock.t = 30.1
    assert a.leading() is False
    # ... and b takes over only once it has seen the same record for the lease duration (15 s).
    assert b.try_once() is False
    clock.t = 34.9
    assert b.try_once() is False
    clock.t = 35.0
    assert b.try_once() is True
    assert kube.lease is not None and kube.lease["spec"]["holderIdentity"] == "b"
    assert changes_a == [True] and changes_b == [True]
    # a comes back: its stale write loses (the record changed), it stands by
    assert a.try_once() is False
    assert changes_a == [True, False]


def test_lost_race_is_not_leadership() -> None:
    kube, clock = FakeKube(), Clock()
    a = elector(kube, "a", clock, [])
    kube.lease = None
    original_create = kube.create_lease

    def racing_create(namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        original_create(namespace, {**body, "spec": {**body["spec"], "holderIdentity": "z"}})
        return original_create(namespace, body)  # 409: z got there first

    kube.create_lease = racing_create  # type: ignore[method-assign]
    assert a.try_once() is False
    assert kube.lease is not None and kube.lease["spec"]["holderIdentity"] == "z"


def test_release_lets_the_next_replica_in_at_once() -> None:
    kube, clock = FakeKube(), Clock()
    a, b = elector(kube, "a", clock, []), elector(kube, "b", clock, [])
    assert a.try_once() is True
    a.release()
    assert a.leading() is False
    assert kube.lease is not None and kube.lease["spec"]["holderIdentity"] is None
    assert b.try_once() is True


def test_an_unreachable_api_server_does_not_end_the_election() -> None:
    # A refused connection raises urllib3's errors, not KubeError: that once killed the elector's
    # thread during an API server restart, and no replica reconciled again (the chaos soak).
    import threading  # noqa: PLC0415

    from urllib3.exceptions import MaxRetryError  # noqa: PLC0415

    kube, clock = FakeKube(), Clock()
    changes: list[bool] = []
    a = elector(kube, "a", clock, changes)
    real_get = kube.get_lease
    calls = {"n": 0}

    def get_lease(namespace: str, name: str) -> dict[str, Any] | None:
        calls["n"] += 1
        if calls["n"] in (2, 3):
            raise MaxRetryError(None, "/leases", "Connection refused")  # type: ignore[arg-type]
        if calls["n"] >= 5:
            stop.set()
        return real_get(namespace, name)

    kube.get_lease = get_lease  # type: ignore[method-assign]
    stop = threading.Event()
    a.run(stop)  # returns only because stop was set after the API server came back
    assert calls["n"] >= 5 and a.leading() is True
