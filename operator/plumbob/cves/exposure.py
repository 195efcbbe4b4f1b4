"""Which known CVEs a running component version is exposed to, and whether its patch is current.

Pure functions of :class:`~plumbob.cves.data.CveData` and version strings as the cluster reports
them (``v1.30.2``, ``v1.33.4+k3s1``, ``v1.32.3-eks-4096722``): the Kubernetes release is compared
by semantic version, never as text.
"""

from __future__ import annotations

from dataclasses import dataclass

from plumbob.cves.data import CveData, CveDataError, Version

PATCH_RULE = "patch-level"


@dataclass(frozen=True)
class Exposure:
    cve: str  # a CVE id, or PATCH_RULE for "an older patch than the newest known"
    component: str
    running: str
    fixed: str | None  # the first fixed version in the running minor's line; None: no fix known
    severity: str
    where: str  # "API server" or the node's name
    reference: str | None = None


def exposures(data: CveData, component: str, running: str, where: str) -> list[Exposure]:
    """The CVEs of ``component`` whose affected ranges contain the ``running`` version."""
    try:
        version = Version.parse(running)
    except CveDataError:
        return []
    found = []
    for vuln in data.vulnerabilities:
        for rng in vuln.affected.get(component, ()):
            if rng.contains(version):
                found.append(
                    Exposure(
                        cve=vuln.id,
                        component=component,
                        running=running,
                        fixed=str(rng.fixed) if rng.fixed is not None else None,
                        severity=vuln.severity,
                        where=where,
                        reference=vuln.references[0] if vuln.references else None,
                    )
                )
                break
    return found


def patch_lag(data: CveData, component: str, running: str, where: str) -> Exposure | None:
    """An older patch release than the newest known patch of its minor (``v1.33.2`` when 1.33.13 is out)."""
    try:
        version = Version.parse(running)
    except CveDataError:
        return None
    newest = data.newest_patches.get(version.minor_key)
    if newest is None or not version < newest:
        return None
    return Exposure(PATCH_RULE, component, running, str(newest), "medium", where)
