"""The watches of kinds only custom rules read: LIST into the store, then watch; relist on errors;
stop and forget a kind no profile names. The API is a fake that serves one custom kind from a
queue of watch events; the tests wait for states, never for durations."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from plumbob.controller.steps.cluster.watches import ObjectWatches, store_kind
from plumbob.controller.store import Store
from plumbob.kube import KubeError

GADGET = ("example.com/v1", "Gadget")
END = object()


def gadget(name: str, rv: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Gadget",
        "metadata": {"name": name, "namespace": "team", "resourceVersion": str(rv)},
        "spec": spec,
    }


class FakeApi:
    def __init__(self) -> None:
        self.listed: list[dict[str, Any]] = [gadget("a", 1, size=1)]
        self.lists = 0
        self.discoveries = 0
        self.watched_from: list[int] = []
        self.events: queue.Queue[Any] = queue.Queue()

    def resource_plural(self, api_version: str, kind: str) -> str | None:
        self.discoveries += 1
        return "gadgets" if (api_version, kind) == GADGET else None

    def list_api_collection(
        self, api_version: str, plural: str, kind: str, *, fields: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        self.lists += 1
        return [dict(o) for o in self.listed], 10 * self.lists

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
        self.watched_from.append(version)
        while True:
            item = self.events.get()
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


def names(store: Store) -> dict[str, Any]:
    return {
        o["metadata"]["name"]: o["spec"]
        for o in store.cluster_object_bodies(store_kind("example.com/v1", "gadgets"))
    }


def test_a_custom_kind_is_listed_then_watched_then_forgotten() -> None:
    api, store = FakeApi(), Store()
    watches = ObjectWatches(api, store, pause=0.01)  # type: ignore[arg-type]  # a fake Kube
    try:
        watches.ensure({GADGET: None})
        wait_for(lambda: watches.objects(GADGET) == "gadgets.example.com", "the first LIST")
        assert names(store) == {"a": {"size": 1}}
        changes = store.cluster_changes
        api.events.put(("ADDED", gadget("b", 11, size=2)))
        api.events.put(("MODIFIED", gadget("a", 12, size=3)))
        wait_for(lambda: names(store) == {"a": {"size": 3}, "b": {"size": 2}}, "the watch events")
        assert store.cluster_changes >= changes + 2, "each change wakes the cluster step"
        api.events.put(("DELETED", gadget("b", 13, size=2)))
        wait_for(lambda: names(store) == {"a": {"size": 3}}, "the deletion")
        assert api.watched_from == [10], "watched from the LIST's version"
        # the server ends the stream: resumed from the last version seen, without a LIST
        api.events.put(("BOOKMARK", gadget("a", 20)))
        api.events.put(END)
        wait_for(lambda: len(api.watched_from) == 2, "the resumed watch")
        assert api.watched_from[1] == 20 and api.lists == 1
        # too old (410): LIST again; what the new LIST lacks is gone from the store
        api.listed = [gadget("c", 30, size=4)]
        api.events.put(KubeError(410, "too old resource version"))
        wait_for(lambda: names(store) == {"c": {"size": 4}}, "the relist")
        assert api.lists == 2
        watches.ensure({})
        assert watches.objects(GADGET) is None and names(store) == {}, "a kind no profile names is forgotten"
    finally:
        watches.stop_all()
        api.events.put(END)


def test_a_kind_the_api_does_not_serve_is_never_ready() -> None:
    api, store = FakeApi(), Store()
    watches = ObjectWatches(api, store, pause=0.01)  # type: ignore[arg-type]
    try:
        watches.ensure({("example.com/v1", "Nosuch"): None})
        wait_for(lambda: api.discoveries >= 2, "discovery asked again after a pause")
        assert watches.objects(("example.com/v1", "Nosuch")) is None and api.lists == 0
    finally:
        watches.stop_all()


def test_a_lean_kind_is_kept_without_status_until_a_rule_reads_it() -> None:
    api, store = FakeApi(), Store()
    api.listed = [{**gadget("a", 1, size=1), "status": {"phase": "Running"}}]
    watches = ObjectWatches(api, store, pause=0.01)  # type: ignore[arg-type]

    def held() -> list[dict[str, Any]]:
        return store.cluster_object_bodies("gadgets")

    try:
        watches.ensure({GADGET: "gadgets"}, lean={GADGET})  # a built-in kind no custom rule names
        wait_for(lambda: watches.objects(GADGET) == "gadgets", "the first LIST")
        assert [o.get("status") for o in held()] == [None] and held()[0]["spec"] == {"size": 1}
        api.events.put(("MODIFIED", {**gadget("a", 11, size=2), "status": {"phase": "Failed"}}))
        wait_for(lambda: held()[0]["spec"] == {"size": 2}, "the watch event")
        assert "status" not in held()[0]
        api.events.put(END)
        watches.ensure({GADGET: "gadgets"})  # a custom rule names it now: watched anew, with status
        wait_for(lambda: [o.get("status") for o in held()] == [{"phase": "Running"}], "the new LIST")
        assert api.lists == 2
    finally:
        watches.stop_all()
        api.events.put(END)


def test_no_event_of_a_stopped_watch_lands_in_the_store_after_its_kind_was_taken_out() -> None:
    api, store = FakeApi(), Store()
    watches = ObjectWatches(api, store, pause=0.01)  # type: ignore[arg-type]
    entered, release, delivered = threading.Event(), threading.Event(), threading.Event()
    note = store.note_cluster_object

    def slow_note(kind: str, body: dict[str, Any], **kw: Any) -> None:
        entered.set()
        release.wait(30)
        note(kind, body, **kw)
        delivered.set()

    try:
        watches.ensure({GADGET: None})
        wait_for(lambda: watches.objects(GADGET) == "gadgets.example.com", "the first LIST")
        store.note_cluster_object = slow_note  # type: ignore[method-assign]
        api.events.put(("ADDED", gadget("late", 11)))
        wait_for(entered.is_set, "the event being delivered")
        stopping = threading.Thread(target=watches.ensure, args=({},))  # no profile names it now
        stopping.start()
        stopping.join(0.2)  # the stop waits for the delivery under way (without the gate it is done)
        release.set()
        stopping.join(30)
        wait_for(delivered.is_set, "the delivery's end")
        assert names(store) == {}, "the stopped watch's last event did not outlive the stop"
    finally:
        release.set()
        watches.stop_all()
        api.events.put(END)
