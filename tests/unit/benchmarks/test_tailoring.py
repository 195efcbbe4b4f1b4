"""A profile's tailoring of a benchmark.

Cases:
- include/exclude: globs (``*``, ``?``), exact ids, bare section ids (``1``, ``1.2``) that select
  the whole section and nothing that merely shares a prefix (``1.2`` ≠ ``1.20.1``); exclude wins;
  default include is everything;
- manual: glob → rationale; first matching entry; no match → None;
- node_rules: only selected rules, cluster-only rules (section 5) never, node rules of every role;
- JSON round trip (the operator hands it to the agent through the environment); frozen; unknown
  keys, a missing benchmark and values of the wrong type refused, naming the key.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from plumbob.benchmarks.catalog import load_benchmark
from plumbob.benchmarks.rules import Target
from plumbob.benchmarks.tailoring import Tailoring, TailoringError

RULES = load_benchmark("cis-1.12").rules


@pytest.mark.parametrize(
    ("include", "exclude", "rule", "selected"),
    [
        (("*",), (), "5.1.1", True),
        (("1.2.*",), (), "1.2.10", True),
        (("1.2.*",), (), "1.3.1", False),
        (("4.2.1?",), (), "4.2.10", True),
        (("4.2.1?",), (), "4.2.1", False),
        (("4.2.1",), (), "4.2.1", True),
        (("4.2.1",), (), "4.2.10", False),
        (("1",), (), "1.2.3", True),
        (("1",), (), "10.1.1", False),
        (("1.2",), (), "1.2.3", True),
        (("1.2",), (), "1.20.1", False),
        (("1.2",), (), "1.2", True),
        (("*",), ("5",), "5.1.1", False),
        (("*",), ("5",), "4.1.1", True),
        (("1.*",), ("1.2.*",), "1.2.1", False),
        (("1.*",), ("1.2.*",), "1.1.1", True),
        (("4.2.1",), ("4.*",), "4.2.1", False),
    ],
)
def test_selects(include: tuple[str, ...], exclude: tuple[str, ...], rule: str, selected: bool) -> None:
    assert Tailoring(benchmark="cis-1.12", include=include, exclude=exclude).selects(rule) is selected


def test_default_include_is_everything() -> None:
    t = Tailoring(benchmark="cis-1.12")
    assert all(t.selects(r.id) for r in RULES)


def test_manual_rationale() -> None:
    t = Tailoring(
        benchmark="cis-1.12", manual={"1.1.1?": "provider managed", "1.1.*": "later", "4.2.1": "exact"}
    )
    assert t.manual_rationale("1.1.12") == "provider managed"
    assert t.manual_rationale("1.1.2") == "later"
    assert t.manual_rationale("4.2.1") == "exact"
    assert t.manual_rationale("4.2.10") is None
    assert Tailoring(benchmark="cis-1.12").manual_rationale("1.1.1") is None


def test_node_rules_exclude_cluster_rules() -> None:
    all_nodes = Tailoring(benchmark="cis-1.12").node_rules(RULES)
    ids = {r.id for r in all_nodes}
    assert ids, "the benchmark has node rules"
    assert not any(i.startswith("5.") for i in ids), "section 5 is cluster-level"
    assert all(any(t is not Target.CLUSTER for t in r.targets) for r in all_nodes)
    cluster_only = {r.id for r in RULES if set(r.targets) == {Target.CLUSTER}}
    assert cluster_only, "the benchmark has cluster rules"
    assert ids == {r.id for r in RULES} - cluster_only
    assert {i.split(".")[0] for i in ids} == {"1", "2", "3", "4"}


def test_node_rules_follow_selection() -> None:
    t = Tailoring(benchmark="cis-1.12", include=("4", "5"), exclude=("4.2.*",))
    ids = {r.id for r in t.node_rules(RULES)}
    assert ids
    assert all(i.startswith("4.") and not i.startswith("4.2.") for i in ids)
    assert Tailoring(benchmark="cis-1.12", include=("5",)).node_rules(RULES) == []


def test_json_round_trip_frozen_and_strict() -> None:
    t = Tailoring(
        benchmark="cis-1.12",
        include=("1", "4.*"),
        exclude=("4.2.1",),
        manual={"1.1.*": "why"},
        variables={"audit_log_maxage": "90"},
    )
    assert Tailoring.from_json(t.to_json()) == t
    assert Tailoring.from_json('{"benchmark": "cis-1.12"}') == Tailoring(benchmark="cis-1.12")
    with pytest.raises(FrozenInstanceError):
        t.benchmark = "cis-1.10"  # type: ignore[misc]  # frozen: the assignment itself is the test


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"benchmark": "cis-1.12", "includes": ["1"]}', "unknown keys: includes"),
        ('{"include": ["1"]}', "benchmark: expected a benchmark id"),
        ('{"benchmark": "cis-1.12", "include": "1"}', "include: expected a list of strings"),
        ('{"benchmark": "cis-1.12", "exclude": [1]}', "exclude: expected a list of strings"),
        ('{"benchmark": "cis-1.12", "manual": {"1.1.1": 3}}', "manual: expected a mapping of strings"),
        ('{"benchmark": "cis-1.12", "variables": ["a"]}', "variables: expected a mapping of strings"),
        ('["cis-1.12"]', "expected a JSON object"),
        ("{benchmark", "not JSON"),
    ],
)
def test_from_json_refuses_bad_documents_by_name(text: str, message: str) -> None:
    with pytest.raises(TailoringError, match=message):
        Tailoring.from_json(text)
