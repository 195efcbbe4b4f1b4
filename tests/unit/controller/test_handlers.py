"""What the kopf registration relies on: kopf runs the process and watches nothing itself.

No resource handler of any sort is registered (the feeds follow the kinds: see test_feeds), so
kopf keeps no diff base, no progress annotations and no finalizers on anybody's objects; the
start-up, clean-up and probe activities are there.
"""

from __future__ import annotations

import kopf

from plumbob.controller import handlers


def test_kopf_watches_nothing() -> None:
    registry = kopf.get_default_registry()
    assert handlers.start and handlers.stop  # imported: the activities registered
    assert registry._activities.get_all_handlers(), "start-up, clean-up, probes"
    for kind in ("_watching", "_changing", "_spawning", "_indexing", "_webhooks"):
        assert not getattr(registry, kind).get_all_handlers(), kind
