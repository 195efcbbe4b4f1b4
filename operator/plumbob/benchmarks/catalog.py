"""Benchmarks as shipped data: load, validate, tailor and select rules.

A benchmark lives in ``benchmarks/data/<id>/``: ``benchmark.yaml`` (id, title, version,
variables, section titles) and one :class:`~plumbob.benchmarks.rules.SectionFile` per top-level
section (``1-*.yaml`` … ``5-*.yaml``). Those YAML files are the source.

The node audit must start in milliseconds, so the package also ships ``compiled.json`` beside
them: the benchmark already validated (by pydantic, through
:mod:`plumbob.benchmarks.validation`), as plain JSON, with the CRC-32 and size of every source
file it was made from (a staleness check, not a signature: both ship in the same package).
:func:`load_benchmark` uses it when those match the sources on disk, and otherwise validates the
YAML itself (slower, same result), so an edited source is never shadowed by a stale compiled
file. ``make catalog`` rewrites the compiled files; a unit test fails when they differ from their
sources or when a source is invalid.

Variables (``${name}`` in audits) are substituted at load; a caller's ``overrides`` win over the
benchmark's defaults. Results are cached per benchmark and overrides.

Errors::

    CatalogError            a benchmark cannot be loaded or tailored (names the file and the problem)
"""

from __future__ import annotations

import functools
import json
import re
import sys
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from plumbob.benchmarks.rules import (
    NUMBERED_ID,
    Benchmark,
    ExpectedHolder,
    Rule,
    SectionFile,
    rule_from_dict,
    rule_matches,
    to_plain,
)

DATA_DIR = Path(__file__).resolve().parent / "data"
COMPILED = "compiled.json"
COMPILED_FORMAT = 1
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_INTEGER = re.compile(r"[0-9]+")
_SECTION_FILE = re.compile(r"^\d+-.*\.ya?ml$")


class CatalogError(Exception):
    """A benchmark could not be loaded, validated or tailored."""


def data_root() -> Path:
    return DATA_DIR


PLATFORM = "platform.yaml"


def available() -> list[str]:
    """Ids of the benchmarks shipped in the package (platform variants included)."""
    return sorted(
        d.name for d in DATA_DIR.iterdir() if (d / "benchmark.yaml").is_file() or (d / PLATFORM).is_file()
    )


def _sources(directory: Path) -> list[str]:
    """The YAML source files of a benchmark directory, in load order; a platform variant's
    sources are its ``platform.yaml`` and then its base's (as ``../<base>/<file>``)."""
    try:
        names = sorted(p.name for p in directory.iterdir())
    except OSError as exc:
        raise CatalogError(f"{directory}: cannot list: {exc.strerror}") from exc
    if PLATFORM in names:
        base = _platform_base(directory)
        return [PLATFORM, *(f"../{base}/{n}" for n in _sources(directory.parent / base))]
    return ["benchmark.yaml", *(n for n in names if _SECTION_FILE.match(n))]


def _platform_base(directory: Path) -> str:
    match = re.search(
        r"(?m)^base:\s*([a-z0-9][a-z0-9.-]*)\s*$", (directory / PLATFORM).read_text(encoding="utf-8")
    )
    if match is None:
        raise CatalogError(f"{directory.name}/{PLATFORM}: no base benchmark")
    return match.group(1)


def _digests(directory: Path) -> dict[str, str]:
    out = {}
    for name in _sources(directory):
        try:
            data = (directory / name).read_bytes()
            out[name] = f"crc32:{zlib.crc32(data):08x} size:{len(data)}"
        except OSError:
            out[name] = "unreadable"
    return out


