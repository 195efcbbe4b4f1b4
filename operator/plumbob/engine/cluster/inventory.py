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

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from sys import intern
from typing import Any, TypeVar

from plumbob.engine.findings import ObjectRef

Raw = Mapping[str, Any]
T = TypeVar("T")

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


def _short(value: str) -> str:
    return intern(value) if len(value) <= 64 else value


def lean(value: Any) -> Any:
    """``value`` (decoded JSON) with its keys and short strings interned: a kept inventory holds
    thousands of pod specs whose keys ("securityContext", "imagePullPolicy"…) and many values are
    the same, and a decoder makes a copy of each per object (a third of the memory here)."""
    if isinstance(value, Mapping):
        return {intern(k) if isinstance(k, str) else k: lean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lean(v) for v in value]
    if isinstance(value, str):
        return _short(value)
    return value


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
            labels={
                intern(k): _short(v) for k, v in mapping(meta.get("labels")).items() if isinstance(v, str)
            },
            annotations={
                intern(k): _short(v)
                for k, v in mapping(meta.get("annotations")).items()
                if isinstance(v, str)
            },
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


# what an object's kind changes, for results kept per group of kinds (see Inventory.versions)
GROUPS: dict[str, str] = {
    "Role": "rbac",
    "ClusterRole": "rbac",
    "RoleBinding": "rbac",
    "ClusterRoleBinding": "rbac",
    "ServiceAccount": "rbac",
    "Namespace": "namespaces",
    "Pod": "workloads",
    **dict.fromkeys(WORKLOAD_TEMPLATES, "workloads"),
    "ValidatingWebhookConfiguration": "webhooks",
    "MutatingWebhookConfiguration": "webhooks",
    "ValidatingAdmissionPolicy": "webhooks",
    "ValidatingAdmissionPolicyBinding": "webhooks",
}  # anything else (NetworkPolicy, Service…): "others"
_WEBHOOK_KINDS = frozenset(k for k, g in GROUPS.items() if g == "webhooks")
RBAC_KINDS = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})


@dataclass
class _Results:
    outcomes: dict[ObjectRef, Any] = field(default_factory=dict)  # only the outcomes that are not None
    dirty: set[ObjectRef] | None = None  # workloads to compute again; None: every one
    ordered: list[Any] | None = None  # the outcomes in reference order, until one changes


