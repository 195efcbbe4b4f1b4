"""The agent's small HTTPS client, against a local HTTPS stub (``testbed.apistub``), no cluster.

Cases:
- service_account: the directory named by PLUMBOB_SERVICEACCOUNT_DIR (token stripped, ca.crt),
  host and port from KUBERNETES_SERVICE_*; without that directory and without the in-cluster one,
  None (the caller then reads a kubeconfig); an IPv6 host is bracketed in the URL;
- requests: the bearer token and the user agent are sent, JSON bodies both ways, paths under
  /apis/plumbob.dev/v1alpha1; get of a missing object → NotFoundError; create of an existing
  one and a replace with a stale resourceVersion → ConflictError; 422 → InvalidError with the
  Status message; 503 → KubeError with status 503;
- a server whose certificate the CA does not sign → ssl error (an OSError), nothing sent;
- a closed port → OSError; an answer that is not JSON → KubeError with status 0;
- api_error: message from the Status body, else the HTTP reason.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from plumbob import kubehttp
from testbed.apistub import TOKEN, ApiStub, make_certificate

REPORTS = "/apis/plumbob.dev/v1alpha1/compliancereports"


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStub]:
    with ApiStub(tmp_path_factory.mktemp("stub")) as running:
        yield running


@pytest.fixture
def client(stub: ApiStub, tmp_path: Path) -> Iterator[kubehttp.Client]:
    account = kubehttp.service_account(stub.agent_env(tmp_path / "sa"))
    assert account is not None
    small = kubehttp.Client(account)
    yield small
    small.close()


def report(name: str) -> dict[str, object]:
    return {"apiVersion": "plumbob.dev/v1alpha1", "kind": "ComplianceReport", "metadata": {"name": name}}


def test_service_account_from_the_directory(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("abc\n")
    account = kubehttp.service_account(
        {
            "PLUMBOB_SERVICEACCOUNT_DIR": str(tmp_path),
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": "6443",
        }
    )
    assert account == kubehttp.ServiceAccount("127.0.0.1", 6443, "abc", str(tmp_path / "ca.crt"))
    assert account.url == "https://127.0.0.1:6443"
    assert kubehttp.ServiceAccount("fd00::1", 443, "t", "ca").url == "https://[fd00::1]:443"


def test_no_service_account_means_kubeconfig(tmp_path: Path) -> None:
    if Path(kubehttp.SERVICEACCOUNT_DIR, "token").exists():
        pytest.fail("this machine has an in-cluster service account; the case cannot be told apart")
    assert (
        kubehttp.service_account({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"})
        is None
    )
    assert kubehttp.service_account({"KUBECONFIG": str(tmp_path / "config")}) is None


def test_create_get_replace_round_trip(stub: ApiStub, client: kubehttp.Client) -> None:
    created = client.create_object("compliancereports", report("p.round-trip"))
    assert created["metadata"]["resourceVersion"]
    got = client.get_object("compliancereports", "p.round-trip")
    assert got == created
    got["spec"] = {"scan": "s2"}
    replaced = client.replace_object("compliancereports", got)
    assert replaced["spec"] == {"scan": "s2"}
    assert stub.objects[f"{REPORTS}/p.round-trip"]["spec"] == {"scan": "s2"}
    mine = [
        r
        for r in stub.requests
        if "round-trip" in r.path or (r.body or {}).get("metadata", {}).get("name") == "p.round-trip"
    ]
    assert [(r.method, r.path) for r in mine] == [
        ("POST", REPORTS),
        ("GET", f"{REPORTS}/p.round-trip"),
        ("PUT", f"{REPORTS}/p.round-trip"),
    ]
    for r in mine:
        assert r.headers["Authorization"] == f"Bearer {TOKEN}"
        assert r.headers["User-Agent"] == "plumbob"


def test_refusals_map_onto_the_error_tree(stub: ApiStub, client: kubehttp.Client) -> None:
    with pytest.raises(kubehttp.NotFoundError):
        client.get_object("compliancereports", "p.absent")
    client.create_object("compliancereports", report("p.twice"))
    with pytest.raises(kubehttp.ConflictError):
        client.create_object("compliancereports", report("p.twice"))
    stale = {**report("p.twice"), "metadata": {"name": "p.twice", "resourceVersion": "0"}}
    with pytest.raises(kubehttp.ConflictError):
        client.replace_object("compliancereports", stale)
    stub.fail_next([422])
    with pytest.raises(kubehttp.InvalidError, match="the stub was told to answer 422") as invalid:
        client.create_object("compliancereports", report("p.refused"))
    assert invalid.value.status == 422
    stub.fail_next([503])
    with pytest.raises(kubehttp.KubeError) as unavailable:
        client.get_object("compliancereports", "p.twice")
    assert type(unavailable.value) is kubehttp.KubeError and unavailable.value.status == 503


def test_a_server_the_ca_does_not_sign_is_refused(stub: ApiStub, tmp_path: Path) -> None:
    other_ca, _key = make_certificate(tmp_path)
    account = kubehttp.ServiceAccount("127.0.0.1", stub.port, TOKEN, str(other_ca))
    before = len(stub.requests)
    with pytest.raises(ssl.SSLError):
        kubehttp.Client(account).get_object("compliancereports", "p.any")
    assert len(stub.requests) == before


def test_no_server_is_an_os_error(stub: ApiStub) -> None:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        account = kubehttp.ServiceAccount("127.0.0.1", port, TOKEN, str(stub.ca_file))
        with pytest.raises(OSError):
            kubehttp.Client(account).get_object("compliancereports", "p.any")


def test_an_answer_that_is_not_json(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    script = (
        "import ssl, socket, sys\n"
        "ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)\n"
        "ctx.load_cert_chain(sys.argv[1], sys.argv[2])\n"
        "srv = socket.create_server(('127.0.0.1', 0)); print(srv.getsockname()[1], flush=True)\n"
        "conn, _ = srv.accept(); tls = ctx.wrap_socket(conn, server_side=True); tls.recv(65536)\n"
        "head = b'HTTP/1.1 200 OK\\r\\nContent-Length: 9\\r\\nConnection: close\\r\\n\\r\\n'\n"
        "tls.sendall(head + b'not json!'); tls.close()\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", script, str(cert), str(key)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        account = kubehttp.ServiceAccount("127.0.0.1", port, TOKEN, str(cert))
        with pytest.raises(kubehttp.KubeError, match="not JSON") as garbage:
            kubehttp.Client(account).get_object("compliancereports", "p.any")
        assert garbage.value.status == 0
    finally:
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()


def test_api_error_message() -> None:
    assert str(kubehttp.api_error(409, "Conflict", b'{"message": "exists"}')) == "exists"
    assert str(kubehttp.api_error(500, "Internal Server Error", b"<html>")) == "Internal Server Error"
    assert isinstance(kubehttp.api_error(404, "Not Found", None), kubehttp.NotFoundError)
