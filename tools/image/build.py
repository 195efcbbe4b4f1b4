"""Build Plumbob's container image (``make image``): one image for the operator and the agent.

No daemon and no privileges: the root file system is assembled in a directory from pinned Debian
packages (unpacked with ``dpkg-deb -x``, no maintainer scripts run) and from wheels (ours and the
pinned dependencies, installed with the build machine's pip into the image's ``dist-packages``);
this script then writes the OCI image layout itself: one layer tar with sorted entries, every
owner root, every time ``SOURCE_DATE_EPOCH``, gzip without a time stamp, and JSON written with
sorted keys. Two builds from the same commit therefore give the same digest
(``tests/integration/test_image.py`` builds twice and compares).

Inputs, all pinned:
- ``tools/image/debian.lock``: Debian packages, version and SHA-256 (``--lock`` rewrites it from
  the current candidates; the build fails when the archive no longer serves a pinned version);
- ``tools/image/requirements.lock``: the runtime wheels with their SHA-256 (``pip --require-hashes``);
- the commit: ``SOURCE_DATE_EPOCH`` defaults to the last commit's time, the revision label to its id
  (``PLUMBOB_IMAGE_REVISION`` overrides it).

What is not in the image: a shell, coreutils, a package manager, pip, compilers. The operator
runs as uid/gid 65532 (``nonroot`` in ``/etc/passwd``); the audit Job runs the same image as uid 0
with only ``DAC_READ_SEARCH`` (see ``operator/plumbob/controller/decisions/jobs.py``).

Outputs (``build/image/``): ``oci/`` (an OCI image layout, for ``skopeo copy oci:build/image/oci:...``),
``plumbob.tar`` (the same layout as one archive, for ``ctr images import``) and ``digest``.
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DEBIAN_LOCK = HERE / "debian.lock"
REQUIREMENTS_LOCK = HERE / "requirements.lock"
BUILD_CONSTRAINTS = HERE / "build-constraints.txt"
NAME = "localhost/plumbob"
# libstdc++6: cel-expr-python (custom CEL rules) is a C++ extension built against it
ROOTS = ("python3.11-minimal", "libpython3.11-stdlib", "netbase", "libstdc++6")
# Dependencies not followed: package-management and configuration machinery a read-only image
# never runs (their maintainer scripts are not run either).
NOT_FOLLOWED = {"debconf", "debconf-2.0", "perl-base", "dpkg", "libc-bin", "readline-common", "install-info"}
PRUNE = (
    "usr/share/man",
    "usr/share/info",
    "usr/share/lintian",
    "usr/share/locale",
    "usr/share/bug",
    "usr/share/gcc",  # libstdc++6's debugger pretty-printers
    "usr/share/gdb",
)
SITE = "usr/lib/python3/dist-packages"
UID = 65532


def say(message: str) -> None:
    print(f"[image] {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    explicit = os.environ.get("PLUMBOB_CACHE_DIR")
    root = (
        Path(explicit)
        if explicit
        else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "plumbob"
    )
    return root / "image-inputs"


def version() -> str:
    text = (REPO / "pyproject.toml").read_text()
    match = re.search(r'^version = "([^"]+)"', text, re.M)
    assert match
    return match.group(1)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


# ---- locking ------------------------------------------------------------------------------------
def resolve_debian() -> list[str]:
    """The closure of ROOTS over Depends/PreDepends (first alternative), minus NOT_FOLLOWED."""
    seen: set[str] = set()
    order: list[str] = []
    todo = list(ROOTS)
    while todo:
        pkg = todo.pop(0)
        if pkg in seen:
            continue
        seen.add(pkg)
        order.append(pkg)
        out = subprocess.run(
            [
                "apt-cache",
                "depends",
                "--no-recommends",
                "--no-suggests",
                "--no-conflicts",
                "--no-breaks",
                "--no-replaces",
                "--no-enhances",
                pkg,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        skip_next = False
        for line in out.splitlines()[1:]:
            match = re.match(r"\s*(\|?)(PreDepends|Depends): (\S+)", line)
            if not match:
                continue
            alternative, name = match.group(1) == "|", match.group(3)
            if skip_next:
                skip_next = alternative
                continue
            skip_next = alternative
            if not name.startswith("<") and name not in NOT_FOLLOWED and name not in seen:
                todo.append(name)
    return sorted(order)


def lock() -> None:
    lines = ["# name version sha256 (python tools/image/build.py --lock rewrites this file)"]
    for pkg in resolve_debian():
        out = subprocess.run(
            ["apt-get", "download", "--print-uris", pkg], capture_output=True, text=True, check=True
        ).stdout.split()
        filename, sha = out[1], out[3].removeprefix("SHA256:")
        ver = filename.split("_")[1].replace("%3a", ":")
        lines.append(f"{pkg} {ver} {sha}")
    DEBIAN_LOCK.write_text("\n".join(lines) + "\n")
    say(f"wrote {DEBIAN_LOCK.relative_to(REPO)} ({len(lines) - 1} packages)")
    with tempfile.TemporaryDirectory() as tmp:
        deps = re.search(r"^dependencies = \[(.*?)\]", (REPO / "pyproject.toml").read_text(), re.S | re.M)
        assert deps
        reqs = re.findall(r'"([^"]+)"', deps.group(1))
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", tmp, *reqs],
            check=True,
        )
        out = ["# runtime wheels of the image (python tools/image/build.py --lock rewrites this file)"]
        for wheel in sorted(Path(tmp).glob("*.whl")):
            name, ver = wheel.name.split("-")[:2]
            sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
            out.append(f"{name}=={ver} --hash=sha256:{sha}")
        REQUIREMENTS_LOCK.write_text("\n".join(out) + "\n")
    say(f"wrote {REQUIREMENTS_LOCK.relative_to(REPO)} ({len(out) - 1} wheels)")


# ---- inputs -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Deb:
    name: str
    version: str
    sha256: str


def read_debian_lock() -> list[Deb]:
    debs = []
    for line in DEBIAN_LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, ver, sha = line.split()
            debs.append(Deb(name, ver, sha))
    return debs


def fetch_debs(debs: list[Deb], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for deb in debs:
        found = [p for p in directory.glob(f"{deb.name}_*.deb") if _sha256(p) == deb.sha256]
        if not found:
            result = _apt_download(deb, directory)
            if result.returncode != 0:
                raise SystemExit(
                    f"cannot download {deb.name}={deb.version} (has the archive moved on?): "
                    f"{result.stderr.strip()}\n"
                    "run `apt-get update`, then `python tools/image/build.py --lock` and commit the new lock"
                )
            found = [p for p in directory.glob(f"{deb.name}_*.deb") if _sha256(p) == deb.sha256]
            if not found:
                raise SystemExit(
                    f"{deb.name}={deb.version}: downloaded file does not match the pinned SHA-256"
                )
        paths.append(found[0])
    return paths


_UPDATED: list[bool] = []


def _apt_download(deb: Deb, directory: Path) -> subprocess.CompletedProcess[str]:
    """``apt-get download name=version``; on a machine whose package lists are missing or stale
    (a fresh CI machine), refresh them once (as root) and try again."""
    cmd = ["apt-get", "download", f"{deb.name}={deb.version}"]
    result = subprocess.run(cmd, cwd=directory, check=False, capture_output=True, text=True)
    if result.returncode != 0 and not _UPDATED and os.geteuid() == 0:
        _UPDATED.append(True)
        say("apt-get update (package lists missing or stale)")
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        result = subprocess.run(cmd, cwd=directory, check=False, capture_output=True, text=True)
    return result


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_wheels(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
            "-r",
            str(REQUIREMENTS_LOCK),
            "-d",
            str(directory),
        ],
        check=True,
    )
    wanted = {
        line.split("==")[0].lower().replace("_", "-")
        for line in REQUIREMENTS_LOCK.read_text().splitlines()
        if line and not line.startswith("#")
    }
    return sorted(
        w for w in directory.glob("*.whl") if w.name.split("-")[0].lower().replace("_", "-") in wanted
    )


def build_own_wheel(directory: Path, epoch: int) -> Path:
    """This checkout's plumbob wheel, built into ``directory`` (the build's own, never the shared
    cache: two checkouts building at once must not overwrite each other's)."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "PIP_CONSTRAINT": str(BUILD_CONSTRAINTS)}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(directory), str(REPO)],
        check=True,
        env=env,
    )
    [wheel] = directory.glob("plumbob-*.whl")
    return wheel


