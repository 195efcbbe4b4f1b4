"""Gather :class:`~plumbob.engine.node.facts.NodeFacts` from a node, read-only, without subprocesses.

Order of work (each step reads only what the selected rules need, when that is cheap to know):

1. ``<proc>/*/cmdline`` → the Kubernetes components running (``kube-apiserver …``,
   ``hyperkube kubelet …``); ``<proc>`` is ``<host-root>/proc`` unless given (a pod sharing the
   host's PID namespace reads its own ``/proc``).
2. Static pod manifests in the kubelet's ``staticPodPath`` and the known manifest directories.
3. Each running component's config file, named by its own flag (kubelet/kube-proxy ``--config``,
   etcd ``--config-file``); when the path is not on the host (kube-proxy in a pod keeps it in its
   container), through ``<proc>/<pid>/root``. Kubeconfigs named by ``--kubeconfig``.
4. Files the rules audit (:func:`plumbob.engine.node.evaluation.files_wanted`), with owners and groups
   named from the host's own ``/etc/passwd`` and ``/etc/group``.

Nothing raises for bad node content: problems are recorded in the facts for the checks to report.
"""

# Host paths are POSIX strings of the node, re-rooted under a prefix: os/posixpath on strings
# is deliberate here (a pathlib.Path would suggest a local path of the agent).

# ruff: noqa: PTH118, PTH119, PTH120, PTH123, PTH208

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from plumbob.agent.hostfs import HostRoot, NotMountedError
from plumbob.agent.parsing import (
    ParseError,
    parse_cmdline,
    parse_document,
    parse_kubeconfig,
    parse_manifest_container,
    parse_names,
)
from plumbob.benchmarks.rules import Component, Rule
from plumbob.engine.node.components import COMPONENTS, component_of_argv, embedding_of_argv
from plumbob.engine.node.evaluation import components_with_settings, documents_wanted, files_wanted
from plumbob.engine.node.facts import (
    ConfigFile,
    FileKind,
    FileStat,
    JsonValue,
    Kubeconfig,
    Manifest,
    NodeFacts,
    Process,
)
from plumbob.engine.node.flags import flag_values

_GLOB = frozenset("*?[")
_MANIFEST_SUFFIXES = (".yaml", ".yml", ".manifest", ".json")
MAX_CMDLINE = 256 * 1024


class _Files(NamedTuple):
    files: dict[str, FileStat]
    missing: frozenset[str]
    listings: dict[str, tuple[str, ...]]
    errors: dict[str, str]
    unmounted: frozenset[str]


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def scan_processes(proc_dir: Path) -> tuple[list[Process], list[tuple[int, tuple[str, ...]]]]:
    """Kubernetes components among the processes under ``proc_dir``, and the processes that embed
    several components (``k3s server``: pid and argv, expanded by :func:`expand_embedded`)."""
    found: list[Process] = []
    embedded: list[tuple[int, tuple[str, ...]]] = []
    try:
        entries = os.listdir(proc_dir)
    except OSError:
        return found, embedded
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(proc_dir / name / "cmdline", "rb") as fh:
                raw = fh.read(MAX_CMDLINE)
        except OSError:
            continue  # exited meanwhile, or not ours to read
        argv = parse_cmdline(raw)
        component = component_of_argv(argv)
        if component is not None:
            found.append(Process(pid=int(name), component=component, argv=argv))
        elif embedding_of_argv(argv) is not None:
            embedded.append((int(name), argv))
    return sorted(found, key=lambda p: p.pid), sorted(embedded)


def _host_path(value: str, base: str = "/") -> str:
    return value if value.startswith("/") else os.path.normpath(os.path.join(base, value))


