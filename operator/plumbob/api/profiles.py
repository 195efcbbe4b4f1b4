"""``ComplianceProfile`` (cluster-scoped): a benchmark tailored to one environment.

Written by people or GitOps; the operator writes only ``status``. A profile says *what* is
checked; a ``ComplianceSchedule`` says *when*.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from plumbob.api.common import (
    AGE,
    DNS_LABEL,
    MAX_PROFILE_NAME,
    MAX_TEXT,
    SET,
    Conditions,
    Count,
    CrdInfo,
    LabelSelector,
    Matching,
    Model,
    NonBlankText,
    ObjectName,
    Resource,
    RuleGlob,
    Severity,
    Spec,
    Summary,
    Toleration,
    cel,
    column,
    ready_column,
    unique,
    validations,
)


class Platform(StrEnum):
    """Where the cluster runs. ``auto`` detects it from the nodes and the API."""

    AUTO = "auto"
    GENERIC = "generic"
    K3S = "k3s"
    RKE2 = "rke2"
    EKS = "eks"
    GKE = "gke"
    AKS = "aks"


class NodeRole(StrEnum):
    CONTROL_PLANE = "control-plane"
    ETCD = "etcd"
    WORKER = "worker"


BenchmarkVersion = Annotated[
    str,
    Field(min_length=1, max_length=16),
    Matching(
        "^(auto|[0-9]+[.][0-9]+([.][0-9]+)?)$",
        "version is 'auto' (chosen from the cluster's Kubernetes version) or a benchmark version "
        "such as '1.12' or '1.10.0'",
    ),
]

VariableName = "^[A-Za-z_][A-Za-z0-9_]*$"
_VARIABLES_MESSAGE = (
    "variable names are identifiers as used in the benchmark's rules: letters, digits and '_', "
    "not starting with a digit (for example 'audit_log_maxage')"
)


class Benchmark(Spec):
    """Which benchmark, which version of it and which platform variant."""

    name: Literal["cis-kubernetes"] = Field(description="the benchmark; only cis-kubernetes so far")
    version: BenchmarkVersion = Field(
        default="auto", description="'auto' (from the cluster's Kubernetes version) or pinned, e.g. '1.12'"
    )
    platform: Platform = Field(default=Platform.AUTO, description="platform variant; 'auto' detects it")


class ManualRule(Spec):
    """A rule the environment cannot check automatically: reported as ``manual`` with the rationale."""

    rule: RuleGlob = Field(description="rule id or glob")
    rationale: NonBlankText = Field(
        description="why this rule is decided by a person here (shown to auditors)"
    )


class RuleSelection(Spec):
    """Which of the benchmark's rules the profile evaluates.

    A rule is evaluated when it matches an ``include`` pattern and no ``exclude`` pattern.
    Rules matched by ``manual`` are still reported, as ``manual`` with the rationale.
    """

    include: Annotated[list[RuleGlob], Field(min_length=1, max_length=256)] = Field(
        default_factory=lambda: ["*"], description="rule ids or globs; default: every rule ('*')"
    )
    exclude: Annotated[list[RuleGlob], Field(max_length=256)] = Field(
        default_factory=list, description="rule ids or globs left out"
    )
    manual: Annotated[list[ManualRule], Field(max_length=256)] = Field(
        default_factory=list, description="rules forced to manual, each with a rationale"
    )


class ResourceMatch(Spec):
    """Which API objects a custom rule inspects."""

    api_version: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^([a-z0-9.-]+/)?v[0-9a-z]+$")]
    kind: Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Z][A-Za-z0-9]*$")]
    namespaces: Annotated[list[ObjectName], Field(max_length=64)] = Field(
        default_factory=list, description="only objects in these namespaces; empty: all"
    )


class CustomRule(Spec):
    """A cluster-level rule of the profile's own, evaluated by the operator with CEL.

    ``expression`` sees the object as ``object`` and must be true for a compliant object; every
    object for which it is false is a failing finding.
    """

    id: Annotated[
        str,
        Field(min_length=1, max_length=64),
        Matching(
            "^custom[.][a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
            "custom rule ids start with 'custom.' followed by lowercase letters, digits, '-' and '.' "
            "(for example 'custom.no-default-namespace'), so they never clash with benchmark rule ids",
        ),
    ]
    title: Annotated[str, Field(min_length=1, max_length=256)]
    severity: Severity = Severity.MEDIUM
    match: ResourceMatch
    expression: Annotated[str, Field(min_length=1, max_length=4096)]
    message: Annotated[str, Field(max_length=MAX_TEXT)] = Field(
        default="", description="what a failing object's finding says; default: 'the expression is false'"
    )
    remediation: Annotated[str, Field(max_length=MAX_TEXT)] = ""


class PodSecurity(Spec):
    """The Pod Security Standards (``pss-baseline`` or ``pss-restricted``), evaluated per workload
    beside the benchmark's cluster rules; the profile's ``rules.exclude`` globs still apply."""

    level: Literal["baseline", "restricted"]
    version: Annotated[
        str,
        Field(min_length=1, max_length=16),
        Matching(
            "^(auto|latest|v1[.][0-9]+)$",
            "version is 'auto' (each namespace's pod-security.kubernetes.io/enforce-version label, else "
            "the cluster's minor version), 'latest', or a policy version such as 'v1.33'",
        ),
    ] = Field(default="auto", description="policy version the checks follow")


class ExpectedHolder(Spec):
    """Who or what legitimately holds what a cluster rule looks for (the built-in cluster-admin
    binding, ``system:`` controllers, kube-system add-ons). A finding every given field matches
    (globs) is listed as expected with ``reason`` instead of failing; it is never hidden."""

    rules: Annotated[list[RuleGlob], Field(min_length=1, max_length=32)] = Field(
        description="rule ids or globs this entry applies to"
    )
    reason: NonBlankText
    subject_kind: Literal["User", "Group", "ServiceAccount"] | None = None
    subject: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        default=None, description="subject name glob; a ServiceAccount is 'namespace/name'"
    )
    binding: Annotated[str, Field(min_length=1, max_length=253)] | None = Field(
        default=None, description="(Cluster)RoleBinding name glob"
    )
    role: Annotated[str, Field(min_length=1, max_length=253)] | None = Field(
        default=None, description="(Cluster)Role name glob"
    )
    namespace: Annotated[str, Field(min_length=1, max_length=63)] | None = Field(
        default=None, description="namespace glob of the object at fault"
    )

    @model_validator(mode="after")
    def _matches_something(self) -> ExpectedHolder:
        if not any((self.subject_kind, self.subject, self.binding, self.role, self.namespace)):
            raise ValueError(_HOLDER_MESSAGE)
        return self


_HOLDER_MESSAGE = "an expected holder names a subjectKind, subject, binding, role or namespace"


class ComplianceProfileSpec(Spec):
    """What the cluster must comply with: a benchmark tailored to this environment (rules included,
    excluded or forced to manual, variables), the nodes it applies to, and the tolerations its
    audit Pods need.
    """

    benchmark: Benchmark
    rules: RuleSelection = Field(default_factory=RuleSelection)
    variables: Annotated[
        dict[str, Annotated[str, Field(max_length=MAX_TEXT)]],
        Field(
            max_length=64,
            json_schema_extra=validations(
                cel(f"self.all(k, k.matches('{VariableName}'))", _VARIABLES_MESSAGE)
            ),
        ),
    ] = Field(default_factory=dict, description="overrides of benchmark variables, by name")

    @field_validator("variables")
    @classmethod
    def _variable_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(k for k in value if not re.fullmatch(VariableName, k))
        if bad:
            raise ValueError(f"{', '.join(bad)}: {_VARIABLES_MESSAGE}")
        return value

    node_selector: LabelSelector | None = Field(
        default=None, description="audit only the nodes with these labels; default: all nodes"
    )
    node_roles: Annotated[
        list[NodeRole], Field(max_length=3, json_schema_extra=SET), AfterValidator(unique)
    ] = Field(
        default_factory=list,
        description="audit only nodes with these roles (from node-role.kubernetes.io/* labels; "
        "nodes with no control-plane or etcd role are workers); default: all roles",
    )
    tolerations: Annotated[list[Toleration], Field(max_length=32)] = Field(
        default_factory=list,
        description="tolerations for the audit Pods; nodes whose taints these do not tolerate are "
        "recorded as unschedulable, never left with a pending Pod",
    )
    custom_rules: Annotated[
        list[CustomRule],
        Field(
            max_length=64,
            json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"]},
        ),
    ] = Field(default_factory=list, description="cluster-level rules of this profile's own")
    pod_security: PodSecurity | None = Field(
        default=None, description="also evaluate the Pod Security Standards at this level"
    )
    expected_holders: Annotated[
        list[Annotated[
            ExpectedHolder,
            Field(json_schema_extra=validations(cel(
                "has(self.subjectKind) || has(self.subject) || has(self.binding) || has(self.role) "
                "|| has(self.namespace)", _HOLDER_MESSAGE,
            ))),
        ]],
        Field(max_length=64),
    ] | None = Field(
        default=None,
        description="replaces the benchmark's list of expected holders for cluster rules (an empty "
        "list: nothing is expected); absent: the benchmark's defaults",
    )  # fmt: skip


class ResolvedBenchmark(Model):
    """The benchmark actually used, after ``auto`` was resolved."""

    id: Annotated[str, Field(max_length=64)] = Field(description="data set id, e.g. 'cis-1.12'")
    name: Annotated[str, Field(max_length=64)]
    version: Annotated[str, Field(max_length=16)]
    platform: Platform
    platform_reason: Annotated[str, Field(max_length=256)] | None = Field(
        default=None, description="why this platform: set in the profile, or what detection saw"
    )
    kubernetes_version: Annotated[str, Field(max_length=64)] | None = None
    rules: Count = Field(default=0, description="rules evaluated after tailoring")


class ScanRef(Model):
    name: ObjectName
    start_time: datetime | None = None
    completion_time: datetime | None = None


class DriftCounters(Model):
    """Drift found by the last scan, compared with the scan before it (not cumulative)."""

    regressions: Count = Field(default=0, description="(rule, node) results that went from pass to fail")
    restorations: Count = Field(default=0, description="(rule, node) results that went from fail to pass")
    last_regression_time: datetime | None = Field(
        default=None, description="when a scan last found a regression"
    )


class Coverage(Model):
    """Rules of the last scan by how they were decided: tested on the nodes, attested by the
    provider of a hosted control plane (not-applicable, "managed by the provider"), judged by a
    person (manual), or not applicable here."""

    tested: Count = 0
    provider_managed: Count = 0
    manual: Count = 0
    not_applicable: Count = 0


class CveExposure(Model):
    """A running Kubernetes component exposed to a known CVE, or behind on patches."""

    cve: Annotated[str, Field(max_length=32)] = Field(
        description="CVE id, or 'patch-level': an older patch than the newest known of its minor"
    )
    component: Annotated[str, Field(max_length=32)]
    where: Annotated[str, Field(max_length=256)] = Field(description="'API server' or the node's name")
    running: Annotated[str, Field(max_length=64)]
    fixed: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="first fixed version in the running minor; for patch-level the newest patch"
    )
    severity: Annotated[str, Field(max_length=16)]
    reference: Annotated[str, Field(max_length=512)] | None = None


class KubernetesCves(Model):
    """Known Kubernetes CVEs the API server and the profile's nodes (kubelet, kube-proxy) are
    exposed to, from the CVE data in use: shipped with Plumbob, or a ConfigMap's."""

    data_version: Annotated[str, Field(max_length=64)]
    data_published: Annotated[str, Field(max_length=32)] = Field(description="date the CVE data was made")
    source: Annotated[str, Field(max_length=256)] = Field(description="'package' or the ConfigMap's name")
    data_status: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None, description="why a replacement was refused (the previous data stays in use)"
    )
    exposure_count: Count = 0
    exposures: Annotated[list[CveExposure], Field(max_length=100)] = Field(
        default_factory=list, description="the first 100, most severe first"
    )


