"""Which benchmark applies to a cluster: Kubernetes version and platform → benchmark id.

The mapping is data (``data/versions.yaml``): a list of entries, each naming a platform
(``generic``, ``k3s``, ``rke2``, ``eks``, ``gke``, ``aks``…), the range of Kubernetes minor
versions it covers (``min`` inclusive, optional ``max`` inclusive) and the benchmark id. Adding a
platform variant or an older benchmark is adding an entry (and its data directory), not code.
The most specific entry wins: the named platform before ``generic``, then the highest ``min``.
"""

from __future__ import annotations

import functools
import re
from typing import Any, NamedTuple

from plumbob.benchmarks.catalog import DATA_DIR, CatalogError

_VERSION = re.compile(r"^v?(\d+)\.(\d+)")
_MINOR = re.compile(r"^\d+\.\d+$")


class VersionMapping(NamedTuple):
    min: str
    benchmark: str
    platform: str = "generic"
    max: str | None = None


class VersionTable(NamedTuple):
    mappings: tuple[VersionMapping, ...]

    @classmethod
    def from_data(cls, data: Any) -> VersionTable:
        if not isinstance(data, dict) or set(data) != {"mappings"} or not isinstance(data["mappings"], list):
            raise CatalogError("versions: expected a mapping with one key, 'mappings', holding a list")
        out = []
        for entry in data["mappings"]:
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise CatalogError(f"versions: entry {entry!r} is not a mapping of strings")
            try:
                mapping = VersionMapping(**entry)
            except TypeError as exc:
                raise CatalogError(f"versions: entry {entry!r}: {exc}") from exc
            for bound in (mapping.min, mapping.max):
                if bound is not None and not _MINOR.match(bound):
                    raise CatalogError(f"versions: {bound!r} is not a minor version such as '1.32'")
            out.append(mapping)
        return cls(tuple(out))

    def platforms(self) -> frozenset[str]:
        return frozenset(m.platform for m in self.mappings)


def _minor(version: str) -> tuple[int, int]:
    match = _VERSION.match(version.strip())
    if not match:
        raise CatalogError(f"not a Kubernetes version: {version!r}")
    return int(match.group(1)), int(match.group(2))


@functools.cache
def version_table() -> VersionTable:
    import yaml  # noqa: PLC0415 - only when a benchmark is chosen by version or platform

    text = (DATA_DIR / "versions.yaml").read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return VersionTable.from_data(yaml.load(text, Loader=loader))  # noqa: S506 - a safe loader


def benchmark_for(
    kubernetes_version: str, platform: str = "generic", table: VersionTable | None = None
) -> str:
    """The benchmark id for a cluster, e.g. ``benchmark_for("v1.33.2")`` → ``"cis-1.12"``."""
    version = _minor(kubernetes_version)
    candidates = [
        m
        for m in (table or version_table()).mappings
        if m.platform in (platform, "generic")
        and _minor(m.min) <= version
        and (m.max is None or version <= _minor(m.max))
    ]
    if not candidates:
        raise CatalogError(f"no benchmark covers Kubernetes {kubernetes_version} on platform {platform!r}")
    best = max(candidates, key=lambda m: (m.platform == platform and platform != "generic", _minor(m.min)))
    return best.benchmark


def has_platform_benchmark(platform: str, table: VersionTable | None = None) -> bool:
    """Does ``platform`` have a benchmark of its own (not only the generic one)?"""
    return platform == "generic" or platform in (table or version_table()).platforms()


def newest_for_platform(platform: str, table: VersionTable | None = None) -> str:
    """The newest benchmark of a platform (the generic one when it has none of its own)."""
    mappings = (table or version_table()).mappings
    own = [m for m in mappings if m.platform == platform] or [m for m in mappings if m.platform == "generic"]
    if not own:
        raise CatalogError(f"no benchmark for platform {platform!r}")
    return max(own, key=lambda m: _minor(m.min)).benchmark
