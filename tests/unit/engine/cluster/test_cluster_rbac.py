"""The RBAC resolver: rules x bindings → subjects.

Cases: "*" in apiGroups, resources and verbs; subresources (res/*, */sub, exact); resourceNames
narrow a grant and never grant create; aggregated ClusterRoles (recursive, cycle-safe); a
RoleBinding grants only in its namespace and may refer to a ClusterRole; a ServiceAccount subject
without a namespace takes the binding's; a binding to a missing role grants nothing; all_of needs
every permission in one scope.
"""

from __future__ import annotations

from cluster_builders import cluster_role, crb, group, rb, role, rule, sa, user

from plumbob.benchmarks.rules import Permission
from plumbob.engine.cluster import Inventory
from plumbob.engine.cluster.inventory import PolicyRule
from plumbob.engine.cluster.rbac import RbacResolver, rule_allows


def who(objects: list[dict[str, object]], group_: str, resource: str, verb: str) -> set[str]:
    resolver = RbacResolver(Inventory.build(objects))
    perm = Permission(api_group=group_, resources=[resource], verbs=[verb])
    return {f"{g.subject}@{g.namespace or '*'}" for g in resolver.grants(perm)}


def test_wildcards_match_anything() -> None:
    r = PolicyRule(("*",), ("*",), ("*",))
    assert rule_allows(r, "apps", "deployments", "delete")
    assert not rule_allows(PolicyRule(("",), ("pods",), ("get",)), "", "pods", "create")


def test_subresources() -> None:
    assert rule_allows(PolicyRule(("",), ("nodes/*",), ("get",)), "", "nodes/proxy", "get")
    assert rule_allows(PolicyRule(("",), ("*/proxy",), ("get",)), "", "nodes/proxy", "get")
    assert rule_allows(PolicyRule(("",), ("*",), ("get",)), "", "nodes/proxy", "get")
    assert not rule_allows(PolicyRule(("",), ("nodes",), ("get",)), "", "nodes/proxy", "get")


def test_resource_names_narrow_and_never_grant_create() -> None:
    named = PolicyRule(("",), ("secrets",), ("get", "create", "list"), ("one",))
    assert rule_allows(named, "", "secrets", "get")
    assert not rule_allows(named, "", "secrets", "create")
    assert not rule_allows(named, "", "secrets", "list")


def test_aggregated_cluster_roles_carry_the_rules_of_the_roles_they_select() -> None:
    objects = [
        cluster_role("agg", aggregate=[{"matchLabels": {"rbac.example/agg": "true"}}]),
        cluster_role("part", rule([""], ["secrets"], ["list"]), labels={"rbac.example/agg": "true"}),
        cluster_role(
            "loop",
            labels={"rbac.example/agg": "true"},
            aggregate=[{"matchLabels": {"rbac.example/agg": "true"}}],
        ),
        crb("b", "agg", user("ann")),
    ]
    assert who(objects, "", "secrets", "list") == {"User ann@*"}


def test_role_bindings_grant_in_their_namespace_only() -> None:
    objects = [
        role("r", "team", rule([""], ["pods"], ["create"])),
        rb("rb", "team", "Role", "r", sa("ci", "team"), {"kind": "ServiceAccount", "name": "bot"}),
        cluster_role("c", rule([""], ["pods"], ["create"])),
        rb("rb2", "other", "ClusterRole", "c", group("devs")),
        crb("dangling", "missing", user("ghost")),
    ]
    assert who(objects, "", "pods", "create") == {
        "ServiceAccount team/ci@team",
        "ServiceAccount team/bot@team",
        "Group devs@other",
    }


def test_all_of_needs_every_permission_in_one_scope() -> None:
    approve = Permission(
        api_group="certificates.k8s.io", resources=["certificatesigningrequests/approval"], verbs=["update"]
    )
    sign = Permission(api_group="certificates.k8s.io", resources=["signers"], verbs=["approve"])
    objects = [
        cluster_role("a", rule(["certificates.k8s.io"], ["certificatesigningrequests/approval"], ["update"])),
        cluster_role("s", rule(["certificates.k8s.io"], ["signers"], ["approve"])),
        crb("a1", "a", user("both")),
        crb("s1", "s", user("both")),
        crb("a2", "a", user("half")),
        cluster_role("all", rule(["*"], ["*"], ["*"])),
        crb("full", "all", user("both")),
    ]
    resolver = RbacResolver(Inventory.build(objects))
    chains = list(resolver.grants_all([approve, sign]))
    assert [(str(c[0].subject), [g.binding.meta.name for g in c]) for c in chains] == [
        ("User both", ["a1", "s1"]),
        ("User both", ["full", "full"]),  # each binding taking part is named
    ]
