"""The controller's in-memory view of the cluster, fed by watch events, read by the reconciler.

The feeds (:mod:`~plumbob.controller.feeds`) call :meth:`Store.replace` with each LIST and
:meth:`Store.upsert` / :meth:`Store.remove` with each watch event's raw body; the store parses
each body once (models for Plumbob's own kinds, compact digests for nodes, Jobs and reports) and
wakes the reconciler when something it cares about changed. An object whose body does not parse
is kept aside with the error so the reconciler can report it (``Stalled``) instead of crashing.
A report not named ``<profile>.<node>`` is kept aside too (:attr:`Snapshot.misnamed_reports`): a
node's results are read only from the report so named, so no second report can replace or block it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from plumbob.api import (
    ClusterComplianceException,
    ComplianceException,
    ComplianceProfile,
    ComplianceScan,
    ComplianceSchedule,
)
from plumbob.controller.decisions.digests import (
    JobDigest,
    NodeDigest,
    ReportDigest,
    job_digest,
    node_digest,
    report_digest,
)

Key = tuple[str | None, str]  # (namespace, name)

_MODELS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "complianceprofiles": ComplianceProfile.model_validate,
    "complianceschedules": ComplianceSchedule.model_validate,
    "complianceexceptions": ComplianceException.model_validate,
    "clustercomplianceexceptions": ClusterComplianceException.model_validate,
    "compliancescans": ComplianceScan.model_validate,
    "compliancereports": report_digest,
    "jobs": job_digest,
    "nodes": node_digest,
    "namespaces": lambda body: str(body["metadata"]["name"]),  # only names: exception entries name them
}


EXCEPTION_KINDS = ("complianceexceptions", "clustercomplianceexceptions")
# Kinds kept as digests of what the controller reads: an event that leaves the digest as it was
# does not wake the reconciler (most of a Job's and a Node's events).
_DIGESTED = ("nodes", "jobs", "compliancereports")


def describe(exc: Exception) -> str:
    """A validation error as one line per problem, ``field.path[i]: message``, without links."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    parts = []
    for err in exc.errors(include_url=False):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        message = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        parts.append(f"{path}: {message}" if path else message)
    return "; ".join(parts)


def _entry_errors(exc: ValidationError) -> dict[int, str] | None:
    """The failing entries of an exception list by index, when nothing else about it fails."""
    out: dict[int, list[str]] = {}
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        if len(loc) < 3 or loc[:2] != ("spec", "entries") or not isinstance(loc[2], int):
            return None
        rest = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[3:])
        message = str(err["msg"]).removeprefix("Value error, ")
        out.setdefault(loc[2], []).append(f"spec.entries[{loc[2]}]{rest}: {message}")
    return {i: "; ".join(m) for i, m in out.items()}


def _parse_exception_list(kind: str, body: dict[str, Any]) -> tuple[Any, dict[int, str], list[int]]:
    """An exception list whose bad entries are set aside: (model of the good ones, problems, indices).

    One bad entry must not switch off every accepted deviation of its list: the valid entries keep
    applying (under their original index) and the bad ones are reported.
    """
    try:
        return _MODELS[kind](body), {}, []
    except ValidationError as exc:
        problems = _entry_errors(exc)
        entries = (body.get("spec") or {}).get("entries")
        if problems is None or not isinstance(entries, list):
            raise
    kept = [i for i in range(len(entries)) if i not in problems]
    if not kept:
        raise ValueError("; ".join(problems[i] for i in sorted(problems)))
    trimmed = {**body, "spec": {**body["spec"], "entries": [entries[i] for i in kept]}}
    return _MODELS[kind](trimmed), problems, kept


