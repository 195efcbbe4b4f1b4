"""The engine's input: a frozen snapshot of what the agent read on a node.

:class:`NodeFacts` holds everything the checks may look at and nothing else, so evaluation is a
pure function of it. Paths are the node's own (host) paths, never the agent's re-rooted ones.
Problems met while reading (unreadable file, truncated YAML, a path escaping the host root) are
kept next to the thing they concern, so the checks can turn them into ``error`` findings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from plumbob.benchmarks.rules import Component

# What a parsed YAML/JSON document holds.
JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"


@dataclass(frozen=True, kw_only=True)
class Process:
    """A running component found in /proc."""

    pid: int
    component: Component
    argv: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """A static pod manifest for a component; ``argv`` is its container's command + args."""

    component: Component
    path: str
    argv: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # the container's literal environment values
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class ConfigFile:
    """A component's config file (kubelet ``--config`` and the like), parsed."""

    component: Component
    path: str
    located_by: str  # how it was found, e.g. 'flag --config of pid 42'
    data: dict[str, JsonValue] | None = None
    error: str | None = None
    # When several files make up the configuration (the kubelet's --config then its --config-dir
    # drop-ins, merged in that order), each file's own document; ``data`` is the merge.
    layers: tuple[tuple[str, dict[str, JsonValue]], ...] = ()


FileKind: TypeAlias = Literal["file", "directory", "symlink", "other"]


@dataclass(frozen=True, kw_only=True)
class FileStat:
    path: str
    kind: FileKind
    mode: int  # permission bits only (st_mode & 0o7777)
    uid: int
    gid: int
    owner: str | None = None  # user name from the host's /etc/passwd
    group: str | None = None  # group name from the host's /etc/group


@dataclass(frozen=True, kw_only=True)
class Kubeconfig:
    """What matters about a kubeconfig for auditing, not its secrets."""

    path: str
    servers: tuple[str, ...] = ()
    auth: tuple[str, ...] = ()  # kinds of user credentials: cert, token, exec…
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class NodeFacts:
    hostname: str | None = None
    processes: tuple[Process, ...] = ()
    manifests: tuple[Manifest, ...] = ()
    configs: tuple[ConfigFile, ...] = ()
    kubeconfigs: tuple[Kubeconfig, ...] = ()
    files: dict[str, FileStat] = field(default_factory=dict)  # host path → stat
    missing: frozenset[str] = frozenset()  # paths looked for, absent
    # glob pattern or directory (recursive) → matching paths, sorted
    listings: dict[str, tuple[str, ...]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # host path → why it could not be read
    # paths (or globs) outside the host directories mounted in the audit Pod: in ``errors`` too,
    # but a rule's known location there is skipped rather than an error (it may not exist)
    unmounted: frozenset[str] = frozenset()
    # structured configuration files named by a flag (``--authorization-config``…), by host path
    documents: dict[str, ConfigFile] = field(default_factory=dict)

    def process(self, component: Component) -> Process | None:
        """The component's process (lowest pid when several run)."""
        found = [p for p in self.processes if p.component is component]
        return min(found, key=lambda p: p.pid) if found else None

    def manifest(self, component: Component) -> Manifest | None:
        return next((m for m in self.manifests if m.component is component), None)

    def config(self, component: Component) -> ConfigFile | None:
        return next((c for c in self.configs if c.component is component), None)
