"""Checks over objects other than pods (CIS 5.1.3, 5.1.5, 5.3.2, 5.6.4): inventory in, violations out."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from plumbob.benchmarks.rules import ObjectName, ObjectsCheck
from plumbob.engine.cluster.holders import Violation
from plumbob.engine.cluster.rbac import RbacResolver
from plumbob.engine.findings import Evidence, Source

AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"


def wildcard_roles(resolver: RbacResolver, ignore: Sequence[ObjectName]) -> list[Violation]:
    """Roles and ClusterRoles whose own rules have "*" in apiGroups, resources or verbs."""
    out = []
    for role in resolver.inventory.roles.values():
        evidence = []
        for i, rule in enumerate(role.rules):
            fields = [
                name
                for name, values in (
                    ("apiGroups", rule.api_groups),
                    ("resources", rule.resources),
                    ("verbs", rule.verbs),
                )
                if "*" in values
            ]
            if fields:
                evidence.append(
                    Evidence(
                        subject=f"{role.meta.ref}",
                        source=Source.API,
                        location=f"rules[{i}] ({', '.join(fields)})",
                        found=str(rule),
                        expected="explicit apiGroups, resources and verbs",
                    )
                )
        if evidence:
            autoupdate = role.meta.annotations.get(AUTOUPDATE) == "true"
            note = " (kept current by the API server: autoupdate annotation)" if autoupdate else ""
            out.append(
                Violation(
                    role.meta.ref,
                    tuple(evidence),
                    role=role.meta.name,
                    message=f"{role.meta.ref} uses wildcards{note}",
                )
            )
    return out


def used_default_service_accounts(resolver: RbacResolver, ignore: Sequence[ObjectName]) -> list[Violation]:
    """Default ServiceAccounts that mount their token by default, and bindings that grant them rights."""
    out = []
    for sa in resolver.inventory.service_accounts.values():
        if sa.meta.name == "default" and sa.automount is not False:
            found = "unset (true)" if sa.automount is None else "true"
            out.append(
                Violation(
                    sa.meta.ref,
                    (
                        Evidence(
                            subject=str(sa.meta.ref),
                            source=Source.API,
                            location="automountServiceAccountToken",
                            found=found,
                            expected="false",
                        ),
                    ),
                    message=f"{sa.meta.ref} mounts its token into every pod that does not opt out",
                )
            )
    for binding, role, _ in resolver.bound():
        for subject in binding.subjects:
            if subject.kind == "ServiceAccount" and subject.name == "default":
                out.append(
                    Violation(
                        binding.meta.ref,
                        (
                            Evidence(
                                subject=str(subject),
                                source=Source.API,
                                location=f"{binding.meta.ref} → {role.meta.ref}",
                                found=f"bound to {role.meta.ref}",
                                expected="no role bound to a default service account",
                            ),
                        ),
                        subject=subject,
                        binding=binding.meta.name,
                        role=role.meta.name,
                        message=f"{subject} is granted {role.meta.ref} by {binding.meta.ref}",
                    )
                )
    return out


def namespaces_without_network_policy(
    resolver: RbacResolver, ignore: Sequence[ObjectName]
) -> list[Violation]:
    inventory = resolver.inventory
    covered = {np.namespace for np in inventory.network_policies.values()}
    return [
        Violation(
            meta.ref,
            (
                Evidence(
                    subject=str(meta.ref),
                    source=Source.API,
                    location="NetworkPolicy objects in the namespace",
                    found="none",
                    expected="at least one",
                ),
            ),
            message=f"namespace {name} has no NetworkPolicy",
        )
        for name, meta in sorted(inventory.namespaces.items())
        if name not in covered
    ]


def default_namespace_objects(resolver: RbacResolver, ignore: Sequence[ObjectName]) -> list[Violation]:
    skip = {(o.kind, o.name) for o in ignore}
    return [
        Violation(
            meta.ref,
            (
                Evidence(
                    subject=str(meta.ref),
                    source=Source.API,
                    location="namespace default",
                    found=meta.ref.kind,
                ),
            ),
            message=f"{meta.ref} lives in the default namespace",
        )
        for meta in resolver.inventory.others_in("default")
        if (meta.ref.kind, meta.name) not in skip
    ]


OBJECTS_CHECKS: dict[ObjectsCheck, Callable[[RbacResolver, Sequence[ObjectName]], list[Violation]]] = {
    ObjectsCheck.ROLE_WILDCARDS: wildcard_roles,
    ObjectsCheck.DEFAULT_SERVICE_ACCOUNTS: used_default_service_accounts,
    ObjectsCheck.NAMESPACES_WITHOUT_NETWORK_POLICY: namespaces_without_network_policy,
    ObjectsCheck.DEFAULT_NAMESPACE_USED: default_namespace_objects,
}
