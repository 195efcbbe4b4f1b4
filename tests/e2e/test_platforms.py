"""Platform benchmarks through the operator: simulated nodes that look like k3s, RKE2, EKS, GKE and
AKS nodes (labels, kubelet version suffix, provider id, and a host tree in that platform's layout),
one profile per platform with ``platform: auto``.

Cases:
- each profile resolves its platform from the nodes it selects and audits with that platform's
  benchmark (``resolvedBenchmark``: id, platform, the reason), ``PlatformSupported`` is true;
- k3s: the manifest rules are not applicable with the reason; settings come from the k3s process;
- hosted workers (EKS, GKE, AKS): the control-plane rules are not applicable, "managed by the
  provider", with the provider's statement linked; the profile's coverage counts them apart from
  the tested and manual rules;
- GKE: the kubelet's config file, /home/kubernetes/kubelet-config.yaml, outside the directories
  every audit Pod mounts, is read (its mode and owner rules pass naming it, its settings pass):
  the Job mounts the platform's directory on a node that shows GKE, and the agent reads only
  what the Pod's mounts hold (``PLUMBOB_HOST_PATHS``), as it would in a real Pod;
- an explicit ``platform: generic`` wins over detection.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from e2e_support import (
    MakeCluster,
    NodeSpec,
    Plumbob,
    apply,
    completed_scan,
    condition,
    get,
    profile_body,
    rescan,
    wait_for,
)

pytestmark = pytest.mark.e2e

PLATFORM_LABEL = "plumbob.test/platform"
NODES: dict[str, dict[str, Any]] = {
    "k3s": {"kind": "control-plane", "kubelet_version": "v1.36.3+k3s1"},
    "rke2": {"kind": "control-plane", "kubelet_version": "v1.36.3+rke2r1"},
    "eks": {
        "labels": {"eks.amazonaws.com/nodegroup": "ng-1"},
        "kubelet_version": "v1.36.3-eks-1a2b3c4",
        "provider_id": "aws:///eu-west-1a/i-0123456789abcdef0",
    },
    "gke": {
        "labels": {"cloud.google.com/gke-nodepool": "default-pool"},
        "kubelet_version": "v1.36.3-gke.1200000",
        "provider_id": "gce://project/europe-west1-b/gke-node-1",
    },
    "aks": {
        "labels": {"kubernetes.azure.com/cluster": "MC_rg_cluster_westeurope"},
        "provider_id": "azure:///subscriptions/0000/resourceGroups/mc/providers/Microsoft.Compute/vm/aks-1",
    },
}


def _profile(name: str, run_id: str, platform: str, requested: str = "auto") -> dict[str, Any]:
    body = profile_body(name, run_id)
    body["spec"]["benchmark"]["platform"] = requested
    body["spec"]["nodeSelector"]["matchLabels"][PLATFORM_LABEL] = platform
    return body


def test_platforms_are_detected_and_audited(plumbob: Plumbob, make_cluster: MakeCluster, run_id: str) -> None:
    cp = plumbob.cp
    make_cluster(
        [
            NodeSpec(
                f"{p}-{run_id}",
                info.get("kind", "worker"),
                tree=p,
                labels={PLATFORM_LABEL: p, **info.get("labels", {})},
                kubelet_version=info.get("kubelet_version"),
                provider_id=info.get("provider_id", ""),
            )
            for p, info in NODES.items()
        ]
    )
    for platform in NODES:
        apply(cp, _profile(f"{platform}-{run_id}", run_id, platform))
        rescan(cp, f"{platform}-{run_id}", "1")
    apply(cp, _profile(f"explicit-{run_id}", run_id, "k3s", requested="generic"))
    rescan(cp, f"explicit-{run_id}", "1")

    def with_coverage(profile: str) -> dict[str, Any] | None:
        p = get(cp, "complianceprofile", profile)
        return p if p and (p.get("status") or {}).get("coverage") else None

    for platform in NODES:
        profile, node = f"{platform}-{run_id}", f"{platform}-{run_id}"
        wait_for(f"the {platform} scan", functools.partial(completed_scan, cp, profile), timeout=180)
        prof = wait_for(f"the {platform} coverage", functools.partial(with_coverage, profile))
        resolved = prof["status"]["resolvedBenchmark"]
        assert resolved["id"] == f"{platform}-cis-1.12" and resolved["platform"] == platform, resolved
        assert resolved["platformReason"].startswith("detected: 1 of 1 nodes"), resolved
        supported = condition(prof, "PlatformSupported") or {}
        assert supported.get("status") == "True" and supported.get("reason") == "PlatformBenchmark"
        report = get(cp, "compliancereport", f"{profile}.{node}")
        assert report is not None
        results = {r["id"]: r for r in report["spec"]["results"]}
        coverage = prof["status"]["coverage"]
        if platform in ("eks", "gke", "aks"):
            managed = results["1.2.1"]
            assert managed["status"] == "not-applicable"
            assert managed["reason"].startswith("managed by the provider (see https://")
            assert coverage["providerManaged"] == 72, coverage
            assert coverage["tested"] > 0 and coverage["manual"] > 0, coverage
            assert results["4.2.1"]["status"] == "pass"
        else:
            assert coverage["providerManaged"] == 0 and coverage["tested"] > 40, coverage
        if platform == "gke":
            for rule_id in ("4.1.9", "4.1.10"):
                assert results[rule_id]["status"] == "pass", results[rule_id]
                assert "/home/kubernetes/kubelet-config.yaml" in str(results[rule_id]["evidence"])
        if platform == "k3s":
            assert results["1.1.1"]["status"] == "not-applicable"
            assert "no static pod manifest" in results["1.1.1"]["reason"]
            assert results["1.2.16"]["status"] == "pass"
            assert "--audit-log-path" in str(results["1.2.16"]["evidence"])
        if platform == "rke2":
            assert results["1.1.1"]["status"] == "pass"
            assert "/var/lib/rancher/rke2/agent/pod-manifests" in str(results["1.1.1"]["evidence"])

    wait_for("the explicit profile's scan", lambda: completed_scan(cp, f"explicit-{run_id}"), timeout=180)
    explicit = wait_for(
        "the explicit profile's status",
        lambda: (
            (p := get(cp, "complianceprofile", f"explicit-{run_id}"))
            and (p.get("status") or {}).get("resolvedBenchmark")
            and p
        ),
    )
    assert explicit["status"]["resolvedBenchmark"]["id"] == "cis-1.12"
    assert explicit["status"]["resolvedBenchmark"]["platformReason"] == "set in the profile"
