"""``ComplianceReport`` (cluster-scoped): the latest results of one profile on one node.

One report per profile and node (named ``<profile>.<node>``), plus one per profile for the
cluster-level rules (named ``<profile>``, no ``spec.nodeName``); see :func:`plumbob.api.common.report_name`.

Who writes what:

- ``spec`` holds the raw results, as audited. For a node report the node's **agent** writes it
  directly (create or update; one API write per node per scan, no copy through the operator).
  ``spec.nodeName`` is a plain top-level string so that a ValidatingAdmissionPolicy can compare it
  with the ``authentication.kubernetes.io/node-name`` claim of the agent's pod-bound token: a
  node can write its own report and no other. The cluster report's spec is written by the operator.
- ``status`` holds the operator's judgement: exceptions matched to results and the summary after
  them. Adding, editing or expiring an exception rewrites only the status, never re-audits.

Labels ``plumbob.dev/profile``, ``plumbob.dev/scan`` and ``plumbob.dev/node`` (when the node name
fits in a label value) are set by the writer for selection; the fields are authoritative and are
also selectable: ``kubectl get crep --field-selector spec.nodeName=node-1``.

A cluster-level rule yields one result per object it found at fault (``resource`` names it), so
an exception can except one object without hiding the others; a rule with no faulty object
yields one ``pass`` result without ``resource``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from plumbob.api.common import (
    AGE,
    MAX_EVIDENCE,
    MAX_EVIDENCE_TEXT,
    MAX_RULES,
    MAX_TEXT,
    CheckStatus,
    Conditions,
    Count,
    CrdInfo,
    Model,
    NodeName,
    ObjectName,
    ProfileName,
    Resource,
    ResultStatus,
    RuleId,
    Severity,
    Spec,
    Summary,
    cel,
    column,
    validations,
)


class EvidenceSource(StrEnum):
    FLAG = "flag"  # a command-line flag of the running process
    MANIFEST = "manifest"  # a flag in the component's static pod manifest (component not running)
    CONFIG = "config"  # a key in the component's config file
    DEFAULT = "default"  # neither was set: the component's documented default applies
    UNSET = "unset"  # nothing set it and the component has no documented default
    FILE = "file"  # a file's mode, owner or presence
    PROCESS = "process"  # whether a component runs at all
    API = "api"  # an object read from the Kubernetes API (cluster-level rules)
    NONE = "none"  # nothing could be read (see the result's reason)


EvidenceText = Annotated[str, Field(max_length=MAX_EVIDENCE_TEXT)]


class Evidence(Spec):
    """What was looked at: where, what was found, what was expected. Long values are truncated."""

    source: EvidenceSource
    location: EvidenceText = Field(
        default="", description="flag name, config file and key, file path or object reference"
    )
    found: EvidenceText | None = Field(default=None, description="the value found; absent: nothing found")
    expected: EvidenceText | None = None


class ObjectRef(Spec):
    """An API object a cluster-level finding is about."""

    api_group: Annotated[str, Field(max_length=253)] = ""
    kind: Annotated[str, Field(min_length=1, max_length=63)]
    namespace: Annotated[str, Field(max_length=63)] | None = None
    name: Annotated[str, Field(min_length=1, max_length=253)]


class CheckResult(Spec):
    id: RuleId
    title: Annotated[str, Field(max_length=256)] = ""
    severity: Severity
    status: CheckStatus = Field(description="as audited; exceptions are applied in status.exceptions")
    reason: Annotated[str, Field(max_length=MAX_TEXT)] = Field(
        default="", description="why this status, in a sentence (e.g. why not applicable)"
    )
    resource: ObjectRef | None = Field(default=None, description="the object at fault (cluster-level rules)")
    evidence: Annotated[list[Evidence], Field(max_length=MAX_EVIDENCE)] = Field(default_factory=list)


class ComplianceReportSpec(Spec):
    """The raw results of one node's audit (or of the cluster-level rules), written by the audit agent."""

    profile: ProfileName
    node_name: NodeName | None = Field(
        default=None, description="the node audited; absent in the profile's cluster-level report"
    )
    scan: ObjectName = Field(description="the scan that produced these results")
    benchmark: Annotated[str, Field(max_length=64)] = Field(
        default="", description="benchmark data set id, e.g. 'cis-1.12'"
    )
    audit_time: datetime | None = Field(default=None, description="when the results were collected")
    results: Annotated[list[CheckResult], Field(max_length=MAX_RULES)] = Field(default_factory=list)

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "has(self.nodeName) == has(oldSelf.nodeName) && "
                "(!has(self.nodeName) || self.nodeName == oldSelf.nodeName)",
                "spec.nodeName cannot change: a report belongs to one node for its whole life",
                field_path=".nodeName",
            ),
            cel(
                "self.profile == oldSelf.profile",
                "spec.profile cannot change: a report belongs to one profile for its whole life",
                field_path=".profile",
            ),
            cel(
                "!has(self.nodeName) || self.results.all(r, !has(r.resource))",
                "a node report's results are about the node: only the cluster-level report (no "
                "spec.nodeName) names API objects in results[].resource",
                field_path=".results",
                reason="FieldValueForbidden",
            ),
        )
    )

    @model_validator(mode="after")
    def _node_results_name_no_objects(self) -> ComplianceReportSpec:
        if self.node_name is not None and any(r.resource is not None for r in self.results):
            raise ValueError(
                "a node report's results are about the node: only the cluster-level report (no "
                "spec.nodeName) names API objects in results[].resource"
            )
        return self


