"""``ComplianceScan`` (cluster-scoped): one run of a profile over the cluster, owned by the profile.

Created by the operator when a schedule fires or a rescan is requested; pruned to the schedule's
history limit. Named ``<profile>-YYYYMMDD-hhmmss`` (checked by the API server; a scan created by
hand must follow it too): the node-bound admission policy reads the profile of a report's scan
from the name, and the scan from the audit Pod's name
(:func:`plumbob.controller.decisions.scanning.job_name`).
The spec records what was asked for and is immutable; the status records what happened. Per-node
detail lives in the ``ComplianceReport`` objects; the scan only aggregates, with every list capped
(node names per rule, problem nodes) and exact counts alongside, so its size does not grow with
the number of nodes.

Aggregation of one rule across nodes (:func:`aggregate_status`): ``fail`` if any node fails,
else ``error`` if any errs, else ``excepted`` if any failure is excepted, else ``manual``, else
``pass``, else ``not-applicable``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from plumbob.api.common import (
    AGE,
    MAX_NODE_NAMES,
    MAX_NODE_PROBLEMS,
    MAX_RULES,
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
    is_scan_name_of,
    ready_column,
    validations,
)
from plumbob.api.profiles import ResolvedBenchmark
from plumbob.api.schedules import DEFAULT_MAX_PARALLEL_NODES, DEFAULT_NODE_DEADLINE_SECONDS


class Trigger(StrEnum):
    SCHEDULE = "schedule"  # a ComplianceSchedule fired
    RESCAN = "rescan"  # the plumbob.dev/rescan annotation on the profile
    MANUAL = "manual"  # created by a person or the CLI


class ScanPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETE = "Complete"  # every target node finished, failed, timed out or was unschedulable
    FAILED = "Failed"  # the scan itself could not run (e.g. the profile's benchmark cannot be resolved)


class ComplianceScanSpec(Spec):
    """What this scan was asked to do, recorded by the operator when it created the scan; immutable."""

    profile: ProfileName = Field(description="the profile scanned")
    trigger: Trigger
    schedule: ObjectName | None = Field(default=None, description="the schedule that fired, if any")
    profile_generation: Annotated[int, Field(strict=True, ge=1)] | None = Field(
        default=None, description="metadata.generation of the profile when the scan was created"
    )
    max_parallel_nodes: Annotated[int, Field(strict=True, ge=1, le=1000)] = DEFAULT_MAX_PARALLEL_NODES
    node_deadline_seconds: Annotated[int, Field(strict=True, ge=10, le=3600)] = DEFAULT_NODE_DEADLINE_SECONDS

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self == oldSelf",
                "the spec of a scan cannot change once created: create a new scan (or annotate the "
                "profile with plumbob.dev/rescan) instead",
            ),
            cel(
                "self.trigger != 'schedule' || has(self.schedule)",
                "a scan with trigger 'schedule' must name the schedule that fired in spec.schedule",
                field_path=".schedule",
                reason="FieldValueRequired",
            ),
        )
    )

    @model_validator(mode="after")
    def _schedule_named(self) -> ComplianceScanSpec:
        if self.trigger is Trigger.SCHEDULE and self.schedule is None:
            raise ValueError(
                "a scan with trigger 'schedule' must name the schedule that fired in spec.schedule"
            )
        return self


class NodeState(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    DONE = "Done"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"
    UNSCHEDULABLE = "Unschedulable"


class NodeProblem(Model):
    """A node that produced no results, and why."""

    node: NodeName
    state: NodeState
    reason: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9]*$")] = Field(
        description="CamelCase cause, e.g. UntoleratedTaint, NodeNotReady, AgentCrashed, DeadlineExceeded"
    )
    message: Annotated[str, Field(max_length=512)] = ""


class NodeProgress(Model):
    total: Count = 0
    pending: Count = 0
    running: Count = 0
    done: Count = 0
    failed: Count = 0
    timed_out: Count = 0
    unschedulable: Count = 0
    problems: Annotated[list[NodeProblem], Field(max_length=MAX_NODE_PROBLEMS)] = Field(
        default_factory=list,
        description=f"failed, timed-out and unschedulable nodes with the reason (first {MAX_NODE_PROBLEMS}; "
        "the counts are exact)",
    )


class RuleResult(Model):
    """One rule aggregated across the scanned nodes (or the cluster, for cluster-level rules)."""

    id: RuleId
    status: ResultStatus
    severity: Severity | None = None
    pass_count: Count = 0
    fail_count: Count = 0
    error_count: Count = 0
    excepted_count: Count = 0
    manual_count: Count = 0
    not_applicable_count: Count = 0
    failing_nodes: Annotated[list[NodeName], Field(max_length=MAX_NODE_NAMES)] = Field(
        default_factory=list,
        description=f"nodes where the rule fails (first {MAX_NODE_NAMES}; failCount is exact)",
    )


class DriftEntry(Model):
    """A rule whose result changed since the previous scan, and where."""

    rule: RuleId
    count: Count = Field(description="nodes where it changed (1 for a cluster-level rule)")
    nodes: Annotated[list[NodeName], Field(max_length=MAX_NODE_NAMES)] = Field(
        default_factory=list, description=f"first {MAX_NODE_NAMES} of those nodes"
    )


class ScanDrift(Model):
    """Changes against the previous completed scan of the same profile."""

    previous_scan: ObjectName | None = None
    regression_count: Count = Field(default=0, description="(rule, node) results gone from pass to fail")
    restoration_count: Count = Field(default=0, description="(rule, node) results gone from fail to pass")
    regressions: Annotated[list[DriftEntry], Field(max_length=MAX_RULES)] = Field(default_factory=list)
    restorations: Annotated[list[DriftEntry], Field(max_length=MAX_RULES)] = Field(default_factory=list)


class ComplianceScanStatus(Model):
    observed_generation: int | None = Field(default=None, ge=0)
    phase: ScanPhase | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    benchmark: ResolvedBenchmark | None = None
    nodes: NodeProgress | None = None
    rules: Annotated[
        list[RuleResult],
        Field(
            max_length=MAX_RULES,
            json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"]},
        ),
    ] = Field(default_factory=list, description="per-rule results across nodes, exceptions applied")
    summary: Summary | None = Field(default=None, description="counts of rules by aggregated status")
    drift: ScanDrift | None = None
    conditions: Conditions = Field(default_factory=list)


_PRECEDENCE = (
    ResultStatus.FAIL,
    ResultStatus.ERROR,
    ResultStatus.EXCEPTED,
    ResultStatus.MANUAL,
    ResultStatus.PASS,
)


def aggregate_status(statuses: Iterable[ResultStatus]) -> ResultStatus:
    """The status of one rule across nodes (see the module docstring)."""
    seen = set(statuses)
    return next((s for s in _PRECEDENCE if s in seen), ResultStatus.NOT_APPLICABLE)


class ComplianceScan(Resource):
    """One run of a profile over the cluster."""

    CRD: ClassVar[CrdInfo] = CrdInfo(
        plural="compliancescans",
        singular="compliancescan",
        short_names=["cscan"],
        namespaced=False,
        printer_columns=[
            column("Profile", "string", ".spec.profile", "the profile scanned"),
            column("Trigger", "string", ".spec.trigger", "schedule, rescan or manual", 1),
            column("Phase", "string", ".status.phase", "Pending, Running, Complete or Failed"),
            column("Nodes", "integer", ".status.nodes.total", "target nodes"),
            column("Done", "integer", ".status.nodes.done", "nodes audited"),
            column("Failed", "integer", ".status.nodes.failed", "nodes whose audit failed", 1),
            column("Pass", "integer", ".status.summary.pass", "rules passing on every node"),
            column("Fail", "integer", ".status.summary.fail", "rules failing on at least one node"),
            column(
                "Regressions", "integer", ".status.drift.regressionCount", "pass to fail since last scan", 1
            ),
            ready_column(priority=1),
            AGE,
        ],
        selectable_fields=[".spec.profile", ".spec.trigger"],
        root_validations=[
            cel(
                "!has(self.spec) || !has(self.spec.profile) || "
                "(self.metadata.name.startsWith(self.spec.profile + '-') && "
                "size(self.metadata.name) == size(self.spec.profile) + 16 && "
                "self.metadata.name.substring(size(self.spec.profile) + 1).matches('^[0-9]{8}-[0-9]{6}$'))",
                "metadata.name of a scan must be its profile's name and the moment it starts, "
                "<profile>-YYYYMMDD-hhmmss (UTC), for example cis-kubeadm-20261201-120000: the "
                "admission policy reads the scan's profile from it",
            ),
        ],
    )

    kind: Literal["ComplianceScan"] = "ComplianceScan"
    spec: ComplianceScanSpec
    status: ComplianceScanStatus | None = None

    @model_validator(mode="after")
    def _named_after_profile(self) -> ComplianceScan:
        name = self.metadata.name
        if name and not is_scan_name_of(name, self.spec.profile):
            raise ValueError(self.CRD.root_validations[0]["message"])
        return self
