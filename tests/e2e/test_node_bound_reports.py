"""A compromised node can write nothing but its own results, and no second report can stand in for them.

The ValidatingAdmissionPolicy shipped in ``crds/policy/`` checks a report an agent writes against
the node and the Pod its pod-bound token names; the operator reads a node's results only from the
report named ``<profile>.<node>``. Node A plays the compromised node: its audit Pod hangs, and the
test holds a token bound to that Pod, as A's kubelet can mint one.

Cases, node A's token (audit Pod of scan S of profile P, which targets A and B, one node at a time):
- refused (403, the message says why) before B ever wrote: B's report name ``P.B`` for node A
  (not A's name) and for node B (not A's node); a second name ``P.A-2`` for A; profile Q (which
  targets only B) under ``Q.A`` with Q's real scan (no audit of that scan runs on A) and with S
  (not a scan of Q); none of these objects exists afterwards;
- a token of the agent's service account bound to no Pod is refused outright;
- accepted: A's own report ``P.A`` of scan S; then B's agent writes ``P.B`` and S completes with B's
  real results (4.2.2 fails on B);
- refused afterwards: replacing or deleting B's report; it is unchanged.

An admin's second report for node B (named otherwise), scans one node at a time, A's audit first:
- one of the running scan with clean results, created while B waits: B is still audited, and the
  scan completes with B's real results, not the copy's;
- one of an older scan, created after B's real report: the next scan still completes with B Done;
- each copy: a MisnamedReport Warning naming the report that counts, and Stalled.
"""

from __future__ import annotations

import functools
import json
import urllib.error
from typing import Any

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

from testbed.controlplane import ControlPlane

pytestmark = pytest.mark.e2e
PATH = "/apis/plumbob.dev/v1alpha1/compliancereports"


def _report(name: str, *, profile: str, node: str, scan: str, status: str = "pass") -> dict[str, Any]:
    return {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceReport",
        "metadata": {"name": name},
        "spec": {
            "profile": profile,
            "nodeName": node,
            "scan": scan,
            "results": [
                {"id": "4.2.1", "severity": "high", "status": "pass"},
                {"id": "4.2.2", "severity": "high", "status": status},
            ],
        },
    }


def _refusal(call: Any) -> tuple[int, str]:
    with pytest.raises(urllib.error.HTTPError) as err:
        call()
    return err.value.code, json.loads(err.value.read() or b"{}").get("message", "")


def _one_at_a_time(cp: ControlPlane, profile: str, deadline: int) -> None:
    """A schedule that never fires by itself and audits one node at a time (A before B)."""
    apply(
        cp,
        {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ComplianceSchedule",
            "metadata": {"name": profile},
            "spec": {
                "schedule": "0 0 1 1 *",
                "profiles": [profile],
                "maxParallelNodes": 1,
                "nodeDeadlineSeconds": deadline,
            },
        },
    )


def _scan_started(cp: ControlPlane, profile: str, exclude: frozenset[str] = frozenset()) -> str:
    def started() -> str | None:
        names = [
            s["metadata"]["name"]
            for s in items(cp, "compliancescans")
            if s["spec"]["profile"] == profile and s["metadata"]["name"] not in exclude
        ]
        return names[0] if names else None

    return wait_for(f"a scan of {profile}", started)


def _audit_pod(env: Plumbob, scan: str, node: str) -> dict[str, Any]:
    def running() -> dict[str, Any] | None:
        pods = items(
            env.cp, "pods", "-n", env.namespace, "-l", f"plumbob.dev/scan={scan},plumbob.dev/node={node}"
        )
        return pods[0] if pods and (pods[0].get("status") or {}).get("phase") == "Running" else None

    return wait_for(f"the audit Pod of {scan} on {node}", running)


def _rule(scan: dict[str, Any], rule: str) -> dict[str, Any]:
    return next(r for r in scan["status"]["rules"] if r["id"] == rule)


