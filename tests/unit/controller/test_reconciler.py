"""The holistic reconcile against a fake API (no cluster) and a fixed clock.

The fake records every call with the method names of :class:`plumbob.kube.Kube`, applies writes
to its stored bodies (status patches are JSON merge patches, every write bumps resourceVersion)
and feeds the result back into the store, as the API server and the watch would.

Cases:
- idempotence: after a scan has run to completion, another pass with the same snapshot writes
  nothing (no status patch, no create, no event);
- a schedule whose cron never fires (``0 0 31 2 *``) → Stalled naming spec.schedule, one
  InvalidSchedule event over several passes; one rejected by the model (``61 * * * *``) →
  Stalled naming spec.schedule, one Warning event; the other schedule still fires;
- a due schedule creates one scan per profile and records lastScheduleTime; passes within the
  same tick create nothing more;
- the rescan annotation creates exactly one scan and records ``lastRescan``;
- a fresh report with pass→fail changes posts one ComplianceDrift event per target (profile and
  Node) listing every changed rule, not one per rule; the next pass posts none; fail→pass posts
  ComplianceRestored;
- exception expiry: the result shows ``excepted`` before, ``fail`` at the expiry instant, and
  ExceptionExpired is posted once;
- a scan completes when every node is terminal: per-rule aggregation with failingNodes capped at
  10 and exact counts, nodes done/unschedulable, ScanComplete event, Jobs within max parallel;
- history pruned to the schedule's limit;
- profile drift counters are those of the last scan, not a running total;
- second reports for a node and profile under other names (one of an older scan, seen after the
  real one; one of the running scan): the node stays Running until its agent writes, the scan
  completes with the real results only, each copy is marked Stalled (MisnamedReport) with one
  Warning on it and one on the profile, and gets no results status; later passes write nothing;
- what a pass decides from all the nodes is decided again when a node changes, and only then: a
  node's new label changes the detected platform, a node's new kubelet version its CVEs; a
  heartbeat (a status change the controller does not read) counts as no change;
- a node whose verdict was settled in earlier passes is judged again when only time moves: a
  Job that completed without a report stays Running within the grace, then fails NoResults.
"""

from __future__ import annotations

import copy
import itertools
import time
import typing
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from plumbob.agent.running import report_body
from plumbob.api import KINDS
from plumbob.benchmarks.tailoring import Tailoring
from plumbob.controller.context import unknown_keys
from plumbob.controller.reconciler import Reconciler, Settings
from plumbob.controller.store import Store
from plumbob.engine.findings import Finding, Status
from plumbob.kube import ConflictError, InvalidError, KubeError, NotFoundError

