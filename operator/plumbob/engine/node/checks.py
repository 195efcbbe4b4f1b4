"""Checks: pure functions of :class:`~plumbob.engine.node.facts.NodeFacts`, one per kind of audit.

Each is named after what it finds and returns an :class:`Outcome` (status, evidence, reason):

- :func:`noncompliant_setting`: a component setting whose effective value breaks the test.
  Effective value = the flag on the running process (last occurrence wins) → the key in the
  component's config file → the rule's documented default → unset. The default is the rule's
  ``config_default`` when the component runs with a config file (its config flag, e.g. the
  kubelet's ``--config``, is on the command line) and the rule gives one, else ``default``;
  evidence names which one applied. A component that is not
  running gives not-applicable (even when its static pod manifest exists: the manifest's flags
  are not in effect, and the running state is what the benchmark asks about).
- :func:`permissive_file_modes`: files whose permission bits exceed the allowed mode.
- :func:`foreign_file_owners`: files not owned by the expected user and group.
- :func:`combined_outcome`: ``all`` (every part must pass) and ``any`` (one part passing suffices).

Files are located by :func:`locate_files`: the component's flag (on the running process, else in
its static pod manifest), then its config-file key, then the rule's known paths in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from plumbob.benchmarks.rules import (
    AllOf,
    AnyOf,
    Audit,
    Component,
    FileModeAudit,
    FileOwnerAudit,
    FileRef,
    SettingAudit,
    StructuredKey,
)
from plumbob.engine.findings import Evidence, Source, Status
from plumbob.engine.node.components import COMPONENTS
from plumbob.engine.node.facts import ConfigFile, FileStat, JsonValue, NodeFacts, Process
from plumbob.engine.node.flags import flag_name, flag_values
from plumbob.engine.node.values import as_text, compare

_GLOB_CHARS = frozenset("*?[")
_EVIDENCE_CAP = 10  # passing files listed one by one up to this many, then summarised


class Outcome(NamedTuple):
    status: Status
    evidence: tuple[Evidence, ...] = ()
    reason: str | None = None
    # A combination's distinct part reasons, which ``reason`` joins with "; " (a reason may itself
    # contain "; ", so nested combinations de-duplicate on these, not on the joined text).
    reasons: tuple[str, ...] = ()


class Context(NamedTuple):
    """What a check needs besides the facts: the rule's stance on absent files."""

    missing_file: str = "not-applicable"


# ---- settings ------------------------------------------------------------------------------------


def lookup(data: JsonValue, dotted: str) -> tuple[bool, JsonValue]:
    """Find ``a.b.c`` in nested mappings; a key that itself contains dots is matched whole first."""
    if not isinstance(data, dict):
        return False, None
    if dotted in data:
        return True, data[dotted]
    head, dot, rest = dotted.partition(".")
    while dot:
        if head in data:
            found, value = lookup(data[head], rest)
            if found:
                return found, value
        more, dot, rest = rest.partition(".")
        head = f"{head}.{more}"
    return False, None


def noncompliant_setting(audit: SettingAudit, facts: NodeFacts, ctx: Context) -> Outcome:
    info = COMPONENTS[audit.component]
    subject = f"{info.name} {audit.flag or audit.config_key}"
    proc = facts.process(audit.component)
    if proc is None:
        reason = f"{info.name} is not running on this node"
        manifest = facts.manifest(audit.component)
        if manifest is not None:
            reason += f" (its static pod manifest {manifest.path} exists, but no process runs it)"
        return Outcome(Status.NOT_APPLICABLE, (Evidence(subject=info.name, source=Source.NONE),), reason)

    value: str | None = None
    source, location = Source.UNSET, None
    if audit.flag:
        flags = flag_values(proc.argv)
        if flag_name(audit.flag) in flags:
            value, source = flags[flag_name(audit.flag)], Source.FLAG
            location = f"pid {proc.pid} {audit.flag}"
        else:
            found_env = env_setting(audit.component, audit.flag, facts)
            if found_env is not None:
                value, location = found_env
                source = Source.MANIFEST
    if source is Source.UNSET and audit.structured is not None:
        structured = structured_setting(audit.structured, proc, facts)
        if structured.problem is not None:
            evidence = Evidence(subject=subject, source=Source.CONFIG, location=structured.location)
            return Outcome(Status.ERROR, (evidence,), structured.problem)
        if structured.location is not None and structured.value is not None:
            value, source, location = structured.value, Source.CONFIG, structured.location
    if source is Source.UNSET and audit.config_key:
        config = facts.config(audit.component)
        if config is not None:
            where = f"{config.path}: {audit.config_key}"
            if config.error is not None or config.data is None:
                reason = f"cannot read the {info.name} config file {config.path}: {config.error}"
                return Outcome(
                    Status.ERROR, (Evidence(subject=subject, source=Source.CONFIG, location=where),), reason
                )
            found, raw = lookup(config.data, audit.config_key)
            if found and raw is not None:
                value, source = as_text(raw), Source.CONFIG
                location = f"{origin(config, audit.config_key)}: {audit.config_key}"
    if source is Source.UNSET:
        default, where = applicable_default(audit, proc)
        if default is not None:
            value, source, location = default, Source.DEFAULT, where

    result = compare(value, audit.test)
    evidence = Evidence(
        subject=subject, source=source, location=location, found=value, expected=result.expected
    )
    if result.problem:
        return Outcome(Status.ERROR, (evidence,), result.problem)
    if result.ok:
        return Outcome(Status.PASS, (evidence,))
    shown = "not set" if value is None else f"{value!r}"
    if source is Source.DEFAULT:
        shown += f" ({location})"
    return Outcome(Status.FAIL, (evidence,), f"{subject} is {shown}; expected {result.expected}")


