"""Cluster-level rules on the real testbed: API objects in, the profile's cluster-level report out.

Cases (real apiserver, etcd and controller-manager; the operator under the chart's RBAC):
- a privileged Pod (pending: it need not run), a ClusterRoleBinding of a user to cluster-admin
  and a namespace without a NetworkPolicy each give a failing result naming the object (5.2.2,
  5.1.1, 5.3.2), while the built-in cluster-admin binding is listed as expected;
- a custom CEL rule gives a failing result for the Pod that breaks it; a custom rule on a kind the
  API server does not serve is an error result;
- fixing the objects (delete the Pod and the binding, add a NetworkPolicy) clears the failures;
- then a custom rule that does not compile is added: the profile is Stalled (InvalidCustomRule)
  with observedGeneration current, naming the rule and the compiler's message, one Event says so,
  the rule is an error result and the other rules are still evaluated.
"""

from __future__ import annotations

from typing import Any

import pytest
from e2e_support import Plumbob, apply, events, get, items, profile_body, wait_for

pytestmark = pytest.mark.e2e


def _results(plumbob: Plumbob, name: str) -> list[dict[str, Any]]:
    report = get(plumbob.cp, "compliancereport", name) or {}
    return list((report.get("spec") or {}).get("results") or [])


def _failing(results: list[dict[str, Any]], rule: str, name: str) -> bool:
    return any(
        r["id"] == rule and r["status"] == "fail" and (r.get("resource") or {}).get("name") == name
        for r in results
    )


def test_cluster_rules_find_and_clear_violations(plumbob: Plumbob, run_id: str, namespace: str) -> None:
    cp = plumbob.cp
    name = f"cl-{run_id}"
    custom = {
        "id": "custom.no-host-network",
        "title": "Pods stay off the host network",
        "severity": "high",
        "match": {"apiVersion": "v1", "kind": "Pod", "namespaces": [namespace]},
        "expression": "!has(object.spec.hostNetwork) || !object.spec.hostNetwork",
        "message": "the Pod shares the node's network",
    }
    unknown = {
        **custom,
        "id": "custom.unknown-kind",
        "match": {"apiVersion": "example.com/v1", "kind": "Gadget"},
    }
    apply(cp, profile_body(name, run_id, benchmark={"name": "cis-kubernetes", "version": "1.12"},
                           customRules=[custom, unknown]))  # fmt: skip
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "priv", "namespace": namespace},
        "spec": {
            "hostNetwork": True,
            "containers": [
                {"name": "c", "image": "registry.invalid/x:1", "securityContext": {"privileged": True}}
            ],
        },
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"admin-{run_id}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": f"mallory-{run_id}"}],
    }
    apply(cp, pod)
    apply(cp, binding)
    try:

        def all_found() -> list[dict[str, Any]] | None:
            results = _results(plumbob, name)
            wanted = [
                _failing(results, "5.2.2", "priv"),
                _failing(results, "5.1.1", f"admin-{run_id}"),
                _failing(results, "5.3.2", namespace),
                _failing(results, "custom.no-host-network", "priv"),
            ]
            return results if all(wanted) else None

        results = wait_for(
            "the cluster report to name the privileged Pod, binding and namespace", all_found, 120
        )
        expected = [r for r in results if r["id"] == "5.1.1" and r["status"] == "pass" and r.get("resource")]
        assert any(
            r["resource"]["name"] == "cluster-admin" and r["reason"].startswith("expected:") for r in expected
        )
        (gone,) = [r for r in results if r["id"] == "custom.unknown-kind"]
        assert gone["status"] == "error" and "Gadget" in gone["reason"]

        # the status (summary after exceptions) is written by the pass after the evaluation
        def summarised() -> dict[str, Any] | None:
            report = get(cp, "compliancereport", name) or {}
            status = report.get("status") or {}
            current = status.get("observedGeneration") == report.get("metadata", {}).get("generation")
            return status if current and status.get("summary") else None

        assert wait_for("the cluster report's summary", summarised, 60)["summary"].get("fail", 0) >= 4

        cp.kubectl("delete", "pod", "priv", "-n", namespace, "--grace-period=0", "--force", "--wait=false")
        cp.kubectl("delete", "clusterrolebinding", f"admin-{run_id}")
        apply(cp, {
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": namespace}, "spec": {"podSelector": {}},
        })  # fmt: skip

        def all_cleared() -> bool:
            results = _results(plumbob, name)
            return bool(results) and not any(
                _failing(results, rule, obj)
                for rule, obj in (
                    ("5.2.2", "priv"),
                    ("5.1.1", f"admin-{run_id}"),
                    ("5.3.2", namespace),
                    ("custom.no-host-network", "priv"),
                )
            )

        wait_for("the fixed objects to leave the cluster report", all_cleared, 120)
        broken = {**custom, "id": "custom.broken", "expression": "nosuch(object)"}
        apply(cp, profile_body(name, run_id, benchmark={"name": "cis-kubernetes", "version": "1.12"},
                               customRules=[custom, unknown, broken]))  # fmt: skip

        def stalled() -> dict[str, Any] | None:
            prof = get(cp, "complianceprofile", name) or {}
            status = prof.get("status") or {}
            for c in status.get("conditions") or []:
                if (
                    c["type"] == "Stalled"
                    and c["status"] == "True"
                    and status.get("observedGeneration") == prof["metadata"]["generation"]
                ):
                    return dict(c)
            return None

        cond = wait_for("the profile with a broken custom rule to be Stalled", stalled, 60)
        assert cond["reason"] == "InvalidCustomRule"
        assert "spec.customRules[2] (custom.broken)" in cond["message"] and "nosuch" in cond["message"]
        told = wait_for("one InvalidCustomRule Event", lambda: events(cp, "InvalidCustomRule", name), 30)
        assert len(told) == 1 and "custom.broken" in told[0]["message"]
        err = wait_for(
            "the broken rule's error result, beside the others",
            lambda: [r for r in _results(plumbob, name) if r["id"] == "custom.broken"] or None,
            60,
        )
        assert err[0]["status"] == "error" and "nosuch" in err[0]["reason"]
        assert any(r["id"] == "5.1.1" for r in _results(plumbob, name)), "the rest is still evaluated"
    finally:
        cp.kubectl("delete", "clusterrolebinding", f"admin-{run_id}", "--ignore-not-found")
        cp.kubectl("delete", "complianceprofile", name, "--ignore-not-found", "--wait=false")


