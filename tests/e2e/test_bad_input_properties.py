"""Property: whatever a user applies, the operator stays up, says clearly what it cannot use, and
never claims compliance it did not check.

Hypothesis builds profiles, schedules and exception lists from a valid body and a random set of
mutations (wrong types, unknown ids, impossible dates, selectors that match nothing, long
values, unknown fields, fields the API server refuses on Pods...), and applies each with
``kubectl apply`` to the real API server, as a new version of the same object (edits of a valid
object into an invalid one included). After each object the API server accepted:

- the operator observes it: ``status.observedGeneration`` reaches ``metadata.generation`` (no
  object is stuck at an old generation, the failure mode of edited-into-invalid objects);
- ``Stalled=True`` comes with ``Ready=False`` and ``Reconciling=False`` and a message (kstatus
  reads it as Failed, not InProgress);
- ``Compliant=True`` only with a completed scan whose summary decided at least one rule;

and at the end of the run:

- the operator process is alive and a canary profile still completes a rescan with its node audited.

Objects the API server refused at admission are counted and must name a field in the message.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from e2e_support import (
    MakeCluster,
    NodeSpec,
    Plumbob,
    completed_scan,
    condition,
    get,
    profile_body,
    rescan,
    wait_for,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.e2e

RULE_IDS = ["*", "1.*", "4.2.1", "4.2.*", "9.9.9", "5.1.1", "x", "1.2.a"]
TEXT = st.text(alphabet="abc xyz-_.:/0123456789", min_size=0, max_size=40)
LONG = st.integers(min_value=0, max_value=400).map(lambda n: "r" * n)
ANY = st.one_of(st.none(), st.integers(-5, 5000), TEXT, st.booleans(), st.lists(TEXT, max_size=2))

PROFILE_MUTATIONS: dict[str, st.SearchStrategy[Any]] = {
    "benchmark.version": st.sampled_from(["auto", "1.12", "1.99", "v1.12", 1.12]),
    "benchmark.platform": st.sampled_from(["generic", "auto", "eks", "nonsense"]),
    "rules.include": st.lists(st.sampled_from(RULE_IDS), min_size=0, max_size=3),
    "rules.exclude": st.lists(st.sampled_from(RULE_IDS), min_size=0, max_size=3),
    "rules.manual": st.lists(
        st.fixed_dictionaries({"rule": st.sampled_from(RULE_IDS), "rationale": st.one_of(TEXT, LONG)}),
        max_size=3,
    ),
    "variables": st.dictionaries(
        st.sampled_from(["audit_log_maxage", "audit_log_maxsize", "not_a_variable"]),
        st.sampled_from(["30", "ninety", "", "-1", "1e3"]),
        max_size=2,
    ),
    "nodeSelector": st.sampled_from(
        [{"matchLabels": {"pool": "none"}}, {"matchExpressions": [{"key": "k", "operator": "Bogus"}]}, {}]
    ),
    "nodeRoles": st.lists(st.sampled_from(["control-plane", "worker", "etcd", "master", "gpu"]), max_size=3),
    "tolerations": st.lists(
        st.fixed_dictionaries(
            {"key": st.sampled_from(["a", ""]), "operator": st.sampled_from(["Exists", "Equal", "Maybe"])},
            optional={
                "effect": st.sampled_from(["NoSchedule", "NoExecute", "Never"]),
                "tolerationSeconds": st.integers(-1, 100),
                "value": TEXT,
            },
        ),
        max_size=2,
    ),
    "unknownField": ANY,
}
SCHEDULE_MUTATIONS: dict[str, st.SearchStrategy[Any]] = {
    "schedule": st.sampled_from(["0 3 * * *", "61 * * * *", "0 0 30 2 *", "*/5 * * * *", "bad", ""]),
    "timeZone": st.sampled_from(["UTC", "Europe/Berlin", "Mars/Olympus", "", "+02:00"]),
    "profiles": st.lists(st.sampled_from(["canary-x", "no-such-profile", "UPPER"]), max_size=2),
    "maxParallelNodes": st.one_of(st.integers(-1, 2000), TEXT),
    "nodeDeadlineSeconds": st.integers(-1, 8000),
    "historyLimit": st.integers(-1, 200),
    "suspend": ANY,
}
ENTRY = st.fixed_dictionaries(
    {
        "rules": st.lists(st.sampled_from(RULE_IDS), min_size=0, max_size=2),
        "reason": st.sampled_from(["pilot", "", " "]),
        "owner": st.sampled_from(["sec@example.com", ""]),
        "expires": st.sampled_from(["2027-01-01", "2027-02-30", "2020-01-01", "tomorrow", "2027-13-01"]),
    },
    optional={
        "profiles": st.lists(st.sampled_from(["canary-x", "ghost"]), max_size=2),
        "nodes": st.lists(st.sampled_from(["n1", "*"]), max_size=2),
    },
)


def mutated(base: dict[str, Any], mutations: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(json.dumps(base))
    for path, value in mutations.items():
        *parents, leaf = path.split(".")
        node = body["spec"]
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return body


def apply_body(plumbob: Plumbob, body: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return plumbob.cp.kubectl("apply", "-f", "-", input=json.dumps(body), check=False)


def check_settled(plumbob: Plumbob, plural: str, name: str, namespace: str | None = None) -> None:
    """The invariants for one object the API server accepted."""

    def observed() -> dict[str, Any] | None:
        obj = get(plumbob.cp, plural, name, namespace)
        status = (obj or {}).get("status") or {}
        return obj if obj and status.get("observedGeneration") == obj["metadata"]["generation"] else None

    obj = wait_for(f"{plural} {name} to be observed at its generation", observed, timeout=60)
    stalled, ready, reconciling = (condition(obj, t) or {} for t in ("Stalled", "Ready", "Reconciling"))
    if stalled.get("status") == "True":
        assert ready.get("status") == "False" and reconciling.get("status") != "True", obj["status"]
        assert stalled.get("message"), obj["status"]
    compliant = condition(obj, "Compliant") or {}
    if compliant.get("status") == "True":
        summary = obj["status"].get("summary") or {}
        assert obj["status"].get("lastScan") and summary.get("pass", 0) + summary.get(
            "fail", 0
        ) + summary.get("excepted", 0), obj["status"]


SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def test_bad_input_never_breaks_the_operator(
    plumbob: Plumbob, make_cluster: MakeCluster, run_id: str
) -> None:
    cp = plumbob.cp
    node = f"bad-{run_id}"
    make_cluster([NodeSpec(node)])
    canary = f"canary-{run_id}"
    profile_name, schedule_name, exc_name = f"fuzz-{run_id}", f"fuzz-{run_id}", f"fuzz-{run_id}"
    refused: list[str] = []

    def applied(body: dict[str, Any]) -> bool:
        result = apply_body(plumbob, body)
        if result.returncode != 0:
            refused.append(result.stderr)
            assert "spec" in result.stderr or "metadata" in result.stderr, result.stderr
        return result.returncode == 0

    @SETTINGS
    @given(
        st.dictionaries(st.sampled_from(sorted(PROFILE_MUTATIONS)), st.none(), max_size=3).flatmap(
            lambda keys: st.fixed_dictionaries({k: PROFILE_MUTATIONS[k] for k in keys})
        ),
        st.one_of(st.none(), LONG),
    )
    def profiles(mutations: dict[str, Any], rescan_value: str | None) -> None:
        body = mutated(profile_body(profile_name, run_id), mutations)
        if rescan_value:
            body["metadata"]["annotations"] = {"plumbob.dev/rescan": rescan_value}
        if applied(body):
            check_settled(plumbob, "complianceprofile", profile_name)

    @SETTINGS
    @given(
        st.dictionaries(st.sampled_from(sorted(SCHEDULE_MUTATIONS)), st.none(), max_size=3).flatmap(
            lambda keys: st.fixed_dictionaries({k: SCHEDULE_MUTATIONS[k] for k in keys})
        )
    )
    def schedules(mutations: dict[str, Any]) -> None:
        base = {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ComplianceSchedule",
            "metadata": {"name": schedule_name},
            "spec": {"schedule": "0 3 * * *", "profiles": [profile_name], "suspend": True},
        }
        if applied(mutated(base, mutations)):
            check_settled(plumbob, "complianceschedule", schedule_name)

    @SETTINGS
    @given(st.lists(ENTRY, min_size=0, max_size=3))
    def exception_lists(entries: list[dict[str, Any]]) -> None:
        body = {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ClusterComplianceException",
            "metadata": {"name": exc_name},
            "spec": {"entries": entries},
        }
        if applied(body):
            check_settled(plumbob, "clustercomplianceexception", exc_name)

    profiles()
    schedules()
    exception_lists()
    assert plumbob.operator.alive(), plumbob.operator.tail(60)

    # the canary: a plain profile over this test's node still completes a rescan with the node audited
    cp.kubectl("delete", "complianceschedule", schedule_name, "--ignore-not-found")
    cp.kubectl("delete", "clustercomplianceexception", exc_name, "--ignore-not-found")
    cp.kubectl("apply", "-f", "-", input=json.dumps(profile_body(canary, run_id)))
    rescan(cp, canary, "after-fuzz")
    scan = wait_for("the canary's scan to complete", lambda: completed_scan(cp, canary), timeout=180)
    assert scan["status"]["nodes"]["done"] == 1, scan["status"]["nodes"]
    assert plumbob.operator.alive(), plumbob.operator.tail(60)
    print(f"admission refused {len(refused)} of the generated objects")
