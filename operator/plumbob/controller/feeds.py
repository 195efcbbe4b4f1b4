"""The store's feeds: every replica follows each kind of :data:`~plumbob.controller.kinds.FED`
(Plumbob's own kinds, its audit Jobs, Nodes, Namespaces) into its store, a thread per kind, from
start-up to shut-down, leader or not: a replica that becomes leader already knows the cluster.

Each kind is LISTed into the store (:meth:`Store.replace`: what the list no longer has leaves the
store), then watched from the list's version (:meth:`Store.upsert`, :meth:`Store.remove`); any
error LISTs again after a pause (:mod:`~plumbob.controller.watching`). The store keeps the newest
version of each object, so a LIST and the events can arrive in any order.

A term's first reconcile waits for :meth:`Feeds.wait_listed`: a pass that ran before, say, the
profiles had arrived would report a schedule's profiles as missing, or an exception entry's
profile as unknown, for a moment (a Stalled condition and a Warning Event on a correct object).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from plumbob.controller.kinds import FED, Fed
from plumbob.controller.store import Store
from plumbob.controller.watching import keep_following, watch_from
from plumbob.kube import Kube, KubeError

log = logging.getLogger("plumbob.controller")


class Feeds:
    def __init__(
        self,
        kube: Kube,
        store: Store,
        kinds: tuple[Fed, ...] = FED,
        *,
        pause: float = 2.0,
        timeout: int = 300,
    ) -> None:
        self.kube, self.store, self.kinds = kube, store, kinds
        self.pause = pause  # after an error, before the next LIST
        self.timeout = timeout  # seconds a watch request lasts
        self._listed = {fed.plural: threading.Event() for fed in kinds}
        self._threads: list[threading.Thread] = []

    def start(self, stop: threading.Event) -> None:
        for fed in self.kinds:
            thread = threading.Thread(
                target=keep_following,
                args=(fed.plural, lambda fed=fed: self.follow(fed, stop), stop, self.pause),
                name=f"plumbob-feed-{fed.plural}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def wait_listed(self, stop: threading.Event) -> bool:
        """Wait until every kind has been LISTed into the store once (False: ``stop`` came first)."""
        for listed in self._listed.values():
            while not listed.wait(1.0):
                if stop.is_set():
                    return False
        return True

    def alive(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def follow(self, fed: Fed, stop: threading.Event) -> None:
        """LIST ``fed`` into the store, then watch it until ``stop`` or an error (raised)."""
        try:
            items, version = self.kube.list_api_collection(
                fed.api_version, fed.plural, fed.kind, labels=fed.labels
            )
        except KubeError as exc:
            if not self._listed[fed.plural].is_set():
                log.warning("could not list %s: %s; trying again", fed.plural, exc)
            raise
        self.store.replace(fed.plural, items, version)
        self._listed[fed.plural].set()
        del items

        def deliver(type_: str, obj: dict[str, Any]) -> None:
            if type_ == "DELETED":
                self.store.remove(fed.plural, obj)
            else:
                self.store.upsert(fed.plural, obj)

        watch_from(
            self.kube,
            fed.api_version,
            fed.plural,
            fed.kind,
            version,
            stopped=stop,
            deliver=deliver,
            timeout=self.timeout,
            labels=fed.labels,
        )
