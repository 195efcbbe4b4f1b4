"""The auditor's report of one profile: HTML (printable), Markdown, JSON or JUnit XML.

Rendered from a :class:`~plumbob.reports.compliance.ProfileView` with jinja2 templates shipped
as package data (``templates/audit.*.j2``); JSON is built here so its shape is a plain, stable
document. Pure: the view carries the generation time and who generated it.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

import jinja2

from plumbob.reports.compliance import ControlView, NodeGroup, ProfileView, ScanView

ReportFormat = Literal["html", "markdown", "json", "junit"]
REPORT_FORMATS: tuple[ReportFormat, ...] = ("html", "markdown", "json", "junit")


def iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    whole = round(seconds)
    if whole < 120:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60}s"
    if whole < 172800:
        return f"{whole // 3600}h {whole % 3600 // 60}m"
    return f"{whole // 86400}d {whole % 86400 // 3600}h"


def score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def md(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("*", "\\*")


@functools.cache
def environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("plumbob.reports", "templates"),
        autoescape=autoescape,  # noqa: S701 - on for HTML/XML; Markdown escapes with its own filter
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(iso=iso, duration=duration, score=score, md=md, u=lambda t: quote(str(t), safe=""))
    return env


def _group(g: NodeGroup) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": g.status,
        "nodes": list(g.nodes),
        "reason": g.reason,
        "evidence": [{k: v for k, v in vars(e).items() if v is not None and v != ""} for e in g.evidence],
    }
    if g.exception is not None:
        out["exception"] = g.exception.to_dict()
    return out


def _control(c: ControlView) -> dict[str, Any]:
    return {
        "id": c.id,
        "title": c.title,
        "section": c.section,
        "sectionTitle": c.section_title,
        "severity": c.severity,
        "scored": c.scored,
        "status": c.status,
        "counts": c.counts,
        "remediation": c.remediation,
        "guidance": c.guidance,
        "results": [_group(g) for g in c.groups],
    }


def _scan(s: ScanView | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {
        "name": s.name,
        "trigger": s.trigger,
        "schedule": s.schedule,
        "phase": s.phase,
        "startTime": iso(s.start_time) or None,
        "completionTime": iso(s.completion_time) or None,
        "durationSeconds": s.duration_seconds,
        "nodes": {"total": s.nodes_total, "done": s.nodes_done, "failed": s.nodes_failed},
        "problems": [{"node": n, "state": st, "reason": r} for n, st, r in s.problems],
        "drift": {
            "regressions": s.regressions,
            "restorations": s.restorations,
            "regressedRules": list(s.regressed_rules),
            "restoredRules": list(s.restored_rules),
        },
    }


def as_document(view: ProfileView) -> dict[str, Any]:
    """The report as a JSON-compatible document (the ``json`` format)."""
    return {
        "profile": view.name,
        "generatedAt": iso(view.generated_at),
        "generatedBy": view.generated_by,
        "benchmark": {
            "id": view.benchmark_id,
            "title": view.benchmark_title,
            "version": view.benchmark_version,
            "platform": view.platform,
            "kubernetesVersion": view.kubernetes_version,
        },
        "scope": view.scope,
        "tailoring": view.tailoring,
        "summary": view.summary.to_dict(),
        "score": view.score,
        "scan": _scan(view.scan),
        "notes": list(view.notes),
        "controls": [_control(c) for c in view.controls],
        "exceptions": [
            {
                "kind": e.kind,
                "namespace": e.namespace,
                "name": e.name,
                "entry": e.entry,
                "rules": list(e.rules),
                "reason": e.reason,
                "owner": e.owner,
                "ticket": e.ticket,
                "expires": e.expires,
                "state": e.state,
            }
            for e in view.exceptions
        ],
    }


def render_report(view: ProfileView, fmt: ReportFormat) -> str:
    if fmt == "json":
        return json.dumps(as_document(view), indent=2, ensure_ascii=False) + "\n"
    template = {"html": "audit.html.j2", "markdown": "audit.md.j2", "junit": "audit.junit.xml.j2"}.get(fmt)
    if template is None:
        raise ValueError(f"unknown format {fmt!r}")
    return environment(fmt != "markdown").get_template(template).render(v=view)
