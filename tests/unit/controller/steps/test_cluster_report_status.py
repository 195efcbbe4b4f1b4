"""The status of a profile's cluster-level report, built through ``ComplianceReportStatus``
(``controller/steps/cluster/cluster_status.py``).

Cases:
- the status built from the report's results and the exception entries (a namespaced object
  excepted by a ``ComplianceException``, a cluster-scoped one by a ``ClusterComplianceException``,
  one failure left) passes the model unchanged: every key it writes is a field of the model;
- a misspelt key in it, at the top or nested (the summary, an excepted result, its object, its
  exception entry), raises naming it;
- a pass writes the built status once, and nothing while it is unchanged; a pass whose status has
  a misspelt key writes nothing (the error is contained to that report).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from plumbob.api.cluster_exceptions import ClusterComplianceException
from plumbob.api.exceptions import ComplianceException
from plumbob.api.profiles import ComplianceProfile
from plumbob.api.reports import ComplianceReportStatus
from plumbob.controller.context import Context, built_status
from plumbob.controller.decisions.digests import ReportDigest, report_digest
from plumbob.controller.decisions.excepting import Entry, flatten
from plumbob.controller.steps.cluster import cluster_status
from plumbob.controller.steps.cluster.cluster_status import ClusterStatus, cluster_report_status
from plumbob.controller.store import Snapshot, Store

NOW = datetime(2026, 12, 2, 6, 0, 0, tzinfo=UTC)
RBAC = "rbac.authorization.k8s.io"
Status_ = dict[str, Any]


def result(rule: str, status: str, kind: str | None = None, name: str = "", namespace: str = "") -> Status_:
    out: Status_ = {"id": rule, "title": "t", "severity": "high", "status": status, "evidence": []}
    if kind is not None:
        out["resource"] = {"apiGroup": RBAC, "kind": kind, "name": name}
        if namespace:
            out["resource"]["namespace"] = namespace
    return out


def report(status: Status_ | None = None) -> ReportDigest:
    digest = report_digest(
        {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ComplianceReport",
            "metadata": {"name": "cis", "uid": "uid-report", "generation": 2},
            "spec": {
                "profile": "cis",
                "scan": "continuous",
                "benchmark": "cis-1.12",
                "results": [
                    result("5.1.1", "fail", "Role", "waived", "team-a"),
                    result("5.1.1", "fail", "Role", "reader", "team-b"),
                    result("5.1.3", "fail", "ClusterRole", "wildcard"),
                    result("5.1.5", "pass"),
                ],
            },
            "status": status or {},
        }
    )
    assert digest is not None
    return digest


def entries() -> list[Entry]:
    common = {"reason": "accepted for the pilot", "owner": "platform@example.com", "expires": "2027-01-01"}
    namespaced = ComplianceException.model_validate(
        {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ComplianceException",
            "metadata": {"name": "team-waivers", "namespace": "team-a", "uid": "u-1", "generation": 1},
            "spec": {"entries": [{"rules": ["5.1.1"], "ticket": "SEC-1", **common}]},
        }
    )
    cluster = ClusterComplianceException.model_validate(
        {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ClusterComplianceException",
            "metadata": {"name": "platform-waivers", "uid": "u-2", "generation": 1},
            "spec": {
                "entries": [
                    {"rules": ["5.1.3"], "resources": [{"apiGroup": RBAC, "kind": "ClusterRole"}], **common}
                ]
            },
        }
    )
    return flatten([namespaced, cluster])


def built_from_results() -> Status_:
    return cluster_report_status(report(), entries(), NOW)


def test_the_status_built_from_the_results_passes_the_model_unchanged() -> None:
    status = built_from_results()
    assert built_status(ComplianceReportStatus, status) == status
    # what the case covers: both kinds of entry, objects with and without a namespace
    assert status["observedGeneration"] == 2
    assert {k: status["summary"][k] for k in ("pass", "fail", "excepted")} == {
        "pass": 1,
        "fail": 1,
        "excepted": 1,
    }
    assert [(e["resource"].get("namespace"), e["exception"]["kind"]) for e in status["exceptions"]] == [
        ("team-a", "ComplianceException"),
        (None, "ClusterComplianceException"),
    ]


MISSPELT: dict[str, Callable[[Status_], None]] = {
    "exeptions": lambda s: s.update(exeptions=s.pop("exceptions")),
    "fial": lambda s: s["summary"].update(fial=s["summary"].pop("fail")),
    "rul": lambda s: s["exceptions"][0].update(rul=s["exceptions"][0].pop("rule")),
    "namepsace": lambda s: s["exceptions"][0]["resource"].update(namepsace="team-a"),
    "ownr": lambda s: s["exceptions"][1]["exception"].update(ownr="x"),
}


@pytest.mark.parametrize("key", sorted(MISSPELT))
def test_a_misspelt_key_raises(key: str) -> None:
    status = copy.deepcopy(built_from_results())
    MISSPELT[key](status)
    with pytest.raises(ValueError, match=key):
        built_status(ComplianceReportStatus, status)


@dataclasses.dataclass
class RecordingKube:
    patches: list[tuple[str, str, Status_]] = dataclasses.field(default_factory=list)

    def patch_status(
        self, plural: str, name: str, status: Status_, namespace: str | None = None
    ) -> dict[str, Any]:
        self.patches.append((plural, name, status))
        return {}


def profile() -> ComplianceProfile:
    return ComplianceProfile.model_validate(
        {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ComplianceProfile",
            "metadata": {"name": "cis", "uid": "uid-cis", "generation": 1},
            "spec": {"benchmark": {"name": "cis-kubernetes", "version": "1.12"}},
        }
    )


def snapshot(digest: ReportDigest) -> Snapshot:
    return dataclasses.replace(Store().snapshot(), profiles={"cis": profile()}, reports={"cis": digest})


def step(kube: RecordingKube) -> ClusterStatus:
    ctx = Context(kube, Store(), clock=lambda: NOW)  # type: ignore[arg-type]  # a fake Kube
    return ClusterStatus(ctx, background=False)


def test_a_pass_writes_the_built_status_once() -> None:
    kube = RecordingKube()
    cluster = step(kube)
    cluster._settle_reports(snapshot(report()), entries(), NOW)
    assert kube.patches == [("compliancereports", "cis", built_from_results())]
    cluster._settle_reports(snapshot(report(built_from_results())), entries(), NOW)
    assert len(kube.patches) == 1, "unchanged: not written again"


def test_a_pass_writes_no_status_with_a_misspelt_key(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def misspelt(*args: Any) -> Status_:
        status = cluster_report_status(*args)
        MISSPELT["exeptions"](status)
        return status

    monkeypatch.setattr(cluster_status, "cluster_report_status", misspelt)
    kube = RecordingKube()
    with caplog.at_level(logging.ERROR, logger="plumbob.controller"):
        step(kube)._settle_reports(snapshot(report()), entries(), NOW)
    assert kube.patches == []
    assert "ComplianceReportStatus has no field status.exeptions" in caplog.text