def test_drift_events_and_a_teams_exception_on_the_real_api(
    plumbob: Plumbob, run_id: str, namespace: str
) -> None:
    """A privileged Pod gives ComplianceDrift on the Pod (with its uid, so `kubectl describe`
    shows it) and on the profile within seconds of its creation, without waiting for the 60 s
    interval; fixing it (deleting the Pod) gives ComplianceRestored on the profile. A namespaced
    exception in the Pod's namespace excepts its finding in the cluster report's status, and the
    same exception in another namespace does not."""
    cp = plumbob.cp
    name = f"dr-{run_id}"
    apply(cp, profile_body(name, run_id, benchmark={"name": "cis-kubernetes", "version": "1.12"}))
    wait_for("the baseline cluster report", lambda: _results(plumbob, name) or None, 120)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "drifter", "namespace": namespace},
        "spec": {
            "containers": [
                {"name": "c", "image": "registry.invalid/x:1", "securityContext": {"privileged": True}}
            ]
        },
    }
    apply(cp, pod)
    uid = (get(cp, "pod", "drifter", namespace) or {})["metadata"]["uid"]
    on_pod = wait_for(
        "ComplianceDrift on the Pod",
        lambda: [e for e in events(cp, "ComplianceDrift", "drifter", "Pod") if name in e["message"]] or None,
        60,
    )
    assert on_pod[0]["involvedObject"]["uid"] == uid and "5.2.2" in " ".join(e["message"] for e in on_pod)
    on_profile = wait_for(
        "ComplianceDrift on the profile", lambda: events(cp, "ComplianceDrift", name) or None, 30
    )
    assert any(f"Pod {namespace}/drifter" in e["message"] for e in on_profile)

    other = f"elsewhere-{run_id}"
    cp.kubectl("create", "namespace", other)
    waiver: dict[str, Any] = {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceException",
        "metadata": {"name": "privileged-agent"},
        "spec": {
            "entries": [
                {
                    "rules": ["5.2.2"],
                    "reason": "vendor agent",
                    "owner": "team@example.com",
                    "expires": "2099-01-01",
                }
            ]
        },
    }
    try:
        apply(cp, {**waiver, "metadata": {**waiver["metadata"], "namespace": other}})
        apply(cp, {**waiver, "metadata": {**waiver["metadata"], "namespace": namespace}})

        def excepted() -> list[dict[str, Any]] | None:
            report = get(cp, "compliancereport", name) or {}
            found = [
                e
                for e in (report.get("status") or {}).get("exceptions") or []
                if e["rule"] == "5.2.2" and e["resource"]["name"] == "drifter"
            ]
            return found or None

        (entry,) = wait_for("the team's exception to except the Pod's finding", excepted, 60)
        assert entry["exception"]["namespace"] == namespace, (
            "only the Pod's own namespace's exception applies"
        )

        # the team's own report: its namespace's findings, readable with the namespace's view role
        def team_report() -> dict[str, Any] | None:
            body = get(cp, "namespacecompliancereport", name, namespace) or {}
            listed = [r for r in (body.get("status") or {}).get("results") or [] if r["id"] == "5.2.2"]
            return body if listed and listed[0].get("exception") else None

        report = wait_for("the namespace report with the excepted finding", team_report, 60)
        assert all(r["resource"]["namespace"] == namespace for r in report["status"]["results"])
        user = f"team-{run_id}"
        cp.kubectl(
            "create", "rolebinding", f"view-{run_id}", "-n", namespace, "--clusterrole=view", f"--user={user}"
        )
        mine = cp.kubectl("get", "namespacecompliancereports", "-n", namespace, f"--as={user}", "-o", "name")
        assert name in mine.stdout
        theirs = cp.kubectl("get", "namespacecompliancereports", "-n", other, f"--as={user}", check=False)
        assert theirs.returncode != 0 and "forbidden" in theirs.stderr

        cp.kubectl("delete", "pod", "drifter", "-n", namespace, "--grace-period=0", "--force", "--wait=false")
        restored = wait_for(
            "ComplianceRestored on the profile",
            lambda: [e for e in events(cp, "ComplianceRestored", name) if "drifter" in e["message"]] or None,
            60,
        )
        assert restored
    finally:
        cp.kubectl("delete", "namespace", other, "--wait=false", "--ignore-not-found")
        cp.kubectl("delete", "complianceprofile", name, "--ignore-not-found", "--wait=false")


