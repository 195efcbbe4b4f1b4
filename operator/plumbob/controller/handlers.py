"""kopf handlers: thin. They feed watch events into the store and run the reconciler thread.

Only ``on.event``, ``on.startup``, ``on.cleanup`` and ``on.probe`` handlers are registered: kopf
then keeps no diff-base annotation, no progress annotations and adds no finalizers to anybody's
objects, so GitOps tools see the user's resources exactly as they were applied.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import kopf

from plumbob.api.common import GROUP, VERSION
from plumbob.controller.digests import LABEL_MANAGED_BY, MANAGER
from plumbob.controller.metrics import StoreMetrics
from plumbob.controller.operating import OWN_INPUTS, OWN_OUTPUTS
from plumbob.controller.reconciler import Reconciler
from plumbob.controller.store import Store
from plumbob.kube import Kube

STORE = Store()
METRICS = StoreMetrics(STORE)  # observable instruments; served only once operating.run set up the SDK
_STOP = threading.Event()
_THREADS: list[threading.Thread] = []
log = logging.getLogger("plumbob.controller")


def _feeder(kind: str) -> Any:
    def on_event(event: dict[str, Any], body: Any, **_: Any) -> None:
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
kopf.on.event("", "v1", "nodes")(_feeder("nodes"))


@kopf.on.startup()
def start(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.persistence.finalizer = f"{GROUP}/operator"
    _STOP.clear()
    reconciler = Reconciler(Kube(), STORE)
    thread = threading.Thread(target=reconciler.run, args=(_STOP,), name="plumbob-reconciler", daemon=True)
    thread.start()
    _THREADS.append(thread)


@kopf.on.cleanup()
def stop(**_: Any) -> None:
    _STOP.set()
    STORE.wake.set()
    for thread in _THREADS:
        thread.join(timeout=10)
    _THREADS.clear()


@kopf.on.probe(id="reconciler")
def reconciler_alive(**_: Any) -> bool:
    return any(t.is_alive() for t in _THREADS)
