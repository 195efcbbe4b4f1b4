"""Which platform a cluster or a node runs on, from what it shows of itself.

Pure functions of plain data, used by the operator (``platform: auto`` in a profile: from every
Node's labels, ``spec.providerID`` and ``status.nodeInfo.kubeletVersion``, and the API server's
version) and by ``plumbob audit --platform auto`` (from marks on the node's own file system).

Signals, strongest first; a cloud provider id alone is not enough (a self-managed cluster on
cloud machines has one too), so hosted platforms are recognised by their own labels or version
suffixes:

==========  ===================================================================================
k3s         version suffix ``+k3s`` (``v1.33.4+k3s1``); on a node: a ``k3s`` process or
            ``/var/lib/rancher/k3s``
rke2        version suffix ``+rke2`` (``v1.33.4+rke2r1``); on a node: ``/var/lib/rancher/rke2``
eks         version ``-eks-`` (``v1.33.4-eks-1a2b3c4``), labels ``eks.amazonaws.com/…``; on a
            node: ``/etc/eks``
gke         version ``-gke.`` (``v1.33.4-gke.1245000``), labels ``cloud.google.com/gke-…``; on a
            node: ``/home/kubernetes``
aks         labels ``kubernetes.azure.com/…``; on a node: ``/etc/kubernetes/azure.json``
==========  ===================================================================================
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import NamedTuple

GENERIC = "generic"
PLATFORMS = ("k3s", "rke2", "eks", "gke", "aks")


class NodeSignals(NamedTuple):
    name: str
    labels: Mapping[str, str] = MappingProxyType({})
    provider_id: str = ""
    kubelet_version: str = ""


def _from_version(version: str) -> str | None:
    if "+k3s" in version:
        return "k3s"
    if "+rke2" in version:
        return "rke2"
    if "-eks-" in version:
        return "eks"
    if "-gke." in version:
        return "gke"
    return None


_LABEL_PREFIXES = (
    ("eks.amazonaws.com/", "eks"),
    ("cloud.google.com/gke-", "gke"),
    ("kubernetes.azure.com/", "aks"),
)


def node_platform(node: NodeSignals) -> tuple[str, str]:
    """(platform, the signal that told) for one node; ``generic`` when nothing tells."""
    found = _from_version(node.kubelet_version)
    if found:
        return found, f"kubelet version {node.kubelet_version}"
    for key in sorted(node.labels):
        for prefix, platform in _LABEL_PREFIXES:
            if key.startswith(prefix):
                return platform, f"label {key}"
    return GENERIC, "no platform label or version suffix"


class Detection(NamedTuple):
    platform: str
    reason: str


def detect_platform(nodes: Iterable[NodeSignals], server_version: str = "") -> Detection:
    """The cluster's platform: the API server's version suffix, else what most nodes show."""
    found = _from_version(server_version)
    if found:
        return Detection(found, f"API server version {server_version}")
    votes: Counter[str] = Counter()
    example: dict[str, str] = {}
    listed = list(nodes)
    for node in listed:
        platform, why = node_platform(node)
        votes[platform] += 1
        example.setdefault(platform, f"{node.name}: {why}")
    named = [(n, p) for p, n in votes.items() if p != GENERIC]
    if not named:
        return Detection(GENERIC, f"no node of {len(listed)} shows a platform")
    count, platform = max(named)
    return Detection(platform, f"{count} of {len(listed)} nodes ({example[platform]})")


HOST_MARKS: tuple[tuple[str, str], ...] = (
    ("k3s", "/var/lib/rancher/k3s"),
    ("rke2", "/var/lib/rancher/rke2"),
    ("eks", "/etc/eks"),
    ("gke", "/home/kubernetes"),
    ("aks", "/etc/kubernetes/azure.json"),
)


def host_platform(exists: Callable[[str], bool], runs_k3s: bool = False) -> Detection:
    """A node's platform from marks on its file system (``exists`` checks a host path)."""
    if runs_k3s:
        return Detection("k3s", "a k3s process runs on this node")
    for platform, mark in HOST_MARKS:
        if exists(mark):
            return Detection(platform, f"{mark} exists")
    return Detection(GENERIC, "no platform mark on this node")
