"""The input of cluster evaluation: API objects, parsed once into small frozen shapes.

The operator (or a test) hands plain decoded objects, as the API returns them, to
:meth:`Inventory.build`. Nothing here talks to the API server. Objects of kinds no rule reads are
kept only as references (for the default-namespace check). A malformed field reads as absent;
an object without a kind or name is skipped and counted in ``Inventory.skipped``.

Kinds read: ClusterRole, Role, ClusterRoleBinding, RoleBinding, ServiceAccount, Namespace,
NetworkPolicy, Pod, the workload controllers (Deployment, StatefulSet, DaemonSet, ReplicaSet,
Job, CronJob, ReplicationController), Validating/MutatingWebhookConfiguration,
ValidatingAdmissionPolicy(Binding) and anything else as a reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from plumbob.engine.findings import ObjectRef

Raw = Mapping[str, Any]

# (apiVersion, plural, kind) the operator lists for the cluster rules. Never Secrets or ConfigMaps.
API_KINDS: tuple[tuple[str, str, str], ...] = (
    ("v1", "namespaces", "Namespace"),
    ("v1", "pods", "Pod"),
    ("v1", "serviceaccounts", "ServiceAccount"),
    ("v1", "services", "Service"),
    ("v1", "replicationcontrollers", "ReplicationController"),
    ("apps/v1", "deployments", "Deployment"),
    ("apps/v1", "statefulsets", "StatefulSet"),
    ("apps/v1", "daemonsets", "DaemonSet"),
    ("apps/v1", "replicasets", "ReplicaSet"),
    ("batch/v1", "jobs", "Job"),
    ("batch/v1", "cronjobs", "CronJob"),
    ("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "roles", "Role"),
    ("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    ("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy"),
    ("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io/v1", "validatingadmissionpolicies", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io/v1",
        "validatingadmissionpolicybindings",
        "ValidatingAdmissionPolicyBinding",
    ),
)
WORKLOAD_TEMPLATES: dict[str, tuple[str, ...]] = {
    # kind → path from the object to its pod template
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one (malformed input reads as absent)."""
    return value if isinstance(value, Mapping) else {}


def items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in items(value) if isinstance(v, str))


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def dig(obj: Any, *path: str) -> Any:
    for key in path:
        obj = mapping(obj).get(key)
    return obj


@dataclass(frozen=True)
class Owner:
    kind: str
    name: str
    controller: bool


@dataclass(frozen=True)
class Meta:
    ref: ObjectRef
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    owners: tuple[Owner, ...]

    @property
    def namespace(self) -> str | None:
        return self.ref.namespace

    @property
    def name(self) -> str:
        return self.ref.name

    @classmethod
    def parse(cls, obj: Raw) -> Meta | None:
        meta = mapping(obj.get("metadata"))
        kind, name = text(obj.get("kind")), text(meta.get("name"))
        if not kind or not name:
            return None
        owners = tuple(
            Owner(kind=o["kind"], name=o["name"], controller=o.get("controller") is True)
            for o in items(meta.get("ownerReferences"))
            if isinstance(o, Mapping) and isinstance(o.get("kind"), str) and isinstance(o.get("name"), str)
        )
        return cls(
            ref=ObjectRef(
                api_version=text(obj.get("apiVersion")) or "v1",
                kind=kind,
                namespace=text(meta.get("namespace")) or None,
                name=name,
            ),
            labels={k: v for k, v in mapping(meta.get("labels")).items() if isinstance(v, str)},
            annotations={k: v for k, v in mapping(meta.get("annotations")).items() if isinstance(v, str)},
            owners=owners,
        )


# ---- RBAC ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyRule:
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: Any) -> PolicyRule:
        r = mapping(raw)
        return cls(
            api_groups=strings(r.get("apiGroups")),
            resources=strings(r.get("resources")),
            verbs=strings(r.get("verbs")),
            resource_names=strings(r.get("resourceNames")),
        )

    def __str__(self) -> str:
        groups = ",".join(g or '""' for g in self.api_groups)
        names = f" names={','.join(self.resource_names)}" if self.resource_names else ""
        resources, verbs = ",".join(self.resources), ",".join(self.verbs)
        return f"apiGroups=[{groups}] resources=[{resources}] verbs=[{verbs}]{names}"


@dataclass(frozen=True)
class LabelSelector:
    match_labels: Mapping[str, str]
    expressions: tuple[tuple[str, str, tuple[str, ...]], ...]  # key, operator, values

    @classmethod
    def parse(cls, raw: Any) -> LabelSelector:
        r = mapping(raw)
        exprs = tuple(
            (str(e.get("key", "")), str(e.get("operator", "")), strings(e.get("values")))
            for e in items(r.get("matchExpressions"))
            if isinstance(e, Mapping)
        )
        labels = {k: v for k, v in mapping(r.get("matchLabels")).items() if isinstance(v, str)}
        return cls(match_labels=labels, expressions=exprs)

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for key, op, values in self.expressions:
            if op == "In" and labels.get(key) not in values:
                return False
            if op == "NotIn" and key in labels and labels[key] in values:
                return False
            if op == "Exists" and key not in labels:
                return False
            if op == "DoesNotExist" and key in labels:
                return False
            if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
                return False  # an unknown operator selects nothing, as the API server would refuse it
        return True


@dataclass(frozen=True)
class Role:
    """A Role or ClusterRole; ``aggregation`` holds a ClusterRole's aggregationRule selectors."""

    meta: Meta
    rules: tuple[PolicyRule, ...]
    aggregation: tuple[LabelSelector, ...] = ()


