"""Evidence for the rules a person decides (CIS 5.1.6, 5.1.7, 5.2.1, 5.3.1, 5.5.1, 5.6.3).

Each collector lists what the API shows; the verdict stays ``manual``. Lists are capped at
:data:`MAX_ITEMS` entries, the last one saying how many more there were.
"""

from __future__ import annotations

from collections.abc import Callable

from plumbob.benchmarks.rules import EvidenceKind
from plumbob.engine.cluster.containers import containers, pod_security
from plumbob.engine.cluster.inventory import Inventory, Workload, mapping, text
from plumbob.engine.cluster.pss import (
    ENFORCE_VERSION,
    LATEST,
    level_met,
    lowest_levels,
    namespace_pss_labels,
    parse_version,
)
from plumbob.engine.findings import Evidence, ObjectRef, Source

MAX_ITEMS = 50


def _api(subject: str, location: str = "", found: str | None = None, expected: str | None = None) -> Evidence:
    return Evidence(
        subject=subject, source=Source.API, location=location or None, found=found, expected=expected
    )


def capped(evidence: list[Evidence]) -> tuple[Evidence, ...]:
    if len(evidence) <= MAX_ITEMS:
        return tuple(evidence)
    more = len(evidence) - (MAX_ITEMS - 1)
    return (*evidence[: MAX_ITEMS - 1], _api(f"… and {more} more", found=str(more)))


def mounted_tokens(inv: Inventory) -> list[Evidence]:
    def mounted(w: Workload) -> Evidence | None:
        sa_name = text(w.spec.get("serviceAccountName")) or "default"
        pod_value = w.spec.get("automountServiceAccountToken")
        if isinstance(pod_value, bool):
            is_mounted, why = pod_value, "the pod's automountServiceAccountToken"
        else:
            sa = inv.service_accounts.get(
                ObjectRef(api_version="v1", kind="ServiceAccount", namespace=w.meta.namespace, name=sa_name)
            )
            sa_value = sa.automount if sa else None
            is_mounted = sa_value is not False
            why = f"service account {sa_name}" + (" (default: true)" if sa_value is None else "")
        if not is_mounted:
            return None
        return _api(
            str(w.meta.ref), "spec.automountServiceAccountToken", f"token of {sa_name} mounted ({why})"
        )

    return inv.ordered_results(("mounted-token",), mounted)


def system_masters(inv: Inventory) -> list[Evidence]:
    return [
        _api(f"Group {s.name}", str(b.meta.ref), f"bound to {b.role_kind} {b.role_name}")
        for b in inv.bindings.values()
        for s in b.subjects
        if s.kind == "Group" and s.name == "system:masters"
    ] + [
        _api(
            "note",
            found="client certificates with O=system:masters are issued outside the API and cannot be listed",
        )
    ]


def pod_policy(inv: Inventory) -> list[Evidence]:
    """Each namespace's pod-security labels, beside the level all its workloads meet today."""
    out = []

    def below_restricted(w: Workload) -> str | None:
        ns = inv.namespaces.get(w.meta.namespace or "")
        met = level_met(w, parse_version((ns.labels if ns else {}).get(ENFORCE_VERSION), LATEST))
        return None if met == "restricted" else met

    meets = lowest_levels(inv.namespaces, inv.results(("pss-level",), below_restricted).items())
    for name, meta in sorted(inv.namespaces.items()):
        labels = namespace_pss_labels(meta.labels)
        shown = ", ".join(
            f"{k.removeprefix('pod-security.kubernetes.io/')}={v}" for k, v in sorted(labels.items())
        )
        out.append(
            _api(
                f"Namespace {name}",
                "labels pod-security.kubernetes.io/*",
                shown or "none",
                f"workloads meet {meets[name]}",
            )
        )
    out += [_api(str(m.ref), found="admission policy or webhook") for m in inv.webhooks.values()]
    return out


def network_policy_provider(inv: Inventory) -> list[Evidence]:
    out = []
    for w in inv.controllers.values():
        if w.meta.ref.kind == "DaemonSet" and w.meta.namespace == "kube-system":
            images = [text(c.body.get("image")) or "?" for c in containers(w.spec)]
            out.append(_api(str(w.meta.ref), "spec.template.spec.containers[*].image", ", ".join(images)))
    crds = inv.others_of("CustomResourceDefinition")
    out += [_api(str(m.ref), found="custom resource definition") for m in crds if "network" in m.name]
    return out or [_api("kube-system DaemonSets", found="none found")]


def admission_webhooks(inv: Inventory) -> list[Evidence]:
    return [_api(str(m.ref), found="admission policy or webhook") for m in inv.webhooks.values()] or [
        _api("admission webhooks and policies", found="none")
    ]


def security_contexts(inv: Inventory) -> list[Evidence]:
    return inv.ordered_results(("no-security-context",), _no_security_context)


def _no_security_context(w: Workload) -> Evidence | None:
    if pod_security(w) or any(mapping(c.body.get("securityContext")) for c in containers(w.spec)):
        return None
    return _api(str(w.meta.ref), "spec.securityContext, containers[*].securityContext", "none set")


COLLECTORS: dict[EvidenceKind, Callable[[Inventory], list[Evidence]]] = {
    EvidenceKind.MOUNTED_TOKENS: mounted_tokens,
    EvidenceKind.SYSTEM_MASTERS: system_masters,
    EvidenceKind.POD_POLICY: pod_policy,
    EvidenceKind.NETWORK_POLICY_PROVIDER: network_policy_provider,
    EvidenceKind.ADMISSION_WEBHOOKS: admission_webhooks,
    EvidenceKind.SECURITY_CONTEXTS: security_contexts,
}
