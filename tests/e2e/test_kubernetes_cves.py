"""Kubernetes CVE exposure through the operator, on simulated nodes that report old kubelets.

Cases:
- a profile's ``status.kubernetesCves`` names, for a node whose kubelet is v1.30.2, CVE-2024-10220
  with the component, the running and the fixed version (1.30.3), and the patch-level finding
  (newer patches of 1.30 exist); a node at v1.29.3 has its own; the data's version and date show,
  source "package";
- a ConfigMap adds a CVE: it appears without restarting the operator, source names the ConfigMap;
- bad data in the ConfigMap: refused with a clear ``dataStatus``, the previous data (with the added
  CVE) stays in use;
- deleting the ConfigMap returns to the shipped data.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from e2e_support import MakeCluster, NodeSpec, Plumbob, apply, get, profile_body, wait_for

from plumbob.cves.data import SHIPPED

pytestmark = pytest.mark.e2e

CONFIGMAP = "plumbob-kubernetes-cves"


def _cves(plumbob: Plumbob, profile: str) -> dict[str, Any] | None:
    body = get(plumbob.cp, "complianceprofile", profile)
    return ((body or {}).get("status") or {}).get("kubernetesCves")


def _configmap(plumbob: Plumbob, text: str) -> None:
    apply(
        plumbob.cp,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP, "namespace": plumbob.namespace},
            "data": {"cves.json": text},
        },
    )


def test_cve_exposure_and_override(plumbob: Plumbob, make_cluster: MakeCluster, run_id: str) -> None:
    old, older = f"old-{run_id}", f"older-{run_id}"
    make_cluster([NodeSpec(old, kubelet_version="v1.30.2"), NodeSpec(older, kubelet_version="v1.29.3")])
    profile = f"cves-{run_id}"
    apply(plumbob.cp, profile_body(profile, run_id))

    status = wait_for("CVE status", lambda: (s := _cves(plumbob, profile)) and s["exposureCount"] and s)
    shipped = json.loads(SHIPPED.read_text())
    assert status["source"] == "package"
    assert (
        status["dataVersion"] == shipped["data_version"] and status["dataPublished"] == shipped["published"]
    )
    found = {(e["cve"], e["where"]): e for e in status["exposures"]}
    gitrepo = found[("CVE-2024-10220", old)]
    assert (gitrepo["component"], gitrepo["running"], gitrepo["fixed"]) == ("kubelet", "v1.30.2", "1.30.3")
    patch = found[("patch-level", old)]
    assert patch["fixed"] == shipped["newest_patches"]["1.30"]
    assert ("CVE-2024-10220", older) in found and ("CVE-2025-0426", older) in found

    added = json.loads(SHIPPED.read_text())
    added["data_version"] = f"override-{run_id}"
    added["vulnerabilities"].append(
        {
            "id": "CVE-2099-0001",
            "published": "2026-12-01",
            "severity": "critical",
            "references": ["https://example.invalid/CVE-2099-0001"],
            "affected": [
                {
                    "package": {"ecosystem": "kubernetes", "name": "kubelet"},
                    "ranges": [{"type": "SEMVER", "events": [{"introduced": "1.29.0"}, {"fixed": "1.36.4"}]}],
                }
            ],
        }
    )
    _configmap(plumbob, json.dumps(added))
    status = wait_for(
        "the ConfigMap's CVE in the status",
        lambda: (s := _cves(plumbob, profile)) and s["dataVersion"] == f"override-{run_id}" and s,
    )
    assert status["source"] == f"ConfigMap {plumbob.namespace}/{CONFIGMAP}"
    new = [e for e in status["exposures"] if e["cve"] == "CVE-2099-0001"]
    assert {e["where"] for e in new} == {old, older} and all(e["fixed"] == "1.36.4" for e in new)
    assert status["exposures"][0]["severity"] == "critical"  # most severe first

    _configmap(plumbob, '{"schema": "plumbob.dev/kubernetes-cves/v1", "vulnerabilities": [')
    status = wait_for(
        "the refusal in the status", lambda: (s := _cves(plumbob, profile)) and s.get("dataStatus") and s
    )
    assert "refused" in status["dataStatus"] and "not JSON" in status["dataStatus"]
    assert status["dataVersion"] == f"override-{run_id}"  # the previous data stays in use
    assert any(e["cve"] == "CVE-2099-0001" for e in status["exposures"])

    plumbob.cp.kubectl("delete", "configmap", CONFIGMAP, "-n", plumbob.namespace)
    wait_for(
        "the shipped data again", lambda: (s := _cves(plumbob, profile)) and s["source"] == "package" and s
    )
