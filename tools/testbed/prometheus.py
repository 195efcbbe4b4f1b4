"""Build (once) and locate Prometheus and promtool, for the metrics end-to-end test and the chart's rules.

Built from the Go module ``github.com/prometheus/prometheus`` at a pinned version, the way
``binaries.py`` builds the control plane: ``go mod download`` the module, copy it out of the
read-only module cache, ``GOWORK=off go build`` (the module ships a ``go.work`` naming folders that
are not in the module zip). Cached under the testbed cache by version. About six minutes on two
cores the first time; the web UI assets are not built (the HTTP API is all the tests use).

Run ``python tools/testbed/prometheus.py`` to build ahead of time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from testbed.binaries import BuildError, Progress, _go, _say, cache_root
from testbed.controlplane import _die_with_parent, _free_port

PROMETHEUS_MODULE = "github.com/prometheus/prometheus"
PROMETHEUS_VERSION = "v0.316.0"  # Prometheus 3.x
NAMES = ("prometheus", "promtool")


def prometheus_dir() -> Path:
    return cache_root() / f"prometheus-{PROMETHEUS_VERSION}"


def ensure_prometheus(progress: Progress = _say) -> dict[str, Path]:
    """Paths of ``prometheus`` and ``promtool``, building them first when they are missing."""
    directory = prometheus_dir()
    if all((directory / n).is_file() and os.access(directory / n, os.X_OK) for n in NAMES):
        return {n: directory / n for n in NAMES}
    go = _go()
    progress(f"building prometheus and promtool from {PROMETHEUS_MODULE}@{PROMETHEUS_VERSION} (~6 min)")
    started = time.monotonic()
    env = {**os.environ, "CGO_ENABLED": "0", "GOWORK": "off", "GOFLAGS": "-mod=mod"}
    download = subprocess.run(
        [go, "mod", "download", "-json", f"{PROMETHEUS_MODULE}@{PROMETHEUS_VERSION}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if download.returncode != 0:
        raise BuildError(f"go mod download {PROMETHEUS_MODULE} failed:\n{download.stderr[-2000:]}")
    source = Path(json.loads(download.stdout)["Dir"])
    work = directory.with_name(directory.name + ".src")
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(source, work)
    for path in work.rglob("*"):  # the module cache is read-only; the copy must be writable
        path.chmod(path.stat().st_mode | 0o200)
    work.chmod(0o755)
    partial = directory.with_name(directory.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    build = subprocess.run(
        [
            go,
            "build",
            "-trimpath",
            "-ldflags",
            "-s -w",
            "-o",
            f"{partial}/",
            "./cmd/prometheus",
            "./cmd/promtool",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if build.returncode != 0:
        raise BuildError(f"go build prometheus failed:\n{build.stderr[-3000:]}")
    if directory.exists():
        shutil.rmtree(directory)
    partial.rename(directory)
    shutil.rmtree(work, ignore_errors=True)
    progress(f"built prometheus and promtool in {time.monotonic() - started:.0f}s")
    return {n: directory / n for n in NAMES}


@dataclass
class Prometheus:
    """A running Prometheus scraping loopback targets, and a small client of its HTTP API."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path
    handle: IO[bytes]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result vector of an instant query (raises on a PromQL error)."""
        data = urllib.parse.urlencode({"query": expr}).encode()
        with urllib.request.urlopen(f"{self.url}/api/v1/query", data=data, timeout=30) as res:
            body = json.load(res)
        if body.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {body}")
        return list(body["data"]["result"])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.handle.close()


def start_prometheus(
    workdir: Path,
    targets: list[str],
    rule_files: tuple[Path, ...] = (),
    interval: str = "1s",
) -> Prometheus:
    """Prometheus scraping ``targets`` (``host:port`` on loopback) every ``interval`` as job "plumbob"."""
    for target in targets:
        if not target.startswith("127."):
            raise ValueError(f"only loopback targets are scraped here, not {target}")
    binaries = ensure_prometheus()
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{"job_name": "plumbob", "static_configs": [{"targets": targets}]}],
    }
    (workdir / "prometheus.yml").write_text(json.dumps(config))
    port = _free_port()
    log = workdir / "prometheus.log"
    handle = log.open("ab")
    process = subprocess.Popen(
        [
            str(binaries["prometheus"]),
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - single-threaded at fork
    )
    prom = Prometheus(process, f"http://127.0.0.1:{port}", log, handle)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2):
                return prom
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.3)
    prom.stop()
    raise RuntimeError(f"prometheus did not become ready:\n{log.read_text(errors='replace')[-3000:]}")


if __name__ == "__main__":
    try:
        for name, path in ensure_prometheus().items():
            print(f"{name}: {path}")
    except BuildError as exc:
        _say(f"error: {exc}")
        raise SystemExit(1) from None
