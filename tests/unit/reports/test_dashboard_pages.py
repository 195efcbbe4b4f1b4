"""Dashboard pages from the golden cluster (pure rendering + routing, no HTTP, no cluster).

The real-browser test against the testbed is ``tests/e2e/test_dashboards.py``.

Cases:
- the profile page equals its golden (``make golden``);
- every page reached by following links from ``/`` answers 200 (no dead link), and covers the
  profile, every rule, every node and the exceptions page;
- no script, no external asset (only relative links), a viewport meta for phones;
- unknown profile, rule or node → 404 with a sentence; the rule page shows evidence.
"""

from __future__ import annotations

import re
from typing import Any

from cluster_data import NOW, raw, view
from test_golden import check

from plumbob.api import ClusterComplianceException
from plumbob.dashboards.server import Pages
from plumbob.reports.compliance import ProfileView


class FakeReader:
    def profiles(self) -> list[ProfileView]:
        return [view(evidence=False)]

    def profile(self, name: str) -> ProfileView | None:
        return view() if name == "cis" else None

    def profile_names(self) -> list[str]:
        return ["cis"]

    def exceptions(self) -> list[Any]:
        return [ClusterComplianceException.model_validate(e) for e in raw()["exceptions"]]  # type: ignore[attr-defined]


def pages() -> Pages:
    return Pages(FakeReader(), clock=lambda: NOW)  # type: ignore[arg-type]


def test_profile_page_golden() -> None:
    status, html = pages().get("/profiles/cis")
    assert status == 200
    check("dashboard-profile.html", html)


def test_link_walk() -> None:
    p = pages()
    seen: dict[str, int] = {}
    todo = ["/"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        status, html = p.get(path)
        seen[path] = status
        assert "<script" not in html and "src=" not in html
        assert '<meta name="viewport"' in html
        for href in re.findall(r'href="([^"]+)"', html):
            assert href.startswith("/") and not href.startswith("//"), href
            todo.append(href.split("#")[0])
    assert {k: v for k, v in seen.items() if v != 200} == {}
    assert {
        "/",
        "/exceptions",
        "/profiles/cis",
        "/profiles/cis/nodes/worker-1",
        "/profiles/cis/rules/4.2.1",
    } <= set(seen)
    assert len([s for s in seen if "/rules/" in s]) == 6
    assert len([s for s in seen if "/nodes/" in s]) == 3


def test_not_found_and_evidence() -> None:
    p = pages()
    assert p.get("/profiles/nope")[0] == 404
    assert p.get("/profiles/cis/rules/9.9.9")[0] == 404
    assert p.get("/profiles/cis/nodes/nope")[0] == 404
    assert p.get("/nothing")[0] == 404
    status, html = p.get("/profiles/cis/rules/4.2.1")
    assert status == 200 and "kubelet (--anonymous-auth) [flag]: true; expected false" in html
    status, html = p.get("/exceptions")
    assert "net-team@example.com" in html and "2026-06-10" in html
    assert 'href="/profiles/cis"' in html  # the entry names profile cis