class _Gatherer:
    def __init__(self, root: HostRoot, proc_dir: Path) -> None:
        self.root = root
        self.proc_dir = proc_dir
        self._users: dict[int, str] | None = None
        self._groups: dict[int, str] | None = None

    # -- manifests ---------------------------------------------------------------------------------
    def manifests(self, kubelet_config: ConfigFile | None) -> list[Manifest]:
        dirs: list[str] = []
        if kubelet_config is not None and kubelet_config.data is not None:
            static = kubelet_config.data.get("staticPodPath")
            if isinstance(static, str) and static:
                dirs.append(static)
        for info in COMPONENTS.values():
            dirs.extend(os.path.dirname(p) for p in info.manifests)
        by_component: dict[Component, Manifest] = {}
        for directory in dict.fromkeys(dirs):
            try:
                names = sorted(os.listdir(self.root.real_path(directory)))
            except OSError:
                continue
            for name in names:
                if name.endswith(_MANIFEST_SUFFIXES):
                    manifest = self.manifest(f"{directory.rstrip('/')}/{name}")
                    if manifest is not None and manifest.component not in by_component:
                        by_component[manifest.component] = manifest
        return list(by_component.values())

    def manifest(self, path: str) -> Manifest | None:
        stem = os.path.basename(path).rsplit(".", 1)[0]
        by_name = next((i.component for i in COMPONENTS.values() if i.name == stem), None)
        try:
            raw = self.root.read_bytes(path)
        except OSError as exc:
            return Manifest(component=by_name, path=path, error=_why(exc)) if by_name else None
        try:
            binaries = COMPONENTS[by_name].binaries if by_name else ()
            argv, env = parse_manifest_container(raw, binaries)
        except ParseError as exc:
            return Manifest(component=by_name, path=path, error=str(exc)) if by_name else None
        component = component_of_argv(argv) or by_name
        return Manifest(component=component, path=path, argv=argv, env=env) if component else None

    # -- configs -----------------------------------------------------------------------------------
    def _read(self, proc: Process, path: str) -> tuple[bytes | None, str, str | None]:
        """A file the process names: (content, how it was found, why not). When the path is not
        on the host (a component in a container keeps it there), through ``<proc>/<pid>/root``."""
        try:
            return self.root.read_bytes(path), "", None
        except (FileNotFoundError, NotMountedError) as exc:
            try:
                raw = HostRoot(self.proc_dir / str(proc.pid) / "root").read_bytes(path)
            except OSError:
                return None, "", _why(exc) if isinstance(exc, NotMountedError) else "not found on the host"
            return raw, " (inside its container)", None
        except OSError as exc:
            return None, "", _why(exc)

    def document(self, proc: Process, flag: str, value: str) -> ConfigFile:
        path = _host_path(value)
        raw, inside, error = self._read(proc, path)
        located_by = f"flag {flag} of pid {proc.pid}{inside}"
        if raw is None:
            return ConfigFile(component=proc.component, path=path, located_by=located_by, error=error)
        try:
            data = parse_document(raw)
        except ParseError as exc:
            return ConfigFile(component=proc.component, path=path, located_by=located_by, error=str(exc))
        return ConfigFile(component=proc.component, path=path, located_by=located_by, data=data)

    def config(self, proc: Process) -> ConfigFile | None:
        flags = flag_values(proc.argv)
        flag = COMPONENTS[proc.component].config_flag
        value = flags.get(flag.lstrip("-")) if flag else None
        drop_ins = flags.get("config-dir") if proc.component is Component.KUBELET else None
        base = self.document(proc, flag, value) if flag and value else None
        if not drop_ins or (base is not None and base.data is None):
            return base
        return self.kubelet_drop_ins(proc, base, _host_path(drop_ins))

    def files_in_order(self, directory: str, depth: int = 0) -> Iterable[str]:
        """Files below a directory in Go's ``filepath.WalkDir`` order: entries sorted by name, each
        subdirectory walked where it sorts (symbolic links to directories are not followed)."""
        try:
            names = sorted(os.listdir(self.root.real_path(directory)))
        except (OSError, ValueError):
            return
        for name in names:
            path = f"{directory.rstrip('/')}/{name}"
            try:
                mode = self.root.lstat(path).st_mode
            except (OSError, ValueError):
                continue
            if stat.S_ISDIR(mode) and depth < 8:
                yield from self.files_in_order(path, depth + 1)
            elif stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                yield path

    def kubelet_drop_ins(self, proc: Process, base: ConfigFile | None, directory: str) -> ConfigFile:
        """The kubelet's --config file merged with the ``*.conf`` files of its --config-dir, in the
        kubelet's own order: the directory walked in lexical order (subdirectories included), each
        drop-in applied as a JSON merge patch over what came before, so later files win and every
        drop-in wins over the --config file."""
        layers = list(base.layers or ((base.path, base.data),)) if base and base.data is not None else []
        merged: dict[str, JsonValue] = dict(base.data) if base and base.data is not None else {}
        located_by = f"flag --config-dir of pid {proc.pid}"
        for path in self.files_in_order(directory):
            if not path.endswith(".conf"):
                continue
            drop_in = self.document(proc, "--config-dir", path)
            if drop_in.data is None:
                return ConfigFile(
                    component=proc.component, path=path, located_by=located_by, error=drop_in.error
                )
            patched = merge_patch(merged, drop_in.data)
            assert isinstance(patched, dict)
            merged = patched
            layers.append((path, drop_in.data))
        return ConfigFile(
            component=proc.component,
            path=base.path if base is not None else directory,
            located_by=base.located_by if base is not None else located_by,
            data=merged,
            layers=tuple(layers),
        )

    def kubeconfig(self, path: str) -> Kubeconfig:
        try:
            servers, auth = parse_kubeconfig(self.root.read_bytes(path))
        except (OSError, ParseError) as exc:
            return Kubeconfig(path=path, error=_why(exc))
        return Kubeconfig(path=path, servers=servers, auth=auth)

    # -- files -------------------------------------------------------------------------------------
    def names(self) -> tuple[dict[int, str], dict[int, str]]:
        if self._users is None or self._groups is None:
            self._users, self._groups = {}, {}
            for attr, path in (("_users", "/etc/passwd"), ("_groups", "/etc/group")):
                with contextlib.suppress(OSError):
                    setattr(self, attr, parse_names(self.root.read_bytes(path)))
        assert self._users is not None and self._groups is not None
        return self._users, self._groups

    def stat(self, path: str) -> FileStat:
        st = self.root.lstat(path)
        kind: FileKind = (
            "file"
            if stat.S_ISREG(st.st_mode)
            else "directory"
            if stat.S_ISDIR(st.st_mode)
            else "symlink"
            if stat.S_ISLNK(st.st_mode)
            else "other"
        )
        users, groups = self.names()
        return FileStat(
            path=path,
            kind=kind,
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            owner=users.get(st.st_uid),
            group=groups.get(st.st_gid),
        )

    def files(self, wanted: Iterable[tuple[str, bool]]) -> _Files:
        files: dict[str, FileStat] = {}
        missing: set[str] = set()
        listings: dict[str, tuple[str, ...]] = {}
        errors: dict[str, str] = {}
        unmounted: set[str] = set()

        def one(path: str) -> None:
            if path in files or path in missing or path in errors:
                return
            try:
                files[path] = self.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                missing.add(path)
            except NotMountedError as exc:
                errors[path] = _why(exc)
                unmounted.add(path)
            except (OSError, ValueError) as exc:
                errors[path] = _why(exc)

        for pattern, recursive in wanted:
            if not _GLOB.isdisjoint(pattern):
                try:
                    matches = tuple(self.root.glob(pattern))
                except NotMountedError as exc:
                    errors[pattern] = _why(exc)
                    unmounted.add(pattern)
                    continue
                listings[pattern] = matches
                if not matches:
                    missing.add(pattern)
            else:
                matches = (pattern,)
            for path in matches:
                one(path)
                if recursive and path in files and files[path].kind == "directory":
                    below = tuple(self.root.walk(path))
                    listings[path] = below
                    for sub in below:
                        one(sub)
        return _Files(files, frozenset(missing), listings, errors, frozenset(unmounted))


