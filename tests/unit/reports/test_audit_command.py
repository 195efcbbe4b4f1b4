"""``plumbob audit`` and its renderings.

Cases:
- exit codes: 0 on a compliant node, 1 when a scored check fails, 2 for an unknown benchmark,
  a bad ``--set`` or rules that match nothing, 3 for a missing host root, 4 for scored errors only;
- ``--format json`` parses and carries summary, evidence and remediation; ``--format junit`` is
  well-formed XML with failures/errors/skipped counted; text shows FAIL lines with evidence and fix;
- ``--output`` writes the report to a file; ``--role`` overrides detection.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from plumbob.cli import main
from testbed.hosttrees import build_tree


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("cli")
    return {
        "clean": build_tree(base / "clean").root,
        "dirty": build_tree(
            base / "dirty", misconfigurations=["apiserver-profiling", "admin-conf-world-readable"]
        ).root,
        "garbage": build_tree(base / "garbage", "worker", ["kubelet-config-garbage"]).root,
    }


def test_exit_codes(trees: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--host-root", str(trees["clean"])]) == 0
    assert main(["audit", "--host-root", str(trees["dirty"])]) == 1
    assert main(["audit", "--host-root", str(trees["clean"]), "--benchmark", "nope"]) == 2
    assert main(["audit", "--host-root", str(trees["clean"]), "--set", "novalue"]) == 2
    assert main(["audit", "--host-root", str(trees["clean"]), "--rules", "9.9.9"]) == 2
    assert main(["audit", "--host-root", "/nonexistent/plumbob"]) == 3
    assert main(["audit", "--host-root", str(trees["garbage"]), "--rules", "4.2.*"]) == 4
    assert (
        main(
            [
                "audit",
                "--host-root",
                str(trees["clean"]),
                "--set",
                "audit_log_maxage=365",
                "--rules",
                "1.2.17",
            ]
        )
        == 1
    )
    capsys.readouterr()


def test_text(trees: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    main(["audit", "--host-root", str(trees["dirty"]), "--rules", "1.2.15", "1.1.13"])
    out = capsys.readouterr().out
    assert "1.2.15  FAIL" in out and "evidence: kube-apiserver --profiling [flag @ pid 1001" in out
    assert "fix:" in out and "0 pass, 2 fail" in out


def test_json_and_output(trees: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    assert (
        main(["audit", "--host-root", str(trees["dirty"]), "--format", "json", "--output", str(target)]) == 1
    )
    doc = json.loads(target.read_text())
    assert doc["summary"]["fail"] == 2
    failed = [f for f in doc["findings"] if f["status"] == "fail"]
    assert {f["rule_id"] for f in failed} == {"1.2.15", "1.1.13"}
    assert all(f["remediation"] and f["evidence"] for f in failed)


def test_junit(trees: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    main(["audit", "--host-root", str(trees["dirty"]), "--format", "junit"])
    root = ET.fromstring(capsys.readouterr().out)
    assert root.get("failures") == "2"
    assert len(root.findall(".//testcase")) == 131
    assert len(root.findall(".//failure")) == 2 and root.findall(".//skipped")


def test_role_override(trees: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    main(
        [
            "audit",
            "--host-root",
            str(trees["dirty"]),
            "--role",
            "worker",
            "--rules",
            "1.2.15",
            "--format",
            "json",
        ]
    )
    [f] = json.loads(capsys.readouterr().out)["findings"]
    assert f["status"] == "not-applicable"