class ExceptionRef(Model):
    """The exception entry that covers a result, copied so auditors see it with the result."""

    kind: Literal["ComplianceException", "ClusterComplianceException"]
    name: ObjectName
    namespace: Annotated[str, Field(max_length=63)] | None = None
    entry: Count = Field(description="index in spec.entries")
    reason: Annotated[str, Field(max_length=MAX_TEXT)]
    owner: Annotated[str, Field(max_length=256)]
    ticket: Annotated[str, Field(max_length=256)] | None = None
    expires: Annotated[str, Field(max_length=40)]


class ExceptedResult(Model):
    rule: RuleId
    resource: ObjectRef | None = None
    exception: ExceptionRef


class Baseline(Model):
    """Raw results at ``observedGeneration``, kept so the next audit can be compared (drift)."""

    passing: Annotated[list[RuleId], Field(max_length=MAX_RULES)] = Field(default_factory=list)
    failing: Annotated[list[RuleId], Field(max_length=MAX_RULES)] = Field(default_factory=list)


class ReportDrift(Model):
    """What changed on this node with the latest audit, and the running totals for the node."""

    scan: ObjectName | None = Field(default=None, description="the scan whose audit changed the results")
    regressions: Annotated[list[RuleId], Field(max_length=MAX_RULES)] = Field(
        default_factory=list, description="rules gone from pass to fail with that audit"
    )
    restorations: Annotated[list[RuleId], Field(max_length=MAX_RULES)] = Field(
        default_factory=list, description="rules gone from fail to pass with that audit"
    )
    regression_total: Count = Field(default=0, description="pass-to-fail changes on this node, ever")
    restoration_total: Count = Field(default=0, description="fail-to-pass changes on this node, ever")


class ComplianceReportStatus(Model):
    observed_generation: int | None = Field(default=None, ge=0)
    baseline: Baseline | None = None
    drift: ReportDrift | None = None
    summary: Summary | None = Field(default=None, description="counts after exceptions")
    exceptions: Annotated[list[ExceptedResult], Field(max_length=MAX_RULES)] = Field(
        default_factory=list, description="failing results covered by an active exception entry"
    )
    conditions: Conditions = Field(default_factory=list)


class ComplianceReport(Resource):
    """Latest results of a profile on one node, or of its cluster-level rules."""

    CRD: ClassVar[CrdInfo] = CrdInfo(
        plural="compliancereports",
        singular="compliancereport",
        short_names=["crep"],
        namespaced=False,
        printer_columns=[
            column("Profile", "string", ".spec.profile", "the profile"),
            column("Node", "string", ".spec.nodeName", "the node; empty for cluster-level rules"),
            column("Pass", "integer", ".status.summary.pass", "passing results"),
            column("Fail", "integer", ".status.summary.fail", "failing results, after exceptions"),
            column(
                "Excepted", "integer", ".status.summary.excepted", "failing results under an exception", 1
            ),
            column("Scan", "string", ".spec.scan", "the scan that produced the results", 1),
            AGE,
        ],
        selectable_fields=[".spec.profile", ".spec.nodeName", ".spec.scan"],
    )

    kind: Literal["ComplianceReport"] = "ComplianceReport"
    spec: ComplianceReportSpec
    status: ComplianceReportStatus | None = None

    def effective_status(self, result: CheckResult) -> ResultStatus:
        """``result``'s status after exceptions (as recorded in ``status.exceptions``)."""
        if result.status is CheckStatus.FAIL and self.exception_for(result) is not None:
            return ResultStatus.EXCEPTED
        return ResultStatus(result.status.value)

    def exception_for(self, result: CheckResult) -> ExceptionRef | None:
        if self.status is None:
            return None
        return next(
            (
                e.exception
                for e in self.status.exceptions
                if e.rule == result.id and e.resource == result.resource
            ),
            None,
        )
