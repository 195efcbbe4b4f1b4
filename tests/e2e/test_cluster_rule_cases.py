"""Every automated section-5 rule and every Pod Security Standards check, on real API objects.

Cases (real apiserver: every object passed its admission and validation): one violating object
per rule or check, in the test's namespace (or cluster-scoped with the run id in its name); the
profile's cluster-level report fails each rule naming its object, and names no compliant object
(a hardened Pod, a binding to a harmless role) for any rule. Pods need not run: no node takes them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from e2e_support import Plumbob, apply, get, profile_body, wait_for

from plumbob.benchmarks.catalog import load_benchmark

pytestmark = pytest.mark.e2e

HARDENED_SC = {
    "allowPrivilegeEscalation": False,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _pod(
    name: str, ns: str, sc: dict[str, Any] | None = None, container: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    c = {
        "name": "c",
        "image": "registry.invalid/app:1",
        "securityContext": {**HARDENED_SC, **(sc or {})},
        **(container or {}),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [c], **spec},
    }


def _pods(ns: str) -> dict[str, dict[str, Any]]:
    return {
        "good": _pod("good", ns),
        "priv": _pod("priv", ns, {"privileged": True, "allowPrivilegeEscalation": True}),
        "hostpid": _pod("hostpid", ns, hostPID=True),
        "hostipc": _pod("hostipc", ns, hostIPC=True),
        "hostnet": _pod("hostnet", ns, hostNetwork=True),
        "escal": _pod("escal", ns, {"allowPrivilegeEscalation": True}),
        "root": _pod("root", ns, {"runAsNonRoot": False}),
        "uid0": _pod("uid0", ns, {"runAsUser": 0, "runAsNonRoot": None}),
        "netraw": _pod("netraw", ns, {"capabilities": {"add": ["NET_RAW"], "drop": ["ALL"]}}),
        "caps": _pod("caps", ns, {"capabilities": {"add": ["SYS_ADMIN"], "drop": ["ALL"]}}),
        "hostproc": _pod(
            "hostproc",
            ns,
            {
                "windowsOptions": {"hostProcess": True},
                "runAsNonRoot": None,
                "seccompProfile": None,
                "capabilities": None,
                "allowPrivilegeEscalation": None,
            },
            hostNetwork=True,
            os={"name": "windows"},
        ),
        "hostpath": _pod("hostpath", ns, volumes=[{"name": "h", "hostPath": {"path": "/etc"}}]),
        "hostport": _pod("hostport", ns, container={"ports": [{"containerPort": 80, "hostPort": 8080}]}),
        "secretenv": _pod(
            "secretenv",
            ns,
            container={"env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
        ),
        "unconfined": _pod("unconfined", ns, {"seccompProfile": {"type": "Unconfined"}}),
        "apparmor": _pod("apparmor", ns, {"appArmorProfile": {"type": "Unconfined"}}),
        "selinux": _pod("selinux", ns, {"seLinuxOptions": {"type": "spc_t"}}),
        "procmount": _pod("procmount", ns, {"procMount": "Unmasked"}, hostUsers=False),
        "sysctl": _pod(
            "sysctl", ns, securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "65536"}]}
        ),
        "probe": _pod(
            "probe", ns, container={"livenessProbe": {"tcpSocket": {"host": "10.0.0.1", "port": 80}}}
        ),
        "nfs": _pod("nfs", ns, volumes=[{"name": "n", "nfs": {"server": "nfs.invalid", "path": "/"}}]),
        "nodrop": _pod("nodrop", ns, {"capabilities": {"drop": ["NET_RAW"]}}),
        "noseccomp": _pod("noseccomp", ns, {"seccompProfile": None}),
    }


# rule → the object that must fail it (pod names, or "<kind>:<name>" for other objects)
POD_RULES = {
    "5.2.2": "priv",
    "5.2.3": "hostpid",
    "5.2.4": "hostipc",
    "5.2.5": "hostnet",
    "5.2.6": "escal",
    "5.2.7": "root",
    "5.2.8": "netraw",
    "5.2.9": "caps",
    "5.2.10": "hostproc",
    "5.2.11": "hostpath",
    "5.2.12": "hostport",
    "5.4.1": "secretenv",
    "5.6.2": "unconfined",
    "windowsHostProcess": "hostproc",
    "hostNamespaces": "hostipc",
    "privileged": "priv",
    "hostPorts": "hostport",
    "appArmorProfile": "apparmor",
    "seLinuxOptions": "selinux",
    "sysctls": "sysctl",
    "hostProbesAndHostLifecycle": "probe",
    "restrictedVolumes": "nfs",
    "allowPrivilegeEscalation": "escal",
    "capabilities_restricted": "nodrop",
    "runAsNonRoot": "root",
    "runAsUser": "uid0",
    "seccompProfile_restricted": "noseccomp",
    "procMount_restricted": "procmount",
}
# baseline checks the restricted level replaces by a stricter twin: checked with a baseline profile
BASELINE_ONLY = {
    "capabilities_baseline": "caps",
    "hostPathVolumes": "hostpath",
    "seccompProfile_baseline": "unconfined",
}


def _rbac(run_id: str) -> list[dict[str, Any]]:
    rbac = "rbac.authorization.k8s.io/v1"
    rules = [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]},
        {
            "apiGroups": [""],
            "resources": ["pods", "persistentvolumes", "serviceaccounts/token"],
            "verbs": ["create"],
        },
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["escalate"]},
        {"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]},
        {
            "apiGroups": ["certificates.k8s.io"],
            "resources": ["certificatesigningrequests/approval"],
            "verbs": ["update"],
        },
        {"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "verbs": ["approve"]},
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["validatingwebhookconfigurations"],
            "verbs": ["patch"],
        },
    ]

    def crb(name: str, role: str) -> dict[str, Any]:
        return {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": f"mallory-{run_id}"}
            ],
        }

    return [
        {"apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": f"who-{run_id}"}, "rules": rules},
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": {"name": f"wild-{run_id}"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}],
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": {"name": f"harmless-{run_id}"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
        },
        crb(f"who-{run_id}", f"who-{run_id}"),
        crb(f"admin-{run_id}", "cluster-admin"),
        crb(f"harmless-{run_id}", f"harmless-{run_id}"),
    ]


def test_every_automated_rule_fails_on_its_object_and_spares_compliant_ones(
    plumbob: Plumbob, run_id: str, namespace: str
) -> None:
    cp = plumbob.cp
    name = f"cases-{run_id}"
    pinned = {"name": "cis-kubernetes", "version": "1.12"}
    apply(
        cp,
        profile_body(
            name, run_id, benchmark=pinned, podSecurity={"level": "restricted", "version": "latest"}
        ),
    )
    apply(
        cp,
        profile_body(
            f"{name}-b", run_id, benchmark=pinned, podSecurity={"level": "baseline", "version": "latest"}
        ),
    )
    rbac = _rbac(run_id)
    stray = _pod(f"stray-{run_id}", "default")
    for body in [*_pods(namespace).values(), *rbac, stray]:
        result = cp.kubectl("apply", "-f", "-", input=json.dumps(body), check=False)
        assert result.returncode == 0, f"{body['kind']} {body['metadata']['name']}: {result.stderr}"
    who, admin, harmless = f"who-{run_id}", f"admin-{run_id}", f"harmless-{run_id}"
    wanted: dict[str, tuple[str, str | None]] = {rule: (pod, namespace) for rule, pod in POD_RULES.items()}
    wanted.update(
        {
            "5.1.1": (admin, None),
            "5.1.2": (who, None),
            "5.1.3": (f"wild-{run_id}", None),
            "5.1.4": (who, None),
            "5.1.5": ("default", namespace),
            "5.1.8": (who, None),
            "5.1.9": (who, None),
            "5.1.10": (who, None),
            "5.1.11": (who, None),
            "5.1.12": (who, None),
            "5.1.13": (who, None),
            "5.3.2": (namespace, None),
            "5.6.4": (f"stray-{run_id}", "default"),
        }
    )
    try:
        missing: list[str] = []

        def failures(
            report_name: str, expect: dict[str, tuple[str, str | None]]
        ) -> dict[str, set[tuple[str, str | None]]] | None:
            report = get(cp, "compliancereport", report_name) or {}
            out: dict[str, set[tuple[str, str | None]]] = {}
            for r in (report.get("spec") or {}).get("results") or []:
                if r["status"] == "fail" and r.get("resource"):
                    resource = r["resource"]
                    out.setdefault(r["id"], set()).add((resource["name"], resource.get("namespace")))
            missing[:] = [f"{rule}: {obj}" for rule, obj in expect.items() if obj not in out.get(rule, set())]
            return None if missing else out

        baseline_only: dict[str, tuple[str, str | None]] = {
            r: (pod, namespace) for r, pod in BASELINE_ONLY.items()
        }
        found: dict[str, set[tuple[str, str | None]]] = {}
        for report_name, expect in ((name, wanted), (f"{name}-b", baseline_only)):
            try:
                found |= wait_for(
                    f"{report_name}: every rule to fail on its object",
                    lambda: failures(report_name, expect),  # noqa: B023 - called before the loop moves on
                    120,
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}; not failed: {', '.join(missing)}") from None
        # every automated section-5 rule, and every PSS check but the baseline procMount (restricted
        # replaces it; its Unmasked case needs hostUsers: false, which relaxes the baseline check)
        benchmark = load_benchmark("cis-1.12")
        cis = {r.id for r in benchmark.rules if r.cluster_audit and r.cluster_audit.type != "evidence"}
        pss = {r.id for r in load_benchmark("pss-restricted").rules} - {"procMount"}
        assert set(wanted) | set(baseline_only) == cis | pss
        assert (len(cis), len(pss)) == (26, 18)
        for rule, names in found.items():
            assert ("good", namespace) not in names, rule
            assert (harmless, None) not in names, rule
    finally:
        for body in [*rbac, stray]:
            cp.kubectl(
                "delete",
                body["kind"].lower(),
                body["metadata"]["name"],
                *(["-n", "default"] if body["kind"] == "Pod" else []),
                "--ignore-not-found",
                "--wait=false",
            )
        cp.kubectl("delete", "complianceprofile", name, f"{name}-b", "--ignore-not-found", "--wait=false")
