"""Every automated rule of the shipped catalog passes on a compliant node and fails when broken.

Parametrized over the loaded catalog, so rules are covered as they land:

- each scored node rule passes on the compliant kubeadm control-plane tree, and on the compliant
  worker tree when it targets workers;
- each scored node rule fails on the same tree after the misconfiguration derived from its own
  audit (``rule:<id>``); a rule for which no misconfiguration can be derived fails this test;
- the catalog holds all 131 CIS v1.12 controls, and every unscored rule carries guidance.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plumbob.agent.auditing import run_audit
from plumbob.benchmarks.catalog import load_benchmark
from plumbob.benchmarks.rules import Rule, Target
from plumbob.engine.findings import AuditResult, Status
from testbed.hosttrees import build_tree

BENCHMARK = load_benchmark("cis-1.12")
AUTOMATED = [r for r in BENCHMARK.rules if r.scored and Target.CLUSTER not in r.targets]
KINDS = {"control-plane": {Target.CONTROL_PLANE, Target.ETCD, Target.WORKER}, "worker": {Target.WORKER}}
CASES = [
    pytest.param(rule, kind, id=f"{rule.id}-{kind}")
    for rule in AUTOMATED
    for kind, roles in KINDS.items()
    if roles.intersection(rule.targets)
]


@pytest.fixture(scope="module")
def compliant(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AuditResult]:
    base = tmp_path_factory.mktemp("compliant")
    return {kind: run_audit(build_tree(base / kind, kind).root) for kind in KINDS}


def test_catalog_is_complete() -> None:
    assert len(BENCHMARK.rules) == 131
    assert AUTOMATED, "no automated node rule in the catalog"
    assert all(r.guidance for r in BENCHMARK.rules if not r.scored)


@pytest.mark.parametrize(("rule", "kind"), CASES)
def test_passes_on_compliant_node(rule: Rule, kind: str, compliant: dict[str, AuditResult]) -> None:
    finding = next(f for f in compliant[kind].findings if f.rule_id == rule.id)
    assert finding.status is Status.PASS, finding
    assert finding.evidence


@pytest.mark.parametrize(("rule", "kind"), CASES)
def test_fails_when_misconfigured(rule: Rule, kind: str, tmp_path: Path) -> None:
    tree = build_tree(tmp_path, kind, [f"rule:{rule.id}"], BENCHMARK)  # MutationError fails the test
    [finding] = run_audit(tree.root, rule_patterns=[rule.id]).findings
    assert finding.status is Status.FAIL, finding
    assert finding.reason
    assert any(e.found is not None or e.source == "unset" for e in finding.evidence)
