"""The images the testbed's real node runs without a registry: a pause image and Plumbob's image.

- ``localhost/pause:testbed``: the sandbox image containerd pins (it would otherwise try to pull
  the upstream pause image). Its one file is ``tools/testbed/pause/pause.go`` built as a static
  binary (``CGO_ENABLED=0``, the standard library only), cached by source digest like the other
  binaries; the OCI archive around it is written here with fixed times, so it is the same bytes
  on every machine.
- ``localhost/plumbob:<version>``: what ``make image`` wrote to ``build/image/plumbob.tar``.

Both archives are imported with ``ctr images import`` (see ``realnode.py``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

from testbed.binaries import BuildError, Progress, _go, _say, cache_root

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PAUSE_SOURCE = HERE / "pause" / "pause.go"
PAUSE_IMAGE = "localhost/pause:testbed"
PLUMBOB_ARCHIVE = REPO / "build" / "image" / "plumbob.tar"


def plumbob_image() -> tuple[str, Path]:
    """The name and archive of the image ``make image`` built, or a clear error when it is missing."""
    if not PLUMBOB_ARCHIVE.is_file():
        raise BuildError(f"{PLUMBOB_ARCHIVE} is missing: run `make image` first")
    with tarfile.open(PLUMBOB_ARCHIVE) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        index = json.load(member)
    return str(index["manifests"][0]["annotations"]["io.containerd.image.name"]), PLUMBOB_ARCHIVE


def pause_archive(progress: Progress = _say) -> Path:
    """Build (once) the pause binary and its image archive; return the archive's path."""
    digest = hashlib.sha256(PAUSE_SOURCE.read_bytes()).hexdigest()[:16]
    directory = cache_root() / f"pause-{digest}"
    archive = directory / "pause.tar"
    if archive.is_file():
        return archive
    progress("building the pause binary of the real node (seconds)")
    directory.mkdir(parents=True, exist_ok=True)
    binary = directory / "pause"
    result = subprocess.run(
        [_go(), "build", "-trimpath", "-ldflags", "-s -w", "-o", str(binary), str(PAUSE_SOURCE)],
        env={**os.environ, "CGO_ENABLED": "0", "GO111MODULE": "off"},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BuildError(f"building pause failed:\n{result.stderr[-2000:]}")
    partial = archive.with_suffix(".partial")
    partial.write_bytes(_oci_archive(binary.read_bytes()))
    partial.rename(archive)
    return archive


def _tar(entries: list[tuple[str, bytes, int]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _oci_archive(binary: bytes) -> bytes:
    """An OCI image layout (one uncompressed layer holding ``/pause``) as one tar."""
    layer = _tar([("pause", binary, 0o755)])
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = _json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }
    )
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
    )
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    index = _json(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "annotations": {"io.containerd.image.name": PAUSE_IMAGE},
                }
            ],
        }
    )
    blobs = [(d.removeprefix("sha256:"), b) for d, b in ((layer_digest, layer), (config_digest, config))]
    blobs.append((manifest_digest.removeprefix("sha256:"), manifest))
    return _tar(
        [
            ("oci-layout", _json({"imageLayoutVersion": "1.0.0"}), 0o644),
            ("index.json", index, 0o644),
            *((f"blobs/sha256/{d}", b, 0o644) for d, b in blobs),
        ]
    )
