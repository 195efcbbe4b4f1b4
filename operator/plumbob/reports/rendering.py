"""Render an :class:`~plumbob.engine.findings.AuditResult` as text (a table), JSON or JUnit XML.

Text and JUnit come from jinja2 templates shipped as package data (``reports/templates``); JSON
is the result model itself plus each rule's remediation, so machines read exactly what the
engine produced.
"""

from __future__ import annotations

import functools
import json
import textwrap
from collections.abc import Mapping
from typing import Literal

import jinja2

from plumbob.engine.findings import AuditResult, Finding, Status

Format = Literal["text", "json", "junit"]
FORMATS: tuple[Format, ...] = ("text", "json", "junit")

_MARK = {
    Status.PASS: "PASS",
    Status.FAIL: "FAIL",
    Status.MANUAL: "MANUAL",
    Status.NOT_APPLICABLE: "N/A",
    Status.ERROR: "ERROR",
}


@functools.cache
def _environment(autoescape: bool) -> jinja2.Environment:
    # Autoescaping is for the XML template; the text report is plain text, never HTML.
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("plumbob.reports", "templates"),
        autoescape=autoescape,  # noqa: S701
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["mark"] = lambda status: _MARK[Status(status)]
    env.filters["wrap"] = lambda text, width=96, indent="      ": textwrap.fill(
        str(text), width=width, initial_indent=indent, subsequent_indent=indent
    )
    return env


def _evidence_line(f: Finding) -> list[str]:
    lines = []
    for e in f.evidence[:5]:
        where = f" @ {e.location}" if e.location else ""
        found = "(unset)" if e.found is None else e.found
        expected = f", expected {e.expected}" if e.expected else ""
        lines.append(f"{e.subject} [{e.source.value}{where}]: {found}{expected}")
    if len(f.evidence) > 5:
        lines.append(f"… and {len(f.evidence) - 5} more")
    return lines


def render(result: AuditResult, fmt: Format = "text", remediation: Mapping[str, str] | None = None) -> str:
    remediation = remediation or {}
    if fmt == "json":
        doc = result.model_dump(mode="json")
        doc["summary"] = result.counts()
        for finding in doc["findings"]:
            if finding["status"] in ("fail", "error") and finding["rule_id"] in remediation:
                finding["remediation"] = remediation[finding["rule_id"]]
        return json.dumps(doc, indent=2) + "\n"
    if fmt == "junit":
        return (
            _environment(True)
            .get_template("junit.xml.j2")
            .render(result=result, counts=result.counts(), remediation=remediation)
        )
    if fmt == "text":
        width = max((len(f.rule_id) for f in result.findings), default=4)
        rows = [
            {
                "finding": f,
                "id": f.rule_id.ljust(width),
                "mark": _MARK[f.status].ljust(6),
                "kind": ("scored" if f.scored else "manual").ljust(6),
                "evidence": _evidence_line(f) if f.status in (Status.FAIL, Status.ERROR) else [],
            }
            for f in result.findings
        ]
        return (
            _environment(False)
            .get_template("text.j2")
            .render(result=result, rows=rows, counts=result.counts(), remediation=remediation)
        )
    raise ValueError(f"unknown format {fmt!r}")
