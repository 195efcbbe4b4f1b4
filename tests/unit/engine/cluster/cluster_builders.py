"""Builders of plain API objects for the cluster engine's unit tests (dicts as the API returns them)."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def meta(name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, **extra}
    if namespace:
        out["namespace"] = namespace
    return out


def namespace(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(name, labels=labels or {})}


def cluster_role(
    name: str,
    *rules: dict[str, Any],
    labels: dict[str, str] | None = None,
    aggregate: list[dict[str, Any]] | None = None,
) -> Obj:
    obj: Obj = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": meta(name, labels=labels or {}),
        "rules": list(rules),
    }
    if aggregate is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": aggregate}
    return obj


def role(name: str, ns: str, *rules: dict[str, Any]) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta(name, ns),
        "rules": list(rules),
    }


def rule(
    groups: list[str], resources: list[str], verbs: list[str], names: list[str] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"apiGroups": groups, "resources": resources, "verbs": verbs}
    if names:
        out["resourceNames"] = names
    return out


def user(name: str) -> dict[str, str]:
    return {"kind": "User", "name": name, "apiGroup": "rbac.authorization.k8s.io"}


def group(name: str) -> dict[str, str]:
    return {"kind": "Group", "name": name, "apiGroup": "rbac.authorization.k8s.io"}


def sa(name: str, ns: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": ns}


def crb(name: str, role_name: str, *subjects: dict[str, str]) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": meta(name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
        "subjects": list(subjects),
    }


def rb(name: str, ns: str, role_kind: str, role_name: str, *subjects: dict[str, str]) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta(name, ns),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
        "subjects": list(subjects),
    }


def container(name: str = "app", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "registry.example/app:1", **fields}


def hardened(name: str = "app", **fields: Any) -> dict[str, Any]:
    """A container that passes every CIS and restricted check."""
    sc = {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return container(name, securityContext=sc, **fields)


def pod(
    name: str,
    ns: str = "team",
    *containers: dict[str, Any],
    owner: tuple[str, str] | None = None,
    **spec: Any,
) -> Obj:
    m = meta(name, ns)
    if owner:
        m["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "controller": True, "uid": "u"}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": m,
        "spec": {"containers": list(containers) or [hardened()], **spec},
    }


def deployment(name: str, ns: str, *containers: dict[str, Any], **spec: Any) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, ns),
        "spec": {
            "template": {"metadata": {}, "spec": {"containers": list(containers) or [hardened()], **spec}}
        },
    }


def service_account(name: str, ns: str, automount: bool | None = None) -> Obj:
    obj: Obj = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name, ns)}
    if automount is not None:
        obj["automountServiceAccountToken"] = automount
    return obj


def network_policy(name: str, ns: str) -> Obj:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(name, ns),
        "spec": {},
    }


def service(name: str, ns: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name, ns), "spec": {}}
