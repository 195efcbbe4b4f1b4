"""Building blocks shared by every kind: base models, conditions, summaries, object metadata.

Conventions used by all the kinds in :mod:`plumbob.api`:

- Models are frozen. Field names are snake_case in Python and camelCase on the wire (aliases);
  both spellings are accepted when parsing, and dumps use the wire spelling.
- Specs forbid unknown fields (a typo in a user's YAML is an error, not silently ignored);
  statuses and metadata ignore them (an older operator can read a newer one's status).
- Every string has a ``max_length`` and every list a ``max_length``: the CRD generator turns them
  into ``maxLength``/``maxItems``, which keeps the API server's CEL cost estimates bounded.
- A validation the API server also performs is declared once, with :func:`cel`, next to the
  Python check that mirrors it, so that the admission message and the operator's ``Stalled``
  message are the same sentence.
- The CRDs carry **no defaults**: the API server would write them into ``spec`` and GitOps tools
  would see fields nobody applied. Defaults live in the models, applied when parsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from plumbob.benchmarks import rules as _rules
from plumbob.engine import findings as _findings
from plumbob.names import (
    API_VERSION,
)

T = TypeVar("T")


# Caps that keep every object far below etcd's 1.5 MiB request limit at any cluster size.
MAX_CONDITIONS = 16
MAX_NODE_NAMES = 10  # node names listed per rule (failing nodes, drifted nodes); counts carry the rest
MAX_NODE_PROBLEMS = 100  # nodes listed with the reason they produced no results
MAX_RULES = 1000  # rule results in one object
MAX_EVIDENCE = 8
# A profile's scan is named "<profile>-YYYYMMDD-hhmmss" (52 characters at most) and its audit Jobs
# "<scan>-<10 hex>" (63 at most, a label value): so the admission policy can read the scan off the
# audit Pod's name (docs/decisions/2026-12-02-names-the-admission-policy-checks.md).
MAX_PROFILE_NAME = 36
MAX_TEXT = 1024
MAX_EVIDENCE_TEXT = 512

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
RULE_ID = r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$"
RULE_GLOB = r"^[A-Za-z0-9._*?-]+$"
NAME_GLOB = r"^[a-z0-9.*?-]+$"


# ---- base models --------------------------------------------------------------------------------


class Model(BaseModel):
    """Wire model of a status or other operator-written structure: unknown fields are ignored."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    def to_dict(self) -> dict[str, Any]:
        """The wire form: camelCase keys, no ``None`` values, JSON-compatible scalars."""
        return self.model_dump(mode="json", exclude_none=True)


