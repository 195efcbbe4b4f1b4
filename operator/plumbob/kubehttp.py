"""The API server over HTTPS with a service-account token: the few requests the agent makes.

The agent runs in every audit Pod, and importing the kubernetes client takes longer than the
whole node audit. So the agent reads, creates and replaces its cluster-scoped report with the
standard library's ``http.client`` and ``ssl`` instead: the Pod's service-account token as a
bearer token, the server verified against the service account's CA (``ca.crt``), JSON in and out.
:mod:`plumbob.kube` stays the client of everything else, and raises the same errors::

    KubeError                    anything the API refused or could not answer (status 0: no HTTP
     │                           answer could be read, e.g. the connection closed mid-response)
     ├── ConflictError           409: already exists, or a resourceVersion precondition failed
     ├── NotFoundError           404
     └── InvalidError            422: admission or schema rejected the object (message names the field)

A connection that cannot be made (refused, reset, TLS, timeout) is an ``OSError``, as the
standard library raises it. Credentials: ``PLUMBOB_SERVICEACCOUNT_DIR`` (the simulated kubelet's
per-Pod directory), else the in-cluster directory when ``KUBERNETES_SERVICE_HOST`` and
``KUBERNETES_SERVICE_PORT`` are set and no ``KUBECONFIG`` is; otherwise :func:`service_account`
returns ``None`` and the caller uses :mod:`plumbob.kube`, which also reads kubeconfigs.
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from plumbob.names import GROUP, VERSION

SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
USER_AGENT = "plumbob"  # the API server names our field manager after it (managedFields)
TIMEOUT_SECONDS = 30.0


class KubeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ConflictError(KubeError):
    pass


class NotFoundError(KubeError):
    pass


class InvalidError(KubeError):
    pass


def api_error(status: int, reason: str, body: bytes | str | None) -> KubeError:
    """The error for a refused request: the ``Status`` object's message when the body has one."""
    message = reason
    try:
        decoded = json.loads(body or "{}")
        message = str(decoded.get("message") or message)
    except (ValueError, AttributeError):
        pass
    kind = {409: ConflictError, 404: NotFoundError, 422: InvalidError}.get(status, KubeError)
    return kind(status, message)


@dataclass(frozen=True)
class ServiceAccount:
    """Where the API server is and how to prove who we are to it."""

    host: str
    port: int
    token: str
    ca_file: str

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"


def service_account(env: Mapping[str, str]) -> ServiceAccount | None:
    """The service account to talk to the API server with, or ``None`` when only a kubeconfig would do.

    Raises ``OSError`` when the token cannot be read, ``ValueError`` for a port that is no number.
    """
    sa_dir = env.get("PLUMBOB_SERVICEACCOUNT_DIR")
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    in_cluster = bool(
        host and port and Path(SERVICEACCOUNT_DIR, "token").exists() and not env.get("KUBECONFIG")
    )
    if not sa_dir and not in_cluster:
        return None
    directory = Path(sa_dir or SERVICEACCOUNT_DIR)
    return ServiceAccount(
        host=host or "kubernetes.default.svc",
        port=int(port or "443"),
        token=(directory / "token").read_text(encoding="utf-8").strip(),
        ca_file=str(directory / "ca.crt"),
    )


class Client:
    """One keep-alive HTTPS connection to the API server; the plumbob objects' get, create, replace."""

    def __init__(self, account: ServiceAccount) -> None:
        self.account = account
        context = ssl.create_default_context(cafile=account.ca_file)
        self._connection = http.client.HTTPSConnection(
            account.host, account.port, context=context, timeout=TIMEOUT_SECONDS
        )

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Send one request; the decoded JSON answer, or :class:`KubeError` for a status >= 400."""
        headers = {
            "Authorization": f"Bearer {self.account.token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            self._connection.request(method, path, body=data, headers=headers)
            response = self._connection.getresponse()
            payload = response.read()
        except http.client.HTTPException as exc:  # a broken answer; OSError (no connection) passes
            self._connection.close()
            raise KubeError(0, f"{method} {path}: no readable answer: {exc!r}") from exc
        if response.status >= 400:
            raise api_error(response.status, response.reason, payload)
        try:
            answer = json.loads(payload)
        except ValueError as exc:
            raise KubeError(0, f"{method} {path}: the answer is not JSON: {exc}") from exc
        if not isinstance(answer, dict):
            raise KubeError(0, f"{method} {path}: the answer is not a JSON object")
        return answer

    @staticmethod
    def _path(plural: str, name: str | None = None) -> str:
        path = f"/apis/{GROUP}/{VERSION}/{plural}"
        return path if name is None else f"{path}/{quote(name, safe='')}"

    def get_object(self, plural: str, name: str) -> dict[str, Any]:
        return self.request("GET", self._path(plural, name))

    def create_object(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", self._path(plural), body)

    def replace_object(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a cluster-scoped object (``metadata.resourceVersion`` guards the write)."""
        return self.request("PUT", self._path(plural, body["metadata"]["name"]), body)

    def close(self) -> None:
        self._connection.close()