def _embedded_args(values: JsonValue) -> list[str]:
    items = values if isinstance(values, list) else [values]
    return [f"--{str(v).lstrip('-')}" for v in items if v is not None and str(v)]


def expand_embedded(embedded: list[tuple[int, tuple[str, ...]]], root: HostRoot) -> list[Process]:
    """Processes that run several components (``k3s server``) as one process per component, each
    with the flags the distribution passes it: its config file's list first, then the command line's
    (the later occurrence of a flag wins, as on a command line)."""
    out: list[Process] = []
    for pid, argv in embedded:
        found = embedding_of_argv(argv)
        assert found is not None
        embedding, components = found
        config: dict[str, JsonValue] = {}
        with contextlib.suppress(OSError, ParseError):
            config = parse_document(root.read_bytes(embedding.config_file))
        flags = flag_values(argv)
        if flags.get(embedding.etcd_when.lstrip("-")) in ("", "true") or config.get(
            embedding.etcd_when.lstrip("-")
        ) in (True, "true"):
            components = (*components, Component.ETCD)
        for component in components:
            flag = embedding.arg_flags[component]
            args = _embedded_args(config.get(flag.lstrip("-")))
            args += [f"--{v.lstrip('-')}" for v in repeated_values(argv, flag) if v]
            out.append(Process(pid=pid, component=component, argv=(COMPONENTS[component].name, *args)))
    return out


