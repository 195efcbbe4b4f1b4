"""The watches of the kinds cluster-level rules read, held only while a profile needs them.

The operator watches a kind only while an enabled rule reads it: the built-in rules' kinds
(:data:`~plumbob.controller.kinds.CLUSTER_RULE_KINDS`) while some profile selects a cluster-level
rule or the Pod Security Standards, and any other kind while a profile's custom rule names it.
Each watched kind has a thread of its own that:

1. finds the kind's plural (discovery), for a kind only custom rules read;
2. LISTs it into the store, as compact JSON: a built-in kind under its plural, another under
   ``<plural>.<group>`` (``configmaps.core``), so that the two never mix; a built-in kind that
   no custom rule names is kept without its ``status``, which no built-in rule reads (half of a
   Pod); when a custom rule comes to name it, or stops, it is watched anew;
3. watches it from the list's resourceVersion, resuming from the last version seen when the
   server ends the stream; an error (410 Gone, a refused watch, a lost connection) LISTs again
   after a pause, which also drops what the store holds but the API no longer has.

The Pods and Jobs of Plumbob's own namespace are left out by a field selector: Plumbob's audit
Jobs and their Pods come and go with every scan (a thousand nodes, a thousand of each), and every
object in that namespace is an expected holder anyway.

Each event counts as a change in the store, so a change is evaluated within seconds. A kind no
profile needs any more is stopped and its objects leave the store, so a cluster whose profiles
only audit nodes holds no Pod in memory.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from plumbob.controller.store import Store
from plumbob.controller.watching import keep_following, watch_from
from plumbob.kube import Kube, KubeError, NotFoundError

log = logging.getLogger("plumbob.controller")

Key = tuple[str, str]  # (apiVersion, kind)


def store_kind(api_version: str, plural: str) -> str:
    """The store's key for objects of a kind only custom rules read: ``<plural>.<group>``."""
    return f"{plural}.{api_version.rpartition('/')[0] or 'core'}"


@dataclass
class _Watch:
    api_version: str
    kind: str
    plural: str | None  # known for the built-in kinds; found by discovery for the others
    builtin: bool
    stopped: threading.Event = field(default_factory=threading.Event)
    fields: str | None = None  # a field selector: which of the kind's objects are watched
    lean: bool = False  # its objects are kept without their status (no rule that reads it is on)
    # held while the watch's thread writes into the store, and while the watch is stopped: so
    # that no event of a stopped watch lands in the store after its objects were taken out
    gate: threading.Lock = field(default_factory=threading.Lock)
    ready: bool = False  # LISTed into the store, and the watch is running
    error: str | None = None  # why the last LIST failed, until one succeeds

    @property
    def held_as(self) -> str | None:
        """The store's key of its objects."""
        if self.plural is None:
            return None
        return self.plural if self.builtin else store_kind(self.api_version, self.plural)


