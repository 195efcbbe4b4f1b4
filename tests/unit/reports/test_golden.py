"""The auditor's report and ``plumbob status`` against golden files (``make golden`` refreshes them).

Cases:
- html, markdown, json and junit renderings of ``data/cluster.yaml`` equal their goldens;
- ``plumbob status`` text (from the summary view, which reads no report) equals its golden, and
  the summary view agrees with the full one;
- what the goldens must show, checked directly so a careless refresh cannot hide it: every
  control, the not-applicable reason, the exception's reason/owner/ticket/expiry, scan times, who
  generated it, a print stylesheet, and identical worker results grouped into one line.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import pytest
from cluster_data import GOLDEN, NOW, view

from plumbob.reports.auditor import REPORT_FORMATS, render_report
from plumbob.reports.summary import render_status

UPDATE = os.environ.get("PLUMBOB_UPDATE_GOLDEN") == "1"
SUFFIX = {"html": "html", "markdown": "md", "json": "json", "junit": "xml"}


def check(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run `make golden`"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} differs from its golden: review, then `make golden`"
    )


@pytest.mark.parametrize("fmt", REPORT_FORMATS)
def test_report_matches_golden(fmt: str) -> None:
    check(f"report.{SUFFIX[fmt]}", render_report(view(), fmt))  # type: ignore[arg-type]


def test_status_matches_golden() -> None:
    check("status.txt", render_status([view(evidence=False)], NOW))


def test_summary_view_agrees_with_full_view() -> None:
    """The summary (from the scan's aggregation) and the full view (from the reports) say the same."""
    full, light = view(), view(evidence=False)
    assert light.summary == full.summary and light.score == full.score
    assert [(c.id, c.status, c.counts) for c in light.controls] == [
        (c.id, c.status, c.counts) for c in full.controls
    ]
    assert light.nodes == () and all(c.groups == () for c in light.controls)


def test_report_content() -> None:
    v = view()
    assert [c.id for c in v.controls] == ["1.1.1", "1.2.10", "3.1.1", "4.1.3", "4.2.1", "4.2.6"]
    by_id = {c.id: c for c in v.controls}
    assert by_id["4.2.1"].status == "fail" and by_id["4.2.1"].counts["fail"] == 2
    assert by_id["4.2.6"].status == "excepted"
    assert by_id["4.1.3"].status == "error"
    fail_group = by_id["4.2.1"].groups[0]
    assert fail_group.nodes == ("worker-1", "worker-2")  # identical results: one group
    html = render_report(v, "html")
    assert "@media print" in html and "<script" not in html and "http" not in html.split("</style>")[0]
    for needed in (
        "kube-proxy does not run on this node",
        "net-team@example.com",
        "NET-42",
        "2026-06-10",
        "2026-06-01 10:00:00 UTC",
        "2026-06-01 10:04:05 UTC",
        "auditor@example.com",
        "CIS Kubernetes Benchmark v1.12",
    ):
        assert needed in html, needed
    doc = json.loads(render_report(v, "json"))
    assert doc["scan"]["durationSeconds"] == 245.0
    assert {c["id"] for c in doc["controls"]} == set(by_id)
    suite = ET.fromstring(render_report(v, "junit")).find("testsuite")
    assert suite is not None and suite.get("tests") == "6" and suite.get("failures") == "2"
    assert suite.get("errors") == "1"
    md = render_report(v, "markdown")
    assert md.count("\n### ") == 6
