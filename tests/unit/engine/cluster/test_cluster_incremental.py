"""An inventory kept between evaluations gives the same findings as one built afresh.

The operator keeps one inventory and brings it up to date object by object (``put``, ``remove``);
the evaluation then computes again only what a change can affect. These tests drive random
sequences of changes that reach every dependency the kept results have (a Pod's own spec, its
controller coming and going, its namespace's pod-security labels, its namespace's service
accounts, RBAC objects, network policies, the default namespace) and compare, after each step,
the findings of the kept inventory with those of an inventory built from the same objects.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from cluster_builders import (
    cluster_role,
    container,
    crb,
    deployment,
    hardened,
    namespace,
    network_policy,
    pod,
    rb,
    role,
    rule,
    sa,
    service_account,
    user,
)

from plumbob.benchmarks.catalog import load_benchmark
from plumbob.engine.cluster import ClusterSettings, Holders, Inventory, evaluate_cluster
from plumbob.engine.findings import Finding, ObjectRef

CIS = load_benchmark("cis-1.12")
RESTRICTED = load_benchmark("pss-restricted")
BASELINE = load_benchmark("pss-baseline")
SETTINGS = [
    (CIS, ClusterSettings(holders=Holders.of(CIS.expected_holders, CIS.never_expected))),
    (RESTRICTED, ClusterSettings(cluster_version=(1, 36))),
    (BASELINE, ClusterSettings(cluster_version=(1, 36), pss_version=(1, 24))),
]
NAMESPACES = ["default", "team", "other"]


def canonical(findings: list[Finding]) -> list[str]:
    return sorted(repr(f) for f in findings)


def evaluate(inv: Inventory) -> list[str]:
    out: list[str] = []
    for bench, settings in SETTINGS:
        out += canonical(evaluate_cluster(bench.rules, inv, settings))
    return out


def random_object(rng: random.Random, only_rbac: bool = False) -> dict[str, Any]:
    ns = rng.choice(NAMESPACES)
    bad = [
        container(securityContext={"privileged": True}),
        container(securityContext={"capabilities": {"add": ["NET_RAW"]}}),
        hardened(env=[{"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]),
        hardened(),
        hardened(),
    ]
    kind = rng.choice(["pod", "pod", "owned-pod", "deployment", "namespace", "sa", "rbac", "netpol"])
    kind = "rbac" if only_rbac else kind
    name = f"x{rng.randrange(4)}"
    if kind == "pod":
        if rng.random() < 0.2:
            return pod(name, ns, rng.choice(bad), hostPID=True)
        return pod(name, ns, rng.choice(bad))
    if kind == "owned-pod":
        return pod(name, ns, rng.choice(bad), owner=("Deployment", f"x{rng.randrange(4)}"))
    if kind == "deployment":
        return deployment(name, ns, rng.choice(bad))
    if kind == "namespace":
        labels = rng.choice(
            [
                {},
                {"pod-security.kubernetes.io/enforce": "baseline"},
                {"pod-security.kubernetes.io/enforce-version": "v1.22"},
                {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "v1.30",
                },
            ]
        )
        return namespace(ns, labels)
    if kind == "sa":
        return service_account(rng.choice(["default", "app"]), ns, automount=rng.choice([None, True, False]))
    if kind == "netpol":
        return network_policy(name, ns)
    aggregated = {"rbac.example/aggregate": "yes"} if rng.random() < 0.5 else {}
    return rng.choice(
        [
            cluster_role(name, rule(["*"], ["*"], rng.choice([["*"], ["get"]])), labels=aggregated),
            cluster_role(name, rule([""], ["pods/exec"], ["create"]), labels=aggregated),
            # an aggregated role: its rules are those of the ClusterRoles its selector matches
            cluster_role(name, aggregate=[{"matchLabels": {"rbac.example/aggregate": "yes"}}]),
            crb(name, rng.choice(["cluster-admin", "x0", "x1"]), user(f"u{name}"), sa("default", ns)),
            role(name, ns, rule([""], ["secrets"], ["get", "list"])),
            rb(name, ns, "Role", "x0", sa("default", ns)),
            rb(name, ns, "ClusterRole", rng.choice(["x0", "x2"]), user(f"u{name}")),
        ]
    )


def ref_of(obj: dict[str, Any]) -> ObjectRef:
    meta = obj["metadata"]
    return ObjectRef(
        api_version=obj["apiVersion"], kind=obj["kind"], namespace=meta.get("namespace"), name=meta["name"]
    )


@pytest.mark.parametrize(
    ("seed", "only_rbac"), [*((s, False) for s in range(12)), *((s, True) for s in range(12))]
)
def test_a_kept_inventory_matches_a_fresh_one_after_every_change(seed: int, only_rbac: bool) -> None:
    """Every kind of change; and RBAC changes only (roles, aggregated ClusterRoles, bindings),
    which the resolver keeps per binding."""
    rng = random.Random(seed)
    held: dict[ObjectRef, dict[str, Any]] = {}
    kept = Inventory()
    for _ in range(60):
        if held and rng.random() < 0.3:
            gone = rng.choice(sorted(held, key=repr))
            del held[gone]
            kept.remove(gone)
        else:
            obj = random_object(rng, only_rbac)
            held[ref_of(obj)] = obj
            kept.put(obj)
        assert evaluate(kept) == evaluate(Inventory.build(held.values()))


def test_unchanged_workloads_are_not_checked_again() -> None:
    calls: list[str] = []
    inv = Inventory.build([pod(f"p{i}", "team") for i in range(50)])

    def check(w: Any) -> str | None:
        calls.append(w.meta.name)
        return None

    inv.results("probe", check)
    assert len(calls) == 50
    calls.clear()
    inv.results("probe", check)
    assert calls == []
    inv.put(pod("p7", "team", container(securityContext={"privileged": True})))
    inv.remove(ref_of(pod("p8", "team")))
    inv.results("probe", check)
    assert calls == ["p7"]  # p8 is gone: nothing to check
    calls.clear()
    inv.put(namespace("team", {"pod-security.kubernetes.io/enforce": "baseline"}))
    inv.results("probe", check)
    assert len(calls) == 49  # its namespace changed: every workload in it again
