"""Read what a person's view needs from the API server (through :mod:`plumbob.kube`) into views.

Used by ``plumbob report``, ``plumbob status`` and the web dashboard. Everything is read from
the API, never from an operator's memory, so a standby replica (or a laptop with a kubeconfig)
shows exactly what the cluster holds. Objects that do not parse are skipped, not fatal: the
operator reports them on their own ``Stalled`` condition.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from plumbob.api import (
    ClusterComplianceException,
    ComplianceException,
    ComplianceProfile,
    ComplianceReport,
    ComplianceScan,
)
from plumbob.benchmarks.catalog import CatalogError, load_benchmark
from plumbob.benchmarks.rules import Benchmark
from plumbob.kube import Kube, NotFoundError
from plumbob.names import LABEL_PROFILE
from plumbob.reports.compliance import ProfileView, profile_view

log = logging.getLogger("plumbob.dashboards")
M = TypeVar("M")


def _parse(parse: Callable[[Any], M], items: list[Any]) -> list[M]:
    out = []
    for item in items:
        try:
            out.append(parse(item))
        except (ValidationError, ValueError) as exc:
            log.debug("skipping %s: %s", (item.get("metadata") or {}).get("name"), exc)
    return out


def _benchmark(profile: ComplianceProfile, scans: list[ComplianceScan]) -> Benchmark | None:
    ids = [s.status.benchmark.id for s in scans if s.status and s.status.benchmark]
    resolved = profile.status.resolved_benchmark if profile.status else None
    benchmark_id = ids[-1] if ids else (resolved.id if resolved else None)
    if benchmark_id is None:
        return None
    try:
        return load_benchmark(benchmark_id, profile.spec.variables or None)
    except CatalogError:
        return None


class Reader:
    """One API client; each call reads afresh (a dashboard page, a report)."""

    def __init__(self, kube: Kube | None = None, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.kube = kube or Kube()
        self.clock = clock
        self._who: str | None = None

    def whoami(self) -> str:
        if self._who is None:
            self._who = self.kube.whoami()
        return self._who

    def profile_names(self) -> list[str]:
        return sorted(p["metadata"]["name"] for p in self.kube.list_objects("complianceprofiles"))

    def exceptions(self) -> list[ClusterComplianceException | ComplianceException]:
        cluster = _parse(
            ClusterComplianceException.model_validate, self.kube.list_objects("clustercomplianceexceptions")
        )
        namespaced = _parse(
            ComplianceException.model_validate, self.kube.list_objects("complianceexceptions")
        )
        return [*cluster, *namespaced]

    def profile(
        self, name: str, exceptions: list[Any] | None = None, *, evidence: bool = True
    ) -> ProfileView | None:
        """The view of one profile, or None when there is no such profile.

        ``evidence=False`` reads no reports: the summary view, from the latest scan's aggregation.
        """
        try:
            profile = ComplianceProfile.model_validate(self.kube.get_object("complianceprofiles", name))
        except NotFoundError:
            return None
        selector = f"{LABEL_PROFILE}={name}"
        scans = _parse(
            ComplianceScan.model_validate, self.kube.list_objects("compliancescans", labels=selector)
        )
        scans = [s for s in scans if s.spec.profile == name]
        reports = _parse(
            ComplianceReport.model_validate, self.kube.list_objects("compliancereports", labels=selector)
        )
        return profile_view(
            profile,
            scans,
            reports,
            self.exceptions() if exceptions is None else exceptions,
            _benchmark(profile, scans),
            generated_at=self.clock(),
            generated_by=self.whoami(),
        )

    def profiles(self) -> list[ProfileView]:
        """Summary views of every profile (no report is read)."""
        exceptions = self.exceptions()
        views = [self.profile(name, exceptions, evidence=False) for name in self.profile_names()]
        return [v for v in views if v is not None]
