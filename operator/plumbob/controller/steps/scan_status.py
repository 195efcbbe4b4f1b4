"""ComplianceScan: how a scan progresses, and when it goes.

It decides and writes (a scan is created by :mod:`~plumbob.controller.launching`):

- each running scan's status (:class:`ScanStatus`): the parallelism and node deadline that govern
  it (:mod:`~plumbob.controller.decisions.scan_settings`), every target node's verdict from its
  Node, Job and report (:mod:`~plumbob.controller.decisions.scanning` decides), audit Jobs for
  pending nodes up to ``maxParallelNodes`` (:mod:`~plumbob.controller.decisions.jobs` builds
  them), Jobs of vanished nodes deleted, progress written at most every ``progress_interval``
  unless a node newly failed;
- completion: per-rule results aggregated across nodes with exceptions applied
  (:mod:`~plumbob.controller.decisions.aggregation`), drift against the previous completed scan,
  a ``ScanComplete`` Event; ``Stalled`` and a ``ScanFailed`` Event when the profile cannot be
  resolved;
- pruning (:func:`prune`): completed scans beyond the schedule's ``historyLimit`` are deleted.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from plumbob.api import ComplianceScan
from plumbob.api.common import MAX_NODE_PROBLEMS
from plumbob.api.scans import ComplianceScanStatus, NodeState, ScanPhase
from plumbob.api.schedules import (
    DEFAULT_HISTORY_LIMIT,
)
from plumbob.benchmarks.catalog import CatalogError, load_benchmark
from plumbob.controller.context import Context, built_status, conditions, iso, ref, stalled
from plumbob.controller.decisions import aggregation, excepting, scan_settings, scanning
from plumbob.controller.decisions.digests import ReportDigest
from plumbob.controller.decisions.jobs import audit_job, platform_host_paths
from plumbob.controller.store import Snapshot
from plumbob.kube import ConflictError, InvalidError, KubeError
from plumbob.names import LABEL_SCAN

log = logging.getLogger("plumbob.controller")


class ScanStatus:
    """Status of the running scans; remembers when each last had its progress written."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._last_progress: dict[str, float] = {}
        # scan -> node -> (the inputs of its verdict, the verdict): a pass at thousands of nodes
        # decides again only the nodes whose Node, Job or report changed (see _verdict).
        self._verdicts: dict[
            str, dict[str, tuple[tuple[object, ...], scanning.NodeVerdict | None, scanning.NodeVerdict]]
        ] = {}

    def reconcile(self, snap: Snapshot, entries: list[excepting.Entry], now: datetime) -> float:
        """Advance every unfinished scan, then prune; the seconds until a scan needs another look."""
        wait = 30.0
        by_scan: dict[str, dict[str, Any]] = defaultdict(dict)
        for job in snap.jobs.values():
            by_scan[job.scan][job.node] = job
        reports_by_node: dict[tuple[str, str], ReportDigest] = {
            (r.profile, r.node): r for r in snap.reports.values() if r.node is not None
        }
        running = set()
        for scan in snap.scans.values():
            phase = scan.status.phase if scan.status else None
            if phase in (ScanPhase.COMPLETE, ScanPhase.FAILED):
                if by_scan.get(scan.metadata.name):
                    self._remove_jobs(scan.metadata.name)  # left over when the operator stopped
                continue
            running.add(scan.metadata.name)
            with self.ctx.isolated("scan", scan.metadata.name, ref(scan)):
                wait = min(
                    wait,
                    self._scan(
                        snap, scan, by_scan.get(scan.metadata.name, {}), reports_by_node, entries, now
                    ),
                )
        for gone in set(self._verdicts) - running:
            del self._verdicts[gone]
        prune(self.ctx, snap)
        return wait

    def _remove_jobs(self, scan: str) -> None:
        """Delete the audit Jobs (and so their Pods) of a finished scan, in one request."""
        try:
            self.ctx.kube.delete_jobs(self.ctx.settings.namespace, f"{LABEL_SCAN}={scan}")
        except KubeError as exc:
            log.warning("could not delete the audit Jobs of scan %s: %s", scan, exc)

    def _scan(  # noqa: PLR0917 - private step with one caller, which passes all six
        self,
        snap: Snapshot,
        scan: ComplianceScan,
        jobs: dict[str, Any],
        reports_by_node: Mapping[tuple[str, str], ReportDigest],
        entries: list[excepting.Entry],
        now: datetime,
    ) -> float:
        """Advance one unfinished scan: verdicts, Jobs, status; the seconds until it needs another look."""
        scan = scan_settings.settings(scan, snap.schedules.values(), snap.profiles)
        name, meta = scan.metadata.name, scan.metadata
        current = scan.status.to_dict() if scan.status else {}
        conds = list(scan.status.conditions) if scan.status else []
        start = (scan.status.start_time if scan.status else None) or now
        profile = snap.profiles.get(scan.spec.profile)
        try:
            if profile is None:
                raise CatalogError(f"profile {scan.spec.profile} does not exist")
            tailoring = self.ctx.resolve(profile)
        except CatalogError as exc:
            new: dict[str, Any] = {
                "observedGeneration": meta.generation,
                "phase": ScanPhase.FAILED.value,
                "startTime": iso(start),
                "completionTime": iso(now),
                "conditions": conditions(
                    conds, meta.generation, now, stalled("CannotResolve", str(exc), "the scan cannot run")
                ),
            }
            new = built_status(ComplianceScanStatus, new)
            if self.ctx.patch("compliancescans", name, current, new) and profile is not None:
                self.ctx.event(ref(profile), "Warning", "ScanFailed", f"scan {name}: {exc}")
            return 30.0
        # a profile of cluster-level rules only audits no node: its scan completes at once
        benchmark = load_benchmark(tailoring.benchmark, tailoring.variables or None)
        node_rules = tailoring.node_rules(benchmark.rules)
        targets = scanning.target_nodes(
            snap.nodes.values() if node_rules else (),
            selector=profile.spec.node_selector,
            roles=[r.value for r in profile.spec.node_roles],
            scan_created=meta.creation_timestamp,
            jobs=jobs,
        )
        # Nodes already judged Failed/TimedOut/Unschedulable stay in the scan even once their Node
        # and Job are gone (a node deleted mid-scan must be reported, not forgotten).
        earlier = {
            p.node: scanning.NodeVerdict(p.state, p.reason, p.message)
            for p in (scan.status.nodes.problems if scan.status and scan.status.nodes else [])
        }
        verdicts = {}
        memo = self._verdicts.setdefault(name, {})
        for node_name in sorted(set(targets) | set(earlier)):
            report = reports_by_node.get((profile.metadata.name, node_name))
            if node_name in earlier and node_name not in snap.nodes and node_name not in jobs:
                verdicts[node_name] = earlier[node_name]
                continue
            node, job = snap.nodes.get(node_name), jobs.get(node_name)
            # The store replaces a digest whenever its object changes, so the same digests (and the
            # same profile and earlier verdict) give the same verdict, except while a finished
            # Job's report is awaited: that one turns NoResults with time.
            inputs = (profile, node, job, report)
            held = memo.get(node_name)
            if held is not None:
                was = held[0]
                if (
                    was[0] is profile
                    and was[1] is node
                    and was[2] is job
                    and was[3] is report
                    and held[1] == earlier.get(node_name)
                ):
                    verdicts[node_name] = held[2]
                    continue
            verdict = scanning.node_verdict(
                node_name,
                earlier=earlier.get(node_name),
                profile=profile.metadata.name,
                node=node,
                job=job,
                report=report,
                scan=name,
                tolerations=list(profile.spec.tolerations),
                now=now,
            )
            verdicts[node_name] = verdict
            awaiting = job is not None and job.complete and (report is None or report.scan != name)
            if not awaiting:
                memo[node_name] = (inputs, earlier.get(node_name), verdict)
            else:
                memo.pop(node_name, None)

        def start_audit(node_name: str) -> scanning.NodeVerdict | None:
            """Create the node's audit Job; the node's verdict now, or None when it stays Pending."""
            body = audit_job(
                scan=scan,
                node=node_name,
                tailoring=tailoring,
                tolerations=list(profile.spec.tolerations),
                namespace=self.ctx.settings.namespace,
                image=self.ctx.settings.image,
                resources=self.ctx.settings.agent_resources,
                image_pull_secrets=self.ctx.settings.image_pull_secrets,
                platform_paths=platform_host_paths(benchmark, snap.nodes.get(node_name)),
            )
            try:
                self.ctx.kube.create_job(self.ctx.settings.namespace, body)
            except ConflictError:
                pass  # created by an earlier pass whose event has not arrived yet
            except InvalidError as exc:  # the API refuses this Job: retrying cannot help
                return scanning.NodeVerdict(
                    NodeState.FAILED, "JobRejected", f"the API server refused the audit Job: {exc}"[:500]
                )
            except KubeError as exc:
                log.warning("could not create audit Job for %s on %s: %s", name, node_name, exc)
                return None
            return scanning.NodeVerdict(NodeState.RUNNING)

        # A new scan's first pass only writes its status; audits start on the next pass, so objects
        # applied together with the trigger (a schedule in the same GitOps folder) are seen first.
        starting = (
            scanning.pods_to_start(verdicts, scan.spec.max_parallel_nodes) if current.get("phase") else []
        )
        for node_name, started in zip(starting, self.ctx.in_parallel(start_audit, starting), strict=True):
            if started is not None:
                verdicts[node_name] = started
        for node_name, job in jobs.items():  # a Job whose node is gone can never finish: remove it
            if node_name not in snap.nodes and job.active:
                try:
                    self.ctx.kube.delete_job(job.namespace, job.name)
                except KubeError as exc:
                    log.warning("could not delete Job %s: %s", job.name, exc)
        counts = {s: 0 for s in NodeState}
        for v in verdicts.values():
            counts[v.state] += 1
        done = all(v.state in scanning.TERMINAL for v in verdicts.values())
        problems = [
            {"node": n, "state": v.state.value, "reason": v.reason, "message": v.message}
            for n, v in sorted(verdicts.items())
            if v.state in (NodeState.FAILED, NodeState.TIMED_OUT, NodeState.UNSCHEDULABLE)
        ][:MAX_NODE_PROBLEMS]
        nodes: dict[str, Any] = {
            "total": len(verdicts),
            "pending": counts[NodeState.PENDING],
            "running": counts[NodeState.RUNNING],
            "done": counts[NodeState.DONE],
            "failed": counts[NodeState.FAILED],
            "timedOut": counts[NodeState.TIMED_OUT],
            "unschedulable": counts[NodeState.UNSCHEDULABLE],
            "problems": problems,
        }
        new = {
            "observedGeneration": meta.generation,
            "phase": (ScanPhase.COMPLETE if done else ScanPhase.RUNNING).value,
            "startTime": iso(start),
            "benchmark": {
                "id": tailoring.benchmark,
                "name": "cis-kubernetes",
                "version": tailoring.benchmark.removeprefix("cis-"),
                "platform": profile.spec.benchmark.platform.value,
            },
            "nodes": nodes,
        }
        message = f"{counts[NodeState.DONE]}/{len(verdicts)} nodes audited"
        reason = "Complete" if done else "Running"
        progress = {
            "Ready": (done, reason, message),
            "Reconciling": (not done, reason, message),
            "Stalled": (False, reason, message),
        }
        if done:
            done_reports = [
                r
                for n, v in verdicts.items()
                if v.state is NodeState.DONE
                and (r := reports_by_node.get((profile.metadata.name, n))) is not None
            ]
            new |= aggregation.aggregate(done_reports, snap.nodes, entries, now)
            previous_scans = sorted(
                (
                    s
                    for s in snap.scans.values()
                    if s.spec.profile == scan.spec.profile
                    and s.metadata.name != name
                    and s.status is not None
                    and s.status.phase is ScanPhase.COMPLETE
                    and (s.metadata.creation_timestamp or now) <= (meta.creation_timestamp or now)
                ),
                key=lambda s: s.metadata.creation_timestamp or now,
            )
            if previous_scans:
                new["drift"]["previousScan"] = previous_scans[-1].metadata.name
            new["completionTime"] = iso(now)
            new["conditions"] = conditions(conds, meta.generation, now, progress)
        else:
            new["conditions"] = conditions(conds, meta.generation, now, progress)
            last = self._last_progress.get(name, 0.0)
            known = {p.get("node") for p in (current.get("nodes") or {}).get("problems", [])}
            new_problem = any(p["node"] not in known for p in problems)
            if (
                time.monotonic() - last < self.ctx.settings.progress_interval
                and current.get("phase")
                and not new_problem
            ):
                return self.ctx.settings.progress_interval
        new = built_status(ComplianceScanStatus, new)
        if self.ctx.patch("compliancescans", name, current, new):
            self._last_progress[name] = time.monotonic()
            if done:
                self._last_progress.pop(name, None)
                if jobs:
                    self._remove_jobs(name)
                summary = new.get("summary", {})
                self.ctx.event(
                    ref(profile),
                    "Normal",
                    "ScanComplete",
                    f"scan {name}: {message}; {summary.get('fail', 0)} rule(s) failing, "
                    f"{nodes['failed'] + nodes['timedOut']} node(s) failed, "
                    f"{nodes['unschedulable']} unschedulable",
                )
        return 1.0 if not done else 30.0


def prune(ctx: Context, snap: Snapshot) -> None:
    """Delete the oldest finished scans of each profile beyond its schedule's ``historyLimit``."""
    by_profile: dict[str, list[ComplianceScan]] = defaultdict(list)
    for scan in snap.scans.values():
        if scan.status and scan.status.phase in (ScanPhase.COMPLETE, ScanPhase.FAILED):
            by_profile[scan.spec.profile].append(scan)
    for profile_name, scans in by_profile.items():
        profile = snap.profiles.get(profile_name)
        sched = (
            scan_settings.schedule_for(snap.schedules.values(), snap.profiles, profile) if profile else None
        )
        limit = sched.spec.history_limit if sched else DEFAULT_HISTORY_LIMIT
        scans.sort(key=lambda s: s.metadata.creation_timestamp or datetime.min.replace(tzinfo=UTC))
        for old in scans[:-limit] if len(scans) > limit else []:
            try:
                ctx.kube.delete_object("compliancescans", old.metadata.name)
            except KubeError as exc:
                log.warning("could not prune scan %s: %s", old.metadata.name, exc)
