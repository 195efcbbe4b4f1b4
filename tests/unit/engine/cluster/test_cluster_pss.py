"""Pod Security Standards as benchmarks: every check has a passing and a failing pod.

Cases: each of the 19 checks passes on a compliant pod and fails on one violating it; the
benchmarks list 12 baseline and 19 restricted checks; a restricted check replaces its baseline
twin only from the policy version that introduced it; version-dependent allowed values (sysctls,
SELinux types, host probes) and relaxations (Windows pods, user namespaces); the policy version
comes from the namespace's enforce-version label unless pinned; findings show the namespace's
pod-security labels; kube-system workloads are listed as expected.
"""

from __future__ import annotations

from typing import Any

import pytest
from cluster_builders import container, hardened, namespace, pod

from plumbob.benchmarks.catalog import load_benchmark
from plumbob.benchmarks.rules import PssCheck
from plumbob.engine.cluster import ClusterSettings, Holders, Inventory, evaluate_cluster
from plumbob.engine.cluster.inventory import Workload
from plumbob.engine.cluster.pss import (
    PSS_CHECKS,
    allowed_sysctls,
    checks_for,
    level_met,
    namespace_levels,
    pss_violations,
)
from plumbob.engine.findings import Finding, Status

RESTRICTED = load_benchmark("pss-restricted")
BASELINE = load_benchmark("pss-baseline")
V = (1, 36)


def workload(*containers: dict[str, Any], annotations: dict[str, str] | None = None, **spec: Any) -> Workload:
    inv = Inventory.build([pod("p", "team", *containers, **spec)])
    (w,) = inv.pods.values()
    return Workload(w.meta, w.spec, annotations or {})


def sc(**fields: Any) -> dict[str, Any]:
    c = hardened()
    return {**c, "securityContext": {**c["securityContext"], **fields}}


# check → (pod spec fields / containers that violate it)
FAILING: dict[PssCheck, Workload] = {
    PssCheck.WINDOWS_HOST_PROCESS: workload(sc(windowsOptions={"hostProcess": True})),
    PssCheck.HOST_NAMESPACES: workload(hardened(), hostIPC=True),
    PssCheck.PRIVILEGED: workload(sc(privileged=True)),
    PssCheck.CAPABILITIES_BASELINE: workload(sc(capabilities={"add": ["SYS_ADMIN"], "drop": ["ALL"]})),
    PssCheck.HOST_PATH_VOLUMES: workload(hardened(), volumes=[{"name": "h", "hostPath": {"path": "/etc"}}]),
    PssCheck.HOST_PORTS: workload({**hardened(), "ports": [{"containerPort": 1, "hostPort": 8080}]}),
    PssCheck.APPARMOR_PROFILE: workload(sc(appArmorProfile={"type": "Unconfined"})),
    PssCheck.SELINUX_OPTIONS: workload(sc(seLinuxOptions={"type": "spc_t"})),
    PssCheck.PROC_MOUNT: workload(sc(procMount="Unmasked")),
    PssCheck.SECCOMP_PROFILE_BASELINE: workload(sc(seccompProfile={"type": "Unconfined"})),
    PssCheck.SYSCTLS: workload(
        hardened(), securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}
    ),
    PssCheck.HOST_PROBES_AND_HOST_LIFECYCLE: workload(
        {**hardened(), "livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}}}
    ),
    PssCheck.RESTRICTED_VOLUMES: workload(
        hardened(), volumes=[{"name": "n", "nfs": {"server": "s", "path": "/"}}]
    ),
    PssCheck.ALLOW_PRIVILEGE_ESCALATION: workload(sc(allowPrivilegeEscalation=True)),
    PssCheck.CAPABILITIES_RESTRICTED: workload(sc(capabilities={"drop": ["NET_RAW"]})),
    PssCheck.RUN_AS_NON_ROOT: workload(sc(runAsNonRoot=False)),
    PssCheck.RUN_AS_USER: workload(sc(runAsUser=0)),
    PssCheck.SECCOMP_PROFILE_RESTRICTED: workload(container("bare", securityContext={"runAsNonRoot": True})),
    PssCheck.PROC_MOUNT_RESTRICTED: workload(sc(procMount="Unmasked"), hostUsers=False),
}


def test_the_benchmarks_list_every_check_of_their_level() -> None:
    assert len(BASELINE.rules) == 12 and len(RESTRICTED.rules) == 19
    assert {r.id for r in RESTRICTED.rules} == {c.value for c in PssCheck} == {c.value for c in FAILING}
    assert {r.id for r in BASELINE.rules} == {c.value for c, d in PSS_CHECKS.items() if d.level == "baseline"}


@pytest.mark.parametrize("check", list(PssCheck), ids=lambda c: c.value)
def test_check_passes_a_hardened_pod_and_fails_a_violating_one(check: PssCheck) -> None:
    assert pss_violations(check, workload(hardened()), V) == []
    found = pss_violations(check, FAILING[check], V)
    assert found and all(e.expected for e in found), check


