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

import re
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
NodeAudit = Audit


# ---- cluster audits ------------------------------------------------------------------------------


class Permission(_Model):
    """Any of ``verbs`` on any of ``resources`` (``res`` or ``res/subresource``) in ``api_group``."""

    api_group: str = Field(description='"" is the core group')
    resources: list[str] = Field(min_length=1)
    verbs: list[str] = Field(min_length=1)


class RbacAudit(_Model):
    """Subjects granted ``any_of`` the permissions, ``all_of`` them together, or bound to the
    ClusterRole ``bound_cluster_role`` fail the rule (one of the three)."""

    type: Literal["rbac"] = "rbac"
    any_of: list[Permission] = Field(default_factory=list)
    all_of: list[Permission] = Field(default_factory=list)
    bound_cluster_role: str | None = None

    @model_validator(mode="after")
    def _one_question(self) -> RbacAudit:
        if sum(map(bool, (self.any_of, self.all_of, self.bound_cluster_role))) != 1:
            raise ValueError("an rbac audit has exactly one of any_of, all_of and bound_cluster_role")
        return self


class PodCheck(StrEnum):
    """Checks of pod specs (CIS 5.2, 5.4.1, 5.6.2); implemented in ``engine.cluster.pods``."""

    PRIVILEGED = "privileged"
    HOST_PID = "host-pid"
    HOST_IPC = "host-ipc"
    HOST_NETWORK = "host-network"
    PRIVILEGE_ESCALATION = "privilege-escalation"
    ROOT = "root"
    NET_RAW = "net-raw"
    ADDED_CAPABILITIES = "added-capabilities"
    HOST_PROCESS = "host-process"
    HOST_PATH = "host-path"
    HOST_PORT = "host-port"
    SECRETS_IN_ENV = "secrets-in-env"
    SECCOMP = "seccomp"


class PodAudit(_Model):
    type: Literal["pod"] = "pod"
    check: PodCheck


class PssCheck(StrEnum):
    """The checks of the Pod Security Standards, named as pod-security-admission names them."""

    WINDOWS_HOST_PROCESS = "windowsHostProcess"
    HOST_NAMESPACES = "hostNamespaces"
    PRIVILEGED = "privileged"
    CAPABILITIES_BASELINE = "capabilities_baseline"
    HOST_PATH_VOLUMES = "hostPathVolumes"
    HOST_PORTS = "hostPorts"
    APPARMOR_PROFILE = "appArmorProfile"
    SELINUX_OPTIONS = "seLinuxOptions"
    PROC_MOUNT = "procMount"
    SECCOMP_PROFILE_BASELINE = "seccompProfile_baseline"
    SYSCTLS = "sysctls"
    HOST_PROBES_AND_HOST_LIFECYCLE = "hostProbesAndHostLifecycle"
    RESTRICTED_VOLUMES = "restrictedVolumes"
    ALLOW_PRIVILEGE_ESCALATION = "allowPrivilegeEscalation"
    CAPABILITIES_RESTRICTED = "capabilities_restricted"
    RUN_AS_NON_ROOT = "runAsNonRoot"
    RUN_AS_USER = "runAsUser"
    SECCOMP_PROFILE_RESTRICTED = "seccompProfile_restricted"
    PROC_MOUNT_RESTRICTED = "procMount_restricted"


class PssAudit(_Model):
    """A Pod Security Standards check as part of ``level``: at a policy version where a stricter
    check of the level replaces it (``capabilities_baseline`` in restricted from v1.22), it passes."""

    type: Literal["pss"] = "pss"
    check: PssCheck
    level: Literal["baseline", "restricted"]


class ObjectsCheck(StrEnum):
    """Checks over objects other than pods; implemented in ``engine.cluster.objects_checks``."""

    ROLE_WILDCARDS = "role-wildcards"  # Roles and ClusterRoles with "*" (5.1.3)
    DEFAULT_SERVICE_ACCOUNTS = "default-service-accounts"  # default SAs used or mounted (5.1.5)
    NAMESPACES_WITHOUT_NETWORK_POLICY = "namespaces-without-network-policy"  # 5.3.2
    DEFAULT_NAMESPACE_USED = "default-namespace-used"  # 5.6.4


class ObjectName(_Model):
    kind: str
    name: str


class ObjectsAudit(_Model):
    type: Literal["objects"] = "objects"
    check: ObjectsCheck
    ignore: list[ObjectName] = Field(
        default_factory=list, description="objects the check never counts (e.g. the kubernetes Service)"
    )