def _validate_variant(directory: Path, label: str) -> dict[str, Any]:
    from plumbob.benchmarks.platforms import PlatformVariant, derive  # noqa: PLC0415 - slow path
    from plumbob.benchmarks.validation import ValidationError, validated  # noqa: PLC0415 - slow path

    raw = _read_yaml(directory / PLATFORM, f"{label}/{PLATFORM}")
    try:
        variant = validated(PlatformVariant, raw)
    except ValidationError as exc:
        raise CatalogError(f"{label}/{PLATFORM}: {exc}") from exc
    if variant.id != directory.name:
        raise CatalogError(f"{label}/{PLATFORM}: id {variant.id!r} differs from its directory")
    base = validate_sources(directory.parent / variant.base, variant.base)
    try:
        plain = derive(base, variant)
        validated(Benchmark, plain)  # the derived rules obey the model too
    except (ValueError, ValidationError) as exc:
        raise CatalogError(f"{label}/{PLATFORM}: {exc}") from exc
    return plain


def _read_yaml(path: Path, label: str) -> Any:
    import yaml  # noqa: PLC0415 - only the slow path reads YAML

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CatalogError(f"{label}: cannot read: {exc}") from exc


def validate_sources(directory: Path, label: str) -> dict[str, Any]:
    """Validate a benchmark's YAML sources; its plain JSON form (variables not yet substituted)."""
    from plumbob.benchmarks.validation import ValidationError, validated  # noqa: PLC0415 - slow path

    if (directory / PLATFORM).is_file():
        return _validate_variant(directory, label)
    if not (directory / "benchmark.yaml").is_file():
        raise CatalogError(f"{label}: no benchmark.yaml")
    meta = _read_yaml(directory / "benchmark.yaml", f"{label}/benchmark.yaml")
    if not isinstance(meta, dict):
        raise CatalogError(f"{label}/benchmark.yaml: expected a mapping")
    rules: list[Rule] = []
    for name in _sources(directory)[1:]:
        raw = _read_yaml(directory / name, f"{label}/{name}")
        try:
            section = validated(SectionFile, raw)
        except ValidationError as exc:
            raise CatalogError(f"{label}/{name}: {exc}") from exc
        if section.benchmark != meta.get("id"):
            raise CatalogError(f"{label}/{name}: benchmark {section.benchmark!r} != {meta.get('id')!r}")
        for rule in section.rules:
            if rule.section.split(".")[0] != section.section:
                raise CatalogError(f"{label}/{name}: rule {rule.id} is not in section {section.section}")
        rules.extend(section.rules)
    ids = [r.id for r in rules]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise CatalogError(f"{label}: duplicate rule ids {', '.join(duplicates)}")
    if all(re.fullmatch(NUMBERED_ID, r.id) for r in rules):
        rules.sort(key=lambda r: tuple(int(p) for p in r.id.split(".")))
    try:
        benchmark = validated(Benchmark, {**meta, "rules": rules})
    except ValidationError as exc:
        raise CatalogError(f"{label}/benchmark.yaml: {exc}") from exc
    plain: dict[str, Any] = to_plain(benchmark)
    return plain


def compiled_text(directory: Path, label: str) -> str:
    """The ``compiled.json`` of a benchmark directory, from its validated sources."""
    document = {
        "format": COMPILED_FORMAT,
        "sources": _digests(directory),
        "benchmark": validate_sources(directory, label),
    }
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def _from_compiled(directory: Path) -> dict[str, Any] | None:
    """The compiled benchmark when it exists and was made from exactly these sources."""
    try:
        document = json.loads((directory / COMPILED).read_bytes())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(document, dict)
        or document.get("format") != COMPILED_FORMAT
        or document.get("sources") != _digests(directory)
    ):
        return None
    plain: dict[str, Any] = document["benchmark"]
    return plain


@functools.lru_cache(maxsize=16)
def _plain(benchmark_id: str, directory: str | None) -> dict[str, Any]:
    if directory is not None:
        return validate_sources(Path(directory), directory)
    if "/" in benchmark_id or benchmark_id.startswith("."):
        raise CatalogError(f"invalid benchmark id {benchmark_id!r}")
    node = DATA_DIR / benchmark_id
    if not (node / "benchmark.yaml").is_file() and not (node / PLATFORM).is_file():
        raise CatalogError(f"unknown benchmark {benchmark_id!r}; shipped: {', '.join(available()) or 'none'}")
    return _from_compiled(node) or validate_sources(node, benchmark_id)


