"""Following one kind of the API server: LIST it, watch from the list's resourceVersion, LIST again
after any error. Both the store's feeds (:mod:`~plumbob.controller.feeds`, Plumbob's own kinds,
its Jobs, Nodes, Namespaces) and the cluster step's watches
(:mod:`~plumbob.controller.steps.cluster.watches`, the kinds cluster-level rules read) follow
their kinds this way, each kind in a thread of its own.

It is a plain HTTP stream decoded line by line (``Kube.watch_api_collection``): a 1,000-node scan
brings about 14,000 events of audit Jobs and node reports, and kopf's watch machinery (an asyncio
worker per object, a diff per event) spent more CPU on them than the reconciler spent deciding.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from plumbob.kube import Kube, KubeError

log = logging.getLogger("plumbob.controller")

Deliver = Callable[[str, dict[str, Any]], None]  # (ADDED | MODIFIED | DELETED, object)


def watch_from(
    kube: Kube,
    api_version: str,
    plural: str,
    kind: str,
    version: int,
    *,
    stopped: threading.Event,
    deliver: Deliver,
    timeout: int,
    fields: str | None = None,
    labels: str | None = None,
    opened: Callable[[], None] | None = None,
) -> None:
    """Watch ``plural`` from ``version`` until ``stopped``: each event but bookmarks to ``deliver``.

    A stream the server ends (after ``timeout`` seconds) is opened again from the last version
    seen, so nothing is missed and nothing is LISTed again. A refused watch or an ERROR event
    (410 Gone: too old a version) raises :class:`KubeError`: the caller LISTs again.
    """
    while not stopped.is_set():
        events = kube.watch_api_collection(
            api_version, plural, kind, version, timeout=timeout, fields=fields, labels=labels
        )
        if opened is not None:
            opened()
        for type_, obj in events:
            if stopped.is_set():
                return
            rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
            version = int(rv) if rv.isdigit() else version
            if type_ != "BOOKMARK":
                deliver(type_, obj)


def keep_following(what: str, follow: Callable[[], None], stopped: threading.Event, pause: float) -> None:
    """Call ``follow`` (LIST, then watch) until ``stopped``; after it fails, log and pause first.

    What the store holds stays in use during the pause: the next LIST replaces it whole. Failing
    again within a minute (a watch refused each time, say) doubles the pause, up to a minute.
    """
    delay, failed_at = pause, float("-inf")
    while not stopped.is_set():
        try:
            follow()
            continue  # stopped, or nothing to watch for now (the caller waited already)
        except KubeError as exc:  # a LIST refused, or a watch ended with an error (410 Gone)
            log.info("watch of %s: %s; listing again after a pause", what, exc)
        except Exception:  # a lost connection, a malformed event: start over
            log.exception("watch of %s failed; listing again after a pause", what)
        now = time.monotonic()
        delay = min(delay * 2, 60.0) if now - failed_at < 60 else pause
        failed_at = now
        stopped.wait(delay)