def origin(config: ConfigFile, dotted: str) -> str:
    """The file that set ``dotted`` in a layered configuration (the last one that has it)."""
    for path, data in reversed(config.layers):
        if lookup(data, dotted)[0]:
            return str(path)
    return str(config.path)


def env_setting(component: Component, flag: str, facts: NodeFacts) -> tuple[str, str] | None:
    """``flag`` given as an environment variable of the component's static pod (etcd's ``ETCD_*``):
    (value, where). The command line wins over the environment, as it does in etcd."""
    info = COMPONENTS[component]
    name = info.env_name(flag)
    manifest = facts.manifest(component)
    if name is None or manifest is None or name not in manifest.env:
        return None
    return manifest.env[name], f"env {name} in {manifest.path}"


def select(data: JsonValue, path: str) -> tuple[bool, JsonValue]:
    """A dotted path in a document, where ``name[]`` maps the rest of the path over a list."""
    head, _, rest = path.partition(".")
    if head.endswith("[]"):
        found, items = lookup(data, head[:-2])
        if not found or not isinstance(items, list):
            return False, None
        if not rest:
            return True, items
        picked = [value for item in items for ok, value in (select(item, rest),) if ok]
        return True, picked
    if not rest:
        return lookup(data, head)
    found, child = lookup(data, head)
    return select(child, rest) if found else (False, None)


class Structured(NamedTuple):
    value: str | None = None
    location: str | None = None
    problem: str | None = None


def structured_setting(key: StructuredKey, proc: Process, facts: NodeFacts) -> Structured:
    """The setting from the structured file the process names with ``key.flag``, if it names one."""
    path = flag_values(proc.argv).get(flag_name(key.flag))
    if not path:
        return Structured()
    document = facts.documents.get(path)
    location = f"{path}: {key.key}"
    if document is None or document.data is None:
        why = document.error if document is not None else "not read"
        return Structured(location=location, problem=f"cannot read {path} (named by {key.flag}): {why}")
    found, raw = select(document.data, key.key)
    return Structured(value=as_text(raw) if found else None, location=location)


def runs_with_config_file(component: Component, proc: Process) -> bool:
    """Does the running process name a config file (the component's config flag, non-empty)?"""
    config_flag = COMPONENTS[component].config_flag
    return bool(config_flag and flag_values(proc.argv).get(flag_name(config_flag)))


def applicable_default(audit: SettingAudit, proc: Process) -> tuple[str | None, str]:
    """The default in effect when neither the flag nor the config key sets the value, and where it
    comes from (for evidence): ``config_default`` when the component runs with a config file and
    the rule gives one, else ``default``."""
    info = COMPONENTS[audit.component]
    if audit.default_by is not None:
        return audit.default, f"set by {audit.default_by} unless overridden"
    if audit.config_default is None:
        return audit.default, f"{info.name} default"
    if runs_with_config_file(audit.component, proc):
        return audit.config_default, f"{info.name} config-file default (running with {info.config_flag})"
    return audit.default, f"{info.name} flag default (no {info.config_flag})"


# ---- files ---------------------------------------------------------------------------------------


def _is_glob(path: str) -> bool:
    return not _GLOB_CHARS.isdisjoint(path)


