"""Connections between the machine's loopback and the real node's network namespace.

The testbed's API server listens on the machine's loopback; the real node lives in a network
namespace of its own, where that loopback does not exist. Two relays, both in one process (the
real node's supervisor, which stays in the machine's namespace):

- **node → API server**: a TCP listener *created inside* the node's namespace (the thread
  switches into it with ``setns`` only to create the socket, then back) on the address the API
  server advertises; each accepted connection is relayed to ``127.0.0.1:<port>`` on the machine.
  kube-proxy sends the ``kubernetes`` Service's ClusterIP there, so in-cluster clients work.
- **API server → node** (logs, exec, port-forward): the API server's egress selector sends its
  ``cluster`` traffic as HTTP CONNECT over a Unix socket (a file, which both namespaces see);
  the relay opens the requested connection from inside the node's namespace.

A socket belongs to the namespace it was created in, whatever namespace its user later runs in,
so no traffic leaves either namespace except through these two relays.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def _inside(netns: Path) -> Iterator[None]:
    """Run the calling thread in ``netns`` for the duration of the block (setns is per thread)."""
    own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    target = os.open(netns, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _relay(a: socket.socket, b: socket.socket) -> None:
    other = threading.Thread(target=_pump, args=(b, a), daemon=True)
    other.start()
    _pump(a, b)
    other.join()
    a.close()
    b.close()


def _serve(listener: socket.socket, handle: object) -> None:
    def loop() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()  # type: ignore[arg-type]  # a callable taking the socket

    threading.Thread(target=loop, daemon=True).start()


class Bridge:
    """The two relays of one node namespace; :meth:`close` stops accepting new connections."""

    def __init__(self, netns: Path) -> None:
        self.netns = netns
        self._listeners: list[socket.socket] = []

    def forward_to_loopback(self, address: str, port: int, target_port: int) -> None:
        """Listen on ``address:port`` in the namespace; relay to the machine's ``127.0.0.1:target_port``."""
        with _inside(self.netns):
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, port))
        listener.listen(128)
        self._listeners.append(listener)

        def handle(conn: socket.socket) -> None:
            try:
                upstream = socket.create_connection(("127.0.0.1", target_port), timeout=10)
            except OSError:
                conn.close()
                return
            upstream.settimeout(None)
            _relay(conn, upstream)

        _serve(listener, handle)

    def connect_proxy(self, path: Path) -> None:
        """An HTTP CONNECT proxy on the Unix socket ``path`` whose connections start inside the namespace."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        path.chmod(0o600)
        listener.listen(64)
        self._listeners.append(listener)
        _serve(listener, self._connect)

    def _connect(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 8192:
            chunk = conn.recv(4096)
            if not chunk:
                conn.close()
                return
            head += chunk
        request, _, rest = head.partition(b"\r\n\r\n")
        parts = request.split(b"\r\n", 1)[0].split()
        if len(parts) < 2 or parts[0] != b"CONNECT":
            conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            conn.close()
            return
        host, _, port = parts[1].decode().rpartition(":")
        try:
            with _inside(self.netns):
                upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            upstream.settimeout(10)
            upstream.connect((host.strip("[]"), int(port)))
            upstream.settimeout(None)
        except (OSError, ValueError) as exc:
            conn.sendall(f"HTTP/1.1 502 Bad Gateway\r\n\r\n{exc}".encode())
            conn.close()
            return
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if rest:
            upstream.sendall(rest)
        _relay(conn, upstream)

    def close(self) -> None:
        for listener in self._listeners:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self._listeners.clear()
