"""The operator's metrics, read from the store and exposed in the Prometheus text format.

A real ``MeterProvider`` with the Prometheus reader on a private registry; the assertions read
the exposition text a scrape would get.

Cases:
- per profile: score ratio, rules by status (all six statuses), last successful scan time from
  the latest *completed* scan (a running newer scan does not count), node coverage by state of
  that scan, scans by phase (zero for phases with no scan), drift counters summed over reports;
- per rule: failing node count with severity; per node: score ratio after exceptions;
- per exception entry: seconds until expiry, negative once expired, with owner;
- a removed node's series disappears from the next scrape;
- scan durations are recorded once per scan completed after the process started, not for scans
  that were already complete; reconcile passes and steps are timed, failing passes counted;
- the label sets are bounded: no label takes a value per scan or per result.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest

from plumbob.controller import metrics
from plumbob.controller.metrics import StoreMetrics
from plumbob.controller.store import Store

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def profile(name: str = "cis", score: float | None = 75.0) -> dict[str, Any]:
    status: dict[str, Any] = {
        "summary": {
            "pass": 6,
            "fail": 2,
            "manual": 3,
            "notApplicable": 4,
            "error": 0,
            "excepted": 0,
            "total": 15,
        }
    }
    if score is not None:
        status["score"] = score
    return {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceProfile",
        "metadata": {"name": name, "uid": f"p-{name}", "resourceVersion": "1", "generation": 1},
        "spec": {"benchmark": {"name": "cis-kubernetes"}},
        "status": status,
    }


def scan(name: str, phase: str, started: datetime, done: datetime | None, fail: int = 1) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase,
        "startTime": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nodes": {"total": 3, "done": 2, "failed": 1},
        "rules": [
            {"id": "1.1.1", "status": "fail" if fail else "pass", "severity": "high", "failCount": fail},
            {"id": "4.2.1", "status": "pass", "severity": "medium", "passCount": 2},
        ],
    }
    if done is not None:
        status["completionTime"] = done.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceScan",
        "metadata": {"name": name, "uid": f"s-{name}", "resourceVersion": "1", "generation": 1},
        "spec": {"profile": "cis", "trigger": "manual"},
        "status": status,
    }


def report(node: str, passed: int, failed: int, excepted: int = 0, regressions: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceReport",
        "metadata": {"name": f"cis.{node}", "uid": f"r-{node}", "resourceVersion": "1", "generation": 1},
        "spec": {"profile": "cis", "nodeName": node, "scan": "cis-20261201-100000", "results": []},
        "status": {
            "observedGeneration": 1,
            "summary": {
                "pass": passed,
                "fail": failed,
                "excepted": excepted,
                "total": passed + failed + excepted,
            },
            "drift": {"regressionTotal": regressions, "restorationTotal": 1},
        },
    }


def cluster_exception() -> dict[str, Any]:
    entry = {"rules": ["1.1.1"], "reason": "vendor", "owner": "platform@example.com"}
    return {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ClusterComplianceException",
        "metadata": {"name": "accepted", "uid": "e-1", "resourceVersion": "1", "generation": 1},
        "spec": {
            "entries": [
                {**entry, "expires": "2026-06-03"},  # through that day: until 2026-06-04T00:00Z
                {**entry, "expires": "2026-05-31T12:00:00Z"},
            ]
        },
    }


@pytest.fixture
def scrape() -> Any:
    registry = CollectorRegistry()
    provider = MeterProvider(
        metric_readers=[PrometheusMetricReader(scope_info_enabled=False, registry=registry)]
    )
    store = Store()
    store.upsert("complianceprofiles", profile())
    store.upsert(
        "compliancescans",
        scan("cis-20261201-100000", "Complete", NOW - timedelta(hours=2), NOW - timedelta(hours=1)),
    )
    store.upsert(
        "compliancescans", scan("cis-20261201-110000", "Running", NOW - timedelta(minutes=5), None, fail=0)
    )
    store.upsert("compliancereports", report("node-1", 10, 0, regressions=2))
    store.upsert("compliancereports", report("node-2", 6, 2, excepted=2, regressions=3))
    store.upsert("clustercomplianceexceptions", cluster_exception())
    StoreMetrics(store, clock=lambda: NOW, meter=provider.get_meter("test"))

    def read() -> str:
        return generate_latest(registry).decode()

    read.store = store  # type: ignore[attr-defined]
    yield read
    provider.shutdown()


def value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name}{labels} in\n{text}")


def test_profile_metrics(scrape: Any) -> None:
    text = scrape()
    assert value(text, "plumbob_profile_score_ratio", profile="cis") == 0.75
    assert value(text, "plumbob_profile_rules", profile="cis", status="fail") == 2
    assert value(text, "plumbob_profile_rules", profile="cis", status="not-applicable") == 4
    assert value(text, "plumbob_profile_rules", profile="cis", status="excepted") == 0
    completed = (NOW - timedelta(hours=1)).timestamp()
    assert value(text, "plumbob_profile_last_successful_scan_timestamp_seconds", profile="cis") == completed
    assert value(text, "plumbob_profile_scan_nodes", profile="cis", state="Done") == 2
    assert value(text, "plumbob_profile_scan_nodes", profile="cis", state="Failed") == 1
    assert value(text, "plumbob_scans", profile="cis", phase="Complete") == 1
    assert value(text, "plumbob_scans", profile="cis", phase="Running") == 1
    assert value(text, "plumbob_scans", profile="cis", phase="Failed") == 0
    assert value(text, "plumbob_drift_regressions_total", profile="cis") == 5
    assert value(text, "plumbob_drift_restorations_total", profile="cis") == 2
    assert "# TYPE plumbob_drift_regressions_total counter" in text


def test_rule_node_and_exception_metrics(scrape: Any) -> None:
    text = scrape()
    # from the completed scan (failCount 1), not the running one (0)
    assert value(text, "plumbob_rule_failing_nodes", profile="cis", rule="1.1.1", severity="high") == 1
    assert value(text, "plumbob_rule_failing_nodes", rule="4.2.1") == 0
    assert value(text, "plumbob_node_score_ratio", node="node-1") == 1.0
    assert value(text, "plumbob_node_score_ratio", node="node-2") == 0.8  # (6+2)/(6+2+2)
    assert value(text, "plumbob_exception_expiry_seconds", entry="0", owner="platform@example.com") == (
        2.5 * 86400
    )
    assert value(text, "plumbob_exception_expiry_seconds", entry="1", exception="accepted") == -86400


def test_removed_node_disappears(scrape: Any) -> None:
    assert 'node="node-2"' in scrape()
    scrape.store.remove("compliancereports", report("node-2", 0, 0))
    text = scrape()
    assert 'node="node-2"' not in text
    assert 'node="node-1"' in text


def test_bounded_labels(scrape: Any) -> None:
    text = "\n".join(line for line in scrape().splitlines() if not line.startswith("target_info"))
    labels = set(re.findall(r'(\w+)="', text))
    assert labels <= {
        "profile",
        "status",
        "state",
        "phase",
        "rule",
        "severity",
        "node",
        "kind",
        "namespace",
        "exception",
        "entry",
        "owner",
        "le",
        "step",
        "code",
        "what",
    }
    assert "cis-20261201-100000" not in text and "cis-20261201-110000" not in text  # no series per scan


def test_scan_durations_once_and_only_new(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded: list[tuple[float, dict[str, str]]] = []

    class Hist:
        def record(self, amount: float, attributes: dict[str, str]) -> None:
            recorded.append((amount, attributes))

    monkeypatch.setattr(metrics, "_scan_duration", Hist())
    durations = metrics._ScanDurations()
    durations.since = NOW - timedelta(hours=1, minutes=30)
    store = Store()
    store.upsert(
        "compliancescans",
        scan("cis-20261201-080000", "Complete", NOW - timedelta(hours=4), NOW - timedelta(hours=3)),
    )
    store.upsert(
        "compliancescans",
        scan(
            "cis-20261201-090000", "Complete", NOW - timedelta(hours=1, minutes=10), NOW - timedelta(hours=1)
        ),
    )
    store.upsert("compliancescans", scan("cis-20261201-120000", "Running", NOW, None))
    durations.observe(store)
    durations.observe(store)
    assert recorded == [(600.0, {"profile": "cis"})]
