"""Rules x node facts → findings. Pure: no I/O, no clock.

For each rule, in order:

0. a rule the platform hands to the provider (hosted control planes) → not-applicable, "managed by
   the provider", with the link to the provider's responsibility statement; a rule the platform
   says cannot apply (no static pod manifests in k3s…) → not-applicable with that reason;
1. a cluster-level rule → not-applicable: the operator evaluates it from the Kubernetes API;
2. a rule whose targets miss every role of this node → not-applicable, naming the roles
   (for etcd rules: etcd is not local to this node);
3. a rule without an audit → manual, with its guidance;
4. otherwise the audit is evaluated (:mod:`plumbob.engine.node.checks`); a manual (unscored) rule that
   has an audit stays manual, its automated result given as a hint in the reason, unless the
   audit found the rule not applicable.
"""

from __future__ import annotations

from collections.abc import Iterable

from plumbob.benchmarks.rules import Audit, Component, Rule, SettingAudit, Target
from plumbob.engine.findings import PROVIDER_MANAGED_REASON, Evidence, Finding, Source, Status, finding_for
from plumbob.engine.node.checks import Context, Outcome, audit_outcome, wanted_paths
from plumbob.engine.node.components import COMPONENTS
from plumbob.engine.node.facts import NodeFacts

NODE_ROLES = (Target.CONTROL_PLANE, Target.ETCD, Target.WORKER)


def node_roles(facts: NodeFacts) -> frozenset[Target]:
    """Roles this node plays, from the components running on it or installed as static pods."""
    components = {p.component for p in facts.processes} | {m.component for m in facts.manifests}
    return frozenset(COMPONENTS[c].role for c in components)


def _role_reason(rule: Rule, roles: frozenset[Target]) -> str:
    if rule.targets == [Target.ETCD]:
        return "etcd is not local to this node (no etcd process or manifest): the rule concerns etcd members"
    wanted = ", ".join(t.value for t in rule.targets)
    have = ", ".join(sorted(r.value for r in roles)) or "none (no Kubernetes component found)"
    return f"the rule targets {wanted}; this node's roles: {have}"


def evaluate_rule(rule: Rule, facts: NodeFacts, roles: frozenset[Target]) -> Finding:
    def finding(status: Status, reason: str | None, outcome: Outcome | None = None) -> Finding:
        return finding_for(rule, status, reason, outcome.evidence if outcome else ())

    if rule.provider_managed is not None:
        return Finding(
            rule_id=rule.id,
            title=rule.title,
            severity=rule.severity.value,
            scored=rule.scored,
            status=Status.NOT_APPLICABLE,
            reason=f"{PROVIDER_MANAGED_REASON} (see {rule.provider_managed})",
            evidence=(
                Evidence(
                    subject="the provider's responsibility statement",
                    source=Source.NONE,
                    location=rule.provider_managed,
                ),
            ),
            provider_managed=True,
        )
    if rule.not_applicable is not None:
        return finding(Status.NOT_APPLICABLE, rule.not_applicable)

    node_targets = [t for t in rule.targets if t is not Target.CLUSTER]
    if not node_targets:
        return finding(
            Status.NOT_APPLICABLE, "cluster-level rule: the operator evaluates it from the Kubernetes API"
        )
    if roles.isdisjoint(node_targets):
        return finding(Status.NOT_APPLICABLE, _role_reason(rule, roles))
    if rule.audit is None:
        return finding(Status.MANUAL, rule.guidance)
    outcome = audit_outcome(rule.audit, facts, Context(missing_file=rule.missing_file))
    if rule.scored or outcome.status is Status.NOT_APPLICABLE:
        return finding(outcome.status, outcome.reason, outcome)
    hint = f"automated hint: {outcome.status.value}" + (f" ({outcome.reason})" if outcome.reason else "")
    guidance = f"{rule.guidance} — {hint}" if rule.guidance else hint
    return finding(Status.MANUAL, guidance, outcome)


def evaluate(rules: Iterable[Rule], facts: NodeFacts, roles: Iterable[Target] | None = None) -> list[Finding]:
    """Evaluate ``rules`` on a node; ``roles`` default to :func:`node_roles` of the facts."""
    role_set = frozenset(roles) if roles is not None else node_roles(facts)
    return [evaluate_rule(rule, facts, role_set) for rule in rules]


# ---- what the agent should gather for a set of rules ---------------------------------------------


def _audits(audit: Audit) -> Iterable[Audit]:
    yield audit
    for sub in getattr(audit, "audits", ()):
        yield from _audits(sub)


def components_with_settings(rules: Iterable[Rule]) -> frozenset[Component]:
    """Components whose config files the rules read (setting audits with a config key)."""
    out: set[Component] = set()
    for rule in rules:
        if rule.audit is None:
            continue
        for a in _audits(rule.audit):
            if isinstance(a, SettingAudit) and a.config_key:
                out.add(a.component)
            file_ref = getattr(a, "file", None)
            if file_ref is not None and file_ref.config_key and file_ref.component is not None:
                out.add(file_ref.component)
    return frozenset(out)


def documents_wanted(rules: Iterable[Rule]) -> frozenset[tuple[Component, str]]:
    """(component, flag) of the structured files the rules' settings may be read from."""
    out: set[tuple[Component, str]] = set()
    for rule in rules:
        if rule.audit is None:
            continue
        for a in _audits(rule.audit):
            if isinstance(a, SettingAudit) and a.structured is not None:
                out.add((a.component, a.structured.flag))
    return frozenset(out)


def files_wanted(rules: Iterable[Rule], facts: NodeFacts) -> list[tuple[str, bool]]:
    """Paths (or globs) to stat for the rules' file audits, given the processes and configs found."""
    out: dict[tuple[str, bool], None] = {}
    for rule in rules:
        if rule.audit is None:
            continue
        for a in _audits(rule.audit):
            file_ref = getattr(a, "file", None)
            if file_ref is not None:
                out.update(dict.fromkeys(wanted_paths(file_ref, facts)))
    return list(out)