class ObjectWatches:
    """With ``threads`` false (the unit tests' deterministic mode) a kind is only LISTed, when it
    is first wanted and, after a failure, at each :meth:`ensure`; the tests deliver the events."""

    def __init__(
        self, kube: Kube, store: Store, *, threads: bool = True, pause: float = 5.0, timeout: int = 60
    ) -> None:
        self.kube, self.store = kube, store
        self.threads = threads
        self.pause = pause  # after an error, before the next LIST
        self.timeout = timeout  # seconds a watch request lasts (also how soon a stopped one ends)
        self._watches: dict[Key, _Watch] = {}
        self._lock = threading.Lock()

    def ensure(
        self,
        wanted: Mapping[Key, str | None],
        fields: Mapping[Key, str] | None = None,
        lean: Collection[Key] = (),
    ) -> None:
        """Watch exactly the kinds in ``wanted`` (each with its plural when it is a built-in kind,
        None for a kind only custom rules read), those of ``fields`` only the objects its field
        selector selects, those in ``lean`` kept without their status: start the new ones, stop
        the others. A kind that becomes lean or stops being so is watched anew (LISTed again)."""
        with self._lock:
            for key in [k for k, w in self._watches.items() if w.lean != (k in lean)]:
                self._stop(self._watches.pop(key))
            for key in wanted.keys() - self._watches.keys():
                plural = wanted[key]
                w = _Watch(
                    *key,
                    plural=plural,
                    builtin=plural is not None,
                    fields=(fields or {}).get(key),
                    lean=key in lean,
                )
                self._watches[key] = w
                if self.threads:
                    name = f"plumbob-watch-{key[1]}"
                    threading.Thread(target=self._run, args=(w,), name=name, daemon=True).start()
            for key in self._watches.keys() - wanted.keys():
                self._stop(self._watches.pop(key))
            pending = [] if self.threads else [w for w in self._watches.values() if not w.ready]
        for w in pending:  # a refused LIST keeps its reason on the watch (see error); tried again next call
            with contextlib.suppress(KubeError):
                self._list(w)

    def settled(self, keys: set[Key]) -> bool:
        """Whether each of ``keys`` is watched and has been LISTed into the store, or has failed to."""
        with self._lock:
            return all(
                k in self._watches and (self._watches[k].ready or self._watches[k].error) for k in keys
            )

    def error(self, key: Key) -> str | None:
        """Why ``key``'s objects could not be LISTed (None: they could, or it is not watched)."""
        with self._lock:
            w = self._watches.get(key)
            return w.error if w and not w.ready else None

    def objects(self, key: Key) -> str | None:
        """The store's key of ``key``'s objects when they are current there (listed, watched)."""
        with self._lock:
            w = self._watches.get(key)
            return w.held_as if w and w.ready else None

    def held(self, group: str, kind: str) -> tuple[str, str] | None:
        """(apiVersion, the store's key) of a watched kind of ``group`` whose objects are current."""
        with self._lock:
            for w in self._watches.values():
                if w.kind == kind and w.api_version.rpartition("/")[0] == group and w.ready and w.held_as:
                    return w.api_version, w.held_as
        return None

    def stop_all(self) -> None:
        with self._lock:
            for w in self._watches.values():
                self._stop(w)
            self._watches.clear()

    def _stop(self, w: _Watch) -> None:
        with w.gate:
            w.stopped.set()
        w.ready = False
        if w.held_as:
            self.store.replace_cluster_objects(w.held_as, [], 0)

    def _run(self, w: _Watch) -> None:
        keep_following(f"{w.kind} ({w.api_version})", lambda: self._list_and_watch(w), w.stopped, self.pause)

    def _list_and_watch(self, w: _Watch) -> None:
        version = self._list(w)
        if version is None:
            return
        held_as = w.held_as
        assert held_as is not None and w.plural is not None  # known once listed

        def deliver(type_: str, obj: dict[str, Any]) -> None:
            with w.gate:
                if not w.stopped.is_set():
                    self.store.note_cluster_object(held_as, obj, deleted=type_ == "DELETED", lean=w.lean)

        def opened() -> None:
            w.ready = True

        watch_from(
            self.kube,
            w.api_version,
            w.plural,
            w.kind,
            version,
            stopped=w.stopped,
            deliver=deliver,
            timeout=self.timeout,
            fields=w.fields,
            opened=opened,
        )

    def _list(self, w: _Watch) -> int | None:
        """LIST ``w``'s kind into the store; the list's resourceVersion, or None when there is
        nothing to watch (stopped, or a built-in kind this API server does not serve). A refused
        LIST makes the kind not ready, with the reason, until one succeeds."""
        try:
            if w.plural is None:
                w.plural = self.kube.resource_plural(w.api_version, w.kind)
                if w.plural is None:
                    raise KubeError(404, f"the API server serves no kind {w.kind} in {w.api_version}")
            items, version = self.kube.list_api_collection(w.api_version, w.plural, w.kind, fields=w.fields)
        except NotFoundError:
            if not w.builtin:
                w.error, w.ready = f"the API server serves no kind {w.kind} in {w.api_version}", False
                raise
            # a built-in kind this API server does not serve (an admission policy on an older
            # cluster) has no objects; ask again now and then (an upgrade may bring it)
            w.error, w.ready = None, True
            if self.threads:
                w.stopped.wait(self.timeout * 5)
            return None
        except KubeError as exc:
            w.error, w.ready = f"cannot list {w.plural or w.kind} ({w.api_version}): {exc}", False
            raise
        held_as = w.held_as
        assert held_as is not None  # the plural is known
        with w.gate:
            if w.stopped.is_set():
                return None
            self.store.replace_cluster_objects(held_as, items, version, lean=w.lean)
        del items
        w.error = None
        if not self.threads:
            w.ready = True
        return version
