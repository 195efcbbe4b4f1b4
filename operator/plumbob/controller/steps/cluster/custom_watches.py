"""Watches of the kinds that custom rules read and kopf does not watch for the operator.

A profile's custom rule may match any kind the API server serves (an Ingress, a custom resource).
While at least one profile names such a kind, one thread of its own:

1. finds the kind's plural (discovery);
2. LISTs it into the store, as compact JSON like the built-in kinds, under the key
   ``<plural>.<group>`` (``configmaps.core``), so that it never mixes with a built-in kind;
3. watches it from the list's resourceVersion, resuming from the last version seen when the
   server ends the stream; an error (410 Gone, a refused watch, a lost connection) LISTs again
   after a pause.

Each event counts as a change in the store, so a custom rule's object is evaluated within seconds
instead of at the next interval. Until a kind's first LIST is in, or while its watch fails, the
cluster step LISTs it itself at each evaluation (the way it always could); a kind no profile names
any more is stopped and its objects leave the store.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from plumbob.controller.store import Store
from plumbob.kube import Kube, KubeError

log = logging.getLogger("plumbob.controller")

Key = tuple[str, str]  # (apiVersion, kind)


def store_kind(api_version: str, plural: str) -> str:
    """The store's key for objects of a watched custom kind: ``<plural>.<group>``."""
    return f"{plural}.{api_version.rpartition('/')[0] or 'core'}"


@dataclass
class _Watch:
    api_version: str
    kind: str
    stopped: threading.Event = field(default_factory=threading.Event)
    plural: str | None = None
    ready: bool = False  # LISTed into the store, and the watch is running
    thread: threading.Thread | None = None


class CustomWatches:
    def __init__(self, kube: Kube, store: Store, *, pause: float = 5.0, timeout: int = 60) -> None:
        self.kube, self.store = kube, store
        self.pause = pause  # after an error, before the next LIST
        self.timeout = timeout  # seconds a watch request lasts (also how soon a stopped one ends)
        self._watches: dict[Key, _Watch] = {}
        self._lock = threading.Lock()

    def ensure(self, wanted: set[Key]) -> None:
        """Watch exactly the kinds in ``wanted``: start the new ones, stop the others."""
        with self._lock:
            for key in wanted - self._watches.keys():
                w = self._watches[key] = _Watch(*key)
                w.thread = threading.Thread(
                    target=self._run, args=(w,), name=f"plumbob-watch-{key[1]}", daemon=True
                )
                w.thread.start()
            for key in self._watches.keys() - wanted:
                self._stop(self._watches.pop(key))

    def objects(self, key: Key) -> str | None:
        """The store's key of ``key``'s objects when they are current there (listed, watched)."""
        with self._lock:
            w = self._watches.get(key)
            return store_kind(w.api_version, w.plural) if w and w.ready and w.plural else None

    def held(self, group: str, kind: str) -> tuple[str, str] | None:
        """(apiVersion, the store's key) of a watched kind of ``group`` whose objects are current."""
        with self._lock:
            for w in self._watches.values():
                if w.kind == kind and w.api_version.rpartition("/")[0] == group and w.ready and w.plural:
                    return w.api_version, store_kind(w.api_version, w.plural)
        return None

    def stop_all(self) -> None:
        with self._lock:
            for w in self._watches.values():
                self._stop(w)
            self._watches.clear()

    def _stop(self, w: _Watch) -> None:
        w.stopped.set()
        w.ready = False
        if w.plural:
            self.store.replace_cluster_objects(store_kind(w.api_version, w.plural), [], 0)

    def _run(self, w: _Watch) -> None:
        while not w.stopped.is_set():
            try:
                self._list_and_watch(w)
            except KubeError as exc:
                log.info(
                    "watch of %s (%s): %s; listing again in %g s", w.kind, w.api_version, exc, self.pause
                )
            except Exception:  # a lost connection, a malformed event: start over
                log.exception(
                    "watch of %s (%s) failed; listing again in %g s", w.kind, w.api_version, self.pause
                )
            w.ready = False
            w.stopped.wait(self.pause)

    def _list_and_watch(self, w: _Watch) -> None:
        if w.plural is None:
            w.plural = self.kube.resource_plural(w.api_version, w.kind)
            if w.plural is None:
                raise KubeError(404, f"the API server serves no kind {w.kind} in {w.api_version}")
        kind = store_kind(w.api_version, w.plural)
        items, version = self.kube.list_api_collection(w.api_version, w.plural, w.kind)
        if w.stopped.is_set():
            return
        self.store.replace_cluster_objects(kind, items, version)
        del items
        while not w.stopped.is_set():
            events = self.kube.watch_api_collection(w.api_version, w.plural, w.kind, version, self.timeout)
            w.ready = True
            for type_, obj in events:
                if w.stopped.is_set():
                    return
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
                version = int(rv) if rv.isdigit() else version
                if type_ != "BOOKMARK":
                    self.store.note_cluster_object(kind, obj, deleted=type_ == "DELETED")
