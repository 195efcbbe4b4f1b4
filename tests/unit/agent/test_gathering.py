"""Fact gathering and whole audits on host trees written by ``testbed.hosttrees``.

Cases:
- processes found in proc/*/cmdline (kernel threads, shells that mention a component, binary junk
  ignored; hyperkube recognised); manifests parsed; kubelet config found through ``--config``;
- roles detected: control-plane tree → control-plane, etcd, worker; worker tree → worker;
- not-applicable paths on trees: component stopped (manifest kept; its file rules still pass),
  external etcd (etcd rules not local, data-dir rules absent), no kube-proxy, rules for another
  role (worker tree), ``--role`` given by the caller, cluster-level rules;
- errors: truncated kubelet config → error findings naming the file; a directory where a config
  file should be; garbage manifest for a stopped component;
- config inside the container (``proc/<pid>/root``) when not on the host;
- paths never leave the host root: absolute and ``..`` symlinks are resolved inside it;
- owner names come from the tree's /etc/passwd, not the machine's;
- the kubelet's two defaults on a whole tree: without ``--config`` the flag defaults make 4.2.1,
  4.2.2 and 4.2.4 fail; with ``--config`` and the keys omitted the config-file defaults pass;
  a key set in the file gives one evidence item and one reason sentence;
- every named misconfiguration of the tree builder changes some finding;
- only some host directories mounted (an audit Pod's): a file the kubelet names outside them (a
  GKE worker's /home/kubernetes/kubelet-config.yaml) is an error saying so, for its mode, owner
  and settings, and read once its directory is mounted; a symlink into an unmounted directory
  likewise; a rule's known location outside them is skipped and named in the reason, never an
  error of its own; a glob under an unmounted directory is not listed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plumbob.agent.auditing import AuditError, run_audit
from plumbob.agent.facts import gather_facts
from plumbob.agent.hostfs import HostRoot
from plumbob.benchmarks.catalog import load_benchmark
from plumbob.benchmarks.rules import Component, Target
from plumbob.engine.findings import AuditResult, Finding, Status
from testbed.hosttrees import MISCONFIGURATIONS, PLATFORM_SPECS, build_tree, control_plane_spec

RULES = load_benchmark("cis-1.12").rules


def finding(result: AuditResult, rule_id: str) -> Finding:
    return next(f for f in result.findings if f.rule_id == rule_id)


def test_processes_manifests_configs(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, "control-plane")
    facts = gather_facts(RULES, tree.root)
    assert {p.component.value: p.pid for p in facts.processes} == tree.pids
    assert {m.component for m in facts.manifests} == {
        Component.APISERVER,
        Component.CONTROLLER_MANAGER,
        Component.SCHEDULER,
        Component.ETCD,
    }
    assert all(m.error is None and m.argv for m in facts.manifests)
    kubelet_config = facts.config(Component.KUBELET)
    assert kubelet_config is not None and kubelet_config.data is not None
    assert facts.hostname == "cp-1"
    assert facts.files["/var/lib/etcd"].owner == "etcd"


def test_hyperkube(tmp_path: Path) -> None:
    spec = control_plane_spec()
    spec.components[Component.SCHEDULER].argv[0:1] = ["/usr/local/bin/hyperkube", "kube-scheduler"]
    tree = spec.write(tmp_path)
    facts = gather_facts(RULES, tree.root)
    assert facts.process(Component.SCHEDULER) is not None
    assert finding(run_audit(tree.root, rule_patterns=["1.4.1"]), "1.4.1").status is Status.PASS


def test_roles(tmp_path: Path) -> None:
    assert run_audit(build_tree(tmp_path / "cp").root).roles == ("control-plane", "etcd", "worker")
    assert run_audit(build_tree(tmp_path / "w", "worker").root).roles == ("worker",)


def test_stopped_component(tmp_path: Path) -> None:
    result = run_audit(build_tree(tmp_path, misconfigurations=["scheduler-not-running"]).root)
    f = finding(result, "1.4.1")
    assert f.status is Status.NOT_APPLICABLE and "not running" in (f.reason or "")
    assert "static pod manifest" in (f.reason or "")
    assert finding(result, "1.1.5").status is Status.PASS  # the manifest's own file rules still apply
    assert finding(result, "1.1.15").status is Status.PASS  # kubeconfig located from the manifest's flag


def test_external_etcd(tmp_path: Path) -> None:
    result = run_audit(build_tree(tmp_path, misconfigurations=["external-etcd"]).root)
    assert "etcd" not in result.roles
    for rule_id in ("2.1", "2.2", "2.6"):
        f = finding(result, rule_id)
        assert f.status is Status.NOT_APPLICABLE and "etcd is not local" in (f.reason or "")
    for rule_id in ("1.1.11", "1.1.12"):  # etcd data dir: nothing on this node
        assert finding(result, rule_id).status is Status.NOT_APPLICABLE
    assert not result.failed_scored()


def test_no_kube_proxy(tmp_path: Path) -> None:
    result = run_audit(build_tree(tmp_path, "worker", ["no-kube-proxy"]).root)
    f = finding(result, "4.3.1")
    assert f.status is Status.NOT_APPLICABLE and "kube-proxy is not running" in (f.reason or "")


def test_other_roles_and_cluster_rules(tmp_path: Path) -> None:
    result = run_audit(build_tree(tmp_path, "worker").root)
    assert finding(result, "1.2.15").status is Status.NOT_APPLICABLE
    assert "targets control-plane" in (finding(result, "1.2.15").reason or "")
    assert all(f.status is Status.NOT_APPLICABLE for f in result.findings if f.rule_id.startswith("5."))
    forced = run_audit(tmp_path, rule_patterns=["1.2.15"], roles=[Target.CONTROL_PLANE])
    f = finding(forced, "1.2.15")
    assert f.status is Status.NOT_APPLICABLE and "kube-apiserver is not running" in (f.reason or "")


def test_garbage_kubelet_config(tmp_path: Path) -> None:
    result = run_audit(build_tree(tmp_path, "worker", ["kubelet-config-garbage"]).root)
    f = finding(result, "4.2.1")
    assert f.status is Status.ERROR and "/var/lib/kubelet/config.yaml" in (f.reason or "")


def test_directory_instead_of_config(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, "worker")
    config = tree.root / "var/lib/kubelet/config.yaml"
    config.unlink()
    config.mkdir()
    f = finding(run_audit(tree.root, rule_patterns=["4.2.1"]), "4.2.1")
    assert f.status is Status.ERROR and "regular file" in (f.reason or "")


def test_garbage_manifest_of_stopped_component(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, misconfigurations=["scheduler-not-running"])
    (tree.root / "etc/kubernetes/manifests/kube-scheduler.yaml").write_bytes(b"spec: {containers: [\x00\xff")
    (tree.root / "etc/kubernetes/scheduler.conf").unlink()
    facts = gather_facts(RULES, tree.root)
    manifest = facts.manifest(Component.SCHEDULER)
    assert manifest is not None and manifest.error
    f = finding(run_audit(tree.root, rule_patterns=["1.1.15"]), "1.1.15")
    assert f.status is Status.ERROR and "kube-scheduler.yaml" in (f.reason or "")


def test_config_inside_container(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, "worker")
    host_copy = tree.root / "var/lib/kube-proxy/config.conf"
    inside = tree.root / f"proc/{tree.pids['proxy']}/root/var/lib/kube-proxy/config.conf"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(host_copy.read_bytes().replace(b"127.0.0.1:10249", b"0.0.0.0:10249"))
    host_copy.unlink()
    facts = gather_facts(RULES, tree.root)
    proxy_config = facts.config(Component.PROXY)
    assert proxy_config is not None and "inside its container" in proxy_config.located_by
    assert finding(run_audit(tree.root, rule_patterns=["4.3.1"]), "4.3.1").status is Status.FAIL


def test_symlinks_stay_inside_the_root(tmp_path: Path) -> None:
    root = HostRoot(tmp_path)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/real").write_text("inside")
    (tmp_path / "etc/abs").symlink_to("/etc/real")
    (tmp_path / "etc/dotdot").symlink_to("../../../../../../etc/real")
    (tmp_path / "etc/loop").symlink_to("/etc/loop")
    assert root.resolve("/etc/abs") == "/etc/real"
    assert root.resolve("/etc/dotdot") == "/etc/real"
    assert root.read_bytes("/etc/abs") == b"inside"
    assert root.resolve("/../../etc/real") == "/etc/real"
    with pytest.raises(OSError, match="symbolic links"):
        root.resolve("/etc/loop")
    # a kubeconfig symlinked to the machine's own /etc/passwd is read from inside the tree
    (tmp_path / "etc/kc").symlink_to("/etc/passwd")
    with pytest.raises(FileNotFoundError):
        root.read_bytes("/etc/kc")


KUBELET_TWO_DEFAULTS = ["4.2.1", "4.2.2", "4.2.4"]


def test_kubelet_without_config_takes_the_flag_defaults(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, "worker", ["kubelet-no-config"])
    result = run_audit(tree.root, rule_patterns=KUBELET_TWO_DEFAULTS)
    for rule_id, found in zip(KUBELET_TWO_DEFAULTS, ["true", "AlwaysAllow", "10255"], strict=True):
        f = finding(result, rule_id)
        assert f.status is (Status.FAIL if f.scored else Status.MANUAL), f
        [e] = f.evidence
        assert (e.source, e.location, e.found) == ("default", "kubelet flag default (no --config)", found)


def test_kubelet_config_omitting_the_keys_takes_the_config_defaults(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, "worker", ["kubelet-config-defaults"])
    result = run_audit(tree.root, rule_patterns=KUBELET_TWO_DEFAULTS)
    for rule_id, found in zip(KUBELET_TWO_DEFAULTS, ["false", "Webhook", "0"], strict=True):
        f = finding(result, rule_id)
        assert f.status is (Status.PASS if f.scored else Status.MANUAL), f
        [e] = f.evidence
        assert (e.source, e.location, e.found) == (
            "default",
            "kubelet config-file default (running with --config)",
            found,
        )


def test_kubelet_config_key_gives_one_evidence_and_one_reason(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, "worker", ["kubelet-always-allow"])
    f = finding(run_audit(tree.root, rule_patterns=["4.2.2"]), "4.2.2")
    assert f.status is Status.FAIL
    assert f.reason == "kubelet --authorization-mode is 'AlwaysAllow'; expected not AlwaysAllow"
    [e] = f.evidence
    assert (e.source, e.location) == ("config", "/var/lib/kubelet/config.yaml: authorization.mode")


def test_owner_names_from_the_tree(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, misconfigurations=["pki-key-foreign-owner"])
    f = finding(run_audit(tree.root, rule_patterns=["1.1.19"]), "1.1.19")
    assert f.status is Status.FAIL
    assert any(e.found == "intruder:intruder" for e in f.evidence)


def test_missing_host_root() -> None:
    with pytest.raises(AuditError):
        run_audit("/nonexistent/plumbob")


@pytest.mark.parametrize("name", sorted(MISCONFIGURATIONS))
def test_named_misconfigurations_change_findings(name: str, tmp_path: Path) -> None:
    kind = "worker" if name.startswith(("kubelet", "proxy", "no-kube")) else "control-plane"
    clean = run_audit(build_tree(tmp_path / "clean", kind).root)
    dirty = run_audit(build_tree(tmp_path / "dirty", kind, [name]).root)
    changed = [a.rule_id for a, b in zip(clean.findings, dirty.findings, strict=True) if a != b]
    assert changed, f"{name} changed nothing"


POD_MOUNTS = ("/proc", "/etc", "/var/lib", "/usr/lib", "/lib")  # what every audit Job mounts


def test_a_named_file_outside_the_mounts_is_an_error_saying_so(tmp_path: Path) -> None:
    root = PLATFORM_SPECS["gke"]().write(tmp_path / "gke").root
    config = "/home/kubernetes/kubelet-config.yaml"
    rules = ["4.1.9", "4.1.10", "4.2.1"]
    unmounted = run_audit(root, benchmark_id="gke-cis-1.12", rule_patterns=rules, mounted=POD_MOUNTS)
    for rule_id in rules:
        f = finding(unmounted, rule_id)
        assert f.status is Status.ERROR, f
        assert config in (f.reason or "")
        assert "outside the host directories mounted in the audit Pod (/proc, /etc," in (f.reason or "")
    mounted = run_audit(
        root, benchmark_id="gke-cis-1.12", rule_patterns=rules, mounted=(*POD_MOUNTS, "/home/kubernetes")
    )
    for rule_id in rules:
        assert finding(mounted, rule_id).status is Status.PASS, finding(mounted, rule_id)
    assert config in str(finding(mounted, "4.1.9").evidence)


def test_a_symlink_into_an_unmounted_directory_is_an_error(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, "worker")
    kubeconfig = tree.root / "etc/kubernetes/kubelet.conf"
    (tree.root / "opt").mkdir()
    kubeconfig.rename(tree.root / "opt/kubelet.conf")
    kubeconfig.symlink_to("/opt/kubelet.conf")
    f = finding(run_audit(tree.root, rule_patterns=["4.1.5"], mounted=POD_MOUNTS), "4.1.5")
    assert f.status is Status.ERROR
    assert "resolves to /opt/kubelet.conf, outside the host directories mounted" in (f.reason or "")
    assert finding(run_audit(tree.root, rule_patterns=["4.1.5"]), "4.1.5").status is Status.PASS


def test_a_known_location_outside_the_mounts_is_skipped_and_named(tmp_path: Path) -> None:
    root = build_tree(tmp_path, "worker", ["no-kube-proxy"]).root
    f = finding(run_audit(root, rule_patterns=["4.1.3"], mounted=POD_MOUNTS), "4.1.3")
    assert f.status is Status.NOT_APPLICABLE, f
    snap = "/var/snap/microk8s/current/credentials/proxy.config"
    assert f"(not looked at, not mounted in the audit Pod: {snap})" in (f.reason or "")
    whole = finding(run_audit(root, rule_patterns=["4.1.3"]), "4.1.3")
    assert whole.status is Status.NOT_APPLICABLE and "not looked at" not in (whole.reason or "")


def test_a_glob_under_an_unmounted_directory_lists_nothing(tmp_path: Path) -> None:
    (tmp_path / "home/kubernetes").mkdir(parents=True)
    (tmp_path / "home/kubernetes/a.key").write_text("k")
    root = HostRoot(tmp_path, POD_MOUNTS)
    with pytest.raises(OSError, match="outside the host directories mounted") as caught:
        root.glob("/home/kubernetes/*.key")
    assert not isinstance(caught.value, FileNotFoundError)
    assert list(root.walk("/home/kubernetes")) == []
    assert HostRoot(tmp_path).glob("/home/kubernetes/*.key") == ["/home/kubernetes/a.key"]