def _substitute(value: Any, variables: Mapping[str, str], rule_id: str) -> Any:
    if isinstance(value, str):
        if "${" not in value:
            return value

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


def _benchmark(plain: Mapping[str, Any], overrides: Mapping[str, str]) -> Benchmark:
    """Build the models, with ``${name}`` variables substituted in every audit."""
    defaults: dict[str, str] = plain.get("variables", {})
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise CatalogError(f"{plain['id']}: unknown variables {', '.join(unknown)}")
    for name, value in sorted(overrides.items()):
        default = defaults[name]
        if _INTEGER.fullmatch(default) and not _INTEGER.fullmatch(value):
            raise CatalogError(
                f"variables.{name}: {value!r} is not a whole number (the benchmark's default is {default})"
            )
    variables = {**defaults, **overrides}
    rules = []
    for source in plain["rules"]:
        data = source
        if source.get("audit") is not None:
            data = {**source, "audit": _substitute(source["audit"], variables, source["id"])}
        try:
            rules.append(rule_from_dict(data))
        except (ValueError, TypeError, KeyError) as exc:
            raise CatalogError(f"rule {data['id']}: invalid after substituting variables: {exc}") from exc
    return Benchmark(
        id=plain["id"],
        title=plain["title"],
        version=plain["version"],
        variables=variables,
        sections=dict(plain.get("sections", {})),
        rules=rules,
        rule_ids=plain.get("rule_ids", NUMBERED_ID),
        expected_holders=[ExpectedHolder(**h) for h in plain.get("expected_holders", [])],
        never_expected=list(plain.get("never_expected", [])),
        platform=plain.get("platform", "generic"),
        base=plain.get("base"),
        responsibility=plain.get("responsibility"),
        host_directories=list(plain.get("host_directories", [])),
    )


def load_benchmark(
    benchmark_id: str, overrides: Mapping[str, str] | None = None, *, directory: Path | None = None
) -> Benchmark:
    """Load (cached) and tailor a benchmark. ``directory`` loads one from outside the package (tests)."""
    where = str(directory) if directory is not None else None
    return _tailored(benchmark_id, where, tuple(sorted((overrides or {}).items())))


@functools.lru_cache(maxsize=64)
def _tailored(benchmark_id: str, directory: str | None, overrides: tuple[tuple[str, str], ...]) -> Benchmark:
    """Cached per (benchmark, overrides): the operator resolves every profile on every pass."""
    return _benchmark(_plain(benchmark_id, directory), dict(overrides))


def select_rules(rules: Iterable[Rule], patterns: Sequence[str] | None) -> list[Rule]:
    """Rules whose id matches any glob (``1.2.*``, ``4.2.1``, ``2``: a bare section takes all of it).

    ``None`` selects every rule; an empty list selects none.
    """
    if patterns is None:
        return list(rules)

    def matches(rule_id: str, pattern: str) -> bool:
        return rule_matches(rule_id, pattern)

    return [r for r in rules if any(matches(r.id, p) for p in patterns)]


def main(argv: Sequence[str]) -> int:
    """``python -m plumbob.benchmarks.catalog [--check]``: write (or check) every compiled.json."""
    check = "--check" in argv
    stale = []
    for benchmark_id in available():
        directory = DATA_DIR / benchmark_id
        text = compiled_text(directory, benchmark_id)
        target = directory / COMPILED
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current != text:
            stale.append(benchmark_id)
            if not check:
                target.write_text(text, encoding="utf-8")
    verb = "out of date" if check else "rewritten"
    print(f"compiled benchmarks {verb}: {', '.join(stale) or 'none'}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
