"""Reading pod specs: every container of every kind, and the effective security settings."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from plumbob.engine.cluster.inventory import Workload, items, mapping
from plumbob.engine.findings import Evidence, Source

CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True)
class Container:
    path: str  # spec.containers[0]
    name: str
    body: Mapping[str, Any]

    @property
    def security(self) -> Mapping[str, Any]:
        return mapping(self.body.get("securityContext"))


def containers(spec: Mapping[str, Any]) -> Iterator[Container]:
    """initContainers, containers and ephemeralContainers, in that order."""
    for field in CONTAINER_FIELDS:
        for i, c in enumerate(items(spec.get(field))):
            body = mapping(c)
            name = body.get("name")
            yield Container(f"spec.{field}[{i}]", name if isinstance(name, str) else f"#{i}", body)


def pod_security(w: Workload) -> Mapping[str, Any]:
    return mapping(w.spec.get("securityContext"))


def violation(w: Workload, location: str, found: Any, expected: str, what: str | None = None) -> Evidence:
    shown = "true" if found is True else "false" if found is False else str(found)
    return Evidence(
        subject=what or f"{w.meta.ref}", source=Source.API, location=location, found=shown, expected=expected
    )


def container_violation(w: Workload, c: Container, field: str, found: Any, expected: str) -> Evidence:
    return violation(w, f"{c.path}.{field}", found, expected, what=f"container {c.name} of {w.meta.ref}")
