"""A profile's own rules: CEL over API objects (``object``, as in a ValidatingAdmissionPolicy).

Backed by ``cel-expr-python`` (the CEL team's binding of cel-cpp; see
``docs/decisions/2026-12-02-cel-library.md``). Expressions are type-checked when compiled, so an
undeclared function or a wrong overload is a :class:`RuleCompileError` naming the rule, before
any object is read. At run time each object is evaluated on its own: an evaluation error (a
missing field, a division by zero, a non-boolean result) gives ``error`` for that object with the
message, never a crash and never a pass.

Errors::

    RuleCompileError    a rule does not compile, or does not return a boolean (names the rule)
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel

from plumbob.engine.cluster.inventory import mapping, text
from plumbob.engine.findings import Evidence, Finding, ObjectRef, Source, Status


@dataclass(frozen=True)
class CustomRule:
    """What the engine needs of a ``spec.customRules[]`` entry."""

    id: str
    title: str
    severity: str
    api_version: str
    kind: str
    expression: str
    namespaces: tuple[str, ...] = ()
    message: str = ""
    remediation: str = ""


class RuleCompileError(Exception):
    def __init__(self, rule: CustomRule, message: str) -> None:
        super().__init__(f"custom rule {rule.id}: {message}")
        self.rule = rule
        self.rule_id = rule.id
        self.message = message


@dataclass(frozen=True)
class CompiledRule:
    rule: CustomRule
    program: Any  # cel.Expression

    def selects(self, obj: Mapping[str, Any]) -> bool:
        meta = mapping(obj.get("metadata"))
        if obj.get("apiVersion") != self.rule.api_version or obj.get("kind") != self.rule.kind:
            return False
        return not self.rule.namespaces or meta.get("namespace") in self.rule.namespaces


@functools.cache
def _env() -> Any:
    return cel.NewEnv(variables={"object": cel.Type.DYN})


@functools.lru_cache(maxsize=512)
def _compiled(expression: str) -> tuple[Any, str | None]:
    """The program of ``expression``, or why it does not compile (cached: profiles are resolved
    on every pass, and a compile takes a fraction of a millisecond to a few)."""
    try:
        program = _env().compile(expression)
    except Exception as exc:  # the binding raises RuntimeError with the checker's message
        return None, str(exc).strip()
    returns = program.return_type().name()
    if returns not in ("BOOL", "DYN"):
        return None, f"the expression must return a bool, it returns {returns.lower()}"
    return program, None


def compile_error(expression: str) -> str | None:
    """Why ``expression`` does not compile as a rule (parse, type check, non-boolean result), or None."""
    return _compiled(expression)[1]


def compile_rule(rule: CustomRule) -> CompiledRule:
    """Parse and type-check ``rule.expression``; raises :class:`RuleCompileError`."""
    program, error = _compiled(rule.expression)
    if error is not None:
        raise RuleCompileError(rule, error)
    return CompiledRule(rule, program)


def compile_rules(rules: Iterable[CustomRule]) -> tuple[list[CompiledRule], list[RuleCompileError]]:
    """Every rule that compiles, and the error of each that does not (the others still run)."""
    compiled, errors = [], []
    for rule in rules:
        try:
            compiled.append(compile_rule(rule))
        except RuleCompileError as exc:
            errors.append(exc)
    return compiled, errors


def object_ref(obj: Mapping[str, Any]) -> ObjectRef:
    meta = mapping(obj.get("metadata"))
    return ObjectRef(
        api_version=text(obj.get("apiVersion")) or "v1",
        kind=text(obj.get("kind")) or "?",
        namespace=text(meta.get("namespace")) or None,
        name=text(meta.get("name")) or "?",
    )


def evaluate_object(compiled: CompiledRule, obj: Mapping[str, Any]) -> tuple[Status, str]:
    """``pass``, ``fail`` or ``error`` (with the reason) for one object."""
    try:
        value = compiled.program.eval(data={"object": obj})
        kind = value.type().name()
        result = value.value()
    except Exception as exc:  # one object's failure is that object's error, never a crash
        return Status.ERROR, f"evaluation failed: {type(exc).__name__}: {exc}"
    if kind == "ERROR":
        return Status.ERROR, f"evaluation failed: {result}"
    if kind != "BOOL":
        return Status.ERROR, f"the expression returned {kind.lower()}, not a bool"
    return (Status.PASS, "") if result else (Status.FAIL, compiled.rule.message or "the expression is false")


def rule_finding(rule: CustomRule, status: Status, reason: str, resource: ObjectRef | None = None) -> Finding:
    """A finding of a custom rule; one naming an object shows the expression as evidence."""
    evidence: tuple[Evidence, ...] = ()
    if resource is not None:
        evidence = (
            Evidence(subject=str(resource), source=Source.API, location="object", found=rule.expression),
        )
    return Finding(
        rule_id=rule.id,
        title=rule.title,
        severity=rule.severity,
        scored=True,
        status=status,
        reason=reason,
        evidence=evidence,
        resource=resource,
    )


BUDGET_SECONDS = 5.0  # CPU time one custom rule may spend over all its objects in one evaluation


def evaluate_custom(
    compiled: Sequence[CompiledRule],
    objects: Iterable[Mapping[str, Any]],
    *,
    budget: float = BUDGET_SECONDS,
    clock: Callable[[], float] = time.process_time,
) -> list[Finding]:
    """Findings of the compiled rules over ``objects``: one per failing or erroring object, and a
    pass without an object for each rule that found neither (with how many objects it checked).

    A rule that spends more than ``budget`` seconds of CPU (a pathological expression: nested
    comprehensions over large lists) stops there: one ``error`` result says after how many objects,
    and the other rules still run. A single object's evaluation cannot be interrupted."""
    out: list[Finding] = []
    objects = list(objects)
    for c in compiled:
        checked = bad = 0
        started = clock()
        selected = [o for o in objects if isinstance(o, Mapping) and c.selects(o)]
        for obj in selected:
            if clock() - started > budget:
                reason = (
                    f"evaluation stopped after {budget:g} s of CPU at object {checked} of {len(selected)}: "
                    "the expression is too costly"
                )
                out.append(rule_finding(c.rule, Status.ERROR, reason))
                bad += 1
                break
            checked += 1
            status, reason = evaluate_object(c, obj)
            if status is not Status.PASS:
                bad += 1
                out.append(rule_finding(c.rule, status, reason, object_ref(obj)))
        if not bad:
            reason = f"{checked} {c.rule.kind} object(s) checked, none violates the rule"
            out.append(rule_finding(c.rule, Status.PASS, reason))
    return out
