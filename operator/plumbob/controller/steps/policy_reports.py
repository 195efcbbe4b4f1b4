"""Reconcile step: export settled ``ComplianceReport`` objects as PolicyReports and/or OpenReports.

Runs only for the report APIs the API server serves (``wgpolicyk8s.io/v1alpha2``,
``openreports.io/v1alpha1``; discovery is re-read every minute, so installing Policy Reporter
later needs no restart). A report is exported once the operator has judged it (its
``status.observedGeneration`` caught up with its ``generation``) and again whenever its
results or status change. The bodies come from :mod:`plumbob.reports.policyreports`; each
carries the fingerprint of what it was made from, so a restarted operator rewrites nothing that
is already current. Exported objects are owned by their ``ComplianceReport``: Kubernetes garbage
collection removes them with it, and with the profile.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

from plumbob.api.reports import ComplianceReport
from plumbob.benchmarks.catalog import CatalogError, load_benchmark
from plumbob.benchmarks.rules import Benchmark
from plumbob.controller.context import Context
from plumbob.controller.decisions.digests import ReportDigest
from plumbob.controller.store import Snapshot
from plumbob.kube import InvalidError, KubeError, NotFoundError
from plumbob.names import LABEL_PROFILE
from plumbob.reports.policyreports import (
    ANNOTATION_FINGERPRINT,
    FLAVOURS,
    LABEL_MANAGED_BY,
    SOURCE,
    Flavour,
    export_name,
    policy_reports,
)

log = logging.getLogger("plumbob.controller")
DISCOVERY_INTERVAL = 60.0


def _key(digest: ReportDigest, flavours: list[Flavour]) -> str:
    text = json.dumps(
        [digest.uid, digest.generation, digest.status, [f.api_version for f in flavours]], sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()


class PolicyReportExport:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.exported: dict[str, str] = {}  # report name -> _key of what was exported
        self._current: dict[str, ReportDigest] = {}  # digests already current: unchanged objects are skipped
        self._flavours: tuple[float, list[Flavour]] | None = None

    def flavours(self) -> list[Flavour]:
        now = time.monotonic()
        if self._flavours is None or now - self._flavours[0] > DISCOVERY_INTERVAL:
            try:
                served = self.ctx.kube.served_versions()
            except KubeError as exc:
                log.warning("API discovery failed; PolicyReports not exported this pass: %s", exc)
                return self._flavours[1] if self._flavours else []
            found = [f for f in FLAVOURS if f.api_version in served]
            if self._flavours is not None and found != self._flavours[1]:
                self._current.clear()  # a new report API: everything is exported again
            self._flavours = (now, found)
        return self._flavours[1]

    def reconcile(self, snap: Snapshot) -> None:
        flavours = self.flavours()
        if not flavours:
            return
        todo = [
            d
            for d in snap.reports.values()
            if d.observed_generation == d.generation and self.exported.get(d.name) != _key(d, flavours)
        ]
        for digest, ok in zip(
            todo, self.ctx.in_parallel(lambda d: self._export(d, flavours), todo), strict=True
        ):
            if ok:
                self.exported[digest.name] = _key(digest, flavours)
        for gone in set(self.exported) - set(snap.reports):
            del self.exported[gone]

    def _export(self, digest: ReportDigest, flavours: list[Flavour]) -> bool:
        """Write one report's exports; whether they are now current (False: retry next pass)."""
        try:
            report = ComplianceReport.model_validate(
                self.ctx.kube.get_object("compliancereports", digest.name)
            )
        except NotFoundError:
            return True  # deleted meanwhile: garbage collection takes its exports
        except (KubeError, ValueError) as exc:
            log.warning("could not read report %s for export: %s", digest.name, exc)
            return False
        benchmark = _benchmark(report.spec.benchmark)
        ok = True
        for flavour in flavours:
            bodies = policy_reports(report, flavour, benchmark, self.ctx.clock())
            for body in bodies:
                ok = self._write(flavour, body) and ok
            if report.spec.node_name is None:
                ok = self._prune(flavour, report, bodies) and ok
        return ok

    def _write(self, flavour: Flavour, body: dict[str, Any]) -> bool:
        meta = body["metadata"]
        namespaced = "namespace" in meta
        plural = flavour.plural if namespaced else flavour.cluster_plural
        kube = self.ctx.kube
        try:
            try:
                current = kube.get_custom(
                    flavour.group, flavour.version, plural, meta["name"], meta.get("namespace")
                )
                fp = (current.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_FINGERPRINT)
                if fp == meta["annotations"][ANNOTATION_FINGERPRINT]:
                    return True
            except NotFoundError:
                pass
            kube.put_custom(flavour.group, flavour.version, plural, body)
        except InvalidError as exc:
            log.warning("the API server refused %s %s: %s", body["kind"], meta["name"], exc)
            return True  # retrying the same body would be refused again
        except KubeError as exc:
            log.warning("could not write %s %s: %s", body["kind"], meta["name"], exc)
            return False
        return True

    def _prune(self, flavour: Flavour, report: ComplianceReport, bodies: list[dict[str, Any]]) -> bool:
        """Delete namespaced exports of a cluster-level report for namespaces it no longer has findings in."""
        keep = {b["metadata"].get("namespace") for b in bodies}
        selector = f"{LABEL_MANAGED_BY}={SOURCE},{LABEL_PROFILE}={report.spec.profile}"
        name = export_name(report)
        try:
            for item in self.ctx.kube.list_custom(flavour.group, flavour.version, flavour.plural, selector):
                meta = item.get("metadata") or {}
                if meta.get("name") == name and meta.get("namespace") not in keep:
                    self.ctx.kube.delete_custom(
                        flavour.group, flavour.version, flavour.plural, name, meta.get("namespace")
                    )
        except KubeError as exc:
            log.warning("could not prune %s of %s: %s", flavour.plural, report.metadata.name, exc)
            return False
        return True


def _benchmark(benchmark_id: str) -> Benchmark | None:
    try:
        return load_benchmark(benchmark_id) if benchmark_id else None
    except CatalogError:
        return None
