"""Exceptions applied to stored results, and GitOps cleanliness of the user's resources.

Cases:
- a ClusterComplianceException entry turns a failing node result into ``excepted`` with the
  entry (reason, owner, expiry) in the report, without a rescan; the profile counts it as excepted;
- an entry that matches nothing is reported ``unused``; a namespaced ComplianceException can never
  except a node result (stays unused);
- at its expiry the entry flips the result back to ``fail``, shows ``expired`` and raises
  ``ExceptionExpired`` on the exception list;
- after a full reconcile (scan complete, every status written), the spec, annotations, labels and
  finalizers of every user resource are exactly what the user applied: no kopf annotations,
  no finalizers, no defaults written into spec.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
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
    profile_body,
    rescan,
    wait_for,
)

pytestmark = pytest.mark.e2e


def test_exceptions_apply_unused_and_expire(
    plumbob: Plumbob, make_cluster: MakeCluster, run_id: str, namespace: str
) -> None:
    cp = plumbob.cp
    worker = f"wx-{run_id}"
    make_cluster([NodeSpec(worker, misconfigurations=["kubelet-always-allow"])])
    profile = f"exc-{run_id}"
    apply(cp, profile_body(profile, run_id))
    rescan(cp, profile, "1")
    wait_for("the scan", lambda: completed_scan(cp, profile), timeout=120)
    report_name = f"{profile}.{worker}"
    report = get(cp, "compliancereport", report_name)
    assert report is not None
    assert {r["id"]: r["status"] for r in report["spec"]["results"]}["4.2.2"] == "fail"

    expires = (datetime.now(UTC) + timedelta(seconds=25)).strftime("%Y-%m-%dT%H:%M:%SZ")
    exc_name = f"team-{run_id}"
    apply(
        cp,
        {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ClusterComplianceException",
            "metadata": {"name": exc_name},
            "spec": {
                "entries": [
                    {
                        "rules": ["4.2.2"],
                        "nodes": [worker],
                        "profiles": [profile],
                        "reason": "vendor kubelet until upgrade",
                        "owner": "platform@example.com",
                        "ticket": "SEC-1",
                        "expires": expires,
                    },
                    {
                        "rules": ["9.9.9"],
                        "reason": "stale entry",
                        "owner": "platform@example.com",
                        "expires": "2027-06-30",
                    },
                ]
            },
        },
    )
    apply(
        cp,
        {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ComplianceException",
            "metadata": {"name": f"ns-{run_id}", "namespace": namespace},
            "spec": {
                "entries": [
                    {
                        "rules": ["4.2.2"],
                        "reason": "a team cannot hide a node problem",
                        "owner": "team@example.com",
                        "expires": "2027-06-30",
                    }
                ]
            },
        },
    )

    def excepted() -> dict[str, Any] | None:
        rep = get(cp, "compliancereport", report_name)
        found = [e for e in (rep or {}).get("status", {}).get("exceptions", []) if e["rule"] == "4.2.2"]
        return found[0] if found else None

    entry = wait_for("4.2.2 to be excepted without a rescan", excepted, timeout=30)
    assert entry["exception"]["name"] == exc_name and entry["exception"]["entry"] == 0
    assert entry["exception"]["owner"] == "platform@example.com" and entry["exception"]["expires"] == expires
    status = wait_for(
        "exception list status",
        lambda: (
            (e := get(cp, "clustercomplianceexception", exc_name))
            and (e.get("status") or {}).get("entries")
            and e["status"]
        ),
    )
    states = {e["index"]: e["state"] for e in status["entries"]}
    assert states == {0: "active", 1: "unused"}, states
    ns_status = wait_for(
        "namespaced exception status",
        lambda: (
            (e := get(cp, "complianceexception", f"ns-{run_id}", namespace))
            and (e.get("status") or {}).get("entries")
            and e["status"]
        ),
    )
    assert ns_status["entries"][0]["state"] == "unused"
    prof = wait_for(
        "the profile to count the excepted result",
        lambda: (
            (p := get(cp, "complianceprofile", profile))
            and p["status"]["summary"].get("excepted", 0) >= 1
            and p
        ),
    )
    assert prof["status"]["summary"].get("excepted", 0) >= 1

    wait_for("the entry to expire", lambda: excepted() is None, timeout=60)
    status = wait_for(
        "expired state",
        lambda: (
            (e := get(cp, "clustercomplianceexception", exc_name))
            and {x["index"]: x["state"] for x in e["status"]["entries"]}.get(0) == "expired"
            and e["status"]
        ),
    )
    assert status["summary"]["expired"] == 1
    expired = wait_for("ExceptionExpired", lambda: events(cp, "ExceptionExpired", exc_name))
    assert len(expired) == 1 and "owner platform@example.com" in expired[0]["message"]
    rep = get(cp, "compliancereport", report_name)
    assert rep is not None and rep["status"]["summary"]["fail"] >= 1


def _user_view(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "spec": obj.get("spec"),
        "annotations": meta.get("annotations"),
        "labels": meta.get("labels"),
        "finalizers": meta.get("finalizers"),
    }


def test_user_resources_stay_as_applied(plumbob: Plumbob, make_cluster: MakeCluster, run_id: str) -> None:
    cp = plumbob.cp
    make_cluster([NodeSpec(f"g-{run_id}")])
    profile = profile_body(
        f"git-{run_id}", run_id, rules={"exclude": ["1.1.*"]}, variables={"audit_log_maxage": "60"}
    )
    profile["metadata"]["labels"] = {"team": "platform"}
    profile["metadata"]["annotations"] = {
        "argocd.argoproj.io/tracking-id": f"app:plumbob.dev/ComplianceProfile:{run_id}"
    }
    schedule: dict[str, Any] = {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceSchedule",
        "metadata": {"name": f"git-{run_id}"},
        "spec": {
            "schedule": "0 3 * * *",
            "timeZone": "Europe/Berlin",
            "profiles": [profile["metadata"]["name"]],
        },
    }
    exc: dict[str, Any] = {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ClusterComplianceException",
        "metadata": {"name": f"git-{run_id}"},
        "spec": {
            "entries": [
                {
                    "rules": ["4.2.*"],
                    "profiles": [profile["metadata"]["name"]],
                    "reason": "r",
                    "owner": "o",
                    "expires": "2027-01-31",
                }
            ]
        },
    }
    for body in (profile, schedule, exc):
        apply(cp, body)
    kinds = [
        ("complianceprofile", profile),
        ("complianceschedule", schedule),
        ("clustercomplianceexception", exc),
    ]
    before = {kind: _user_view(get(cp, kind, body["metadata"]["name"]) or {}) for kind, body in kinds}
    # a rescan is a user action (an annotation): include it, then compare after the full reconcile
    rescan(cp, profile["metadata"]["name"], "gitops")
    before["complianceprofile"] = _user_view(get(cp, "complianceprofile", profile["metadata"]["name"]) or {})
    wait_for("the scan", lambda: completed_scan(cp, profile["metadata"]["name"]), timeout=120)
    wait_for(
        "profile Ready",
        lambda: (
            (condition(get(cp, "complianceprofile", profile["metadata"]["name"]), "Ready") or {}).get(
                "status"
            )
            == "True"
        ),
    )
    wait_for(
        "schedule status",
        lambda: (get(cp, "complianceschedule", schedule["metadata"]["name"]) or {}).get("status"),
    )
    wait_for(
        "exception status",
        lambda: (get(cp, "clustercomplianceexception", exc["metadata"]["name"]) or {}).get("status"),
    )
    for kind, body in kinds:
        after = _user_view(get(cp, kind, body["metadata"]["name"]) or {})
        assert json.dumps(after, sort_keys=True) == json.dumps(before[kind], sort_keys=True), kind
        assert not after["finalizers"]
        assert not [a for a in (after["annotations"] or {}) if "kopf" in a], after["annotations"]
    assert before["complianceprofile"]["spec"] == profile["spec"]
