"""The store's feeds: every kind LISTed into the store, then watched; a term waits for the lists.

Cases: after :meth:`Feeds.wait_listed` the store has the profiles, schedules, nodes and Jobs the
API server listed (so a first pass cannot report a schedule's profile as missing just because its
event had not arrived yet); a failing LIST is tried again, not skipped; watch events update and
remove objects; a watch that ends with 410 Gone LISTs again, and what the new list lacks leaves the
store; ``wait_listed`` gives up when the term ends. The API is a fake serving a queue of watch
events per kind; the tests wait for states, never for durations.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from plumbob.controller.feeds import Feeds
from plumbob.controller.kinds import FED
from plumbob.controller.store import Store
from plumbob.kube import KubeError

END = object()


def profile(name: str, rv: int) -> dict[str, Any]:
    return {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceProfile",
        "metadata": {"name": name, "resourceVersion": str(rv), "generation": 1},
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


class FakeApi:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures  # LISTs of profiles refused before one succeeds
        self.listed: dict[str, list[dict[str, Any]]] = {
            "complianceprofiles": [profile("cis", 5)],
            "complianceschedules": [SCHEDULE],
            "nodes": [NODE],
        }
        self.lists: dict[str, int] = {}
        self.selectors: dict[str, str | None] = {}
        self.events: dict[str, queue.Queue[Any]] = {f.plural: queue.Queue() for f in FED}

    def list_api_collection(
        self, api_version: str, plural: str, kind: str, *, labels: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        self.lists[plural] = self.lists.get(plural, 0) + 1
        self.selectors[plural] = labels
        if plural == "complianceprofiles" and self.failures:
            self.failures -= 1
            raise KubeError(503, "the API server is starting")
        return [dict(o) for o in self.listed.get(plural, [])], 100 * self.lists[plural]

    def watch_api_collection(
        self,
        api_version: str,
        plural: str,
        kind: str,
        version: int,
        *,
        timeout: int,
        fields: str | None = None,
        labels: str | None = None,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        while True:
            item = self.events[plural].get()
            if item is END:
                return
            if isinstance(item, KubeError):
                raise item
            yield item


def wait_for(probe: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def running(api: FakeApi) -> tuple[Feeds, Store, threading.Event]:
    store, stop = Store(), threading.Event()
    feeds = Feeds(api, store, pause=0.01)  # type: ignore[arg-type]  # a fake Kube
    feeds.start(stop)
    return feeds, store, stop


def ended(api: FakeApi, feeds: Feeds, stop: threading.Event) -> None:
    stop.set()
    for events in api.events.values():
        events.put(END)
    feeds.join(timeout=10)


def test_wait_listed_returns_once_every_kind_is_in_the_store() -> None:
    api = FakeApi()
    feeds, store, stop = running(api)
    try:
        assert feeds.wait_listed(stop)
        snap = store.snapshot()
        assert set(snap.profiles) == {"cis"} and set(snap.schedules) == {"nightly"}
        assert set(snap.nodes) == {"worker-1"}
        assert set(api.lists) == {f.plural for f in FED}, "every kind is listed"
        assert api.selectors["jobs"] == "app.kubernetes.io/managed-by=plumbob", "only the audit Jobs"
    finally:
        ended(api, feeds, stop)


def test_a_failing_list_is_tried_again() -> None:
    api = FakeApi(failures=2)
    feeds, store, stop = running(api)
    try:
        assert feeds.wait_listed(stop)
        assert api.lists["complianceprofiles"] == 3 and set(store.snapshot().profiles) == {"cis"}
    finally:
        ended(api, feeds, stop)


def test_events_update_the_store_and_a_gone_watch_lists_again() -> None:
    api = FakeApi()
    feeds, store, stop = running(api)
    try:
        assert feeds.wait_listed(stop)
        events = api.events["complianceprofiles"]
        events.put(("ADDED", profile("pss", 11)))
        wait_for(lambda: set(store.snapshot().profiles) == {"cis", "pss"}, "the added profile")
        events.put(("DELETED", profile("cis", 12)))
        wait_for(lambda: set(store.snapshot().profiles) == {"pss"}, "the deleted profile")
        # 410 Gone: LIST again; the new list has neither (deleted while no watch ran)
        api.listed["complianceprofiles"] = [profile("new", 20)]
        events.put(KubeError(410, "too old resource version"))
        wait_for(lambda: set(store.snapshot().profiles) == {"new"}, "the relist")
        assert api.lists["complianceprofiles"] == 2
    finally:
        ended(api, feeds, stop)


def test_wait_listed_gives_up_when_the_term_ends() -> None:
    api = FakeApi(failures=10**6)
    feeds, _store, stop = running(api)
    try:
        threading.Timer(0.05, stop.set).start()
        assert not feeds.wait_listed(stop)
    finally:
        ended(api, feeds, stop)
