"""CIS v1.12 section 5 from API objects: every automated rule has a passing and a failing case.

Cases: for each of the 26 automated rules, a set of objects that passes and one that fails, the
failure naming the object at fault; the six evidence rules stay manual with evidence; 5.4.2 and
5.6.1 stay manual with guidance; expected holders (the built-in cluster-admin binding, kube-system
add-ons) are listed as expected, never failed and never dropped, and a profile's own list
replaces them; a broad group is never expected; a Deployment is reported once, not per replica;
init and ephemeral containers are checked; a check that raises gives error for that object.
"""

from __future__ import annotations

from typing import Any

import pytest
from cluster_builders import (
    cluster_role,
    container,
    crb,
    deployment,
    group,
    hardened,
    namespace,
    network_policy,
    pod,
    rule,
    service,
    service_account,
    user,
)

from plumbob.benchmarks.catalog import load_benchmark
from plumbob.benchmarks.rules import ExpectedHolder, PodCheck, Rule
from plumbob.engine.cluster import ClusterSettings, Holders, Inventory, evaluate_cluster, pods
from plumbob.engine.findings import Finding, Status

BENCH = load_benchmark("cis-1.12")
RULES = {r.id: r for r in BENCH.rules}
DEFAULT_HOLDERS = Holders.of(BENCH.expected_holders, BENCH.never_expected)
AUTOMATED = [r.id for r in BENCH.rules if r.cluster_audit is not None and r.cluster_audit.type != "evidence"]
EVIDENCE = [r.id for r in BENCH.rules if r.cluster_audit is not None and r.cluster_audit.type == "evidence"]

BASE: list[dict[str, Any]] = [
    namespace("team"),
    network_policy("deny", "team"),
    service_account("default", "team", automount=False),
]


def run(rule_id: str, objects: list[dict[str, Any]], holders: Holders = DEFAULT_HOLDERS) -> list[Finding]:
    return evaluate_cluster([RULES[rule_id]], Inventory.build(objects), ClusterSettings(holders=holders))


def failing(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.status is Status.FAIL]


def wl_role(verbs: list[str], resources: list[str], groups: list[str] | None = None) -> list[dict[str, Any]]:
    return [
        cluster_role("r", rule(groups if groups is not None else [""], resources, verbs)),
        crb("grant", "r", user("mallory")),
    ]


def with_container(**fields: Any) -> list[dict[str, Any]]:
    c = hardened()
    sc = {**c["securityContext"], **fields.pop("securityContext", {})}
    return [pod("p", "team", {**c, "securityContext": sc, **fields})]