# ---- root file system ---------------------------------------------------------------------------
PASSWD = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
GROUP = "root:x:0:\nnonroot:x:65532:\n"


def assemble(root: Path, debs: list[Path], wheels: list[Path]) -> None:
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    for rel in PRUNE:
        shutil.rmtree(root / rel, ignore_errors=True)
    doc = root / "usr/share/doc"
    if doc.is_dir():  # keep each package's copyright file, nothing else of its docs
        for path in sorted(doc.rglob("*"), reverse=True):
            if path.is_file() and path.name != "copyright":
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    site = root / SITE
    site.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--no-compile",
            "--disable-pip-version-check",
            "--target",
            str(site),
            *map(str, wheels),
        ],
        check=True,
    )
    shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts point at the build's python
    for meta in site.glob("*.dist-info"):
        for volatile in ("direct_url.json", "INSTALLER", "REQUESTED"):
            (meta / volatile).unlink(missing_ok=True)
        record = meta / "RECORD"  # drop the lines of the files just removed
        if record.exists():
            keep = [
                ln
                for ln in record.read_text().splitlines()
                if not re.search(r"/(direct_url\.json|INSTALLER|REQUESTED),", ln)
                and not ln.startswith("../../bin/")
            ]
            record.write_text("\n".join(keep) + "\n")
    # Byte code with hash-based invalidation: no time stamps inside, and nothing to write at run
    # time on the read-only root file system.
    for tree, shown in ((root / "usr/lib/python3.11", "/usr/lib/python3.11"), (site, "/" + SITE)):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "compileall",
                "-q",
                "-j",
                "0",
                "--invalidation-mode",
                "unchecked-hash",
                "-d",
                shown,
                str(tree),
            ],
            check=False,  # a few test modules of the stdlib do not compile on purpose
            stdout=subprocess.DEVNULL,
        )
    (root / "usr/bin/python3").symlink_to("python3.11")
    (root / "usr/bin/python").symlink_to("python3.11")
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    for directory, mode in (("tmp", 0o1777), ("home/nonroot", 0o755), ("root", 0o700), ("host", 0o755)):
        (root / directory).mkdir(parents=True, exist_ok=True)
        (root / directory).chmod(mode)


