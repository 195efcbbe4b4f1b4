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
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field

from plumbob.benchmarks.catalog import CatalogError

_VERSION = re.compile(r"^v?(\d+)\.(\d+)")


class VersionMapping(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    platform: str = "generic"
    min: str = Field(pattern=r"^\d+\.\d+$")
    max: str | None = Field(default=None, pattern=r"^\d+\.\d+$")
    benchmark: str


class VersionTable(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    mappings: list[VersionMapping]


def _minor(version: str) -> tuple[int, int]:
    match = _VERSION.match(version.strip())
    if not match:
        raise CatalogError(f"not a Kubernetes version: {version!r}")
    return int(match.group(1)), int(match.group(2))


@functools.cache
def version_table() -> VersionTable:
    text = resources.files("plumbob.benchmarks").joinpath("data", "versions.yaml").read_text(encoding="utf-8")
    return VersionTable.model_validate(yaml.safe_load(text))


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
