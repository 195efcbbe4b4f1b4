"""The operator's read-only web dashboard: a small threaded HTTP server over :class:`Reader`.

Started by ``plumbob operator`` on ``PLUMBOB_DASHBOARD_ADDRESS`` (default ``0.0.0.0:8082``;
``off`` disables it). Every page is read from the API server when requested (through
:mod:`plumbob.kube`, with the operator's read permissions), so a standby replica serves the same
truth as the active one. Only GET and HEAD; nothing on these pages changes the cluster.

Routes: ``/`` profiles · ``/profiles/P`` one profile (rules, nodes, drift, exceptions) ·
``/profiles/P/rules/R`` a rule's results with evidence · ``/profiles/P/nodes/N`` a node's
results · ``/exceptions`` every exception entry · ``/healthz``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from plumbob.dashboards.reading import Reader
from plumbob.kube import KubeError
from plumbob.reports import dashboard
from plumbob.reports.compliance import exception_views

log = logging.getLogger("plumbob.dashboards")
DEFAULT_ADDRESS = "0.0.0.0:8082"


class Pages:
    """Route → HTML. Separate from the HTTP plumbing so tests can call it directly."""

    def __init__(self, reader: Reader, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.reader = reader
        self.clock = clock

    def get(self, path: str) -> tuple[int, str]:
        now = self.clock()
        parts = [unquote(p) for p in urlsplit(path).path.split("/") if p]
        try:
            if not parts:
                return 200, dashboard.index_page(self.reader.profiles(), now)
            if parts == ["exceptions"]:
                entries = exception_views(self.reader.exceptions())
                return 200, dashboard.exceptions_page(entries, self.reader.profile_names(), now)
            if parts[0] == "profiles" and len(parts) in (2, 4):
                view = self.reader.profile(parts[1])
                if view is None:
                    return self._missing(f"There is no profile named {parts[1]!r}.", now)
                if len(parts) == 2:
                    return 200, dashboard.profile_page(view, now)
                if parts[2] == "rules" and (control := view.control(parts[3])) is not None:
                    return 200, dashboard.rule_page(view, control, now)
                if parts[2] == "nodes" and (node := view.node(parts[3])) is not None:
                    return 200, dashboard.node_page(view, node, now)
                return self._missing(f"Profile {view.name} has no {parts[2][:-1]} {parts[3]!r}.", now)
        except KubeError as exc:
            log.warning("dashboard could not read the cluster: %s", exc)
            return 503, dashboard.error_page("The API server could not be read", str(exc), now)
        return self._missing("There is no such page.", now)

    @staticmethod
    def _missing(message: str, now: datetime) -> tuple[int, str]:
        return 404, dashboard.error_page("Not found", message, now)


def serve(pages: Pages, host: str, port: int) -> ThreadingHTTPServer:
    """Start serving in a daemon thread; returns the server (``server_address`` has the bound port)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "plumbob-dashboard"

        def do_GET(self) -> None:
            self._answer(body=True)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def _answer(self, *, body: bool) -> None:
            if self.path == "/healthz":
                status, text = 200, "ok\n"
                kind = "text/plain; charset=utf-8"
            else:
                try:
                    status, text = pages.get(self.path)
                except Exception:
                    log.exception("dashboard page %s failed", self.path)
                    status, text = 500, "internal error\n"
                kind = "text/html; charset=utf-8"
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the http.server API
            log.debug("dashboard: " + format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="plumbob-dashboard", daemon=True).start()
    log.info("dashboard on http://%s:%d/", host, server.server_address[1])
    return server


def start(host: str, port: int) -> ThreadingHTTPServer:
    """The dashboard of a running operator, reading with its credentials."""
    return serve(Pages(Reader()), host, port)


def start_logging_errors(host: str, port: int) -> ThreadingHTTPServer | None:
    """:func:`start`, or an error in the log when the address cannot be bound (the operator goes on)."""
    try:
        return start(host, port)
    except OSError as exc:
        log.error("cannot serve the dashboard on %s:%d: %s", host, port, exc)
        return None