# ---- OCI layout ---------------------------------------------------------------------------------
def _add_tree(tar: tarfile.TarFile, root: Path, epoch: int, owner: Callable[[str], int]) -> None:
    """Every entry under ``root``, sorted, with time ``epoch``, no names for owners, no
    set-uid/set-gid bits and no extended headers: the same tree gives the same bytes."""
    for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
        rel = path.relative_to(root).as_posix()
        info = tar.gettarinfo(str(path), arcname=rel)
        info.uid = info.gid = owner(rel)
        info.uname = info.gname = ""
        info.mtime = epoch
        info.mode &= 0o1777
        info.pax_headers = {}
        if info.isreg():
            with path.open("rb") as f:
                tar.addfile(info, f)
        else:
            tar.addfile(info)


def layer(root: Path, epoch: int) -> bytes:
    """The image's one layer: owners root, except ``home/nonroot`` (the nonroot user)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_tree(tar, root, epoch, lambda rel: UID if rel.startswith("home/nonroot") else 0)
    return buffer.getvalue()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _blob(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}"


def write_layout(layout: Path, tar: bytes, *, epoch: int, tag: str, revision: str) -> str:
    shutil.rmtree(layout, ignore_errors=True)
    (layout / "blobs" / "sha256").mkdir(parents=True)
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=6, filename="") as f:
        f.write(tar)
    layer_data = gz.getvalue()
    layer_digest = _blob(layout, layer_data)
    created = _rfc3339(epoch)
    labels = {
        "org.opencontainers.image.title": "plumbob",
        "org.opencontainers.image.description": "Kubernetes compliance operator and node audit agent",
        "org.opencontainers.image.source": "https://github.com/plumbob/plumbob",
        "org.opencontainers.image.version": tag,
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.created": created,
    }
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {
            "User": f"{UID}:{UID}",
            "Entrypoint": ["python3", "-m", "plumbob"],
            "Cmd": ["operator"],
            "Env": ["PATH=/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"],
            "WorkingDir": "/home/nonroot",
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(tar).hexdigest()}"]},
        "history": [{"created": created, "created_by": "tools/image/build.py"}],
    }
    config_data = _json(config)
    config_digest = _blob(layout, config_data)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(config_data),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": len(layer_data),
            }
        ],
        "annotations": labels,
    }
    manifest_data = _json(manifest)
    manifest_digest = _blob(layout, manifest_data)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(manifest_data),
                "annotations": {
                    "org.opencontainers.image.ref.name": tag,
                    "io.containerd.image.name": f"{NAME}:{tag}",
                },
            }
        ],
    }
    (layout / "index.json").write_bytes(_json(index))
    (layout / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))
    return manifest_digest


def _rfc3339(epoch: int) -> str:
    import time  # noqa: PLC0415

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def archive(layout: Path, out: Path, epoch: int) -> None:
    """The layout as one tar (what ``ctr images import`` and ``skopeo copy oci-archive:`` read)."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_tree(tar, layout, epoch, lambda _rel: 0)


