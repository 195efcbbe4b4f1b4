"""End-to-end fixtures: Plumbob installed on the testbed, its operator running, simulated nodes.

- ``plumbob`` (module): CRDs, admission policy and the chart's RBAC installed; the operator runs
  as a child process under the chart's ``plumbob-operator`` service account.
- ``make_cluster``: builds host trees and starts simulated nodes (labelled with a per-test run id,
  so each test's profile selects only its own nodes); stopped after the test.
- ``run_id``: a short id unique to the test, for names and labels.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import RUN_LABEL, MakeCluster, NodeSpec, Plumbob, get, wait_for

from testbed.controlplane import ControlPlane
from testbed.deploy import install, start_operator
from testbed.hosttrees import build_tree
from testbed.simnodes import KUBELET_VERSION, SimulatedCluster, SimulatedNode


@pytest.fixture(scope="module")
def plumbob(crds_installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plumbob]:
    cp = crds_installed
    install(cp)
    workdir = tmp_path_factory.mktemp("plumbob")
    env = Plumbob(cp, start_operator(cp, workdir), workdir)
    yield env
    if not env.operator.alive():
        print("operator log:\n" + env.operator.tail(80))
    env.operator.stop()


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:6]


@pytest.fixture
def make_cluster(plumbob: Plumbob, run_id: str, tmp_path: Path) -> Iterator[MakeCluster]:
    clusters: list[SimulatedCluster] = []

    def make(specs: list[NodeSpec], runner: str = "subprocess") -> SimulatedCluster:
        nodes = []
        for spec in specs:
            root = tmp_path / "hosts" / spec.name
            build_tree(root, spec.tree or spec.kind, spec.misconfigurations, hostname=spec.name)
            nodes.append(
                SimulatedNode(
                    name=spec.name,
                    role=spec.kind,
                    host_root=root,
                    labels={RUN_LABEL: run_id, **spec.labels},
                    fault=spec.fault,
                    taints=spec.taints,
                    provider_id=spec.provider_id,
                    kubelet_version=spec.kubelet_version or KUBELET_VERSION,
                )
            )
        cluster = SimulatedCluster(
            plumbob.cp.kubeconfig,
            nodes,
            runner=runner,
            ca_file=plumbob.cp.ca_file,
            workdir=tmp_path / "simnodes",
        )
        cluster.start()
        clusters.append(cluster)
        healthy = [spec.name for spec in specs if spec.fault in ("none", "crash", "hang", "vanish")]
        wait_for(
            "the simulated nodes to be Ready", lambda: all(_ready(plumbob, n) for n in healthy), timeout=60
        )
        return cluster

    yield make
    for cluster in clusters:
        cluster.stop()


def _ready(env: Plumbob, node: str) -> bool:
    """Ready, and without the not-ready taint the node-lifecycle stand-in removes once it is."""
    body = get(env.cp, "node", node) or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (body.get("status") or {}).get("conditions") or []
    )
    taints = (body.get("spec") or {}).get("taints") or []
    return ready and not any(t.get("key", "").startswith("node.kubernetes.io/") for t in taints)
