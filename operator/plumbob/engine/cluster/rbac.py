"""Who can do what: RBAC rules x bindings → subjects, the one resolver behind every "who can" rule.

A :class:`Grant` says that ``subject`` may do something because ``binding`` refers to ``role``,
whose ``rule`` matches; ``namespace`` is where the grant holds (``None``: cluster-wide, through a
ClusterRoleBinding). Matching follows the API server's RBAC authorizer:

- ``*`` in apiGroups, resources or verbs matches anything; a resource ``res/*`` matches every
  subresource of ``res`` and ``*/sub`` the subresource ``sub`` of every resource;
- a rule with resourceNames grants only on the named objects, so it never grants ``create`` (a
  create request carries no name) nor a collection-wide ``list``/``watch``; such grants are
  returned with the names, for the rule to judge;
- an aggregated ClusterRole holds the rules of every ClusterRole its selectors match (recursively,
  cycles ignored) in addition to the rules stored in it;
- a binding to a missing role grants nothing.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass

from plumbob.benchmarks.rules import Permission
from plumbob.engine.cluster.inventory import Binding, Inventory, Meta, PolicyRule, Role, Subject
from plumbob.engine.findings import ObjectRef

RBAC_V1 = "rbac.authorization.k8s.io/v1"
_NAMELESS_VERBS = frozenset({"create", "list", "watch", "deletecollection"})


@dataclass(frozen=True)
class Grant:
    subject: Subject
    binding: Binding
    role: Role
    rule: PolicyRule
    namespace: str | None

    @property
    def scope(self) -> str:
        return f"namespace {self.namespace}" if self.namespace else "cluster-wide"


def _resource_matches(pattern: str, resource: str) -> bool:
    if pattern in ("*", resource):
        return True
    base, _, sub = resource.partition("/")
    if pattern == f"{base}/*" and sub:
        return True
    return bool(sub) and pattern == f"*/{sub}"


def rule_allows(rule: PolicyRule, api_group: str, resource: str, verb: str) -> bool:
    """Does ``rule`` allow ``verb`` on ``resource`` of ``api_group`` (on some object at least)?"""
    if not ("*" in rule.verbs or verb in rule.verbs):
        return False
    if not ("*" in rule.api_groups or api_group in rule.api_groups):
        return False
    if not any(_resource_matches(p, resource) for p in rule.resources):
        return False
    return not (rule.resource_names and verb in _NAMELESS_VERBS)


def rule_grants(rule: PolicyRule, permission: Permission) -> bool:
    return any(
        rule_allows(rule, permission.api_group, resource, verb)
        for resource in permission.resources
        for verb in permission.verbs
    )


Question = Permission | str  # a permission, or the name of a ClusterRole: who is bound to it


def _key(question: Question) -> Hashable:
    if isinstance(question, str):
        return ("bound-to", question)
    return (question.api_group, tuple(question.resources), tuple(question.verbs))


@dataclass
class _Table:
    """What one question gets from each binding."""

    question: Question
    per_binding: dict[ObjectRef, tuple[Grant, ...]]
    version: int = 0  # moves when some binding's grants changed
    flat: tuple[Grant, ...] | None = None  # every grant, in the inventory's order of bindings


class RbacResolver:
    """Resolves the roles and bindings of one :class:`Inventory`, kept with it between evaluations
    (:meth:`of`): each question's grants are kept per binding, and a change of a binding, or of
    a role, resolves again only the bindings it concerns (those referring to the role; for a
    ClusterRole, also those referring to an aggregated ClusterRole, whose rules it may change).
    So the subjects a change affects are resolved again, not every subject."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._effective: dict[tuple[str, str | None, str], tuple[PolicyRule, ...]] = {}
        self._tables: dict[Hashable, _Table] = {}
        inventory.take_rbac_changes()  # all is resolved afresh from here

    @classmethod
    def of(cls, inventory: Inventory) -> RbacResolver:
        """The resolver kept with ``inventory``, brought up to date with its changes."""
        kept = inventory.kept(("rbac-resolver",))
        resolver = kept.get("resolver")
        if resolver is None:
            resolver = kept["resolver"] = cls(inventory)
        resolver._sync()
        return resolver

    def _sync(self) -> None:
        changes = self.inventory.take_rbac_changes()
        if changes is None:
            self._effective.clear()
            self._tables.clear()
            return
        if not changes:
            return
        roles = {
            (r.kind, r.namespace if r.kind == "Role" else None, r.name)
            for r in changes
            if r.kind in ("Role", "ClusterRole")
        }
        if any(kind == "ClusterRole" for kind, _, _ in roles):  # an aggregated role's rules may change
            roles |= {
                ("ClusterRole", None, name)
                for (scope, name), role in self.inventory.roles.items()
                if scope is None and role.aggregation
            }
        for key in roles:
            self._effective.pop(key, None)
        bindings = {r for r in changes if r.kind.endswith("Binding")}
        for ref, binding in self.inventory.bindings.items():
            namespace = binding.meta.namespace if binding.role_kind == "Role" else None
            if (binding.role_kind, namespace, binding.role_name) in roles:
                bindings.add(ref)
        for table in self._tables.values():
            changed = False
            for ref in bindings:
                held = self.inventory.bindings.get(ref)
                grants = () if held is None else self._answer(table.question, held)
                if table.per_binding.get(ref, ()) != grants:
                    changed = True
                if grants:
                    table.per_binding[ref] = grants
                else:
                    table.per_binding.pop(ref, None)
            if changed:
                table.version += 1
                table.flat = None

    def effective_rules(self, role: Role) -> tuple[PolicyRule, ...]:
        """The role's rules, with those of aggregated ClusterRoles added."""
        key = (role.meta.ref.kind, role.meta.namespace, role.meta.name)
        if key not in self._effective:
            self._effective[key] = tuple(self._rules(role, frozenset()))
        return self._effective[key]

    def _rules(self, role: Role, seen: frozenset[tuple[str | None, str]]) -> Iterator[PolicyRule]:
        yield from role.rules
        if not role.aggregation:
            return
        seen = seen | {(None, role.meta.name)}
        for (scope, name), other in self.inventory.roles.items():
            if scope is not None or (None, name) in seen:
                continue
            if any(sel.matches(other.meta.labels) for sel in role.aggregation):
                yield from self._rules(other, seen)

    def _target(self, binding: Binding) -> tuple[Role, str | None] | None:
        """The role ``binding`` refers to and the namespace it is limited to (None: none exists)."""
        namespace = binding.meta.namespace if binding.meta.ref.kind == "RoleBinding" else None
        if binding.role_kind == "Role" and namespace is None:
            return None  # a ClusterRoleBinding cannot refer to a Role
        role = self.inventory.role(binding.role_kind, binding.role_name, namespace)
        return None if role is None else (role, namespace)

    def bound(self) -> Iterator[tuple[Binding, Role, str | None]]:
        """Every binding with the role it refers to and the namespace it is limited to."""
        for binding in self.inventory.bindings.values():
            target = self._target(binding)
            if target is not None:
                yield binding, *target

    def _answer(self, question: Question, binding: Binding) -> tuple[Grant, ...]:
        """What one binding grants for ``question``."""
        if isinstance(question, str):
            return self._bound_to(question, binding)
        target = self._target(binding)
        if target is None:
            return ()
        role, namespace = target
        rule = next((r for r in self.effective_rules(role) if rule_grants(r, question)), None)
        if rule is None:
            return ()
        return tuple(Grant(subject, binding, role, rule, namespace) for subject in binding.subjects)

    def _bound_to(self, cluster_role: str, binding: Binding) -> tuple[Grant, ...]:
        if binding.role_kind != "ClusterRole" or binding.role_name != cluster_role:
            return ()
        role = self.inventory.role("ClusterRole", cluster_role, None) or Role(
            Meta(ObjectRef(api_version=RBAC_V1, kind="ClusterRole", name=cluster_role), {}, {}, ()), ()
        )
        rules = self.effective_rules(role)
        rule = rules[0] if rules else PolicyRule((), (), ())
        namespace = binding.meta.namespace if binding.meta.ref.kind == "RoleBinding" else None
        return tuple(Grant(subject, binding, role, rule, namespace) for subject in binding.subjects)

    def _table(self, question: Question) -> _Table:
        table = self._tables.get(_key(question))
        if table is None:
            per_binding = {}
            for ref, binding in self.inventory.bindings.items():
                grants = self._answer(question, binding)
                if grants:
                    per_binding[ref] = grants
            table = self._tables[_key(question)] = _Table(question, per_binding)
        if table.flat is None:
            held = table.per_binding
            table.flat = tuple(g for ref in self.inventory.bindings if ref in held for g in held[ref])
        return table

    def stamp(self, questions: Iterable[Question]) -> tuple[int, ...]:
        """The versions of the answers to ``questions``: the same while no grant of theirs changed."""
        return tuple(self._table(q).version for q in questions)

    def grants(self, permission: Permission) -> Iterator[Grant]:
        """Every (subject, binding) granted ``permission``, with the first rule that grants it."""
        yield from self._table(permission).flat or ()

    def bindings_to(self, cluster_role: str) -> Iterator[Grant]:
        """Every (subject, binding) whose binding refers to the ClusterRole ``cluster_role``, whether
        or not the role exists (a binding waiting for its role is a finding too)."""
        yield from self._table(cluster_role).flat or ()

    def grants_all(self, permissions: Iterable[Permission]) -> Iterator[tuple[Grant, ...]]:
        """Subjects granted every one of ``permissions`` in one scope, with one grant per permission.

        A subject counts when, for each permission, some binding grants it cluster-wide or in the
        same namespace (cluster-wide grants combine with any namespace's). One chain is yielded per
        binding that grants the first permission, preferring the same binding for the others, so
        that each binding taking part is named.
        """
        wanted = list(permissions)
        if not wanted:
            return
        per: list[list[Grant]] = [list(self.grants(p)) for p in wanted]

        def pick(grants: list[Grant], first: Grant) -> Grant | None:
            same_scope = [
                g
                for g in grants
                if g.subject == first.subject
                and (g.namespace in (first.namespace, None) or first.namespace is None)
            ]
            same_binding = [g for g in same_scope if g.binding.meta.ref == first.binding.meta.ref]
            candidates = same_binding or same_scope
            return candidates[0] if candidates else None

        seen: set[tuple[object, ...]] = set()
        for first in per[0]:
            key = (first.subject, first.namespace, first.binding.meta.ref)
            if key in seen:
                continue
            seen.add(key)
            chain = [first]
            for grants in per[1:]:
                other = pick(grants, first)
                if other is None:
                    break
                chain.append(other)
            else:
                yield tuple(chain)