def _rv(body: dict[str, Any]) -> int:
    try:
        return int(body.get("metadata", {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


@dataclass
class Invalid:
    kind: str
    namespace: str | None
    name: str
    uid: str
    message: str
    generation: int | None = None


_VOLATILE_META = ("resourceVersion", "managedFields", "generation")


def _compact(body: dict[str, Any], *, lean: bool) -> bytes:
    """The object as compact JSON, without what no rule reads and what makes it large: its
    ``managedFields`` and last-applied annotation, and when ``lean`` its ``status`` (which no
    built-in rule reads: a Pod's is about half of it)."""
    if lean:
        body = {k: v for k, v in body.items() if k != "status"}
    meta = dict(body.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = meta.get("annotations")
    if annotations and "kubectl.kubernetes.io/last-applied-configuration" in annotations:
        meta["annotations"] = {
            k: v for k, v in annotations.items() if k != "kubectl.kubernetes.io/last-applied-configuration"
        }
    return json.dumps({**body, "metadata": meta}, separators=(",", ":"), default=str).encode()


def _fingerprint(body: dict[str, Any]) -> int:
    """A digest of what a rule may read: everything but ``status`` and volatile metadata."""
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k not in _VOLATILE_META}
    rest = {k: v for k, v in body.items() if k not in ("status", "metadata")}
    return hash(json.dumps([meta, rest], sort_keys=True, default=str))


@dataclass
class Store:
    objects: dict[str, dict[Key, Any]] = field(default_factory=lambda: {k: {} for k in _MODELS})
    versions: dict[tuple[str, Key], int] = field(default_factory=dict)
    invalid: dict[tuple[str, Key], Invalid] = field(default_factory=dict)
    raw_meta: dict[tuple[str, Key], dict[str, Any]] = field(default_factory=dict)
    # exception lists parsed without their bad entries: problems by index, and the kept indices
    entry_problems: dict[tuple[str, Key], dict[int, str]] = field(default_factory=dict)
    entry_indices: dict[tuple[str, Key], list[int]] = field(default_factory=dict)
    # How often a Node changed in what the controller reads (not its heartbeats): what is decided
    # from all the nodes (a profile's platform) is decided again only when it moved.
    node_changes: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)
    wake: threading.Event = field(default_factory=threading.Event)
    # The API objects cluster-level rules read, kept as compact JSON (a parsed Pod costs ten times
    # as much memory), with their resourceVersion, from the watches and the cluster step's periodic
    # LISTs. Each change of what a rule could read (not a status, not a heartbeat) bumps the count,
    # and the cluster step re-evaluates when it moved; ``cluster_prints`` tells the two apart.
    cluster_objects: dict[tuple[str, Key], tuple[int, bytes]] = field(default_factory=dict)
    cluster_changes: int = 0
    cluster_prints: dict[tuple[str, Key], int] = field(default_factory=dict)

    def note_cluster_object(
        self, kind: str, body: dict[str, Any], *, deleted: bool, lean: bool = False
    ) -> None:
        """A watch event of an object cluster-level rules read; wakes the loop when it matters.
        ``lean``: kept without its status (see :func:`_compact`)."""
        meta = body.get("metadata") or {}
        key = (kind, (meta.get("namespace"), str(meta.get("name"))))
        rv = _rv(body)
        with self.lock:
            held = self.cluster_objects.get(key)
            if held is not None and rv and held[0] > rv:
                return  # an older event than what we already hold
            if deleted:
                self.cluster_objects.pop(key, None)
                self.cluster_prints.pop(key, None)
            else:
                self.cluster_objects[key] = (rv, _compact(body, lean=lean))
                print_ = _fingerprint(body)
                if self.cluster_prints.get(key) == print_:
                    return
                self.cluster_prints[key] = print_
            self.cluster_changes += 1
        self.wake.set()

    def replace_cluster_objects(
        self, kind: str, items: list[dict[str, Any]], version: int, *, lean: bool = False
    ) -> None:
        """A LIST of ``kind`` at ``version``: it replaces what the watches delivered, except events
        newer than the list, and drops what the list no longer has (a deletion whose watch event was
        lost while a watch was down). An object held at the listed resourceVersion is kept as it is.
        A difference a rule could read counts as a change (see :meth:`note_cluster_object`)."""
        changed = False
        with self.lock:
            listed = set()
            for body in items:
                meta = body.get("metadata") or {}
                key = (kind, (meta.get("namespace"), str(meta.get("name"))))
                listed.add(key)
                held = self.cluster_objects.get(key)
                rv = _rv(body)
                if held is not None and rv and held[0] == rv:
                    continue  # the same version: nothing to encode again
                if held is None or not rv or held[0] <= rv:
                    self.cluster_objects[key] = (rv, _compact(body, lean=lean))
                    print_ = _fingerprint(body)
                    changed = changed or self.cluster_prints.get(key) != print_
                    self.cluster_prints[key] = print_
            for key in [k for k in self.cluster_objects if k[0] == kind and k not in listed]:
                if not version or self.cluster_objects[key][0] <= version:
                    del self.cluster_objects[key]
                    self.cluster_prints.pop(key, None)
                    changed = True
            if changed:
                self.cluster_changes += 1
        if changed:
            self.wake.set()

    def cluster_fingerprints(self) -> dict[tuple[str, Key], int]:
        """What each held object a rule may read looks like (a digest), by (kind, key): a copy."""
        with self.lock:
            return dict(self.cluster_prints)

    def cluster_object_body(self, kind: str, key: Key) -> dict[str, Any] | None:
        """One held object, parsed; None when it is not held."""
        with self.lock:
            held = self.cluster_objects.get((kind, key))
        return None if held is None else json.loads(held[1])

    def cluster_object_bodies(self, kind: str) -> list[dict[str, Any]]:
        """The held objects of ``kind``, parsed."""
        with self.lock:
            raw = [data for (k, _), (_, data) in self.cluster_objects.items() if k == kind]
        return [json.loads(data) for data in raw]

    def upsert(self, kind: str, body: dict[str, Any]) -> None:
        meta = body.get("metadata", {})
        key: Key = (meta.get("namespace"), meta["name"])
        rv = _rv(body)
        with self.lock:
            if rv and self.versions.get((kind, key), 0) > rv:
                return  # an older event than what we already hold
            self.versions[(kind, key)] = rv
            self.entry_problems.pop((kind, key), None)
            self.entry_indices.pop((kind, key), None)
            try:
                if kind in EXCEPTION_KINDS:
                    parsed, problems, kept = _parse_exception_list(kind, body)
                    if problems:
                        self.entry_problems[(kind, key)] = problems
                        self.entry_indices[(kind, key)] = kept
                else:
                    parsed = _MODELS[kind](body)
            except (ValidationError, ValueError, KeyError, TypeError) as exc:
                self.objects[kind].pop(key, None)
                generation = meta.get("generation")
                self.invalid[(kind, key)] = Invalid(
                    kind,
                    key[0],
                    key[1],
                    meta.get("uid", ""),
                    describe(exc)[:900],
                    generation if isinstance(generation, int) else None,
                )
                self.wake.set()
                return
            self.invalid.pop((kind, key), None)
            if parsed is None:
                self.objects[kind].pop(key, None)
                return
            old = self.objects[kind].get(key)
            self.objects[kind][key] = parsed
            if kind in _DIGESTED and old == parsed:
                return  # heartbeats, a Job's Pod starting…: nothing the controller reads changed
            if kind == "nodes":
                self.node_changes += 1
            self.wake.set()

    def replace(self, kind: str, items: list[dict[str, Any]], version: int) -> None:
        """A LIST of ``kind`` at ``version``: each item as a watch event, and what the store holds
        but the list no longer has (deleted while no watch ran) removed, unless it is newer."""
        with self.lock:
            listed = set()
            for body in items:
                meta = body.get("metadata", {})
                listed.add((meta.get("namespace"), meta["name"]))
                self.upsert(kind, body)
            held = set(self.objects[kind]) | {k for (p, k) in self.invalid if p == kind}
            for key in held - listed:
                if not version or self.versions.get((kind, key), 0) <= version:
                    self._drop(kind, key)

    def remove(self, kind: str, body: dict[str, Any]) -> None:
        meta = body.get("metadata", {})
        self._drop(kind, (meta.get("namespace"), meta["name"]))

    def _drop(self, kind: str, key: Key) -> None:
        with self.lock:
            if self.objects[kind].pop(key, None) is not None and kind == "nodes":
                self.node_changes += 1
            self.invalid.pop((kind, key), None)
            self.versions.pop((kind, key), None)
            self.entry_problems.pop((kind, key), None)
            self.entry_indices.pop((kind, key), None)
            self.wake.set()

    def snapshot(self) -> Snapshot:
        with self.lock:
            return Snapshot(
                profiles={k[1]: v for k, v in self.objects["complianceprofiles"].items()},
                schedules={k[1]: v for k, v in self.objects["complianceschedules"].items()},
                exceptions=list(self.objects["complianceexceptions"].values()),
                cluster_exceptions=list(self.objects["clustercomplianceexceptions"].values()),
                scans={k[1]: v for k, v in self.objects["compliancescans"].items()},
                reports={k[1]: v for k, v in self.objects["compliancereports"].items() if v.authoritative},
                misnamed_reports=[
                    v for v in self.objects["compliancereports"].values() if not v.authoritative
                ],
                jobs={k[1]: v for k, v in self.objects["jobs"].items()},
                nodes={k[1]: v for k, v in self.objects["nodes"].items()},
                invalid=list(self.invalid.values()),
                entry_problems={(k, ns, n): dict(v) for (k, (ns, n)), v in self.entry_problems.items()},
                entry_indices={(k, ns, n): list(v) for (k, (ns, n)), v in self.entry_indices.items()},
                namespaces=frozenset(self.objects["namespaces"].values()),
                node_changes=self.node_changes,
            )


@dataclass(frozen=True)
class Snapshot:
    profiles: dict[str, ComplianceProfile]
    schedules: dict[str, ComplianceSchedule]
    exceptions: list[ComplianceException]
    cluster_exceptions: list[ClusterComplianceException]
    scans: dict[str, ComplianceScan]
    reports: dict[str, ReportDigest]  # only the authoritative report of each profile and node
    misnamed_reports: list[ReportDigest]  # not named <profile>.<node>: never read as results
    jobs: dict[str, JobDigest]
    nodes: dict[str, NodeDigest]
    invalid: list[Invalid]
    # (plural, namespace, name) of an exception list → its bad entries by index / the kept indices
    entry_problems: dict[tuple[str, str | None, str], dict[int, str]] = field(default_factory=dict)
    entry_indices: dict[tuple[str, str | None, str], list[int]] = field(default_factory=dict)
    namespaces: frozenset[str] = frozenset()  # names of the cluster's namespaces
    node_changes: int = 0  # Store.node_changes when taken: what is decided from the nodes moves with it
