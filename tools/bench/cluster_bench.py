"""Cluster-rule engine benchmark: evaluation CPU time at 10,000 Pods, 2,000 RBAC objects, 500 namespaces.

Measures the pure engine (``plumbob.engine.cluster``) on synthetic API objects, in process: the
inventory build, CIS section 5, the Pod Security Standards (restricted) and one custom CEL rule
over every Pod; then, on the kept inventory, CIS section 5 again after one Pod or one RoleBinding
changed (what a watch event costs). CPU seconds (``process_time``), median of ``--repeat`` runs
(of 20 changes for the kept inventory). The operator's
LISTs from the API server are not included: this is the engine's share of the issue's goal of a
first full evaluation under 30 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "operator"))

from plumbob.benchmarks.catalog import load_benchmark
from plumbob.engine.cluster import ClusterSettings, Holders, Inventory, evaluate_cluster
from plumbob.engine.cluster.custom import CustomRule, compile_rules, evaluate_custom

GOAL_S = 30.0


def objects(pods: int, rbac: int, namespaces: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n in range(namespaces):
        out.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"ns{n}"}})
    for i in range(pods):
        sc = (
            {"runAsNonRoot": True, "allowPrivilegeEscalation": False} if i % 3 else {"privileged": i % 7 == 0}
        )
        containers = [{"name": f"c{k}", "image": "app:1", "securityContext": sc} for k in range(1 + i % 3)]
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"p{i}", "namespace": f"ns{i % namespaces}"},
                "spec": {"containers": containers, "hostNetwork": i % 50 == 0},
            }
        )
    rbac_group = "rbac.authorization.k8s.io/v1"
    for i in range(rbac // 2):
        rules = [{"apiGroups": [""], "resources": ["pods", "secrets"][: 1 + i % 2], "verbs": ["get", "list"]}]
        out.append(
            {"apiVersion": rbac_group, "kind": "ClusterRole", "metadata": {"name": f"r{i}"}, "rules": rules}
        )
        out.append(
            {
                "apiVersion": rbac_group,
                "kind": "RoleBinding",
                "metadata": {"name": f"b{i}", "namespace": f"ns{i % namespaces}"},
                "roleRef": {"kind": "ClusterRole", "name": f"r{i}"},
                "subjects": [{"kind": "User", "name": f"u{i}"}],
            }
        )
    return out


def timed(fn: Callable[[Inventory], object], repeat: int, objs: list[dict[str, Any]]) -> float:
    """Median CPU seconds of ``fn`` on a fresh inventory of ``objs`` each time (built untimed: a
    kept inventory would answer from what it kept)."""
    samples = []
    for _ in range(repeat):
        inv = Inventory.build(objs)
        t0 = time.process_time()
        fn(inv)
        samples.append(time.process_time() - t0)
    return statistics.median(samples)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--rbac", type=int, default=2_000)
    ap.add_argument("--namespaces", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    objs = objects(args.pods, args.rbac, args.namespaces)
    cis = load_benchmark("cis-1.12")
    pss = load_benchmark("pss-restricted")
    cis_rules = [r for r in cis.rules if r.id.startswith("5.")]
    holders = Holders.of(cis.expected_holders, cis.never_expected)
    settings = ClusterSettings(holders=holders, cluster_version=(1, 36))
    custom, _ = compile_rules(
        [
            CustomRule(
                "custom.no-host-net",
                "t",
                "high",
                "v1",
                "Pod",
                "!has(object.spec.hostNetwork) || !object.spec.hostNetwork",
            )
        ]
    )
    inv = Inventory.build(objs)
    figures = {
        "inventory build": timed(lambda _: Inventory.build(objs), args.repeat, []),
        "CIS section 5 (34 rules)": timed(
            lambda i: evaluate_cluster(cis_rules, i, settings), args.repeat, objs
        ),
        "PSS restricted (19 checks)": timed(
            lambda i: evaluate_cluster(pss.rules, i, settings), args.repeat, objs
        ),
        "one custom CEL rule": timed(lambda _: evaluate_custom(custom, objs), args.repeat, []),
    }
    total = sum(figures.values())
    # a kept inventory after one change: what a watch event costs the evaluation (CIS section 5)
    evaluate_cluster(cis_rules, inv, settings)
    changes = {
        "a Pod changed": lambda i: {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"p{i}", "namespace": f"ns{i % args.namespaces}"},
            "spec": {"containers": [{"name": "c", "securityContext": {"privileged": i % 2 == 0}}]},
        },
        "a RoleBinding changed": lambda i: {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"b{i}", "namespace": f"ns{i % args.namespaces}"},
            "roleRef": {"kind": "ClusterRole", "name": f"r{i}"},
            "subjects": [{"kind": "User", "name": f"u{i}"}, {"kind": "User", "name": f"new{i}"}],
        },
    }
    incremental = {}
    for what, make in changes.items():
        samples = []
        for i in range(20):
            inv.put(make(i))
            t0 = time.process_time()
            evaluate_cluster(cis_rules, inv, settings)
            samples.append(time.process_time() - t0)
        incremental[what] = statistics.median(samples)
    print(f"cluster engine: {args.pods} pods, {args.rbac} RBAC objects, {args.namespaces} namespaces "
          f"(CPU seconds, median of {args.repeat})")  # fmt: skip
    for name, seconds in figures.items():
        print(f"  {name:<28} {seconds:6.2f} s")
    verdict = "met" if total < GOAL_S else "MISSED"
    goal = f"goal < {GOAL_S:.0f} s (whole first evaluation): {verdict}, ratio {total / GOAL_S:.2f}"
    print(f"  {'total (engine only)':<28} {total:6.2f} s   {goal}")
    print("  kept inventory, CIS section 5 again after one change (median of 20):")
    for what, seconds in incremental.items():
        print(f"    {what:<26} {1000 * seconds:6.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
