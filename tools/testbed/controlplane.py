"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

``ControlPlane.start()`` picks free ports, writes keys, a token file and a kubeconfig into a
temporary directory, starts the three processes, waits until each is ready and returns. ``stop()``
terminates them (SIGTERM, then SIGKILL) and removes the directory. Every child is started with
``PR_SET_PDEATHSIG`` so that it dies with the process that started it, even when that process is
killed outright: an interrupted test run leaves no orphaned control plane behind.

Used by the pytest fixtures (``tests/conftest.py``), ``make demo`` and the benchmarks.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from testbed.binaries import ensure_binaries

ADMIN_TOKEN = "plumbob-testbed-admin"  # a loopback-only test credential
CONTROLLERS = (
    "job-controller",
    "cronjob-controller",
    "garbage-collector-controller",
    "ttl-after-finished-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "pod-garbage-collector-controller",
    "validatingadmissionpolicy-status-controller",
    "clusterrole-aggregation-controller",  # the chart aggregates namespace-report reading into view
)


class StartError(RuntimeError):
    """A component did not become ready; the message carries the tail of its log."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Runs in the child between fork and exec: ask the kernel for ``sig`` when the parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, sig)


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    log_handle: IO[bytes]
    argv: list[str] = field(default_factory=list)

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class ControlPlane:
    """A running control plane. Build with :meth:`start`; always :meth:`stop` it."""

    workdir: Path
    binaries: dict[str, Path]
    api_port: int = 0
    etcd_port: int = 0
    kcm_port: int = 0
    procs: dict[str, _Proc] = field(default_factory=dict)
    keep_workdir: bool = False

    # ---- paths -------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "apiserver-certs" / "apiserver.crt"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.popen.pid for name, p in self.procs.items()}

    # ---- lifecycle ---------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        workdir: Path | None = None,
        *,
        progress: Callable[[str], None] | None = None,
        kcm_qps: int = 200,
        extra_apiserver_args: Sequence[str] = (),
        extra_controllers: Sequence[str] = (),
    ) -> ControlPlane:
        say = progress or (lambda m: print(f"[testbed] {m}", file=sys.stderr, flush=True))
        binaries = ensure_binaries(say)
        keep = workdir is not None
        wd = workdir or Path(tempfile.mkdtemp(prefix="plumbob-cp-"))
        wd.mkdir(parents=True, exist_ok=True)
        cp = cls(workdir=wd, binaries=binaries, keep_workdir=keep)
        try:
            cp._start(say, kcm_qps, extra_apiserver_args, extra_controllers)
        except BaseException:
            cp.stop()
            raise
        return cp

    def _start(
        self, say: Callable[[str], None], kcm_qps: int, extra: Sequence[str], controllers: Sequence[str]
    ) -> None:
        wd = self.workdir
        self._write_keys()
        (wd / "tokens.csv").write_text(f'{ADMIN_TOKEN},admin,admin,"system:masters"\n')
        self.etcd_port, peer_port = _free_port(), _free_port()
        self.api_port, self.kcm_port = _free_port(), _free_port()

        say(f"starting etcd on 127.0.0.1:{self.etcd_port}")
        etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        self._spawn(
            "etcd",
            [
                str(self.binaries["etcd"]),
                "--name=testbed",
                f"--data-dir={wd / 'etcd-data'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=testbed=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--quota-backend-bytes=4294967296",
                "--log-level=warn",
            ],
        )
        self._wait("etcd", lambda: _http_ok(f"{etcd_url}/health"), 60)

        say(f"starting kube-apiserver on {self.server}")
        self._spawn(
            "kube-apiserver",
            [
                str(self.binaries["kube-apiserver"]),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--cert-dir={wd / 'apiserver-certs'}",
                f"--token-auth-file={wd / 'tokens.csv'}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={wd / 'sa.pub'}",
                f"--service-account-signing-key-file={wd / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--enable-admission-plugins=NodeRestriction",
                "--profiling=false",
                "--anonymous-auth=false",
                "--max-requests-inflight=800",
                "--max-mutating-requests-inflight=400",
                "--v=0",
                *extra,
            ],
        )
        self._wait("kube-apiserver", self._apiserver_ready, 120)
        self._write_kubeconfig()

        say("starting kube-controller-manager")
        self._spawn(
            "kube-controller-manager",
            [
                str(self.binaries["kube-controller-manager"]),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.kcm_port}",
                f"--service-account-private-key-file={wd / 'sa.key'}",
                f"--root-ca-file={self.ca_file}",
                "--use-service-account-credentials=false",
                f"--controllers={','.join((*CONTROLLERS, *controllers))}",
                f"--kube-api-qps={kcm_qps}",
                f"--kube-api-burst={kcm_qps * 2}",
                "--concurrent-job-syncs=20",
                "--v=0",
            ],
        )
        self._wait("kube-controller-manager", self._kcm_ready, 60)
        say(f"control plane ready; KUBECONFIG={self.kubeconfig}")

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.popen.poll() is None:
                proc.popen.terminate()
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            remaining = max(0.1, deadline - time.monotonic())
            try:
                proc.popen.wait(remaining)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
            proc.log_handle.close()
        self.procs.clear()
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart_apiserver(self) -> None:
        """Stop kube-apiserver (SIGTERM) and start it again with the same flags: every watch and
        connection of every client breaks, and clients must resume or re-list."""
        self.stop_apiserver()
        self.start_apiserver()

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver (SIGTERM; SIGKILL after 30 s): watches and connections break, and
        new connections are refused until :meth:`start_apiserver`."""
        proc = self.procs["kube-apiserver"]
        if proc.popen.poll() is None:
            proc.popen.terminate()
            try:
                proc.popen.wait(30)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        proc.log_handle.close()

    def start_apiserver(self) -> None:
        """Start the stopped kube-apiserver with the same flags and port; return once it is ready."""
        proc = self.procs["kube-apiserver"]
        if proc.popen.poll() is None:
            raise RuntimeError("kube-apiserver is running: stop_apiserver() first")
        self._spawn("kube-apiserver", proc.argv)
        self._wait("kube-apiserver", self._apiserver_ready, 120)

    def compact_etcd(self) -> int:
        """Compact etcd's history up to its current revision (through etcd's JSON gateway); a watch
        resumed from an older resourceVersion is then answered 410 Gone (expired). Returns the revision."""
        base = f"http://127.0.0.1:{self.etcd_port}/v3/kv"
        state = _post_json(f"{base}/range", {"key": "AA==", "limit": 1})
        revision = int(state["header"]["revision"])
        _post_json(f"{base}/compaction", {"revision": str(revision), "physical": True})
        return revision

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- helpers for callers -----------------------------------------------------------------
    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,  # noqa: A002 - same keyword as subprocess.run, used by every caller
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run the testbed's kubectl against this control plane."""
        result = subprocess.run(
            [str(self.binaries["kubectl"]), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, result.args, output=result.stdout, stderr=result.stderr
            )
        return result

    def request(self, method: str, path: str, body: Any = None, token: str = ADMIN_TOKEN) -> Any:
        """A raw JSON request to the apiserver (for tests that want no client library)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token}")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, context=self.ssl_context(), timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def env(self) -> dict[str, str]:
        """Environment for child processes that should talk to this control plane."""
        path = f"{self.binaries['kubectl'].parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PATH": path}

    # ---- internals ---------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> None:
        log = self.workdir / f"{name}.log"
        handle = log.open("ab")
        popen = subprocess.Popen(
            argv,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads forked here
        )
        self.procs[name] = _Proc(name, popen, log, handle, list(argv))

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float) -> None:
        proc = self.procs[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise StartError(f"{name} exited with code {proc.popen.returncode}:\n{proc.tail()}")
            if ready():
                return
            time.sleep(0.2)
        raise StartError(f"{name} was not ready after {timeout:.0f}s:\n{proc.tail()}")

    def _apiserver_ready(self) -> bool:
        if not self.ca_file.exists():
            return False
        try:
            req = urllib.request.Request(f"{self.server}/readyz")
            req.add_header("Authorization", f"Bearer {ADMIN_TOKEN}")
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=5) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return False

    def _kcm_ready(self) -> bool:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return _http_ok(f"https://127.0.0.1:{self.kcm_port}/healthz", ctx)

    def _write_keys(self) -> None:
        key, pub = self.workdir / "sa.key", self.workdir / "sa.pub"
        for argv in (
            ["openssl", "genrsa", "-out", str(key), "2048"],
            ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)],
        ):
            try:
                subprocess.run(argv, capture_output=True, check=True)
            except FileNotFoundError:
                raise StartError("openssl is needed to make the service-account key: install it") from None

    def _write_kubeconfig(self) -> None:
        write_token_kubeconfig(self.kubeconfig, self.server, self.ca_file, "admin", ADMIN_TOKEN)


def write_token_kubeconfig(
    path: Path, server: str, ca_file: Path, user: str, token: str, *, namespace: str | None = None
) -> Path:
    """A kubeconfig (mode 600) that authenticates ``user`` with a bearer ``token``."""
    context: dict[str, str] = {"cluster": "testbed", "user": user}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "testbed", "cluster": {"server": server, "certificate-authority": str(ca_file)}}
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "testbed", "context": context}],
        "current-context": "testbed",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


def _post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=30) as resp:  # loopback etcd of the testbed
        return dict(json.loads(resp.read()))


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, context=context, timeout=5) as r:
            return bool(r.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def main() -> None:
    """``python -m testbed.controlplane``: run a control plane until interrupted."""
    cp = ControlPlane.start()
    print(f"export KUBECONFIG={cp.kubeconfig}", flush=True)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with contextlib.suppress(KeyboardInterrupt):
        while not stop:
            time.sleep(0.5)
    cp.stop()


if __name__ == "__main__":
    main()