class EvidenceKind(StrEnum):
    """What an evidence-only rule lists for a person to judge."""

    MOUNTED_TOKENS = "mounted-tokens"  # 5.1.6
    SYSTEM_MASTERS = "system-masters"  # 5.1.7
    POD_POLICY = "pod-policy"  # 5.2.1
    NETWORK_POLICY_PROVIDER = "network-policy-provider"  # 5.3.1
    ADMISSION_WEBHOOKS = "admission-webhooks"  # 5.5.1
    SECURITY_CONTEXTS = "security-contexts"  # 5.6.3


class EvidenceAudit(_Model):
    type: Literal["evidence"] = "evidence"
    collect: EvidenceKind


ClusterAudit = Annotated[
    RbacAudit | PodAudit | PssAudit | ObjectsAudit | EvidenceAudit,
    Field(discriminator="type"),
]


class ExpectedHolder(_Model):
    """Who or what legitimately holds what some cluster rules look for.

    Matches a finding when every given field matches (globs; ``subject`` of a ServiceAccount is
    ``namespace/name``). Matched findings are reported as expected, with ``reason``, never hidden.
    """

    rules: list[str] = Field(min_length=1, description="rule id globs this entry applies to")
    reason: str = Field(min_length=1)
    subject_kind: Literal["User", "Group", "ServiceAccount"] | None = None
    subject: str | None = None
    binding: str | None = None
    role: str | None = None
    namespace: str | None = Field(default=None, description="namespace of the object at fault")

    @model_validator(mode="after")
    def _matches_something(self) -> ExpectedHolder:
        if not any((self.subject_kind, self.subject, self.binding, self.role, self.namespace)):
            raise ValueError("an expected holder names a subject, binding, role or namespace")
        return self


NUMBERED_ID = r"^\d+(\.\d+){1,3}$"


class RuleCommon(_Model):
    """What every rule has, wherever it is evaluated."""

    id: str = Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
    title: str
    section: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
    severity: Severity
    targets: list[Target] = Field(min_length=1)
    scored: bool = Field(description="the benchmark's 'Automated' (true) or 'Manual' (false)")
    guidance: str | None = Field(default=None, description="how a person checks a manual rule")
    remediation: str


class Rule(RuleCommon):
    """A rule with its node audit (``audit``) or its cluster audit (``cluster_audit``), or neither."""

    audit: Audit | None = None
    cluster_audit: ClusterAudit | None = None
    # Absent components: when the audited component is not running on the node the rule is
    # not-applicable; when the file is absent, ``missing_file`` says what that means.
    missing_file: Literal["not-applicable", "fail"] = "not-applicable"

    @model_validator(mode="after")
    def _manual_or_audited(self) -> Rule:
        if self.audit is None and self.cluster_audit is None and not self.guidance:
            raise ValueError(f"rule {self.id}: a rule without an audit needs guidance")
        if self.scored and self.audit is None and Target.CLUSTER not in self.targets:
            raise ValueError(f"rule {self.id}: an automated node rule needs an audit")
        if self.cluster_audit is not None and self.targets != [Target.CLUSTER]:
            raise ValueError(f"rule {self.id}: a cluster audit needs targets [cluster]")
        if self.audit is not None and Target.CLUSTER in self.targets:
            raise ValueError(f"rule {self.id}: a node audit cannot target the cluster")
        if self.cluster_audit is not None and self.cluster_audit.type == "evidence" and not self.guidance:
            raise ValueError(f"rule {self.id}: an evidence rule needs guidance for the person who judges")
        numbered = re.fullmatch(NUMBERED_ID, self.id)
        if numbered and not self.id.startswith(self.section + ".") and self.id != self.section:
            raise ValueError(f"rule {self.id} is not in section {self.section}")
        return self


class SectionFile(_Model):
    """One YAML data file: a top-level section and its rules."""

    benchmark: str
    section: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*$")
    title: str
    rules: list[Rule]


class Benchmark(_Model):
    """Loaded benchmark: ``benchmark.yaml`` metadata plus its section files."""

    id: str
    title: str
    version: str
    variables: dict[str, str] = Field(default_factory=dict)
    sections: dict[str, str] = Field(default_factory=dict, description="section id → title")
    rule_ids: str = Field(default=NUMBERED_ID, description="pattern every rule id of this benchmark matches")
    expected_holders: list[ExpectedHolder] = Field(
        default_factory=list, description="defaults; a profile may replace them"
    )
    never_expected: list[str] = Field(
        default_factory=list,
        description="subject names never treated as expected holders, whatever entry matches "
        "(broad groups such as system:authenticated)",
    )
    rules: list[Rule]

    @model_validator(mode="after")
    def _ids_follow_scheme(self) -> Benchmark:
        bad = [r.id for r in self.rules if not re.fullmatch(self.rule_ids, r.id)]
        if bad:
            raise ValueError(f"rule ids {', '.join(bad)} do not match {self.rule_ids}")
        return self


AllOf.model_rebuild()
AnyOf.model_rebuild()
