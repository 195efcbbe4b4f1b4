"""Build (once) and locate the binaries of the testbed's real node (issue 9, not wired in yet).

kubelet, kube-proxy and kube-scheduler come from the Go wrapper module ``tools/kube-node`` (the
same Kubernetes version and replace list as ``tools/kube``, in its own module so that adding
them does not invalidate the control plane's cache); containerd, its shim and ``ctr`` are
``go install``ed from their module (its go.mod has no replace directives). Both are cached
outside the checkout by version, like the control plane's binaries: ``<cache>/kube-node-<v>/``
and ``<cache>/containerd-<v>/``. ``CGO_ENABLED=0`` keeps the Go build cache of the control-plane
build usable (with cgo every Kubernetes package would be compiled again).

Run ``python tools/testbed/nodebinaries.py`` to build ahead of time; it prints each build's time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from testbed.binaries import (
    KUBE_VERSION,
    BuildError,
    Progress,
    _go,
    _module_digest,
    _say,
    cache_root,
    kube_ldflags,
)

MODULE_DIR = Path(__file__).resolve().parent.parent / "kube-node"
KUBE_NAMES = ("kubelet", "kube-proxy", "kube-scheduler")
CONTAINERD_VERSION = "v2.4.2"
CONTAINERD_MODULE = "github.com/containerd/containerd/v2"
CONTAINERD_NAMES = ("containerd", "containerd-shim-runc-v2", "ctr")


def _ready(directory: Path, names: tuple[str, ...], stamp: str) -> bool:
    built = directory / "BUILT_FROM"
    return (
        built.is_file()
        and built.read_text().strip() == stamp
        and all(os.access(directory / n, os.X_OK) for n in names)
    )


def _run(cmd: list[str], *, cwd: Path | None, env: dict[str, str], what: str) -> None:
    result = subprocess.run(
        ["nice", "-n", "10", *cmd], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BuildError(f"building {what} failed:\n{(result.stdout + result.stderr)[-3000:]}")


def _finish(partial: Path, directory: Path, stamp: str) -> None:
    (partial / "BUILT_FROM").write_text(stamp + "\n")
    if directory.exists():
        shutil.rmtree(directory)
    partial.rename(directory)


def ensure_node_binaries(progress: Progress = _say) -> dict[str, Path]:
    go = _go()
    out: dict[str, Path] = {}
    kube_dir = cache_root() / f"kube-node-{KUBE_VERSION}"
    stamp = _module_digest(MODULE_DIR)
    if not _ready(kube_dir, KUBE_NAMES, stamp):
        progress(f"building kubelet, kube-proxy and kube-scheduler {KUBE_VERSION} (minutes on 2 cores)")
        started = time.monotonic()
        partial = kube_dir.with_name(kube_dir.name + ".partial")
        partial.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CGO_ENABLED": "0"}
        _run(
            [go, "build", "-trimpath", "-ldflags", kube_ldflags(), "-o", str(partial) + "/", "./cmd/..."],
            cwd=MODULE_DIR,
            env=env,
            what="kubelet, kube-proxy, kube-scheduler",
        )
        _finish(partial, kube_dir, stamp)
        progress(f"built kubelet, kube-proxy, kube-scheduler in {time.monotonic() - started:.0f}s")
    out.update({n: kube_dir / n for n in KUBE_NAMES})

    containerd_dir = cache_root() / f"containerd-{CONTAINERD_VERSION}"
    if not _ready(containerd_dir, CONTAINERD_NAMES, CONTAINERD_VERSION):
        progress(f"building containerd {CONTAINERD_VERSION}, its runc shim and ctr (minutes on 2 cores)")
        started = time.monotonic()
        partial = containerd_dir.with_name(containerd_dir.name + ".partial")
        partial.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CGO_ENABLED": "0", "GOBIN": str(partial)}
        ldflags = f"-s -w -X {CONTAINERD_MODULE}/version.Version={CONTAINERD_VERSION}"
        _run(
            [go, "install", "-trimpath", "-tags", "no_btrfs no_devmapper no_zfs", "-ldflags", ldflags,
             *(f"{CONTAINERD_MODULE}/cmd/{n}@{CONTAINERD_VERSION}" for n in CONTAINERD_NAMES)],
            cwd=None,
            env=env,
            what="containerd",
        )  # fmt: skip
        _finish(partial, containerd_dir, CONTAINERD_VERSION)
        progress(f"built containerd, containerd-shim-runc-v2, ctr in {time.monotonic() - started:.0f}s")
    out.update({n: containerd_dir / n for n in CONTAINERD_NAMES})
    return out


if __name__ == "__main__":
    try:
        paths = ensure_node_binaries()
    except BuildError as exc:
        _say(f"error: {exc}")
        raise SystemExit(1) from None
    for name, path in paths.items():
        print(f"{name}: {path}", file=sys.stdout)