class Named(NamedTuple):
    """A path a flag or config key names (authoritative), with how it was found."""

    path: str | None
    how: str
    problem: str | None = None


def named_path(ref: FileRef, facts: NodeFacts) -> Named:
    """The path the component itself names through ``ref.flag`` or ``ref.config_key``, if any."""
    if ref.component is None:
        return Named(None, "")
    problem = None
    if ref.flag:
        proc = facts.process(ref.component)
        if proc is not None:
            value = flag_values(proc.argv).get(flag_name(ref.flag))
            if value:
                return Named(value, f"{ref.flag} of pid {proc.pid}")
            from_env = env_setting(ref.component, ref.flag, facts)
            if from_env is not None and from_env[0]:
                return Named(from_env[0], from_env[1])
        else:
            manifest = facts.manifest(ref.component)
            if manifest is not None and manifest.error is None:
                value = flag_values(manifest.argv).get(flag_name(ref.flag))
                if value:
                    return Named(value, f"{ref.flag} in {manifest.path}")
            elif manifest is not None:
                problem = f"cannot read {manifest.path}: {manifest.error}"
    if ref.config_key:
        config = facts.config(ref.component)
        if config is not None and config.data is not None:
            found, raw = lookup(config.data, ref.config_key)
            text = as_text(raw) if found else None
            if text:
                return Named(text, f"{config.path}: {ref.config_key}")
        elif config is not None:
            problem = f"cannot read {config.path}: {config.error}"
    return Named(None, "", problem)


def wanted_paths(ref: FileRef, facts: NodeFacts) -> list[tuple[str, bool]]:
    """Paths (or globs) the agent should stat for ``ref``, each with whether to walk it recursively."""
    named = named_path(ref, facts)
    if named.path is not None:
        return [(named.path, ref.recursive)]
    return [(p, ref.recursive) for p in ref.paths]


class Located(NamedTuple):
    stats: tuple[FileStat, ...] = ()
    how: str = ""
    problem: str | None = None
    looked_for: tuple[str, ...] = ()
    # known locations outside the audit Pod's host mounts, not looked at (they may not exist here)
    unseen: tuple[str, ...] = ()


def _expand(path: str, recursive: bool, facts: NodeFacts) -> list[str]:
    members = list(facts.listings.get(path, ())) if _is_glob(path) else [path]
    if recursive:
        for m in list(members):
            members.extend(facts.listings.get(m, ()))
    return [m for m in dict.fromkeys(members) if m in facts.files]


def locate_files(ref: FileRef, facts: NodeFacts) -> Located:
    named = named_path(ref, facts)
    candidates = [named.path] if named.path is not None else list(ref.paths)
    how = named.how or "known path"
    chosen: list[str] = []
    unseen: list[str] = []
    for path in candidates:
        if named.path is None and path in facts.unmounted:
            unseen.append(path)  # a path the component named there is an error, below
            continue
        if path in facts.errors:
            return Located(how=how, problem=f"cannot read {path}: {facts.errors[path]}", looked_for=(path,))
        found = _expand(path, ref.recursive, facts)
        if found:
            chosen.extend(found)
            if not ref.all_matches:
                break
    problem = named.problem if not chosen else None
    stats = tuple(facts.files[p] for p in dict.fromkeys(chosen))
    looked = tuple(p for p in candidates if p not in unseen)
    return Located(stats=stats, how=how, problem=problem, looked_for=looked, unseen=tuple(unseen))