def build(out: Path, epoch: int | None = None) -> str:
    epoch = (
        epoch
        if epoch is not None
        else int(os.environ.get("SOURCE_DATE_EPOCH") or _git("log", "-1", "--format=%ct"))
    )
    revision = os.environ.get("PLUMBOB_IMAGE_REVISION") or _git("rev-parse", "HEAD")
    tag = version()
    inputs = cache_dir()
    say(f"{NAME}:{tag} from {DEBIAN_LOCK.name} and {REQUIREMENTS_LOCK.name}, SOURCE_DATE_EPOCH={epoch}")
    inputs.mkdir(parents=True, exist_ok=True)
    with (inputs / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another checkout may be filling the shared cache too
        debs = fetch_debs(read_debian_lock(), inputs / "debs")
        wheels = fetch_wheels(inputs / "wheels")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="plumbob-image-") as tmp:
        root = Path(tmp) / "rootfs"
        root.mkdir()
        assemble(root, debs, [*wheels, build_own_wheel(Path(tmp) / "wheel", epoch)])
        tar = layer(root, epoch)
    digest = write_layout(out / "oci", tar, epoch=epoch, tag=tag, revision=revision)
    archive(out / "oci", out / "plumbob.tar", epoch)
    (out / "digest").write_text(digest + "\n")
    size = sum(p.stat().st_size for p in (out / "oci" / "blobs" / "sha256").iterdir())
    say(f"{NAME}:{tag} {digest} ({size / 1e6:.0f} MB compressed) in {out}")
    return digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lock", action="store_true", help="re-pin the Debian packages and wheels, then stop"
    )
    parser.add_argument("--out", type=Path, default=REPO / "build" / "image")
    args = parser.parse_args(argv)
    if args.lock:
        lock()
        return 0
    print(build(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
