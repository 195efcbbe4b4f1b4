"""kopf handlers: thin. They feed watch events into the store and run the reconciler thread.

Every replica watches and keeps its store current; the reconciler runs only while this replica
holds the leader Lease (:mod:`~plumbob.controller.leadership`). A new term starts a new
:class:`Reconciler`, so nothing from an earlier term's memory leaks into it.

The handlers watch Plumbob's own kinds, its Jobs, Nodes and Namespaces. The kinds cluster-level
rules read (Pods, workloads, RBAC…) are watched by the leader's cluster step itself, and only
while a profile needs them (:mod:`~plumbob.controller.steps.cluster.watches`).

Only ``on.event``, ``on.startup``, ``on.cleanup`` and ``on.probe`` handlers are registered: kopf
then keeps no diff-base annotation, no progress annotations and adds no finalizers to anybody's
objects, so GitOps tools see the user's resources exactly as they were applied.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import kopf

from plumbob.controller.decisions.digests import LABEL_MANAGED_BY, MANAGER
from plumbob.controller.kinds import CORE, OWN_INPUTS, OWN_OUTPUTS
from plumbob.controller.leadership import DEFAULT_LEASE_SECONDS, Elector, lead_while_elected
from plumbob.controller.metrics import StoreMetrics
from plumbob.controller.reconciler import Reconciler
from plumbob.controller.store import Store
from plumbob.kube import Kube
from plumbob.names import GROUP, VERSION

STORE = Store()
METRICS = StoreMetrics(STORE)  # observable instruments; served only once operating.run set up the SDK
_STOP = threading.Event()
_THREADS: list[threading.Thread] = []
_ELECTORS: list[Elector] = []
LEASE_SECONDS = DEFAULT_LEASE_SECONDS  # set by operating.run from --lease-duration
log = logging.getLogger("plumbob.controller")


# The handlers are coroutines although they do no I/O: kopf runs a plain function in a thread
# pool, a hop per watch event (tens of thousands in a 1,000-node scan) that costs more than
# the store's update itself, which holds its lock only briefly.
def _feeder(kind: str) -> Any:
    async def on_event(event: dict[str, Any], body: Any, **_: Any) -> None:
        raw = dict(body)
        if event.get("type") == "DELETED":
            STORE.remove(kind, raw)
        else:
            STORE.upsert(kind, raw)

    on_event.__name__ = f"feed_{kind}"
    return on_event


for _plural in (*OWN_INPUTS, *OWN_OUTPUTS):
    kopf.on.event(GROUP, VERSION, _plural)(_feeder(_plural))
kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGER})(_feeder("jobs"))
for _plural in CORE:
    kopf.on.event("", "v1", _plural)(_feeder(_plural))


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff base: only ``on.event`` handlers are registered, and kopf uses the diff base only
    for change handlers and daemons. Its default builds one anyway for every watch event (a deep
    copy of the whole body, then a second pass to clear progress fields): about a fifth of the
    operator's CPU during a 1,000-node scan. kopf then sees every event as "no essential change",
    which only change handlers and daemons would read."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.startup()
def start(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.persistence.finalizer = f"{GROUP}/operator"
    settings.persistence.diffbase_storage = NoDiffBase()
    _STOP.clear()
    kube = Kube()
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
        prime(kube, over)
        Reconciler(kube, STORE).run(over)

    def reconcile_while_leading() -> None:
        lead_while_elected(elector, _STOP, term_changed, STORE.wake, lead)

    def elect() -> None:
        elector.run(_STOP)

    for target, name in ((elect, "plumbob-elector"), (reconcile_while_leading, "plumbob-reconciler")):
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        _THREADS.append(thread)


def prime(kube: Kube, stop: threading.Event) -> None:
    """Fill the store with one LIST of every watched kind before a term's first reconcile.

    The watches fill it too, but concurrently: a first pass that ran before, say, the profiles had
    arrived would report a schedule's profiles as missing, or an exception entry's profile as
    unknown, for a moment (a Stalled condition and a Warning Event on a correct object). The
    store keeps the newest version of each object, so events and lists can arrive in any order.
    """
    while not stop.is_set():
        try:
            listed = {plural: kube.list_objects(plural) for plural in (*OWN_INPUTS, *OWN_OUTPUTS)}
            listed |= {plural: kube.list_core(plural) for plural in CORE}
            listed["jobs"] = kube.list_core("jobs", f"{LABEL_MANAGED_BY}={MANAGER}")
        except Exception as exc:  # KubeError, or an API server that refuses connections
            log.warning("could not list the watched kinds before reconciling: %s; trying again", exc)
            stop.wait(2.0)
            continue
        for plural, objects in listed.items():
            for body in objects:
                STORE.upsert(plural, body)
        return


@kopf.on.cleanup()
def stop(**_: Any) -> None:
    _STOP.set()
    STORE.wake.set()
    for thread in _THREADS:
        thread.join(timeout=10)
    _THREADS.clear()
    for elector in _ELECTORS:
        elector.release()  # after the reconciler stopped: the next leader need not wait
    _ELECTORS.clear()


@kopf.on.probe(id="reconciler")
def reconciler_alive(**_: Any) -> bool:
    return len(_THREADS) == 2 and all(t.is_alive() for t in _THREADS)


@kopf.on.probe(id="leader")
def leader(**_: Any) -> bool:
    return any(e.leading() for e in _ELECTORS)
