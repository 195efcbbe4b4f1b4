"""The engine's output as JSON.

Cases:
- AuditResult.as_json of a whole audit (control plane, with evidence of every kind) is what
  ``dataclasses.asdict`` gives, as JSON: every field, enums as their values, tuples as lists.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from plumbob.agent.auditing import run_audit
from testbed.hosttrees import build_tree


def test_as_json_is_asdict_as_json(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, "control-plane", ["rule:1.2.15", "rule:4.1.1"])
    result = run_audit(tree.root)
    assert result.counts()["fail"] >= 1 and any(f.evidence for f in result.findings)
    assert result.as_json() == json.loads(json.dumps(asdict(result)))
