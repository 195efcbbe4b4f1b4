"""Faults during a scan: every scan still completes with the right status and leaves nothing behind.

Cases (one scan over five nodes, at most two audits at a time, 25 s per-node deadline):
- a healthy node → Done;
- an agent that crashes → Failed (AgentFailed) after the bounded retry; its failed Job is then
  deleted while the scan still runs (as a TTL or a person would): the node stays Failed and its
  audit is not started again (at most the two Pods of the Job's one retry ever ran on it);
- an agent that hangs → TimedOut (DeadlineExceeded);
- a node deleted while its audit runs → Failed (NodeDeleted), its Job removed;
- the operator SIGKILLed mid-scan and restarted → the scan completes, no node got two Jobs,
  no result is lost (every healthy node has its report for this scan);
- afterwards no Jobs or Pods of the scan are left (the operator deletes them when the scan ends).
"""

from __future__ import annotations

import json

import pytest
from e2e_support import (
    MakeCluster,
    NodeSpec,
    Plumbob,
    apply,
    completed_scan,
    get,
    items,
    profile_body,
    rescan,
    wait_for,
)

pytestmark = pytest.mark.e2e


def test_faults_mid_scan(plumbob: Plumbob, make_cluster: MakeCluster, run_id: str) -> None:
    cp = plumbob.cp
    ok1, ok2 = f"ok1-{run_id}", f"ok2-{run_id}"
    crash, hang, vanish = f"crash-{run_id}", f"hang-{run_id}", f"vanish-{run_id}"
    cluster = make_cluster(
        [
            NodeSpec(ok1),
            NodeSpec(crash, fault="crash"),
            NodeSpec(hang, fault="hang"),
            NodeSpec(vanish, fault="vanish"),
            NodeSpec(ok2),
        ]
    )
    profile = f"faults-{run_id}"
    apply(cp, profile_body(profile, run_id))
    apply(
        cp,
        {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ComplianceSchedule",
            "metadata": {"name": f"faults-{run_id}"},
            "spec": {
                "schedule": "0 0 1 1 *",
                "profiles": [profile],
                "maxParallelNodes": 2,
                "nodeDeadlineSeconds": 25,
                "historyLimit": 3,
            },
        },
    )
    rescan(cp, profile, "now")

    def scan_name() -> str | None:
        scans = [s for s in items(cp, "compliancescans") if s["spec"]["profile"] == profile]
        return scans[0]["metadata"]["name"] if scans else None

    name = wait_for("the scan to be created", scan_name)
    assert get(cp, "compliancescan", name)["spec"]["maxParallelNodes"] == 2  # type: ignore[index]
    wait_for(
        "the first audit Jobs",
        lambda: items(cp, "jobs", "-n", plumbob.namespace, "-l", f"plumbob.dev/scan={name}"),
    )
    plumbob.operator.kill()
    plumbob.restart_operator()

    def crash_recorded() -> bool:
        scan = get(cp, "compliancescan", name) or {}
        problems = ((scan.get("status") or {}).get("nodes") or {}).get("problems") or []
        return any(p["node"] == crash and p["state"] == "Failed" for p in problems)

    wait_for("the crashing node to be recorded Failed", crash_recorded, timeout=120)
    cp.kubectl(
        "delete", "jobs", "-n", plumbob.namespace, "-l", f"plumbob.dev/scan={name},plumbob.dev/node={crash}"
    )

    scan = wait_for("the scan to complete", lambda: completed_scan(cp, profile), timeout=180)
    nodes = scan["status"]["nodes"]
    assert nodes["total"] == 5, json.dumps(nodes)
    problems = {p["node"]: p for p in nodes["problems"]}
    assert nodes["done"] == 2, json.dumps(nodes)
    assert problems[crash]["state"] == "Failed" and problems[crash]["reason"] == "AgentFailed"
    assert problems[hang]["state"] == "TimedOut" and problems[hang]["reason"] == "DeadlineExceeded"
    assert problems[vanish]["state"] == "Failed" and problems[vanish]["reason"] == "NodeDeleted"
    for node in (ok1, ok2):
        report = get(cp, "compliancereport", f"{profile}.{node}")
        assert report is not None and report["spec"]["scan"] == name

    assert cluster.pods_started(crash) <= 2, "the failed node's audit was started again"

    # no node was given a second Job, also across the operator's restart (one Pod per healthy node)
    assert (cluster.pods_started(ok1), cluster.pods_started(ok2), cluster.pods_started(hang)) == (1, 1, 1)

    wait_for(
        "the scan's Jobs to be gone",
        lambda: not items(cp, "jobs", "-n", plumbob.namespace, "-l", f"plumbob.dev/scan={name}") or None,
        timeout=90,
    )
    wait_for(
        "the scan's Pods to be gone",
        lambda: not items(cp, "pods", "-n", plumbob.namespace, "-l", f"plumbob.dev/scan={name}") or None,
        timeout=90,
    )
