"""``plumbob status``: every profile at a glance, as plain text for a terminal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from plumbob.reports.auditor import duration, score
from plumbob.reports.compliance import ProfileView

EXPIRY_WARNING = timedelta(days=14)
TOP_FAILING = 5


def _age(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    return f"{duration((now - then).total_seconds())} ago"


def render_status(views: Sequence[ProfileView], now: datetime) -> str:
    if not views:
        return "No ComplianceProfile in this cluster. Create one: see docs/tutorial.\n"
    width = max(len("PROFILE"), *(len(v.name) for v in views))
    lines = [
        f"{'PROFILE'.ljust(width)}  SCORE   PASS  FAIL  EXC  ERR  MAN   N/A  LAST SCAN        DRIFT",
    ]
    for v in views:
        s = v.summary
        last = _age(v.scan.completion_time if v.scan else None, now)
        drift = f"+{v.scan.regressions}/-{v.scan.restorations}" if v.scan else ""
        lines.append(
            f"{v.name.ljust(width)}  {score(v.score).rjust(6)}  {s.pass_:4d}  {s.fail:4d}  {s.excepted:3d}"
            f"  {s.error:3d}  {s.manual:3d}  {s.not_applicable:4d}  {last.ljust(15)}  {drift}"
        )
    for v in views:
        failing = sorted(
            (c for c in v.controls if c.status == "fail"), key=lambda c: (-c.failing_nodes, c.id)
        )
        expiring = [e for e in v.exceptions if e.state != "expired" and e.expires_at - now < EXPIRY_WARNING]
        problems = v.scan.problems if v.scan else ()
        if not (failing or expiring or problems or v.notes):
            continue
        lines += ["", f"{v.name}:"]
        for c in failing[:TOP_FAILING]:
            lines.append(f"  FAIL {c.id} {c.title} (on {c.failing_nodes} node(s), {c.severity})")
        if len(failing) > TOP_FAILING:
            lines.append(
                f"  … and {len(failing) - TOP_FAILING} more failing rule(s): plumbob report {v.name}"
            )
        for node, state, reason in problems[:TOP_FAILING]:
            lines.append(f"  NODE {node}: {state} ({reason})")
        for e in expiring:
            when = "expired" if e.expires_at <= now else f"expires in {duration(e.seconds_left(now))}"
            lines.append(f"  EXCEPTION {e.name}#{e.entry} ({', '.join(e.rules)}) {when}, owner {e.owner}")
        lines += [f"  note: {n}" for n in v.notes]
    return "\n".join(lines) + "\n"
