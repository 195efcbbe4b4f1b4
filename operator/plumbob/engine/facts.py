"""The engine's input: a frozen snapshot of what the agent read on a node.

:class:`NodeFacts` holds everything the checks may look at and nothing else, so evaluation is a
pure function of it. Paths are the node's own (host) paths, never the agent's re-rooted ones.
Problems met while reading (unreadable file, truncated YAML, a path escaping the host root) are
kept next to the thing they concern, so the checks can turn them into ``error`` findings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from plumbob.benchmarks.rules import Component


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Process(_Frozen):
    """A running component found in /proc."""

    pid: int
    component: Component
    argv: tuple[str, ...]


class Manifest(_Frozen):
    """A static pod manifest for a component; ``argv`` is its container's command + args."""

    component: Component
    path: str
    argv: tuple[str, ...] = ()
    error: str | None = None


class ConfigFile(_Frozen):
    """A component's config file (kubelet ``--config`` and the like), parsed."""

    component: Component
    path: str
    located_by: str = Field(description="how it was found, e.g. 'flag --config of pid 42'")
    data: dict[str, JsonValue] | None = None
    error: str | None = None


class FileStat(_Frozen):
    path: str
    kind: Literal["file", "directory", "symlink", "other"]
    mode: int = Field(description="permission bits only (st_mode & 0o7777)")
    uid: int
    gid: int
    owner: str | None = Field(default=None, description="user name from the host's /etc/passwd")
    group: str | None = Field(default=None, description="group name from the host's /etc/group")


class Kubeconfig(_Frozen):
    """What matters about a kubeconfig for auditing, not its secrets."""

    path: str
    servers: tuple[str, ...] = ()
    auth: tuple[str, ...] = Field(default=(), description="kinds of user credentials: cert, token, exec…")
    error: str | None = None


class NodeFacts(_Frozen):
    hostname: str | None = None
    processes: tuple[Process, ...] = ()
    manifests: tuple[Manifest, ...] = ()
    configs: tuple[ConfigFile, ...] = ()
    kubeconfigs: tuple[Kubeconfig, ...] = ()
    files: dict[str, FileStat] = Field(default_factory=dict, description="host path → stat")
    missing: frozenset[str] = Field(default_factory=frozenset, description="paths looked for, absent")
    listings: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="glob pattern or directory (recursive) → matching paths, sorted"
    )
    errors: dict[str, str] = Field(default_factory=dict, description="host path → why it could not be read")

    def process(self, component: Component) -> Process | None:
        """The component's process (lowest pid when several run)."""
        found = [p for p in self.processes if p.component is component]
        return min(found, key=lambda p: p.pid) if found else None

    def manifest(self, component: Component) -> Manifest | None:
        return next((m for m in self.manifests if m.component is component), None)

    def config(self, component: Component) -> ConfigFile | None:
        return next((c for c in self.configs if c.component is component), None)
