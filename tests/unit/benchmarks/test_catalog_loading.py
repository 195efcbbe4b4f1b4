"""Catalog loading, tailoring, selection and version mapping.

Cases:
- the shipped benchmark loads from package data, is cached, and lists sorted unique rule ids;
- ``${name}`` variables are substituted; caller overrides win; unknown variables are refused;
- rule globs: ``1.2.*``, exact ids, a bare section;
- a broken data directory (bad YAML, invalid rule, duplicate ids, unknown benchmark) → CatalogError
  naming the file;
- version mapping: 1.32 and newer → cis-1.12; older → no benchmark; platforms fall back to generic
  and a platform entry wins over generic.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plumbob.benchmarks.catalog import CatalogError, available, load_benchmark, select_rules
from plumbob.benchmarks.rules import SettingAudit
from plumbob.benchmarks.versions import VersionTable, benchmark_for


def test_shipped_benchmark() -> None:
    assert "cis-1.12" in available()
    b = load_benchmark("cis-1.12")
    assert b is load_benchmark("cis-1.12")
    ids = [r.id for r in b.rules]
    assert len(ids) == len(set(ids))
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split(".")))


def _maxage(benchmark_id: str = "cis-1.12", **overrides: str) -> object:
    rule = next(r for r in load_benchmark(benchmark_id, overrides).rules if r.id == "1.2.17")
    assert isinstance(rule.audit, SettingAudit)
    return rule.audit.test.value


def test_variables() -> None:
    assert _maxage() == "30"
    assert _maxage(audit_log_maxage="90") == "90"
    with pytest.raises(CatalogError, match="unknown variables"):
        load_benchmark("cis-1.12", {"nope": "1"})


def test_select_rules() -> None:
    rules = load_benchmark("cis-1.12").rules
    assert {r.id for r in select_rules(rules, ["1.2.*"])} == {r.id for r in rules if r.id.startswith("1.2.")}
    assert [r.id for r in select_rules(rules, ["4.2.1"])] == ["4.2.1"]
    assert {r.id for r in select_rules(rules, ["2"])} == {r.id for r in rules if r.id.startswith("2.")}
    assert select_rules(rules, None) == rules


RULE = """
  - id: 1.1.1
    title: t
    section: "1.1"
    severity: high
    targets: [control-plane]
    scored: true
    remediation: r
    audit: {type: setting, component: apiserver, flag: --x, test: {op: eq, value: "${v}"}}
"""


def _write(tmp_path: Path, rules: str, variables: str = "{v: '1'}") -> Path:
    (tmp_path / "benchmark.yaml").write_text(f"id: t\ntitle: T\nversion: '1'\nvariables: {variables}\n")
    (tmp_path / "1-x.yaml").write_text(f"benchmark: t\nsection: '1'\ntitle: X\nrules:{rules}")
    return tmp_path


def test_directory_benchmark(tmp_path: Path) -> None:
    b = load_benchmark("t", directory=_write(tmp_path, RULE))
    assert isinstance(b.rules[0].audit, SettingAudit) and b.rules[0].audit.test.value == "1"


@pytest.mark.parametrize(
    ("rules", "variables", "message"),
    [
        (RULE + RULE, "{v: '1'}", "duplicate rule ids"),
        (RULE, "{}", "unknown variable"),
        (RULE.replace("op: eq", "op: equals"), "{v: '1'}", "1-x.yaml"),
        ("\n  - id: [unclosed", "{v: '1'}", "cannot read"),
    ],
)
def test_broken_benchmarks(tmp_path: Path, rules: str, variables: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        load_benchmark("t", directory=_write(tmp_path, rules, variables))


def test_unknown_benchmark() -> None:
    with pytest.raises(CatalogError, match="unknown benchmark"):
        load_benchmark("cis-0.1")
    with pytest.raises(CatalogError, match="invalid"):
        load_benchmark("../etc")


def test_versions() -> None:
    assert benchmark_for("v1.32.0") == "cis-1.12"
    assert benchmark_for("1.36.3") == "cis-1.12"
    assert benchmark_for("v1.33.1", platform="k3s") == "k3s-cis-1.12"
    assert benchmark_for("v1.33.1", platform="openshift") == "cis-1.12"
    with pytest.raises(CatalogError):
        benchmark_for("v1.31.9")
    with pytest.raises(CatalogError):
        benchmark_for("latest")
    table = VersionTable.from_data(
        {
            "mappings": [
                {"min": "1.32", "benchmark": "cis-1.12"},
                {"platform": "k3s", "min": "1.32", "benchmark": "k3s-cis-1.12"},
                {"min": "1.29", "max": "1.31", "benchmark": "cis-1.10"},
            ]
        }
    )
    assert benchmark_for("1.33", "k3s", table) == "k3s-cis-1.12"
    assert benchmark_for("1.33", "eks", table) == "cis-1.12"
    assert benchmark_for("1.30", "generic", table) == "cis-1.10"
