"""Setting values as text, and how they compare with a rule's expected value.

Every value is compared as text: YAML/JSON scalars are rendered the way they would be written on
a command line (``true``/``false``, ``10``, ``4h0m0s``), lists as comma-separated items and maps
(``featureGates``) as ``Key=value`` items, so a flag and a config key compare alike.

An unset value (``None``) satisfies only the negative ops: ``absent``, ``ne``, ``not-in`` and
``not-contains`` (nothing set cannot be the forbidden value); every other op fails on it.
``regex`` searches (``re.search``) the value. Numeric ops read integers, decimals and Go
durations (``1h30m``, ``300s``), comparing durations in seconds.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from plumbob.benchmarks.rules import Op, Test
from plumbob.engine.node.facts import JsonValue


def as_text(value: JsonValue) -> str | None:
    """Render a config value as command-line text (``None`` stays unset)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(t for t in (as_text(v) for v in value) if t is not None)
    if isinstance(value, dict):
        return ",".join(f"{k}={as_text(v) or ''}" for k, v in value.items())
    return str(value)


def items(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _expected_items(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else items(value)


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def as_number(text: str) -> float | None:
    """An integer, decimal or Go duration (in seconds); ``None`` if it is none of these."""
    text = text.strip().strip("\"'")
    try:
        return float(text)
    except ValueError:
        pass
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if not body or _DURATION.sub("", body):
        return None
    return sign * sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(body))


def _norm(text: str) -> str:
    text = text.strip().strip("\"'")
    return text.lower() if text.lower() in ("true", "false") else text


class Comparison(NamedTuple):
    ok: bool
    expected: str  # how the expectation reads in evidence
    problem: str | None = None  # set when the values could not be compared at all


def describe(test: Test) -> str:
    v = test.value
    shown = ",".join(v) if isinstance(v, list) else (v or "")
    return {
        Op.PRESENT: "set",
        Op.ABSENT: "not set",
        Op.EQ: shown,
        Op.NE: f"not {shown}",
        Op.IN: f"one of {shown}",
        Op.NOT_IN: f"none of {shown}",
        Op.CONTAINS: f"includes {shown}",
        Op.NOT_CONTAINS: f"excludes {shown}",
        Op.SUBSET_OF: f"only items of {shown}",
        Op.GT: f"> {shown}",
        Op.GTE: f">= {shown}",
        Op.LT: f"< {shown}",
        Op.LTE: f"<= {shown}",
        Op.REGEX: f"matches /{shown}/",
    }[test.op]


def compare(found: str | None, test: Test) -> Comparison:
    """Does ``found`` (``None``: unset) satisfy ``test``?"""
    expected = describe(test)
    op = test.op
    if op is Op.PRESENT:
        return Comparison(found is not None, expected)
    if op is Op.ABSENT:
        return Comparison(found is None, expected)
    if found is None:
        return Comparison(op in (Op.NE, Op.NOT_IN, Op.NOT_CONTAINS), expected)
    want = _expected_items(test.value)
    scalar = test.value if isinstance(test.value, str) else None
    if op in (Op.EQ, Op.NE, Op.REGEX, Op.GT, Op.GTE, Op.LT, Op.LTE) and scalar is None:
        return Comparison(False, expected, f"op {op} takes a single value, the rule gives a list")
    if op is Op.EQ:
        return Comparison(_norm(found) == _norm(scalar or ""), expected)
    if op is Op.NE:
        return Comparison(_norm(found) != _norm(scalar or ""), expected)
    if op is Op.IN:
        return Comparison(_norm(found) in {_norm(w) for w in want}, expected)
    if op is Op.NOT_IN:
        return Comparison(_norm(found) not in {_norm(w) for w in want}, expected)
    have = {_norm(i) for i in items(found)}
    if op is Op.CONTAINS:
        return Comparison(all(_norm(w) in have for w in want), expected)
    if op is Op.NOT_CONTAINS:
        return Comparison(not any(_norm(w) in have for w in want), expected)
    if op is Op.SUBSET_OF:
        return Comparison(have <= {_norm(w) for w in want}, expected)
    if op is Op.REGEX:
        try:
            return Comparison(re.search(scalar or "", found) is not None, expected)
        except re.error as exc:
            return Comparison(False, expected, f"the rule's regex is invalid: {exc}")
    return _compare_numbers(found, scalar or "", op, expected)


def _compare_numbers(found: str, wanted: str, op: Op, expected: str) -> Comparison:
    a, b = as_number(found), as_number(wanted)
    if b is None:
        return Comparison(False, expected, f"the rule's value {wanted!r} is not a number or duration")
    if a is None:
        return Comparison(False, expected)  # a non-number never satisfies a numeric bound
    ok = {Op.GT: a > b, Op.GTE: a >= b, Op.LT: a < b, Op.LTE: a <= b}[op]
    return Comparison(ok, expected)
