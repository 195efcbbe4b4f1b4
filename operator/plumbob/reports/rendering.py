"""Render an :class:`~plumbob.engine.findings.AuditResult` as text (a table), JSON or JUnit XML.

Text is built here in plain Python (``plumbob audit`` prints it by default, and a node audit must
not pay for a template engine's import); JUnit comes from a jinja2 template shipped as package
data (``reports/templates``), imported only for that format; JSON is the result itself plus each
rule's remediation, so machines read exactly what the engine produced.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

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


if TYPE_CHECKING:
    import jinja2


def _wrap(text: str, width: int = 96, indent: str = "      ") -> str:
    import textwrap  # noqa: PLC0415 - only the text and JUnit formats wrap lines

    return textwrap.fill(str(text), width=width, initial_indent=indent, subsequent_indent=indent)


@functools.cache
def _environment(autoescape: bool) -> jinja2.Environment:
    import jinja2  # noqa: PLC0415 - only the JUnit format needs a template engine

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("plumbob.reports", "templates"),
        autoescape=autoescape,  # noqa: S701
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["mark"] = lambda status: _MARK[Status(status)]
    env.filters["wrap"] = _wrap
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


def _text(result: AuditResult, remediation: Mapping[str, str]) -> str:
    counts = result.counts()
    width = max((len(f.rule_id) for f in result.findings), default=4)
    roles = ", ".join(result.roles) or "none detected"
    lines = [
        f"{result.benchmark} (v{result.benchmark_version}) on {result.node or 'this node'} — roles: {roles}",
        "",
    ]
    for f in result.findings:
        kind = "scored" if f.scored else "manual"
        lines.append(f"{f.rule_id.ljust(width)}  {_MARK[f.status].ljust(6)}  {kind.ljust(6)}  {f.title}")
        if f.status in (Status.FAIL, Status.ERROR, Status.NOT_APPLICABLE) and f.reason:
            lines.append(_wrap(f.reason))
        if f.status in (Status.FAIL, Status.ERROR):
            lines.extend(_wrap(f"evidence: {line}") for line in _evidence_line(f))
            if f.rule_id in remediation:
                lines.append(_wrap(f"fix: {remediation[f.rule_id]}"))
    coverage = result.coverage()
    lines += [
        "",
        f"{counts['pass']} pass, {counts['fail']} fail, {counts['error']} error, {counts['manual']} manual, "
        f"{counts['not-applicable']} not applicable",
        f"{coverage['tested']} tested, {coverage['provider-managed']} provider-managed, "
        f"{coverage['manual']} manual, {coverage['not-applicable']} not applicable on this node",
    ]
    return "\n".join(lines) + "\n"


def render(result: AuditResult, fmt: Format = "text", remediation: Mapping[str, str] | None = None) -> str:
    remediation = remediation or {}
    if fmt == "json":
        doc = result.as_json()
        doc["summary"] = result.counts()
        doc["coverage"] = result.coverage()
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
        return _text(result, remediation)
    raise ValueError(f"unknown format {fmt!r}")
