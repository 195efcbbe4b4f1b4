"""The golden tests' cluster (``data/cluster.yaml``) as views, at a fixed moment."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import yaml

from plumbob.api import (
    ClusterComplianceException,
    ComplianceProfile,
    ComplianceReport,
    ComplianceScan,
)
from plumbob.benchmarks.catalog import load_benchmark
from plumbob.reports.compliance import ProfileView, profile_view

DATA = Path(__file__).parent / "data" / "cluster.yaml"
GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def raw() -> dict[str, object]:
    return dict(yaml.safe_load(DATA.read_text()))


def view(*, evidence: bool = True) -> ProfileView:
    """The full view (reports read), or the summary view a list of profiles uses."""
    data = yaml.safe_load(DATA.read_text())
    return profile_view(
        ComplianceProfile.model_validate(data["profile"]),
        [ComplianceScan.model_validate(s) for s in data["scans"]],
        [ComplianceReport.model_validate(r) for r in data["reports"]] if evidence else None,
        [ClusterComplianceException.model_validate(e) for e in data["exceptions"]],
        load_benchmark("cis-1.12"),
        generated_at=NOW,
        generated_by="auditor@example.com",
    )
