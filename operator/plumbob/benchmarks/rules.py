"""The rule model: what a benchmark control inspects, as data.

A benchmark (for example ``cis-1.12``) is a set of YAML files under ``benchmarks/data/<id>/``.
Each file holds one section's rules. A rule says *what* to look at declaratively; the engine
(:mod:`plumbob.engine`) turns gathered node facts into findings by interpreting these models.

Shape of an audit (a union tagged by ``type``)::

    Audit
     ├── FileModeAudit      file permissions at most ``max_mode`` (octal string, e.g. "600")
     ├── FileOwnerAudit     file owner ``user`` and group ``group`` (names, resolved on the host)
     ├── SettingAudit       a component setting: flag → config-file key → documented default
     │                      (``config_default`` when the component runs with a config file)
     ├── AllOf / AnyOf      combinations of the above
     └── (none)             manual rules carry ``audit: null`` and ``guidance`` instead

Values in tests may reference benchmark variables as ``${name}``; a profile can override them.

The models are frozen standard-library dataclasses, so the node audit (the agent in every audit
Pod, ``plumbob audit``) imports no validation library. Each model checks its own invariants in
``__post_init__``; the types and unknown keys of the data files are validated by pydantic in
:mod:`plumbob.benchmarks.validation` (``__pydantic_config__`` forbids unknown keys), which runs
when the shipped catalog is compiled and checked (``make catalog``, the unit tests), and whenever
a benchmark is loaded from YAML.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import MISSING, dataclass, field
from enum import StrEnum
from typing import Any, Literal

_STRICT: Any = {"extra": "forbid"}  # pydantic's ConfigDict, as a plain dict: no import here
NUMBERED_ID = r"^\d+(\.\d+){1,3}$"  # the CIS benchmarks' rule ids (a benchmark may name another scheme)
_NUMBERED = re.compile(NUMBERED_ID)
_RULE_ID = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_SECTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
_TOP_SECTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_MODE = re.compile(r"^[0-7]{3,4}$")
# a host directory an audit Pod mounts: absolute, no "." or ".." part, and short and plain enough
# to name a Pod volume after it ("host-home-kubernetes", at most 63 characters)
_HOST_DIRECTORY = re.compile(r"^(/[a-z0-9][a-z0-9.-]*)+$")


def rule_matches(rule_id: str, pattern: str) -> bool:
    """Whether a rule id matches a pattern: a glob (``1.2.*``), or a bare section (``4.2``) that
    takes everything below it."""
    return fnmatch.fnmatchcase(rule_id, pattern) or rule_id.startswith(pattern + ".")


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


def _pattern(value: str, pattern: re.Pattern[str], what: str) -> None:
    if not pattern.match(value):
        raise ValueError(f"{what} {value!r} does not match {pattern.pattern}")


@dataclass(frozen=True, kw_only=True)
class Test:
    __pydantic_config__ = _STRICT
    op: Op
    value: str | list[str] | None = None

    def __post_init__(self) -> None:
        if self.op in (Op.PRESENT, Op.ABSENT):
            if self.value is not None:
                raise ValueError(f"op {self.op} takes no value")
        elif self.value is None:
            raise ValueError(f"op {self.op} needs a value")


@dataclass(frozen=True, kw_only=True)
class FileRef:
    """How to locate a file (or directory) on the node.

    Tried in order: the ``component``'s command-line ``flag``, then its config-file ``config_key``
    (dotted path), then each of the known ``paths`` (globs allowed). With ``all_matches`` every
    file a glob matches must satisfy the audit (for example ``/etc/kubernetes/pki/*.key``); with
    ``recursive`` a directory is audited together with everything below it.
    """

    __pydantic_config__ = _STRICT
    component: Component | None = None
    flag: str | None = None
    config_key: str | None = None
    paths: list[str] = field(default_factory=list)
    all_matches: bool = False
    recursive: bool = False

    def __post_init__(self) -> None:
        if not (self.flag or self.config_key or self.paths):
            raise ValueError("a file reference needs a flag, a config_key or known paths")
        if (self.flag or self.config_key) and self.component is None:
            raise ValueError("flag and config_key need the component they belong to")


@dataclass(frozen=True, kw_only=True)
class FileModeAudit:
    __pydantic_config__ = _STRICT
    type: Literal["file-mode"] = "file-mode"
    file: FileRef
    max_mode: str  # most permissive allowed mode, octal

    def __post_init__(self) -> None:
        _pattern(self.max_mode, _MODE, "max_mode")


@dataclass(frozen=True, kw_only=True)
class FileOwnerAudit:
    __pydantic_config__ = _STRICT
    type: Literal["file-owner"] = "file-owner"
    file: FileRef
    user: str
    group: str


@dataclass(frozen=True, kw_only=True)
class StructuredKey:
    """A setting kept in a structured configuration file that a flag names.

    For example the kube-apiserver's ``--authorization-config`` file (``AuthorizationConfiguration``)
    replaces ``--authorization-mode``: ``{flag: --authorization-config, key: "authorizers[].type"}``
    reads the type of every authorizer, in order. ``key`` is a dotted path; a segment ending in
    ``[]`` maps the rest of the path over a list.
    """

    __pydantic_config__ = _STRICT
    flag: str
    key: str

    def __post_init__(self) -> None:
        if not self.flag.startswith("--"):
            raise ValueError(f"flag {self.flag!r} must start with --")
        if not self.key or any(not part.removesuffix("[]") for part in self.key.split(".")):
            raise ValueError(f"key {self.key!r} is not a dotted path")


@dataclass(frozen=True, kw_only=True)
class SettingAudit:
    """A component setting, resolved with the component's own precedence.

    The effective value is the command-line ``flag`` if given on the running process, else the
    same setting as an environment variable of the component's static pod (etcd's ``ETCD_*``),
    else the ``structured`` file's key when the process names such a file, else the
    ``config_key`` in the component's config file, else a documented default, else unset.

    Some components have two sets of defaults. ``config_default`` is the value the component
    uses when it runs with a config file (the kubelet's ``--config``) that omits the key;
    ``default`` remains the value without a config file (the legacy flag default), and is also
    used with a config file when ``config_default`` is not given. ``None``: no documented default.
    Evidence records which source supplied the value, and which default applied.
    """

    __pydantic_config__ = _STRICT
    type: Literal["setting"] = "setting"
    component: Component
    flag: str | None = None
    config_key: str | None = None
    default: str | None = None
    config_default: str | None = None
    default_by: str | None = None  # who applies ``default``, when not the component (a platform: "k3s")
    structured: StructuredKey | None = None
    test: Test

    def __post_init__(self) -> None:
        if not (self.flag or self.config_key):
            raise ValueError("a setting audit needs a flag or a config_key")
        if self.config_default is not None and not self.config_key:
            raise ValueError("config_default is the default of a config_key: name the key")
        if self.flag is not None and not self.flag.startswith("--"):
            raise ValueError(f"flag {self.flag!r} must start with --")


@dataclass(frozen=True, kw_only=True)
class AllOf:
    __pydantic_config__ = _STRICT
    type: Literal["all"] = "all"
    audits: list[Audit]

    def __post_init__(self) -> None:
        if not self.audits:
            raise ValueError("'all' needs at least one audit")


@dataclass(frozen=True, kw_only=True)
class AnyOf:
    __pydantic_config__ = _STRICT
    type: Literal["any"] = "any"
    audits: list[Audit]

    def __post_init__(self) -> None:
        if not self.audits:
            raise ValueError("'any' needs at least one audit")


Audit = FileModeAudit | FileOwnerAudit | SettingAudit | AllOf | AnyOf
AUDIT_TYPES: dict[str, type[Audit]] = {
    "file-mode": FileModeAudit,
    "file-owner": FileOwnerAudit,
    "setting": SettingAudit,
    "all": AllOf,
    "any": AnyOf,
}


# ---- cluster audits: decided from API objects by the operator (engine.cluster) ---------------------


@dataclass(frozen=True, kw_only=True)
class Permission:
    """Any of ``verbs`` on any of ``resources`` (``res`` or ``res/subresource``) in ``api_group``
    (``""`` is the core group)."""

    __pydantic_config__ = _STRICT
    api_group: str
    resources: list[str]
    verbs: list[str]

    def __post_init__(self) -> None:
        if not self.resources or not self.verbs:
            raise ValueError("a permission names at least one resource and one verb")


@dataclass(frozen=True, kw_only=True)
class RbacAudit:
    """Subjects granted ``any_of`` the permissions, ``all_of`` them together, or bound to the
    ClusterRole ``bound_cluster_role`` fail the rule (exactly one of the three)."""

    __pydantic_config__ = _STRICT
    type: Literal["rbac"] = "rbac"
    any_of: list[Permission] = field(default_factory=list)
    all_of: list[Permission] = field(default_factory=list)
    bound_cluster_role: str | None = None

    def __post_init__(self) -> None:
        if sum(map(bool, (self.any_of, self.all_of, self.bound_cluster_role))) != 1:
            raise ValueError("an rbac audit has exactly one of any_of, all_of and bound_cluster_role")


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


@dataclass(frozen=True, kw_only=True)
class PodAudit:
    __pydantic_config__ = _STRICT
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


@dataclass(frozen=True, kw_only=True)
class PssAudit:
    """A Pod Security Standards check as part of ``level``: at a policy version where a stricter
    check of the level replaces it (``capabilities_baseline`` in restricted from v1.22), it passes."""

    __pydantic_config__ = _STRICT
    type: Literal["pss"] = "pss"
    check: PssCheck
    level: Literal["baseline", "restricted"]


class ObjectsCheck(StrEnum):
    """Checks over objects other than pods; implemented in ``engine.cluster.objects_checks``."""

    ROLE_WILDCARDS = "role-wildcards"  # Roles and ClusterRoles with "*" (5.1.3)
    DEFAULT_SERVICE_ACCOUNTS = "default-service-accounts"  # default SAs used or mounted (5.1.5)
    NAMESPACES_WITHOUT_NETWORK_POLICY = "namespaces-without-network-policy"  # 5.3.2
    DEFAULT_NAMESPACE_USED = "default-namespace-used"  # 5.6.4


@dataclass(frozen=True, kw_only=True)
class ObjectName:
    __pydantic_config__ = _STRICT
    kind: str
    name: str


@dataclass(frozen=True, kw_only=True)
class ObjectsAudit:
    """``ignore``: objects the check never counts (e.g. the ``kubernetes`` Service)."""

    __pydantic_config__ = _STRICT
    type: Literal["objects"] = "objects"
    check: ObjectsCheck
    ignore: list[ObjectName] = field(default_factory=list)


class EvidenceKind(StrEnum):
    """What an evidence-only rule lists for a person to judge."""

    MOUNTED_TOKENS = "mounted-tokens"  # 5.1.6
    SYSTEM_MASTERS = "system-masters"  # 5.1.7
    POD_POLICY = "pod-policy"  # 5.2.1
    NETWORK_POLICY_PROVIDER = "network-policy-provider"  # 5.3.1
    ADMISSION_WEBHOOKS = "admission-webhooks"  # 5.5.1
    SECURITY_CONTEXTS = "security-contexts"  # 5.6.3


@dataclass(frozen=True, kw_only=True)
class EvidenceAudit:
    __pydantic_config__ = _STRICT
    type: Literal["evidence"] = "evidence"
    collect: EvidenceKind


ClusterAudit = RbacAudit | PodAudit | PssAudit | ObjectsAudit | EvidenceAudit


@dataclass(frozen=True, kw_only=True)
class ExpectedHolder:
    """Who or what legitimately holds what some cluster rules look for.

    Matches a finding when every given field matches (globs; ``subject`` of a ServiceAccount is
    ``namespace/name``; ``namespace`` is the namespace of the object at fault). Matched findings
    are reported as expected, with ``reason``, never hidden. ``rules``: rule id globs.
    """

    __pydantic_config__ = _STRICT
    rules: list[str]
    reason: str
    subject_kind: Literal["User", "Group", "ServiceAccount"] | None = None
    subject: str | None = None
    binding: str | None = None
    role: str | None = None
    namespace: str | None = None

    def __post_init__(self) -> None:
        if not self.rules:
            raise ValueError("an expected holder applies to at least one rule")
        if not self.reason:
            raise ValueError("an expected holder needs a reason")
        if not any((self.subject_kind, self.subject, self.binding, self.role, self.namespace)):
            raise ValueError("an expected holder names a subject, binding, role or namespace")


@dataclass(frozen=True, kw_only=True)
class Rule:
    __pydantic_config__ = _STRICT
    id: str
    title: str
    section: str
    severity: Severity
    targets: list[Target]
    scored: bool  # CIS 'Automated' (true) or 'Manual' (false)
    audit: Audit | None = None  # a node audit (agent), or
    cluster_audit: ClusterAudit | None = None  # a cluster audit (operator, from API objects)
    guidance: str | None = None  # how a person checks a manual rule
    remediation: str
    # Absent components: when the audited component is not running on the node the rule is
    # not-applicable; when the file is absent, ``missing_file`` says what that means.
    missing_file: Literal["not-applicable", "fail"] = "not-applicable"
    # Set by a platform variant: the control cannot apply on this platform (the reason why), or
    # the provider of a hosted control plane owns it (a link to the provider's statement of its
    # responsibility); either way the finding is not-applicable, never a pass or a fail.
    not_applicable: str | None = None
    provider_managed: str | None = None

    def __post_init__(self) -> None:
        _pattern(self.id, _RULE_ID, "rule id")
        _pattern(self.section, _SECTION, f"rule {self.id}: section")
        if not self.targets:
            raise ValueError(f"rule {self.id}: targets must name at least one target")
        if self.audit is None and self.cluster_audit is None and not self.guidance:
            raise ValueError(f"rule {self.id}: a rule without an audit needs guidance")
        if self.scored and self.audit is None and Target.CLUSTER not in self.targets:
            raise ValueError(f"rule {self.id}: an automated node rule needs an audit")
        if self.cluster_audit is not None and self.targets != [Target.CLUSTER]:
            raise ValueError(f"rule {self.id}: a cluster audit needs targets [cluster]")
        if self.audit is not None and Target.CLUSTER in self.targets:
            raise ValueError(f"rule {self.id}: a node audit cannot target the cluster")
        if isinstance(self.cluster_audit, EvidenceAudit) and not self.guidance:
            raise ValueError(f"rule {self.id}: an evidence rule needs guidance for the person who judges")
        numbered = _NUMBERED.match(self.id)
        if numbered and not self.id.startswith(self.section + ".") and self.id != self.section:
            raise ValueError(f"rule {self.id} is not in section {self.section}")


@dataclass(frozen=True, kw_only=True)
class SectionFile:
    """One YAML data file: a top-level section and its rules."""

    __pydantic_config__ = _STRICT
    benchmark: str
    section: str
    title: str
    rules: list[Rule]

    def __post_init__(self) -> None:
        _pattern(self.section, _TOP_SECTION, "section")


@dataclass(frozen=True, kw_only=True)
class Benchmark:
    """Loaded benchmark: ``benchmark.yaml`` metadata plus its section files."""

    __pydantic_config__ = _STRICT
    id: str
    title: str
    version: str
    variables: dict[str, str] = field(default_factory=dict)
    sections: dict[str, str] = field(default_factory=dict)  # section id → title
    rules: list[Rule]
    rule_ids: str = NUMBERED_ID  # the pattern every rule id of this benchmark matches
    # who legitimately holds what cluster rules look for (defaults; a profile may replace them)
    expected_holders: list[ExpectedHolder] = field(default_factory=list)
    # subject names never treated as expected holders, whatever entry matches (system:authenticated)
    never_expected: list[str] = field(default_factory=list)
    platform: str = "generic"
    base: str | None = None  # the benchmark a platform variant derives from
    responsibility: str | None = None  # hosted: the provider's shared-responsibility statement
    # host directories, outside the ones every audit Pod mounts, where every node of ``platform``
    # keeps files the rules read (GKE: /home/kubernetes); mounted on the nodes that show it
    host_directories: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        scheme = re.compile(self.rule_ids)
        bad = [r.id for r in self.rules if not scheme.fullmatch(r.id)]
        if bad:
            raise ValueError(f"rule ids {', '.join(bad)} do not match {self.rule_ids}")
        check_host_directories(self.host_directories)


# never a platform's host directory: kernel interfaces, devices, the runtimes' sockets
_NOT_HOST_DIRECTORIES = ("/proc", "/sys", "/dev", "/run", "/var/run")


def check_host_directories(directories: list[str]) -> None:
    for directory in directories:
        if not _HOST_DIRECTORY.match(directory) or len(directory) > 58:
            raise ValueError(
                f"host directory {directory!r}: an absolute path of lower-case letters, digits, '.' "
                "and '-', no '.' or '..' part, at most 58 characters"
            )
        if any(directory == d or directory.startswith(d + "/") for d in _NOT_HOST_DIRECTORIES):
            raise ValueError(f"host directory {directory!r}: never mounted in an audit Pod")


# ---- building models from data that was validated before (the compiled catalog) ------------------


def audit_from_dict(data: dict[str, Any]) -> Audit:
    """An audit from its JSON form (``type`` tag plus fields); nested audits and refs built too."""
    kind = data["type"]
    if kind in ("all", "any"):
        return AUDIT_TYPES[kind](audits=[audit_from_dict(a) for a in data["audits"]])  # type: ignore[call-arg]
    fields = {k: v for k, v in data.items() if k != "type"}
    if "file" in fields:
        ref = dict(fields["file"])
        if ref.get("component") is not None:
            ref["component"] = Component(ref["component"])
        fields["file"] = FileRef(**ref)
    if "component" in fields:
        fields["component"] = Component(fields["component"])
    if "test" in fields:
        fields["test"] = Test(op=Op(fields["test"]["op"]), value=fields["test"].get("value"))
    if fields.get("structured") is not None:
        fields["structured"] = StructuredKey(**fields["structured"])
    return AUDIT_TYPES[kind](**fields)


def cluster_audit_from_dict(data: dict[str, Any]) -> ClusterAudit:
    """A cluster audit from its JSON form (``type`` tag plus fields)."""
    fields = {k: v for k, v in data.items() if k != "type"}
    match data["type"]:
        case "rbac":
            for key in ("any_of", "all_of"):
                fields[key] = [Permission(**p) for p in fields.get(key, [])]
            return RbacAudit(**fields)
        case "pod":
            return PodAudit(check=PodCheck(fields["check"]))
        case "pss":
            return PssAudit(check=PssCheck(fields["check"]), level=fields["level"])
        case "objects":
            ignore = [ObjectName(**o) for o in fields.get("ignore", [])]
            return ObjectsAudit(check=ObjectsCheck(fields["check"]), ignore=ignore)
        case "evidence":
            return EvidenceAudit(collect=EvidenceKind(fields["collect"]))
    raise ValueError(f"unknown cluster audit type {data['type']!r}")


def rule_from_dict(data: dict[str, Any]) -> Rule:
    fields = dict(data)
    fields["severity"] = Severity(fields["severity"])
    fields["targets"] = [Target(t) for t in fields["targets"]]
    if fields.get("audit") is not None:
        fields["audit"] = audit_from_dict(fields["audit"])
    if fields.get("cluster_audit") is not None:
        fields["cluster_audit"] = cluster_audit_from_dict(fields["cluster_audit"])
    return Rule(**fields)


def to_plain(value: Any) -> Any:
    """A model as JSON data: fields left at their defaults are omitted, except an audit's ``type``."""
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is None:
        return value
    out: dict[str, Any] = {}
    for name, f in fields.items():
        item = getattr(value, name)
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        if name == "type" or default is MISSING or item != default:
            out[name] = to_plain(item)
    return out
