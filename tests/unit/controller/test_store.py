"""The controller's in-memory store, fed with raw watch bodies.

Cases:
- upsert parses own kinds into models and nodes/Jobs/reports into digests; snapshot keys by name;
- an older resourceVersion than the one held is ignored; a newer one replaces;
- an invalid body (pydantic error) is recorded in ``invalid`` with the message naming the field,
  the previous good version is dropped, nothing raises, the reconciler is woken; a later valid
  body clears the record;
- a node whose only change is a heartbeat does not wake the reconciler; a Ready or taint change does;
- a Job without scan/node labels is not stored (and does not crash);
- remove drops the object, its invalid record and its version (a re-created object with a lower
  resourceVersion is accepted);
"""

from __future__ import annotations

from typing import Any

from plumbob.controller.decisions.digests import ANNOTATION_NODE
from plumbob.controller.store import Store
from plumbob.names import LABEL_SCAN


def schedule(rv: str, cron: str = "0 3 * * *", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceSchedule",
        "metadata": {"name": "nightly", "uid": "s-1", "resourceVersion": rv, "generation": 1},
        "spec": {"schedule": cron, "profiles": ["cis"], **spec},
    }


def node(
    rv: str,
    *,
    ready: str = "True",
    heartbeat: str = "2026-06-01T12:00:00Z",
    taints: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "worker-1",
            "uid": "n-1",
            "resourceVersion": rv,
            "creationTimestamp": "2026-05-01T00:00:00Z",
        },
        "spec": {"taints": taints or []},
        "status": {"conditions": [{"type": "Ready", "status": ready, "lastHeartbeatTime": heartbeat}]},
    }


def test_upsert_parses_models_and_digests() -> None:
    store = Store()
    store.upsert("complianceschedules", schedule("5"))
    store.upsert("nodes", node("7"))
    snap = store.snapshot()
    assert snap.schedules["nightly"].spec.schedule == "0 3 * * *"
    assert snap.nodes["worker-1"].ready
    assert snap.invalid == []


def test_older_resource_version_is_ignored() -> None:
    store = Store()
    store.upsert("complianceschedules", schedule("10", "0 4 * * *"))
    store.upsert("complianceschedules", schedule("9", "0 1 * * *"))
    assert store.snapshot().schedules["nightly"].spec.schedule == "0 4 * * *"
    store.upsert("complianceschedules", schedule("11", "0 5 * * *"))
    assert store.snapshot().schedules["nightly"].spec.schedule == "0 5 * * *"


def test_invalid_body_is_recorded_not_raised() -> None:
    store = Store()
    store.upsert("complianceschedules", schedule("1"))
    store.wake.clear()
    store.upsert("complianceschedules", schedule("2", "61 * * * *"))
    snap = store.snapshot()
    assert "nightly" not in snap.schedules
    [bad] = snap.invalid
    assert (bad.kind, bad.namespace, bad.name, bad.uid) == ("complianceschedules", None, "nightly", "s-1")
    assert "spec.schedule" in bad.message
    assert "61 * * * *" in bad.message
    assert store.wake.is_set()
    store.upsert("complianceschedules", schedule("3"))
    snap = store.snapshot()
    assert snap.invalid == []
    assert "nightly" in snap.schedules


def test_invalid_body_of_another_shape_is_recorded() -> None:
    store = Store()
    store.upsert("complianceschedules", schedule("1", maxParallelNodes="ten"))
    [bad] = store.snapshot().invalid
    assert "maxParallelNodes" in bad.message


def test_node_heartbeat_only_does_not_wake() -> None:
    store = Store()
    store.upsert("nodes", node("1"))
    store.wake.clear()
    store.upsert("nodes", node("2", heartbeat="2026-06-01T12:00:40Z"))
    assert not store.wake.is_set()
    store.upsert("nodes", node("3", ready="False"))
    assert store.wake.is_set()
    store.wake.clear()
    store.upsert("nodes", node("4", ready="False", taints=[{"key": "x", "effect": "NoSchedule"}]))
    assert store.wake.is_set()


def test_foreign_job_is_not_stored() -> None:
    store = Store()
    store.upsert(
        "jobs", {"metadata": {"name": "other", "namespace": "default", "resourceVersion": "1"}, "status": {}}
    )
    assert store.snapshot().jobs == {}
    assert store.snapshot().invalid == []


def test_remove_forgets_object_version_and_invalid() -> None:
    store = Store()
    store.upsert("complianceschedules", schedule("10", "61 * * * *"))
    store.remove("complianceschedules", schedule("10"))
    assert store.snapshot().invalid == []
    store.upsert("complianceschedules", schedule("3"))  # re-created: a lower version is fine
    assert "nightly" in store.snapshot().schedules
    store.remove("complianceschedules", schedule("3"))
    assert "nightly" not in store.snapshot().schedules


def audit_job(rv: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "scan-1-worker-1",
            "namespace": "plumbob-system",
            "resourceVersion": rv,
            "labels": {LABEL_SCAN: "scan-1"},
            "annotations": {ANNOTATION_NODE: "worker-1"},
        },
        "status": status,
    }


def test_a_job_event_that_changes_nothing_read_does_not_wake() -> None:
    store = Store()
    store.upsert("jobs", audit_job("1", active=1))
    assert store.snapshot().jobs["scan-1-worker-1"].active == 1
    store.wake.clear()
    store.upsert("jobs", audit_job("2", active=1, ready=1))  # its Pod became ready: not read
    assert not store.wake.is_set()
    store.upsert("jobs", audit_job("3", succeeded=1, conditions=[{"type": "Complete", "status": "True"}]))
    assert store.wake.is_set() and store.snapshot().jobs["scan-1-worker-1"].complete


def test_a_list_replaces_what_the_store_holds_of_its_kind() -> None:
    store = Store()
    store.upsert("complianceschedules", schedule("5"))
    store.upsert(
        "complianceschedules",
        {**schedule("6", "61 * * * *"), "metadata": {"name": "bad", "resourceVersion": "6"}},
    )
    store.upsert("nodes", node("7"))
    assert store.snapshot().invalid, "the bad schedule is held aside"
    store.replace("complianceschedules", [], 9)  # both deleted while no watch ran
    snap = store.snapshot()
    assert snap.schedules == {} and snap.invalid == [] and set(snap.nodes) == {"worker-1"}
    store.upsert("complianceschedules", schedule("12"))  # newer than the next (late) list: kept
    store.replace("complianceschedules", [], 10)
    assert set(store.snapshot().schedules) == {"nightly"}
