"""Build (once) and locate the control-plane binaries of the testbed.

kube-apiserver, kube-controller-manager, etcd and kubectl are built from the Go wrapper module
in ``tools/kube`` at the pinned Kubernetes version, then cached outside the checkout by version
(``$PLUMBOB_CACHE_DIR`` or ``${XDG_CACHE_HOME:-~/.cache}/plumbob``), so fresh clones on the same
machine reuse them. A cold build takes 10-20 minutes on two cores; progress is printed.

Run ``python tools/testbed/binaries.py`` to build ahead of time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

KUBE_VERSION = "v1.36.3"
NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
MODULE_DIR = Path(__file__).resolve().parent.parent / "kube"

Progress = Callable[[str], None]


class BuildError(RuntimeError):
    """The binaries could not be built; the message says what to do next."""


def _say(message: str) -> None:
    print(f"[testbed] {message}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    explicit = os.environ.get("PLUMBOB_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "plumbob"


def _module_digest(module: Path = MODULE_DIR) -> str:
    """Digest of what the binaries are built from, so a changed go.mod rebuilds them."""
    h = hashlib.sha256()
    for path in sorted(module.rglob("*")):
        if path.is_file() and path.suffix in {".go", ".mod", ".sum"}:
            h.update(path.relative_to(module).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def binary_dir() -> Path:
    return cache_root() / f"kube-{KUBE_VERSION}"


def _stamp_ok(directory: Path, digest: str) -> bool:
    stamp = directory / "BUILT_FROM"
    return (
        stamp.is_file()
        and stamp.read_text().strip() == digest
        and all((directory / n).is_file() and os.access(directory / n, os.X_OK) for n in NAMES)
    )


def ensure_binaries(progress: Progress = _say) -> dict[str, Path]:
    """Return the paths of the four binaries, building them first when they are missing."""
    directory = binary_dir()
    digest = _module_digest()
    if not _stamp_ok(directory, digest):
        _build(directory, digest, progress)
    return {name: directory / name for name in NAMES}


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "Go is not on PATH. The testbed builds kube-apiserver, kube-controller-manager, etcd and "
            f"kubectl {KUBE_VERSION} from source and needs Go 1.26 or newer: install it "
            "(https://go.dev/doc/install) and run the command again."
        )
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=False).stdout
    parts = out.strip().removeprefix("go").split(".")
    if (
        len(parts) >= 2
        and parts[0].isdigit()
        and parts[1].isdigit()
        and (int(parts[0]), int(parts[1])) < (1, 26)
    ):
        raise BuildError(f"{out.strip()} is too old: Kubernetes {KUBE_VERSION} needs Go 1.26 or newer.")
    return go


def kube_ldflags() -> str:
    """Stripped, and stamped with the version (unstamped builds report v0.0.0-master)."""
    version = KUBE_VERSION.removeprefix("v").split(".")
    return " ".join(
        [
            "-s -w",
            f"-X k8s.io/component-base/version.gitVersion={KUBE_VERSION}",
            f"-X k8s.io/component-base/version.gitMajor={version[0]}",
            f"-X k8s.io/component-base/version.gitMinor={version[1]}",
            "-X k8s.io/component-base/version.gitTreeState=clean",
            f"-X k8s.io/client-go/pkg/version.gitVersion={KUBE_VERSION}",
        ]
    )


def _build(directory: Path, digest: str, progress: Progress) -> None:
    go = _go()
    env = {**os.environ, "CGO_ENABLED": "0"}
    partial = directory.with_name(directory.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    progress(
        f"building kube-apiserver, kube-controller-manager, etcd and kubectl {KUBE_VERSION} into {directory}"
    )
    progress("a first build downloads ~1.5 GB of Go modules and compiles for 10-20 minutes on 2 cores")
    listing = subprocess.run(
        [go, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./cmd/..."],
        cwd=MODULE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if listing.returncode != 0:
        raise BuildError(
            "`go list` failed in tools/kube (module download?). Check network access to the Go module "
            f"proxy (GOPROXY={os.environ.get('GOPROXY', 'default')}).\n{listing.stderr[-2000:]}"
        )
    total = max(1, sum(1 for line in listing.stdout.splitlines() if line.strip()))
    cmd = [go, "build", "-v", "-trimpath", "-ldflags", kube_ldflags(), "-o", str(partial) + "/", "./cmd/..."]
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=MODULE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    done = 0
    tail: list[str] = []
    last_report = 0.0
    for raw in proc.stdout:
        line = raw.rstrip()
        tail = [*tail[-40:], line]
        if line and " " not in line:
            done += 1
        now = time.monotonic()
        if now - last_report > 15:
            last_report = now
            progress(f"compiling: {min(done, total)}/{total} packages ({now - started:.0f}s) {line[:80]}")
    if proc.wait() != 0:
        raise BuildError("go build failed in tools/kube; last output:\n" + "\n".join(tail))
    (partial / "BUILT_FROM").write_text(digest + "\n")
    if directory.exists():
        shutil.rmtree(directory)
    partial.rename(directory)
    progress(f"built in {time.monotonic() - started:.0f}s: {', '.join(NAMES)}")


HELM_VERSION = "v3.22.0"


def ensure_helm(progress: Progress = _say) -> Path:
    """Helm (for rendering and testing the chart), built with ``go install`` and cached by version."""
    directory = cache_root() / f"helm-{HELM_VERSION}"
    helm = directory / "helm"
    if helm.is_file() and os.access(helm, os.X_OK):
        return helm
    go = _go()
    progress(f"building helm {HELM_VERSION} (a minute or two on a warm Go module cache)")
    env = {**os.environ, "CGO_ENABLED": "0", "GOBIN": str(directory)}
    result = subprocess.run(
        [go, "install", "-trimpath", "-ldflags", "-s -w", f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BuildError(f"go install helm {HELM_VERSION} failed:\n{result.stderr[-3000:]}")
    return helm


if __name__ == "__main__":
    try:
        paths = {**ensure_binaries(), "helm": ensure_helm()}
    except BuildError as exc:
        _say(f"error: {exc}")
        raise SystemExit(1) from None
    for name, path in paths.items():
        print(f"{name}: {path}")