@dataclass
class Inventory:
    """The parsed objects, keyed by reference so that one can be replaced or removed.

    An inventory can be kept between evaluations and brought up to date with :meth:`put` and
    :meth:`remove`, so that a change costs in proportion to what changed:

    - :meth:`results` keeps a per-workload computation and computes it again only for the
      workloads that changed since (or whose namespace or service accounts changed);
    - :meth:`memo_groups` keeps a whole computation while the groups of kinds it reads
      (:data:`GROUPS`: rbac, namespaces, workloads, webhooks, others) are unchanged;
    - :meth:`take_rbac_changes` tells the RBAC resolver which roles and bindings changed, so that
      it resolves only the bindings they concern again.
    """

    roles: dict[tuple[str | None, str], Role] = field(default_factory=dict)  # (namespace|None, name)
    bindings: dict[ObjectRef, Binding] = field(default_factory=dict)
    pods: dict[ObjectRef, Workload] = field(default_factory=dict)
    controllers: dict[ObjectRef, Workload] = field(default_factory=dict)
    service_accounts: dict[ObjectRef, ServiceAccount] = field(default_factory=dict)
    namespaces: dict[str, Meta] = field(default_factory=dict)
    network_policies: dict[ObjectRef, Meta] = field(default_factory=dict)
    webhooks: dict[ObjectRef, Meta] = field(default_factory=dict)  # admission webhooks and policies
    others: dict[ObjectRef, Meta] = field(default_factory=dict)
    skipped: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    _results: dict[Hashable, _Results] = field(default_factory=dict, repr=False)
    _whole: dict[Hashable, tuple[tuple[int, ...], Any]] = field(default_factory=dict, repr=False)
    _index: dict[ObjectRef, Workload] | None = field(default=None, repr=False)  # the workloads
    _in_namespace: dict[str, set[ObjectRef]] = field(default_factory=dict, repr=False)  # pods, controllers
    _index_before: set[ObjectRef] | None = field(default=None, repr=False)
    _controllers_present: set[tuple[str | None, str, str]] | None = field(default=None, repr=False)
    _others_by_namespace: dict[str, dict[ObjectRef, Meta]] = field(default_factory=dict, repr=False)
    _others_by_kind: dict[str, dict[ObjectRef, Meta]] = field(default_factory=dict, repr=False)
    # the roles and bindings changed since the RBAC resolver last asked; None: too many to list
    _rbac_changes: set[ObjectRef] | None = field(default_factory=set, repr=False)

    @classmethod
    def build(cls, objects: Iterable[Raw]) -> Inventory:
        inv = cls()
        for obj in objects:
            inv.put(obj)
        return inv

    def put(self, obj: Raw) -> ObjectRef | None:
        """Add or replace one object; its reference, or None when it is skipped (no kind or name)."""
        meta = Meta.parse(obj) if isinstance(obj, Mapping) else None
        if meta is None:
            self.skipped += 1
            return None
        self.remove(meta.ref)
        self._add(meta, obj)
        if meta.ref in self.others:
            self._others_by_namespace.setdefault(meta.namespace or "", {})[meta.ref] = meta
            self._others_by_kind.setdefault(meta.ref.kind, {})[meta.ref] = meta
        return meta.ref

    def remove(self, ref: ObjectRef) -> None:
        """Forget the object ``ref`` names, if it is held."""
        self._others_by_namespace.get(ref.namespace or "", {}).pop(ref, None)
        self._others_by_kind.get(ref.kind, {}).pop(ref, None)
        kind = ref.kind
        if kind in ("Role", "ClusterRole"):
            key = (ref.namespace if kind == "Role" else None, ref.name)
            if key not in self.roles or self.roles[key].meta.ref != ref:
                return
            del self.roles[key]
            self.others.pop(ref, None)
        elif kind == "Namespace":
            if self.namespaces.pop(ref.name, None) is None:
                return
        else:
            held: tuple[dict[ObjectRef, Any], ...] = (
                self.bindings,
                self.pods,
                self.controllers,
                self.service_accounts,
                self.network_policies,
                self.webhooks,
                self.others,
            )
            if not [d.pop(ref) for d in held if ref in d]:
                return
        self._changed(ref, added=False)

    def _changed(self, ref: ObjectRef, *, added: bool) -> None:
        group = GROUPS.get(ref.kind, "others")
        self.versions[group] = self.versions.get(group, 0) + 1
        if ref.kind in RBAC_KINDS and self._rbac_changes is not None:
            self._rbac_changes.add(ref)
            if len(self._rbac_changes) > 10_000:  # nobody asked for a long time: resolve all again
                self._rbac_changes = None
        if group == "workloads":
            if ref.kind != "Pod":
                self._index = None  # which Pods are workloads may have changed too: decide again
                self._controllers_present = None
            elif self._index is not None:  # a Pod: only itself may become or stop being a workload
                pod = self.pods.get(ref) if added else None
                self._index.pop(ref, None)
                assert self._index_before is not None  # set with the index
                self._index_before.discard(ref)
                if pod is not None and self._is_workload(pod, self._present()):
                    self._index[ref] = pod
                    self._index_before.add(ref)
            members = self._in_namespace.setdefault(ref.namespace or "", set())
            (members.add if added else members.discard)(ref)
            self._touch((ref,))
        elif ref.kind in ("Namespace", "ServiceAccount"):
            # what a workload's results may read besides itself: its namespace's labels, the
            # automount setting of its namespace's service accounts
            self._touch(
                self._in_namespace.get(ref.name if ref.kind == "Namespace" else ref.namespace or "", ())
            )

    def _touch(self, refs: Iterable[ObjectRef]) -> None:
        refs = tuple(refs)
        for table in self._results.values():
            if table.dirty is not None:
                table.dirty.update(refs)

    def _add(self, meta: Meta, obj: Raw) -> None:
        kind, ref = meta.ref.kind, meta.ref
        if kind in ("Role", "ClusterRole"):
            scope = meta.namespace if kind == "Role" else None
            aggregation = tuple(
                LabelSelector.parse(s) for s in items(dig(obj, "aggregationRule", "clusterRoleSelectors"))
            )
            rules = tuple(PolicyRule.parse(r) for r in items(obj.get("rules")))
            self.roles[(scope, meta.name)] = Role(meta, rules, aggregation)
            if kind == "Role":
                self.others[ref] = meta
        elif kind in ("RoleBinding", "ClusterRoleBinding"):
            self.bindings[ref] = _binding(meta, obj)
            if kind == "RoleBinding":
                self.others[ref] = meta
        elif kind == "Pod":
            self.pods[ref] = Workload(meta, lean(mapping(obj.get("spec"))), meta.annotations)
            self.others[ref] = meta
        elif kind in WORKLOAD_TEMPLATES:
            template = dig(obj, *WORKLOAD_TEMPLATES[kind])
            annotations = {
                k: v
                for k, v in mapping(dig(template, "metadata", "annotations")).items()
                if isinstance(v, str)
            }
            self.controllers[ref] = Workload(meta, lean(mapping(dig(template, "spec"))), annotations)
            self.others[ref] = meta
        elif kind == "ServiceAccount":
            automount = obj.get("automountServiceAccountToken")
            self.service_accounts[ref] = ServiceAccount(
                meta, automount if isinstance(automount, bool) else None
            )
            self.others[ref] = meta
        elif kind == "Namespace":
            self.namespaces[meta.name] = meta
        elif kind == "NetworkPolicy":
            self.network_policies[ref] = meta
            self.others[ref] = meta
        elif kind in _WEBHOOK_KINDS:
            self.webhooks[ref] = meta
        else:
            self.others[ref] = meta
        self._changed(ref, added=True)

    def results(self, key: Hashable, compute: Callable[[Workload], T | None]) -> dict[ObjectRef, T]:
        """``compute(w)`` of every workload, by reference, without the ``None`` ones.

        Kept under ``key`` between calls: only the workloads put, removed, newly covered or
        uncovered by a controller, or whose Namespace or a ServiceAccount of whose namespace
        changed, are computed again. So ``compute`` must read nothing else, and ``key`` must name
        everything else its outcome depends on (a policy version, say). The dict is the kept one:
        read it, do not change it.
        """
        index = self.workload_index()
        table = self._results.get(key)
        if table is None:
            table = self._results[key] = _Results()
        # the first time in the order results are listed in, which later sorts then find almost kept
        todo = sorted(index, key=lambda r: r.order) if table.dirty is None else table.dirty
        for ref in todo:
            w = index.get(ref)
            value = None if w is None else compute(w)
            if value is None:
                if table.outcomes.pop(ref, None) is not None:
                    table.ordered = None
            elif table.outcomes.get(ref) is not value:
                table.outcomes[ref] = value
                table.ordered = None
        table.dirty = set()
        return table.outcomes

    def ordered_results(self, key: Hashable, compute: Callable[[Workload], T | None]) -> list[T]:
        """:meth:`results` as a list in reference order (:attr:`ObjectRef.order`); the same list
        object while no outcome changed, so that what is made from it can be kept too."""
        outcomes = self.results(key, compute)
        table = self._results[key]
        if table.ordered is None:
            table.ordered = [v for _, v in sorted(outcomes.items(), key=lambda kv: kv[0].order)]
        return table.ordered

    def take_rbac_changes(self) -> set[ObjectRef] | None:
        """The roles and bindings put or removed since the last call (None: too many, or not
        known: take every one as changed); the next call starts afresh."""
        changes, self._rbac_changes = self._rbac_changes, set()
        return changes

    def kept(self, key: Hashable) -> dict[Any, Any]:
        """A dict kept under ``key`` for the caller's own memory between evaluations (bounded
        with :meth:`memo_groups`' memory: keys name settings that may change)."""
        hit = self._whole.get(("kept", key))
        if hit is None:
            if len(self._whole) >= 5000:
                self._whole.clear()
            hit = self._whole[("kept", key)] = ((), {})
        return hit[1]

    def memo_groups(self, key: Hashable, groups: tuple[str, ...], compute: Callable[[], T]) -> T:
        """``compute()``, kept while none of ``groups`` (see :data:`GROUPS`) changed."""
        return self.memo(key, tuple(self.versions.get(g, 0) for g in groups), compute)

    def memo(self, key: Hashable, stamp: tuple[int, ...], compute: Callable[[], T]) -> T:
        """``compute()``, kept while ``stamp`` (versions of what it reads) is the same."""
        hit = self._whole.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]  # type: ignore[no-any-return]
        value = compute()
        if len(self._whole) >= 5000:  # keys name settings that may change: never grow without end
            self._whole.clear()
        self._whole[key] = (stamp, value)
        return value

    def others_in(self, namespace: str) -> Iterable[Meta]:
        """The ``others`` in one namespace."""
        return self._others_by_namespace.get(namespace, {}).values()

    def others_of(self, kind: str) -> Iterable[Meta]:
        """The ``others`` of one kind."""
        return self._others_by_kind.get(kind, {}).values()

    def role(self, kind: str, name: str, namespace: str | None) -> Role | None:
        return self.roles.get((namespace if kind == "Role" else None, name))

    def workload_index(self) -> dict[ObjectRef, Workload]:
        """Workloads to check, each once: controllers whose owner is absent, and standalone Pods.

        A Pod owned by a controller in the inventory is checked through the controller's template
        (a Deployment of 100 replicas is one finding), unless the Pod carries ephemeral containers,
        which only Pods have. A ReplicaSet owned by a Deployment, or a Job owned by a CronJob, is
        likewise covered by its owner. Kept until a workload changes.
        """
        if self._index is not None:
            return self._index
        present = self._present()
        index = {ref: c for ref, c in self.controllers.items() if self._is_workload(c, present)}
        index.update((ref, p) for ref, p in self.pods.items() if self._is_workload(p, present))
        # objects that became, or stopped being, workloads without changing themselves (a Pod
        # whose controller came or went)
        if self._index_before is not None:
            self._touch(self._index_before.symmetric_difference(index))
        self._index_before = set(index)
        self._index = index
        return index

    def _present(self) -> set[tuple[str | None, str, str]]:
        """The controllers held, as (namespace, kind, name); kept until a controller changes."""
        if self._controllers_present is None:
            self._controllers_present = {
                (c.meta.namespace, c.meta.ref.kind, c.meta.name) for c in self.controllers.values()
            }
        return self._controllers_present

    @staticmethod
    def _is_workload(w: Workload, present: set[tuple[str | None, str, str]]) -> bool:
        covered = any(o.controller and (w.meta.namespace, o.kind, o.name) in present for o in w.meta.owners)
        return not covered or (w.meta.ref.kind == "Pod" and bool(items(w.spec.get("ephemeralContainers"))))

    def workloads(self) -> list[Workload]:
        return list(self.workload_index().values())


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
