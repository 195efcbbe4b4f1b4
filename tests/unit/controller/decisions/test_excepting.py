"""Exceptions applied to node results: pure functions of entries, results and an injected clock.

Cases:
- cluster entries match by rule glob (``*``, ``?``, exact), by profile (absent = every profile),
  by node names and globs, and by nodeSelector: matchLabels and each matchExpressions operator
  (In, NotIn, Exists, DoesNotExist) both ways, several requirements ANDed;
- an entry scoped to namespaces or to API objects (``resources``) does not except node results
  (node findings are about no namespace and no object);
- a namespaced ComplianceException never excepts a node result, whatever its rules;
- expiry: applies one second before, not at the exact instant, not after; a date means the end
  of that day in UTC; an offset date-time is converted;
- only ``fail`` results are excepted; pass, error, manual, not-applicable untouched;
- the first matching entry (in list order) is recorded; ``ref()`` carries the entry's identity;
- entry states active / unused / expired (expired wins over matches); ``next_expiry`` is the
  earliest expiry strictly after now, ``None`` when all expired.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from plumbob.api.cluster_exceptions import ClusterComplianceException
from plumbob.api.exceptions import ComplianceException, EntryState
from plumbob.controller.decisions.excepting import (
    Entry,
    apply_to_node,
    covers_node_result,
    entry_state,
    flatten,
    next_expiry,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LABELS = {"kubernetes.io/hostname": "worker-1", "zone": "a", "tier": "gold"}


def entry_body(**fields: Any) -> dict[str, Any]:
    return {
        "rules": ["4.2.1"],
        "reason": "accepted for the pilot",
        "owner": "platform@example.com",
        "expires": "2027-01-01",
        **fields,
    }


def cluster(*entries: dict[str, Any], name: str = "node-waivers") -> ClusterComplianceException:
    return ClusterComplianceException.model_validate(
        {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ClusterComplianceException",
            "metadata": {"name": name, "uid": "u-1", "generation": 1},
            "spec": {"entries": list(entries)},
        }
    )


def namespaced(*entries: dict[str, Any], namespace: str = "team-a") -> ComplianceException:
    return ComplianceException.model_validate(
        {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ComplianceException",
            "metadata": {"name": "team-waivers", "namespace": namespace, "uid": "u-2", "generation": 1},
            "spec": {"entries": list(entries)},
        }
    )


def one(**fields: Any) -> Entry:
    [entry] = flatten([cluster(entry_body(**fields))])
    return entry


def covers(
    entry: Entry,
    *,
    rule: str = "4.2.1",
    node: str = "worker-1",
    profile: str = "cis",
    labels: dict[str, str] | None = None,
    now: datetime = NOW,
) -> bool:
    return covers_node_result(
        entry,
        profile=profile,
        node=node,
        node_labels=LABELS if labels is None else labels,
        rule=rule,
        now=now,
    )


# ---- scope ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "rule", "hit"),
    [
        (["4.2.1"], "4.2.1", True),
        (["4.2.1"], "4.2.10", False),
        (["4.2.*"], "4.2.10", True),
        (["4.2.*"], "4.1.1", False),
        (["4.2.1?"], "4.2.12", True),
        (["4.2.1?"], "4.2.1", False),
        (["1.1.1", "4.*"], "4.1.3", True),
        (["*"], "1.2.3", True),
    ],
)
def test_rule_globs(patterns: list[str], rule: str, hit: bool) -> None:
    assert covers(one(rules=patterns), rule=rule) is hit


def test_profiles_scope() -> None:
    assert covers(one(), profile="anything")
    assert covers(one(profiles=["cis", "cis-strict"]), profile="cis-strict")
    assert not covers(one(profiles=["cis-strict"]), profile="cis")


@pytest.mark.parametrize(
    ("nodes", "node", "hit"),
    [
        (["worker-1"], "worker-1", True),
        (["worker-1"], "worker-10", False),
        (["worker-*"], "worker-10", True),
        (["worker-?"], "worker-10", False),
        (["cp-*", "worker-1"], "worker-1", True),
        (["cp-*"], "worker-1", False),
    ],
)
def test_node_names_and_globs(nodes: list[str], node: str, hit: bool) -> None:
    assert covers(one(nodes=nodes), node=node) is hit


@pytest.mark.parametrize(
    ("selector", "hit"),
    [
        ({}, True),
        ({"matchLabels": {"zone": "a"}}, True),
        ({"matchLabels": {"zone": "b"}}, False),
        ({"matchLabels": {"missing": "x"}}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "In", "values": ["a"]}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}]}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["a"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "missing", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, False),
        (
            {
                "matchLabels": {"zone": "a"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["gold"]},
                    {"key": "gpu", "operator": "DoesNotExist"},
                ],
            },
            True,
        ),
        (
            {
                "matchLabels": {"zone": "a"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["gold"]},
                    {"key": "zone", "operator": "NotIn", "values": ["a"]},
                ],
            },
            False,
        ),
    ],
)
def test_node_selector(selector: dict[str, Any], hit: bool) -> None:
    assert covers(one(nodeSelector=selector)) is hit


def test_entry_scoped_to_namespaces_does_not_except_node_results() -> None:
    # "namespaces: only findings about objects in these namespaces" — a node is in no namespace.
    assert not covers(one(namespaces=["team-a"]))


def test_entry_scoped_to_api_objects_does_not_except_node_results() -> None:
    # "resources: only findings about these objects" — a node finding is about no API object.
    assert not covers(one(resources=[{"kind": "ClusterRoleBinding", "name": "admins"}]))


def test_namespaced_exception_never_excepts_node_results() -> None:
    entries = flatten([namespaced(entry_body(rules=["*"]))])
    assert entries[0].key.kind == "ComplianceException"
    assert entries[0].key.namespace == "team-a"
    assert not covers(entries[0])
    applied = apply_to_node(
        {"4.2.1": "fail", "1.1.1": "fail"},
        entries,
        profile="cis",
        node="worker-1",
        node_labels=LABELS,
        now=NOW,
    )
    assert applied.effective == {"4.2.1": "fail", "1.1.1": "fail"}
    assert applied.excepted == {}


# ---- expiry -----------------------------------------------------------------------------------------


def test_expiry_boundary_is_the_exact_instant() -> None:
    entry = one(expires="2026-06-01T12:00:00Z")
    assert entry.expires_at == NOW
    assert covers(entry, now=NOW - timedelta(seconds=1))
    assert covers(entry, now=NOW - timedelta(microseconds=1))
    assert not covers(entry, now=NOW)
    assert not covers(entry, now=NOW + timedelta(days=1))


def test_date_expiry_applies_through_that_day_utc() -> None:
    entry = one(expires="2026-06-01")
    assert entry.expires_at == datetime(2026, 6, 2, tzinfo=UTC)
    assert covers(entry, now=datetime(2026, 6, 1, 23, 59, 59, tzinfo=UTC))
    assert not covers(entry, now=datetime(2026, 6, 2, tzinfo=UTC))


def test_offset_expiry_is_converted() -> None:
    entry = one(expires="2026-06-01T14:00:00+02:00")
    assert entry.expires_at == NOW
    assert not covers(entry, now=NOW)


def test_expired_entries_do_not_apply() -> None:
    entries = flatten([cluster(entry_body(expires="2026-05-31"))])
    applied = apply_to_node(
        {"4.2.1": "fail"}, entries, profile="cis", node="worker-1", node_labels=LABELS, now=NOW
    )
    assert applied.effective == {"4.2.1": "fail"}
    assert applied.excepted == {}


# ---- what is excepted -------------------------------------------------------------------------------


def test_only_failures_are_excepted() -> None:
    entries = flatten([cluster(entry_body(rules=["*"]))])
    results = {
        "1.1.1": "pass",
        "1.1.2": "fail",
        "1.1.3": "error",
        "1.1.4": "manual",
        "1.1.5": "not-applicable",
    }
    applied = apply_to_node(results, entries, profile="cis", node="worker-1", node_labels=LABELS, now=NOW)
    assert applied.effective == {**results, "1.1.2": "excepted"}
    assert set(applied.excepted) == {"1.1.2"}
    assert results["1.1.2"] == "fail", "input not mutated"


def test_first_matching_entry_is_recorded_and_ref_names_it() -> None:
    exc = cluster(
        entry_body(rules=["1.*"], nodes=["cp-*"]),
        entry_body(rules=["4.2.*"], ticket="SEC-1", expires="2026-12-31T00:00:00Z"),
        entry_body(rules=["*"]),
    )
    applied = apply_to_node(
        {"4.2.1": "fail", "1.1.1": "fail"},
        flatten([exc]),
        profile="cis",
        node="worker-1",
        node_labels=LABELS,
        now=NOW,
    )
    assert applied.excepted["4.2.1"].key.index == 1
    assert applied.excepted["1.1.1"].key.index == 2
    ref = applied.excepted["4.2.1"].ref()
    assert ref == {
        "kind": "ClusterComplianceException",
        "name": "node-waivers",
        "entry": 1,
        "reason": "accepted for the pilot",
        "owner": "platform@example.com",
        "expires": "2026-12-31T00:00:00Z",
        "ticket": "SEC-1",
    }
    assert "namespace" not in ref


def test_selector_uses_the_nodes_labels() -> None:
    entries = flatten([cluster(entry_body(nodeSelector={"matchLabels": {"tier": "gold"}}))])
    on_gold = apply_to_node(
        {"4.2.1": "fail"}, entries, profile="cis", node="worker-1", node_labels=LABELS, now=NOW
    )
    on_other = apply_to_node(
        {"4.2.1": "fail"}, entries, profile="cis", node="worker-2", node_labels={"tier": "silver"}, now=NOW
    )
    assert on_gold.effective["4.2.1"] == "excepted"
    assert on_other.effective["4.2.1"] == "fail"


# ---- entry states and next expiry -------------------------------------------------------------------


def test_entry_states() -> None:
    live, gone = flatten([cluster(entry_body(), entry_body(expires="2026-06-01T12:00:00Z"))])
    assert entry_state(live, 3, NOW) is EntryState.ACTIVE
    assert entry_state(live, 0, NOW) is EntryState.UNUSED
    assert entry_state(gone, 0, NOW) is EntryState.EXPIRED
    assert entry_state(gone, 5, NOW) is EntryState.EXPIRED
    assert entry_state(gone, 1, NOW - timedelta(seconds=1)) is EntryState.ACTIVE


def test_next_expiry() -> None:
    entries = flatten(
        [
            cluster(
                entry_body(expires="2026-06-01T12:00:00Z"),  # expires exactly now: not upcoming
                entry_body(expires="2026-09-01"),
                entry_body(expires="2026-06-01T12:00:01Z"),
            )
        ]
    )
    assert next_expiry(entries, NOW) == NOW + timedelta(seconds=1)
    assert next_expiry(entries, NOW + timedelta(seconds=1)) == datetime(2026, 9, 2, tzinfo=UTC)
    assert next_expiry(entries, datetime(2026, 9, 2, tzinfo=UTC)) is None
    assert next_expiry([], NOW) is None


def test_flatten_keeps_identity_and_order() -> None:
    entries = flatten([cluster(entry_body(), entry_body(rules=["5.*"])), namespaced(entry_body())])
    assert [(e.key.kind, e.key.namespace, e.key.name, e.key.index) for e in entries] == [
        ("ClusterComplianceException", None, "node-waivers", 0),
        ("ClusterComplianceException", None, "node-waivers", 1),
        ("ComplianceException", "team-a", "team-waivers", 0),
    ]
    assert entries[1].rules == ("5.*",)
    assert entries[2].ref()["namespace"] == "team-a"