NS = "plumbob-system"
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def merge(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Call:
    method: str
    args: tuple[Any, ...]


MODELS_BY_PLURAL = {k.CRD.plural: k for k in KINDS}


def unknown_status_keys(plural: str, body: dict[str, Any]) -> list[str]:
    model = MODELS_BY_PLURAL.get(plural)
    if model is None:
        return []
    # the status model alone: some tests write a spec the model refuses, on purpose
    status_model = next(
        a for a in typing.get_args(model.model_fields["status"].annotation) if a is not type(None)
    )
    status = status_model.model_validate(body.get("status") or {})
    # a misspelt status key: the API server's structural schema would prune it silently
    return unknown_keys(body.get("status") or {}, status.to_dict(), empty_too=False)


@dataclass
class FakeKube:
    """Same method names as :class:`plumbob.kube.Kube`; writes land in ``objects`` and the store."""

    store: Store
    clock: Clock
    objects: dict[tuple[str, str | None, str], dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    configmaps: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    _rv: itertools.count[int] = field(default_factory=lambda: itertools.count(100))
    _uid: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- helpers for tests
    def put(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object as a user or an agent would, and let the watch see it."""
        body = copy.deepcopy(body)
        meta = body.setdefault("metadata", {})
        key = (plural, meta.get("namespace"), meta["name"])
        old = self.objects.get(key)
        meta.setdefault("uid", f"uid-{next(self._uid)}")
        meta.setdefault("creationTimestamp", iso(self.clock.now))
        if old is not None:
            meta["uid"] = old["metadata"]["uid"]
            meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            same_spec = old.get("spec") == body.get("spec")
            meta["generation"] = old["metadata"]["generation"] + (0 if same_spec else 1)
            body.setdefault("status", old.get("status"))
            if body["status"] is None:
                body.pop("status")
        else:
            meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(next(self._rv))
        self.objects[key] = body
        if plural in self.store.objects:  # a kind the operator watches
            self.store.upsert(plural, copy.deepcopy(body))
        return body

    def writes(self) -> list[Call]:
        reads = {"list_objects", "get_object", "server_version", "list_api_objects", "resource_plural"}
        return [c for c in self.calls if c.method not in reads]

    def events_of(self, reason: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["reason"] == reason]

    def status(self, plural: str, name: str) -> dict[str, Any]:
        out: dict[str, Any] = self.objects[(plural, None, name)].get("status") or {}
        return out

    # -- the Kube surface
    def list_objects(self, plural: str, namespace: str | None = None, labels: str | None = None) -> list[Any]:
        self.calls.append(Call("list_objects", (plural, namespace, labels)))
        return [
            copy.deepcopy(b)
            for (p, ns, _), b in self.objects.items()
            if p == plural and (namespace is None or ns == namespace)
        ]

    def list_api_objects(self, api_version: str, plural: str, kind: str) -> list[dict[str, Any]]:
        self.calls.append(Call("list_api_objects", (api_version, plural, kind)))
        return [
            {**copy.deepcopy(b), "apiVersion": api_version, "kind": kind} for b in self.list_objects(plural)
        ]

    def list_api_collection(
        self, api_version: str, plural: str, kind: str, *, fields: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        items = self.list_api_objects(api_version, plural, kind)
        if fields:  # the one field selector the operator sends: metadata.namespace!=NS
            outside = fields.removeprefix("metadata.namespace!=")
            items = [o for o in items if o.get("metadata", {}).get("namespace") != outside]
        return items, 0

    def watch_api_collection(
        self,
        api_version: str,
        plural: str,
        kind: str,
        version: int,
        *,
        timeout: int,
        fields: str | None = None,
        labels: str | None = None,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """A watch on which nothing happens (the tests deliver events to the store themselves);
        it ends after ``timeout`` seconds, as the API server's would."""
        time.sleep(min(timeout, 1.0))
        return iter(())

    def resource_plural(self, api_version: str, kind: str) -> str | None:
        self.calls.append(Call("resource_plural", (api_version, kind)))
        return None

    def get_object(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        self.calls.append(Call("get_object", (plural, name, namespace)))
        try:
            return copy.deepcopy(self.objects[(plural, namespace, name)])
        except KeyError:
            raise NotFoundError(404, f"{plural} {name} not found") from None

    def create_object(
        self, plural: str, body: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        self.calls.append(Call("create_object", (plural, copy.deepcopy(body), namespace)))
        if (plural, namespace, body["metadata"]["name"]) in self.objects:
            raise ConflictError(409, "already exists")
        return copy.deepcopy(self.put(plural, body))

    def replace_object(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(Call("replace_object", (plural, copy.deepcopy(body))))
        return copy.deepcopy(self.put(plural, body))

    def patch_status(
        self, plural: str, name: str, status: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        self.calls.append(Call("patch_status", (plural, name, copy.deepcopy(status), namespace)))
        key = (plural, namespace, name)
        if key not in self.objects:
            raise NotFoundError(404, f"{plural} {name} not found")
        body = self.objects[key]
        merged = merge(body.get("status") or {}, status)
        unknown = unknown_status_keys(plural, {**body, "status": merged})
        assert not unknown, f"{plural} {name}: status keys the API model does not know: {unknown}"
        body["status"] = merged
        body["metadata"]["resourceVersion"] = str(next(self._rv))
        if plural in self.store.objects:
            self.store.upsert(plural, copy.deepcopy(body))
        return copy.deepcopy(body)

    def delete_object(self, plural: str, name: str, namespace: str | None = None) -> None:
        self.calls.append(Call("delete_object", (plural, name, namespace)))
        body = self.objects.pop((plural, namespace, name), None)
        if body is not None and plural in self.store.objects:
            self.store.remove(plural, body)

    def get_configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.configmaps.get((namespace, name))

    def server_version(self) -> str:
        self.calls.append(Call("server_version", ()))
        return "v1.36.3"

    def served_versions(self) -> set[str]:
        return set()  # no PolicyReport / OpenReports API: nothing is exported

    def create_job(self, namespace: str, body: dict[str, Any]) -> None:
        self.calls.append(Call("create_job", (namespace, copy.deepcopy(body))))
        body = copy.deepcopy(body)
        body["metadata"]["namespace"] = namespace
        if ("jobs", namespace, body["metadata"]["name"]) in self.objects:
            raise ConflictError(409, "already exists")
        body["status"] = {"active": 1, "startTime": iso(self.clock.now)}
        self.put("jobs", body)

    def delete_job(self, namespace: str, name: str) -> None:
        self.calls.append(Call("delete_job", (namespace, name)))
        body = self.objects.pop(("jobs", namespace, name), None)
        if body is not None:
            self.store.remove("jobs", body)

    def delete_jobs(self, namespace: str, labels: str) -> None:
        self.calls.append(Call("delete_jobs", (namespace, labels)))
        key, value = labels.split("=")
        for k, body in list(self.objects.items()):
            if k[0] == "jobs" and k[1] == namespace and body["metadata"]["labels"].get(key) == value:
                del self.objects[k]
                self.store.remove("jobs", body)

    def post_event(
        self,
        involved: Mapping[str, str],
        *,
        type_: str,
        reason: str,
        message: str,
        namespace: str = "default",
    ) -> None:
        self.calls.append(Call("post_event", (dict(involved), type_, reason, message)))
        self.events.append({"involved": dict(involved), "type": type_, "reason": reason, "message": message})


@dataclass
class World:
    kube: FakeKube
    store: Store
    clock: Clock
    reconciler: Reconciler

    def run(self, passes: int = 1) -> None:
        for _ in range(passes):
            self.reconciler.reconcile()

    def jobs(self) -> dict[str, dict[str, Any]]:
        return {k[2]: v for k, v in self.kube.objects.items() if k[0] == "jobs"}

    def scans(self) -> dict[str, dict[str, Any]]:
        return {k[2]: v for k, v in self.kube.objects.items() if k[0] == "compliancescans"}

    def finish_job(self, node: str, *, results: Mapping[str, str], scan: str) -> None:
        """The agent writes its report, then its Job completes."""
        self.write_report(node, results=results, scan=scan)
        self.complete_job(node, scan=scan)

    def complete_job(self, node: str, *, scan: str) -> None:
        """The node's audit Job of ``scan`` completes (whether or not its agent wrote a report)."""
        [(_name, job)] = [
            (n, j)
            for n, j in self.jobs().items()
            if j["metadata"]["annotations"]["plumbob.dev/node-name"] == node
            and j["metadata"]["labels"]["plumbob.dev/scan"] == scan
        ]
        job = copy.deepcopy(job)
        job["status"] = {
            "succeeded": 1,
            "completionTime": iso(self.clock.now),
            "conditions": [{"type": "Complete", "status": "True"}],
        }
        self.kube.put("jobs", job)

    def write_report(self, node: str, *, results: Mapping[str, str], scan: str, profile: str = "cis") -> None:
        findings = [
            Finding(
                rule_id=r,
                title=f"rule {r}",
                severity="high",
                scored=True,
                status=Status(s),
                reason=None if s == "pass" else "because",
            )
            for r, s in results.items()
        ]
        body = report_body(
            profile=profile,
            node=node,
            scan=scan,
            benchmark="cis-1.12",
            findings=findings,
            tailoring=Tailoring(benchmark="cis-1.12"),
        )
        self.kube.put("compliancereports", body)


@pytest.fixture
def world() -> Iterator[World]:
    store = Store()
    clock = Clock()
    kube = FakeKube(store, clock)
    settings = Settings(namespace=NS, image="plumbob:test", progress_interval=0.0, min_interval=0.0)
    reconciler = Reconciler(kube, store, settings, clock)  # type: ignore[arg-type]  # a fake Kube
    reconciler.cluster.background = False  # cluster rules evaluated within the pass: deterministic
    yield World(kube, store, clock, reconciler)
    reconciler.cluster.close()  # the custom kinds' watch threads


def profile(name: str = "cis", *, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceProfile",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"benchmark": {"name": "cis-kubernetes", "version": "1.12"}, **spec},
    }


def schedule(name: str = "nightly", cron: str = "0 3 * * *", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceSchedule",
        "metadata": {"name": name},
        "spec": {"schedule": cron, "timeZone": "Europe/Berlin", "profiles": ["cis"], **spec},
    }


def node(
    name: str,
    *,
    ready: bool = True,
    taints: list[dict[str, str]] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taints": taints or []},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def cluster_exception(expires: str, rules: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ClusterComplianceException",
        "metadata": {"name": "waivers"},
        "spec": {
            "entries": [{"rules": rules, "reason": "pilot", "owner": "sec@example.com", "expires": expires}]
        },
    }


def rescan(w: World, value: str = "1", **spec: Any) -> str:
    w.kube.put("complianceprofiles", profile(annotations={"plumbob.dev/rescan": value}, **spec))
    w.run()
    [name] = [
        n
        for n, s in w.scans().items()
        if s["spec"]["trigger"] == "rescan" and s["metadata"]["creationTimestamp"] == iso(w.clock.now)
    ]
    return name


def complete_scan(w: World, results: Mapping[str, Mapping[str, str]]) -> str:
    """Run a rescan over the nodes in ``results`` until it completes."""
    scan = rescan(w, value=iso(w.clock.now))
    for _ in range(len(results) + 2):
        for job in list(w.jobs().values()):
            node_name = job["metadata"]["annotations"]["plumbob.dev/node-name"]
            if job["metadata"]["labels"]["plumbob.dev/scan"] == scan and not job["status"].get("succeeded"):
                w.finish_job(node_name, results=results[node_name], scan=scan)
        w.run()
        if w.scans()[scan].get("status", {}).get("phase") == "Complete":
            return scan
    raise AssertionError(f"scan {scan} did not complete: {w.scans()[scan].get('status')}")


# ---- idempotence ------------------------------------------------------------------------------------


def test_second_pass_writes_nothing(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("complianceschedules", schedule())
    w.kube.put("clustercomplianceexceptions", cluster_exception("2027-01-01", ["4.2.2"]))
    for n in ("worker-1", "worker-2"):
        w.kube.put("nodes", node(n))
    w.clock.now += timedelta(minutes=1)
    complete_scan(
        w, {"worker-1": {"4.2.1": "pass", "4.2.2": "fail"}, "worker-2": {"4.2.1": "fail", "4.2.2": "pass"}}
    )
    w.run(2)  # settle
    before = len(w.kube.writes())
    w.run()
    assert w.kube.writes()[before:] == []


def test_passes_on_an_empty_cluster_write_nothing(world: World) -> None:
    world.run(3)
    assert world.kube.writes() == []


# ---- schedules --------------------------------------------------------------------------------------


def test_cron_that_never_fires_stalls_with_one_event(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("complianceschedules", schedule("broken", "0 0 31 2 *"))
    w.run(4)
    conditions = {c["type"]: c for c in w.kube.status("complianceschedules", "broken")["conditions"]}
    assert conditions["Stalled"]["status"] == "True"
    assert "spec.schedule" in conditions["Stalled"]["message"]
    assert conditions["Ready"]["status"] == "False"
    events = w.kube.events_of("InvalidSchedule")
    assert len(events) == 1, events
    assert events[0]["type"] == "Warning"
    assert "spec.schedule" in events[0]["message"]
    assert events[0]["involved"]["name"] == "broken"


def test_cron_rejected_by_the_model_stalls_with_one_event(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("complianceschedules", schedule("broken", "61 * * * *"))
    w.kube.put("complianceschedules", schedule("fine", "*/5 * * * *"))
    w.clock.now += timedelta(minutes=5)
    w.run(4)
    conditions = {c["type"]: c for c in w.kube.status("complianceschedules", "broken")["conditions"]}
    assert conditions["Stalled"]["status"] == "True"
    assert "spec.schedule" in conditions["Stalled"]["message"]
    warnings = [e for e in w.kube.events if e["type"] == "Warning" and e["involved"]["name"] == "broken"]
    assert len(warnings) == 1, warnings
    assert "spec.schedule" in warnings[0]["message"]
    assert len(w.scans()) == 1, "the valid schedule is not affected"


def test_due_schedule_creates_one_scan_per_tick(world: World) -> None:
    w = world
    w.clock.now = datetime(2026, 6, 1, 0, 30, tzinfo=UTC)
    w.kube.put("complianceprofiles", profile())
    w.kube.put("complianceschedules", schedule())  # 03:00 Berlin = 01:00 UTC in summer
    w.run(2)
    assert w.scans() == {}
    status = w.kube.status("complianceschedules", "nightly")
    assert status["nextScheduleTime"] == "2026-06-01T01:00:00Z"
    w.clock.now = datetime(2026, 6, 1, 1, 0, 10, tzinfo=UTC)
    w.run(3)
    [(name, scan)] = w.scans().items()
    assert name == "cis-20260601-010000"
    assert scan["spec"] == {
        "profile": "cis",
        "trigger": "schedule",
        "schedule": "nightly",
        "maxParallelNodes": 10,
        "nodeDeadlineSeconds": 300,
        "profileGeneration": 1,
    }
    assert scan["metadata"]["ownerReferences"][0]["kind"] == "ComplianceProfile"
    status = w.kube.status("complianceschedules", "nightly")
    assert status["lastScheduleTime"] == "2026-06-01T01:00:00Z"
    assert status["nextScheduleTime"] == "2026-06-02T01:00:00Z"
    assert len(w.kube.events_of("ScanCreated")) == 1


# ---- rescans ----------------------------------------------------------------------------------------


def test_rescan_annotation_creates_exactly_one_scan(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile(annotations={"plumbob.dev/rescan": "2026-06-01T12:00"}))
    w.run(3)
    creates = [c for c in w.kube.calls if c.method == "create_object" and c.args[0] == "compliancescans"]
    assert len(creates) == 1
    [scan] = w.scans().values()
    assert scan["spec"]["trigger"] == "rescan"
    assert w.kube.status("complianceprofiles", "cis")["lastRescan"] == "2026-06-01T12:00"
    w.clock.now += timedelta(seconds=5)
    w.run(2)
    assert len(w.scans()) == 1, "the same annotation value is not acted on twice"


# ---- drift ------------------------------------------------------------------------------------------


def test_drift_posts_one_event_per_target(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("nodes", node("worker-1"))
    w.write_report(
        "worker-1",
        scan="cis-20260601-110000",
        results={"4.1.1": "pass", "4.1.2": "pass", "4.1.3": "pass", "4.1.4": "fail"},
    )
    w.run(2)
    assert w.kube.events_of("ComplianceDrift") == []
    assert w.kube.status("compliancereports", "cis.worker-1")["baseline"]["passing"] == [
        "4.1.1",
        "4.1.2",
        "4.1.3",
    ]
    w.clock.now += timedelta(hours=1)
    w.write_report(
        "worker-1",
        scan="cis-20260601-120000",
        results={"4.1.1": "fail", "4.1.2": "fail", "4.1.3": "pass", "4.1.4": "pass"},
    )
    w.run(3)
    drift = w.kube.events_of("ComplianceDrift")
    assert sorted(e["involved"]["kind"] for e in drift) == ["ComplianceProfile", "Node"]
    assert all(e["type"] == "Warning" and "4.1.1" in e["message"] and "4.1.2" in e["message"] for e in drift)
    restored = w.kube.events_of("ComplianceRestored")
    assert sorted(e["involved"]["kind"] for e in restored) == ["ComplianceProfile", "Node"]
    assert all("4.1.4" in e["message"] for e in restored)
    status = w.kube.status("compliancereports", "cis.worker-1")
    assert status["drift"]["regressions"] == ["4.1.1", "4.1.2"]
    assert status["drift"]["restorations"] == ["4.1.4"]
    assert status["observedGeneration"] == 2


# ---- exceptions -------------------------------------------------------------------------------------


def test_exception_expiry_flips_back_to_fail_with_one_event(world: World) -> None:
    w = world
    expiry = T0 + timedelta(hours=1)
    w.kube.put("complianceprofiles", profile())
    w.kube.put("nodes", node("worker-1"))
    w.kube.put("clustercomplianceexceptions", cluster_exception(iso(expiry), ["4.2.*"]))
    w.write_report("worker-1", scan="cis-20260601-110000", results={"4.2.1": "fail", "4.2.2": "pass"})
    w.run(2)
    status = w.kube.status("compliancereports", "cis.worker-1")
    assert [e["rule"] for e in status["exceptions"]] == ["4.2.1"]
    assert status["summary"]["excepted"] == 1
    assert status["summary"]["fail"] == 0
    exc = w.kube.status("clustercomplianceexceptions", "waivers")
    assert exc["entries"][0]["state"] == "active"
    assert exc["nextExpiry"] == iso(expiry)
    w.clock.now = expiry
    w.run(3)
    status = w.kube.status("compliancereports", "cis.worker-1")
    assert status["exceptions"] == []
    assert status["summary"]["fail"] == 1
    assert status["summary"]["excepted"] == 0
    exc = w.kube.status("clustercomplianceexceptions", "waivers")
    assert exc["entries"][0]["state"] == "expired"
    assert exc["summary"] == {"total": 1, "active": 0, "unused": 0, "expired": 1, "invalid": 0}
    expired = w.kube.events_of("ExceptionExpired")
    assert len(expired) == 1
    assert expired[0]["involved"]["kind"] == "ClusterComplianceException"


def test_unused_entry_is_reported(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("nodes", node("worker-1"))
    w.kube.put("clustercomplianceexceptions", cluster_exception("2027-01-01", ["4.2.2"]))
    w.write_report("worker-1", scan="cis-20260601-110000", results={"4.2.1": "fail"})
    w.run(2)
    exc = w.kube.status("clustercomplianceexceptions", "waivers")
    assert exc["entries"] == [
        {"index": 0, "state": "unused", "matched": 0, "expiresAt": "2027-01-02T00:00:00Z"}
    ]


# ---- scans ------------------------------------------------------------------------------------------


def test_scan_completes_with_capped_aggregation(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    nodes = [f"worker-{i:02d}" for i in range(12)]
    for n in nodes:
        w.kube.put("nodes", node(n))
    w.kube.put("nodes", node("tainted", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]))
    w.kube.put("nodes", node("sick", ready=False))
    w.clock.now += timedelta(minutes=1)
    results = {
        n: {"4.2.1": "fail", "4.2.2": "pass" if i % 2 else "fail", "4.2.3": "pass"}
        for i, n in enumerate(nodes)
    }
    scan = complete_scan(w, results)
    status = w.scans()[scan]["status"]
    assert status["phase"] == "Complete"
    progress = status["nodes"]
    assert (progress["total"], progress["done"], progress["unschedulable"]) == (14, 12, 2)
    assert {(p["node"], p["reason"]) for p in progress["problems"]} == {
        ("tainted", "UntoleratedTaint"),
        ("sick", "NodeNotReady"),
    }
    rules = {r["id"]: r for r in status["rules"]}
    assert rules["4.2.1"]["status"] == "fail"
    assert rules["4.2.1"]["failCount"] == 12
    assert rules["4.2.1"]["failingNodes"] == nodes[:10]
    assert (rules["4.2.2"]["failCount"], rules["4.2.2"]["passCount"]) == (6, 6)
    assert rules["4.2.3"] | {"failingNodes": []} == rules["4.2.3"]
    assert rules["4.2.3"]["status"] == "pass"
    assert status["summary"]["fail"] == 2
    assert status["summary"]["pass"] == 1
    assert len(w.kube.events_of("ScanComplete")) == 1
    assert not any(
        j["spec"]["template"]["spec"]["nodeName"] in ("tainted", "sick") for j in w.jobs().values()
    )
    w.run()  # the profile follows the scan's status on the next pass (woken by the scan's watch event)
    profile_status = w.kube.status("complianceprofiles", "cis")
    assert profile_status["lastScan"]["name"] == scan
    assert profile_status["summary"]["fail"] == 2


def test_second_report_of_a_node_neither_blocks_nor_replaces_the_real_one(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("nodes", node("worker-1"))
    w.clock.now += timedelta(minutes=1)
    first = complete_scan(w, {"worker-1": {"4.2.1": "pass"}})
    real = copy.deepcopy(w.kube.objects[("compliancereports", None, "cis.worker-1")])

    def copy_of_worker_1(name: str, scan: str) -> None:  # seen after the real report: it would win
        spec = {
            **real["spec"],
            "scan": scan,
            "results": [{"id": "4.2.1", "severity": "high", "status": "fail"}],
        }
        w.kube.put("compliancereports", {**real, "metadata": {"name": name}, "spec": spec, "status": None})

    copy_of_worker_1("cis.worker-1.stale", first)  # of an older scan: would block the new one
    w.clock.now += timedelta(minutes=10)
    second = rescan(w, value="2")
    copy_of_worker_1("cis.worker-1.forged", second)  # of this scan: would stand in for the agent
    w.run(2)
    assert w.scans()[second]["status"]["nodes"]["running"] == 1, "the copy did not finish the node"
    w.finish_job("worker-1", results={"4.2.1": "pass"}, scan=second)
    w.run(3)
    status = w.scans()[second]["status"]
    assert status["phase"] == "Complete" and status["nodes"]["done"] == 1, status["nodes"]
    assert [r["passCount"] for r in status["rules"]] == [1], "only the real report counts"
    assert w.kube.status("complianceprofiles", "cis")["summary"]["fail"] == 0

    for name in ("cis.worker-1.stale", "cis.worker-1.forged"):
        conditions = {c["type"]: c for c in w.kube.status("compliancereports", name)["conditions"]}
        assert conditions["Stalled"]["reason"] == "MisnamedReport"
        assert "cis.worker-1" in conditions["Stalled"]["message"]
        assert "summary" not in w.kube.status("compliancereports", name), "no results applied to it"
        told = [e for e in w.kube.events_of("MisnamedReport") if name in e["message"]]
        assert {e["involved"]["kind"] for e in told} == {"ComplianceReport", "ComplianceProfile"}
        assert len(told) == 2, "once per report, on it and on its profile"
    assert "summary" in w.kube.status("compliancereports", "cis.worker-1")
    before = len(w.kube.writes())
    w.run(2)
    assert w.kube.writes()[before:] == [], "settled: no more status writes or events"


def test_max_parallel_respected(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("complianceschedules", schedule(maxParallelNodes=2))
    for i in range(5):
        w.kube.put("nodes", node(f"worker-{i}"))
    w.clock.now += timedelta(minutes=1)
    scan = rescan(w)
    assert w.scans()[scan]["spec"]["maxParallelNodes"] == 2
    w.run(3)
    assert len(w.jobs()) == 2
    first = sorted(j["metadata"]["annotations"]["plumbob.dev/node-name"] for j in w.jobs().values())
    assert first == ["worker-0", "worker-1"]
    w.finish_job("worker-0", results={"4.2.1": "pass"}, scan=scan)
    w.run(3)
    assert len(w.jobs()) == 3, "one slot freed, one Job started"
    running = [j for j in w.jobs().values() if not j["status"].get("succeeded")]
    assert len(running) == 2
    creates = [c for c in w.kube.calls if c.method == "create_job"]
    assert len(creates) == 3, "no Job created twice"


def test_history_pruned_to_the_limit(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("complianceschedules", schedule(historyLimit=2))
    w.kube.put("nodes", node("worker-1"))
    scans = []
    for _ in range(4):
        w.clock.now += timedelta(minutes=10)
        scans.append(complete_scan(w, {"worker-1": {"4.2.1": "pass"}}))
        w.run()
    assert sorted(w.scans()) == sorted(scans[-2:])
    deletes = [c.args[1] for c in w.kube.calls if c.method == "delete_object"]
    assert sorted(deletes) == sorted(scans[:2]), "each old scan deleted once"


def test_profile_drift_counts_the_last_scan_not_a_running_total(world: World) -> None:
    # docs/reference/api.md: "drift counts the last scan against the one before it, not a running total".
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("nodes", node("worker-1"))
    w.clock.now += timedelta(minutes=1)
    complete_scan(w, {"worker-1": {"4.2.1": "pass", "4.2.2": "pass"}})
    w.clock.now += timedelta(minutes=10)
    complete_scan(w, {"worker-1": {"4.2.1": "fail", "4.2.2": "pass"}})
    w.run()
    assert w.kube.status("complianceprofiles", "cis")["drift"]["regressions"] == 1
    w.clock.now += timedelta(minutes=10)
    complete_scan(w, {"worker-1": {"4.2.1": "fail", "4.2.2": "fail"}})
    w.run()
    assert w.kube.status("complianceprofiles", "cis")["drift"]["regressions"] == 1
    w.clock.now += timedelta(minutes=10)
    complete_scan(w, {"worker-1": {"4.2.1": "fail", "4.2.2": "fail"}})
    w.run()
    assert w.kube.status("complianceprofiles", "cis")["drift"]["regressions"] == 0


def test_node_deleted_mid_scan_is_recorded(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    for n in ("worker-1", "worker-2"):
        w.kube.put("nodes", node(n))
    w.clock.now += timedelta(minutes=1)
    scan = rescan(w)
    w.run()
    assert len(w.jobs()) == 2
    gone = w.kube.objects.pop(("nodes", None, "worker-2"))
    w.store.remove("nodes", gone)
    w.run(2)
    assert not any(j["spec"]["template"]["spec"]["nodeName"] == "worker-2" for j in w.jobs().values()), (
        "the Job of a deleted node is removed"
    )
    w.finish_job("worker-1", results={"4.2.1": "pass"}, scan=scan)
    w.run(3)
    status = w.scans()[scan]["status"]
    assert status["phase"] == "Complete"
    assert (status["nodes"]["total"], status["nodes"]["done"], status["nodes"]["failed"]) == (2, 1, 1)
    assert [(p["node"], p["reason"]) for p in status["nodes"]["problems"]] == [("worker-2", "NodeDeleted")]


def test_stalled_schedule_announces_no_next_scan(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("complianceschedules", schedule())
    w.run()
    assert "nextScheduleTime" in w.kube.status("complianceschedules", "nightly")
    w.kube.put("complianceschedules", schedule(cron="0 0 31 2 *"))
    w.run(2)
    status = w.kube.status("complianceschedules", "nightly")
    assert {c["type"]: c["status"] for c in status["conditions"]}["Stalled"] == "True"
    assert status.get("nextScheduleTime") is None, "a stalled schedule must not announce a next scan"


def test_schedule_broken_again_after_a_fix_stalls_again(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("complianceschedules", schedule(cron="61 * * * *"))
    w.run(2)
    stalled = {c["type"]: c["status"] for c in w.kube.status("complianceschedules", "nightly")["conditions"]}
    assert stalled["Stalled"] == "True"
    w.kube.put("complianceschedules", schedule())
    w.run(2)
    fixed = {c["type"]: c["status"] for c in w.kube.status("complianceschedules", "nightly")["conditions"]}
    assert fixed["Stalled"] == "False"
    w.kube.put("complianceschedules", schedule(cron="61 * * * *"))
    w.run(2)
    again = {c["type"]: c["status"] for c in w.kube.status("complianceschedules", "nightly")["conditions"]}
    assert again["Stalled"] == "True", "the second breakage is reported too"
    warnings = [e for e in w.kube.events if e["type"] == "Warning" and e["involved"]["name"] == "nightly"]
    assert len(warnings) == 2


# ---- a node's outcome does not depend on its Job still existing ------------------------------------


def fail_job(w: World, node_name: str, reason: str = "BackoffLimitExceeded") -> None:
    [job] = [
        j for j in w.jobs().values() if j["metadata"]["annotations"]["plumbob.dev/node-name"] == node_name
    ]
    job = copy.deepcopy(job)
    job["status"] = {
        "failed": 2,
        "conditions": [{"type": "Failed", "status": "True", "reason": reason, "message": "exit code 3"}],
    }
    w.kube.put("jobs", job)


def test_failed_node_stays_failed_when_its_job_is_deleted(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    for n in ("worker-1", "worker-2"):
        w.kube.put("nodes", node(n))
    w.clock.now += timedelta(minutes=1)
    scan = rescan(w)
    w.run()
    fail_job(w, "worker-2")
    w.run()
    problems = w.scans()[scan]["status"]["nodes"]["problems"]
    assert [(p["node"], p["reason"]) for p in problems] == [("worker-2", "AgentFailed")]
    # the failed Job goes (a TTL, a person) while the scan still runs
    [name] = [n for n, j in w.jobs().items() if j["spec"]["template"]["spec"]["nodeName"] == "worker-2"]
    w.kube.delete_job(NS, name)
    w.run(3)
    creates = [
        c.args[1]["spec"]["template"]["spec"]["nodeName"] for c in w.kube.calls if c.method == "create_job"
    ]
    assert sorted(creates) == ["worker-1", "worker-2"], "the failed node's audit was not started again"
    w.finish_job("worker-1", results={"4.2.1": "pass"}, scan=scan)
    w.run(2)
    status = w.scans()[scan]["status"]
    assert status["phase"] == "Complete"
    assert (status["nodes"]["done"], status["nodes"]["failed"]) == (1, 1)


def test_finished_scan_deletes_its_jobs_in_one_request(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    for n in ("worker-1", "worker-2"):
        w.kube.put("nodes", node(n))
    w.clock.now += timedelta(minutes=1)
    scan = complete_scan(w, {"worker-1": {"4.2.1": "pass"}, "worker-2": {"4.2.1": "fail"}})
    w.run(2)
    assert not w.jobs(), "no Job of a finished scan is left"
    deletes = [c for c in w.kube.calls if c.method in ("delete_jobs", "delete_job")]
    assert [(c.method, c.args) for c in deletes] == [("delete_jobs", (NS, f"plumbob.dev/scan={scan}"))]


# ---- one bad object never stops the others ------------------------------------------------------------


def test_report_with_mixed_rule_ids_does_not_stop_the_pass(world: World) -> None:
    # Rule ids that mix numbers and words ("1.2.a" beside "1.2.3") once made sorting raise TypeError
    # on every pass, and nothing else was reconciled from then on.
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("nodes", node("worker-1"))
    w.clock.now += timedelta(minutes=1)
    scan = complete_scan(w, {"worker-1": {"1.2.3": "pass", "1.2.a": "fail", "custom": "pass"}})
    w.run()
    rules = [r["id"] for r in w.scans()[scan]["status"]["rules"]]
    assert rules == ["1.2.3", "1.2.a", "custom"]
    assert w.kube.status("complianceprofiles", "cis")["summary"]["fail"] == 1


def test_report_not_shaped_like_the_agents_is_invalid_not_a_crash(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("nodes", node("worker-1"))
    forged = {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceReport",
        "metadata": {"name": "cis.forged"},
        "spec": {"profile": "cis", "nodeName": "worker-1", "scan": "x", "results": [{"id": 7, "status": 3}]},
    }
    w.kube.put("compliancereports", forged)
    w.run()
    [bad] = w.store.snapshot().invalid
    assert (bad.kind, bad.name) == ("compliancereports", "cis.forged")
    assert "spec.results[0].id" in bad.message
    w.clock.now += timedelta(minutes=1)
    complete_scan(w, {"worker-1": {"4.2.1": "pass"}})  # the rest goes on


def test_an_object_that_raises_is_contained_and_reported_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("complianceprofiles", profile("other"))
    real = w.reconciler.resolve

    def resolve(p: Any) -> Any:
        if p.metadata.name == "cis":
            raise RuntimeError("boom")
        return real(p)

    monkeypatch.setattr(w.reconciler, "resolve", resolve)
    w.run(3)
    assert w.kube.status("complianceprofiles", "other")["observedGeneration"] == 1, (
        "the other profile went on"
    )
    errors = w.kube.events_of("ReconcileError")
    assert [e["involved"]["name"] for e in errors] == ["cis"], "one Event, on the object that failed"
    assert "RuntimeError: boom" in errors[0]["message"]


# ---- a trigger whose record cannot be written does not repeat its side effect ------------------------


def test_long_rescan_value_starts_one_scan_and_is_recorded_as_a_digest(world: World) -> None:
    w = world  # no nodes: each scan completes at once, so only the record stops a second one
    value = "x" * 300
    scan = rescan(w, value)
    for _ in range(3):
        w.clock.now += timedelta(seconds=5)
        w.run()
    assert [n for n, s in w.scans().items() if s["spec"]["trigger"] == "rescan"] == [scan]
    recorded = w.kube.status("complianceprofiles", "cis")["lastRescan"]
    assert recorded.startswith("sha256:") and len(recorded) <= 128


def test_rescan_whose_record_is_refused_starts_one_scan(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world  # no nodes: each scan completes at once, so only the record stops a second one
    real = w.kube.patch_status

    def patch_status(plural: str, name: str, status: dict[str, Any], namespace: str | None = None) -> Any:
        if plural == "complianceprofiles" and "lastRescan" in status:
            raise InvalidError(422, "status.lastRescan: Too long")
        return real(plural, name, status, namespace)

    monkeypatch.setattr(w.kube, "patch_status", patch_status)
    rescan(w, "now")
    for _ in range(5):
        w.clock.now += timedelta(seconds=5)
        w.run()
    assert len([s for s in w.scans().values() if s["spec"]["trigger"] == "rescan"]) == 1


# ---- nothing is Compliant unless something was checked; names that point at nothing ------------------


def conds(w: World, plural: str, name: str) -> dict[str, tuple[str, str, str]]:
    return {
        c["type"]: (c["status"], c["reason"], c["message"])
        for c in w.kube.status(plural, name).get("conditions", [])
    }


def test_profile_matching_no_node_is_stalled_and_not_compliant(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile(nodeSelector={"matchLabels": {"pool": "gpu"}}))
    w.kube.put("nodes", node("worker-1"))
    w.clock.now += timedelta(minutes=1)
    rescan(w, nodeSelector={"matchLabels": {"pool": "gpu"}})
    w.run(3)
    [scan] = w.scans().values()
    assert scan["status"]["phase"] == "Complete" and scan["status"]["nodes"]["total"] == 0
    c = conds(w, "complianceprofiles", "cis")
    assert c["Stalled"][:2] == ("True", "NoNodesSelected") and "spec.nodeSelector" in c["Stalled"][2]
    assert c["Ready"][0] == "False" and c["Reconciling"][0] == "False"
    assert c["Compliant"][:2] == ("False", "NothingChecked")


def test_scan_that_audited_no_node_is_not_compliant(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("nodes", node("worker-1", ready=False))
    w.clock.now += timedelta(minutes=1)
    rescan(w)
    w.run(3)
    c = conds(w, "complianceprofiles", "cis")
    assert c["Compliant"][:2] == ("False", "NothingChecked")


def test_only_manual_results_are_not_compliant(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("nodes", node("worker-1"))
    w.clock.now += timedelta(minutes=1)
    complete_scan(w, {"worker-1": {"4.2.1": "manual", "4.2.2": "not-applicable"}})
    w.run()
    assert conds(w, "complianceprofiles", "cis")["Compliant"][:2] == ("False", "NothingChecked")


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        ({"exclude": ["*"]}, "spec.rules: include and exclude select no rule of cis-1.12"),
        ({"include": ["9.9.9"]}, "spec.rules.include[0]: '9.9.9' matches no rule"),
        ({"exclude": ["4.2.1", "4.2.99"]}, "spec.rules.exclude[1]: '4.2.99' matches no rule"),
        ({"manual": [{"rule": "7.*", "rationale": "x"}]}, "spec.rules.manual[0].rule: '7.*' matches no rule"),
    ],
)
def test_tailoring_that_points_at_nothing_stalls_the_profile(
    world: World, rules: dict[str, Any], field: str
) -> None:
    w = world
    w.kube.put("complianceprofiles", profile(rules=rules))
    w.kube.put("nodes", node("worker-1"))
    w.run()
    c = conds(w, "complianceprofiles", "cis")
    assert c["Stalled"][:2] == ("True", "CannotResolve") and field in c["Stalled"][2]
    assert [e["reason"] for e in w.kube.events] == ["CannotResolve"]
    w.clock.now += timedelta(minutes=1)
    scan = rescan(w, rules=rules)
    w.run()
    assert w.scans()[scan]["status"]["phase"] == "Failed" and not w.jobs(), (
        "no audit of a meaningless tailoring"
    )


def test_variable_of_the_wrong_type_stalls_the_profile(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile(variables={"audit_log_maxage": "ninety"}))
    w.run()
    stalled = conds(w, "complianceprofiles", "cis")["Stalled"]
    assert stalled[0] == "True" and "variables.audit_log_maxage: 'ninety' is not a whole number" in stalled[2]


def test_profile_waiting_for_its_schedule_is_ready(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("complianceschedules", schedule())
    w.kube.put("nodes", node("worker-1"))
    w.run(2)
    c = conds(w, "complianceprofiles", "cis")
    assert c["Ready"][:2] == ("True", "WaitingForScan") and "next scan at" in c["Ready"][2]
    assert c["Reconciling"][0] == "False" and c["Stalled"][0] == "False"
    assert c["Compliant"][:2] == ("False", "NotScanned")


def test_job_the_api_refuses_fails_the_node_once(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    for n in ("worker-1", "worker-2"):
        w.kube.put("nodes", node(n))
    real = w.kube.create_job

    def create_job(namespace: str, body: dict[str, Any]) -> None:
        if body["spec"]["template"]["spec"]["nodeName"] == "worker-2":
            w.kube.calls.append(Call("create_job", (namespace, body)))
            raise InvalidError(422, "Job.batch is invalid: spec.template.spec.tolerations[0]: Invalid value")
        real(namespace, body)

    monkeypatch.setattr(w.kube, "create_job", create_job)
    w.clock.now += timedelta(minutes=1)
    scan = rescan(w)
    w.run(4)
    [problem] = w.scans()[scan]["status"]["nodes"]["problems"]
    assert (problem["node"], problem["state"], problem["reason"]) == ("worker-2", "Failed", "JobRejected")
    assert "tolerations[0]" in problem["message"]
    refused = [
        c
        for c in w.kube.calls
        if c.method == "create_job" and c.args[1]["spec"]["template"]["spec"]["nodeName"] == "worker-2"
    ]
    assert len(refused) == 1, "a refused Job is not retried on every pass"
    w.finish_job("worker-1", results={"4.2.1": "pass"}, scan=scan)
    w.run(2)
    assert w.scans()[scan]["status"]["phase"] == "Complete"


# ---- a valid object edited into an invalid one fails visibly; one bad entry keeps the others ---------


def test_valid_schedule_edited_invalid_fails_for_kstatus_and_each_bad_edit_is_announced(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("complianceschedules", schedule())
    w.run(2)
    assert w.kube.status("complianceschedules", "nightly")["nextScheduleTime"]
    w.kube.put("complianceschedules", schedule(cron="61 * * * *"))
    w.run(2)
    status = w.kube.status("complianceschedules", "nightly")
    c = conds(w, "complianceschedules", "nightly")
    assert status["observedGeneration"] == 2, "kstatus must see the bad generation was observed"
    assert c["Stalled"][0] == "True" and c["Ready"][0] == "False" and c["Reconciling"][0] == "False"
    assert c["Stalled"][2].startswith("spec.schedule: ") and "https://" not in c["Stalled"][2]
    assert status.get("nextScheduleTime") is None, "no next scan is announced for an unusable schedule"
    w.kube.put("complianceschedules", schedule(cron="61 * * * *", timeZone="Mars/Olympus"))
    w.run(2)
    assert w.kube.status("complianceschedules", "nightly")["observedGeneration"] == 3
    assert "spec.timeZone" in conds(w, "complianceschedules", "nightly")["Stalled"][2]
    assert len(w.kube.events_of("InvalidSchedule")) == 2, "each bad edit raises its own Event"


def test_one_bad_entry_keeps_the_other_entries_of_its_list_applying(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("nodes", node("worker-1"))
    good = {"rules": ["4.2.1"], "reason": "pilot", "owner": "sec@example.com", "expires": "2027-01-01"}
    bad = {**good, "rules": ["4.2.2"], "expires": "2027-02-30"}  # passes the CRD pattern, is no date
    w.kube.put(
        "clustercomplianceexceptions",
        {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ClusterComplianceException",
            "metadata": {"name": "waivers"},
            "spec": {"entries": [bad, good]},
        },
    )
    w.clock.now += timedelta(minutes=1)
    complete_scan(w, {"worker-1": {"4.2.1": "fail", "4.2.2": "pass"}})
    w.run(2)
    assert w.kube.status("complianceprofiles", "cis")["summary"]["excepted"] == 1, "the good entry applies"
    status = w.kube.status("clustercomplianceexceptions", "waivers")
    states = {e["index"]: e["state"] for e in status["entries"]}
    assert states == {0: "invalid", 1: "active"}, "entries keep their index in spec.entries"
    assert "spec.entries[0].expires" in status["entries"][0]["message"]
    c = conds(w, "clustercomplianceexceptions", "waivers")
    assert c["Stalled"][:2] == ("True", "InvalidEntry") and "the other entries apply" in c["Stalled"][2]
    assert len(w.kube.events_of("InvalidEntry")) == 1


def test_exception_entry_naming_what_does_not_exist_is_reported_by_field(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    body = cluster_exception("2027-01-01", ["4.2.1", "9.9.9"])
    body["spec"]["entries"][0]["profiles"] = ["cis", "nope"]
    w.kube.put("clustercomplianceexceptions", body)
    w.run(2)
    c = conds(w, "clustercomplianceexceptions", "waivers")
    assert c["Stalled"][:2] == ("True", "UnknownReference")
    assert "spec.entries[0].rules[1]: '9.9.9' matches no rule" in c["Stalled"][2]
    assert "spec.entries[0].profiles[1]: profile 'nope' does not exist" in c["Stalled"][2]
    assert len(w.kube.events_of("UnknownReference")) == 1


def test_blanket_exception_raises_a_warning_once(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("clustercomplianceexceptions", cluster_exception("2027-01-01", ["*"]))
    w.run(3)
    [warning] = w.kube.events_of("BlanketException")
    assert warning["type"] == "Warning" and "every rule" in warning["message"]


def test_schedule_naming_a_missing_profile_is_not_ready(world: World) -> None:
    w = world
    w.kube.put("complianceschedules", schedule(profiles=["cis", "typo"]))
    w.kube.put("complianceprofiles", profile())
    w.run(2)
    c = conds(w, "complianceschedules", "nightly")
    assert c["Ready"][0] == "False" and c["Stalled"][:2] == ("True", "ProfileNotFound")
    assert "spec.profiles: no such profile: typo" in c["Stalled"][2]
    assert len(w.kube.events_of("ProfileNotFound")) == 1
    w.kube.put("complianceprofiles", profile("typo"))
    w.run(2)
    assert conds(w, "complianceschedules", "nightly")["Ready"][0] == "True", "heals when the profile exists"


def test_schedule_selector_matching_no_profile_is_not_ready(world: World) -> None:
    w = world
    w.kube.put("complianceschedules", schedule(profiles=None, profileSelector={"matchLabels": {"tier": "x"}}))
    w.run(2)
    assert conds(w, "complianceschedules", "nightly")["Stalled"][:2] == ("True", "NoProfilesSelected")


def test_schedule_arriving_just_after_its_profile_governs_the_first_scan(world: World) -> None:
    # A GitOps folder with a profile (rescan annotation) and its schedule: the schedule may be seen
    # one pass later than the profile. The first scan must still run with the schedule's settings.
    w = world
    for n in ("worker-1", "worker-2", "worker-3"):
        w.kube.put("nodes", node(n))
    w.clock.now += timedelta(minutes=1)
    scan = rescan(w)
    assert not w.jobs(), "a new scan starts no audit in the pass that created it"
    w.kube.put("complianceschedules", schedule(maxParallelNodes=1, nodeDeadlineSeconds=42))
    w.run(3)
    assert len(w.jobs()) == 1, "the schedule's parallelism governs"
    [job] = w.jobs().values()
    assert job["spec"]["activeDeadlineSeconds"] == 42, "and its node deadline"
    assert "maxParallelNodes" not in w.scans()[scan]["spec"], "nothing was frozen before the schedule arrived"


def test_exception_list_that_cannot_be_parsed_shows_no_entry_as_applying(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("clustercomplianceexceptions", cluster_exception("2027-01-01", ["4.2.1"]))
    w.run(2)
    assert w.kube.status("clustercomplianceexceptions", "waivers")["entries"]
    broken = cluster_exception("2027-01-01", ["4.2.1"])
    broken["spec"]["unexpected"] = True  # the whole list fails, not one entry
    w.kube.put("clustercomplianceexceptions", broken)
    w.run(2)
    status = w.kube.status("clustercomplianceexceptions", "waivers")
    assert status.get("entries") is None and status.get("summary") is None
    assert conds(w, "clustercomplianceexceptions", "waivers")["Stalled"][0] == "True"


def test_tick_whose_record_is_refused_skips_with_one_event(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    w.clock.now = datetime(2026, 6, 1, 0, 30, tzinfo=UTC)
    w.kube.put("nodes", node("worker-1"))
    w.kube.put("complianceprofiles", profile())
    w.kube.put("complianceschedules", schedule())
    w.run(2)
    rescan(w, "running")  # a scan that is still running when the tick comes
    real = w.kube.patch_status

    def patch_status(plural: str, name: str, status: dict[str, Any], namespace: str | None = None) -> Any:
        if plural == "complianceschedules":
            raise InvalidError(422, "status: Invalid value")
        return real(plural, name, status, namespace)

    monkeypatch.setattr(w.kube, "patch_status", patch_status)
    w.clock.now = datetime(2026, 6, 1, 1, 0, 10, tzinfo=UTC)
    for _ in range(4):
        w.clock.now += timedelta(seconds=5)
        w.run()
    assert len(w.kube.events_of("ScanSkipped")) == 1
    assert len([s for s in w.scans().values() if s["spec"]["trigger"] == "schedule"]) == 0


def test_exception_entry_naming_a_missing_namespace_is_reported(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    for name in ("default", "team-a"):
        w.kube.put("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    body = cluster_exception("2027-01-01", ["4.2.1"])
    body["spec"]["entries"][0]["namespaces"] = ["team-*", "ghost"]
    w.kube.put("clustercomplianceexceptions", body)
    w.run(2)
    c = conds(w, "clustercomplianceexceptions", "waivers")
    assert c["Stalled"][:2] == ("True", "UnknownReference")
    assert "spec.entries[0].namespaces[1]: no namespace matches 'ghost'" in c["Stalled"][2]
    assert "namespaces[0]" not in c["Stalled"][2], "a glob that matches an existing namespace is fine"


# ---- cluster-level rules (controller/steps/cluster/cluster_status.py) -------------------------------


def test_cluster_rules_and_custom_rules_land_in_the_cluster_report(world: World) -> None:
    w = world
    custom = {
        "id": "custom.no-host-net",
        "title": "no host network",
        "match": {"apiVersion": "v1", "kind": "Pod"},
        "expression": "!has(object.spec.hostNetwork) || !object.spec.hostNetwork",
    }
    w.kube.put("complianceprofiles", profile(customRules=[custom]))
    pod = {"metadata": {"name": "p", "namespace": "team"}, "spec": {"hostNetwork": True, "containers": []}}
    w.kube.objects[("pods", "team", "p")] = pod  # not a kind the store watches: only listed
    w.run()
    report = w.kube.objects[("compliancereports", None, "cis")]
    results = {
        (r["id"], (r.get("resource") or {}).get("name"), r["status"]) for r in report["spec"]["results"]
    }
    assert ("5.2.5", "p", "fail") in results
    assert ("custom.no-host-net", "p", "fail") in results
    w.run()  # the pass after the evaluation writes the report's status
    assert w.kube.status("compliancereports", "cis")["summary"]["fail"] >= 2
    before = len(w.kube.writes())
    w.run()  # nothing changed and the interval has not passed: no write
    assert w.kube.writes()[before:] == []


def test_status_is_kept_only_for_the_kinds_a_custom_rule_reads(world: World) -> None:
    w = world
    pod = {
        "metadata": {"name": "p", "namespace": "team"},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Failed"},
    }
    w.kube.objects[("pods", "team", "p")] = pod
    w.kube.put("complianceprofiles", profile())
    w.run()
    assert [b.get("status") for b in w.store.cluster_object_bodies("pods")] == [None], (
        "no rule on: a Pod is held without its status"
    )
    running = {
        "id": "custom.running",
        "title": "pods run",
        "match": {"apiVersion": "v1", "kind": "Pod"},
        "expression": "object.status.phase == 'Running'",
    }
    w.kube.put("complianceprofiles", profile(customRules=[running]))
    w.clock.now += timedelta(seconds=2)
    under_way: Future[None] = Future()  # an evaluation in its worker: the watches stay as they are
    w.reconciler.cluster._running = under_way
    w.run()
    assert [b.get("status") for b in w.store.cluster_object_bodies("pods")] == [None], (
        "a watch is not started anew under an evaluation that reads its kind"
    )
    under_way.set_result(None)
    w.run(2)
    assert [b.get("status") for b in w.store.cluster_object_bodies("pods")] == [{"phase": "Failed"}]
    assert cluster_result(w, "custom.running", "p") == "fail", "the rule read the status"


def test_a_custom_rule_that_does_not_compile_stalls_the_profile_and_the_rest_still_runs(world: World) -> None:
    w = world
    good = {
        "id": "custom.no-host-net",
        "title": "no host network",
        "match": {"apiVersion": "v1", "kind": "Pod"},
        "expression": "!has(object.spec.hostNetwork) || !object.spec.hostNetwork",
    }
    broken = {**good, "id": "custom.broken", "expression": "nosuch(object)"}
    unserved = {**good, "id": "custom.gadget", "match": {"apiVersion": "example.com/v1", "kind": "Gadget"}}
    w.kube.put("complianceprofiles", profile(customRules=[good, broken, unserved]))
    pod = {"metadata": {"name": "p", "namespace": "team"}, "spec": {"hostNetwork": True, "containers": []}}
    w.kube.objects[("pods", "team", "p")] = pod
    w.run(3)
    c = conds(w, "complianceprofiles", "cis")
    assert c["Stalled"][:2] == ("True", "InvalidCustomRule")
    assert (
        "spec.customRules[1] (custom.broken): does not compile" in c["Stalled"][2]
        and "nosuch" in c["Stalled"][2]
    )
    assert w.kube.status("complianceprofiles", "cis")["observedGeneration"] == 1
    (event,) = w.kube.events_of("InvalidCustomRule")
    assert "custom.broken" in event["message"]
    report = w.kube.objects[("compliancereports", None, "cis")]
    results = {
        (r["id"], (r.get("resource") or {}).get("name"), r["status"]) for r in report["spec"]["results"]
    }
    assert ("custom.broken", None, "error") in results
    assert ("custom.no-host-net", "p", "fail") in results, "the other custom rules still run"
    assert ("5.2.5", "p", "fail") in results, "and the benchmark's"
    assert ("custom.gadget", None, "error") in results
    (unreadable,) = w.kube.events_of("CustomRuleUnreadable")
    assert "Gadget" in unreadable["message"]


def test_a_profiles_expected_holders_replace_the_benchmarks(world: World) -> None:
    w = world
    admin = {
        "metadata": {"name": "cluster-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "Group", "name": "system:masters"}],
    }
    w.kube.objects[("clusterrolebindings", None, "cluster-admin")] = admin
    w.kube.put("complianceprofiles", profile())
    w.run()

    def admin_result() -> dict[str, Any]:
        report = w.kube.objects[("compliancereports", None, "cis")]
        (r,) = [r for r in report["spec"]["results"] if r["id"] == "5.1.1" and r.get("resource")]
        return dict(r)

    assert admin_result()["status"] == "pass" and admin_result()["reason"].startswith("expected:")
    own = [{"rules": ["5.2.*"], "reason": "ours", "namespace": "kube-system"}]
    w.kube.put("complianceprofiles", profile(expectedHolders=own))
    w.run()  # a spec change re-evaluates at once
    assert admin_result()["status"] == "fail"


def test_pod_security_standards_are_evaluated_beside_the_benchmark(world: World) -> None:
    w = world
    pod = {"metadata": {"name": "p", "namespace": "team"}, "spec": {"containers": [{"name": "c"}]}}
    w.kube.objects[("pods", "team", "p")] = pod
    pss = {"level": "restricted", "version": "v1.36"}
    w.kube.put("complianceprofiles", profile(podSecurity=pss, rules={"exclude": ["runAsUser"]}))
    w.run()
    report = w.kube.objects[("compliancereports", None, "cis")]
    results = {
        (r["id"], (r.get("resource") or {}).get("name"), r["status"]) for r in report["spec"]["results"]
    }
    assert ("runAsNonRoot", "p", "fail") in results
    assert ("allowPrivilegeEscalation", "p", "fail") in results
    assert ("privileged", None, "pass") in results
    assert not any(rule == "runAsUser" for rule, _, _ in results)


def test_cluster_evaluation_runs_in_its_worker_without_holding_up_the_pass(world: World) -> None:
    w = world
    w.reconciler.cluster.background = True  # as in the operator: watch threads, a worker thread
    w.kube.put("complianceprofiles", profile())
    add_pod(w, privileged_pod("p"))
    deadline = time.monotonic() + 30
    while ("compliancereports", None, "cis") not in w.kube.objects:  # the kinds' LISTs, then the worker
        assert time.monotonic() < deadline, "no cluster report within 30 s"
        w.run()
        w.reconciler.cluster.wait(timeout=30)
    assert cluster_result(w, "5.2.2", "p") == "fail", "the watches' LISTs fed the evaluation"


# ---- cluster-level results: change-triggered evaluation, drift Events, exceptions, the profile ------


def privileged_pod(name: str, namespace: str = "team") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}"},
        "spec": {"containers": [{"name": "c", "securityContext": {"privileged": True}}]},
    }


def add_pod(w: World, pod: dict[str, Any]) -> None:
    """A Pod appears: stored in the fake API and seen by the operator's (counting) watch."""
    meta = pod["metadata"]
    w.kube.objects[("pods", meta["namespace"], meta["name"])] = pod
    w.kube.store.note_cluster_object("pods", pod, deleted=False)


def remove_pod(w: World, pod: dict[str, Any]) -> None:
    meta = pod["metadata"]
    del w.kube.objects[("pods", meta["namespace"], meta["name"])]
    w.kube.store.note_cluster_object("pods", pod, deleted=True)


def cluster_result(w: World, rule: str, name: str) -> str | None:
    report = w.kube.objects[("compliancereports", None, "cis")]
    hits = [
        r["status"]
        for r in report["spec"]["results"]
        if r["id"] == rule and (r.get("resource") or {}).get("name") == name
    ]
    return hits[0] if hits else None


def test_a_kind_that_cannot_be_listed_errors_every_rule_and_an_unserved_kind_has_none(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    listed = w.kube.list_api_collection
    refused = {"networkpolicies"}

    def list_api_collection(
        api_version: str, plural: str, kind: str, *, fields: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        if plural == "validatingadmissionpolicies":
            raise NotFoundError(404, "the server could not find the requested resource")  # an older cluster
        if plural in refused:
            raise KubeError(403, "networkpolicies is forbidden")
        return listed(api_version, plural, kind, fields=fields)

    monkeypatch.setattr(w.kube, "list_api_collection", list_api_collection)
    w.kube.put("complianceprofiles", profile())
    add_pod(w, privileged_pod("p"))
    w.run(2)
    report = w.kube.objects[("compliancereports", None, "cis")]
    statuses = {r["status"] for r in report["spec"]["results"] if not r["id"].startswith("custom.")}
    assert statuses == {"error"}, "a rule never passes on objects it could not see"
    assert all("cannot list networkpolicies" in r["reason"] for r in report["spec"]["results"])
    refused.clear()  # the permission is granted: the next evaluation LISTs the kind again
    w.clock.now += timedelta(minutes=2)
    w.run(2)
    assert cluster_result(w, "5.2.2", "p") == "fail"
    report = w.kube.objects[("compliancereports", None, "cis")]
    assert not [r for r in report["spec"]["results"] if r["status"] == "error"], (
        "an unserved kind has no objects"
    )


def test_a_watched_change_is_evaluated_after_the_settling_time_not_the_interval(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.run()
    add_pod(w, privileged_pod("p"))
    w.run()  # the change came within the settling time of the last evaluation: not yet
    assert cluster_result(w, "5.2.2", "p") is None
    w.clock.now += timedelta(seconds=2)  # settled; far from the 60 s interval
    w.run()
    assert cluster_result(w, "5.2.2", "p") == "fail"
    calls = len(w.kube.calls)
    pod = privileged_pod("p")
    w.kube.store.note_cluster_object("pods", {**pod, "status": {"phase": "Running"}}, deleted=False)
    w.clock.now += timedelta(seconds=2)
    w.run()  # a status change is no change of what a rule reads: nothing listed again
    assert not [c for c in w.kube.calls[calls:] if c.method == "list_api_objects"]


def test_a_new_violation_raises_drift_on_the_object_and_the_profile_and_fixing_it_restores(
    world: World,
) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.run()  # the baseline: nothing announced
    assert not w.kube.events_of("ComplianceDrift")
    pod = privileged_pod("p")
    add_pod(w, pod)
    w.clock.now += timedelta(seconds=2)
    w.run()
    drift = w.kube.events_of("ComplianceDrift")
    on_pod = [e for e in drift if e["involved"]["kind"] == "Pod"]
    on_profile = [e for e in drift if e["involved"]["kind"] == "ComplianceProfile"]
    assert (
        on_pod
        and on_pod[0]["involved"]["uid"] == "uid-team-p"
        and on_pod[0]["involved"]["namespace"] == "team"
    )
    assert len(on_profile) == 1 and "5.2.2 on Pod team/p" in on_profile[0]["message"]
    fixed = {**pod, "spec": {"containers": [{"name": "c"}]}}
    add_pod(w, fixed)
    w.clock.now += timedelta(seconds=2)
    w.run()
    restored = w.kube.events_of("ComplianceRestored")
    assert any(e["involved"]["kind"] == "Pod" for e in restored)
    assert any(
        e["involved"]["kind"] == "ComplianceProfile" and "5.2.2 on Pod team/p" in e["message"]
        for e in restored
    )


def test_a_bad_rollout_gives_a_handful_of_events_not_one_per_object(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.run()
    for i in range(60):
        add_pod(w, privileged_pod(f"p{i}"))
    w.clock.now += timedelta(seconds=2)
    w.run()
    drift = w.kube.events_of("ComplianceDrift")
    on_objects = [e for e in drift if e["involved"]["kind"] == "Pod"]
    on_profile = [e for e in drift if e["involved"]["kind"] == "ComplianceProfile"]
    assert len(on_objects) <= 30, "object Events are rate-limited per profile"
    assert len(on_profile) == 1 and "not told on the object itself" in on_profile[0]["message"]


def exception_in(namespace: str, rules: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceException",
        "metadata": {"name": "team-waiver", "namespace": namespace},
        "spec": {
            "entries": [
                {
                    "rules": rules,
                    "reason": "legacy agent",
                    "owner": "team@example.com",
                    "expires": "2027-01-01",
                }
            ]
        },
    }


def test_a_namespaced_exception_excepts_its_own_namespaces_findings_only(world: World) -> None:
    w = world
    w.kube.put("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    w.kube.put("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    w.kube.put("complianceprofiles", profile())
    add_pod(w, privileged_pod("p", "team"))
    add_pod(w, privileged_pod("q", "other"))
    w.kube.put("complianceexceptions", exception_in("team", ["5.2.2"]))
    w.run(2)
    status = w.kube.status("compliancereports", "cis")
    excepted = {(e["rule"], e["resource"]["namespace"], e["resource"]["name"]) for e in status["exceptions"]}
    assert ("5.2.2", "team", "p") in excepted
    assert not any(ns == "other" for _, ns, _ in excepted), "never another namespace's findings"
    entries = w.kube.objects[("complianceexceptions", "team", "team-waiver")]["status"]["entries"]
    assert entries[0]["state"] == "active" and entries[0]["matched"] >= 1
    # the rule still fails in the profile: q in "other" is not excepted
    assert w.kube.status("complianceprofiles", "cis")["summary"]["fail"] >= 1


def test_cluster_results_count_in_the_profiles_summary_and_compliance(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.kube.put("nodes", node("worker-1"))
    w.clock.now += timedelta(minutes=1)
    complete_scan(w, {"worker-1": {"4.2.1": "pass", "4.2.2": "pass"}})
    w.run()
    compliant = conds(w, "complianceprofiles", "cis")["Compliant"]
    assert compliant[:2] == ("True", "NoFailures"), compliant
    add_pod(w, privileged_pod("p"))
    w.clock.now += timedelta(seconds=2)
    w.run(2)
    compliant = conds(w, "complianceprofiles", "cis")["Compliant"]
    assert compliant[:2] == ("False", "RulesFailing") and "5.2.2" in compliant[2]
    assert w.kube.status("complianceprofiles", "cis")["summary"]["fail"] >= 1


def test_a_profile_of_cluster_rules_only_scans_no_node_and_is_decided_by_the_api(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile(rules={"include": ["5.2.*"]}))
    w.kube.put("nodes", node("worker-1"))
    w.run(2)
    c = conds(w, "complianceprofiles", "cis")
    assert c["Stalled"][:2] == ("False", "Resolved"), c["Stalled"]
    assert c["Ready"][:2] == ("True", "Evaluated") and c["Compliant"][:2] == ("True", "NoFailures"), c
    add_pod(w, privileged_pod("p"))
    w.clock.now += timedelta(seconds=2)
    w.run(2)
    compliant = conds(w, "complianceprofiles", "cis")["Compliant"]
    assert compliant[:2] == ("False", "RulesFailing") and "5.2.2" in compliant[2]
    w.clock.now += timedelta(minutes=1)
    scan = rescan(w, rules={"include": ["5.2.*"]})
    w.run(3)
    assert w.scans()[scan]["status"]["phase"] == "Complete" and not w.jobs(), "no audit Job: no node rule"
    assert w.scans()[scan]["status"]["nodes"]["total"] == 0


def test_a_profile_that_selects_nothing_at_all_stalls(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile(rules={"include": ["5.2.*"], "exclude": ["5.*"]}))
    w.run()
    stalled = conds(w, "complianceprofiles", "cis")["Stalled"]
    assert stalled[:2] == ("True", "CannotResolve") and "select no rule of cis-1.12" in stalled[2]
    custom = {
        "id": "custom.x",
        "title": "x",
        "match": {"apiVersion": "v1", "kind": "Pod"},
        "expression": "true",
    }
    w.kube.put(
        "complianceprofiles", profile(rules={"include": ["5.2.*"], "exclude": ["5.*"]}, customRules=[custom])
    )
    w.run(2)
    assert conds(w, "complianceprofiles", "cis")["Stalled"][:2] == ("False", "Resolved")


def test_drift_is_decided_on_every_failing_object_not_the_reports_capped_list(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    for i in range(40):  # more than the 25 failing objects a report lists per rule
        add_pod(w, privileged_pod(f"p{i:02d}"))
    w.run()
    add_pod(w, privileged_pod("zz-late"))  # sorts after every listed one
    w.clock.now += timedelta(seconds=2)
    w.run()
    on_late = [e for e in w.kube.events_of("ComplianceDrift") if e["involved"]["name"] == "zz-late"]
    assert on_late, "a new violation beyond the report's cap is announced too"
    assert len([e for e in w.kube.events_of("ComplianceDrift") if e["involved"]["kind"] == "Pod"]) == 1


def test_plumbobs_own_pods_are_not_read_and_its_service_accounts_are_expected(world: World) -> None:
    """Plumbob's namespace's Pods and Jobs (its audit Jobs come and go with every scan) are not
    watched: any of them would be an expected holder. Its service accounts are, in every profile."""
    w = world
    ns = w.reconciler.settings.namespace
    w.kube.put("complianceprofiles", profile(expectedHolders=[]))  # even when the profile expects nothing
    w.kube.objects[("pods", ns, "audit-x")] = privileged_pod("audit-x", ns)
    w.kube.objects[("pods", "team", "p")] = privileged_pod("p", "team")
    w.kube.objects[("clusterrolebindings", None, "agent")] = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "agent"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "plumbob-agent", "namespace": ns}],
    }
    w.run()
    report = w.kube.objects[("compliancereports", None, "cis")]
    named = {(r.get("resource") or {}).get("name") for r in report["spec"]["results"]}
    assert "audit-x" not in named and cluster_result(w, "5.2.2", "p") == "fail"
    (agent,) = [
        r
        for r in report["spec"]["results"]
        if r["id"] == "5.1.1" and r.get("resource", {}).get("name") == "agent"
    ]
    assert agent["status"] == "pass" and agent["reason"].startswith(
        "expected: Plumbob's own service accounts"
    )


def nsreport(w: World, namespace: str) -> dict[str, Any] | None:
    return w.kube.objects.get(("namespacecompliancereports", namespace, "cis"))


def test_each_namespace_gets_all_its_findings_in_its_own_report(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    for i in range(30):  # more than the cluster report lists per rule
        add_pod(w, privileged_pod(f"p{i:02d}", "team"))
    add_pod(w, privileged_pod("q", "other"))
    w.kube.put("complianceexceptions", exception_in("other", ["5.2.2"]))
    w.run(2)
    team = nsreport(w, "team")
    assert team is not None and team["spec"] == {"profile": "cis"}
    assert team["metadata"]["ownerReferences"][0]["kind"] == "ComplianceProfile"
    counts = {r["rule"]: r for r in team["status"]["rules"]}
    assert counts["5.2.2"]["failing"] == 30 and counts["5.2.2"]["status"] == "fail"
    listed = [r for r in team["status"]["results"] if r["id"] == "5.2.2"]
    assert len(listed) == 30 and all(r["resource"]["namespace"] == "team" for r in listed)
    other = nsreport(w, "other")
    assert other is not None
    (q,) = [r for r in other["status"]["results"] if r["id"] == "5.2.2"]
    assert q["exception"]["namespace"] == "other" and q["exception"]["name"] == "team-waiver"
    assert {r["rule"]: r for r in other["status"]["rules"]}["5.2.2"]["status"] == "excepted"
    assert not any(r["resource"]["namespace"] != "other" for r in other["status"]["results"])
    writes = len(w.kube.writes())
    w.clock.now += timedelta(seconds=61)  # the interval: evaluated again, nothing changed
    w.run()
    assert not [c for c in w.kube.writes()[writes:] if c.args[0] == "namespacecompliancereports"]
    remove_pod(w, privileged_pod("q", "other"))
    w.clock.now += timedelta(seconds=2)
    w.run()
    assert nsreport(w, "other") is None, "a namespace with no finding left has no report"


def test_the_watches_feed_the_evaluation_and_the_interval_lists_again(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    w.run()  # the term's first evaluation lists every kind
    listed = len([c for c in w.kube.calls if c.method == "list_api_objects"])
    assert listed >= 10
    add_pod(w, privileged_pod("p"))
    w.clock.now += timedelta(seconds=2)
    w.run()
    assert cluster_result(w, "5.2.2", "p") == "fail"
    assert len([c for c in w.kube.calls if c.method == "list_api_objects"]) == listed, "read from the watches"


def test_the_rules_kinds_are_watched_and_held_only_while_a_profile_needs_them(world: World) -> None:
    w = world
    w.kube.objects[("pods", "team", "p")] = privileged_pod("p")

    def listed(plural: str) -> int:
        return len([c for c in w.kube.calls if c.method == "list_api_objects" and c.args[1] == plural])

    w.kube.put("complianceprofiles", profile(rules={"include": ["4.*"]}))  # node rules only
    w.run(2)
    assert listed("pods") == 0 and not w.store.cluster_objects, "no cluster rule: nothing watched or held"
    w.kube.put("complianceprofiles", profile(rules={"include": ["4.*", "5.2.2"]}))
    w.run(2)
    assert listed("pods") == 1 and cluster_result(w, "5.2.2", "p") == "fail"
    w.kube.put("complianceprofiles", profile(rules={"include": ["4.*"]}))
    w.run(2)
    assert not w.store.cluster_objects, "the objects leave the store with the last profile that read them"


def test_a_list_replaces_what_the_watches_held_but_not_newer_events() -> None:
    store = Store()

    def pod(name: str, rv: int) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "a", "resourceVersion": str(rv)},
        }

    store.note_cluster_object("pods", pod("gone", 5), deleted=False)  # its DELETED event was missed
    store.note_cluster_object("pods", pod("kept", 9), deleted=False)  # newer than the list below
    store.note_cluster_object("pods", pod("born", 12), deleted=False)  # created after the list
    changes = store.cluster_changes
    store.replace_cluster_objects("pods", [pod("kept", 8), pod("other", 7)], version=10)
    assert store.cluster_changes > changes, "what a LIST finds different is evaluated like a watch event"
    changes = store.cluster_changes
    store.replace_cluster_objects("pods", [pod("kept", 9), pod("other", 7), pod("born", 12)], version=12)
    assert store.cluster_changes == changes, "the same objects again: no change"
    held = {
        b["metadata"]["name"]: b["metadata"]["resourceVersion"] for b in store.cluster_object_bodies("pods")
    }
    assert held == {"kept": "9", "other": "7", "born": "12"}
    store.note_cluster_object("pods", pod("kept", 3), deleted=False)  # an old event arriving late
    assert {
        b["metadata"]["resourceVersion"]
        for b in store.cluster_object_bodies("pods")
        if b["metadata"]["name"] == "kept"
    } == {"9"}


def test_the_fake_api_refuses_a_status_key_the_model_does_not_know(world: World) -> None:
    """Every status write in these tests is checked against the API models (see ``patch_status``)."""
    w = world
    w.kube.put("complianceprofiles", profile())
    with pytest.raises(AssertionError, match=r"status\.summry"):
        w.kube.patch_status("complianceprofiles", "cis", {"summry": {"pass": 1}})
    w.kube.patch_status("complianceprofiles", "cis", {"summary": {"pass": 1}})


def test_a_namespace_being_deleted_gets_no_report_and_no_error(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    add_pod(w, privileged_pod("p", "leaving"))
    real_create = w.kube.create_object

    def refuse(plural: str, body: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        if namespace == "leaving":
            raise KubeError(403, 'namespace "leaving" ... because it is being terminated')
        return real_create(plural, body, namespace)

    w.kube.create_object = refuse  # type: ignore[method-assign]
    w.run(2)
    assert nsreport(w, "leaving") is None
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "an expected refusal, not an error"


def _versioned_node(name: str, kubelet: str, **labels: str) -> dict[str, Any]:
    body = node(name, labels=labels)
    body["status"]["nodeInfo"] = {"kubeletVersion": kubelet}
    return body


def test_a_changed_node_label_changes_the_detected_platform(world: World) -> None:
    w = world
    w.kube.put("nodes", _versioned_node("n1", "v1.36.3"))
    w.kube.put("complianceprofiles", profile())
    w.run()
    assert w.kube.status("complianceprofiles", "cis")["resolvedBenchmark"]["platform"] == "generic"
    changes = w.store.node_changes
    beat = _versioned_node("n1", "v1.36.3")
    beat["status"]["conditions"][0]["lastHeartbeatTime"] = iso(w.clock.now)
    w.kube.put("nodes", beat)
    assert w.store.node_changes == changes, "a heartbeat is no change"
    w.kube.put("nodes", _versioned_node("n1", "v1.36.3", **{"cloud.google.com/gke-nodepool": "pool"}))
    assert w.store.node_changes == changes + 1
    w.run()
    assert w.kube.status("complianceprofiles", "cis")["resolvedBenchmark"]["platform"] == "gke"


def test_a_changed_kubelet_version_changes_the_profile_cves(world: World) -> None:
    w = world
    w.kube.put("nodes", _versioned_node("n1", "v1.36.3"))
    w.kube.put("complianceprofiles", profile())
    w.run()
    before = w.kube.status("complianceprofiles", "cis")["kubernetesCves"]
    assert not [e for e in before.get("exposures", []) if e["where"] == "n1"]
    w.kube.put("nodes", _versioned_node("n1", "v1.30.0"))
    w.run()
    after = w.kube.status("complianceprofiles", "cis")["kubernetesCves"]
    assert [e for e in after["exposures"] if e["where"] == "n1" and e["component"] == "kubelet"]


def test_a_finished_job_without_results_fails_after_the_grace_with_no_new_event(world: World) -> None:
    w = world
    w.kube.put("complianceprofiles", profile())
    for n in ("worker-1", "worker-2"):
        w.kube.put("nodes", node(n))
    w.clock.now += timedelta(minutes=1)
    scan = rescan(w)
    w.run(2)  # the Jobs start on the scan's second pass
    w.finish_job("worker-1", results={"4.2.1": "pass"}, scan=scan)
    w.complete_job("worker-2", scan=scan)  # its agent wrote no report
    w.run(3)
    assert w.scans()[scan]["status"]["nodes"]["running"] == 1
    w.clock.now += timedelta(seconds=31)
    w.run()  # nothing changed in the store, only the clock
    status = w.scans()[scan]["status"]
    assert [(p["node"], p["reason"]) for p in status["nodes"]["problems"]] == [("worker-2", "NoResults")]
    assert status["phase"] == "Complete"