class Spec(Model):
    """Wire model of user input: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


# ---- CEL validations --------------------------------------------------------------------------

CelReason = Literal["FieldValueInvalid", "FieldValueRequired", "FieldValueForbidden", "FieldValueDuplicate"]


def cel(
    rule: str, message: str, *, field_path: str | None = None, reason: CelReason | None = None
) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry."""
    out = {"rule": rule, "message": message}
    if field_path is not None:
        out["fieldPath"] = field_path
    if reason is not None:
        out["reason"] = reason
    return out


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` carrying CEL rules, for ``Field(...)`` or a model's config."""
    return {"x-kubernetes-validations": list(rules)}


@dataclass(frozen=True)
class Matching:
    """``Annotated`` marker: the string must match ``regex``, checked by the API server and the model.

    Preferred over a plain ``pattern`` for user input: the API server then reports ``message``
    (what is wrong, how to fix it) instead of the bare regular expression. ``regex`` is searched
    (not anchored implicitly), as CEL's ``matches`` does.
    """

    regex: str
    message: str

    def __post_init__(self) -> None:
        # Kept free of backslashes and quotes so the rule needs no escaping inside a CEL string.
        if "\\" in self.regex or "'" in self.regex:
            raise ValueError(f"regex {self.regex!r} must not contain backslashes or single quotes")

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        compiled = re.compile(self.regex)
        message = self.message

        def check(value: str) -> str:
            if not compiled.search(value):
                raise ValueError(message)
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        out.setdefault("x-kubernetes-validations", []).append(
            cel(f"self.matches('{self.regex}')", self.message)
        )
        return out


def unique(items: list[T]) -> list[T]:
    """``AfterValidator`` for lists declared ``x-kubernetes-list-type: set`` (no duplicates)."""
    seen: list[T] = []
    for item in items:
        if item in seen:
            raise ValueError(f"duplicate value {item!r}: list each value once")
        seen.append(item)
    return items


SET = {"x-kubernetes-list-type": "set"}

# ---- reusable field types -----------------------------------------------------------------------

Text = Annotated[str, Field(max_length=MAX_TEXT)]
NonBlankText = Annotated[str, Field(min_length=1, max_length=MAX_TEXT), Matching("[^ ]", "must not be blank")]
NodeName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
ProfileName = Annotated[
    str,
    Field(min_length=1, max_length=MAX_PROFILE_NAME),
    Matching(
        DNS_LABEL,
        "a profile name is a lowercase DNS label: letters, digits and '-', starting and ending "
        "with a letter or digit (for example 'cis-kubeadm')",
    ),
]
RuleId = Annotated[str, Field(min_length=1, max_length=64, pattern=RULE_ID)]


def rule_order(rule: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key for rule ids: numeric parts as numbers (``1.2.10`` after ``1.2.9``), any id allowed.

    Every part becomes ``(0, n, "")`` or ``(1, 0, text)``, so ids that mix numbers and words
    (``1.2.a``, ``custom.x``) compare without error.
    """
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in rule.split("."))


RuleGlob = Annotated[
    str,
    Field(min_length=1, max_length=64),
    Matching(
        RULE_GLOB,
        "a rule pattern is a rule id or a glob such as '1.2.*' or '4.2.1?': only letters, digits, "
        "'.', '-', '_', '*' and '?' are allowed (no spaces, no commas: use one list item per pattern)",
    ),
]
Count = Annotated[int, Field(ge=0)]


# ---- conditions ---------------------------------------------------------------------------------


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType(StrEnum):
    """Condition types Plumbob sets. ``Ready``/``Reconciling``/``Stalled`` follow kstatus."""

    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    COMPLIANT = "Compliant"


class Condition(Model):
    """The shape of ``metav1.Condition``, keyed by ``type``."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    status: ConditionStatus
    reason: str = Field(max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = Field(default="", max_length=32768)
    last_transition_time: datetime
    observed_generation: int | None = Field(default=None, ge=0)


Conditions = Annotated[
    list[Condition],
    Field(
        max_length=MAX_CONDITIONS,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]


def find_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def set_condition(conditions: list[Condition], new: Condition) -> list[Condition]:
    """Return ``conditions`` with ``new`` in place of the condition of the same type.

    ``lastTransitionTime`` is kept from the old condition when the status did not change, so a
    reconcile that finds nothing new writes nothing new.
    """
    old = find_condition(conditions, new.type)
    if old is not None and old.status == new.status:
        new = new.model_copy(update={"last_transition_time": old.last_transition_time})
    out = [c for c in conditions if c.type != new.type]
    out.append(new)
    return sorted(out, key=lambda c: c.type)


# ---- summaries ------------------------------------------------------------------------------------


# One definition each, shared with the rule data and the engine, so the API cannot drift from them.
Severity = _rules.Severity
CheckStatus = _findings.Status  # what an audit found, before exceptions are applied


class ResultStatus(StrEnum):
    """A result after exceptions: a failing check that an active exception entry covers is ``excepted``."""

    PASS = "pass"  # noqa: S105 - a result, not a password
    FAIL = "fail"
    MANUAL = "manual"
    NOT_APPLICABLE = "not-applicable"
    ERROR = "error"
    EXCEPTED = "excepted"


class Summary(Model):
    """Counts of results by status. ``total`` is their sum."""

    pass_: Count = Field(default=0, alias="pass")
    fail: Count = 0
    manual: Count = 0
    not_applicable: Count = 0
    error: Count = 0
    excepted: Count = 0
    total: Count = 0

    @classmethod
    def of(cls, statuses: list[ResultStatus] | list[CheckStatus]) -> Summary:
        counts = dict.fromkeys(ResultStatus, 0)
        for s in statuses:
            counts[ResultStatus(s.value)] += 1
        return cls(
            pass_=counts[ResultStatus.PASS],
            fail=counts[ResultStatus.FAIL],
            manual=counts[ResultStatus.MANUAL],
            not_applicable=counts[ResultStatus.NOT_APPLICABLE],
            error=counts[ResultStatus.ERROR],
            excepted=counts[ResultStatus.EXCEPTED],
            total=len(statuses),
        )

    def score(self) -> float | None:
        """Percentage of decided results that comply: (pass + excepted) / (pass + excepted + fail + error).

        Manual and not-applicable results are left out: nothing was decided for them. ``None``
        when nothing was decided. Rounded to one decimal.
        """
        good = self.pass_ + self.excepted
        decided = good + self.fail + self.error
        if decided == 0:
            return None
        return round(100.0 * good / decided, 1)


# ---- selectors, tolerations, references -------------------------------------------------------------

LabelKey = Annotated[str, Field(min_length=1, max_length=317)]
LabelValue = Annotated[str, Field(max_length=63)]


class LabelSelectorRequirement(Spec):
    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: Annotated[list[LabelValue], Field(max_length=64)] = Field(default_factory=list)

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
                "operators In and NotIn need a non-empty 'values' list; Exists and DoesNotExist take none",
                field_path=".values",
            )
        )
    )

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelSelectorRequirement:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError(
                "operators In and NotIn need a non-empty 'values' list; Exists and DoesNotExist take none"
            )
        return self


class LabelSelector(Spec):
    """A Kubernetes label selector. An empty selector matches everything."""

    match_labels: Annotated[dict[str, LabelValue], Field(max_length=32)] = Field(default_factory=dict)
    match_expressions: Annotated[list[LabelSelectorRequirement], Field(max_length=32)] = Field(
        default_factory=list
    )

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
            if req.operator == "In" and labels.get(req.key) not in req.values:
                return False
            if req.operator == "NotIn" and present and labels[req.key] in req.values:
                return False
        return True


_SECONDS_NEED_NOEXECUTE = (
    "tolerationSeconds applies only to effect NoExecute (the API server refuses it on Pods otherwise)"
)


class Toleration(Spec):
    """The shape of ``core/v1`` ``Toleration``, for the audit Pods."""

    key: Annotated[str, Field(max_length=317)] | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: LabelValue | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: Annotated[int, Field(strict=True)] | None = None

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!(has(self.operator) && self.operator == 'Exists' && has(self.value))",
                "a toleration with operator Exists takes no value; remove 'value' or use operator Equal",
                field_path=".value",
                reason="FieldValueForbidden",
            ),
            cel(
                "has(self.key) || (has(self.operator) && self.operator == 'Exists')",
                "a toleration without a key must use operator Exists (it then tolerates every taint)",
                field_path=".operator",
            ),
            cel(
                "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
                _SECONDS_NEED_NOEXECUTE,
                field_path=".tolerationSeconds",
                reason="FieldValueForbidden",
            ),
        )
    )

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == "Exists" and self.value is not None:
            raise ValueError(
                "a toleration with operator Exists takes no value; remove 'value' or use operator Equal"
            )
        if self.key is None and self.operator != "Exists":
            raise ValueError(
                "a toleration without a key must use operator Exists (it then tolerates every taint)"
            )
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError(_SECONDS_NEED_NOEXECUTE)
        return self


class OwnerReference(Model):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(Model):
    """The parts of ``metadata`` Plumbob reads. Everything else is ignored when parsing."""

    name: str = ""
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    owner_references: list[OwnerReference] = Field(default_factory=list)


# ---- resources and CRD metadata ---------------------------------------------------------------------


class PrinterColumn(Model):
    name: str
    type: Literal["integer", "number", "string", "boolean", "date"]
    json_path: str
    description: str = ""
    priority: int = 0


class CrdInfo(Model):
    """What the CRD generator needs beyond the schema."""

    plural: str
    singular: str
    short_names: list[str]
    namespaced: bool
    printer_columns: list[PrinterColumn]
    selectable_fields: list[str] = Field(default_factory=list)
    root_validations: list[dict[str, str]] = Field(default_factory=list)


class Resource(Model):
    """Base of the seven kinds: ``apiVersion``, ``kind``, ``metadata``; subclasses add spec and status."""

    CRD: ClassVar[CrdInfo]

    api_version: Literal["plumbob.dev/v1alpha1"] = "plumbob.dev/v1alpha1"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    def owner_reference(self, *, controller: bool = True) -> OwnerReference:
        """An owner reference to this object (it must have been read from the API: it needs a uid)."""
        if not self.metadata.uid:
            raise ValueError(f"{type(self).__name__} {self.metadata.name!r} has no uid yet")
        return OwnerReference(
            api_version=API_VERSION,
            kind=type(self).__name__,
            name=self.metadata.name,
            uid=self.metadata.uid,
            controller=controller,
            block_owner_deletion=True,
        )


def column(name: str, type_: str, path: str, description: str = "", priority: int = 0) -> PrinterColumn:
    return PrinterColumn.model_validate(
        {"name": name, "type": type_, "jsonPath": path, "description": description, "priority": priority}
    )


AGE = column("Age", "date", ".metadata.creationTimestamp")


def ready_column(priority: int = 0) -> PrinterColumn:
    return column(
        "Ready", "string", '.status.conditions[?(@.type=="Ready")].status', "the Ready condition", priority
    )


# ---- names ------------------------------------------------------------------------------------------


SCAN_TIME_FORMAT = "%Y%m%d-%H%M%S"
_SCAN_TIME = re.compile(r"[0-9]{8}-[0-9]{6}")


def scan_name(profile: str, started: datetime) -> str:
    """``<profile>-YYYYMMDD-hhmmss`` (UTC): at most 52 characters, so its Job names fit in 63."""
    return f"{profile}-{started.strftime(SCAN_TIME_FORMAT)}"


def is_scan_name_of(name: str, profile: str) -> bool:
    """Whether ``name`` is a scan name of ``profile`` (:func:`scan_name`'s form, any moment)."""
    prefix = f"{profile}-"
    return name.startswith(prefix) and _SCAN_TIME.fullmatch(name[len(prefix) :]) is not None


def label_value(value: str) -> str | None:
    """``value`` if it is a valid label value (node names may be longer than 63 characters), else None."""
    ok = len(value) <= 63 and re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?", value)
    return value if ok else None
