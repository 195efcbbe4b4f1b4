"""Platform variants of a benchmark, as data: where a distribution keeps things and what it changes.

A variant lives in ``benchmarks/data/<id>/platform.yaml`` (for example ``k3s-cis-1.12``) and
names the benchmark it derives from (``base``). Deriving it (:func:`derive`, done when the catalog
is compiled, so the audit pays nothing) copies the base's rules and applies, in this order:

``paths``
    prefix replacements in every rule's known file locations (``/etc/kubernetes/pki/`` →
    ``/var/lib/rancher/k3s/server/tls/``); a rule still finds a file through the component's own
    flag first, so these matter only where the component does not name the file.
``defaults``
    settings the distribution applies itself (component → flag → value): they become the
    documented default of every setting audit of that flag, so an unset flag is judged by what
    the distribution really runs with, and an explicit flag still wins.
``host_directories``
    directories outside the ones every audit Pod mounts (``/etc``, ``/var/lib``, ``/usr/lib``,
    ``/lib``) where every node of the platform keeps files its rules read, named by the rules or
    by the components' own flags (GKE: ``/home/kubernetes``). The operator mounts them, read-only,
    in the audit Pods of the nodes that show this platform themselves.
``rules``
    per-rule deltas, each for a list of rule globs: ``not_applicable`` (the reason the control
    cannot apply here, e.g. no static pod manifests in k3s), or ``provider_managed`` (a hosted
    control plane: the provider owns the control; the value is the link to the provider's
    statement of its responsibility), or ``guidance`` (replaces a manual rule's guidance).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from plumbob.benchmarks.rules import Component, check_host_directories

_STRICT: Any = {"extra": "forbid"}
_ID = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
PROVIDER_MANAGED_REASON = "managed by the provider"


@dataclass(frozen=True, kw_only=True)
class RuleDelta:
    __pydantic_config__ = _STRICT
    rules: list[str]
    not_applicable: str | None = None
    provider_managed: str | None = None
    guidance: str | None = None

    def __post_init__(self) -> None:
        if not self.rules:
            raise ValueError("a rule delta names at least one rule glob")
        if sum(x is not None for x in (self.not_applicable, self.provider_managed, self.guidance)) != 1:
            raise ValueError(
                f"rules {self.rules}: give exactly one of not_applicable, provider_managed, guidance"
            )
        if self.provider_managed is not None and not self.provider_managed.startswith("https://"):
            raise ValueError("provider_managed is the https link to the provider's responsibility statement")


@dataclass(frozen=True, kw_only=True)
class PlatformVariant:
    """``platform.yaml``: a benchmark derived from ``base`` for one platform."""

    __pydantic_config__ = _STRICT
    id: str
    platform: str
    base: str
    title: str
    responsibility: str | None = None
    paths: dict[str, str] = field(default_factory=dict)
    defaults: dict[Component, dict[str, str]] = field(default_factory=dict)
    host_directories: list[str] = field(default_factory=list)
    rules: list[RuleDelta] = field(default_factory=list)

    def __post_init__(self) -> None:
        for value, what in ((self.id, "id"), (self.platform, "platform"), (self.base, "base")):
            if not _ID.match(value):
                raise ValueError(f"{what} {value!r} is not a lower-case identifier")
        check_host_directories(self.host_directories)
        for flags in self.defaults.values():
            for flag in flags:
                if not flag.startswith("--"):
                    raise ValueError(f"default {flag!r} must be a flag starting with --")


def _replace_paths(value: Any, paths: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {k: _replace_paths(v, paths) for k, v in value.items()}
        if isinstance(out.get("file"), dict) and "paths" in out["file"]:
            out["file"]["paths"] = list(dict.fromkeys(_new_path(p, paths) for p in out["file"]["paths"]))
        return out
    if isinstance(value, list):
        return [_replace_paths(v, paths) for v in value]
    return value


def _new_path(path: str, paths: dict[str, str]) -> str:
    for old, new in paths.items():
        if path == old or (old.endswith("/") and path.startswith(old)):
            return new + path[len(old) :]
    return path


def _apply_defaults(audit: Any, defaults: dict[Component, dict[str, str]], platform: str) -> Any:
    if not isinstance(audit, dict):
        return audit
    if audit.get("type") in ("all", "any"):
        return {**audit, "audits": [_apply_defaults(a, defaults, platform) for a in audit["audits"]]}
    if audit.get("type") == "setting":
        value = defaults.get(Component(audit["component"]), {}).get(audit.get("flag") or "")
        if value is not None:
            out = {**audit, "default": value, "default_by": platform}
            out.pop("config_default", None)
            return out
    return audit


def derive(base: dict[str, Any], variant: PlatformVariant) -> dict[str, Any]:
    """The plain (JSON) benchmark of ``variant``, from the plain benchmark of its base."""
    unused = [
        g
        for d in variant.rules
        for g in d.rules
        if not any(fnmatch.fnmatchcase(r["id"], g) for r in base["rules"])
    ]
    if unused:
        raise ValueError(
            f"{variant.id}: rule globs that match no rule of {variant.base}: {', '.join(unused)}"
        )
    rules = []
    for source in base["rules"]:
        rule = dict(source)
        if rule.get("audit") is not None:
            rule["audit"] = _apply_defaults(
                _replace_paths(rule["audit"], variant.paths), variant.defaults, variant.platform
            )
        for delta in variant.rules:
            if not any(fnmatch.fnmatchcase(rule["id"], g) for g in delta.rules):
                continue
            if delta.not_applicable is not None:
                rule["not_applicable"] = delta.not_applicable
            elif delta.provider_managed is not None:
                rule["provider_managed"] = delta.provider_managed
            elif delta.guidance is not None:
                rule["guidance"] = delta.guidance
        rules.append(rule)
    out = {**base, "id": variant.id, "title": variant.title, "rules": rules}
    out["platform"], out["base"] = variant.platform, variant.base
    if variant.responsibility is not None:
        out["responsibility"] = variant.responsibility
    if variant.host_directories:
        out["host_directories"] = list(variant.host_directories)
    return out
