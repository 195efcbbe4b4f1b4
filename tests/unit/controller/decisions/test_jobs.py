"""The audit Job body for one node.

Cases:
- pinned with ``spec.nodeName`` (no scheduler), named by :func:`job_name`, owned by the scan
  (controller owner reference with the scan's uid), labelled for the Job watch and the scan;
- bounded: ``activeDeadlineSeconds`` from the scan, ``backoffLimit``, ``restartPolicy: Never``;
  no ``ttlSecondsAfterFinished`` (the operator deletes a scan's Jobs once the scan is finished);
- Pod security: only hostPath volumes, every one mounted read-only under ``/host`` (no other
  mounts), each of type ``Directory`` (never created by the runtime) and one that every Linux node
  has, read-only recursively (a mount below one, such as the kubelet's own bind mount of
  /var/lib/kubelet, is read-only too);
- every host file a benchmark names lies under those mounts or its platform's own directories
  (GKE: /home/kubernetes), except known locations of other platforms' nodes (skipped by the agent
  where not mounted); a platform directory is mounted the same way (read-only, recursively,
  ``Directory``), but only on a node whose own labels or kubelet version show that platform: not
  on another platform's node, a node showing none, or with the generic benchmark;
  ``hostPID``, non-privileged, read-only root file system, no privilege escalation,
  capabilities drop ALL and add only DAC_READ_SEARCH, seccomp RuntimeDefault, no host network/IPC;
- tolerations: the default control-plane ones plus the profile's;
- the environment carries node (from the downward API), profile, scan, host root, the host
  directories mounted there (exactly the volumes) and the tailoring as JSON that parses back to
  the same :class:`Tailoring`;
- a node name longer than a label value gets no node label but keeps the annotation.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

import plumbob.benchmarks
from plumbob.api import ComplianceScan
from plumbob.api.common import Toleration
from plumbob.benchmarks import catalog
from plumbob.benchmarks.catalog import load_benchmark
from plumbob.benchmarks.rules import AllOf, AnyOf, FileModeAudit, FileOwnerAudit
from plumbob.benchmarks.tailoring import Tailoring
from plumbob.controller.decisions.digests import ANNOTATION_NODE, NodeDigest, job_digest
from plumbob.controller.decisions.jobs import HOST_ROOT, TAILORING_BUDGET, audit_job, platform_host_paths
from plumbob.controller.decisions.scanning import job_name
from plumbob.engine.node.components import COMPONENTS, EMBEDDINGS
from plumbob.names import LABEL_NODE, LABEL_PROFILE, LABEL_SCAN

SCAN = ComplianceScan.model_validate(
    {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceScan",
        "metadata": {"name": "cis-20260601-120000", "uid": "scan-uid-1", "generation": 1},
        "spec": {"profile": "cis", "trigger": "rescan", "maxParallelNodes": 3, "nodeDeadlineSeconds": 120},
    }
)
TAILORING = Tailoring(
    benchmark="cis-1.12",
    include=("1", "4.*"),
    exclude=("4.2.1",),
    manual={"1.1.2*": "checked by the provider"},
    variables={"audit_log_maxage": "90"},
)


def build(node: str = "worker-1", tolerations: list[Toleration] | None = None) -> dict[str, Any]:
    return audit_job(
        scan=SCAN,
        node=node,
        tailoring=TAILORING,
        tolerations=tolerations or [],
        namespace="plumbob-system",
        image="registry.example/plumbob:1",
    )


def pod_spec(body: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = body["spec"]["template"]["spec"]
    return spec


def container(body: dict[str, Any]) -> dict[str, Any]:
    [c] = pod_spec(body)["containers"]
    assert isinstance(c, dict)
    return c


def test_pinned_named_owned() -> None:
    body = build()
    assert body["apiVersion"] == "batch/v1"
    assert body["kind"] == "Job"
    assert body["metadata"]["name"] == job_name(SCAN.metadata.name, "worker-1")
    assert body["metadata"]["namespace"] == "plumbob-system"
    assert pod_spec(body)["nodeName"] == "worker-1"
    [owner] = body["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceScan",
        "name": SCAN.metadata.name,
        "uid": "scan-uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    labels = body["metadata"]["labels"]
    assert labels[LABEL_SCAN] == SCAN.metadata.name
    assert labels[LABEL_PROFILE] == "cis"
    assert labels[LABEL_NODE] == "worker-1"
    assert labels["app.kubernetes.io/managed-by"] == "plumbob"


def test_digest_of_the_body_names_scan_and_node() -> None:
    digest = job_digest(build("worker-7"))
    assert digest is not None
    assert (digest.scan, digest.node, digest.complete, digest.failed_reason) == (
        SCAN.metadata.name,
        "worker-7",
        False,
        None,
    )


def test_bounded() -> None:
    spec = build()["spec"]
    assert spec["activeDeadlineSeconds"] == 120
    assert spec["backoffLimit"] == 1
    assert "ttlSecondsAfterFinished" not in spec
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_only_read_only_host_path_mounts() -> None:
    body = build()
    volumes = {v["name"]: v for v in pod_spec(body)["volumes"]}
    mounts = container(body)["volumeMounts"]
    assert volumes, "the audit needs the host"
    assert all(set(v) == {"name", "hostPath"} for v in volumes.values()), "hostPath volumes only"
    assert {m["name"] for m in mounts} == set(volumes), "every volume mounted, nothing else"
    for m in mounts:
        assert m["readOnly"] is True, m
        assert m["recursiveReadOnly"] == "Enabled", m
        assert "mountPropagation" not in m, m
        assert m["mountPath"] == HOST_ROOT + volumes[m["name"]]["hostPath"]["path"]
    paths = {v["hostPath"]["path"] for v in volumes.values()}
    assert "/proc" in paths
    # A runtime creates a missing hostPath source: only directories every node has, type Directory.
    assert paths <= {"/proc", "/etc", "/var/lib", "/usr/lib", "/lib"}, paths
    assert all(v["hostPath"]["type"] == "Directory" for v in volumes.values())
    assert "/" not in paths, "never the whole host root"
    assert not any(p.startswith(("/var/run", "/run")) for p in paths), "no runtime sockets"


# Known locations in the generic data for nodes of a platform without a benchmark of its own: the
# agent skips them where they are not mounted, and says so in the finding's reason.
UNMOUNTED_KNOWN_LOCATIONS = ("/var/snap/microk8s",)
DATA = Path(plumbob.benchmarks.__file__).parent / "data"


def _under(path: str, directories: Iterable[str]) -> bool:
    return any(path == d or path.startswith(d + "/") for d in directories)


def _file_paths(audit: object) -> Iterable[str]:
    """The host paths a node audit names (known locations of its files), nested audits included."""
    if isinstance(audit, AllOf | AnyOf):
        for part in audit.audits:
            yield from _file_paths(part)
    elif isinstance(audit, FileModeAudit | FileOwnerAudit):
        yield from audit.file.paths


def test_host_mounts_cover_the_files_the_benchmarks_name() -> None:
    """Every file location a benchmark names (and the component table's) lies under the default
    mounts or the benchmark's own platform directories; the generic data's locations for other
    platforms' nodes lie under those platforms' directories, or are listed above."""
    table = [p for info in COMPONENTS.values() for p in info.manifests]
    table += [e.config_file for e in EMBEDDINGS.values()]
    platform_directories = {d for b in catalog.available() for d in load_benchmark(b).host_directories}
    assert platform_directories == {"/home/kubernetes"}
    defaults = [v["hostPath"]["path"] for v in pod_spec(build())["volumes"]]
    for benchmark_id in catalog.available():
        benchmark = load_benchmark(benchmark_id)
        named = {p for r in benchmark.rules for p in _file_paths(r.audit)} | set(table)
        assert len(named) > 20 or not any(r.audit for r in benchmark.rules), named
        own = [*defaults, *benchmark.host_directories]
        assert not set(benchmark.host_directories) & set(defaults), "mounted already"
        uncovered = sorted(p for p in named if not _under(p, own))
        others = [*platform_directories, *UNMOUNTED_KNOWN_LOCATIONS]
        assert [p for p in uncovered if not _under(p, others)] == [], benchmark_id
        if benchmark.platform != "generic":  # where the platform moved the base's files: readable
            raw = yaml.safe_load((DATA / benchmark_id / "platform.yaml").read_text())
            moved = [p.rstrip("/") for p in raw["paths"].values()]
            assert [p for p in moved if not _under(p, own)] == [], benchmark_id
    gke = load_benchmark("gke-cis-1.12")
    kubelet_config = next(r for r in gke.rules if r.id == "4.1.9")
    assert next(iter(_file_paths(kubelet_config.audit))) == "/home/kubernetes/kubelet-config.yaml"


def node(name: str, labels: dict[str, str] | None = None, kubelet_version: str = "v1.36.3") -> NodeDigest:
    return NodeDigest(name, "uid", labels or {}, (), True, None, kubelet_version=kubelet_version)


def test_a_platform_directory_is_mounted_like_the_others() -> None:
    body = build_with(TAILORING, platform_paths=("/home/kubernetes",))
    [volume] = [v for v in pod_spec(body)["volumes"] if v["hostPath"]["path"] == "/home/kubernetes"]
    assert volume == {
        "name": "host-home-kubernetes",
        "hostPath": {"path": "/home/kubernetes", "type": "Directory"},
    }
    [mount] = [m for m in container(body)["volumeMounts"] if m["name"] == volume["name"]]
    assert mount == {
        "name": "host-home-kubernetes",
        "mountPath": HOST_ROOT + "/home/kubernetes",
        "readOnly": True,
        "recursiveReadOnly": "Enabled",
    }
    env = {e["name"]: e.get("value") for e in container(body)["env"]}
    assert env["PLUMBOB_HOST_PATHS"] == "/proc:/etc:/var/lib:/usr/lib:/lib:/home/kubernetes"


def test_a_platform_directory_only_on_nodes_that_show_the_platform() -> None:
    gke = load_benchmark("gke-cis-1.12")
    by_label = node("n1", {"cloud.google.com/gke-nodepool": "default-pool"})
    by_version = node("n2", kubelet_version="v1.36.3-gke.1200000")
    assert platform_host_paths(gke, by_label) == ("/home/kubernetes",)
    assert platform_host_paths(gke, by_version) == ("/home/kubernetes",)
    # a profile pinned to gke, or detected from the other nodes: this node may lack the directory,
    # and a missing Directory mount would keep its Pod from ever starting
    assert platform_host_paths(gke, node("kubeadm")) == ()
    assert platform_host_paths(gke, node("eks", {"eks.amazonaws.com/nodegroup": "ng-1"})) == ()
    assert platform_host_paths(gke, None) == ()
    assert platform_host_paths(load_benchmark("cis-1.12"), by_label) == ()
    for platform in ("k3s", "rke2", "eks", "aks"):
        assert load_benchmark(f"{platform}-cis-1.12").host_directories == []


def test_pod_security() -> None:
    body = build()
    spec = pod_spec(body)
    assert spec["hostPID"] is True
    assert not spec.get("hostNetwork")
    assert not spec.get("hostIPC")
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(body)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc.get("privileged") in (None, False)
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]}
    assert spec["serviceAccountName"] == "plumbob-agent"


def test_tolerations_default_plus_profile() -> None:
    extra = Toleration.model_validate(
        {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}
    )
    tolerations = pod_spec(build(tolerations=[extra]))["tolerations"]
    assert {
        "key": "node-role.kubernetes.io/control-plane",
        "operator": "Exists",
        "effect": "NoSchedule",
    } in tolerations
    assert {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"} in tolerations


def test_env_carries_the_tailoring() -> None:
    env = {e["name"]: e for e in container(build())["env"]}
    assert env["PLUMBOB_NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["PLUMBOB_PROFILE"]["value"] == "cis"
    assert env["PLUMBOB_SCAN"]["value"] == SCAN.metadata.name
    assert env["PLUMBOB_HOST_ROOT"]["value"] == HOST_ROOT
    volumes = [v["hostPath"]["path"] for v in pod_spec(build())["volumes"]]
    assert env["PLUMBOB_HOST_PATHS"]["value"].split(":") == volumes
    assert Tailoring.from_json(env["PLUMBOB_TAILORING"]["value"]) == TAILORING
    assert container(build())["command"] == ["python", "-m", "plumbob", "agent"]


def test_long_node_name_has_no_label_but_the_annotation() -> None:
    long_node = "ip-10-0-0-1." + "x" * 80 + ".internal"
    body = build(long_node)
    assert LABEL_NODE not in body["metadata"]["labels"]
    assert body["metadata"]["annotations"][ANNOTATION_NODE] == long_node
    assert pod_spec(body)["nodeName"] == long_node
    assert len(body["metadata"]["name"]) <= 63
    digest = job_digest(body)
    assert digest is not None
    assert digest.node == long_node


def test_long_manual_rationales_fit_the_environment() -> None:
    # A profile with a long rationale for every rule once made each audit Job fail: one environment
    # string over the kernel's 128 KiB limit cannot be exec'd.
    why = "a reviewed decision, recorded at length. " * 100
    tailoring = Tailoring(benchmark="cis-1.12", manual={f"{i}.*": why for i in range(256)})
    env = {
        e["name"]: e.get("value")
        for e in build_with(tailoring)["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    text = env["PLUMBOB_TAILORING"]
    assert len(text.encode()) <= TAILORING_BUDGET
    clipped = Tailoring.from_json(text)
    assert set(clipped.manual) == set(tailoring.manual)
    assert all(
        r.endswith("(clipped; the whole rationale is in the profile)") for r in clipped.manual.values()
    )


def test_short_rationales_are_passed_whole() -> None:
    env = {e["name"]: e.get("value") for e in build()["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert Tailoring.from_json(env["PLUMBOB_TAILORING"]) == TAILORING


def build_with(tailoring: Tailoring, platform_paths: tuple[str, ...] = ()) -> dict[str, Any]:
    return audit_job(
        scan=SCAN,
        node="worker-1",
        tailoring=tailoring,
        tolerations=[],
        namespace="plumbob-system",
        image="registry.example/plumbob:1",
        platform_paths=platform_paths,
    )


def test_agent_resources_and_pull_secrets_from_the_chart() -> None:
    default = build()
    assert container(default)["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "256Mi"},
    }
    assert pod_spec(default)["imagePullSecrets"] == []
    chosen = {"requests": {"cpu": "10m"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    body = audit_job(
        scan=SCAN,
        node="worker-1",
        tailoring=TAILORING,
        tolerations=[],
        namespace="plumbob-system",
        image="registry.example/plumbob:1",
        resources=chosen,
        image_pull_secrets=["regcred"],
    )
    assert container(body)["resources"] == chosen
    assert pod_spec(body)["imagePullSecrets"] == [{"name": "regcred"}]