# rule id → (objects that pass, objects that fail, name of the object the failure is about)
CASES: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]], str]] = {
    "5.1.1": (
        [crb("cluster-admin", "cluster-admin", group("system:masters"))],
        [crb("ops", "cluster-admin", user("bob"))],
        "ops",
    ),
    "5.1.2": (wl_role(["get"], ["configmaps"]), wl_role(["list"], ["secrets"]), "grant"),
    "5.1.3": (
        [cluster_role("r", rule([""], ["pods"], ["get"]))],
        [cluster_role("wide", rule(["apps"], ["*"], ["get"]))],
        "wide",
    ),
    "5.1.4": (wl_role(["get"], ["pods"]), wl_role(["create"], ["pods"]), "grant"),
    "5.1.5": ([], [service_account("default", "other")], "default"),
    "5.1.8": (
        wl_role(["get"], ["roles"], ["rbac.authorization.k8s.io"]),
        wl_role(["escalate"], ["clusterroles"], ["rbac.authorization.k8s.io"]),
        "grant",
    ),
    "5.1.9": (wl_role(["get"], ["persistentvolumes"]), wl_role(["create"], ["persistentvolumes"]), "grant"),
    "5.1.10": (wl_role(["get"], ["nodes"]), wl_role(["get"], ["nodes/proxy"]), "grant"),
    "5.1.11": (
        wl_role(["update"], ["certificatesigningrequests/approval"], ["certificates.k8s.io"]),
        [
            cluster_role(
                "r",
                rule(["certificates.k8s.io"], ["certificatesigningrequests/approval"], ["update"]),
                rule(
                    ["certificates.k8s.io"], ["signers"], ["approve"], ["kubernetes.io/kube-apiserver-client"]
                ),
            ),
            crb("grant", "r", user("mallory")),
        ],
        "grant",
    ),
    "5.1.12": (
        wl_role(["get"], ["mutatingwebhookconfigurations"], ["admissionregistration.k8s.io"]),
        wl_role(["patch"], ["mutatingwebhookconfigurations"], ["admissionregistration.k8s.io"]),
        "grant",
    ),
    "5.1.13": (
        wl_role(["get"], ["serviceaccounts"]),
        wl_role(["create"], ["serviceaccounts/token"]),
        "grant",
    ),
    "5.2.2": (with_container(), with_container(securityContext={"privileged": True}), "p"),
    "5.2.3": ([pod("p", "team")], [pod("p", "team", hostPID=True)], "p"),
    "5.2.4": ([pod("p", "team")], [pod("p", "team", hostIPC=True)], "p"),
    "5.2.5": ([pod("p", "team")], [pod("p", "team", hostNetwork=True)], "p"),
    "5.2.6": (with_container(), [pod("p", "team", container())], "p"),
    "5.2.7": (with_container(), with_container(securityContext={"runAsNonRoot": False}), "p"),
    "5.2.8": (
        with_container(),
        with_container(securityContext={"capabilities": {"add": ["NET_RAW"], "drop": ["ALL"]}}),
        "p",
    ),
    "5.2.9": (
        with_container(),
        with_container(securityContext={"capabilities": {"add": ["SYS_ADMIN"], "drop": ["ALL"]}}),
        "p",
    ),
    "5.2.10": (
        with_container(),
        with_container(securityContext={"windowsOptions": {"hostProcess": True}}),
        "p",
    ),
    "5.2.11": (
        [pod("p", "team", volumes=[{"name": "v", "emptyDir": {}}])],
        [pod("p", "team", volumes=[{"name": "v", "hostPath": {"path": "/"}}])],
        "p",
    ),
    "5.2.12": (
        with_container(ports=[{"containerPort": 80}]),
        with_container(ports=[{"containerPort": 80, "hostPort": 80}]),
        "p",
    ),
    "5.3.2": (
        [namespace("a"), network_policy("x", "a")],
        [namespace("a"), namespace("b"), network_policy("x", "a")],
        "b",
    ),
    "5.4.1": (
        with_container(volumeMounts=[{"name": "s", "mountPath": "/s"}]),
        with_container(env=[{"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]),
        "p",
    ),
    "5.6.2": (
        with_container(),
        with_container(securityContext={"seccompProfile": {"type": "Unconfined"}}),
        "p",
    ),
    "5.6.4": (
        [service("kubernetes", "default"), service_account("default", "default", False)],
        [pod("stray", "default")],
        "stray",
    ),
}


def test_the_benchmark_automates_26_rules_lists_evidence_for_6_and_leaves_2_manual() -> None:
    assert sorted(AUTOMATED) == sorted(CASES)
    assert len(AUTOMATED) == 26
    assert sorted(EVIDENCE) == ["5.1.6", "5.1.7", "5.2.1", "5.3.1", "5.5.1", "5.6.3"]
    manual = [r.id for r in BENCH.rules if r.id.startswith("5.") and r.cluster_audit is None]
    assert manual == ["5.4.2", "5.6.1"]


@pytest.mark.parametrize("rule_id", sorted(CASES, key=lambda i: tuple(int(p) for p in str(i).split("."))))
def test_rule_passes_and_fails(rule_id: str) -> None:
    good, bad, culprit = CASES[rule_id]
    passed = run(rule_id, BASE + good)
    assert not failing(passed), [f.reason for f in failing(passed)]
    assert any(f.status is Status.PASS and f.resource is None for f in passed)
    failed = failing(run(rule_id, BASE + bad))
    assert failed, f"{rule_id} found nothing wrong"
    assert culprit in {f.resource.name for f in failed if f.resource}
    assert all(f.reason and f.evidence for f in failed)


def test_rbac_finding_names_subject_binding_and_role() -> None:
    (f,) = failing(run("5.1.4", BASE + wl_role(["create"], ["pods"])))
    assert f.resource is not None and (f.resource.kind, f.resource.name) == ("ClusterRoleBinding", "grant")
    assert f.evidence[0].subject == "User mallory"
    assert "ClusterRole r" in (f.evidence[0].location or "")
    assert "User mallory" in (f.reason or "") and "ClusterRoleBinding grant" in (f.reason or "")


def test_expected_holders_are_listed_not_failed_and_a_profile_can_replace_them() -> None:
    objects = [
        *BASE,
        crb("cluster-admin", "cluster-admin", group("system:masters")),
        pod("kube-proxy", "kube-system", hardened(), hostNetwork=True),
    ]
    admin = run("5.1.1", objects)
    (listed,) = [f for f in admin if f.expected]
    assert (
        listed.status is Status.PASS
        and listed.resource is not None
        and listed.resource.name == "cluster-admin"
    )
    assert not failing(admin)
    full = cluster_role("cluster-admin", rule(["*"], ["*"], ["*"]))
    for who_can in ("5.1.2", "5.1.4", "5.1.8", "5.1.13"):  # the built-in binding is expected everywhere
        assert not failing(run(who_can, [*objects, full])), who_can
    net = run("5.2.5", objects)
    assert [f.resource.name for f in net if f.expected and f.resource] == ["kube-proxy"]
    # the profile's list replaces the defaults: nothing expected any more
    assert [f.resource.name for f in failing(run("5.1.1", objects, Holders())) if f.resource] == [
        "cluster-admin"
    ]
    own = Holders.of([ExpectedHolder(rules=["5.2.5"], namespace="team", reason="ours")], [])
    failed = failing(run("5.2.5", [*objects, pod("p", "team", hostNetwork=True)], own))
    assert [f.resource.name for f in failed if f.resource] == ["kube-proxy"]


def test_a_broad_group_is_never_expected() -> None:
    objects = [*BASE, crb("system:oops", "cluster-admin", group("system:authenticated"))]
    (f,) = failing(run("5.1.1", objects))
    assert f.evidence[0].subject == "Group system:authenticated"


def test_a_deployment_is_reported_once_and_its_pods_not_at_all() -> None:
    bad = container()
    objects = (
        BASE
        + [deployment("web", "team", bad)]
        + [pod(f"web-{i}", "team", bad, owner=("Deployment", "web")) for i in range(5)]
    )
    assert [f.resource.kind for f in failing(run("5.2.6", objects)) if f.resource] == ["Deployment"]


def test_init_and_ephemeral_containers_are_checked() -> None:
    priv = container("debug", securityContext={"privileged": True})
    for field in ("initContainers", "ephemeralContainers"):
        spec: dict[str, Any] = {field: [priv]}
        (f,) = failing(run("5.2.2", [*BASE, pod("p", "team", hardened(), **spec)]))
        assert f"spec.{field}[0]" in (f.evidence[0].location or "")


def test_a_pod_with_ephemeral_containers_is_checked_beside_its_deployment() -> None:
    priv = container("debug", securityContext={"privileged": True})
    objects = [
        *BASE,
        deployment("web", "team"),
        pod("web-1", "team", hardened(), owner=("Deployment", "web"), ephemeralContainers=[priv]),
    ]
    assert [f.resource.name for f in failing(run("5.2.2", objects)) if f.resource] == ["web-1"]


def test_evidence_rules_stay_manual_with_evidence() -> None:
    objects = [*BASE, namespace("open"), crb("masters", "view", group("system:masters")), pod("p", "team")]
    for rule_id in EVIDENCE:
        (f,) = run(rule_id, objects)
        assert f.status is Status.MANUAL and f.reason and f.evidence, rule_id
    (f,) = run("5.2.1", objects)
    assert any(e.subject == "Namespace open" and e.found == "none" for e in f.evidence)
    (f,) = run("5.1.6", objects)
    assert [e.found for e in f.evidence] == ["nothing found"]  # team's default SA mounts nothing
    (f,) = run("5.1.6", [*objects, pod("q", "team", automountServiceAccountToken=True)])
    assert [e.subject for e in f.evidence] == ["Pod team/q"]


def test_guidance_only_rules_stay_manual() -> None:
    for rule_id in ("5.4.2", "5.6.1"):
        (f,) = run(rule_id, BASE)
        assert f.status is Status.MANUAL and f.reason == RULES[rule_id].guidance


def test_a_check_that_raises_gives_error_for_that_object_only(monkeypatch: pytest.MonkeyPatch) -> None:
    real = pods.POD_CHECKS[PodCheck.PRIVILEGED]

    def flaky(w: Any) -> Any:
        if w.meta.name == "bad":
            raise ValueError("boom")
        return real(w)

    monkeypatch.setitem(pods.POD_CHECKS, PodCheck.PRIVILEGED, flaky)
    found = run("5.2.2", [*BASE, pod("bad", "team"), pod("good", "team")])
    assert [(f.status, f.resource.name if f.resource else None) for f in found] == [(Status.ERROR, "bad")]
    assert "boom" in (found[0].reason or "")


def test_malformed_objects_read_as_absent_and_never_crash() -> None:
    junk = [
        {
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "team"},
            "spec": {"containers": "nope", "volumes": [1]},
        },
        {
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "b"},
            "roleRef": None,
            "subjects": [None, {"kind": "User"}],
        },
        {"metadata": {}},
        "not an object",
    ]
    inv = Inventory.build(junk)  # type: ignore[arg-type]
    assert inv.skipped == 2
    rules: list[Rule] = [RULES[i] for i in AUTOMATED]
    findings = evaluate_cluster(rules, inv, ClusterSettings(holders=DEFAULT_HOLDERS))
    assert all(f.status is not Status.ERROR for f in findings)
