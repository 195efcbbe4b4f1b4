"""What a node audit and an audit Pod's agent import: whole processes, checked by state, not time.

The node audit and the agent start in every audit Pod, so they must not pay for the operator's
libraries. Each case runs a real ``python`` process and reads ``sys.modules`` as it exits.

Cases:
- ``plumbob audit`` on a control-plane host tree (JSON and text output): none of pydantic,
  kubernetes, urllib3, OpenTelemetry, jinja2, kopf, ssl or http.client is imported;
- ``python -m plumbob agent`` on a worker tree, writing its report to a local HTTPS stub of the
  API server (``testbed.apistub``): exit 0, the report stored under ``<profile>.<node>`` with the
  scan and results; none of pydantic, kubernetes, urllib3, OpenTelemetry, jinja2 or kopf imported;
- the same agent when the stub first answers 503: it says it will try again, then reads and
  creates the report (exit 0), still without the kubernetes client;
- a PLUMBOB_TAILORING with an unknown key: exit 3 and a message naming the key, nothing written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from testbed.apistub import ApiStub
from testbed.hosttrees import build_tree

REPO = Path(__file__).resolve().parents[2]
NEVER_IN_AN_AUDIT = ("pydantic", "pydantic_core", "kubernetes", "urllib3", "opentelemetry", "jinja2", "kopf")
# What runs a process under ``python -m plumbob`` and writes the names of its modules as it exits.
RUN_AND_LIST = (
    "import atexit, json, runpy, sys\n"
    "listing = sys.argv.pop(1)\n"
    "atexit.register(lambda: open(listing, 'w').write(json.dumps(sorted(sys.modules))))\n"
    "runpy.run_module('plumbob', run_name='__main__', alter_sys=True)\n"
)


def run_listing(
    args: list[str], listing: Path, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST, str(listing), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO / "operator"), **env},
    )
    modules = set(json.loads(listing.read_text())) if listing.exists() else set()
    return done, modules


def heavy(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in names)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_node_audit_imports_no_operator_library(tmp_path: Path, fmt: str) -> None:
    tree = build_tree(tmp_path / "tree", "control-plane")
    done, modules = run_listing(
        ["audit", "--host-root", str(tree.root), "--format", fmt], tmp_path / "modules.json", {}
    )
    assert done.returncode == 0, done.stderr
    assert "plumbob.engine.node.evaluation" in modules  # the listing is of a process that audited
    assert heavy(modules, (*NEVER_IN_AN_AUDIT, "ssl", "http")) == []


def agent_env(stub: ApiStub, tmp_path: Path, tree_root: Path, **extra: str) -> dict[str, str]:
    return {
        **stub.agent_env(tmp_path / "sa"),
        "PLUMBOB_NODE_NAME": "worker-1",
        "PLUMBOB_PROFILE": "cis",
        "PLUMBOB_SCAN": "cis-20261202-000000",
        "PLUMBOB_HOST_ROOT": str(tree_root),
        "PLUMBOB_TAILORING": json.dumps({"benchmark": "cis-1.12"}),
        **extra,
    }


def stored_report(stub: ApiStub) -> dict[str, Any]:
    return stub.objects["/apis/plumbob.dev/v1alpha1/compliancereports/cis.worker-1"]


def test_the_agent_writes_its_report_without_the_kubernetes_client(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "tree", "worker")
    with ApiStub(tmp_path / "stub") as stub:
        done, modules = run_listing(
            ["agent"], tmp_path / "modules.json", agent_env(stub, tmp_path, tree.root)
        )
        assert done.returncode == 0, done.stderr
        report = stored_report(stub)
    assert report["spec"]["scan"] == "cis-20261202-000000"
    assert report["spec"]["nodeName"] == "worker-1"
    assert {r["status"] for r in report["spec"]["results"]} >= {"pass"}
    assert heavy(modules, NEVER_IN_AN_AUDIT) == []


def test_the_agent_waits_out_an_unavailable_api_server(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "tree", "worker")
    with ApiStub(tmp_path / "stub") as stub:
        stub.fail_next([503])
        done, modules = run_listing(
            ["agent"], tmp_path / "modules.json", agent_env(stub, tmp_path, tree.root)
        )
        assert done.returncode == 0, done.stderr
        assert "trying again" in done.stderr
        assert [r.method for r in stub.requests] == ["GET", "GET", "POST"]  # the first GET got the 503
        assert stored_report(stub)["spec"]["results"]
    assert heavy(modules, NEVER_IN_AN_AUDIT) == []


def test_a_bad_tailoring_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "tree", "worker")
    with ApiStub(tmp_path / "stub") as stub:
        bad = json.dumps({"benchmark": "cis-1.12", "includes": ["4"]})
        done, _modules = run_listing(
            ["agent"], tmp_path / "modules.json", agent_env(stub, tmp_path, tree.root, PLUMBOB_TAILORING=bad)
        )
        assert done.returncode == 3
        assert "PLUMBOB_TAILORING: unknown keys: includes" in done.stderr
        assert stub.requests == []
