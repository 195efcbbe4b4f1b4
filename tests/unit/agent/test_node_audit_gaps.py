"""Settings the node audit reads beyond flags and the --config file.

Cases:
- kubelet ``--config-dir``: a drop-in overrides the --config file; drop-ins apply in lexical
  order (later wins, subdirectories where they sort); only ``*.conf`` counts; evidence names the
  file that set the value; an unparsable drop-in is an error naming it; the merge is a JSON
  merge patch (``null`` deletes, lists replace, mappings merge);
- etcd settings given as ``ETCD_*`` environment variables in its static pod: read when the flag
  is absent (pass and fail), the flag wins over the environment, a file location (``--data-dir``)
  comes from the environment too;
- ``--authorization-config`` (1.2.6 to 1.2.8): the authorizers' types are the modes (Node+RBAC
  pass, Webhook only fails 1.2.7/1.2.8, AlwaysAllow fails 1.2.6), a missing file is an error;
- ``--authentication-config`` (1.2.1, manual with an automated hint): its anonymous section is
  read; without one, the flag's default (true) applies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plumbob.agent.auditing import run_audit
from plumbob.agent.facts import merge_patch
from plumbob.engine.findings import AuditResult, Finding, Source, Status
from plumbob.engine.node.facts import JsonValue
from testbed.hosttrees import (
    AUTHZ_CONFIG,
    KUBELET_DROP_INS,
    Entry,
    NodeSpec,
    build_tree,
    control_plane_spec,
    kubelet_drop_in,
    misconfigure,
    worker_spec,
)


def finding(result: AuditResult, rule_id: str) -> Finding:
    return next(f for f in result.findings if f.rule_id == rule_id)


def verdict(f: Finding) -> Status:
    """The automated outcome, also for an unscored rule (manual, with the outcome as a hint)."""
    if f.status is Status.MANUAL and "automated hint: " in (f.reason or ""):
        return Status((f.reason or "").split("automated hint: ")[1].split(" ")[0])
    return f.status


def audit_spec(tmp_path: Path, spec: NodeSpec, rules: list[str]) -> AuditResult:
    return run_audit(spec.write(tmp_path / "node").root, rule_patterns=rules)


def audit(tmp_path: Path, kind: str, names: list[str], rules: list[str]) -> AuditResult:
    return run_audit(build_tree(tmp_path / "node", kind, names).root, rule_patterns=rules)


# ---- kubelet --config-dir ---------------------------------------------------------------------------


def test_drop_in_overrides_the_config_file(tmp_path: Path) -> None:
    clean = audit(tmp_path / "a", "worker", [], ["4.2.1"])
    assert finding(clean, "4.2.1").status is Status.PASS
    result = audit(tmp_path / "b", "worker", ["kubelet-drop-in-anonymous"], ["4.2.1"])
    f = finding(result, "4.2.1")
    assert f.status is Status.FAIL
    assert f.evidence[0].source is Source.CONFIG
    assert f.evidence[0].location == f"{KUBELET_DROP_INS}/50-anonymous.conf: authentication.anonymous.enabled"


def test_later_drop_in_wins(tmp_path: Path) -> None:
    only_open = audit(tmp_path / "a", "worker", ["kubelet-drop-in-read-only-port"], ["4.2.4"])
    f = finding(only_open, "4.2.4")
    assert verdict(f) is Status.FAIL and f.evidence[0].found == "10255"
    assert (f.evidence[0].location or "").startswith(f"{KUBELET_DROP_INS}/10-port.conf")
    closed_later = audit(
        tmp_path / "b",
        "worker",
        ["kubelet-drop-in-read-only-port", "kubelet-drop-in-read-only-port-off"],
        ["4.2.4"],
    )
    f = finding(closed_later, "4.2.4")
    assert verdict(f) is Status.PASS and f.evidence[0].found == "0"
    assert (f.evidence[0].location or "").startswith(f"{KUBELET_DROP_INS}/20-port.conf")


def test_lexical_order_with_subdirectories_and_only_conf_files(tmp_path: Path) -> None:
    spec = misconfigure(worker_spec(), [])
    kubelet_drop_in("20-off.conf", {"readOnlyPort": 0})(spec)
    # "30-dir" sorts after "20-off.conf", so its drop-in comes later and wins
    kubelet_drop_in("30-dir/00-open.conf", {"readOnlyPort": 10255})(spec)
    # not a .conf file: the kubelet ignores it
    spec.add(f"{KUBELET_DROP_INS}/99-ignored.yaml", Entry(0o600, data={"readOnlyPort": 0}))
    f = finding(audit_spec(tmp_path, spec, ["4.2.4"]), "4.2.4")
    assert verdict(f) is Status.FAIL
    assert (f.evidence[0].location or "").startswith(f"{KUBELET_DROP_INS}/30-dir/00-open.conf")


def test_unparsable_drop_in_is_an_error(tmp_path: Path) -> None:
    result = audit(tmp_path, "worker", ["kubelet-drop-in-garbage"], ["4.2.1", "4.2.4"])
    for rule in ("4.2.1", "4.2.4"):
        f = finding(result, rule)
        assert verdict(f) is Status.ERROR
        assert "40-garbage.conf" in (f.reason or "")


def test_merge_patch() -> None:
    base: JsonValue = {"a": {"b": 1, "c": [1, 2]}, "d": "x", "e": 1}
    patch: JsonValue = {"a": {"c": [3], "n": True}, "d": None, "f": {"g": 1}}
    assert merge_patch(base, patch) == {"a": {"b": 1, "c": [3], "n": True}, "e": 1, "f": {"g": 1}}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": "x", "e": 1}  # inputs untouched


# ---- etcd environment --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status"),
    [("etcd-env-client-cert-auth", Status.PASS), ("etcd-env-no-client-cert-auth", Status.FAIL)],
)
def test_etcd_setting_from_environment(tmp_path: Path, name: str, status: Status) -> None:
    f = finding(audit(tmp_path, "control-plane", [name], ["2.2"]), "2.2")
    assert f.status is status
    assert f.evidence[0].source is Source.MANIFEST
    assert f.evidence[0].location == "env ETCD_CLIENT_CERT_AUTH in /etc/kubernetes/manifests/etcd.yaml"


def test_etcd_flag_wins_over_environment(tmp_path: Path) -> None:
    f = finding(
        audit(tmp_path, "control-plane", ["etcd-env-client-cert-auth", "etcd-no-client-cert-auth"], ["2.2"]),
        "2.2",
    )
    assert f.status is Status.FAIL and f.evidence[0].source is Source.FLAG


def test_etcd_data_dir_from_environment(tmp_path: Path) -> None:
    result = audit(tmp_path, "control-plane", ["etcd-env-data-dir"], ["1.1.11", "1.1.12"])
    for rule in ("1.1.11", "1.1.12"):
        f = finding(result, rule)
        assert f.status is Status.PASS
        assert f.evidence[0].location == "env ETCD_DATA_DIR in /etc/kubernetes/manifests/etcd.yaml"


# ---- structured API server configuration ------------------------------------------------------------

AUTHZ_RULES = ["1.2.6", "1.2.7", "1.2.8"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "apiserver-authorization-config",
            {"1.2.6": Status.PASS, "1.2.7": Status.PASS, "1.2.8": Status.PASS},
        ),
        (
            "apiserver-authorization-config-webhook-only",
            {"1.2.6": Status.PASS, "1.2.7": Status.FAIL, "1.2.8": Status.FAIL},
        ),
        (
            "apiserver-authorization-config-always-allow",
            {"1.2.6": Status.FAIL, "1.2.7": Status.PASS, "1.2.8": Status.PASS},
        ),
    ],
)
def test_authorization_config(tmp_path: Path, name: str, expected: dict[str, Status]) -> None:
    result = audit(tmp_path, "control-plane", [name], AUTHZ_RULES)
    for rule, status in expected.items():
        f = finding(result, rule)
        assert f.status is status, (rule, f.reason)
        assert f.evidence[0].location == f"{AUTHZ_CONFIG}: authorizers[].type"
        assert f.evidence[0].source is Source.CONFIG


def test_missing_authorization_config_is_an_error(tmp_path: Path) -> None:
    spec = misconfigure(control_plane_spec(), ["apiserver-authorization-config"])
    del spec.files[AUTHZ_CONFIG]
    result = audit_spec(tmp_path, spec, AUTHZ_RULES)
    for rule in AUTHZ_RULES:
        f = finding(result, rule)
        assert f.status is Status.ERROR
        assert AUTHZ_CONFIG in (f.reason or "") and "--authorization-config" in (f.reason or "")


@pytest.mark.parametrize(
    ("name", "hint", "source"),
    [
        ("apiserver-authentication-config-no-anonymous", "automated hint: pass", Source.CONFIG),
        ("apiserver-authentication-config-anonymous", "automated hint: fail", Source.CONFIG),
        ("apiserver-authentication-config-silent", "automated hint: fail", Source.DEFAULT),
    ],
)
def test_authentication_config_anonymous(tmp_path: Path, name: str, hint: str, source: Source) -> None:
    f = finding(audit(tmp_path, "control-plane", [name], ["1.2.1"]), "1.2.1")
    assert f.status is Status.MANUAL
    assert verdict(f) is {"automated hint: pass": Status.PASS, "automated hint: fail": Status.FAIL}[hint]
    assert f.evidence[0].source is source
