"""A namespace report's status built through ``NamespaceComplianceReportStatus``
(``controller/steps/cluster/namespace_reports.py``).

Cases:
- the status built from a namespace's findings (a failure, an excepted failure, an expected
  holder, an error; evidence, the exception entry, the Ready condition) passes the model
  unchanged: every key it writes is a field of the model, and the fingerprint of what is written
  is the fingerprint of what was built;
- a misspelt key in the status to write, at the top or nested (a rule's counts, a result, its
  object, its evidence, a condition), raises naming it before anything is created or written;
- an evaluation writes the built status; one whose status has a misspelt key writes nothing for
  that namespace (the error is contained) and is written at the next evaluation, once fixed.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from plumbob.api.exceptions import ComplianceException
from plumbob.api.namespace_reports import NamespaceComplianceReportStatus
from plumbob.api.profiles import ComplianceProfile
from plumbob.controller.context import Context, built_status
from plumbob.controller.decisions.excepting import Entry, flatten
from plumbob.controller.steps.cluster import namespace_reports
from plumbob.controller.steps.cluster.namespace_reports import NamespaceReports, namespace_status
from plumbob.controller.store import Store
from plumbob.engine.findings import Evidence, Finding, ObjectRef, Source, Status

NOW = datetime(2026, 12, 2, 6, 0, 0, tzinfo=UTC)
PLURAL = "namespacecompliancereports"
Status_ = dict[str, Any]


def finding(name: str, status: Status = Status.FAIL, *, expected: str | None = None) -> Finding:
    return Finding(
        rule_id="5.1.1",
        title="Ensure that the cluster-admin role is only used where required",
        severity="high",
        scored=True,
        status=status,
        reason=f"Role {name} grants get on secrets",
        evidence=(
            Evidence(
                subject=f"Role team-a/{name}",
                source=Source.API,
                location="rules[0]",
                found="get secrets",
                expected="no access to secrets",
            ),
        ),
        resource=ObjectRef(
            api_version="rbac.authorization.k8s.io/v1", kind="Role", namespace="team-a", name=name
        ),
        expected=expected,
    )


FINDINGS = [
    finding("reader"),
    finding("waived"),
    finding("operator", Status.PASS, expected="the platform's own operator"),
    finding("broken", Status.ERROR),
]


def entries() -> list[Entry]:
    exception = ComplianceException.model_validate(
        {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ComplianceException",
            "metadata": {"name": "team-waivers", "namespace": "team-a", "uid": "u-2", "generation": 1},
            "spec": {
                "entries": [
                    {
                        "rules": ["5.1.1"],
                        "resources": [
                            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "waived"}
                        ],
                        "reason": "read by the backup job",
                        "owner": "team-a@example.com",
                        "ticket": "SEC-1",
                        "expires": "2027-01-01",
                    }
                ]
            },
        }
    )
    return flatten([exception])


def profile() -> ComplianceProfile:
    return ComplianceProfile.model_validate(
        {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ComplianceProfile",
            "metadata": {"name": "cis", "uid": "uid-cis", "generation": 1},
            "spec": {"benchmark": {"name": "cis-kubernetes", "version": "1.12"}},
        }
    )


def built_from_findings() -> Status_:
    return namespace_status("cis", "cis-1.12", findings=FINDINGS, entries=entries(), tailoring=None, now=NOW)


@dataclass
class RecordingKube:
    """The calls the namespace reports make, recorded; there is no report yet."""

    calls: list[tuple[str, str, str | None, dict[str, Any] | None]] = field(default_factory=list)

    def list_objects(self, plural: str, namespace: str | None = None, labels: str | None = None) -> list[Any]:
        return []

    def create_object(
        self, plural: str, body: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        self.calls.append(("create", plural, namespace, body))
        return body

    def patch_status(
        self, plural: str, name: str, status: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        self.calls.append(("patch_status", plural, namespace, status))
        return {}

    def delete_object(self, plural: str, name: str, namespace: str | None = None) -> None:
        self.calls.append(("delete", plural, namespace, None))


def reports(kube: RecordingKube) -> NamespaceReports:
    return NamespaceReports(Context(kube, Store(), clock=lambda: NOW))  # type: ignore[arg-type]  # a fake Kube


def test_the_status_built_from_findings_passes_the_model_unchanged() -> None:
    status = built_from_findings()
    assert built_status(NamespaceComplianceReportStatus, status) == status
    # what the case covers: each kind of result, the exception that covers one, the evidence
    assert [r["rule"] for r in status["rules"]] == ["5.1.1"]
    assert {(r["resource"]["name"], r["status"]) for r in status["results"]} == {
        ("reader", "fail"),
        ("waived", "fail"),
        ("operator", "pass"),
        ("broken", "error"),
    }
    (waived,) = [r for r in status["results"] if "exception" in r]
    assert waived["exception"]["ticket"] == "SEC-1"
    assert all(r["evidence"] for r in status["results"])


def misspell(where: str) -> Callable[[Status_], None]:
    def change(status: Status_) -> None:
        if where == "top":
            status["benchmrk"] = status.pop("benchmark")
        elif where == "rule":
            status["rules"][0]["excepeted"] = status["rules"][0].pop("excepted")
        elif where == "result":
            status["results"][0]["reasn"] = status["results"][0].pop("reason")
        elif where == "object":
            status["results"][0]["resource"]["nmae"] = status["results"][0]["resource"].pop("name")
        elif where == "evidence":
            status["results"][0]["evidence"][0]["fond"] = status["results"][0]["evidence"][0].pop("found")
        elif where == "exception":
            (waived,) = [r for r in status["results"] if "exception" in r]
            waived["exception"]["tikcet"] = waived["exception"].pop("ticket")
        else:
            status["conditions"][0]["mesage"] = status["conditions"][0].pop("message")

    return change


MISSPELT = {
    "top": "benchmrk",
    "rule": "excepeted",
    "result": "reasn",
    "object": "nmae",
    "evidence": "fond",
    "exception": "tikcet",
    "condition": "mesage",
}


@pytest.mark.parametrize("where", sorted(MISSPELT))
def test_a_misspelt_key_raises_before_anything_is_written(where: str) -> None:
    status = copy.deepcopy(built_from_findings())
    misspell(where)(status)
    kube = RecordingKube()
    with pytest.raises(ValueError, match=MISSPELT[where]):
        reports(kube)._put(profile(), "team-a", status)
    assert kube.calls == []


def test_an_evaluation_writes_the_built_status_and_contains_a_misspelt_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    kube = RecordingKube()
    step = reports(kube)

    def misspelt(*args: Any, **kwargs: Any) -> Status_:
        status = namespace_status(*args, **kwargs)
        misspell("top")(status)
        return status

    monkeypatch.setattr(namespace_reports, "namespace_status", misspelt)
    with caplog.at_level(logging.ERROR, logger="plumbob.controller"):
        step.write(profile(), "cis-1.12", findings=FINDINGS, entries=entries(), tailoring=None, now=NOW)
    assert kube.calls == []
    assert "NamespaceComplianceReportStatus has no field status.benchmrk" in caplog.text

    monkeypatch.setattr(namespace_reports, "namespace_status", namespace_status)
    step.write(profile(), "cis-1.12", findings=FINDINGS, entries=entries(), tailoring=None, now=NOW)
    assert [(c[0], c[1], c[2]) for c in kube.calls] == [
        ("create", PLURAL, "team-a"),
        ("patch_status", PLURAL, "team-a"),
    ]
    assert kube.calls[1][3] == built_from_findings()