def test_node_token_writes_only_its_own_report_of_its_scan(
    plumbob: Plumbob, make_cluster: MakeCluster, run_id: str
) -> None:
    cp, ns = plumbob.cp, plumbob.namespace
    node_a, node_b = f"a-{run_id}", f"b-{run_id}"
    make_cluster(
        [NodeSpec(node_a, fault="hang"), NodeSpec(node_b, misconfigurations=["kubelet-always-allow"])]
    )
    other = f"vapq-{run_id}"  # targets only B
    apply(cp, profile_body(other, run_id, nodeSelector={"matchLabels": {"kubernetes.io/hostname": node_b}}))
    rescan(cp, other, "1")
    other_scan = wait_for("the scan of B alone", lambda: completed_scan(cp, other), timeout=120)["metadata"][
        "name"
    ]

    profile = f"vap-{run_id}"
    apply(cp, profile_body(profile, run_id))
    _one_at_a_time(cp, profile, deadline=300)  # A's audit hangs (its Pod lives): B waits for A
    rescan(cp, profile, "1")
    scan = _scan_started(cp, profile)
    pod = _audit_pod(plumbob, scan, node_a)["metadata"]["name"]
    token = cp.kubectl(
        "create", "token", "plumbob-agent", "-n", ns, "--bound-object-kind=Pod", f"--bound-object-name={pod}"
    ).stdout.strip()
    unbound = cp.kubectl("create", "token", "plumbob-agent", "-n", ns).stdout.strip()
    own, b_name = f"{profile}.{node_a}", f"{profile}.{node_b}"

    def refused(body: dict[str, Any] | None, *why: str, method: str = "POST", path: str = PATH) -> None:
        code, message = _refusal(lambda: cp.request(method, path, body, token=token))
        assert code == 403, (code, message)
        for part in why:
            assert part in message, message

    # B's report name: neither for A's node nor for B's
    refused(
        _report(b_name, profile=profile, node=node_a, scan=scan),
        f"may write its results of profile {profile} only as ComplianceReport {own}, not {b_name}",
    )
    refused(
        _report(b_name, profile=profile, node=node_b, scan=scan),
        f"node {node_a} may only write its own ComplianceReport, not one for node {node_b}",
    )
    # a second report of its own node
    refused(
        _report(f"{own}-2", profile=profile, node=node_a, scan=scan), f"not {own}-2", "one report per profile"
    )
    # a profile whose scan does not target A: with that scan, and with A's own
    refused(
        _report(f"{other}.{node_a}", profile=other, node=node_a, scan=other_scan),
        f"node {node_a} runs no audit of scan {other_scan}",
        f"Pod {pod}",
    )
    refused(
        _report(f"{other}.{node_a}", profile=other, node=node_a, scan=scan),
        f"spec.scan {scan} is not a scan of profile {other}",
    )
    code, message = _refusal(
        lambda: cp.request("POST", PATH, _report(own, profile=profile, node=node_a, scan=scan), token=unbound)
    )
    assert code == 403 and "not bound to a node" in message, message
    for name in (b_name, f"{own}-2", f"{other}.{node_a}"):
        assert get(cp, "compliancereport", name) is None, f"{name} was stored"

    # A may still write its own results, for the scan its Pod audits (a node can lie about itself)
    created = cp.request("POST", PATH, _report(own, profile=profile, node=node_a, scan=scan), token=token)
    assert created["metadata"]["name"] == own

    # then B's agent writes its report as usual, and the scan completes with B's real results
    done = wait_for("the scan to complete", lambda: completed_scan(cp, profile), timeout=120)
    assert done["metadata"]["name"] == scan
    assert done["status"]["nodes"]["done"] == 2 and not done["status"]["nodes"]["problems"], done["status"]
    assert _rule(done, "4.2.2")["failingNodes"] == [node_b]
    real = get(cp, "compliancereport", b_name)
    assert real is not None and real["spec"]["nodeName"] == node_b and real["spec"]["scan"] == scan
    assert {r["id"]: r["status"] for r in real["spec"]["results"]}["4.2.2"] == "fail"

    # nor can A replace or delete B's report now that it exists. The scan is over, so its Jobs
    # and with them A's Pod are gone, and a token bound to a deleted Pod is no longer accepted
    # (401): the next scan's audit Pod on A gives A a live token (it hangs; B waits behind it).
    rescan(cp, profile, "2")
    scan = _scan_started(cp, profile, exclude=frozenset({scan}))
    pod = _audit_pod(plumbob, scan, node_a)["metadata"]["name"]
    token = cp.kubectl(
        "create", "token", "plumbob-agent", "-n", ns, "--bound-object-kind=Pod", f"--bound-object-name={pod}"
    ).stdout.strip()
    forged = _report(b_name, profile=profile, node=node_b, scan=scan)
    forged["metadata"]["resourceVersion"] = real["metadata"]["resourceVersion"]
    refused(forged, f"not one for node {node_b}", method="PUT", path=f"{PATH}/{b_name}")
    refused(None, "cannot delete", method="DELETE", path=f"{PATH}/{b_name}")
    after = get(cp, "compliancereport", b_name)
    assert after is not None and after["metadata"]["resourceVersion"] == real["metadata"]["resourceVersion"]


