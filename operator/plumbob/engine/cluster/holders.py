"""Violations, and which of them belong to expected holders.

A :class:`Violation` is one object (or one subject through one binding) that does what a rule
looks for. Some are expected: the built-in cluster-admin binding, ``system:`` controllers,
kube-system add-ons. The benchmark lists them as
:class:`~plumbob.benchmarks.rules.ExpectedHolder` data; a profile may replace the list. An
expected violation is reported with the entry's reason instead of failing, never dropped, and a
subject named in ``never_expected`` (broad groups such as ``system:authenticated``) is never
expected, whatever entry matches.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from plumbob.benchmarks.rules import ExpectedHolder
from plumbob.engine.cluster.inventory import Subject
from plumbob.engine.findings import Evidence, ObjectRef


@dataclass(frozen=True)
class Violation:
    resource: ObjectRef
    evidence: tuple[Evidence, ...]
    subject: Subject | None = None
    binding: str | None = None
    role: str | None = None
    message: str = field(default="")

    @property
    def namespace(self) -> str | None:
        return self.resource.namespace


def _glob(pattern: str | None, value: str | None) -> bool:
    return pattern is None or (value is not None and fnmatch.fnmatchcase(value, pattern))


def holder_matches(entry: ExpectedHolder, rule_id: str, v: Violation) -> bool:
    if not any(fnmatch.fnmatchcase(rule_id, p) for p in entry.rules):
        return False
    subject = v.subject
    if entry.subject_kind is not None and (subject is None or subject.kind != entry.subject_kind):
        return False
    if entry.subject is not None and (subject is None or not _glob(entry.subject, subject.key)):
        return False
    return (
        _glob(entry.binding, v.binding)
        and _glob(entry.role, v.role if v.role is not None else None)
        and _glob(entry.namespace, v.namespace)
    )


@dataclass(frozen=True)
class Holders:
    entries: Sequence[ExpectedHolder] = ()
    never: frozenset[str] = frozenset()

    @classmethod
    def of(cls, entries: Iterable[ExpectedHolder], never: Iterable[str]) -> Holders:
        return cls(tuple(entries), frozenset(never))

    def expected(self, rule_id: str, v: Violation) -> str | None:
        """The reason ``v`` is expected for ``rule_id``, or ``None`` when it fails the rule."""
        if v.subject is not None and v.subject.name in self.never:
            return None
        for entry in self.entries:
            if holder_matches(entry, rule_id, v):
                return entry.reason
        return None
