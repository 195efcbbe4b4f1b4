"""Structural properties of the generated CRDs that the API server needs or users rely on.

Cases:
- every schema node has a type; no ``$ref``, ``anyOf``, ``default`` or ``title`` survives;
- every string has ``maxLength`` (or an enum/format), every list ``maxItems``, every map
  ``maxProperties`` (the CEL cost budget depends on them);
- conditions are a list map keyed by ``type``; every CRD has the status subresource, the
  ``plumbob`` category, a short name and the printer columns listed in the design;
- CEL regexes contain nothing that needs escaping.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from plumbob.api import KINDS, crdgen
from plumbob.api.common import Resource

COLUMNS = {
    "NamespaceComplianceReport": ["Profile", "Pass", "Fail", "Excepted", "Evaluated", "Age"],
    "ComplianceProfile": [
        "Benchmark",
        "Score",
        "Pass",
        "Fail",
        "Excepted",
        "Last Scan",
        "Compliant",
        "Ready",
        "Age",
    ],
    "ComplianceScan": [
        "Profile",
        "Trigger",
        "Phase",
        "Nodes",
        "Done",
        "Failed",
        "Pass",
        "Fail",
        "Regressions",
        "Ready",
        "Age",
    ],
    "ComplianceSchedule": ["Schedule", "Time Zone", "Suspend", "Last", "Next", "Ready", "Age"],
    "ComplianceException": ["Entries", "Active", "Expired", "Unused", "Next Expiry", "Ready", "Age"],
    "ClusterComplianceException": ["Entries", "Active", "Expired", "Unused", "Next Expiry", "Ready", "Age"],
    "ComplianceReport": ["Profile", "Node", "Pass", "Fail", "Excepted", "Scan", "Age"],
}


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def schema_of(kind: type[Resource]) -> dict[str, Any]:
    crd = crdgen.crd(kind)
    result: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return result


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_structural_and_bounded(kind: type[Resource]) -> None:
    for path, node in nodes(schema_of(kind)):
        assert "type" in node, path
        assert not {"$ref", "anyOf", "oneOf", "allOf", "default", "title", "const"} & set(node), path
        if path in (".apiVersion", ".kind"):
            continue
        if node["type"] == "string":
            assert "maxLength" in node or "enum" in node or node.get("format") == "date-time", path
        if node["type"] == "array":
            assert "maxItems" in node, path
        if node["type"] == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, path


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_crd_shape(kind: type[Resource]) -> None:
    crd = crdgen.crd(kind)
    names = crd["spec"]["names"]
    assert names["categories"] == ["plumbob"]
    assert names["shortNames"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == COLUMNS[kind.__name__]
    conditions = schema_of(kind)["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    namespaced = kind.__name__ in ("ComplianceException", "NamespaceComplianceReport")
    assert crd["spec"]["scope"] == ("Namespaced" if namespaced else "Cluster")


def test_short_names_are_unique() -> None:
    short = [s for k in KINDS for s in k.CRD.short_names]
    wanted = ["ccex", "cex", "cprof", "crep", "cscan", "csched", "nscrep"]
    assert sorted(short) == sorted(set(short)) == wanted


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_cel_rules_carry_messages(kind: type[Resource]) -> None:
    for path, node in nodes(schema_of(kind)):
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["message"].strip(), path
            assert "\\" not in rule["rule"], path
