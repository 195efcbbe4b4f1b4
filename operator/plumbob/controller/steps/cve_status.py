"""ComplianceProfile ``status.kubernetesCves``: the known Kubernetes CVEs the cluster's running
versions are exposed to, and which patch releases are behind.

Versions come from the API server (``/version``) and each Node the profile selects
(``status.nodeInfo.kubeletVersion`` and ``kubeProxyVersion``, the latter often empty upstream).
The CVE data (:mod:`plumbob.cves`) ships with Plumbob and can be replaced without an upgrade: the
ConfigMap :data:`CONFIGMAP` in the operator's namespace, key :data:`KEY`, is read every
:data:`REFRESH_SECONDS`. A replacement that does not validate is refused whole: the data in use
stays, and the status says why (``dataStatus``). Deleting the ConfigMap returns to the shipped data.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from plumbob.api.profiles import ComplianceProfileStatus
from plumbob.controller.context import Context, built_status
from plumbob.controller.decisions.scanning import selects
from plumbob.controller.store import Snapshot
from plumbob.cves.data import CveData, CveDataError, parse_text, shipped
from plumbob.cves.exposure import Exposure, exposures, patch_lag
from plumbob.kube import KubeError

log = logging.getLogger("plumbob.controller")

CONFIGMAP = "plumbob-kubernetes-cves"
KEY = "cves.json"
REFRESH_SECONDS = 10.0
MAX_LISTED = 100
_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


class CveSource:
    """The CVE data in use, where it came from, and why a replacement was refused, if one was."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.data: CveData = shipped()
        self.source = "package"
        self.problem: str | None = None
        self._seen: tuple[bool, str | None] = (False, None)  # (ConfigMap exists, its text) last seen
        self._next = 0.0
        # profile -> (what its status was built from, the status): see reconcile()
        self.built: dict[str, tuple[tuple[object, ...], dict[str, Any]]] = {}

    def refresh(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + REFRESH_SECONDS
        namespace = self.ctx.settings.namespace
        try:
            found = self.ctx.kube.get_configmap(namespace, CONFIGMAP)
        except KubeError as exc:
            log.warning("could not read ConfigMap %s/%s: %s", namespace, CONFIGMAP, exc)
            return
        text = None if found is None else found.get(KEY)
        if (found is not None, text) == self._seen:
            return
        self._seen = (found is not None, text)
        where = f"ConfigMap {namespace}/{CONFIGMAP}"
        if found is None:
            self.data, self.source, self.problem = shipped(), "package", None
            return
        try:
            if text is None:
                raise CveDataError(f"no key {KEY!r}")
            data = parse_text(text)
        except CveDataError as exc:
            self.problem = (
                f"{where} refused: {exc}; still using the {self.source} data "
                f"{self.data.data_version} of {self.data.published}"
            )[:1024]
            log.warning("%s", self.problem)
            return
        self.data, self.source, self.problem = data, where, None


def cluster_exposures(
    data: CveData, server_version: str, nodes: list[tuple[str, str, str]]
) -> list[Exposure]:
    """Exposures of the API server and of each (node, kubelet version, kube-proxy version)."""
    found = exposures(data, "kube-apiserver", server_version, "API server")
    lag = patch_lag(data, "kube-apiserver", server_version, "API server")
    found += [lag] if lag else []
    for name, kubelet, proxy in nodes:
        for component, version in (("kubelet", kubelet), ("kube-proxy", proxy)):
            if not version:
                continue
            found += exposures(data, component, version, name)
            lag = patch_lag(data, component, version, name)
            found += [lag] if lag else []
    return sorted(found, key=lambda e: (_SEVERITY_ORDER.get(e.severity, 9), e.cve, e.where, e.component))


def status_of(source: CveSource, found: list[Exposure]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "dataVersion": source.data.data_version,
        "dataPublished": source.data.published,
        "source": source.source,
        "exposureCount": len(found),
        "exposures": [
            {
                k: v
                for k, v in {
                    "cve": e.cve,
                    "component": e.component,
                    "where": e.where[:256],
                    "running": e.running[:64],
                    "fixed": e.fixed,
                    "severity": e.severity,
                    "reference": e.reference,
                }.items()
                if v is not None
            }
            for e in found[:MAX_LISTED]
        ],
    }
    if source.problem:
        out["dataStatus"] = source.problem
    return out


def reconcile(ctx: Context, source: CveSource, snap: Snapshot) -> float:
    """Write every profile's ``kubernetesCves``; returns when the data should be looked at again."""
    source.refresh()
    server = ctx.kubernetes_version()
    for profile in snap.profiles.values():
        # Decided again only when the data, the server's version or a node changed.
        key = (source.data, source.source, source.problem, server, snap.node_changes, profile.spec)
        cached = source.built.get(profile.metadata.name)
        if cached is not None and cached[0] == key:
            new = cached[1]
        else:
            roles = [r.value for r in profile.spec.node_roles]
            nodes = [
                (n.name, n.kubelet_version, n.kube_proxy_version)
                for n in sorted(snap.nodes.values(), key=lambda n: n.name)
                if selects(n, profile.spec.node_selector, roles)
            ]
            new = built_status(
                ComplianceProfileStatus,
                {"kubernetesCves": status_of(source, cluster_exposures(source.data, server, nodes))},
            )
            source.built[profile.metadata.name] = (key, new)
        current = profile.status.to_dict() if profile.status else {}
        ctx.patch(
            "complianceprofiles",
            profile.metadata.name,
            {"kubernetesCves": current.get("kubernetesCves")},
            new,
        )
    return REFRESH_SECONDS