@dataclass(frozen=True)
class Subject:
    kind: str  # User, Group or ServiceAccount
    name: str
    namespace: str | None = None

    @property
    def key(self) -> str:
        """The subject as matched by expected holders: ``namespace/name`` for a ServiceAccount."""
        return f"{self.namespace}/{self.name}" if self.kind == "ServiceAccount" else self.name

    @property
    def username(self) -> str:
        if self.kind == "ServiceAccount":
            return f"system:serviceaccount:{self.namespace}:{self.name}"
        return self.name

    def __str__(self) -> str:
        return f"{self.kind} {self.key}"


@dataclass(frozen=True)
class Binding:
    """A RoleBinding (``meta.namespace`` set) or ClusterRoleBinding."""

    meta: Meta
    role_kind: str
    role_name: str
    subjects: tuple[Subject, ...]


# ---- workloads and the rest ------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """A Pod or a workload controller's pod template: what the pod checks read."""

    meta: Meta  # the Pod or the controller
    spec: Mapping[str, Any]  # the pod spec
    pod_annotations: Mapping[str, str]  # the Pod's or the template's annotations


@dataclass(frozen=True)
class ServiceAccount:
    meta: Meta
    automount: bool | None


@dataclass
class Inventory:
    roles: dict[tuple[str | None, str], Role] = field(default_factory=dict)  # (namespace|None, name)
    bindings: list[Binding] = field(default_factory=list)
    pods: list[Workload] = field(default_factory=list)
    controllers: list[Workload] = field(default_factory=list)
    service_accounts: list[ServiceAccount] = field(default_factory=list)
    namespaces: dict[str, Meta] = field(default_factory=dict)
    network_policies: list[Meta] = field(default_factory=list)
    webhooks: list[Meta] = field(default_factory=list)  # admission webhooks and admission policies
    others: list[Meta] = field(default_factory=list)
    skipped: int = 0

    @classmethod
    def build(cls, objects: Iterable[Raw]) -> Inventory:
        inv = cls()
        for obj in objects:
            if not isinstance(obj, Mapping):
                inv.skipped += 1
                continue
            meta = Meta.parse(obj)
            if meta is None:
                inv.skipped += 1
                continue
            inv.add(meta, obj)
        return inv

    def add(self, meta: Meta, obj: Raw) -> None:
        kind = meta.ref.kind
        if kind in ("Role", "ClusterRole"):
            scope = meta.namespace if kind == "Role" else None
            aggregation = tuple(
                LabelSelector.parse(s) for s in items(dig(obj, "aggregationRule", "clusterRoleSelectors"))
            )
            rules = tuple(PolicyRule.parse(r) for r in items(obj.get("rules")))
            self.roles[(scope, meta.name)] = Role(meta, rules, aggregation)
        elif kind in ("RoleBinding", "ClusterRoleBinding"):
            self.bindings.append(_binding(meta, obj))
        elif kind == "Pod":
            self.pods.append(Workload(meta, mapping(obj.get("spec")), meta.annotations))
        elif kind in WORKLOAD_TEMPLATES:
            template = dig(obj, *WORKLOAD_TEMPLATES[kind])
            annotations = {
                k: v
                for k, v in mapping(dig(template, "metadata", "annotations")).items()
                if isinstance(v, str)
            }
            self.controllers.append(Workload(meta, mapping(dig(template, "spec")), annotations))
            self.others.append(meta)
        elif kind == "ServiceAccount":
            automount = obj.get("automountServiceAccountToken")
            self.service_accounts.append(
                ServiceAccount(meta, automount if isinstance(automount, bool) else None)
            )
            self.others.append(meta)
        elif kind == "Namespace":
            self.namespaces[meta.name] = meta
        elif kind == "NetworkPolicy":
            self.network_policies.append(meta)
            self.others.append(meta)
        elif kind in (
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ):
            self.webhooks.append(meta)
        else:
            self.others.append(meta)
        if kind == "Pod" or kind in ("Role", "RoleBinding"):
            self.others.append(meta)

    def role(self, kind: str, name: str, namespace: str | None) -> Role | None:
        return self.roles.get((namespace if kind == "Role" else None, name))

    def workloads(self) -> Iterator[Workload]:
        """Workloads to check, each once: controllers whose owner is absent, and standalone Pods.

        A Pod owned by a controller in the inventory is checked through the controller's template
        (a Deployment of 100 replicas is one finding), unless the Pod carries ephemeral containers,
        which only Pods have. A ReplicaSet owned by a Deployment, or a Job owned by a CronJob, is
        likewise covered by its owner.
        """
        present = {(c.meta.namespace, c.meta.ref.kind, c.meta.name) for c in self.controllers}

        def covered(w: Workload) -> bool:
            return any(o.controller and (w.meta.namespace, o.kind, o.name) in present for o in w.meta.owners)

        for c in self.controllers:
            if not covered(c):
                yield c
        for p in self.pods:
            if not covered(p) or items(p.spec.get("ephemeralContainers")):
                yield p


def _binding(meta: Meta, obj: Raw) -> Binding:
    ref = mapping(obj.get("roleRef"))
    subjects = []
    for raw in items(obj.get("subjects")):
        s = mapping(raw)
        kind, name = text(s.get("kind")), text(s.get("name"))
        if not kind or not name:
            continue
        namespace = text(s.get("namespace")) or (meta.namespace if kind == "ServiceAccount" else None)
        subjects.append(Subject(kind, name, namespace if kind == "ServiceAccount" else None))
    return Binding(meta, text(ref.get("kind")) or "", text(ref.get("name")) or "", tuple(subjects))
