"""The rule model: what a benchmark control inspects, as data.

A benchmark (for example ``cis-1.12``) is a set of YAML files under ``benchmarks/data/<id>/``.
Each file holds one section's rules. A rule says *what* to look at declaratively; the engine
(:mod:`plumbob.engine`) turns gathered node facts into findings by interpreting these models.

Shape of an audit (a discriminated union on ``type``)::

    Audit
     ├── FileModeAudit      file permissions at most ``max_mode`` (octal string, e.g. "600")
     ├── FileOwnerAudit     file owner ``user`` and group ``group`` (names, resolved on the host)
     ├── SettingAudit       a component setting: flag → config-file key → documented default
     │                      (``config_default`` when the component runs with a config file)
     ├── AllOf / AnyOf      combinations of the above
     └── (none)             manual rules carry ``audit: null`` and ``guidance`` instead

Values in tests may reference benchmark variables as ``${name}``; a profile can override them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


class Target(StrEnum):
    """Where a rule is evaluated. ``cluster`` rules are evaluated by the operator from the API."""

    CONTROL_PLANE = "control-plane"
    ETCD = "etcd"
    WORKER = "worker"
    CLUSTER = "cluster"


class Component(StrEnum):
    APISERVER = "apiserver"
    CONTROLLER_MANAGER = "controller-manager"
    SCHEDULER = "scheduler"
    ETCD = "etcd"
    KUBELET = "kubelet"
    PROXY = "proxy"


class Op(StrEnum):
    """Comparison of a setting's effective value with the expected ``value``.

    ``contains``/``not-contains`` treat the setting as a comma-separated list (or a YAML list)
    and test membership of each expected item; ``subset-of`` requires every item of the setting
    to be in the expected list. Numeric comparisons parse integers or Go durations (``4h0m0s``).
    """

    PRESENT = "present"
    ABSENT = "absent"
    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "not-in"
    CONTAINS = "contains"
    NOT_CONTAINS = "not-contains"
    SUBSET_OF = "subset-of"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    REGEX = "regex"


class Test(_Model):
    op: Op
    value: str | list[str] | None = None

    @model_validator(mode="after")
    def _value_matches_op(self) -> Test:
        if self.op in (Op.PRESENT, Op.ABSENT):
            if self.value is not None:
                raise ValueError(f"op {self.op} takes no value")
        elif self.value is None:
            raise ValueError(f"op {self.op} needs a value")
        return self


class FileRef(_Model):
    """How to locate a file (or directory) on the node.

    Tried in order: the ``component``'s command-line ``flag``, then its config-file ``config_key``
    (dotted path), then each of the known ``paths`` (globs allowed). With ``all_matches`` every
    file a glob matches must satisfy the audit (for example ``/etc/kubernetes/pki/*.key``); with
    ``recursive`` a directory is audited together with everything below it.
    """

    component: Component | None = None
    flag: str | None = None
    config_key: str | None = None
    paths: list[str] = Field(default_factory=list)
    all_matches: bool = False
    recursive: bool = False

    @model_validator(mode="after")
    def _has_a_source(self) -> FileRef:
        if not (self.flag or self.config_key or self.paths):
            raise ValueError("a file reference needs a flag, a config_key or known paths")
        if (self.flag or self.config_key) and self.component is None:
            raise ValueError("flag and config_key need the component they belong to")
        return self


class FileModeAudit(_Model):
    type: Literal["file-mode"] = "file-mode"
    file: FileRef
    max_mode: str = Field(pattern=r"^[0-7]{3,4}$", description="most permissive allowed mode, octal")


class FileOwnerAudit(_Model):
    type: Literal["file-owner"] = "file-owner"
    file: FileRef
    user: str
    group: str


class SettingAudit(_Model):
    """A component setting, resolved with the component's own precedence.

    The effective value is the command-line ``flag`` if given on the running process, else the
    ``config_key`` in the component's config file, else a documented default, else unset.

    Some components have two sets of defaults. ``config_default`` is the value the component
    uses when it runs with a config file (the kubelet's ``--config``) that omits the key;
    ``default`` remains the value without a config file (the legacy flag default), and is also
    used with a config file when ``config_default`` is not given. ``None``: no documented default.
    Evidence records which source supplied the value, and which default applied.
    """

    type: Literal["setting"] = "setting"
    component: Component
    flag: str | None = None
    config_key: str | None = None
    default: str | None = None
    config_default: str | None = None
    test: Test

    @model_validator(mode="after")
    def _names_a_setting(self) -> SettingAudit:
        if not (self.flag or self.config_key):
            raise ValueError("a setting audit needs a flag or a config_key")
        if self.config_default is not None and not self.config_key:
            raise ValueError("config_default is the default of a config_key: name the key")
        if self.flag is not None and not self.flag.startswith("--"):
            raise ValueError(f"flag {self.flag!r} must start with --")
        return self


class AllOf(_Model):
    type: Literal["all"] = "all"
    audits: list[Audit] = Field(min_length=1)


class AnyOf(_Model):
    type: Literal["any"] = "any"
    audits: list[Audit] = Field(min_length=1)


Audit = Annotated[
    FileModeAudit | FileOwnerAudit | SettingAudit | AllOf | AnyOf,
    Field(discriminator="type"),
]


class Rule(_Model):
    id: str = Field(pattern=r"^\d+(\.\d+){1,3}$")
    title: str
    section: str = Field(pattern=r"^\d+(\.\d+)?$")
    severity: Severity
    targets: list[Target] = Field(min_length=1)
    scored: bool = Field(description="CIS 'Automated' (true) or 'Manual' (false)")
    audit: Audit | None = None
    guidance: str | None = Field(default=None, description="how a person checks a manual rule")
    remediation: str
    # Absent components: when the audited component is not running on the node the rule is
    # not-applicable; when the file is absent, ``missing_file`` says what that means.
    missing_file: Literal["not-applicable", "fail"] = "not-applicable"

    @model_validator(mode="after")
    def _manual_or_audited(self) -> Rule:
        if self.audit is None and not self.guidance:
            raise ValueError(f"rule {self.id}: a rule without an audit needs guidance")
        if self.scored and self.audit is None and Target.CLUSTER not in self.targets:
            raise ValueError(f"rule {self.id}: an automated node rule needs an audit")
        if not self.id.startswith(self.section + ".") and self.id != self.section:
            raise ValueError(f"rule {self.id} is not in section {self.section}")
        return self


class SectionFile(_Model):
    """One YAML data file: a top-level section and its rules."""

    benchmark: str
    section: str = Field(pattern=r"^\d+$")
    title: str
    rules: list[Rule]


class Benchmark(_Model):
    """Loaded benchmark: ``benchmark.yaml`` metadata plus its section files."""

    id: str
    title: str
    version: str
    variables: dict[str, str] = Field(default_factory=dict)
    sections: dict[str, str] = Field(default_factory=dict, description="section id → title")
    rules: list[Rule]


AllOf.model_rebuild()
AnyOf.model_rebuild()
