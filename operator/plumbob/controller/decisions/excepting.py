"""Exceptions applied to stored results: pure functions of the entries, the results and the clock.

Rules of the game:

- a node finding can only be excepted by a ``ClusterComplianceException``: a namespaced
  ``ComplianceException`` applies only to findings about objects in its own namespace, and node
  findings are about no namespace (so a team can never hide a node problem);
- an entry applies until its expiry instant; after it, it is ``expired`` and excepts nothing;
- only failing (``fail``) results are excepted; a pass stays a pass, an error stays an error
  (an exception accepts a deviation, it does not vouch for a check that could not run);
- an entry that applies but excepts no current result is ``unused``;
- a cluster-level finding names an API object: a namespaced entry excepts it only when the object
  is in the entry's own namespace (never a cluster-scoped object), a cluster entry when its
  ``namespaces`` (if any) match the object's namespace; ``resources`` (if any) must match the
  object (API group, kind, name glob); entries scoped to nodes never except object findings.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from plumbob.api.cluster_exceptions import ClusterComplianceException
from plumbob.api.common import LabelSelector, ResultStatus
from plumbob.api.exceptions import ComplianceException, EntryState
from plumbob.api.scans import aggregate_status
from plumbob.benchmarks.rules import rule_matches
from plumbob.controller.decisions.digests import NodeDigest, ObjectResult, ReportDigest

Exception_ = ClusterComplianceException | ComplianceException


@dataclass(frozen=True)
class EntryKey:
    kind: str
    namespace: str | None
    name: str
    index: int


@dataclass(frozen=True)
class Entry:
    """One entry, flattened with the identity of the list it belongs to."""

    key: EntryKey
    rules: tuple[str, ...]
    profiles: tuple[str, ...]
    nodes: tuple[str, ...]
    node_selector: LabelSelector | None
    namespaced_scope: bool  # the entry names namespaces or resources: it is about API objects only
    reason: str
    owner: str
    ticket: str | None
    expires: str
    expires_at: datetime
    namespaces: tuple[str, ...] = ()  # a cluster entry's namespace names or globs
    resources: tuple[tuple[str, str, str], ...] = ()  # (API group, kind, name glob) of objects

    def ref(self) -> dict[str, object]:
        out: dict[str, object] = {
            "kind": self.key.kind,
            "name": self.key.name,
            "entry": self.key.index,
            "reason": self.reason,
            "owner": self.owner,
            "expires": self.expires,
        }
        if self.key.namespace:
            out["namespace"] = self.key.namespace
        if self.ticket:
            out["ticket"] = self.ticket
        return out


def flatten(
    exceptions: Iterable[Exception_], indices: Mapping[tuple[str, str | None, str], list[int]] | None = None
) -> list[Entry]:
    """Every entry of the lists; ``indices`` maps a list whose bad entries were set aside to the
    original positions of the entries it kept, so each entry keeps its index in ``spec.entries``."""
    out: list[Entry] = []
    for exc in exceptions:
        kind = exc.kind
        kept = (indices or {}).get((f"{kind.lower()}s", exc.metadata.namespace, exc.metadata.name))
        for pos, e in enumerate(exc.spec.entries):
            i = kept[pos] if kept else pos
            nodes = tuple(getattr(e, "nodes", None) or ())
            selector = getattr(e, "node_selector", None)
            scoped = bool(getattr(e, "namespaces", None) or e.resources)
            out.append(
                Entry(
                    key=EntryKey(kind, exc.metadata.namespace, exc.metadata.name, i),
                    rules=tuple(e.rules),
                    profiles=tuple(e.profiles),
                    nodes=nodes,
                    node_selector=selector,
                    namespaced_scope=scoped,
                    reason=e.reason,
                    owner=e.owner,
                    ticket=e.ticket,
                    expires=e.expires,
                    expires_at=e.expiry(),
                    namespaces=tuple(getattr(e, "namespaces", None) or ()),
                    resources=tuple((r.api_group, r.kind, r.name) for r in e.resources),
                )
            )
    return out


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for req in selector.match_expressions:
        present = req.key in labels
        if req.operator == "In" and (not present or labels[req.key] not in req.values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in req.values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    return True


def covers_node_result(
    entry: Entry, *, profile: str, node: str, node_labels: Mapping[str, str], rule: str, now: datetime
) -> bool:
    """Whether ``entry`` excepts ``rule`` failing on ``node`` in ``profile`` at ``now``."""
    if entry.key.kind != "ClusterComplianceException" or now >= entry.expires_at or entry.namespaced_scope:
        return False
    if entry.profiles and profile not in entry.profiles:
        return False
    if entry.nodes and not any(fnmatch.fnmatchcase(node, pattern) for pattern in entry.nodes):
        return False
    if entry.node_selector is not None and not selector_matches(entry.node_selector, node_labels):
        return False
    return any(rule_matches(rule, pattern) for pattern in entry.rules)


def covers_object_result(entry: Entry, *, profile: str, result: ObjectResult, now: datetime) -> bool:
    """Whether ``entry`` excepts the cluster-level ``result`` (a rule failing on one API object)."""
    if now >= entry.expires_at or entry.nodes or entry.node_selector is not None:
        return False
    if entry.profiles and profile not in entry.profiles:
        return False
    if entry.key.kind == "ComplianceException":
        if result.namespace is None or result.namespace != entry.key.namespace:
            return False
    elif entry.namespaces and not (
        result.namespace is not None
        and any(fnmatch.fnmatchcase(result.namespace, p) for p in entry.namespaces)
    ):
        return False
    if entry.resources and not any(
        group == result.api_group and kind == result.kind and fnmatch.fnmatchcase(result.name, name)
        for group, kind, name in entry.resources
    ):
        return False
    return any(rule_matches(result.rule, pattern) for pattern in entry.rules)


@dataclass(frozen=True)
class ClusterApplied:
    effective: dict[str, str]  # rule id -> its status over every object, after exceptions
    excepted: list[tuple[ObjectResult, Entry]]  # each excepted object result and the entry


def apply_to_cluster(
    results: Mapping[str, str],
    objects: Iterable[ObjectResult],
    entries: Iterable[Entry],
    *,
    profile: str,
    now: datetime,
) -> ClusterApplied:
    """The cluster-level report's results with exceptions applied: per rule, the worst status of
    its object results and its results without an object (``fail`` > ``error`` > ``excepted`` …)."""
    candidates = [e for e in entries if now < e.expires_at]
    per_rule: dict[str, set[ResultStatus]] = {r: {ResultStatus(s)} for r, s in results.items()}
    excepted: list[tuple[ObjectResult, Entry]] = []
    for result in objects:
        status = result.status
        if status == "fail":
            entry = next(
                (e for e in candidates if covers_object_result(e, profile=profile, result=result, now=now)),
                None,
            )
            if entry is not None:
                status = "excepted"
                excepted.append((result, entry))
        per_rule.setdefault(result.rule, set()).add(ResultStatus(status))
    effective = {rule: aggregate_status(statuses).value for rule, statuses in per_rule.items()}
    return ClusterApplied(effective, excepted)


def apply_to_cluster_report(report: ReportDigest, entries: Iterable[Entry], now: datetime) -> ClusterApplied:
    """The cluster-level report's results with the entries applied that cover its profile now."""
    return apply_to_cluster(report.results, report.objects, entries, profile=report.profile, now=now)


