"""ComplianceReports as PolicyReports / OpenReports bodies (pure).

Cases:
- a node report → one cluster-scoped report scoped to the Node, owned by the ComplianceReport,
  with the fingerprint annotation; OpenReports also get the top-level ``source`` and limits;
- every plumbob status maps into the target enum (manual → warn, excepted and not-applicable →
  skip), the plumbob status and CIS id stay in the properties, evidence only where it matters,
  the exception's owner/expiry on excepted results; the summary counts the mapped results;
- real timestamps: the audit time, not "now";
- a cluster-level report splits into one namespaced report per namespace plus a cluster one;
- size is bounded: 1,000 results keep 500, failures first, and say how many were left out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cluster_data import raw

from plumbob.api.reports import ComplianceReport
from plumbob.benchmarks.catalog import load_benchmark
from plumbob.reports.policyreports import (
    ANNOTATION_FINGERPRINT,
    MAX_RESULTS,
    OPENREPORTS,
    WGPOLICY,
    fingerprint,
    policy_reports,
)

NOW = datetime(2026, 6, 2, tzinfo=UTC)
ENUM = {"pass", "fail", "warn", "error", "skip"}


def report(i: int) -> ComplianceReport:
    return ComplianceReport.model_validate(raw()["reports"][i])  # type: ignore[index]


def test_node_report_scoped_to_node() -> None:
    [body] = policy_reports(report(0), WGPOLICY, load_benchmark("cis-1.12"), NOW)
    assert body["apiVersion"] == "wgpolicyk8s.io/v1alpha2" and body["kind"] == "ClusterPolicyReport"
    assert body["metadata"]["name"] == "plumbob-cis.cp-1" and "namespace" not in body["metadata"]
    assert body["scope"] == {"apiVersion": "v1", "kind": "Node", "name": "cp-1"}
    owner = body["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "ComplianceReport" and owner["uid"] == "r-1"
    assert body["metadata"]["annotations"][ANNOTATION_FINGERPRINT] == fingerprint(report(0))
    assert "source" not in body
    [open_body] = policy_reports(report(0), OPENREPORTS, None, NOW)
    assert open_body["kind"] == "ClusterReport" and open_body["source"] == "plumbob"
    assert open_body["configuration"] == {"limits": {"maxResults": MAX_RESULTS}}


def test_status_mapping_and_properties() -> None:
    bodies = [
        *policy_reports(report(0), WGPOLICY, load_benchmark("cis-1.12"), NOW),
        *policy_reports(report(1), WGPOLICY, load_benchmark("cis-1.12"), NOW),
    ]
    results = {(b["scope"]["name"], r["rule"]): r for b in bodies for r in b["results"]}
    assert {r["result"] for r in results.values()} <= ENUM
    assert results["cp-1", "3.1.1"]["result"] == "warn"  # manual
    assert results["worker-1", "1.1.1"]["result"] == "skip"  # not-applicable
    assert results["worker-1", "1.1.1"]["properties"]["status"] == "not-applicable"
    excepted = results["worker-1", "4.2.6"]
    assert excepted["result"] == "skip" and excepted["properties"]["status"] == "excepted"
    assert excepted["properties"]["exceptionOwner"] == "net-team@example.com"
    assert excepted["properties"]["exceptionExpires"] == "2026-06-10"
    assert excepted["properties"]["exceptionTicket"] == "NET-42"
    failing = results["worker-1", "4.2.1"]
    assert failing["result"] == "fail" and failing["properties"]["index"] == "4.2.1"
    assert "kubelet (--anonymous-auth) [flag]: true; expected false" in failing["properties"]["evidence"]
    assert failing["category"] == "Kubelet"
    assert "evidence" not in results["cp-1", "1.1.1"]["properties"]  # a pass needs none
    assert results["cp-1", "4.1.3"]["result"] == "error"
    assert all(isinstance(v, str) for r in results.values() for v in r["properties"].values())
    audit = datetime(2026, 6, 1, 10, 1, 30, tzinfo=UTC).timestamp()
    assert failing["timestamp"] == {"seconds": int(audit), "nanos": 0}
    summary = next(b for b in bodies if b["scope"]["name"] == "worker-1")["summary"]
    assert summary == {"pass": 0, "fail": 1, "warn": 1, "error": 0, "skip": 4}


def cluster_report(results: list[dict[str, Any]]) -> ComplianceReport:
    return ComplianceReport.model_validate(
        {
            "metadata": {"name": "cis", "uid": "c-1"},
            "spec": {"profile": "cis", "scan": "cis-1", "benchmark": "cis-1.12", "results": results},
        }
    )


def test_cluster_report_split_by_namespace() -> None:
    def result(ns: str | None, name: str, status: str = "fail") -> dict[str, Any]:
        res = {"kind": "Pod", "name": name} | ({"namespace": ns} if ns else {})
        return {"id": "5.2.2", "severity": "high", "status": status, "resource": res}

    rep = cluster_report(
        [
            result("team-a", "p1"),
            result("team-a", "p2"),
            result("team-b", "p3"),
            {"id": "5.1.1", "severity": "high", "status": "pass"},
        ]
    )
    bodies = policy_reports(rep, WGPOLICY, None, NOW)
    where = {(b["kind"], b["metadata"].get("namespace")): b for b in bodies}
    assert set(where) == {
        ("ClusterPolicyReport", None),
        ("PolicyReport", "team-a"),
        ("PolicyReport", "team-b"),
    }
    assert where["PolicyReport", "team-a"]["summary"]["fail"] == 2
    assert where["PolicyReport", "team-a"]["results"][0]["resources"] == [
        {"kind": "Pod", "name": "p1", "apiVersion": "v1", "namespace": "team-a"}
    ]
    assert "scope" not in where["ClusterPolicyReport", None]


def test_bounded_size() -> None:
    many = [
        {
            "id": "5.2.2",
            "severity": "high",
            "status": "pass" if i % 10 else "fail",
            "resource": {"kind": "Namespace", "name": f"ns-{i}"},
        }
        for i in range(1000)
    ]
    rep = cluster_report(many)
    [body] = policy_reports(rep, OPENREPORTS, None, NOW)
    assert len(body["results"]) == MAX_RESULTS
    assert body["summary"]["fail"] == 100  # failures are kept first
    assert body["metadata"]["annotations"]["plumbob.dev/truncated"] == "500 results left out"
