"""Cluster rules x API objects → findings. Pure: no I/O, no clock.

For each rule that targets the cluster:

1. no cluster audit → ``manual`` with the rule's guidance;
2. an evidence audit → ``manual`` with the guidance and the evidence listed (capped);
3. otherwise the audit yields violations (a subject through a binding, a workload, a role, a
   namespace…). Each violation that matches an expected holder is listed as ``pass`` with the
   holder's reason in ``expected``; each other one is a ``fail`` naming the object. A rule
   without failing violations adds one ``pass`` finding without an object. A check that raises
   on one object gives ``error`` for that object, never a crash and never a pass.

Pod Security Standards checks run at one policy version: ``pss_version`` if given (a profile's
pin), else the namespace's ``pod-security.kubernetes.io/enforce-version`` label, else the
cluster's minor version. Their findings carry the namespace's ``pod-security.kubernetes.io/*``
labels as evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from functools import partial

from plumbob.benchmarks.rules import (
    EvidenceAudit,
    EvidenceKind,
    ObjectsAudit,
    ObjectsCheck,
    PodAudit,
    PssAudit,
    RbacAudit,
    Rule,
    Target,
)
from plumbob.engine.cluster.evidence import COLLECTORS, capped
from plumbob.engine.cluster.holders import Holders, Violation
from plumbob.engine.cluster.inventory import Inventory, Workload
from plumbob.engine.cluster.objects_checks import OBJECTS_CHECKS
from plumbob.engine.cluster.pods import POD_CHECKS
from plumbob.engine.cluster.pss import (
    LATEST,
    Version,
    checks_for,
    namespace_pss_labels,
    parse_version,
    pss_violations,
)
from plumbob.engine.cluster.rbac import Grant, Question, RbacResolver
from plumbob.engine.findings import Evidence, Finding, ObjectRef, Source, Status, finding_for


@dataclass(frozen=True)
class ClusterSettings:
    holders: Holders = field(default_factory=Holders)
    cluster_version: Version = LATEST  # the cluster's (major, minor)
    pss_version: Version | None = None  # a pinned policy version; None: per namespace, else cluster


@dataclass(frozen=True)
class _Failed:
    """One object could not be checked."""

    resource: ObjectRef
    message: str


def _grant_violation(grants: tuple[Grant, ...]) -> Violation:
    first = grants[0]
    evidence = tuple(
        Evidence(
            subject=str(g.subject),
            source=Source.API,
            location=f"{g.binding.meta.ref} → {g.role.meta.ref} ({g.scope})",
            found=str(g.rule),
            expected="not granted",
        )
        for g in grants
    )
    roles = ", ".join(sorted({str(g.role.meta.ref) for g in grants}))
    return Violation(
        first.binding.meta.ref,
        evidence,
        subject=first.subject,
        binding=first.binding.meta.name,
        role=first.role.meta.name,
        message=f"{first.subject} is granted this by {first.binding.meta.ref} → {roles} ({first.scope})",
    )


def rbac_violations(audit: RbacAudit, resolver: RbacResolver) -> list[Violation]:
    if audit.any_of:
        seen: dict[tuple[object, ...], Grant] = {}
        for permission in audit.any_of:
            for g in resolver.grants(permission):
                seen.setdefault((g.subject, g.binding.meta.ref), g)
        return [_grant_violation((g,)) for g in seen.values()]
    if audit.all_of:
        return [_grant_violation(chain) for chain in resolver.grants_all(audit.all_of)]
    return [_grant_violation((g,)) for g in resolver.bindings_to(audit.bound_cluster_role or "")]


def _per_workload(
    inventory: Inventory, key: Hashable, check: Callable[[Workload], list[Evidence]]
) -> Iterable[Violation | _Failed]:
    """``check`` on every workload, in reference order; kept in ``inventory`` (as ``key``) for the
    workloads unchanged (the same list while none changed)."""
    return inventory.ordered_results(key, partial(_outcome, check))


def _outcome(check: Callable[[Workload], list[Evidence]], w: Workload) -> Violation | _Failed | None:
    """The workload's violation, if any; an exception is the workload's error, never a pass."""
    try:
        found = check(w)
    except Exception as exc:
        return _Failed(w.meta.ref, f"cannot check {w.meta.ref}: {type(exc).__name__}: {exc}")
    return Violation(w.meta.ref, tuple(found), message=f"{w.meta.ref}: {_summary(found)}") if found else None


def _summary(found: list[Evidence]) -> str:
    first = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return f"{first.location} is {first.found}, expected {first.expected}{more}"


def _pss_violations(
    audit: PssAudit, inventory: Inventory, settings: ClusterSettings
) -> Iterable[Violation | _Failed]:
    """The check at each workload's policy version, with its namespace's labels shown."""

    def check(w: Workload) -> list[Evidence]:
        ns = inventory.namespaces.get(w.meta.namespace or "")
        labels = namespace_pss_labels(ns.labels) if ns else {}
        version = settings.pss_version or parse_version(
            labels.get("pod-security.kubernetes.io/enforce-version"), settings.cluster_version
        )
        if audit.check not in checks_for(audit.level, version):
            return []
        found = pss_violations(audit.check, w, version)
        if found:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "none"
            found.append(
                Evidence(
                    subject=f"Namespace {w.meta.namespace}",
                    source=Source.API,
                    location="labels pod-security.kubernetes.io/*",
                    found=shown,
                    expected=f"policy version v{version[0]}.{version[1]}" if version != LATEST else "latest",
                )
            )
        return found

    key = ("pss", audit.check, audit.level, settings.pss_version, settings.cluster_version)
    return _per_workload(inventory, key, check)


# which groups of kinds the evidence collectors that do not go workload by workload read
_EVIDENCE_READ: dict[EvidenceKind, tuple[str, ...]] = {
    EvidenceKind.SYSTEM_MASTERS: ("rbac",),
    EvidenceKind.ADMISSION_WEBHOOKS: ("webhooks",),
    EvidenceKind.NETWORK_POLICY_PROVIDER: ("workloads", "others"),
}
# which groups of kinds (``inventory.GROUPS``) an objects check reads
_OBJECTS_READ: dict[ObjectsCheck, tuple[str, ...]] = {
    ObjectsCheck.ROLE_WILDCARDS: ("rbac",),
    ObjectsCheck.DEFAULT_SERVICE_ACCOUNTS: ("rbac",),
    ObjectsCheck.NAMESPACES_WITHOUT_NETWORK_POLICY: ("namespaces", "others"),
    ObjectsCheck.DEFAULT_NAMESPACE_USED: ("rbac", "workloads", "others"),
}


def violations(
    rule: Rule, inventory: Inventory, resolver: RbacResolver, settings: ClusterSettings
) -> Iterable[Violation | _Failed]:
    """What ``rule``'s audit finds. Results are kept in ``inventory`` between evaluations: per
    workload until it changes, and whole for the RBAC and objects checks until a kind they read
    changes."""
    audit = rule.cluster_audit
    if isinstance(audit, RbacAudit):
        stamp = resolver.stamp(_questions(audit))
        return inventory.memo(("rbac", repr(audit)), stamp, lambda: rbac_violations(audit, resolver))
    if isinstance(audit, PodAudit):
        return _per_workload(inventory, ("pod", audit.check), POD_CHECKS[audit.check])
    if isinstance(audit, PssAudit):
        return _pss_violations(audit, inventory, settings)
    if isinstance(audit, ObjectsAudit):
        return inventory.memo_groups(
            ("objects", repr(audit)),
            _OBJECTS_READ[audit.check],
            lambda: OBJECTS_CHECKS[audit.check](resolver, audit.ignore),
        )
    raise TypeError(f"rule {rule.id}: not a deciding cluster audit: {audit!r}")


def evaluate_cluster_rule(
    rule: Rule, inventory: Inventory, resolver: RbacResolver, settings: ClusterSettings
) -> list[Finding]:
    audit = rule.cluster_audit
    if audit is None:
        return [finding_for(rule, Status.MANUAL, rule.guidance)]
    key = ("findings", rule.id, repr(audit), repr(settings))
    if isinstance(audit, RbacAudit):  # kept while the grants of its permissions are the same
        stamp = resolver.stamp(_questions(audit))
        return inventory.memo(key, stamp, lambda: _decide(rule, inventory, resolver, settings))
    reads = _reads(audit)
    if reads is not None:  # decided from whole groups of kinds: kept while none of them changes
        return inventory.memo_groups(key, reads, lambda: _decide(rule, inventory, resolver, settings))
    return _decide(rule, inventory, resolver, settings)


def _questions(audit: RbacAudit) -> list[Question]:
    """What an RBAC audit asks the resolver."""
    return [*audit.any_of, *audit.all_of] or [audit.bound_cluster_role or ""]


def _reads(audit: object) -> tuple[str, ...] | None:
    """The groups of kinds (``inventory.GROUPS``) an audit's outcome depends on, when it is not
    decided per workload."""
    if isinstance(audit, RbacAudit):
        return ("rbac",)
    if isinstance(audit, ObjectsAudit):
        return _OBJECTS_READ[audit.check]
    if isinstance(audit, EvidenceAudit):
        return _EVIDENCE_READ.get(audit.collect)
    return None


def _decide(
    rule: Rule, inventory: Inventory, resolver: RbacResolver, settings: ClusterSettings
) -> list[Finding]:
    finding = partial(finding_for, rule)
    audit = rule.cluster_audit
    reads = _reads(audit)  # None: decided workload by workload
    if isinstance(audit, EvidenceAudit):
        gathered = COLLECTORS[audit.collect](inventory) or [
            Evidence(subject=audit.collect.value, source=Source.API, found="nothing found")
        ]
        return [finding(Status.MANUAL, rule.guidance, capped(gathered))]
    found = violations(rule, inventory, resolver, settings)
    if reads is not None:  # kept whole by evaluate_cluster_rule while the kinds it reads are unchanged
        return _findings(rule, settings, found, {})
    # Decided workload by workload: the same list of violations (no workload's outcome changed)
    # gives the same findings, and a violation kept for an unchanged workload, the same object,
    # keeps its finding (an expected-holder match, a capped evidence list).
    memory = inventory.kept(("decided", rule.id, repr(audit), repr(settings)))
    last = memory.get("list")
    if last is not None and last[0] is found:
        return last[1]  # type: ignore[no-any-return]
    each: dict[ObjectRef, tuple[Violation | _Failed, Finding]] = memory.setdefault("each", {})
    out = _findings(rule, settings, found, each)
    memory["list"] = (found, out)
    return out


def _findings(
    rule: Rule,
    settings: ClusterSettings,
    found: Iterable[Violation | _Failed],
    each: dict[ObjectRef, tuple[Violation | _Failed, Finding]],
) -> list[Finding]:
    """The findings of ``rule`` from what its audit found; ``each`` is kept, by object, from the
    last time (a finding whose violation is the same object is taken from it), and updated."""
    finding = partial(finding_for, rule)
    out: list[Finding] = []
    for v in found:
        hit = each.get(v.resource)
        if hit is not None and hit[0] is v:
            out.append(hit[1])
            continue
        if isinstance(v, _Failed):
            out.append(finding(Status.ERROR, v.message, resource=v.resource))
        else:
            reason = settings.holders.expected(rule.id, v)
            evidence = capped(list(v.evidence))
            status = Status.FAIL if reason is None else Status.PASS
            out.append(finding(status, v.message, evidence, resource=v.resource, expected=reason))
        each[v.resource] = (v, out[-1])
    if len(each) > len(out):  # workloads whose violation went
        for gone in each.keys() - {f.resource for f in out}:
            del each[gone]
    failed = sum(1 for f in out if f.status is Status.FAIL)
    errors = sum(1 for f in out if f.status is Status.ERROR)
    if not failed and not errors:
        expected = sum(1 for f in out if f.expected is not None)
        listed = f"; {expected} expected holder(s) listed" if expected else ""
        out.insert(0, finding(Status.PASS, f"no violation found{listed}"))
    return out


def evaluate_cluster(
    rules: Iterable[Rule], inventory: Inventory, settings: ClusterSettings | None = None
) -> list[Finding]:
    """Evaluate the cluster-level ``rules`` (others are skipped) on one inventory of API objects."""
    resolver = RbacResolver.of(inventory)
    chosen = settings or ClusterSettings()
    out: list[Finding] = []
    for rule in rules:
        if rule.targets == [Target.CLUSTER]:
            out.extend(evaluate_cluster_rule(rule, inventory, resolver, chosen))
    return out
