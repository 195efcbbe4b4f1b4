"""The Kubernetes CVE data: a versioned, OSV-style document, shipped with the package and
replaceable at run time (the operator reads a ConfigMap).

Shape (``data/kubernetes-cves.json``)::

    schema             "plumbob.dev/kubernetes-cves/v1"
    data_version       the data's own version, e.g. "2026.12.02"
    published          the date the data was made (YYYY-MM-DD), shown in the profile status
    sources            where the facts come from
    newest_patches     minor → the newest patch release known on that date ("1.33": "1.33.13")
    vulnerabilities[]  id (CVE-…), published, severity, cvss_v3?, references[], affected[]:
                       package {ecosystem: kubernetes, name: kube-apiserver | kubelet | kube-proxy |
                       kube-controller-manager | kube-scheduler}, ranges[] of {type: SEMVER,
                       events: [{introduced}, {fixed} | {last_affected}]}

:func:`parse` validates a document completely and raises :class:`CveDataError` naming the first
problem, so bad data is refused whole and the caller keeps what it had.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = "plumbob.dev/kubernetes-cves/v1"
SHIPPED = Path(__file__).resolve().parent / "data" / "kubernetes-cves.json"
COMPONENTS = ("kube-apiserver", "kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler")
SEVERITIES = ("critical", "high", "medium", "low")
_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
_MINOR = re.compile(r"^\d+\.\d+$")


class CveDataError(ValueError):
    """CVE data that cannot be used; the message names where it is wrong."""


@dataclass(frozen=True, order=True)
class Version:
    """A Kubernetes version for comparison. Distribution suffixes (``-eks-1a2b``, ``+k3s1``,
    ``-gke.100``) are not pre-releases of Kubernetes: only ``alpha``/``beta``/``rc`` are."""

    major: int
    minor: int
    patch: int
    pre: tuple[int, str] = (1, "")  # (0, "alpha.1") sorts before the release (1, "")

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _VERSION.match(text.strip())
        if match is None:
            raise CveDataError(f"not a version: {text!r}")
        major, minor, patch, pre = match.groups()
        prerelease = pre is not None and pre.split(".")[0] in ("alpha", "beta", "rc")
        return cls(int(major), int(minor), int(patch or 0), (0, pre) if prerelease and pre else (1, ""))

    @property
    def minor_key(self) -> str:
        return f"{self.major}.{self.minor}"

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}" + (f"-{self.pre[1]}" if self.pre[0] == 0 else "")


@dataclass(frozen=True)
class Range:
    introduced: Version
    fixed: Version | None = None
    last_affected: Version | None = None

    def contains(self, version: Version) -> bool:
        if version < self.introduced:
            return False
        if self.fixed is not None:
            return version < self.fixed
        if self.last_affected is not None:
            return version <= self.last_affected
        return True


@dataclass(frozen=True)
class Vulnerability:
    id: str
    published: str
    severity: str
    references: tuple[str, ...]
    affected: dict[str, tuple[Range, ...]]  # component → ranges
    cvss_v3: float | None = None


@dataclass(frozen=True)
class CveData:
    data_version: str
    published: str
    vulnerabilities: tuple[Vulnerability, ...]
    newest_patches: dict[str, Version]
    sources: tuple[str, ...] = ()


def _need(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise CveDataError(f"{where}: {what}")


def _range(raw: Any, where: str) -> Range:
    _need(isinstance(raw, dict) and raw.get("type") == "SEMVER", where, "a range is {type: SEMVER, events}")
    events = raw.get("events")
    _need(isinstance(events, list) and bool(events), where, "events must be a non-empty list")
    introduced: Version | None = None
    fixed = last = None
    for event in events:
        _need(isinstance(event, dict) and len(event) == 1, where, f"event {event!r} must have one key")
        ((kind, value),) = event.items()
        _need(isinstance(value, str), where, f"event {kind} must be a version string")
        if kind == "introduced":
            introduced = Version(0, 0, 0) if value == "0" else Version.parse(value)
        elif kind == "fixed":
            fixed = Version.parse(value)
        elif kind == "last_affected":
            last = Version.parse(value)
        else:
            raise CveDataError(f"{where}: unknown event {kind!r}")
    _need(introduced is not None, where, "a range needs an 'introduced' event")
    assert introduced is not None
    _need(fixed is None or last is None, where, "give 'fixed' or 'last_affected', not both")
    _need(fixed is None or introduced < fixed, where, "'fixed' must come after 'introduced'")
    return Range(introduced, fixed, last)


def _vulnerability(raw: Any, index: int) -> Vulnerability:
    where = f"vulnerabilities[{index}]"
    _need(isinstance(raw, dict), where, "must be a mapping")
    vid = raw.get("id")
    _need(isinstance(vid, str) and bool(_CVE.match(vid)), where, f"id {vid!r} is not a CVE id")
    where = f"{where} ({vid})"
    unknown = set(raw) - {"id", "published", "severity", "cvss_v3", "references", "affected", "summary"}
    _need(not unknown, where, f"unknown fields {sorted(unknown)}")
    _need(
        isinstance(raw.get("published"), str) and bool(_DATE.match(raw["published"])),
        where,
        "published YYYY-MM-DD",
    )
    _need(raw.get("severity") in SEVERITIES, where, f"severity must be one of {', '.join(SEVERITIES)}")
    refs = raw.get("references", [])
    _need(isinstance(refs, list) and all(isinstance(r, str) for r in refs), where, "references: list of URLs")
    affected: dict[str, tuple[Range, ...]] = {}
    entries = raw.get("affected")
    _need(isinstance(entries, list) and bool(entries), where, "affected must be a non-empty list")
    for entry in entries:
        package = entry.get("package") if isinstance(entry, dict) else None
        name = package.get("name") if isinstance(package, dict) else None
        _need(name in COMPONENTS, where, f"package name {name!r} is not one of {', '.join(COMPONENTS)}")
        ranges = entry.get("ranges")
        _need(isinstance(ranges, list) and bool(ranges), where, f"{name}: ranges must be a non-empty list")
        affected[str(name)] = affected.get(str(name), ()) + tuple(
            _range(r, f"{where} {name}") for r in ranges
        )
    score = raw.get("cvss_v3")
    _need(score is None or isinstance(score, int | float), where, "cvss_v3 must be a number")
    return Vulnerability(
        id=vid, published=raw["published"], severity=raw["severity"], references=tuple(refs),
        affected=affected, cvss_v3=float(score) if score is not None else None,
    )  # fmt: skip


def parse(document: Any) -> CveData:
    """Validate a whole CVE document (already decoded from JSON)."""
    _need(isinstance(document, dict), "document", "must be a JSON object")
    _need(document.get("schema") == SCHEMA, "schema", f"must be {SCHEMA!r}, found {document.get('schema')!r}")
    version = document.get("data_version")
    _need(isinstance(version, str) and bool(version), "data_version", "must be a non-empty string")
    published = document.get("published")
    _need(
        isinstance(published, str) and bool(_DATE.match(published)), "published", "must be a date YYYY-MM-DD"
    )
    patches = document.get("newest_patches", {})
    _need(isinstance(patches, dict), "newest_patches", "must map minor versions to patch releases")
    newest: dict[str, Version] = {}
    for minor, patch in patches.items():
        _need(
            bool(_MINOR.match(str(minor))) and isinstance(patch, str),
            "newest_patches",
            f"bad entry {minor!r}",
        )
        newest[str(minor)] = Version.parse(patch)
        _need(newest[str(minor)].minor_key == minor, "newest_patches", f"{patch} is not a release of {minor}")
    vulns = document.get("vulnerabilities")
    _need(isinstance(vulns, list), "vulnerabilities", "must be a list")
    parsed = tuple(_vulnerability(v, i) for i, v in enumerate(vulns))
    ids = [v.id for v in parsed]
    _need(len(ids) == len(set(ids)), "vulnerabilities", "duplicate CVE ids")
    sources = document.get("sources", [])
    return CveData(str(version), str(published), parsed, newest, tuple(str(s) for s in sources))


def parse_text(text: str | bytes) -> CveData:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise CveDataError(f"not JSON: {exc}") from exc
    return parse(document)


def shipped() -> CveData:
    """The data shipped with this version of Plumbob."""
    return parse_text(SHIPPED.read_bytes())
