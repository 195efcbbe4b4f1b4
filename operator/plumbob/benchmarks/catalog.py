"""Benchmarks as shipped data: load, validate, tailor and select rules.

A benchmark lives in ``benchmarks/data/<id>/``: ``benchmark.yaml`` (id, title, version,
variables, section titles) and one :class:`~plumbob.benchmarks.rules.SectionFile` per top-level
section (``1-*.yaml`` … ``5-*.yaml``). :func:`load_benchmark` reads them through
``importlib.resources`` (so they work from a wheel or zip), validates them with the rule model,
substitutes ``${name}`` variables (a caller's ``overrides`` win over the benchmark's defaults) and
caches the result.

Errors::

    CatalogError            a benchmark cannot be loaded or tailored (names the file and the problem)
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from plumbob.benchmarks.rules import NUMBERED_ID, Benchmark, Rule, SectionFile

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECTION_FILE = re.compile(r"^\d+-.*\.ya?ml$")


class CatalogError(Exception):
    """A benchmark could not be loaded, validated or tailored."""


def data_root() -> Traversable:
    return resources.files("plumbob.benchmarks").joinpath("data")


def available() -> list[str]:
    """Ids of the benchmarks shipped in the package."""
    root = data_root()
    return sorted(d.name for d in root.iterdir() if d.is_dir() and d.joinpath("benchmark.yaml").is_file())


def _read_yaml(node: Traversable, label: str) -> Any:
    try:
        return yaml.safe_load(node.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CatalogError(f"{label}: cannot read: {exc}") from exc


def _load(directory: Traversable, label: str) -> Benchmark:
    meta_node = directory.joinpath("benchmark.yaml")
    if not meta_node.is_file():
        raise CatalogError(f"{label}: no benchmark.yaml")
    meta = _read_yaml(meta_node, f"{label}/benchmark.yaml")
    if not isinstance(meta, dict):
        raise CatalogError(f"{label}/benchmark.yaml: expected a mapping")
    rules: list[Rule] = []
    for node in sorted(directory.iterdir(), key=lambda n: n.name):
        if not _SECTION_FILE.match(node.name):
            continue
        raw = _read_yaml(node, f"{label}/{node.name}")
        try:
            section = SectionFile.model_validate(raw)
        except ValidationError as exc:
            raise CatalogError(f"{label}/{node.name}: {exc}") from exc
        if section.benchmark != meta.get("id"):
            raise CatalogError(f"{label}/{node.name}: benchmark {section.benchmark!r} != {meta.get('id')!r}")
        for rule in section.rules:
            if rule.section.split(".")[0] != section.section:
                raise CatalogError(f"{label}/{node.name}: rule {rule.id} is not in section {section.section}")
        rules.extend(section.rules)
    ids = [r.id for r in rules]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise CatalogError(f"{label}: duplicate rule ids {', '.join(duplicates)}")
    if all(re.fullmatch(NUMBERED_ID, r.id) for r in rules):
        rules.sort(key=lambda r: tuple(int(p) for p in r.id.split(".")))
    try:
        return Benchmark.model_validate({**meta, "rules": rules})
    except ValidationError as exc:
        raise CatalogError(f"{label}/benchmark.yaml: {exc}") from exc


@functools.lru_cache(maxsize=16)
def _cached(benchmark_id: str, directory: str | None) -> Benchmark:
    if directory is not None:
        return _load(Path(directory), directory)
    if "/" in benchmark_id or benchmark_id.startswith("."):
        raise CatalogError(f"invalid benchmark id {benchmark_id!r}")
    node = data_root().joinpath(benchmark_id)
    if not node.is_dir():
        raise CatalogError(f"unknown benchmark {benchmark_id!r}; shipped: {', '.join(available()) or 'none'}")
    return _load(node, benchmark_id)


def _substitute(value: Any, variables: Mapping[str, str], rule_id: str) -> Any:
    if isinstance(value, str):

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in variables:
                raise CatalogError(f"rule {rule_id}: unknown variable ${{{name}}}")
            return variables[name]

        return _VARIABLE.sub(one, value)
    if isinstance(value, list):
        return [_substitute(v, variables, rule_id) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, variables, rule_id) for k, v in value.items()}
    return value


def tailored(benchmark: Benchmark, overrides: Mapping[str, str] | None = None) -> Benchmark:
    """The benchmark with ``${name}`` variables substituted in every audit (tests, paths, defaults)."""
    unknown = sorted(set(overrides or {}) - set(benchmark.variables))
    if unknown:
        raise CatalogError(f"{benchmark.id}: unknown variables {', '.join(unknown)}")
    variables = {**benchmark.variables, **(overrides or {})}
    rules = []
    for rule in benchmark.rules:
        if rule.audit is None:
            rules.append(rule)
            continue
        dumped = rule.model_dump(mode="json", exclude_unset=True)
        dumped["audit"] = _substitute(dumped["audit"], variables, rule.id)
        try:
            rules.append(Rule.model_validate(dumped))
        except ValidationError as exc:
            raise CatalogError(f"rule {rule.id}: invalid after substituting variables: {exc}") from exc
    return benchmark.model_copy(update={"rules": rules, "variables": variables})


def load_benchmark(
    benchmark_id: str, overrides: Mapping[str, str] | None = None, *, directory: Path | None = None
) -> Benchmark:
    """Load (cached) and tailor a benchmark. ``directory`` loads one from outside the package (tests)."""
    where = str(directory) if directory is not None else None
    return _tailored(benchmark_id, where, tuple(sorted((overrides or {}).items())))


@functools.lru_cache(maxsize=64)
def _tailored(benchmark_id: str, directory: str | None, overrides: tuple[tuple[str, str], ...]) -> Benchmark:
    """Cached per (benchmark, overrides): the operator resolves every profile on every pass."""
    return tailored(_cached(benchmark_id, directory), dict(overrides))


def select_rules(rules: Iterable[Rule], patterns: Sequence[str] | None) -> list[Rule]:
    """Rules whose id matches any glob (``1.2.*``, ``4.2.1``, ``2``: a bare section takes all of it)."""
    if not patterns:
        return list(rules)

    def matches(rule_id: str, pattern: str) -> bool:
        return fnmatch.fnmatchcase(rule_id, pattern) or rule_id.startswith(pattern + ".")

    return [r for r in rules if any(matches(r.id, p) for p in patterns)]
