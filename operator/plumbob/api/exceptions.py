"""``ComplianceException`` (namespaced): accepted deviations for findings inside one namespace.

A team keeps its exception list in its own namespace, under its own RBAC. An entry of a
namespaced list can only ever match findings about objects in that namespace: it has no
``namespaces``, ``nodes`` or ``nodeSelector`` field at all, so there is nothing to misuse.
Node findings, cluster-level findings and findings in any namespace are excepted with a
``ClusterComplianceException`` (:mod:`plumbob.api.cluster_exceptions`), which reuses the
pieces defined here.

Every entry needs a reason, an owner and an expiry: a permanent deviation is tailoring and
belongs in the profile (``rules.exclude`` or ``rules.manual``), where auditors look for it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from plumbob.api.common import (
    AGE,
    NAME_GLOB,
    SET,
    Conditions,
    Count,
    CrdInfo,
    Matching,
    Model,
    NonBlankText,
    PrinterColumn,
    ProfileName,
    Resource,
    RuleGlob,
    Spec,
    cel,
    column,
    ready_column,
    unique,
)

MAX_ENTRIES = 100

EXPIRES = (
    "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    "(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))?$"
)
EXPIRES_MESSAGE = (
    "expires must be a date such as '2027-03-31' (the entry applies through that day, UTC) or an "
    "RFC 3339 date-time with a time zone such as '2027-03-31T17:00:00Z' or '2027-03-31T17:00:00+02:00'"
)

NameGlob = Annotated[
    str,
    Field(min_length=1, max_length=253),
    Matching(
        NAME_GLOB,
        "a name pattern is an object name or a glob such as 'web-*': lowercase letters, digits, "
        "'-', '.', '*' and '?' only",
    ),
]


def expiry_instant(expires: str) -> datetime:
    """The moment an entry stops applying: a date means the end of that day in UTC."""
    if "T" not in expires:
        return datetime.combine(date.fromisoformat(expires) + timedelta(days=1), time(), tzinfo=UTC)
    return datetime.fromisoformat(expires)


class ResourceRef(Spec):
    """API objects a finding may be about (cluster-level rules): all given fields must match."""

    api_group: Annotated[str, Field(max_length=253, pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$")] = Field(
        default="", description="API group; '' is the core group"
    )
    kind: Annotated[
        str,
        Field(min_length=1, max_length=63),
        Matching(
            "^[A-Z][A-Za-z0-9]*$",
            "kind is the object's Kind in CamelCase, for example 'ClusterRoleBinding' or 'Pod'",
        ),
    ]
    name: NameGlob = Field(default="*", description="object name or glob; default: any name")


class EntryFields(Spec):
    """Fields common to namespaced and cluster exception entries."""

    rules: Annotated[list[RuleGlob], Field(min_length=1, max_length=64)] = Field(
        description="rule ids or globs this entry excepts"
    )
    profiles: Annotated[
        list[ProfileName], Field(max_length=64, json_schema_extra=SET), AfterValidator(unique)
    ] = Field(default_factory=list, description="only in these profiles; default: every profile")
    resources: Annotated[list[ResourceRef], Field(max_length=64)] = Field(
        default_factory=list, description="only findings about these objects; default: any object"
    )
    reason: NonBlankText = Field(description="why the deviation is accepted (shown to auditors)")
    owner: Annotated[str, Field(min_length=1, max_length=256), Matching("[^ ]", "must not be blank")] = Field(
        description="who answers for it: a person or team, e.g. 'platform-team@example.com'"
    )
    ticket: Annotated[str, Field(max_length=256)] | None = Field(
        default=None, description="tracking issue or change ticket, e.g. 'SEC-1234' or a URL"
    )
    expires: Annotated[str, Field(min_length=10, max_length=40), Matching(EXPIRES, EXPIRES_MESSAGE)] = Field(
        description="date (through that day, UTC) or RFC 3339 date-time after which the entry stops applying"
    )

    @field_validator("expires")
    @classmethod
    def _expires_is_real(cls, value: str) -> str:
        try:
            expiry_instant(value)
        except ValueError:
            raise ValueError(f"expires {value!r} is not a real date: {EXPIRES_MESSAGE}") from None
        return value

    def expiry(self) -> datetime:
        return expiry_instant(self.expires)


_CLUSTER_ONLY_MESSAGE = (
    "a ComplianceException applies only to findings about objects in its own namespace; to except "
    "node findings or findings in other namespaces, use a ClusterComplianceException"
)


def _refuse_cluster_only_fields(schema: dict[str, Any]) -> None:
    """Declare the cluster-only fields in the CRD just to refuse them with a helpful message.

    Without this the API server would answer a bare "field not declared in schema".
    """
    strings = {"type": "array", "maxItems": 100, "items": {"type": "string", "maxLength": 253}}
    schema["properties"] |= {
        "namespaces": strings,
        "nodes": strings,
        "nodeSelector": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    }
    schema["x-kubernetes-validations"] = [
        cel(f"!has(self.{name})", _CLUSTER_ONLY_MESSAGE, field_path=f".{name}", reason="FieldValueForbidden")
        for name in ("namespaces", "nodes", "nodeSelector")
    ]


class ExceptionEntry(EntryFields):
    """One accepted deviation for findings in the exception's own namespace."""

    model_config = ConfigDict(json_schema_extra=_refuse_cluster_only_fields)

    @model_validator(mode="before")
    @classmethod
    def _no_cluster_only_fields(cls, data: Any) -> Any:
        present = [k for k in ("namespaces", "nodes", "nodeSelector") if isinstance(data, dict) and k in data]
        if present:
            raise ValueError(f"{', '.join(present)}: {_CLUSTER_ONLY_MESSAGE}")
        return data