def repeated_values(argv: Sequence[str], flag: str) -> list[str]:
    """Every value of a repeatable flag (``--x=a --x b``), in order."""
    name, values = flag.lstrip("-"), []
    words = list(argv[1:])
    for i, word in enumerate(words):
        key, eq, value = word.lstrip("-").partition("=")
        if not word.startswith("-") or key != name:
            continue
        if eq:
            values.append(value)
        elif i + 1 < len(words) and not words[i + 1].startswith("-"):
            values.append(words[i + 1])
    return values


def merge_patch(target: JsonValue, patch: JsonValue) -> JsonValue:
    """RFC 7386 JSON merge patch, as the kubelet applies its drop-ins: mappings merge key by key,
    ``null`` removes a key, anything else (lists included) replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def gather_facts(
    rules: Sequence[Rule],
    host_root: str | Path = "/",
    proc_dir: str | Path | None = None,
    mounted: Sequence[str] | None = None,
) -> NodeFacts:
    """Read the node for ``rules`` through ``host_root``; never raises for what it finds there.

    ``mounted``: the host directories mounted under ``host_root`` (an audit Pod's); None: all of them.
    """
    root = HostRoot(Path(host_root), tuple(mounted) if mounted is not None else None)
    procs = Path(proc_dir) if proc_dir is not None else Path(root.prefix) / "proc"
    g = _Gatherer(root, procs)
    standalone, embedded = scan_processes(procs)
    processes = sorted([*standalone, *expand_embedded(embedded, root)], key=lambda p: p.pid)
    with_settings = components_with_settings(rules) | {Component.KUBELET}
    configs = [
        c
        for p in {p.component: p for p in reversed(processes)}.values()
        if p.component in with_settings and (c := g.config(p)) is not None
    ]
    kubelet_config = next((c for c in configs if c.component is Component.KUBELET), None)
    documents: dict[str, ConfigFile] = {}
    for component, flag in sorted(documents_wanted(rules)):
        proc = next((p for p in processes if p.component is component), None)
        value = flag_values(proc.argv).get(flag.lstrip("-")) if proc is not None else None
        if proc is not None and value and value not in documents:
            documents[value] = g.document(proc, flag, value)
    manifests = g.manifests(kubelet_config)
    kubeconfig_paths = dict.fromkeys(
        _host_path(v) for p in processes if (v := flag_values(p.argv).get("kubeconfig"))
    )
    kubeconfigs = [g.kubeconfig(path) for path in kubeconfig_paths]
    partial = NodeFacts(
        processes=tuple(processes), manifests=tuple(manifests), configs=tuple(configs), documents=documents
    )
    found = g.files(files_wanted(rules, partial))
    hostname = None
    with contextlib.suppress(OSError):
        hostname = root.read_bytes("/etc/hostname", 256).decode("utf-8", "replace").strip() or None
    return replace(
        partial,
        hostname=hostname,
        kubeconfigs=tuple(kubeconfigs),
        files=found.files,
        missing=found.missing,
        listings=found.listings,
        errors=found.errors,
        unmounted=found.unmounted,
    )