class ComplianceProfileStatus(Model):
    observed_generation: int | None = Field(default=None, ge=0)
    resolved_benchmark: ResolvedBenchmark | None = None
    last_scan: ScanRef | None = None
    summary: Summary | None = Field(
        default=None, description="per-rule results of the last scan with exceptions applied"
    )
    score: Annotated[float, Field(ge=0, le=100)] | None = Field(
        default=None,
        description="percent of decided rules that comply: (pass+excepted)/(pass+excepted+fail+error)",
    )
    coverage: Coverage | None = None
    kubernetes_cves: KubernetesCves | None = None
    drift: DriftCounters | None = None
    last_rescan: Annotated[str, Field(max_length=256)] | None = Field(
        default=None, description="value of the plumbob.dev/rescan annotation last acted on"
    )
    conditions: Conditions = Field(default_factory=list)


class ComplianceProfile(Resource):
    """What the cluster must comply with: a benchmark tailored to the environment."""

    CRD: ClassVar[CrdInfo] = CrdInfo(
        plural="complianceprofiles",
        singular="complianceprofile",
        short_names=["cprof"],
        namespaced=False,
        printer_columns=[
            column("Benchmark", "string", ".status.resolvedBenchmark.id", "benchmark data set in use"),
            column("Score", "number", ".status.score", "percent of decided rules that comply"),
            column("Pass", "integer", ".status.summary.pass", "rules passing in the last scan"),
            column("Fail", "integer", ".status.summary.fail", "rules failing in the last scan"),
            column("Excepted", "integer", ".status.summary.excepted", "failing rules under an exception", 1),
            column("Last Scan", "date", ".status.lastScan.completionTime", "when the last scan completed"),
            column(
                "Compliant",
                "string",
                '.status.conditions[?(@.type=="Compliant")].status',
                "True only when something was checked and no rule fails",
            ),
            ready_column(),
            AGE,
        ],
        root_validations=[
            cel(
                "self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') "
                f"&& size(self.metadata.name) <= {MAX_PROFILE_NAME}",
                f"metadata.name of a profile must be a lowercase DNS label of at most {MAX_PROFILE_NAME} "
                "characters (letters, digits and '-', no dots): it is used in the names of its scans, "
                "audit Jobs and reports",
            ),
        ],
    )

    kind: Literal["ComplianceProfile"] = "ComplianceProfile"
    spec: ComplianceProfileSpec
    status: ComplianceProfileStatus | None = None

    @model_validator(mode="after")
    def _name_fits(self) -> ComplianceProfile:
        name = self.metadata.name
        if name and (len(name) > MAX_PROFILE_NAME or not re.fullmatch(DNS_LABEL, name)):
            raise ValueError(self.CRD.root_validations[0]["message"])
        return self
