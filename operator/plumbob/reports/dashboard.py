"""Pages of the web dashboard, rendered from views (pure; the server in :mod:`plumbob.dashboards` reads).

Server-rendered HTML with the stylesheet inline: no JavaScript, no external asset, a layout that
reflows on a phone (tables scroll sideways inside their box, secondary columns hide on narrow
screens). Every page links to the pages it names: profile → rule, node, report; rule → node;
node → rule; drift timeline → rule; exceptions → profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from plumbob.reports.auditor import environment
from plumbob.reports.compliance import ControlView, ExceptionView, NodeView, ProfileView


def _render(template: str, now: datetime, **context: object) -> str:
    return environment(True).get_template(f"dashboard/{template}").render(now=now, **context)


def index_page(views: Sequence[ProfileView], now: datetime) -> str:
    return _render("index.html.j2", now, views=views)


def profile_page(view: ProfileView, now: datetime) -> str:
    return _render("profile.html.j2", now, v=view, exceptions=view.exceptions)


def rule_page(view: ProfileView, control: ControlView, now: datetime) -> str:
    return _render("rule.html.j2", now, v=view, c=control, node_names={n.name for n in view.nodes})


def node_page(view: ProfileView, node: NodeView, now: datetime) -> str:
    return _render("node.html.j2", now, v=view, n=node)


def exceptions_page(exceptions: Sequence[ExceptionView], profiles: Sequence[str], now: datetime) -> str:
    return _render(
        "exceptions.html.j2", now, exceptions=exceptions, show_profiles=True, profile_names=set(profiles)
    )


def error_page(title: str, message: str, now: datetime) -> str:
    return _render("error.html.j2", now, title=title, message=message)
