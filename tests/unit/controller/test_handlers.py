"""What the kopf registration relies on.

Cases:
- only watching (``on.event``) resource handlers are registered: no change handlers, daemons,
  timers or indexers, which are what kopf needs a diff base for (so ``NoDiffBase`` loses nothing);
- ``NoDiffBase`` gives kopf an empty essence and no stored base, so every event diffs as empty.
"""

from __future__ import annotations

import kopf

from plumbob.controller import handlers


def test_only_watching_handlers_are_registered() -> None:
    registry = kopf.get_default_registry()
    assert registry._watching.get_all_handlers()  # the feeders are there
    assert not registry._changing.get_all_handlers()
    assert not registry._spawning.get_all_handlers()
    assert not registry._indexing.get_all_handlers()


def test_no_diff_base_is_empty() -> None:
    storage = handlers.NoDiffBase()
    body = kopf.Body({"metadata": {"name": "n", "labels": {"a": "b"}}, "spec": {"x": 1}})
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None
