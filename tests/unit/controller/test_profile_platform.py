"""The profile's platform and its coverage counts.

Cases:
- an explicit platform wins over what the nodes show; ``auto`` detects from node digests (labels,
  kubelet version) and the API server's version; the reason says which;
- the ``PlatformSupported`` condition: true with the benchmark for a platform that has one, false
  with a clear message for a platform that falls back to the generic benchmark;
- coverage: provider-managed rules counted apart from tested, manual and not-applicable ones.
"""

from __future__ import annotations

from plumbob.benchmarks.catalog import load_benchmark
from plumbob.controller.decisions.digests import NodeDigest
from plumbob.controller.decisions.platforms import PlatformChoice, choose_platform, condition
from plumbob.controller.steps.profile_status import coverage


def node(name: str, version: str = "v1.33.4", **labels: str) -> NodeDigest:
    return NodeDigest(
        name=name, uid=name, labels=dict(labels), taints=(), ready=True, created=None, kubelet_version=version
    )


def test_explicit_platform_wins() -> None:
    choice = choose_platform("rke2", [node("a", "v1.33.4+k3s1")], "v1.33.4+k3s1")
    assert choice == PlatformChoice("rke2", "set in the profile", True)


def test_auto_detects_from_nodes_and_server() -> None:
    assert (
        choose_platform("auto", [node("a", "v1.33.4+k3s1"), node("b", "v1.33.4+k3s1")], "v1.33.4").platform
        == "k3s"
    )
    gke = choose_platform("auto", [node("a", **{"cloud.google.com/gke-nodepool": "p"})], "v1.33.4")
    assert (
        gke.platform == "gke"
        and "detected" in gke.reason
        and "label cloud.google.com/gke-nodepool" in gke.reason
    )
    assert choose_platform("auto", [node("a")], "v1.33.4-eks-abcdef0").platform == "eks"
    assert choose_platform("auto", [node("a")], "v1.33.4").platform == "generic"


def test_condition() -> None:
    ok = condition(PlatformChoice("k3s", "detected: 1 of 1 nodes", True), "k3s-cis-1.12")
    assert ok[0] is True and ok[1] == "PlatformBenchmark" and "k3s-cis-1.12" in ok[2]
    missing = condition(PlatformChoice("openshift", "set in the profile", False), "cis-1.12")
    assert missing[0] is False and missing[1] == "NoPlatformBenchmark"
    assert "no benchmark of its own" in missing[2] and "cis-1.12" in missing[2]


def test_coverage_counts_provider_managed_apart() -> None:
    rules = load_benchmark("eks-cis-1.12").rules
    results = [
        {"id": "1.2.1", "status": "not-applicable"},
        {"id": "2.1", "status": "not-applicable"},
        {"id": "4.2.1", "status": "pass"},
        {"id": "4.2.2", "status": "fail"},
        {"id": "4.2.4", "status": "manual"},
        {"id": "4.1.3", "status": "not-applicable"},
        {"id": "4.2.3", "status": "excepted"},
    ]
    assert coverage(results, rules) == {"tested": 3, "providerManaged": 2, "manual": 1, "notApplicable": 1}
