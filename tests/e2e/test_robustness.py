"""Bad input and odd orders on the real testbed: the operator keeps its promises (issue 7).

Cases, one per failure seen by trying Plumbob as a new user would:
1. a hand-written report with rule ids that mix numbers and words, and one not shaped like the
   agent's: every other object is still reconciled (a rescan of another profile completes); the
   malformed one is reported (InvalidReport);
2. a rescan annotation of 300 characters starts exactly one scan and is recorded as a digest;
3. a profile whose selector matches no node is Stalled (NoNodesSelected), never Compliant; a
   tailoring that selects no rule is Stalled naming the field, and its scan fails without a Job;
4. a schedule naming a profile that does not exist is Stalled (ProfileNotFound), not Ready; an
   exception entry naming a namespace that does not exist is Stalled (UnknownReference);
5. a schedule edited into an invalid one: observedGeneration current, Stalled, no next scan time;
6. one impossible date in an exception list leaves the other entries applying;
7. long manual rationales for every rule: the audit still runs (the node is Done);
   ``tolerationSeconds`` with ``NoSchedule`` is refused at admission, naming the field;
8. a profile and its schedule applied together (one ``kubectl apply``): the first scan runs
   with the schedule's node deadline;
9. a profile waiting for its schedule is Ready (WaitingForScan), and ``kubectl get`` shows a
   COMPLIANT column;
10. the operator's writes carry the field manager ``plumbob``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from e2e_support import (
    MakeCluster,
    NodeSpec,
    Plumbob,
    apply,
    completed_scan,
    condition,
    events,
    get,
    items,
    profile_body,
    rescan,
    wait_for,
)

pytestmark = pytest.mark.e2e


def stalled_with(cp: Any, plural: str, name: str, reason: str) -> dict[str, Any] | None:
    obj = get(cp, plural, name)
    cond = condition(obj, "Stalled") or {}
    return obj if cond.get("status") == "True" and cond.get("reason") == reason else None


def schedule_body(name: str, profiles: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceSchedule",
        "metadata": {"name": name},
        "spec": {"schedule": "0 3 * * *", "profiles": profiles, **spec},
    }


def test_bad_objects_do_not_stop_the_others(plumbob: Plumbob, make_cluster: MakeCluster, run_id: str) -> None:
    cp = plumbob.cp
    node = f"rb-{run_id}"
    make_cluster([NodeSpec(node)])
    profile = f"rb-{run_id}"
    apply(cp, profile_body(profile, run_id))
    forged = {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceReport",
        "metadata": {"name": f"{profile}.forged-{run_id}"},
        "spec": {
            "profile": profile,
            "nodeName": f"forged-{run_id}",
            "scan": f"{profile}-x",
            "benchmark": "cis-1.12",
            "auditTime": "2026-12-01T00:00:00Z",
            "results": [
                {"id": "1.2.a", "title": "t", "severity": "high", "status": "fail"},
                {"id": "1.2.3", "title": "t", "severity": "high", "status": "pass"},
            ],
        },
    }
    apply(cp, forged)
    # (2) a 300-character rescan value: exactly one scan
    value = "v" * 300
    rescan(cp, profile, value)
    scan = wait_for("the rescan to complete", lambda: completed_scan(cp, profile), timeout=180)
    assert scan["status"]["nodes"]["done"] == 1, scan["status"]["nodes"]
    prof = wait_for(
        "the rescan recorded",
        lambda: (p := get(cp, "complianceprofile", profile)) and p["status"].get("lastRescan") and p,
    )
    assert prof["status"]["lastRescan"].startswith("sha256:")
    scans = [s for s in items(cp, "compliancescans") if s["spec"]["profile"] == profile]
    assert len(scans) == 1, [s["metadata"]["name"] for s in scans]
    assert plumbob.operator.alive()


def test_nothing_compliant_without_checking(plumbob: Plumbob, make_cluster: MakeCluster, run_id: str) -> None:
    cp = plumbob.cp
    make_cluster([NodeSpec(f"nc-{run_id}")])
    nobody = f"nobody-{run_id}"
    apply(cp, profile_body(nobody, run_id, nodeSelector={"matchLabels": {"pool": f"none-{run_id}"}}))
    rescan(cp, nobody, "1")
    wait_for("the empty scan to complete", lambda: completed_scan(cp, nobody), timeout=60)
    prof = wait_for(
        "NoNodesSelected",
        lambda: stalled_with(cp, "complianceprofile", nobody, "NoNodesSelected"),
        timeout=60,
    )
    assert (condition(prof, "Compliant") or {}).get("status") == "False"

    norules = f"norules-{run_id}"
    apply(cp, profile_body(norules, run_id, rules={"exclude": ["*"]}))
    prof = wait_for("CannotResolve", lambda: stalled_with(cp, "complianceprofile", norules, "CannotResolve"))
    assert "spec.rules" in condition(prof, "Stalled")["message"]  # type: ignore[index]
    rescan(cp, norules, "1")
    failed = wait_for(
        "the scan to fail",
        lambda: next(
            (
                s
                for s in items(cp, "compliancescans")
                if s["spec"]["profile"] == norules and (s.get("status") or {}).get("phase") == "Failed"
            ),
            None,
        ),
    )
    jobs = items(cp, "jobs", "-n", plumbob.namespace, "-l", f"plumbob.dev/scan={failed['metadata']['name']}")
    assert not jobs, "no audit of a tailoring that selects nothing"


def test_names_that_point_at_nothing_and_invalid_edits(plumbob: Plumbob, run_id: str) -> None:
    cp = plumbob.cp
    profile = f"pn-{run_id}"
    apply(cp, profile_body(profile, run_id))
    sched = f"pn-{run_id}"
    apply(cp, schedule_body(sched, [profile, f"ghost-{run_id}"]))
    obj = wait_for(
        "ProfileNotFound",
        lambda: stalled_with(cp, "complianceschedule", sched, "ProfileNotFound"),
        timeout=60,
    )
    assert (condition(obj, "Ready") or {}).get("status") == "False"
    assert f"ghost-{run_id}" in condition(obj, "Stalled")["message"]  # type: ignore[index]
    wait_for("a ProfileNotFound Event", lambda: events(cp, "ProfileNotFound", sched))

    # an exception entry naming a namespace that does not exist (and one that does)
    exc = f"ns-{run_id}"
    entry = {"rules": ["5.1.1"], "reason": "pilot", "owner": "sec@example.com", "expires": "2027-06-30"}
    apply(
        cp,
        {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ClusterComplianceException",
            "metadata": {"name": exc},
            "spec": {"entries": [{**entry, "namespaces": ["kube-system", f"ghost-{run_id}"]}]},
        },
    )
    obj = wait_for(
        "UnknownReference", lambda: stalled_with(cp, "clustercomplianceexception", exc, "UnknownReference")
    )
    message = condition(obj, "Stalled")["message"]  # type: ignore[index]
    assert (
        f"namespaces[1]: no namespace matches 'ghost-{run_id}'" in message and "namespaces[0]" not in message
    )

    # (5) edited into an invalid schedule: failed at the current generation, no next scan claimed
    apply(cp, schedule_body(sched, [profile], schedule="61 * * * *"))
    obj = wait_for(
        "the invalid edit observed",
        lambda: (
            (s := stalled_with(cp, "complianceschedule", sched, "InvalidSchedule"))
            and s["status"].get("observedGeneration") == s["metadata"]["generation"]
            and s
        ),
        timeout=60,
    )
    assert not obj["status"].get("nextScheduleTime")
    assert (condition(obj, "Reconciling") or {}).get("status") == "False"
    assert "https://" not in condition(obj, "Stalled")["message"]  # type: ignore[index]


def test_one_bad_exception_entry_keeps_the_others(
    plumbob: Plumbob, make_cluster: MakeCluster, run_id: str
) -> None:
    cp = plumbob.cp
    worker = f"ex-{run_id}"
    make_cluster([NodeSpec(worker, misconfigurations=["kubelet-always-allow"])])
    profile = f"ex-{run_id}"
    apply(cp, profile_body(profile, run_id))
    rescan(cp, profile, "1")
    wait_for("the scan", lambda: completed_scan(cp, profile), timeout=120)
    entry = {"reason": "pilot", "owner": "sec@example.com", "profiles": [profile]}
    name = f"ex-{run_id}"
    apply(
        cp,
        {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ClusterComplianceException",
            "metadata": {"name": name},
            "spec": {
                "entries": [
                    {**entry, "rules": ["4.2.1"], "expires": "2027-02-30"},
                    {**entry, "rules": ["4.2.2"], "expires": "2027-06-30"},
                ]
            },
        },
    )
    status = wait_for(
        "entry states",
        lambda: (
            (e := get(cp, "clustercomplianceexception", name))
            and len((e.get("status") or {}).get("entries") or []) == 2
            and e["status"]
        ),
    )
    assert {e["index"]: e["state"] for e in status["entries"]} == {0: "invalid", 1: "active"}
    report = get(cp, "compliancereport", f"{profile}.{worker}") or {}
    assert [e["rule"] for e in report["status"]["exceptions"]] == ["4.2.2"], "the good entry applies"


def test_valid_input_that_once_broke_the_audit(
    plumbob: Plumbob, make_cluster: MakeCluster, run_id: str
) -> None:
    cp = plumbob.cp
    make_cluster([NodeSpec(f"lr-{run_id}")])
    profile = f"lr-{run_id}"
    why = "Reviewed by the security board; see the decision record for the full reasoning. " * 12
    manual = [{"rule": f"{s}.*", "rationale": why} for s in ("1", "2", "3", "4.1", "4.2", "4.3")]
    apply(cp, profile_body(profile, run_id, rules={"manual": manual}))
    rescan(cp, profile, "1")
    scan = wait_for("the scan", lambda: completed_scan(cp, profile), timeout=120)
    assert scan["status"]["nodes"]["done"] == 1, scan["status"]["nodes"]

    bad = profile_body(
        f"ts-{run_id}",
        run_id,
        tolerations=[{"key": "a", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}],
    )
    result = cp.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode != 0 and "tolerationSeconds" in result.stderr, result.stderr


def test_folder_apply_and_waiting_profile(plumbob: Plumbob, make_cluster: MakeCluster, run_id: str) -> None:
    cp = plumbob.cp
    make_cluster([NodeSpec(f"fa-{run_id}", fault="hang")])  # the Job runs until its deadline
    profile = f"fa-{run_id}"
    body = profile_body(profile, run_id)
    body["metadata"]["annotations"] = {"plumbob.dev/rescan": "first"}
    sched = schedule_body(profile, [profile], nodeDeadlineSeconds=10)
    cp.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [body, sched]})
    )
    [job] = wait_for(
        "the first audit Job",
        lambda: items(cp, "jobs", "-n", plumbob.namespace, "-l", f"plumbob.dev/profile={profile}"),
    )
    assert job["spec"]["activeDeadlineSeconds"] == 10, "the schedule's node deadline, not the default"
    scan = wait_for("the first scan", lambda: completed_scan(cp, profile), timeout=120)
    assert scan["status"]["nodes"]["timedOut"] == 1

    waiting = f"wait-{run_id}"
    apply(cp, profile_body(waiting, run_id))
    apply(cp, schedule_body(waiting, [waiting]))
    prof = wait_for(
        "Ready while waiting for the schedule",
        lambda: (
            (p := get(cp, "complianceprofile", waiting))
            and (condition(p, "Ready") or {}).get("reason") == "WaitingForScan"
            and "next scan at" in (condition(p, "Ready") or {}).get("message", "")
            and p
        ),
    )
    assert (condition(prof, "Ready") or {}).get("status") == "True"
    table = cp.kubectl("get", "complianceprofile", waiting).stdout
    assert "COMPLIANT" in table.splitlines()[0], table
    shown = json.loads(
        cp.kubectl("get", "complianceprofile", waiting, "-o", "json", "--show-managed-fields").stdout
    )
    managers = {m.get("manager") for m in shown["metadata"].get("managedFields") or []}
    assert "plumbob" in managers and "OpenAPI-Generator" not in managers, managers
