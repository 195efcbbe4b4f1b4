"""A whole scan on the real testbed: trigger → Jobs → Pods run by simulated kubelets → reports →
scan and profile status → drift Events → restored Events.

Cases:
- a node with a taint the audit does not tolerate is recorded Unschedulable with the reason,
  and no Pod is created for it;
- a rescan annotation creates one scan; one Job per node, pinned with nodeName, owned by the scan;
- every node's agent writes its own report; the scan completes with per-rule results across
  nodes; the profile shows summary, score, last scan and conditions;
- a misconfiguration introduced on one node, then a rescan: ComplianceDrift (Warning) on the
  profile and on that Node, one Event per node listing the rules; the scan lists the regression;
- the fix, then a rescan requested with ``plumbob rescan``: ComplianceRestored;
- Jobs and Pods are gone after the scan (the operator deletes them), no duplicates were created;
- deleting the profile garbage-collects its scans and reports.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from e2e_support import (
    MakeCluster,
    NodeSpec,
    Plumbob,
    apply,
    completed_scan,
    condition,
    events,
    get,
    items,
    profile_body,
    rescan,
    wait_for,
)

from testbed.hosttrees import build_tree

pytestmark = pytest.mark.e2e


def test_scan_drift_and_restore(plumbob: Plumbob, make_cluster: MakeCluster, run_id: str) -> None:
    cp = plumbob.cp
    cp_node, good, bad, tainted = f"cp-{run_id}", f"w1-{run_id}", f"w2-{run_id}", f"gpu-{run_id}"
    cluster = make_cluster(
        [
            NodeSpec(cp_node, "control-plane"),
            NodeSpec(good, "worker"),
            NodeSpec(bad, "worker", ["kubelet-always-allow"]),
            NodeSpec(
                tainted, "worker", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
            ),
        ]
    )
    profile = f"flow-{run_id}"
    apply(cp, profile_body(profile, run_id))
    rescan(cp, profile, "1")

    first = wait_for("the first scan to complete", lambda: completed_scan(cp, profile), timeout=120)
    status = first["status"]
    assert status["nodes"]["total"] == 4 and status["nodes"]["done"] == 3, status["nodes"]
    assert status["nodes"]["unschedulable"] == 1
    [problem] = status["nodes"]["problems"]
    assert problem["node"] == tainted and problem["reason"] == "UntoleratedTaint"
    assert "dedicated=gpu:NoSchedule" in problem["message"]
    assert not items(cp, "pods", "-A", "--field-selector", f"spec.nodeName={tainted}")  # no Pod left pending
    rules = {r["id"]: r for r in status["rules"]}
    assert rules["4.2.2"]["status"] == "fail" and rules["4.2.2"]["failingNodes"] == [bad]
    # a control-plane rule: passes on the (compliant) control-plane node, not applicable on workers
    assert rules["1.2.16"]["status"] == "pass" and rules["1.2.16"]["passCount"] == 1, rules["1.2.16"]
    jobs = items(cp, "jobs", "-n", plumbob.namespace, "-l", f"plumbob.dev/scan={first['metadata']['name']}")
    assert len(jobs) <= 3
    for job in jobs:
        owner = job["metadata"]["ownerReferences"][0]
        assert owner["kind"] == "ComplianceScan" and owner["name"] == first["metadata"]["name"]
        assert job["spec"]["template"]["spec"]["nodeName"] in (cp_node, good, bad)

    for node in (cp_node, good, bad):
        report = get(cp, "compliancereport", f"{profile}.{node}")
        assert report is not None and report["spec"]["nodeName"] == node
        assert report["status"]["observedGeneration"] == report["metadata"]["generation"]

    prof = wait_for(
        "profile status",
        lambda: (p := get(cp, "complianceprofile", profile)) and (p.get("status") or {}).get("summary") and p,
    )
    pst = prof["status"]
    assert pst["lastScan"]["name"] == first["metadata"]["name"]
    assert 0 < pst["score"] < 100
    assert (condition(prof, "Ready") or {}).get("status") == "True"
    assert (condition(prof, "Compliant") or {}).get("status") == "False"

    # break the good worker: its kubelet now allows anonymous requests
    build_tree(cluster.node(good).host_root, "worker", ["kubelet-anonymous-auth"], hostname=good)  # type: ignore[arg-type]
    rescan(cp, profile, "2")
    second = wait_for(
        "the second scan", lambda: completed_scan(cp, profile, {first["metadata"]["name"]}), 120
    )
    assert second["status"]["drift"]["previousScan"] == first["metadata"]["name"]
    regressions = {d["rule"]: d for d in second["status"]["drift"]["regressions"]}
    assert "4.2.1" in regressions and regressions["4.2.1"]["nodes"] == [good]
    drift_node = wait_for("ComplianceDrift on the node", lambda: events(cp, "ComplianceDrift", good, "Node"))
    assert len(drift_node) == 1 and "4.2.1" in drift_node[0]["message"]
    drift_profile = events(cp, "ComplianceDrift", profile, "ComplianceProfile")
    assert len(drift_profile) == 1 and good in drift_profile[0]["message"]
    prof = wait_for(
        "profile drift counters",
        lambda: (
            (p := get(cp, "complianceprofile", profile))
            and p["status"]["drift"].get("regressions") == 1
            and p
        ),
    )
    assert prof["status"]["drift"]["lastRegressionTime"]

    # fix it again
    build_tree(cluster.node(good).host_root, "worker", [], hostname=good)  # type: ignore[arg-type]
    cli = subprocess.run(  # the CLI way of asking for a scan now
        [sys.executable, "-m", "plumbob", "rescan", profile],
        env=cp.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 0 and "rescan of" in cli.stdout, cli.stderr
    wait_for(
        "the third scan",
        lambda: completed_scan(cp, profile, {first["metadata"]["name"], second["metadata"]["name"]}),
        120,
    )
    restored = wait_for(
        "ComplianceRestored on the node", lambda: events(cp, "ComplianceRestored", good, "Node")
    )
    assert "4.2.1" in restored[0]["message"]
    prof = wait_for(
        "profile drift counters of the last scan",
        lambda: (
            (p := get(cp, "complianceprofile", profile))
            and p["status"]["drift"].get("restorations") == 1
            and p
        ),
    )
    assert prof["status"]["drift"]["regressions"] == 0

    # no leftovers: the operator deletes a finished scan's Jobs, and their Pods go with them
    wait_for(
        "audit Jobs to be cleaned up",
        lambda: (
            not items(cp, "jobs", "-n", plumbob.namespace, "-l", f"plumbob.dev/profile={profile}") or None
        ),
        timeout=60,
    )
    wait_for(
        "audit Pods to be cleaned up",
        lambda: (
            not items(cp, "pods", "-n", plumbob.namespace, "-l", f"plumbob.dev/profile={profile}") or None
        ),
        timeout=60,
    )

    # deleting the profile removes what it owns: its scans and its reports
    cp.kubectl("delete", "complianceprofile", profile, "--wait=true")
    wait_for(
        "the profile's scans to be garbage-collected",
        lambda: not [s for s in items(cp, "compliancescans") if s["spec"]["profile"] == profile] or None,
        timeout=60,
    )
    wait_for(
        "the profile's reports to be garbage-collected",
        lambda: not [r for r in items(cp, "compliancereports") if r["spec"]["profile"] == profile] or None,
        timeout=60,
    )
