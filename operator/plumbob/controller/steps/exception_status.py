"""ComplianceException and ClusterComplianceException: the state of every entry.

Exceptions are applied where results are counted (report status, scan aggregation, profile
status); this step only reports on the lists themselves. It decides and writes, for each list:

- each entry's state (active, unused, expired; :func:`~plumbob.controller.decisions.excepting.entry_state`)
  and how many node results it excepts right now, a summary, the next expiry, and conditions;
- one ``ExceptionExpired`` Event for each entry that has expired since the status last showed it.

It returns the time until the next expiry of any entry, so the pass after it runs on time and
the results it excepted count as failures again.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from plumbob.api import ClusterComplianceException, ComplianceException
from plumbob.api.exceptions import EntryState, ExceptionStatus
from plumbob.benchmarks.catalog import available, load_benchmark
from plumbob.controller.context import Context, built_status, conditions, iso, stalled
from plumbob.controller.decisions import excepting
from plumbob.controller.store import Snapshot


def known_rule_ids(snap: Snapshot) -> list[str]:
    """Every rule id an exception entry may name: the shipped benchmarks' and the profiles' custom rules."""
    ids = [r.id for b in available() for r in load_benchmark(b).rules]
    ids += [c.id for p in snap.profiles.values() for c in p.spec.custom_rules]
    return ids


def reconcile(ctx: Context, snap: Snapshot, entries: list[excepting.Entry], now: datetime) -> float:
    """Write every exception list's status; the seconds until the next entry expires."""
    matched: dict[excepting.EntryKey, int] = defaultdict(int)
    # Without an entry nothing is matched: a pass at thousands of reports skips the walk.
    for report in snap.reports.values() if entries else ():
        if not report.authoritative:
            continue
        if report.node is None:
            for _result, entry in excepting.apply_to_cluster_report(report, entries, now).excepted:
                matched[entry.key] += 1
            continue
        for entry in excepting.exceptions_applied(report, snap.nodes, entries, now).excepted.values():
            matched[entry.key] += 1
    wait = 30.0
    nxt = excepting.next_expiry(entries, now)
    if nxt is not None:
        wait = max(0.05, (nxt - now).total_seconds())
    exception_lists: list[ClusterComplianceException | ComplianceException] = [
        *snap.cluster_exceptions,
        *snap.exceptions,
    ]
    known = known_rule_ids(snap)  # once per pass, not per list
    for exc_obj in exception_lists:
        where = f"{exc_obj.metadata.namespace}/" if exc_obj.metadata.namespace else ""
        with ctx.isolated(exc_obj.kind, where + exc_obj.metadata.name):
            meta = exc_obj.metadata
            mine = [
                e
                for e in entries
                if (e.key.kind, e.key.name, e.key.namespace) == (exc_obj.kind, meta.name, meta.namespace)
            ]
            states = [(e, excepting.entry_state(e, matched[e.key], now)) for e in mine]
            current = exc_obj.status.to_dict() if exc_obj.status else {}
            before = {s.index: s.state for s in exc_obj.status.entries} if exc_obj.status else {}
            conds = list(exc_obj.status.conditions) if exc_obj.status else []
            counts = {s: sum(1 for _, st in states if st is s) for s in EntryState}
            upcoming = excepting.next_expiry(mine, now)
            bad = snap.entry_problems.get((f"{exc_obj.kind.lower()}s", meta.namespace, meta.name), {})
            dangling = {
                e.key.index: refs
                for e in mine
                if (
                    refs := excepting.dangling_references(
                        e, rule_ids=known, profiles=snap.profiles, namespaces=snap.namespaces or None
                    )
                )
            }
            message = (
                f"{counts[EntryState.ACTIVE]} active, {counts[EntryState.UNUSED]} unused, "
                f"{counts[EntryState.EXPIRED]} expired"
            ) + (f", {len(bad)} invalid" if bad else "")
            listed: list[dict[str, Any]] = [
                {
                    "index": e.key.index,
                    "state": st.value,
                    "matched": matched[e.key],
                    "expiresAt": iso(e.expires_at),
                }
                | ({"message": "; ".join(dangling[e.key.index])[:1024]} if e.key.index in dangling else {})
                for e, st in states
            ] + [
                {"index": i, "state": EntryState.INVALID.value, "message": why[:1024]}
                for i, why in bad.items()
            ]
            if bad or dangling:
                why = "; ".join(
                    [bad[i] for i in sorted(bad)] + [m for i in sorted(dangling) for m in dangling[i]]
                )
                health = stalled(
                    "InvalidEntry" if bad else "UnknownReference",
                    f"{why[:800]} (the other entries apply)",
                    "fix the entries to continue",
                )
            else:
                health = {
                    "Ready": (True, "Applied", message),
                    "Stalled": (False, "Valid", "entries are valid"),
                    "Reconciling": (False, "Applied", message),
                }
            new = {
                "observedGeneration": meta.generation,
                "summary": {
                    "total": len(states) + len(bad),
                    "active": counts[EntryState.ACTIVE],
                    "unused": counts[EntryState.UNUSED],
                    "expired": counts[EntryState.EXPIRED],
                    "invalid": len(bad),
                },
                "entries": sorted(listed, key=lambda s: int(s["index"])),
                "nextExpiry": iso(upcoming),
                "conditions": conditions(conds, meta.generation, now, health),
            }
            if new["nextExpiry"] is None:
                new["nextExpiry"] = None
            new = built_status(ExceptionStatus, new)
            ns = meta.namespace
            if ctx.patch(f"{exc_obj.kind.lower()}s", meta.name, current, new, ns):
                involved = {
                    "apiVersion": exc_obj.api_version,
                    "kind": exc_obj.kind,
                    "name": meta.name,
                    "uid": meta.uid or "",
                    "namespace": ns or "",
                }
                old_stalled = next(
                    (c.message for c in conds if c.type == "Stalled" and c.status == "True"), None
                )
                if (bad or dangling) and old_stalled != health["Stalled"][2]:
                    ctx.event(involved, "Warning", health["Stalled"][1], health["Stalled"][2])
                if meta.generation != (exc_obj.status.observed_generation if exc_obj.status else None):
                    for e in mine:
                        if excepting.is_blanket(e):
                            ctx.event(
                                involved,
                                "Warning",
                                "BlanketException",
                                f"entry {e.key.index} excepts every rule on every node and object "
                                f"(rules: ['*'] without a scope; owner {e.owner}): "
                                "nothing it covers can fail",
                            )
                for e, st in states:
                    if st is EntryState.EXPIRED and before.get(e.key.index) not in (None, EntryState.EXPIRED):
                        ctx.event(
                            involved,
                            "Warning",
                            "ExceptionExpired",
                            f"entry {e.key.index} ({', '.join(e.rules)}; owner {e.owner}) expired at "
                            f"{iso(e.expires_at)}: the results it excepted count as failures again",
                        )
    return wait
