"""Cardinality of the operator's metrics from 10 to 1,000 simulated nodes (in-process).

The store is filled as the watches would fill it for one profile over N nodes (a completed scan
with every rule of the benchmark, one report per node with its summary and drift totals, an
exception list), then scraped through the real OpenTelemetry SDK and Prometheus exporter. The
figure: series per metric family; everything but the per-node family must stay flat, the per-node
family must grow by exactly one series per node. Also the time of one scrape.

Run alone: ``python tools/bench/metrics_bench.py``; ``make bench`` runs it too.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "operator"))

from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from plumbob.benchmarks.catalog import load_benchmark  # noqa: E402
from plumbob.controller.metrics import StoreMetrics  # noqa: E402
from plumbob.controller.store import Store  # noqa: E402

SIZES = (10, 100, 1000)
PER_NODE = "plumbob_node_score_ratio"


def fill(store: Store, nodes: int) -> None:
    rules = load_benchmark("cis-1.12").rules
    store.upsert("complianceprofiles", {
        "metadata": {"name": "cis", "uid": "p", "resourceVersion": "1", "generation": 1},
        "spec": {"benchmark": {"name": "cis-kubernetes"}},
        "status": {"score": 80.0, "summary": {"pass": 100, "fail": 20, "manual": 11, "total": 131}},
    })  # fmt: skip
    rule_results = [
        {
            "id": r.id,
            "status": "fail" if i % 7 == 0 else "pass",
            "severity": r.severity.value,
            "failCount": nodes if i % 7 == 0 else 0,
        }
        for i, r in enumerate(rules)
    ]
    scan_status = {
        "phase": "Complete",
        "startTime": "2026-06-01T10:00:00Z",
        "completionTime": "2026-06-01T10:05:00Z",
        "nodes": {"total": nodes, "done": nodes},
        "rules": rule_results,
    }
    store.upsert(
        "compliancescans",
        {
            "metadata": {"name": "cis-1", "uid": "s", "resourceVersion": "1"},
            "spec": {"profile": "cis", "trigger": "manual"},
            "status": scan_status,
        },
    )
    for i in range(nodes):
        store.upsert("compliancereports", {
            "metadata": {"name": f"cis.node-{i}", "uid": f"r{i}", "resourceVersion": "1", "generation": 1},
            "spec": {"profile": "cis", "nodeName": f"node-{i}", "scan": "cis-1", "results": []},
            "status": {"observedGeneration": 1, "summary": {"pass": 90, "fail": 10, "total": 100},
                       "drift": {"regressionTotal": i % 3, "restorationTotal": 0}},
        })  # fmt: skip
    entry = {"rules": ["4.2.*"], "reason": "r", "owner": "team@example.com", "expires": "2027-01-31"}
    store.upsert("clustercomplianceexceptions", {
        "metadata": {"name": "risks", "uid": "e", "resourceVersion": "1"},
        "spec": {"entries": [entry, entry, entry]},
    })  # fmt: skip


def measure(nodes: int) -> tuple[Counter[str], float]:
    registry = CollectorRegistry()
    provider = MeterProvider(
        metric_readers=[PrometheusMetricReader(scope_info_enabled=False, registry=registry)]
    )
    store = Store()
    fill(store, nodes)
    StoreMetrics(store, meter=provider.get_meter("bench"))
    times, text = [], ""
    for _ in range(5):
        t0 = time.perf_counter()
        text = generate_latest(registry).decode()
        times.append(time.perf_counter() - t0)
    provider.shutdown()
    families: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("plumbob_"):
            families[line.split("{")[0].split(" ")[0]] += 1
    return families, statistics.median(times)


def main() -> int:
    print("== metrics cardinality (tools/bench/metrics_bench.py) ==")
    results = {n: measure(n) for n in SIZES}
    names = sorted({f for fam, _ in results.values() for f in fam})
    print(f"{'metric family':<58}" + "".join(f"{n:>8} nodes" for n in SIZES))
    for name in names:
        print(f"{name:<58}" + "".join(f"{results[n][0][name]:>14}" for n in SIZES))
    other = {n: sum(v for k, v in results[n][0].items() if k != PER_NODE) for n in SIZES}
    per_node = {n: results[n][0][PER_NODE] for n in SIZES}
    print(f"{'series, all but per-node':<58}" + "".join(f"{other[n]:>14}" for n in SIZES))
    print(f"{'series, per-node (' + PER_NODE + ')':<58}" + "".join(f"{per_node[n]:>14}" for n in SIZES))
    print(f"{'scrape time (median of 5)':<58}" + "".join(f"{results[n][1] * 1000:>11.1f} ms" for n in SIZES))
    flat = len(set(other.values())) == 1
    linear = all(per_node[n] == n for n in SIZES)
    ratio = (other[1000] + per_node[1000]) / (other[10] + per_node[10])
    print(
        f"goal: non-node series flat from 10 to 1,000 nodes: {'met' if flat else 'MISSED'}; "
        f"per-node series = nodes: {'met' if linear else 'MISSED'}; total series 1000/10 nodes: {ratio:.1f}x"
    )
    return 0 if flat and linear else 1


if __name__ == "__main__":
    raise SystemExit(main())
