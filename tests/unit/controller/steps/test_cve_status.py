"""The profile's Kubernetes CVE status and where its data comes from.

Cases:
- exposures of the API server and of each node's kubelet and kube-proxy, most severe first, with
  patch-level findings; nodes without a kube-proxy version are skipped for it;
- the data source: shipped by default; a valid ConfigMap replaces it (source names it); a bad one
  is refused, the data in use stays and ``dataStatus`` says why; removing the ConfigMap returns to
  the shipped data; the ConfigMap is looked at again only after the refresh interval.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from plumbob.controller.steps import cve_status
from plumbob.controller.steps.cve_status import CONFIGMAP, KEY, CveSource, cluster_exposures, status_of
from plumbob.cves.data import SHIPPED, shipped


class FakeKube:
    def __init__(self) -> None:
        self.data: dict[str, str] | None = None
        self.reads = 0

    def get_configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        assert (namespace, name) == ("plumbob-system", CONFIGMAP)
        self.reads += 1
        return self.data


class FakeSettings:
    namespace = "plumbob-system"


class FakeCtx:
    def __init__(self) -> None:
        self.kube = FakeKube()
        self.settings = FakeSettings()


def test_cluster_exposures() -> None:
    found = cluster_exposures(shipped(), "v1.29.3", [("n1", "v1.30.2", ""), ("n2", "v1.36.3", "v1.30.2")])
    keys = {(e.cve, e.component, e.where) for e in found}
    assert ("CVE-2024-3177", "kube-apiserver", "API server") in keys
    assert ("CVE-2024-10220", "kubelet", "n1") in keys
    assert ("patch-level", "kubelet", "n1") in keys
    assert ("patch-level", "kube-proxy", "n2") in keys
    assert not any(e.where == "n1" and e.component == "kube-proxy" for e in found)
    order = ["critical", "high", "medium", "low"]
    assert [order.index(e.severity) for e in found] == sorted(order.index(e.severity) for e in found)


def _doc(extra_cve: str | None = None, version: str = "test-1") -> str:
    doc: dict[str, Any] = json.loads(SHIPPED.read_text())
    doc["data_version"] = version
    if extra_cve:
        doc["vulnerabilities"].append(
            {
                "id": extra_cve,
                "published": "2026-12-01",
                "severity": "critical",
                "references": ["https://example.invalid/advisory"],
                "affected": [
                    {
                        "package": {"ecosystem": "kubernetes", "name": "kubelet"},
                        "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}],
                    }
                ],
            }
        )
    return json.dumps(doc)


def test_source_override_refusal_and_return(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cve_status, "REFRESH_SECONDS", 0.0)
    ctx = FakeCtx()
    source = CveSource(ctx)  # type: ignore[arg-type]
    source.refresh()
    assert source.source == "package" and source.problem is None
    ctx.kube.data = {KEY: _doc("CVE-2099-0001", "override-1")}
    source.refresh()
    assert (
        source.source == f"ConfigMap plumbob-system/{CONFIGMAP}" and source.data.data_version == "override-1"
    )
    found = cluster_exposures(source.data, "v1.36.3", [("n1", "v1.36.3", "")])
    assert "CVE-2099-0001" in {e.cve for e in found}
    ctx.kube.data = {KEY: "{not json"}
    source.refresh()
    assert source.data.data_version == "override-1"  # the previous data stays
    assert source.problem is not None and "refused" in source.problem and "override-1" in source.problem
    status = status_of(source, found)
    assert status["dataStatus"] == source.problem and status["dataVersion"] == "override-1"
    ctx.kube.data = {"other-key": "{}"}
    source.refresh()
    assert "no key" in (source.problem or "")
    ctx.kube.data = None
    source.refresh()
    assert source.source == "package" and source.problem is None


def test_refresh_interval() -> None:
    ctx = FakeCtx()
    source = CveSource(ctx)  # type: ignore[arg-type]
    source.refresh()
    source.refresh()
    assert ctx.kube.reads == 1
