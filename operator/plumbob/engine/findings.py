"""What an audit says about one rule: a :class:`Finding` with its :class:`Status` and :class:`Evidence`.

These dataclasses are the engine's output and the shape the API models reuse, so they stay small,
frozen and JSON-friendly (plain strings, no paths or enums that do not serialise).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, is_dataclass
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plumbob.benchmarks.rules import Rule


class Status(StrEnum):
    """Outcome of one rule on one node.

    ``manual``: a person must judge (the finding carries guidance, and any automated hint).
    ``not-applicable``: the rule does not concern this node, always with the reason why.
    ``error``: the rule could not be evaluated (unreadable or malformed input), with the reason.
    """

    PASS = "pass"  # noqa: S105 - a status, not a password
    FAIL = "fail"
    MANUAL = "manual"
    NOT_APPLICABLE = "not-applicable"
    ERROR = "error"


PROVIDER_MANAGED_REASON = "managed by the provider"


class Source(StrEnum):
    """Where a value came from."""

    FLAG = "flag"  # the running process's command line
    MANIFEST = "manifest"  # a static pod manifest's command line (component not running)
    CONFIG = "config"  # the component's config file
    DEFAULT = "default"  # the component's documented default (nothing set it)
    UNSET = "unset"  # nothing set it and there is no documented default
    FILE = "file"  # the file system (mode, owner, presence)
    API = "api"  # an object read from the Kubernetes API (cluster-level rules)
    NONE = "none"  # nothing could be read


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """One observation behind a finding: what was read, where, what was found and expected."""

    subject: str  # what was read, e.g. 'kube-apiserver --profiling' or a file path
    source: Source
    location: str | None = None  # pid and flag, or file path and key
    found: str | None = None
    expected: str | None = None


@dataclass(frozen=True, kw_only=True)
class ObjectRef:
    """The API object a cluster-level finding is about."""

    api_version: str  # 'v1', 'apps/v1', 'rbac.authorization.k8s.io/v1'…
    kind: str
    namespace: str | None = None
    name: str

    @property
    def api_group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def __hash__(self) -> int:  # dataclass keeps an explicit one: kept, as a reference is a key everywhere
        return self._hash

    @cached_property
    def _hash(self) -> int:
        return hash((self.api_version, self.kind, self.namespace, self.name))

    @cached_property
    def order(self) -> tuple[str, str, str]:
        """The order findings about objects are listed in: namespace, kind, name."""
        return (self.namespace or "", self.kind, self.name)

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


@dataclass(frozen=True, kw_only=True)
class Finding:
    rule_id: str
    title: str
    severity: str
    scored: bool
    status: Status
    reason: str | None = None  # why: for fail, manual, n/a and error results
    evidence: tuple[Evidence, ...] = ()
    # not-applicable because the provider of a hosted control plane owns the control (attested,
    # not tested); the reason says "managed by the provider" and links the provider's statement
    provider_managed: bool = False
    resource: ObjectRef | None = None  # the object at fault (cluster-level rules)
    # why the object legitimately holds what the rule looks for (an expected holder from the
    # benchmark's data or the profile): such a finding is listed, not failed
    expected: str | None = None


def finding_for(
    rule: Rule,
    status: Status,
    reason: str | None,
    evidence: Iterable[Evidence] = (),
    *,
    resource: ObjectRef | None = None,
    expected: str | None = None,
) -> Finding:
    """A finding of ``rule`` (its id, title, severity and scoring carried over)."""
    return Finding(
        rule_id=rule.id,
        title=rule.title,
        severity=rule.severity.value,
        scored=rule.scored,
        status=status,
        reason=reason,
        evidence=tuple(evidence),
        resource=resource,
        expected=expected,
    )


@dataclass(frozen=True, kw_only=True)
class AuditResult:
    """The findings of one node audit, with what was audited."""

    benchmark: str
    benchmark_version: str
    node: str | None = None
    roles: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """Every field as JSON data (enums as their values)."""
        return _plain(self)  # type: ignore[no-any-return]  # a dataclass becomes a dict

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for f in self.findings:
            out[f.status.value] += 1
        return out

    def coverage(self) -> dict[str, int]:
        """What an auditor asks first: how many controls were tested here, how many the provider
        attests (hosted control planes), how many a person must judge, and how many do not apply."""
        out = {"tested": 0, "provider-managed": 0, "manual": 0, "not-applicable": 0}
        for f in self.findings:
            if f.provider_managed:
                out["provider-managed"] += 1
            elif f.status in (Status.PASS, Status.FAIL, Status.ERROR):
                out["tested"] += 1
            else:
                out[f.status.value] += 1
        return out

    def failed_scored(self) -> list[Finding]:
        return [f for f in self.findings if f.scored and f.status is Status.FAIL]

    def errored_scored(self) -> list[Finding]:
        return [f for f in self.findings if f.scored and f.status is Status.ERROR]


_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}  # per class: its fields, None for a leaf


def _plain(value: Any) -> Any:
    """``dataclasses.asdict`` for these frozen, acyclic dataclasses, without its deep copies and
    with each class looked at once (a node audit's JSON: about 2 ms with ``asdict``, 0.3 ms
    this way); tuples become lists."""
    kind = type(value)
    if kind is tuple:
        return [_plain(v) for v in value]
    try:
        names = _FIELD_NAMES[kind]
    except KeyError:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(value)) if is_dataclass(value) else None
    if names is None:
        return value
    return {name: _plain(getattr(value, name)) for name in names}