def test_admin_copy_of_a_report_neither_blocks_nor_replaces_it(
    plumbob: Plumbob, make_cluster: MakeCluster, run_id: str
) -> None:
    cp = plumbob.cp
    node_a, node_b = f"a-{run_id}", f"b-{run_id}"
    cluster = make_cluster(
        [NodeSpec(node_a, fault="hang"), NodeSpec(node_b, misconfigurations=["kubelet-always-allow"])]
    )
    profile = f"dup-{run_id}"
    apply(cp, profile_body(profile, run_id))
    _one_at_a_time(cp, profile, deadline=15)  # A's audit hangs until its deadline; B waits
    rescan(cp, profile, "1")
    first = _scan_started(cp, profile)
    _audit_pod(plumbob, first, node_a)
    real_name = f"{profile}.{node_b}"

    # an admin's copy of B's results for the running scan, clean, while B waits: it must not stand in
    forged = f"{real_name}.copy"
    cp.request("POST", PATH, _report(forged, profile=profile, node=node_b, scan=first))
    done = wait_for("the first scan to complete", lambda: completed_scan(cp, profile), timeout=120)
    nodes = done["status"]["nodes"]
    assert nodes["done"] == 1 and [p["node"] for p in nodes["problems"]] == [node_a], nodes
    assert _rule(done, "4.2.2")["failingNodes"] == [node_b], "B's real results, not the copy's"
    real = get(cp, "compliancereport", real_name)
    assert real is not None and real["spec"]["scan"] == first

    # a copy of an older scan, made after B's real report: the next scan is not blocked by it
    stale = f"{real_name}.old"
    cp.request("POST", PATH, _report(stale, profile=profile, node=node_b, scan=first, status="fail"))
    cluster.set_fault(node_a, "none")
    rescan(cp, profile, "2")
    second = _scan_started(cp, profile, exclude=frozenset({first}))
    done = wait_for("the second scan", lambda: completed_scan(cp, profile, exclude={first}), timeout=120)
    assert done["metadata"]["name"] == second
    assert done["status"]["nodes"]["done"] == 2 and not done["status"]["nodes"]["problems"], done["status"]
    real = get(cp, "compliancereport", real_name)
    assert real is not None and real["spec"]["scan"] == second

    for name in (forged, stale):
        probe = functools.partial(events, cp, "MisnamedReport", name=name, kind="ComplianceReport")
        told = wait_for(f"the MisnamedReport event on {name}", probe)
        assert f"read only from the report named after them, {real_name};" in told[0]["message"]
        stalled = condition(get(cp, "compliancereport", name), "Stalled")
        assert stalled is not None and stalled["reason"] == "MisnamedReport", stalled
