"""The API server itself refuses a node's agent writing another node's results.

The ValidatingAdmissionPolicy shipped in ``crds/policy/`` compares ``spec.nodeName`` of a
ComplianceReport with the node bound to the agent's pod-bound service-account token.

Cases:
- a token bound to a Pod on node A creates node A's report;
- the same token is refused (403, message names both nodes) for node B's report, on create and
  on update of B's existing report; B's report is unchanged afterwards;
- a token of the agent's service account that is not bound to a Pod is refused outright;
- the operator and admins are not affected (the admin writes B's report).
"""

from __future__ import annotations

import json
import urllib.error
from typing import Any

import pytest
from e2e_support import MakeCluster, NodeSpec, Plumbob, get, wait_for

pytestmark = pytest.mark.e2e
PATH = "/apis/plumbob.dev/v1alpha1/compliancereports"


def _report(profile: str, node: str, scan: str = "forged-scan") -> dict[str, Any]:
    return {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceReport",
        "metadata": {"name": f"{profile}.{node}"},
        "spec": {
            "profile": profile,
            "nodeName": node,
            "scan": scan,
            "results": [{"id": "4.2.1", "severity": "high", "status": "pass"}],
        },
    }


def _refusal(call: Any) -> tuple[int, str]:
    with pytest.raises(urllib.error.HTTPError) as err:
        call()
    return err.value.code, json.loads(err.value.read() or b"{}").get("message", "")


def test_node_token_cannot_write_other_nodes(
    plumbob: Plumbob, make_cluster: MakeCluster, run_id: str
) -> None:
    cp, ns = plumbob.cp, plumbob.namespace
    node_a, node_b = f"a-{run_id}", f"b-{run_id}"
    make_cluster([NodeSpec(node_a), NodeSpec(node_b)])
    pod = f"agent-{run_id}"
    cp.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod, "namespace": ns},
                "spec": {
                    "nodeName": node_a,
                    "serviceAccountName": "plumbob-agent",
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "c",
                            "image": "plumbob",
                            "command": ["python", "-c", "import time; time.sleep(300)"],
                        }
                    ],
                },
            }
        ),
    )
    token = cp.kubectl(
        "create", "token", "plumbob-agent", "-n", ns, "--bound-object-kind=Pod", f"--bound-object-name={pod}"
    ).stdout.strip()
    unbound = cp.kubectl("create", "token", "plumbob-agent", "-n", ns).stdout.strip()
    profile = f"vap-{run_id}"

    created = cp.request("POST", PATH, _report(profile, node_a), token=token)
    assert created["spec"]["nodeName"] == node_a

    code, message = _refusal(lambda: cp.request("POST", PATH, _report(profile, node_b), token=token))
    assert code == 403 and node_a in message and node_b in message, message

    cp.request("POST", PATH, _report(profile, node_b, scan="real-scan"))  # admin: not matched by the policy
    existing = wait_for("B's report", lambda: get(cp, "compliancereport", f"{profile}.{node_b}"))
    forged = {
        **_report(profile, node_b),
        "metadata": {
            "name": f"{profile}.{node_b}",
            "resourceVersion": existing["metadata"]["resourceVersion"],
        },
    }
    code, message = _refusal(lambda: cp.request("PUT", f"{PATH}/{profile}.{node_b}", forged, token=token))
    assert code == 403, message
    after = get(cp, "compliancereport", f"{profile}.{node_b}")
    assert after is not None and after["spec"]["scan"] == "real-scan"

    code, message = _refusal(lambda: cp.request("POST", PATH, _report(profile, f"c-{run_id}"), token=unbound))
    assert code == 403 and "not bound to a node" in message, message
    cp.kubectl("delete", "pod", pod, "-n", ns, "--wait=false")
