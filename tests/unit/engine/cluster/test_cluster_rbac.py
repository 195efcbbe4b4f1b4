"""The RBAC resolver: rules x bindings → subjects.

Cases: "*" in apiGroups, resources and verbs; subresources (res/*, */sub, exact); resourceNames
narrow a grant and never grant create; aggregated ClusterRoles (recursive, cycle-safe); a
RoleBinding grants only in its namespace and may refer to a ClusterRole; a ServiceAccount subject
without a namespace takes the binding's; a binding to a missing role grants nothing; all_of needs
every permission in one scope; a resolver kept with its inventory resolves again only the
bindings a change concerns.
"""

from __future__ import annotations

from typing import Any

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


def test_a_kept_resolver_resolves_again_only_the_bindings_a_change_concerns(monkeypatch: Any) -> None:
    secrets = Permission(api_group="", resources=["secrets"], verbs=["get"])
    objects = [cluster_role("reader", rule([""], ["secrets"], ["get"]))]
    objects += [rb(f"b{i}", f"ns{i}", "ClusterRole", "reader", user(f"u{i}")) for i in range(50)]
    objects += [crb(f"c{i}", "other", user(f"v{i}")) for i in range(50)]
    inv = Inventory.build(objects)
    resolver = RbacResolver.of(inv)
    assert len(list(resolver.grants(secrets))) == 50
    asked: list[str] = []
    answer = RbacResolver._answer

    def counted(self: RbacResolver, question: Any, binding: Any) -> Any:
        asked.append(binding.meta.name)
        return answer(self, question, binding)

    monkeypatch.setattr(RbacResolver, "_answer", counted)
    inv.put(rb("b7", "ns7", "ClusterRole", "reader", user("u7"), user("extra")))
    assert RbacResolver.of(inv) is resolver
    assert sum(1 for g in RbacResolver.of(inv).grants(secrets) if g.binding.meta.name == "b7") == 2
    assert asked == ["b7"], "one binding changed: only it is resolved again"
    asked.clear()
    inv.put(cluster_role("other", rule([""], ["secrets"], ["get"])))  # the 50 bindings to it now grant
    assert len(list(RbacResolver.of(inv).grants(secrets))) == 101
    assert sorted(asked) == sorted(f"c{i}" for i in range(50)), "only the bindings to the changed role"
    asked.clear()
    inv.put(cluster_role("all", aggregate=[{"matchLabels": {"agg": "yes"}}]))
    inv.put(crb("to-all", "all", user("w")))
    assert not [g for g in RbacResolver.of(inv).grants(secrets) if g.binding.meta.name == "to-all"]
    inv.put(cluster_role("more", rule([""], ["secrets"], ["get"]), labels={"agg": "yes"}))
    assert [
        str(g.subject) for g in RbacResolver.of(inv).grants(secrets) if g.binding.meta.name == "to-all"
    ] == ["User w"]
