"""Before a term's first reconcile, the store holds one LIST of every watched kind.

Cases: after ``prime`` the store has the profiles, schedules, nodes and Jobs the API server
listed (so a first pass cannot report a schedule's profile as missing just because its watch
event had not arrived yet); a failing LIST is retried, not skipped.
"""

from __future__ import annotations

import threading
from typing import Any

from plumbob.controller import handlers
from plumbob.controller.store import Store
from plumbob.kube import KubeError

PROFILE = {
    "apiVersion": "plumbob.dev/v1alpha1",
    "kind": "ComplianceProfile",
    "metadata": {"name": "cis", "resourceVersion": "5", "generation": 1},
    "spec": {"benchmark": {"name": "cis-kubernetes", "version": "1.12"}},
}
SCHEDULE = {
    "apiVersion": "plumbob.dev/v1alpha1",
    "kind": "ComplianceSchedule",
    "metadata": {"name": "nightly", "resourceVersion": "6", "generation": 1},
    "spec": {"schedule": "0 3 * * *", "profiles": ["cis"]},
}
NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "worker-1", "resourceVersion": "7"},
    "status": {"conditions": [{"type": "Ready", "status": "True"}]},
}


class ListingKube:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.lists = 0

    def list_objects(self, plural: str, namespace: str | None = None, labels: str | None = None) -> list[Any]:
        self.lists += 1
        if self.failures:
            self.failures -= 1
            raise KubeError(503, "the API server is starting")
        return {"complianceprofiles": [PROFILE], "complianceschedules": [SCHEDULE]}.get(plural, [])

    def list_core(self, what: str, labels: str | None = None) -> list[dict[str, Any]]:
        return [NODE] if what == "nodes" else []


def test_prime_fills_the_store_with_every_watched_kind(monkeypatch: Any) -> None:
    store = Store()
    monkeypatch.setattr(handlers, "STORE", store)
    handlers.prime(ListingKube(), threading.Event())  # type: ignore[arg-type]
    snap = store.snapshot()
    assert (
        set(snap.profiles) == {"cis"}
        and set(snap.schedules) == {"nightly"}
        and set(snap.nodes) == {"worker-1"}
    )


def test_a_failing_list_is_retried(monkeypatch: Any) -> None:
    store = Store()
    monkeypatch.setattr(handlers, "STORE", store)
    kube = ListingKube(failures=1)
    handlers.prime(kube, threading.Event())  # type: ignore[arg-type]
    assert set(store.snapshot().profiles) == {"cis"}
