"""Engine semantics on synthetic facts (pure: no files).

Cases:
- flags: ``--f=v``, ``--f v``, bare ``--f`` (true), last occurrence wins, ``-f=v``, ``--`` ends flags;
- setting precedence: flag over config key over documented default over unset, with evidence
  naming the source and the location;
- every op, including unset values (only the negative ops accept them), lists and maps from config
  files, Go durations, invalid regex / non-numeric rule values → error;
- not-applicable paths: component not running (with and without a static pod manifest), rule
  targets another role, etcd not local, cluster-level rule, file absent where allowed;
- file absent where the rule requires it → fail; unreadable config → error; unreadable manifest
  when the manifest's flag is the only way to the file → error;
- a known location outside the audit Pod's mounts is skipped and named (not applicable when the
  file may be absent, error when the rule requires it); the same path named by a flag → error;
- file modes (extra bits), owners (names resolved, unknown uid), globs with all_matches, recursion;
- all/any combinations, manual rules (guidance; automated hint kept as manual);
- component recognition from argv (plain, full path, hyperkube).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from plumbob.benchmarks.rules import Component, Op, Rule, Target
from plumbob.benchmarks.rules import Test as RuleTest
from plumbob.benchmarks.validation import validated
from plumbob.engine import evaluate
from plumbob.engine.findings import Source, Status
from plumbob.engine.node.components import component_of_argv
from plumbob.engine.node.facts import ConfigFile, FileKind, FileStat, Manifest, NodeFacts, Process
from plumbob.engine.node.flags import flag_values
from plumbob.engine.node.values import as_number, as_text, compare

CP = (Target.CONTROL_PLANE, Target.ETCD, Target.WORKER)


def rule(audit: dict[str, Any] | None, **kw: Any) -> Rule:
    base: dict[str, Any] = {
        "id": "9.1.1",
        "title": "t",
        "section": "9.1",
        "severity": "high",
        "targets": ["control-plane"],
        "scored": True,
        "audit": audit,
        "remediation": "fix it",
    }
    base.update(kw)
    return validated(Rule, base)


def setting(component: str = "apiserver", **kw: Any) -> dict[str, Any]:
    return {"type": "setting", "component": component, **kw}


def apiserver(*flags: str) -> Process:
    return Process(pid=7, component=Component.APISERVER, argv=("kube-apiserver", *flags))


def kubelet(*flags: str) -> Process:
    return Process(pid=8, component=Component.KUBELET, argv=("/usr/bin/kubelet", *flags))


def one(r: Rule, facts: NodeFacts, roles: tuple[Target, ...] = CP) -> Any:
    [finding] = evaluate([r], facts, roles)
    return finding


# ---- flags and values ------------------------------------------------------------------------------


def test_flag_forms() -> None:
    argv = ["x", "--a=1", "--b", "2", "--c", "--d", "--a=3", "-e=4", "pos", "--", "--f=5"]
    assert flag_values(argv) == {"a": "3", "b": "2", "c": "true", "d": "true", "e": "4"}


def test_values_as_text() -> None:
    assert as_text(True) == "true"
    assert as_text(5.0) == "5"
    assert as_text(["A", "B"]) == "A,B"
    assert as_text({"X": True, "Y": False}) == "X=true,Y=false"
    assert as_text(None) is None


@pytest.mark.parametrize(
    ("text", "seconds"), [("10", 10.0), ("4h0m0s", 14400.0), ("1m30s", 90.0), ("-1", -1.0), ("abc", None)]
)
def test_numbers_and_durations(text: str, seconds: float | None) -> None:
    assert as_number(text) == seconds


@pytest.mark.parametrize(
    ("found", "op", "value", "ok"),
    [
        ("false", "eq", "false", True),
        ("False", "eq", "false", True),
        ("true", "eq", "false", False),
        (None, "eq", "false", False),
        ("x", "ne", "y", True),
        (None, "ne", "false", True),
        ("b", "in", ["a", "b"], True),
        ("c", "in", ["a", "b"], False),
        ("a", "not-in", ["a"], False),
        (None, "not-in", ["a"], True),
        ("Node,RBAC", "contains", "RBAC", True),
        ("Node", "contains", ["Node", "RBAC"], False),
        ("Node,AlwaysAllow", "not-contains", "AlwaysAllow", False),
        (None, "not-contains", "AlwaysAllow", True),
        ("a,b", "subset-of", ["a", "b", "c"], True),
        ("a,z", "subset-of", ["a", "b"], False),
        ("30", "gte", "30", True),
        ("29", "gte", "30", False),
        ("5m", "gt", "0", True),
        ("0s", "gt", "0", False),
        ("abc", "lt", "3", False),
        (None, "gte", "1", False),
        ("127.0.0.1:10249", "regex", r"^127\.", True),
        ("0.0.0.0:10249", "regex", r"^127\.", False),
        (None, "present", None, False),
        ("x", "present", None, True),
        (None, "absent", None, True),
        ("", "absent", None, False),
    ],
)
def test_compare(found: str | None, op: str, value: Any, ok: bool) -> None:
    assert compare(found, RuleTest(op=Op(op), value=value)).ok is ok


@pytest.mark.parametrize(
    ("op", "value", "found"), [("regex", "([", "x"), ("gte", "lots", "3"), ("eq", ["a", "b"], "a")]
)
def test_broken_rule_values_are_errors(op: str, value: Any, found: str) -> None:
    r = rule(setting(flag="--x", test={"op": op, "value": value}))
    f = one(r, NodeFacts(processes=(apiserver(f"--x={found}"),)))
    assert f.status is Status.ERROR and f.reason


def test_component_recognition() -> None:
    assert component_of_argv(("kube-apiserver", "--x")) is Component.APISERVER
    assert component_of_argv(("/usr/local/bin/kubelet",)) is Component.KUBELET
    assert component_of_argv(("/usr/bin/hyperkube", "kube-proxy")) is Component.PROXY
    assert component_of_argv(("hyperkube", "apiserver")) is Component.APISERVER
    assert component_of_argv(("apiserver",)) is None  # short aliases only behind hyperkube
    assert component_of_argv(("etcdctl",)) is None
    assert component_of_argv(()) is None


# ---- setting precedence ----------------------------------------------------------------------------

KUBELET_ANON = setting(
    "kubelet",
    flag="--anonymous-auth",
    config_key="authentication.anonymous.enabled",
    default="true",
    test={"op": "eq", "value": "false"},
)


def kubelet_facts(*flags: str, config: dict[str, Any] | None = None, error: str | None = None) -> NodeFacts:
    cfg = ConfigFile(
        component=Component.KUBELET,
        path="/var/lib/kubelet/config.yaml",
        located_by="flag --config of pid 8",
        data=config,
        error=error,
    )
    return NodeFacts(processes=(kubelet(*flags),), configs=(cfg,) if config is not None or error else ())


def test_flag_wins_over_config() -> None:
    f = one(
        rule(KUBELET_ANON),
        kubelet_facts("--anonymous-auth=true", config={"authentication": {"anonymous": {"enabled": False}}}),
    )
    assert f.status is Status.FAIL
    assert f.evidence[0].source is Source.FLAG and f.evidence[0].location == "pid 8 --anonymous-auth"


def test_config_key_when_no_flag() -> None:
    f = one(rule(KUBELET_ANON), kubelet_facts(config={"authentication": {"anonymous": {"enabled": False}}}))
    assert f.status is Status.PASS
    e = f.evidence[0]
    assert (e.source, e.location, e.found, e.expected) == (
        Source.CONFIG,
        "/var/lib/kubelet/config.yaml: authentication.anonymous.enabled",
        "false",
        "false",
    )


def test_default_when_neither() -> None:
    f = one(rule(KUBELET_ANON), kubelet_facts(config={}))
    assert (
        f.status is Status.FAIL and f.evidence[0].source is Source.DEFAULT and f.evidence[0].found == "true"
    )


def test_unset_without_default() -> None:
    r = rule(setting(flag="--audit-log-path", test={"op": "present"}))
    f = one(r, NodeFacts(processes=(apiserver(),)))
    assert f.status is Status.FAIL and f.evidence[0].source is Source.UNSET and "not set" in (f.reason or "")


def test_unreadable_config_is_an_error_unless_the_flag_decides() -> None:
    assert one(rule(KUBELET_ANON), kubelet_facts(error="not valid YAML/JSON")).status is Status.ERROR
    assert one(rule(KUBELET_ANON), kubelet_facts("--anonymous-auth=false", error="x")).status is Status.PASS


def test_config_maps_compare_like_flags() -> None:
    r = rule(
        setting(
            "kubelet",
            flag="--feature-gates",
            config_key="featureGates",
            test={"op": "not-contains", "value": "RotateKubeletServerCertificate=false"},
        )
    )
    bad = kubelet_facts(config={"featureGates": {"RotateKubeletServerCertificate": False}})
    assert one(r, bad).status is Status.FAIL
    assert one(r, kubelet_facts("--feature-gates=RotateKubeletServerCertificate=false")).status is Status.FAIL
    assert one(r, kubelet_facts(config={})).status is Status.PASS


# ---- not applicable ----------------------------------------------------------------------------------


def test_component_not_running() -> None:
    r = rule(setting(flag="--profiling", test={"op": "eq", "value": "false"}))
    f = one(r, NodeFacts())
    assert f.status is Status.NOT_APPLICABLE and "kube-apiserver is not running" in (f.reason or "")


def test_component_not_running_but_manifest_present() -> None:
    m = Manifest(
        component=Component.APISERVER,
        path="/etc/kubernetes/manifests/kube-apiserver.yaml",
        argv=("kube-apiserver", "--profiling=true"),
    )
    f = one(rule(setting(flag="--profiling", test={"op": "eq", "value": "false"})), NodeFacts(manifests=(m,)))
    assert f.status is Status.NOT_APPLICABLE and "static pod manifest" in (f.reason or "")


def test_rule_for_another_role() -> None:
    f = one(rule(setting(flag="--profiling", test={"op": "absent"})), NodeFacts(), (Target.WORKER,))
    assert f.status is Status.NOT_APPLICABLE and "targets control-plane" in (f.reason or "")


def test_etcd_not_local() -> None:
    r = rule(setting("etcd", flag="--client-cert-auth", test={"op": "eq", "value": "true"}), targets=["etcd"])
    f = one(r, NodeFacts(), (Target.CONTROL_PLANE, Target.WORKER))
    assert f.status is Status.NOT_APPLICABLE and "etcd is not local" in (f.reason or "")


def test_cluster_rule() -> None:
    r = rule(None, targets=["cluster"], scored=True, guidance="look at RBAC")
    f = one(r, NodeFacts())
    assert f.status is Status.NOT_APPLICABLE and "operator" in (f.reason or "")


# ---- files ---------------------------------------------------------------------------------------------

USERS = {0: "root", 990: "etcd"}


def stat(path: str, mode: int, uid: int = 0, kind: FileKind = "file") -> FileStat:
    return FileStat(
        path=path, kind=kind, mode=mode, uid=uid, gid=uid, owner=USERS.get(uid), group=USERS.get(uid)
    )


def mode_rule(max_mode: str = "600", **file: Any) -> Rule:
    return rule({"type": "file-mode", "file": file, "max_mode": max_mode})


def test_file_mode() -> None:
    r = mode_rule(paths=["/a", "/b"])
    ok = NodeFacts(files={"/b": stat("/b", 0o600)}, missing=frozenset({"/a"}))
    assert one(r, ok).status is Status.PASS
    bad = one(r, NodeFacts(files={"/a": stat("/a", 0o640)}))
    assert bad.status is Status.FAIL and bad.evidence[0].found == "0640" and "0040" in (bad.reason or "")


def test_file_absent_allowed_or_required() -> None:
    facts = NodeFacts(missing=frozenset({"/a"}))
    assert one(mode_rule(paths=["/a"]), facts).status is Status.NOT_APPLICABLE
    f = one(
        rule({"type": "file-mode", "file": {"paths": ["/a"]}, "max_mode": "600"}, missing_file="fail"), facts
    )
    assert f.status is Status.FAIL


def test_known_location_outside_the_mounts() -> None:
    unseen = NodeFacts(
        missing=frozenset({"/a"}), errors={"/b": "outside the mounts"}, unmounted=frozenset({"/b"})
    )
    allowed = one(mode_rule(paths=["/a", "/b"]), unseen)
    assert allowed.status is Status.NOT_APPLICABLE
    assert allowed.reason == (
        "/a: not found on this node (allowed by the rule) (not looked at, not mounted in the audit Pod: /b)"
    )
    required = one(
        rule({"type": "file-mode", "file": {"paths": ["/a", "/b"]}, "max_mode": "600"}, missing_file="fail"),
        unseen,
    )
    assert required.status is Status.ERROR and "not mounted in the audit Pod: /b" in (required.reason or "")
    named = one(
        mode_rule(component="apiserver", flag="--audit-policy-file", paths=["/a"]),
        replace(unseen, processes=(apiserver("--audit-policy-file=/b"),)),
    )
    assert named.status is Status.ERROR and named.reason == "cannot read /b: outside the mounts"


def test_file_named_by_flag_is_authoritative() -> None:
    r = mode_rule(component="apiserver", flag="--audit-policy-file", paths=["/known"])
    facts = NodeFacts(
        processes=(apiserver("--audit-policy-file=/named"),),
        files={"/named": stat("/named", 0o644), "/known": stat("/known", 0o600)},
    )
    f = one(r, facts)
    assert f.status is Status.FAIL and f.evidence[0].location == "--audit-policy-file of pid 7"


def test_file_named_in_manifest_when_not_running() -> None:
    r = mode_rule(component="scheduler", flag="--kubeconfig", paths=["/etc/kubernetes/scheduler.conf"])
    good = Manifest(
        component=Component.SCHEDULER, path="/m.yaml", argv=("kube-scheduler", "--kubeconfig=/s.conf")
    )
    facts = NodeFacts(manifests=(good,), files={"/s.conf": stat("/s.conf", 0o600)})
    assert one(r, facts).status is Status.PASS
    broken = Manifest(component=Component.SCHEDULER, path="/m.yaml", error="not valid YAML/JSON")
    f = one(r, NodeFacts(manifests=(broken,), missing=frozenset({"/etc/kubernetes/scheduler.conf"})))
    assert f.status is Status.ERROR and "/m.yaml" in (f.reason or "")


def test_unreadable_file_is_an_error() -> None:
    f = one(mode_rule(paths=["/a"]), NodeFacts(errors={"/a": "Permission denied"}))
    assert f.status is Status.ERROR and "Permission denied" in (f.reason or "")


def test_glob_all_matches_and_recursion() -> None:
    r = mode_rule(paths=["/pki/*.key"], all_matches=True)
    facts = NodeFacts(
        files={"/pki/a.key": stat("/pki/a.key", 0o600), "/pki/b.key": stat("/pki/b.key", 0o644)},
        listings={"/pki/*.key": ("/pki/a.key", "/pki/b.key")},
    )
    f = one(r, facts)
    assert f.status is Status.FAIL and [e.subject for e in f.evidence] == ["/pki/b.key"]
    owner = rule(
        {
            "type": "file-owner",
            "file": {"paths": ["/pki"], "recursive": True},
            "user": "root",
            "group": "root",
        }
    )
    tree = NodeFacts(
        files={
            "/pki": stat("/pki", 0o755, kind="directory"),
            "/pki/x/y.key": stat("/pki/x/y.key", 0o600, uid=4242),
        },
        listings={"/pki": ("/pki/x/y.key",)},
    )
    f = one(owner, tree)
    assert f.status is Status.FAIL and f.evidence[0].found == "uid 4242:gid 4242"


def test_owner_names() -> None:
    r = rule({"type": "file-owner", "file": {"paths": ["/var/lib/etcd"]}, "user": "etcd", "group": "etcd"})
    assert (
        one(r, NodeFacts(files={"/var/lib/etcd": stat("/var/lib/etcd", 0o700, uid=990)})).status
        is Status.PASS
    )
    f = one(r, NodeFacts(files={"/var/lib/etcd": stat("/var/lib/etcd", 0o700, uid=0)}))
    assert (
        f.status is Status.FAIL
        and f.evidence[0].found == "root:root"
        and f.evidence[0].expected == "etcd:etcd"
    )


# ---- combinations and manual ------------------------------------------------------------------------


def test_any_and_all() -> None:
    eq = setting(flag="--bind-address", test={"op": "eq", "value": "127.0.0.1"})
    absent = setting(flag="--bind-address", test={"op": "absent"})
    either = rule({"type": "any", "audits": [eq, absent]})
    assert one(either, NodeFacts(processes=(apiserver(),))).status is Status.PASS
    assert one(either, NodeFacts(processes=(apiserver("--bind-address=127.0.0.1"),))).status is Status.PASS
    assert one(either, NodeFacts(processes=(apiserver("--bind-address=0.0.0.0"),))).status is Status.FAIL
    both = rule(
        {
            "type": "all",
            "audits": [
                setting(flag="--a", test={"op": "present"}),
                setting(flag="--b", test={"op": "present"}),
            ],
        }
    )
    assert one(both, NodeFacts(processes=(apiserver("--a=1", "--b=2"),))).status is Status.PASS
    f = one(both, NodeFacts(processes=(apiserver("--a=1"),)))
    assert f.status is Status.FAIL and len(f.evidence) == 2
    # a part that does not apply (absent optional file) is ignored
    files = rule(
        {
            "type": "all",
            "audits": [
                {"type": "file-mode", "file": {"paths": [p]}, "max_mode": "600"} for p in ("/a", "/b")
            ],
        }
    )
    assert (
        one(files, NodeFacts(files={"/a": stat("/a", 0o600)}, missing=frozenset({"/b"}))).status
        is Status.PASS
    )
    assert one(files, NodeFacts(missing=frozenset({"/a", "/b"}))).status is Status.NOT_APPLICABLE


def test_manual_rules() -> None:
    f = one(rule(None, scored=False, guidance="ask a human"), NodeFacts())
    assert f.status is Status.MANUAL and f.reason == "ask a human"
    hinted = rule(setting(flag="--x", test={"op": "present"}), scored=False, guidance="judge it")
    f = one(hinted, NodeFacts(processes=(apiserver(),)))
    assert f.status is Status.MANUAL and "automated hint: fail" in (f.reason or "") and f.evidence
    assert one(hinted, NodeFacts()).status is Status.NOT_APPLICABLE
