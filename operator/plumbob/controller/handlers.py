"""kopf handlers: thin. At start-up they start the store's feeds and the reconciler thread.

Every replica follows its kinds and keeps its store current (:mod:`~plumbob.controller.feeds`);
the reconciler runs only while this replica holds the leader Lease
(:mod:`~plumbob.controller.leadership`). A new term starts a new :class:`Reconciler`, so nothing
from an earlier term's memory leaks into it. The kinds cluster-level rules read (Pods, workloads,
RBAC…) are watched by the leader's cluster step itself, and only while a profile needs them
(:mod:`~plumbob.controller.steps.cluster.watches`).

kopf runs the process: start-up and clean-up, the liveness probes, logging. It watches nothing
itself: its per-object machinery cost more CPU than the decisions did in a 1,000-node scan (about
14,000 events of Jobs and reports), and the store needs only each object's newest version. So
kopf keeps no diff-base annotation, no progress annotations and adds no finalizers to anybody's
objects, and GitOps tools see the user's resources exactly as they were applied.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import kopf

from plumbob.controller.feeds import Feeds
from plumbob.controller.leadership import DEFAULT_LEASE_SECONDS, Elector, lead_while_elected
from plumbob.controller.metrics import StoreMetrics
from plumbob.controller.reconciler import Reconciler
from plumbob.controller.store import Store
from plumbob.kube import Kube

STORE = Store()
METRICS = StoreMetrics(STORE)  # observable instruments; served only once operating.run set up the SDK
_STOP = threading.Event()
_THREADS: list[threading.Thread] = []
_ELECTORS: list[Elector] = []
_FEEDS: list[Feeds] = []
LEASE_SECONDS = DEFAULT_LEASE_SECONDS  # set by operating.run from --lease-duration
log = logging.getLogger("plumbob.controller")


@kopf.on.startup()
def start(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = logging.WARNING
    _STOP.clear()
    kube = Kube()
    feeds = Feeds(kube, STORE)
    feeds.start(_STOP)
    _FEEDS.append(feeds)
    term_changed = threading.Event()

    def changed(_leading: bool) -> None:
        term_changed.set()
        STORE.wake.set()  # a sleeping reconciler notices a lost term at once

    elector = Elector(
        kube,
        namespace=os.environ.get("PLUMBOB_NAMESPACE", "plumbob-system"),
        duration_seconds=LEASE_SECONDS,
        on_change=changed,
    )
    _ELECTORS.append(elector)
    log.info("leader election as %s", elector.identity)

    def lead(over: threading.Event) -> None:
        if feeds.wait_listed(over):
            Reconciler(kube, STORE).run(over)

    def reconcile_while_leading() -> None:
        lead_while_elected(elector, _STOP, term_changed, STORE.wake, lead)

    def elect() -> None:
        elector.run(_STOP)

    for target, name in ((elect, "plumbob-elector"), (reconcile_while_leading, "plumbob-reconciler")):
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        _THREADS.append(thread)


@kopf.on.cleanup()
def stop(**_: Any) -> None:
    _STOP.set()
    STORE.wake.set()
    for thread in _THREADS:
        thread.join(timeout=10)
    _THREADS.clear()
    for feeds in _FEEDS:
        feeds.join(timeout=1)  # a watch in flight ends with its request; the threads are daemons
    _FEEDS.clear()
    for elector in _ELECTORS:
        elector.release()  # after the reconciler stopped: the next leader need not wait
    _ELECTORS.clear()


@kopf.on.probe(id="reconciler")
def reconciler_alive(**_: Any) -> bool:
    return len(_THREADS) == 2 and all(t.is_alive() for t in _THREADS) and all(f.alive() for f in _FEEDS)


@kopf.on.probe(id="leader")
def leader(**_: Any) -> bool:
    return any(e.leading() for e in _ELECTORS)
