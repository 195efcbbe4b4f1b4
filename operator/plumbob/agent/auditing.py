"""One node audit, end to end: load the benchmark, gather the facts, evaluate, return the result.

Errors::

    AuditError              the audit cannot run at all (no such host root, benchmark unusable)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from plumbob.agent.facts import gather_facts
from plumbob.benchmarks.catalog import CatalogError, load_benchmark, select_rules
from plumbob.benchmarks.rules import Target
from plumbob.engine.findings import AuditResult
from plumbob.engine.node.evaluation import evaluate, node_roles

DEFAULT_BENCHMARK = "cis-1.12"


class AuditError(Exception):
    """The audit could not run (as opposed to a rule that could not be evaluated)."""


def run_audit(
    host_root: str | Path = "/",
    *,
    benchmark_id: str = DEFAULT_BENCHMARK,
    rule_patterns: Sequence[str] | None = None,
    roles: Iterable[Target] | None = None,
    overrides: Mapping[str, str] | None = None,
    proc_dir: str | Path | None = None,
    benchmark_dir: Path | None = None,
    mounted: Sequence[str] | None = None,
) -> AuditResult:
    """Audit the node under ``host_root``; ``mounted``: the host directories an audit Pod mounts
    there (a path outside them is reported as not mounted, never as absent), None for all."""
    if not Path(host_root).is_dir():
        raise AuditError(f"host root {host_root} is not a directory")
    try:
        benchmark = load_benchmark(benchmark_id, overrides, directory=benchmark_dir)
    except CatalogError as exc:
        raise AuditError(str(exc)) from exc
    rules = select_rules(benchmark.rules, rule_patterns)
    facts = gather_facts(rules, host_root, proc_dir, mounted)
    role_set = frozenset(roles) if roles is not None else node_roles(facts)
    findings = evaluate(rules, facts, role_set)
    return AuditResult(
        benchmark=benchmark.id,
        benchmark_version=benchmark.version,
        node=facts.hostname,
        roles=tuple(sorted(r.value for r in role_set)),
        findings=tuple(findings),
    )