def test_a_profile_of_cluster_rules_only_watches_a_custom_rules_kind(plumbob: Plumbob, run_id: str) -> None:
    """A profile that selects one cluster-level rule and has a custom rule on
    CustomResourceDefinitions (a kind no built-in rule reads, which the chart lets the operator
    watch): it is Ready without scanning a node; a cluster-scoped CRD fails the custom rule with a
    ComplianceDrift Event on the CRD, and deleting it gives ComplianceRestored on the profile.

    Unwatched kinds are LISTed only at the 60 s interval, and nothing else changes meanwhile, so
    each Event arriving within 20 s of its change (it takes about a second) shows the kind is
    watched; without the watch both would fall within 20 s of a tick about once in ten runs."""
    cp = plumbob.cp
    name = f"co-{run_id}"
    rule_id = "custom.namespaced-crds"
    crd_name = f"widgets{run_id}.e2e.example.com"
    namespaced = {
        "id": rule_id,
        "title": "Custom resources of e2e.example.com are namespaced",
        "severity": "medium",
        "match": {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition"},
        "expression": (
            "!object.metadata.name.endsWith('.e2e.example.com') || object.spec.scope == 'Namespaced'"
        ),
        "message": "a cluster-scoped custom resource of e2e.example.com",
    }
    apply(cp, profile_body(name, run_id, benchmark={"name": "cis-kubernetes", "version": "1.12"},
                           rules={"include": ["5.2.2"]}, customRules=[namespaced]))  # fmt: skip
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": crd_name},
        "spec": {
            "group": "e2e.example.com",
            "scope": "Cluster",
            "names": {"plural": f"widgets{run_id}", "singular": f"widget{run_id}", "kind": f"Widget{run_id}"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    }
    try:

        def ready() -> dict[str, Any] | None:
            prof = get(cp, "complianceprofile", name) or {}
            status = prof.get("status") or {}
            conds = {c["type"]: c for c in status.get("conditions") or []}
            current = status.get("observedGeneration") == prof.get("metadata", {}).get("generation")
            return conds if current and conds.get("Ready", {}).get("reason") == "Evaluated" else None

        conds = wait_for("the cluster-only profile to be Ready", ready, 120)
        assert conds["Ready"]["status"] == "True" and conds["Stalled"]["status"] == "False"
        wait_for(
            "the custom rule's first result",
            lambda: [r for r in _results(plumbob, name) if r["id"] == rule_id] or None,
            120,
        )
        apply(cp, crd)
        told = wait_for(
            "ComplianceDrift on the cluster-scoped CRD",
            lambda: events(cp, "ComplianceDrift", crd_name, "CustomResourceDefinition"),
            20,
        )
        assert rule_id in told[0]["message"]
        assert _failing(_results(plumbob, name), rule_id, crd_name)
        cp.kubectl("delete", "crd", crd_name, "--wait=false")
        wait_for(
            "ComplianceRestored on the profile naming the CRD",
            lambda: [e for e in events(cp, "ComplianceRestored", name) if crd_name in e["message"]] or None,
            20,
        )
        assert not [s for s in items(cp, "compliancescans") if s["spec"]["profile"] == name], (
            "a profile of cluster-level rules only starts no scan by itself"
        )
    finally:
        cp.kubectl("delete", "crd", crd_name, "--ignore-not-found", "--wait=false")
        cp.kubectl("delete", "complianceprofile", name, "--ignore-not-found", "--wait=false")


def test_a_binding_a_namespace_and_a_secret_in_env_each_drift_and_restore(
    plumbob: Plumbob, run_id: str
) -> None:
    """A ClusterRoleBinding of a user to cluster-admin (5.1.1), a namespace without a NetworkPolicy
    (5.3.2) and a Pod with a Secret in its environment (5.4.1) each give ComplianceDrift on the
    object; fixing each (delete the binding, add a NetworkPolicy, delete the Pod) gives
    ComplianceRestored on the profile naming it."""
    cp = plumbob.cp
    name = f"dk-{run_id}"
    team = f"drift-{run_id}"
    apply(cp, profile_body(name, run_id, benchmark={"name": "cis-kubernetes", "version": "1.12"},
                           rules={"include": ["5.1.1", "5.3.2", "5.4.1"]}))  # fmt: skip
    wait_for("the baseline cluster report", lambda: _results(plumbob, name) or None, 120)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"admin-{run_id}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": f"eve-{run_id}"}],
    }
    secret_env = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "secret-env", "namespace": team},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "registry.invalid/x:1",
                    "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                }
            ]
        },
    }
    cases = [
        ("ClusterRoleBinding", f"admin-{run_id}", "5.1.1"),
        ("Namespace", team, "5.3.2"),
        ("Pod", "secret-env", "5.4.1"),
    ]
    try:
        apply(cp, binding)
        cp.kubectl("create", "namespace", team)
        apply(cp, secret_env)
        for kind, obj, rule in cases:

            def drifted(kind: str = kind, obj: str = obj) -> list[dict[str, Any]] | None:
                return [e for e in events(cp, "ComplianceDrift", obj, kind) if name in e["message"]] or None

            told = wait_for(f"ComplianceDrift on {kind} {obj}", drifted, 60)
            assert rule in " ".join(e["message"] for e in told)
        cp.kubectl("delete", "clusterrolebinding", f"admin-{run_id}")
        apply(cp, {
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": team}, "spec": {"podSelector": {}},
        })  # fmt: skip
        cp.kubectl("delete", "pod", "secret-env", "-n", team, "--grace-period=0", "--force", "--wait=false")
        for kind, obj, rule in cases:

            def restored(kind: str = kind, obj: str = obj, rule: str = rule) -> list[dict[str, Any]] | None:
                said = [e["message"] for e in events(cp, "ComplianceRestored", name)]
                return [m for m in said if f"{rule} on {kind} " in m and obj in m] or None

            wait_for(f"ComplianceRestored on the profile naming {kind} {obj}", restored, 60)
    finally:
        cp.kubectl("delete", "clusterrolebinding", f"admin-{run_id}", "--ignore-not-found")
        cp.kubectl("delete", "namespace", team, "--wait=false", "--ignore-not-found")
        cp.kubectl("delete", "complianceprofile", name, "--ignore-not-found", "--wait=false")