@dataclass(frozen=True)
class Applied:
    effective: dict[str, str]  # rule id -> status after exceptions
    excepted: dict[str, Entry]  # rule id -> the entry that excepts it


def apply_to_node(
    results: Mapping[str, str],
    entries: Iterable[Entry],
    *,
    profile: str,
    node: str,
    node_labels: Mapping[str, str],
    now: datetime,
) -> Applied:
    effective = dict(results)
    excepted: dict[str, Entry] = {}
    candidates = [e for e in entries if e.key.kind == "ClusterComplianceException" and now < e.expires_at]
    for rule, status in results.items():
        if status != "fail":
            continue
        for entry in candidates:
            if covers_node_result(
                entry, profile=profile, node=node, node_labels=node_labels, rule=rule, now=now
            ):
                effective[rule] = "excepted"
                excepted[rule] = entry
                break
    return Applied(effective, excepted)


def exceptions_applied(
    report: ReportDigest, nodes: Mapping[str, NodeDigest], entries: list[Entry], now: datetime
) -> Applied:
    """A node report's results with the entries applied that cover its profile, node and node labels now."""
    node = nodes.get(report.node or "")
    return apply_to_node(
        report.results,
        entries,
        profile=report.profile,
        node=report.node or "",
        node_labels=node.labels if node else {},
        now=now,
    )


def dangling_references(
    entry: Entry,
    *,
    rule_ids: Iterable[str],
    profiles: Iterable[str],
    namespaces: Iterable[str] | None = None,
) -> list[str]:
    """What the entry names that does not exist: rule patterns that match no known rule, profiles
    and namespaces (names or globs) that do not exist; ``namespaces=None``: not known, not judged.
    Such an entry can never except anything; the field is named."""
    ids, existing = list(rule_ids), set(profiles)
    out = []
    for i, pattern in enumerate(entry.rules):
        if not any(rule_matches(r, pattern) for r in ids):
            out.append(
                f"spec.entries[{entry.key.index}].rules[{i}]: {pattern!r} matches no rule of any benchmark"
            )
    for i, name in enumerate(entry.profiles):
        if name not in existing:
            out.append(f"spec.entries[{entry.key.index}].profiles[{i}]: profile {name!r} does not exist")
    if namespaces is not None:
        known = list(namespaces)
        for i, pattern in enumerate(entry.namespaces):
            if not any(fnmatch.fnmatchcase(ns, pattern) for ns in known):
                out.append(
                    f"spec.entries[{entry.key.index}].namespaces[{i}]: no namespace matches {pattern!r}"
                )
    return out


def is_blanket(entry: Entry) -> bool:
    """An entry that excepts every rule everywhere: allowed, but it deserves a warning."""
    unscoped = not (entry.profiles or entry.nodes or entry.node_selector or entry.namespaced_scope)
    return "*" in entry.rules and unscoped


def entry_state(entry: Entry, matched: int, now: datetime) -> EntryState:
    if now >= entry.expires_at:
        return EntryState.EXPIRED
    return EntryState.ACTIVE if matched else EntryState.UNUSED


def next_expiry(entries: Iterable[Entry], now: datetime) -> datetime | None:
    upcoming = [e.expires_at for e in entries if e.expires_at > now]
    return min(upcoming) if upcoming else None