def test_restricted_replaces_baseline_twins_only_from_their_version() -> None:
    assert PssCheck.CAPABILITIES_BASELINE in checks_for("restricted", (1, 21))
    assert PssCheck.CAPABILITIES_BASELINE not in checks_for("restricted", (1, 22))
    assert PssCheck.PROC_MOUNT in checks_for("restricted", (1, 34))
    assert PssCheck.PROC_MOUNT_RESTRICTED not in checks_for("restricted", (1, 34))
    assert PssCheck.HOST_PATH_VOLUMES not in checks_for("restricted", (1, 0))
    assert PssCheck.HOST_PROBES_AND_HOST_LIFECYCLE not in checks_for("baseline", (1, 33))


def test_allowed_values_depend_on_the_policy_version() -> None:
    assert "net.ipv4.ip_local_reserved_ports" not in allowed_sysctls((1, 26))
    assert "net.ipv4.ip_local_reserved_ports" in allowed_sysctls((1, 27))
    assert "net.ipv4.tcp_rmem" in allowed_sysctls((1, 32))
    engine_t = workload(sc(seLinuxOptions={"type": "container_engine_t"}))
    assert pss_violations(PssCheck.SELINUX_OPTIONS, engine_t, (1, 30))
    assert not pss_violations(PssCheck.SELINUX_OPTIONS, engine_t, (1, 31))


def test_windows_pods_and_user_namespaces_relax_what_the_standard_relaxes() -> None:
    windows = workload(container(), os={"name": "windows"})
    assert not pss_violations(PssCheck.ALLOW_PRIVILEGE_ESCALATION, windows, (1, 25))
    assert pss_violations(PssCheck.ALLOW_PRIVILEGE_ESCALATION, windows, (1, 24))
    userns = workload(sc(runAsUser=0, procMount="Unmasked"), hostUsers=False)
    assert not pss_violations(PssCheck.RUN_AS_USER, userns, (1, 35))
    assert pss_violations(PssCheck.RUN_AS_USER, userns, (1, 34))
    assert not pss_violations(PssCheck.PROC_MOUNT, userns, (1, 35))
    assert pss_violations(PssCheck.PROC_MOUNT_RESTRICTED, userns, (1, 35))


def test_pod_level_run_as_non_root_covers_containers() -> None:
    w = workload(container(), securityContext={"runAsNonRoot": True})
    assert not pss_violations(PssCheck.RUN_AS_NON_ROOT, w, V)


def _failing(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.status is Status.FAIL]


def test_namespace_labels_pick_the_version_and_are_shown_beside_findings() -> None:
    labels = {
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/enforce-version": "v1.33",
    }
    probe = {**hardened(), "livenessProbe": {"tcpSocket": {"host": "1.2.3.4", "port": 1}}}
    objects = [namespace("old", labels), namespace("new"), pod("a", "old", probe), pod("b", "new", probe)]
    rules = [r for r in BASELINE.rules if r.id == "hostProbesAndHostLifecycle"]
    found = _failing(
        evaluate_cluster(rules, Inventory.build(objects), ClusterSettings(cluster_version=(1, 36)))
    )
    assert [f.resource.namespace for f in found if f.resource] == ["new"]  # v1.33 has no such check
    pinned = ClusterSettings(cluster_version=(1, 36), pss_version=(1, 34))
    found = _failing(evaluate_cluster(rules, Inventory.build(objects), pinned))
    assert sorted(f.resource.namespace or "" for f in found if f.resource) == ["new", "old"]
    shown = next(f for f in found if f.resource and f.resource.namespace == "old").evidence[-1]
    assert "pod-security.kubernetes.io/enforce=baseline" in (shown.found or "")


def test_kube_system_workloads_are_listed_as_expected() -> None:
    holders = Holders.of(BASELINE.expected_holders, BASELINE.never_expected)
    objects = [namespace("kube-system"), pod("cni", "kube-system", sc(privileged=True))]
    rules = [r for r in BASELINE.rules if r.id == "privileged"]
    (passed, listed) = evaluate_cluster(rules, Inventory.build(objects), ClusterSettings(holders=holders))
    assert passed.status is Status.PASS and passed.resource is None
    assert (
        listed.status is Status.PASS and listed.expected and listed.resource and listed.resource.name == "cni"
    )


def test_each_namespace_shows_the_strictest_level_its_workloads_meet() -> None:
    objects = [
        namespace("strict"),
        namespace("loose", {"pod-security.kubernetes.io/enforce": "privileged"}),
        namespace("empty"),
        pod("a", "strict"),
        pod("b", "loose", sc(privileged=True)),
        pod("c", "loose"),
    ]
    inv = Inventory.build(objects)
    levels = namespace_levels(inv.workloads(), {n: m.labels for n, m in inv.namespaces.items()})
    assert levels == {"strict": "restricted", "loose": "privileged", "empty": "restricted"}
    assert level_met(workload(container()), V) == "baseline"
    rule = next(r for r in load_benchmark("cis-1.12").rules if r.id == "5.2.1")
    (f,) = evaluate_cluster([rule], inv)
    shown = {e.subject: (e.found, e.expected) for e in f.evidence}
    assert shown["Namespace loose"] == ("enforce=privileged", "workloads meet privileged")