def _file_outcome(
    ref: FileRef,
    *,
    facts: NodeFacts,
    ctx: Context,
    expected: str,
    judge: Callable[[FileStat], str | None],
    shown: Callable[[FileStat], str],
) -> Outcome:
    located = locate_files(ref, facts)
    if located.problem:
        return Outcome(
            Status.ERROR,
            (Evidence(subject=", ".join(located.looked_for), source=Source.FILE, expected=expected),),
            located.problem,
        )
    if not located.stats:
        looked = ", ".join(located.looked_for) or "(no path)"
        ev = Evidence(subject=looked, source=Source.FILE, location=located.how, found="absent")
        unseen = (
            f" (not looked at, not mounted in the audit Pod: {', '.join(located.unseen)})"
            if located.unseen
            else ""
        )
        if ctx.missing_file == "fail":
            if unseen:  # the file may be where the audit cannot look: no verdict
                return Outcome(Status.ERROR, (ev,), f"{looked}: not found on this node{unseen}")
            return Outcome(Status.FAIL, (ev,), f"{looked}: not found on this node, and the rule requires it")
        return Outcome(
            Status.NOT_APPLICABLE, (ev,), f"{looked}: not found on this node (allowed by the rule){unseen}"
        )
    bad = [(st, why) for st in located.stats if (why := judge(st)) is not None]
    if bad:
        evidence = tuple(
            Evidence(
                subject=st.path, source=Source.FILE, location=located.how, found=shown(st), expected=expected
            )
            for st, _ in bad
        )
        reasons = "; ".join(f"{st.path}: {why}" for st, why in bad[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        return Outcome(Status.FAIL, evidence, reasons + more)
    if len(located.stats) <= _EVIDENCE_CAP:
        evidence = tuple(
            Evidence(
                subject=st.path, source=Source.FILE, location=located.how, found=shown(st), expected=expected
            )
            for st in located.stats
        )
    else:
        first = located.stats[0].path
        evidence = (
            Evidence(
                subject=f"{first} and {len(located.stats) - 1} more",
                source=Source.FILE,
                location=located.how,
                found="all compliant",
                expected=expected,
            ),
        )
    return Outcome(Status.PASS, evidence)


def permissive_file_modes(audit: FileModeAudit, facts: NodeFacts, ctx: Context) -> Outcome:
    allowed = int(audit.max_mode, 8)

    def judge(st: FileStat) -> str | None:
        extra = st.mode & ~allowed & 0o7777
        return (
            f"mode {st.mode:04o} allows more than {allowed:04o} (extra bits {extra:04o})" if extra else None
        )

    return _file_outcome(
        audit.file,
        facts=facts,
        ctx=ctx,
        expected=f"at most {allowed:04o}",
        judge=judge,
        shown=lambda st: f"{st.mode:04o}",
    )


def _owner_text(st: FileStat) -> str:
    return f"{st.owner or f'uid {st.uid}'}:{st.group or f'gid {st.gid}'}"


def foreign_file_owners(audit: FileOwnerAudit, facts: NodeFacts, ctx: Context) -> Outcome:
    want = f"{audit.user}:{audit.group}"

    def judge(st: FileStat) -> str | None:
        return None if (st.owner, st.group) == (audit.user, audit.group) else f"owned by {_owner_text(st)}"

    return _file_outcome(audit.file, facts=facts, ctx=ctx, expected=want, judge=judge, shown=_owner_text)


# ---- combinations --------------------------------------------------------------------------------


def combined_outcome(kind: str, parts: Iterable[Outcome]) -> Outcome:
    """``all``: any fail → fail, else any error → error, else pass (parts that do not apply are
    ignored; all not-applicable → not-applicable). ``any``: any pass → pass, else any error → error,
    else any fail → fail, else not-applicable. Evidence items and reasons that several parts share
    are given once."""
    outcomes = list(parts)
    evidence = tuple(dict.fromkeys(e for o in outcomes for e in o.evidence))
    by_status: dict[Status, list[Outcome]] = {}
    for o in outcomes:
        by_status.setdefault(o.status, []).append(o)
    order = (
        [Status.FAIL, Status.ERROR, Status.PASS]
        if kind == "all"
        else [Status.PASS, Status.ERROR, Status.FAIL]
    )
    for status in order:
        if status in by_status:
            return _combined(status, evidence, by_status[status])
    return _combined(Status.NOT_APPLICABLE, evidence, outcomes)


def _combined(status: Status, evidence: tuple[Evidence, ...], parts: Iterable[Outcome]) -> Outcome:
    """An outcome whose reason joins the parts' reasons, each once (nested combinations included)."""
    reasons = tuple(dict.fromkeys(r for o in parts for r in (o.reasons or ((o.reason,) if o.reason else ()))))
    return Outcome(status, evidence, "; ".join(reasons) or None, reasons)


def audit_outcome(audit: Audit, facts: NodeFacts, ctx: Context) -> Outcome:
    if isinstance(audit, SettingAudit):
        return noncompliant_setting(audit, facts, ctx)
    if isinstance(audit, FileModeAudit):
        return permissive_file_modes(audit, facts, ctx)
    if isinstance(audit, FileOwnerAudit):
        return foreign_file_owners(audit, facts, ctx)
    if isinstance(audit, AllOf):
        return combined_outcome("all", (audit_outcome(a, facts, ctx) for a in audit.audits))
    if isinstance(audit, AnyOf):
        return combined_outcome("any", (audit_outcome(a, facts, ctx) for a in audit.audits))
    raise TypeError(f"unknown audit {type(audit).__name__}")  # pragma: no cover - the union is closed
