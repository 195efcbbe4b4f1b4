"""``ComplianceSchedule`` (cluster-scoped): when profiles are scanned, and how hard to push the nodes.

The API server rejects what it can see is wrong (field count of the cron expression, shape of
the time zone, names XOR selector). What only a cron or time-zone library can tell
(``61 * * * *``, ``Mars/Olympus``) is caught when the operator parses the schedule into
:class:`ComplianceSchedule` and surfaces as a ``Stalled`` condition and an Event.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Annotated, ClassVar, Literal

from croniter import croniter
from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from plumbob.api.common import (
    AGE,
    SET,
    Conditions,
    CrdInfo,
    LabelSelector,
    Matching,
    Model,
    ProfileName,
    Resource,
    Spec,
    cel,
    column,
    ready_column,
    unique,
    validations,
)

CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_CRON_FIELD = "[0-9A-Za-z*/,?-]+"
CRON = f"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|{_CRON_FIELD}( +{_CRON_FIELD}){{4}})$"
CRON_MESSAGE = (
    "schedule must be a cron expression with 5 fields separated by spaces (minute hour day-of-month "
    "month day-of-week), for example '0 3 * * *' for 03:00 every day, or a macro such as '@daily'; "
    "set the time zone in timeZone, not in the schedule"
)
TIME_ZONE = "^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$"
TIME_ZONE_MESSAGE = (
    "timeZone must be an IANA time zone name such as 'Europe/Berlin', 'America/New_York' or 'UTC'"
)

DEFAULT_MAX_PARALLEL_NODES = 10
DEFAULT_NODE_DEADLINE_SECONDS = 300
DEFAULT_HISTORY_LIMIT = 5


class ComplianceScheduleSpec(Spec):
    """When to scan which profiles. The cron expression is evaluated in ``timeZone``."""

    schedule: Annotated[str, Field(min_length=1, max_length=128), Matching(CRON, CRON_MESSAGE)] = Field(
        description="cron expression (5 fields) or macro (@hourly, @daily, @weekly, @monthly, @yearly)"
    )
    time_zone: (
        Annotated[str, Field(min_length=1, max_length=64), Matching(TIME_ZONE, TIME_ZONE_MESSAGE)] | None
    ) = Field(default=None, description="IANA time zone of the schedule; default UTC")
    suspend: bool = Field(
        default=False, strict=True, description="true: no new scans start; running scans finish"
    )
    profiles: (
        Annotated[
            list[ProfileName],
            Field(min_length=1, max_length=100, json_schema_extra=SET),
            AfterValidator(unique),
        ]
        | None
    ) = Field(default=None, description="names of the profiles to scan (or use profileSelector)")
    profile_selector: LabelSelector | None = Field(
        default=None, description="labels of the profiles to scan (or use profiles)"
    )
    max_parallel_nodes: Annotated[int, Field(strict=True, ge=1, le=1000)] = Field(
        default=DEFAULT_MAX_PARALLEL_NODES, description="node audits running at the same time, per scan"
    )
    node_deadline_seconds: Annotated[int, Field(strict=True, ge=10, le=3600)] = Field(
        default=DEFAULT_NODE_DEADLINE_SECONDS,
        description="a node audit still unfinished after this many seconds is recorded as timed out",
    )
    history_limit: Annotated[int, Field(strict=True, ge=1, le=100)] = Field(
        default=DEFAULT_HISTORY_LIMIT, description="completed scans kept per profile; older ones are deleted"
    )

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "has(self.profiles) || has(self.profileSelector)",
                "say which profiles to scan: set spec.profiles (a list of profile names) or "
                "spec.profileSelector (a label selector)",
                field_path=".profiles",
                reason="FieldValueRequired",
            ),
            cel(
                "!(has(self.profiles) && has(self.profileSelector))",
                "spec.profiles and spec.profileSelector are mutually exclusive: keep only one of them",
                field_path=".profileSelector",
                reason="FieldValueForbidden",
            ),
        )
    )

    @field_validator("schedule")
    @classmethod
    def _cron_parses(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise ValueError(f"schedule {value!r} is not a valid cron expression: {CRON_MESSAGE}")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone_exists(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"timeZone {value!r} is not a known time zone: {TIME_ZONE_MESSAGE}"
                ) from None
        return value

    @model_validator(mode="after")
    def _names_xor_selector(self) -> ComplianceScheduleSpec:
        if (self.profiles is None) == (self.profile_selector is None):
            raise ValueError(
                "set exactly one of spec.profiles (profile names) or spec.profileSelector (a label selector)"
            )
        return self


class ComplianceScheduleStatus(Model):
    observed_generation: int | None = Field(default=None, ge=0)
    last_schedule_time: datetime | None = Field(default=None, description="when scans were last started")
    next_schedule_time: datetime | None = Field(default=None, description="when scans start next")
    profiles: Annotated[list[ProfileName], Field(max_length=100)] = Field(
        default_factory=list, description="the profiles this schedule currently selects (first 100)"
    )
    conditions: Conditions = Field(default_factory=list)


class ComplianceSchedule(Resource):
    """When profiles are scanned."""

    CRD: ClassVar[CrdInfo] = CrdInfo(
        plural="complianceschedules",
        singular="complianceschedule",
        short_names=["csched"],
        namespaced=False,
        printer_columns=[
            column("Schedule", "string", ".spec.schedule", "cron expression"),
            column("Time Zone", "string", ".spec.timeZone", "time zone of the schedule", 1),
            column("Suspend", "boolean", ".spec.suspend", "true: no new scans start"),
            column("Last", "date", ".status.lastScheduleTime", "when scans were last started"),
            # A future time as type "date" prints as "<invalid>" in kubectl, so the timestamp is shown.
            column("Next", "string", ".status.nextScheduleTime", "when scans start next (UTC)"),
            ready_column(),
            AGE,
        ],
    )

    kind: Literal["ComplianceSchedule"] = "ComplianceSchedule"
    spec: ComplianceScheduleSpec
    status: ComplianceScheduleStatus | None = None
