"""A tiny HTTPS stand-in for the API server on loopback, for the agent's report writes only.

Not a Kubernetes API server: it keeps cluster-scoped objects by path, answers GET with the stored
object or a 404 ``Status``, POST with 201 (409 when the name exists), PUT with 200 (409 when
``metadata.resourceVersion`` is not the stored one), and records every request (method, path,
headers, decoded body). ``fail_next`` queues statuses to answer before any real handling (a 503
from an API server that is restarting, a 422 from admission). Its certificate is self-signed for
``127.0.0.1``, made with the ``openssl`` command, and serves as its own CA (``ca_file``).

Used by the unit tests of :mod:`plumbob.kubehttp` and of the agent's start-up, and by the node
audit benchmark to time a whole agent process without a control plane.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TOKEN = "stub-token"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any = None


@dataclass
class _State:
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    versions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (``openssl`` must be on PATH)."""
    cert, key = directory / "ca.crt", directory / "stub.key"
    command = [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
    ]
    subprocess.run([*command, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


class ApiStub:
    """Start with ``with ApiStub(directory) as stub:``; ``stub.port``, ``stub.ca_file``, ``stub.requests``."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_file, key = make_certificate(directory)
        self._state = _State()
        state = self._state

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                del format, args  # quiet

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, message: str) -> None:
                self._answer(code, {"kind": "Status", "status": "Failure", "message": message, "code": code})

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                with state.lock:
                    state.requests.append(Request(self.command, self.path, dict(self.headers), body))
                    failure = state.failures.pop(0) if state.failures else None
                    if failure is not None:
                        self._status(failure, f"the stub was told to answer {failure}")
                        return
                    if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                        self._status(401, "Unauthorized")
                        return
                    self._route(body)

            def _route(self, body: Any) -> None:
                if self.command == "GET":
                    if self.path in state.objects:
                        self._answer(200, state.objects[self.path])
                    else:
                        self._status(404, f"{self.path} not found")
                    return
                path = self.path if self.command == "PUT" else f"{self.path}/{body['metadata']['name']}"
                stored = state.objects.get(path)
                if self.command == "POST" and stored is not None:
                    self._status(409, "already exists")
                    return
                if self.command == "PUT" and (
                    stored is None
                    or body["metadata"].get("resourceVersion") != stored["metadata"]["resourceVersion"]
                ):
                    self._status(409 if stored else 404, "the object has been modified")
                    return
                state.versions += 1
                saved = {**body, "metadata": {**body["metadata"], "resourceVersion": str(state.versions)}}
                state.objects[path] = saved
                self._answer(201 if self.command == "POST" else 200, saved)

            do_GET = do_POST = do_PUT = _handle  # noqa: N815 - http.server's method names

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.ca_file, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def requests(self) -> list[Request]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def objects(self) -> dict[str, dict[str, Any]]:
        with self._state.lock:
            return dict(self._state.objects)

    def fail_next(self, statuses: Iterable[int]) -> None:
        with self._state.lock:
            self._state.failures.extend(statuses)

    def service_account_dir(self, directory: Path) -> Path:
        """A directory as the agent reads it: ``token`` and ``ca.crt``."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "token").write_text(TOKEN + "\n")
        (directory / "ca.crt").write_bytes(self.ca_file.read_bytes())
        return directory

    def agent_env(self, directory: Path) -> dict[str, str]:
        """The variables that point the agent at this stub."""
        return {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.port),
            "PLUMBOB_SERVICEACCOUNT_DIR": str(self.service_account_dir(directory)),
        }

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> ApiStub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
