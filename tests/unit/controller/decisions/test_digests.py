"""Compact digests of watched bodies.

Cases:
- node_digest: Ready only when the Ready condition is "True" (False, Unknown, absent → not ready);
  taints with and without value; labels copied; creationTimestamp parsed as aware UTC;
  heartbeat-only differences give equal digests;
- job_digest: no scan label or no node → None; Complete → complete; Failed with reason and
  message (DeadlineExceeded, BackoffLimitExceeded), a Failed condition without reason → "Failed";
  conditions with status False ignored; completionTime parsed; node from the annotation, else label;
- report_digest: rule → status and severity, results with ``resource`` skipped, no profile → None,
  profile from the label when the spec lacks it; generation and observedGeneration; cluster report
  has no node;
- parse_time: Z, offsets, naive → UTC, garbage → None.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from plumbob.controller.decisions.digests import (
    ObjectResult,
    Taint,
    job_digest,
    node_digest,
    parse_time,
    report_digest,
)


def node_body(
    conditions: list[dict[str, Any]] | None = None,
    taints: list[dict[str, Any]] | None = None,
    heartbeat: str = "2026-06-01T12:00:00Z",
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "worker-1",
            "uid": "n-1",
            "resourceVersion": "10",
            "labels": {"zone": "a"},
            "creationTimestamp": "2026-05-01T08:00:00Z",
        },
        "spec": {"taints": taints or []},
        "status": {
            "conditions": conditions
            if conditions is not None
            else [
                {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": heartbeat},
                {"type": "Ready", "status": "True", "lastHeartbeatTime": heartbeat},
            ]
        },
    }


def test_node_ready_states() -> None:
    assert node_digest(node_body()).ready
    assert not node_digest(node_body([{"type": "Ready", "status": "False"}])).ready
    assert not node_digest(node_body([{"type": "Ready", "status": "Unknown"}])).ready
    assert not node_digest(node_body([])).ready
    assert not node_digest({"metadata": {"name": "bare"}}).ready


def test_node_taints_labels_created() -> None:
    d = node_digest(
        node_body(
            taints=[
                {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
                {
                    "key": "node.kubernetes.io/unreachable",
                    "effect": "NoExecute",
                    "timeAdded": "2026-06-01T12:00:00Z",
                },
            ]
        )
    )
    assert d.taints == (
        Taint("dedicated", "db", "NoSchedule"),
        Taint("node.kubernetes.io/unreachable", "", "NoExecute"),
    )
    assert d.labels == {"zone": "a"}
    assert d.created == datetime(2026, 5, 1, 8, tzinfo=UTC)
    assert (d.name, d.uid) == ("worker-1", "n-1")


def test_node_heartbeat_changes_give_equal_digests() -> None:
    assert node_digest(node_body(heartbeat="2026-06-01T12:00:00Z")) == node_digest(
        node_body(heartbeat="2026-06-01T12:00:40Z")
    )


def job_body(conditions: list[dict[str, Any]], **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "cis-x-abc",
            "namespace": "plumbob-system",
            "labels": {"plumbob.dev/scan": "cis-x", "plumbob.dev/node": "label-node"},
            "annotations": {"plumbob.dev/node-name": "worker-1"},
        },
        "status": {"conditions": conditions, **status},
    }


def test_job_complete() -> None:
    d = job_digest(
        job_body([{"type": "Complete", "status": "True"}], succeeded=1, completionTime="2026-06-01T12:00:05Z")
    )
    assert d is not None
    assert (d.complete, d.failed_reason, d.succeeded) == (True, None, 1)
    assert d.finished_at == datetime(2026, 6, 1, 12, 0, 5, tzinfo=UTC)
    assert (d.scan, d.node, d.namespace) == ("cis-x", "worker-1", "plumbob-system")


def test_job_failed_with_reason() -> None:
    d = job_digest(
        job_body(
            [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "DeadlineExceeded",
                    "message": "Job was active longer than specified deadline",
                }
            ],
            failed=1,
        )
    )
    assert d is not None
    assert (d.complete, d.failed_reason) == (False, "DeadlineExceeded")
    assert "deadline" in d.failed_message
    d2 = job_digest(job_body([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]))
    assert d2 is not None
    assert d2.failed_reason == "BackoffLimitExceeded"
    d3 = job_digest(job_body([{"type": "Failed", "status": "True"}]))
    assert d3 is not None
    assert d3.failed_reason == "Failed"


def test_job_conditions_not_true_are_ignored() -> None:
    d = job_digest(
        job_body(
            [{"type": "Failed", "status": "False", "reason": "X"}, {"type": "Complete", "status": "False"}],
            active=1,
        )
    )
    assert d is not None
    assert (d.complete, d.failed_reason, d.active) == (False, None, 1)


def test_job_without_scan_or_node_is_not_ours() -> None:
    body = job_body([])
    body["metadata"]["labels"].pop("plumbob.dev/scan")
    assert job_digest(body) is None
    body = job_body([])
    body["metadata"]["annotations"] = {}
    body["metadata"]["labels"].pop("plumbob.dev/node")
    assert job_digest(body) is None
    body = job_body([])
    body["metadata"]["annotations"] = {}
    d = job_digest(body)
    assert d is not None
    assert d.node == "label-node"


def report_body(results: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceReport",
        "metadata": {
            "name": "cis.worker-1",
            "uid": "r-1",
            "generation": 3,
            "labels": {"plumbob.dev/profile": "cis"},
        },
        "spec": {"profile": "cis", "nodeName": "worker-1", "scan": "cis-x", "results": results, **spec},
        "status": {"observedGeneration": 2, "baseline": {"passing": ["1.1.1"], "failing": []}},
    }


def test_report_digest() -> None:
    d = report_digest(
        report_body(
            [
                {"id": "1.1.1", "status": "pass", "severity": "high"},
                {"id": "1.1.2", "status": "fail", "severity": "low"},
                {
                    "id": "5.1.1",
                    "status": "fail",
                    "severity": "high",
                    "resource": {"kind": "ClusterRoleBinding", "name": "admins"},
                },
            ]
        )
    )
    assert d is not None
    assert d.results == {"1.1.1": "pass", "1.1.2": "fail"}
    assert d.severities == {"1.1.1": "high", "1.1.2": "low", "5.1.1": "high"}
    assert d.objects == (ObjectResult("5.1.1", "fail", "", "ClusterRoleBinding", None, "admins"),)
    assert (d.profile, d.node, d.scan, d.generation, d.observed_generation) == (
        "cis",
        "worker-1",
        "cis-x",
        3,
        2,
    )
    assert d.status["baseline"] == {"passing": ["1.1.1"], "failing": []}


def test_report_profile_from_label_and_cluster_report() -> None:
    body = report_body([{"id": "5.1.1", "status": "pass", "severity": "high"}])
    del body["spec"]["profile"]
    del body["spec"]["nodeName"]
    d = report_digest(body)
    assert d is not None
    assert (d.profile, d.node) == ("cis", None)
    body["metadata"]["labels"] = {}
    assert report_digest(body) is None


def test_parse_time() -> None:
    assert parse_time("2026-06-01T12:00:00Z") == datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert parse_time("2026-06-01T14:00:00+02:00") == datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert parse_time("2026-06-01T12:00:00") == datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert parse_time(datetime(2026, 6, 1, 12)) == datetime(2026, 6, 1, 12, tzinfo=UTC)
    aware = datetime(2026, 6, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert parse_time(aware) is aware
    assert parse_time("yesterday") is None
    assert parse_time(None) is None
    assert parse_time("") is None
