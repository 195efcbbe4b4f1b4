"""Platform variants (k3s, RKE2, EKS, GKE, AKS): data, derivation, detection, and audits of
fixture nodes of each platform through the CLI.

Cases:
- every variant derives from its base: k3s has no static pod manifests (1.1.1-1.1.8 not
  applicable with the reason), its own defaults (evidence "set by k3s"), its certificate paths;
  hosted platforms hand sections 1-3 to the provider with the responsibility statement's link;
- a variant whose rule glob matches nothing, or with an unknown field, fails to load; editing the
  base makes the variant's compiled file stale;
- ``host_directories`` (GKE's /home/kubernetes) is carried into the benchmark; one that is not
  a plain absolute directory (relative, ``..``, ``/``, upper case, too long for a volume name)
  or one of the kernel's or the runtimes' (``/var/run``…) fails to load;
- detection: k3s/rke2/eks/gke version suffixes, provider labels, a bare cloud provider id is not
  enough, the API server's version wins, the majority of nodes otherwise; on a node, the marks
  its platform leaves;
- ``plumbob audit`` on each platform's fixture picks that platform's benchmark by itself, and an
  explicit ``--platform`` wins; k3s flags come from the k3s process and its config file, an
  explicit argument overrides what k3s sets; RKE2's manifests are found in its own directory; a
  hosted worker's summary counts tested / provider-managed / manual apart.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from plumbob.benchmarks import catalog
from plumbob.benchmarks.catalog import CatalogError, load_benchmark
from plumbob.benchmarks.detection import NodeSignals, detect_platform, host_platform, node_platform
from plumbob.benchmarks.platforms import PlatformVariant
from plumbob.benchmarks.validation import ValidationError, validated
from plumbob.benchmarks.versions import has_platform_benchmark, newest_for_platform
from plumbob.cli import main
from testbed.hosttrees import K3S_CONFIG, PLATFORM_SPECS, build_tree, k3s_server_spec

HOSTED = ("eks", "gke", "aks")


def rule(benchmark_id: str, rule_id: str) -> object:
    return next(r for r in load_benchmark(benchmark_id).rules if r.id == rule_id)


def test_variants_derive_from_their_base() -> None:
    base = load_benchmark("cis-1.12")
    for platform in PLATFORM_SPECS:
        variant = load_benchmark(f"{platform}-cis-1.12")
        assert variant.platform == platform and variant.base == "cis-1.12"
        assert [r.id for r in variant.rules] == [r.id for r in base.rules]
    k3s_manifest = rule("k3s-cis-1.12", "1.1.1")
    assert "no static pod manifest" in (getattr(k3s_manifest, "not_applicable", None) or "")
    for platform in HOSTED:
        variant = load_benchmark(f"{platform}-cis-1.12")
        managed = [r.id for r in variant.rules if r.provider_managed]
        assert managed == [r.id for r in base.rules if r.id.split(".")[0] in ("1", "2", "3")]
        assert all(r.provider_managed == variant.responsibility for r in variant.rules if r.provider_managed)
        assert (variant.responsibility or "").startswith("https://")


def _copy(tmp_path: Path, *names: str) -> Path:
    for name in names:
        shutil.copytree(catalog.DATA_DIR / name, tmp_path / name)
    return tmp_path


def test_bad_variants_fail(tmp_path: Path) -> None:
    data = _copy(tmp_path, "cis-1.12", "k3s-cis-1.12")
    variant = data / "k3s-cis-1.12" / "platform.yaml"
    text = variant.read_text()
    variant.write_text(text.replace('"4.1.1", "4.1.2"', '"4.1.1", "9.9.9"'))
    with pytest.raises(CatalogError, match=r"9\.9\.9"):
        load_benchmark("k3s-cis-1.12", directory=data / "k3s-cis-1.12")
    variant.write_text(text.replace("paths:", "pathz:"))
    with pytest.raises(CatalogError, match=r"platform\.yaml"):
        load_benchmark("k3s-cis-1.12", directory=data / "k3s-cis-1.12")


def test_host_directories(tmp_path: Path) -> None:
    assert load_benchmark("gke-cis-1.12").host_directories == ["/home/kubernetes"]
    assert load_benchmark("cis-1.12").host_directories == []
    data = _copy(tmp_path, "cis-1.12", "gke-cis-1.12")
    variant = data / "gke-cis-1.12" / "platform.yaml"
    variant.write_text(variant.read_text().replace("  - /home/kubernetes", "  - /home/../etc"))
    with pytest.raises(CatalogError, match=re.escape("host directory '/home/../etc'")):
        load_benchmark("gke-cis-1.12", directory=data / "gke-cis-1.12")
    raw = {"id": "gke-x", "platform": "gke", "base": "cis-1.12", "title": "t"}
    assert validated(PlatformVariant, {**raw, "host_directories": ["/home/kubernetes"]}).host_directories
    bad_ones = (
        "home/kubernetes",
        "/",
        "/Home/kubernetes",
        "/home/./kubernetes",
        "/" + "x" * 60,
        "/var/run/x",
    )
    for bad in bad_ones:
        with pytest.raises(ValidationError, match="host directory"):
            validated(PlatformVariant, {**raw, "host_directories": [bad]})


def test_editing_the_base_makes_the_variant_stale(tmp_path: Path) -> None:
    data = _copy(tmp_path, "cis-1.12", "eks-cis-1.12")
    assert catalog._from_compiled(data / "eks-cis-1.12") is not None
    section = data / "cis-1.12" / "4-worker-nodes.yaml"
    section.write_text(section.read_text() + "\n")
    assert catalog._from_compiled(data / "eks-cis-1.12") is None


@pytest.mark.parametrize(
    ("node", "platform"),
    [
        (NodeSignals("a", kubelet_version="v1.33.4+k3s1"), "k3s"),
        (NodeSignals("a", kubelet_version="v1.33.4+rke2r1"), "rke2"),
        (NodeSignals("a", kubelet_version="v1.33.4-eks-1a2b3c4"), "eks"),
        (NodeSignals("a", kubelet_version="v1.33.4-gke.1245000"), "gke"),
        (
            NodeSignals("a", labels={"kubernetes.azure.com/cluster": "mc_x"}, provider_id="azure:///s/1"),
            "aks",
        ),
        (NodeSignals("a", labels={"eks.amazonaws.com/nodegroup": "ng"}), "eks"),
        (NodeSignals("a", labels={"cloud.google.com/gke-nodepool": "pool"}), "gke"),
        (NodeSignals("a", provider_id="aws:///eu-west-1a/i-0abc", kubelet_version="v1.33.4"), "generic"),
    ],
)
def test_node_platform(node: NodeSignals, platform: str) -> None:
    assert node_platform(node)[0] == platform


def test_cluster_detection() -> None:
    k3s = NodeSignals("k", kubelet_version="v1.33.4+k3s1")
    plain = NodeSignals("p", kubelet_version="v1.33.4")
    assert detect_platform([plain, plain]).platform == "generic"
    found = detect_platform([k3s, k3s, plain])
    assert found.platform == "k3s" and "2 of 3 nodes" in found.reason
    assert detect_platform([plain], server_version="v1.33.4-eks-abc").platform == "eks"
    assert detect_platform([]).platform == "generic"


def test_versions_by_platform() -> None:
    assert newest_for_platform("k3s") == "k3s-cis-1.12"
    assert newest_for_platform("generic") == "cis-1.12"
    assert has_platform_benchmark("aks") and not has_platform_benchmark("openshift")


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("platforms")
    return {p: build_tree(base / p, p).root for p in (*PLATFORM_SPECS, "control-plane")}


def audit_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    main(["audit", "--format", "json", *args])
    doc: dict[str, object] = json.loads(capsys.readouterr().out)
    return doc


def findings(doc: dict[str, object]) -> dict[str, dict[str, object]]:
    items = doc["findings"]
    assert isinstance(items, list)
    return {f["rule_id"]: f for f in items}


@pytest.mark.parametrize("platform", [*PLATFORM_SPECS, "control-plane"])
def test_host_detection(trees: dict[str, Path], platform: str) -> None:
    root = trees[platform]
    found = host_platform(lambda mark: (root / mark.lstrip("/")).exists())
    assert found.platform == (platform if platform != "control-plane" else "generic")


@pytest.mark.parametrize("platform", list(PLATFORM_SPECS))
def test_audit_picks_the_platform(
    trees: dict[str, Path], capsys: pytest.CaptureFixture[str], platform: str
) -> None:
    doc = audit_json(capsys, "--host-root", str(trees[platform]))
    assert doc["benchmark"] == f"{platform}-cis-1.12"
    assert doc["summary"]["error"] == 0  # type: ignore[index]
    explicit = audit_json(capsys, "--host-root", str(trees[platform]), "--platform", "generic")
    assert explicit["benchmark"] == "cis-1.12"


def test_k3s_single_process(trees: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    found = findings(audit_json(capsys, "--host-root", str(trees["k3s"])))
    assert found["1.1.1"]["status"] == "not-applicable"
    assert "no static pod manifest" in str(found["1.1.1"]["reason"])
    audit_log = found["1.2.16"]
    assert audit_log["status"] == "pass"
    assert audit_log["evidence"][0]["location"] == "pid 2001 --audit-log-path"  # type: ignore[index]
    profiling = found["1.2.15"]
    assert profiling["status"] == "pass"
    assert profiling["evidence"][0]["location"] == "set by k3s unless overridden"  # type: ignore[index]
    assert found["4.2.1"]["status"] == "pass"
    assert found["1.1.13"]["status"] == "pass"  # admin kubeconfig found in k3s's place
    assert "admin.kubeconfig" in str(found["1.1.13"]["evidence"])


def test_k3s_explicit_argument_overrides_what_k3s_sets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = k3s_server_spec()
    config = spec.files[K3S_CONFIG].data
    assert config is not None
    config["kube-apiserver-arg"].append("profiling=true")
    root = spec.write(tmp_path / "k3s").root
    profiling = findings(audit_json(capsys, "--host-root", str(root), "--rules", "1.2.15"))["1.2.15"]
    assert profiling["status"] == "fail"
    assert profiling["evidence"][0]["location"] == "pid 2001 --profiling"  # type: ignore[index]


def test_rke2_manifests_in_their_place(trees: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    found = findings(audit_json(capsys, "--host-root", str(trees["rke2"])))
    assert found["1.1.1"]["status"] == "pass"
    assert "/var/lib/rancher/rke2/agent/pod-manifests/kube-apiserver.yaml" in str(found["1.1.1"]["evidence"])
    assert found["4.1.1"]["status"] == "not-applicable"


@pytest.mark.parametrize("platform", HOSTED)
def test_hosted_worker_summary(
    trees: dict[str, Path], capsys: pytest.CaptureFixture[str], platform: str
) -> None:
    doc = audit_json(capsys, "--host-root", str(trees[platform]))
    coverage = doc["coverage"]
    assert isinstance(coverage, dict)
    managed = [f for f in findings(doc).values() if f["provider_managed"]]
    assert coverage["provider-managed"] == len(managed) == 72
    assert all(f["status"] == "not-applicable" for f in managed)
    assert all(str(f["reason"]).startswith("managed by the provider") for f in managed)
    assert coverage["tested"] > 0 and coverage["manual"] > 0
    kubelet_config = findings(doc)["4.1.9"]
    assert kubelet_config["status"] == "pass"
    main(["audit", "--host-root", str(trees[platform])])
    text = capsys.readouterr().out
    assert f"{coverage['tested']} tested, 72 provider-managed, {coverage['manual']} manual" in text