class EntryState(StrEnum):
    ACTIVE = "active"  # applies and currently matches at least one result
    UNUSED = "unused"  # applies but matches no result: probably stale, or a typo in the scope
    EXPIRED = "expired"  # past its expiry: no longer applies
    INVALID = (
        "invalid"  # got past admission but cannot be used (e.g. a date that does not exist): never applies
    )


class EntryStatus(Model):
    index: Count = Field(description="position of the entry in spec.entries")
    state: EntryState
    matched: Count = Field(default=0, description="results currently excepted by this entry")
    expires_at: datetime | None = Field(default=None, description="the resolved expiry instant (UTC)")
    message: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None, description="why an invalid entry cannot be used"
    )


class ExceptionSummary(Model):
    total: Count = 0
    active: Count = 0
    unused: Count = 0
    expired: Count = 0
    invalid: Count = 0


class ExceptionStatus(Model):
    observed_generation: int | None = Field(default=None, ge=0)
    summary: ExceptionSummary | None = None
    entries: Annotated[list[EntryStatus], Field(max_length=MAX_ENTRIES)] = Field(default_factory=list)
    next_expiry: datetime | None = Field(default=None, description="when the next active entry expires")
    conditions: Conditions = Field(default_factory=list)


def exception_columns() -> list[PrinterColumn]:
    return [
        column("Entries", "integer", ".status.summary.total", "entries in the list"),
        column("Active", "integer", ".status.summary.active", "entries that apply and match results"),
        column("Expired", "integer", ".status.summary.expired", "entries past their expiry"),
        column("Unused", "integer", ".status.summary.unused", "entries that match nothing"),
        # A future time as type "date" prints as "<invalid>" in kubectl, so the timestamp is shown.
        column("Next Expiry", "string", ".status.nextExpiry", "when the next active entry expires (UTC)"),
        ready_column(priority=1),
        AGE,
    ]


class ComplianceExceptionSpec(Spec):
    """Accepted deviations for findings about objects in this namespace: each entry names the rules, a
    reason, an owner and an expiry.
    """

    entries: Annotated[list[ExceptionEntry], Field(min_length=1, max_length=MAX_ENTRIES)]


class ComplianceException(Resource):
    """Accepted deviations for findings inside this object's namespace."""

    CRD: ClassVar[CrdInfo] = CrdInfo(
        plural="complianceexceptions",
        singular="complianceexception",
        short_names=["cex"],
        namespaced=True,
        printer_columns=exception_columns(),
    )

    kind: Literal["ComplianceException"] = "ComplianceException"
    spec: ComplianceExceptionSpec
    status: ExceptionStatus | None = None
