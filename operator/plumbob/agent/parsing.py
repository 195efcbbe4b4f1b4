"""Parsers for what the agent reads on a node. Pure functions of bytes.

Each raises :class:`ParseError` (with a reason a person can act on) for input it cannot make
sense of, and nothing else: truncated YAML, binary junk, a kubeconfig of the wrong shape all end
as a ``ParseError``, which the gatherer records next to the file and the checks turn into an
``error`` finding.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from plumbob.engine.node.facts import JsonValue

MAX_DEPTH = 64
MAX_NODES = 200_000  # YAML aliases can make a small file expand enormously

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ParseError(ValueError):
    """Input that cannot be understood; ``str(exc)`` says why."""


def parse_cmdline(raw: bytes) -> tuple[str, ...]:
    """``/proc/<pid>/cmdline``: NUL-separated words (undecodable bytes kept as escapes)."""
    if not raw:
        return ()  # kernel threads and zombies have an empty command line
    words = raw.split(b"\0")
    if words and words[-1] == b"":
        words.pop()
    return tuple(w.decode("utf-8", "backslashreplace") for w in words)


def _plain(value: Any, budget: list[int], depth: int = 0) -> JsonValue:
    """YAML's richer values (dates, binary, non-string keys) as JSON values."""
    budget[0] -= 1
    if depth > MAX_DEPTH:
        raise ParseError("nested too deeply")
    if budget[0] < 0:
        raise ParseError(f"more than {MAX_NODES} values (alias expansion?)")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v, budget, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, budget, depth + 1) for v in value]
    return str(value)


def _text(raw: bytes) -> str:
    if b"\0" in raw:
        raise ParseError("binary content (NUL bytes)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from exc


def parse_document(raw: bytes) -> dict[str, JsonValue]:
    """A YAML or JSON document that must be a mapping (kubelet, kube-proxy, etcd config files)."""
    text = _text(raw)
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a safe loader
    except (ValueError, yaml.YAMLError, RecursionError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ParseError(f"not valid YAML/JSON: {first}") from exc
    if not isinstance(data, dict):
        raise ParseError(f"expected a mapping at the top, found {type(data).__name__}")
    plain = _plain(data, [MAX_NODES])
    assert isinstance(plain, dict)
    return plain


def parse_manifest(raw: bytes, component_binaries: tuple[str, ...] = ()) -> tuple[str, ...]:
    """A static pod manifest: the command + args of its container (the one running the component)."""
    return parse_manifest_container(raw, component_binaries)[0]


def parse_manifest_container(
    raw: bytes, component_binaries: tuple[str, ...] = ()
) -> tuple[tuple[str, ...], dict[str, str]]:
    """A static pod manifest: (command + args, literal environment) of the component's container.

    Environment entries whose value comes from elsewhere (``valueFrom``) are not literal, so they
    are left out: the node cannot tell what they resolve to."""
    pod = parse_document(raw)
    spec = pod.get("spec")
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list) or not containers:
        raise ParseError("no spec.containers in the pod manifest")
    candidates: list[tuple[tuple[str, ...], dict[str, str]]] = []
    for container in containers:
        if not isinstance(container, dict):
            raise ParseError("a container entry is not a mapping")
        command, args = container.get("command", []), container.get("args", [])
        if not isinstance(command, list) or not isinstance(args, list):
            raise ParseError("container command/args must be lists")
        argv = tuple(str(w) for w in [*command, *args] if w is not None)
        env = container.get("env", [])
        if not isinstance(env, list):
            raise ParseError("container env must be a list")
        literal = {
            str(e["name"]): as_env_text(e["value"])
            for e in env
            if isinstance(e, dict) and "name" in e and e.get("value") is not None
        }
        if argv:
            candidates.append((argv, literal))
    if not candidates:
        raise ParseError("no container has a command or args")
    for argv, literal in candidates:
        if argv[0].rsplit("/", 1)[-1] in component_binaries:
            return argv, literal
    return candidates[0]


def as_env_text(value: JsonValue) -> str:
    """An env value as the process sees it (YAML may have parsed ``true`` or ``2379`` as non-strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_kubeconfig(raw: bytes) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A kubeconfig → (server URLs, kinds of user credentials). Secrets are not kept."""
    doc = parse_document(raw)
    clusters, users = doc.get("clusters", []), doc.get("users", [])
    if not isinstance(clusters, list) or not isinstance(users, list):
        raise ParseError("clusters and users must be lists")
    servers: list[str] = []
    for entry in clusters:
        cluster = entry.get("cluster") if isinstance(entry, dict) else None
        if not isinstance(cluster, dict):
            raise ParseError("a clusters entry has no 'cluster' mapping")
        server = cluster.get("server")
        if server is not None:
            servers.append(str(server))
    kinds: list[str] = []
    for entry in users:
        user = entry.get("user") if isinstance(entry, dict) else None
        if user is None:
            continue
        if not isinstance(user, dict):
            raise ParseError("a users entry has a 'user' that is not a mapping")
        for key, kind in (
            ("client-certificate", "cert"),
            ("client-certificate-data", "cert"),
            ("token", "token"),
            ("tokenFile", "token"),
            ("exec", "exec"),
            ("auth-provider", "auth-provider"),
            ("username", "basic"),
        ):
            if key in user and kind not in kinds:
                kinds.append(kind)
    return tuple(servers), tuple(kinds)


def parse_names(raw: bytes) -> dict[int, str]:
    """``/etc/passwd`` or ``/etc/group``: id → name (first name wins; malformed lines skipped)."""
    names: dict[int, str] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) < 3 or not fields[2].isdigit():
            continue
        names.setdefault(int(fields[2]), fields[0])
    return names
