"""The PolicyReport / OpenReports export step of the controller, with a stand-in API that records writes.

(Here, next to the golden cluster data it exports.)

(The real API server, upstream CRDs and garbage collection: ``tests/e2e/test_dashboards.py``.)

Cases:
- nothing is written, nor a report read, when neither report API is served;
- a settled report is exported once per served API; a second pass writes nothing;
- an unsettled report (status behind the spec) waits;
- a changed status is exported again;
- after a restart, exports whose fingerprint is current are not rewritten.
"""

from __future__ import annotations

from typing import Any

from cluster_data import raw

from plumbob.controller.context import Context
from plumbob.controller.steps.policy_reports import PolicyReportExport
from plumbob.controller.store import Store
from plumbob.kube import NotFoundError


class Api:
    def __init__(self, served: set[str], bodies: dict[str, dict[str, Any]]) -> None:
        self.served, self.bodies = served, bodies
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.writes: list[str] = []
        self.reads = 0

    def served_versions(self) -> set[str]:
        return self.served

    def get_object(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        self.reads += 1
        return self.bodies[name]

    def get_custom(
        self, group: str, version: str, plural: str, name: str, namespace: str | None = None
    ) -> dict[str, Any]:
        try:
            return self.objects[plural, namespace, name]
        except KeyError:
            raise NotFoundError(404, "not found") from None

    def put_custom(self, group: str, version: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        meta = body["metadata"]
        self.objects[plural, meta.get("namespace"), meta["name"]] = body
        self.writes.append(f"{plural}/{meta['name']}")
        return body


def setup(served: set[str]) -> tuple[Api, Store, PolicyReportExport]:
    bodies = {}
    store = Store()
    reports: list[dict[str, Any]] = raw()["reports"]  # type: ignore[assignment]
    for i, original in enumerate(reports):
        body = {
            **original,
            "metadata": {**original["metadata"], "resourceVersion": str(10 + i), "generation": 1},
        }
        bodies[body["metadata"]["name"]] = body
        store.upsert("compliancereports", body)
    api = Api(served, bodies)
    return api, store, PolicyReportExport(Context(api, store))  # type: ignore[arg-type]


def test_nothing_without_report_apis() -> None:
    api, store, export = setup(set())
    export.reconcile(store.snapshot())
    assert api.writes == [] and api.reads == 0


def test_exported_once_then_again_on_change() -> None:
    api, store, export = setup({"wgpolicyk8s.io/v1alpha2", "openreports.io/v1alpha1", "v1"})
    export.reconcile(store.snapshot())
    assert sorted(api.writes) == sorted(
        f"{p}/plumbob-cis.{n}"
        for p in ("clusterpolicyreports", "clusterreports")
        for n in ("cp-1", "worker-1", "worker-2")
    )
    api.writes.clear()
    export.reconcile(store.snapshot())
    assert api.writes == [] and api.reads == 3
    body = api.bodies["cis.worker-1"]
    changed = {**body, "metadata": {**body["metadata"], "resourceVersion": "99"},
               "status": {**body["status"], "exceptions": []}}  # fmt: skip
    api.bodies["cis.worker-1"] = changed
    store.upsert("compliancereports", changed)
    export.reconcile(store.snapshot())
    assert sorted(api.writes) == [
        "clusterpolicyreports/plumbob-cis.worker-1",
        "clusterreports/plumbob-cis.worker-1",
    ]
    exported = api.objects["clusterreports", None, "plumbob-cis.worker-1"]
    assert {r["rule"]: r["result"] for r in exported["results"]}["4.2.6"] == "fail"  # no longer excepted


def test_unsettled_report_waits() -> None:
    api, store, export = setup({"openreports.io/v1alpha1"})
    body = api.bodies["cis.cp-1"]
    newer = {**body, "metadata": {**body["metadata"], "resourceVersion": "50", "generation": 2}}
    store.upsert("compliancereports", newer)
    export.reconcile(store.snapshot())
    assert "clusterreports/plumbob-cis.cp-1" not in api.writes and len(api.writes) == 2


def test_restart_rewrites_nothing_current() -> None:
    api, store, export = setup({"openreports.io/v1alpha1"})
    export.reconcile(store.snapshot())
    api.writes.clear()
    restarted = PolicyReportExport(Context(api, store))  # type: ignore[arg-type]
    restarted.reconcile(store.snapshot())
    assert api.writes == []
