"""``NamespaceComplianceReport`` (namespaced): one profile's cluster-level findings in one namespace.

The profile's cluster-level ``ComplianceReport`` lists at most 25 failing objects per rule for
the whole cluster. A team needs its own findings, all of them, readable with the permissions it
already has in its namespace: the operator writes one ``NamespaceComplianceReport`` named after
the profile into every namespace that has an object a cluster rule found at fault or listed as
expected (and deletes it when there is none left). Read access comes with the namespace's ``view``
role (the chart aggregates it).

The operator writes the whole object (there is no user input): ``spec`` says which profile it is
about; ``status``, rewritten at each evaluation that changes what it says, holds per rule the
counts over every object of the namespace after exceptions, and the results themselves, at most
:data:`MAX_LISTED_PER_RULE` per rule (failures and errors first), each with the exception entry
that covers it, if any. A namespaced ``ComplianceException``
applies to the findings in its own namespace only. Bounded size: at most 1,000 results of at most
a few KiB each.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from plumbob.api.common import (
    AGE,
    MAX_RULES,
    Conditions,
    Count,
    CrdInfo,
    Model,
    ProfileName,
    Resource,
    ResultStatus,
    RuleId,
    Spec,
    Summary,
    column,
)
from plumbob.api.reports import CheckResult, ExceptionRef

MAX_LISTED_PER_RULE = 50


class RuleCounts(Spec):
    """One rule over every object of the namespace."""

    rule: RuleId
    status: ResultStatus = Field(description="the worst over its objects, after exceptions")
    failing: Count = 0
    excepted: Count = 0
    errors: Count = 0
    expected: Count = Field(default=0, description="objects listed as expected holders (not failures)")


class ListedResult(CheckResult):
    exception: ExceptionRef | None = Field(default=None, description="the entry that excepts this failure")


class NamespaceComplianceReportSpec(Spec):
    profile: ProfileName


class NamespaceComplianceReportStatus(Model):
    benchmark: Annotated[str, Field(max_length=64)] = ""
    audit_time: datetime | None = Field(default=None, description="when the cluster rules were evaluated")
    summary: Summary | None = Field(default=None, description="rules by their status here, after exceptions")
    rules: Annotated[list[RuleCounts], Field(max_length=MAX_RULES)] = Field(default_factory=list)
    results: Annotated[list[ListedResult], Field(max_length=MAX_RULES)] = Field(
        default_factory=list, description=f"per rule at most {MAX_LISTED_PER_RULE} objects, failures first"
    )
    conditions: Conditions = Field(default_factory=list)


class NamespaceComplianceReport(Resource):
    """A profile's cluster-level findings about the objects of one namespace."""

    CRD: ClassVar[CrdInfo] = CrdInfo(
        plural="namespacecompliancereports",
        singular="namespacecompliancereport",
        short_names=["nscrep"],
        namespaced=True,
        printer_columns=[
            column("Profile", "string", ".spec.profile", "the profile"),
            column("Pass", "integer", ".status.summary.pass", "rules passing in this namespace"),
            column("Fail", "integer", ".status.summary.fail", "rules failing here, after exceptions"),
            column(
                "Excepted", "integer", ".status.summary.excepted", "rules failing here only under exceptions"
            ),
            column("Evaluated", "date", ".status.auditTime", "when the rules were evaluated", 1),
            AGE,
        ],
        selectable_fields=[".spec.profile"],
    )

    kind: Literal["NamespaceComplianceReport"] = "NamespaceComplianceReport"
    spec: NamespaceComplianceReportSpec
    status: NamespaceComplianceReportStatus | None = None
