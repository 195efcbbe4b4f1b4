"""Kubernetes CVE data and exposure.

Cases:
- the shipped data parses, has a date and a version, only the five components, no duplicates;
- versions compare as releases: distribution suffixes (+k3s1, -eks-…, -gke.…) are not
  pre-releases, alpha/beta/rc are; 1.30.10 > 1.30.9;
- known facts: kubelet v1.30.2 is exposed to CVE-2024-10220 (fixed 1.30.3), v1.30.3 is not;
  kube-apiserver v1.29.3 to CVE-2024-3177 (fixed 1.29.4); an unfixed CVE has no fixed version;
- the patch rule flags a patch older than the newest known of its minor, and not the newest;
- bad documents are refused whole with a message naming the place (schema, dates, ranges,
  unknown component, unknown field, fixed before introduced, not JSON).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from plumbob.cves.data import COMPONENTS, SHIPPED, CveDataError, Version, parse, parse_text, shipped
from plumbob.cves.exposure import PATCH_RULE, exposures, patch_lag


def test_shipped_data() -> None:
    data = shipped()
    assert data.published and data.data_version
    assert len(data.vulnerabilities) >= 40
    assert {c for v in data.vulnerabilities for c in v.affected} <= set(COMPONENTS)


@pytest.mark.parametrize(
    ("low", "high"),
    [("v1.30.9", "v1.30.10"), ("1.10.0-beta.3", "1.10.0"), ("v1.33.4+k3s1", "v1.33.5"), ("1.29.9", "1.30.0")],
)
def test_versions_compare_as_releases(low: str, high: str) -> None:
    assert Version.parse(low) < Version.parse(high)


def test_distribution_suffixes_are_releases() -> None:
    assert Version.parse("v1.32.3-eks-4096722") == Version.parse("1.32.3")
    assert Version.parse("v1.33.4+k3s1") == Version.parse("1.33.4")
    assert Version.parse("v1.31.5-gke.1023000") == Version.parse("1.31.5")


def ids(found: list[Any]) -> set[str]:
    return {e.cve for e in found}


def test_known_exposures() -> None:
    data = shipped()
    old = exposures(data, "kubelet", "v1.30.2", "node-a")
    gitrepo = next(e for e in old if e.cve == "CVE-2024-10220")
    assert (gitrepo.component, gitrepo.running, gitrepo.fixed, gitrepo.where) == (
        "kubelet",
        "v1.30.2",
        "1.30.3",
        "node-a",
    )
    assert "CVE-2024-10220" not in ids(exposures(data, "kubelet", "v1.30.3", "node-a"))
    assert "CVE-2024-3177" in ids(exposures(data, "kube-apiserver", "v1.29.3", "API server"))
    assert "CVE-2024-3177" not in ids(exposures(data, "kube-apiserver", "v1.29.4", "API server"))
    unfixed = next(
        e for e in exposures(data, "kube-apiserver", "v1.36.3", "API server") if e.cve == "CVE-2020-8561"
    )
    assert unfixed.fixed is None
    assert exposures(data, "kubelet", "not-a-version", "x") == []


def test_patch_rule() -> None:
    data = shipped()
    lag = patch_lag(data, "kubelet", "v1.33.2", "node-a")
    assert lag is not None and lag.cve == PATCH_RULE and lag.fixed == str(data.newest_patches["1.33"])
    assert patch_lag(data, "kubelet", f"v{data.newest_patches['1.33']}", "node-a") is None
    assert patch_lag(data, "kubelet", "v1.12.1", "node-a") is None  # no release data for that minor


def _doc() -> dict[str, Any]:
    return copy.deepcopy(json.loads(SHIPPED.read_text()))


def _break(path: str, value: Any) -> dict[str, Any]:
    doc = _doc()
    target: Any = doc
    *parents, last = path.split("/")
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (_break("schema", "v0"), "schema"),
        (_break("published", "02.12.2026"), "published"),
        (_break("vulnerabilities/0/id", "GHSA-1234"), "not a CVE id"),
        (_break("vulnerabilities/0/severity", "urgent"), "severity"),
        (_break("vulnerabilities/0/affected/0/package/name", "kubectl"), "package name"),
        (_break("vulnerabilities/0/affected/0/ranges/0/events", [{"fixed": "1.2.0"}]), "introduced"),
        (
            _break(
                "vulnerabilities/0/affected/0/ranges/0/events", [{"introduced": "1.3.0"}, {"fixed": "1.2.0"}]
            ),
            "after",
        ),
        (_break("vulnerabilities/0/bogus", 1), "unknown fields"),
        (_break("newest_patches", {"1.33": "1.34.1"}), "not a release of 1.33"),
    ],
)
def test_bad_documents_are_refused(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(CveDataError, match=message):
        parse(doc)


def test_not_json() -> None:
    with pytest.raises(CveDataError, match="not JSON"):
        parse_text("{vulnerabilities: [")
