"""The container image built by ``make image`` (tools/image/build.py).

Cases:
- reproducible: two builds from the same commit, in different directories, give the same
  manifest digest (and so the same layer and config);
- the config runs the operator as uid/gid 65532 and carries the OCI labels (source, version,
  revision, licenses); the layout names the image as the chart's default (``image.repository``
  and the chart's appVersion);
- the file system has no shell, no package manager, no pip and no compiler, and no set-uid file;
- the image's own Python runs ``plumbob`` as uid 65532 inside the unpacked root (chroot, so this
  test needs root, as CI has): imports, and an audit of this machine.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "tools" / "image" / "build.py"


def _build(out: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(BUILD), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    first, second = tmp_path_factory.mktemp("image-1"), tmp_path_factory.mktemp("image-2")
    return first, _build(first), _build(second)


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def _manifest(layout: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    index = json.loads((layout / "index.json").read_text())
    [entry] = index["manifests"]
    manifest = json.loads(_blob(layout, entry["digest"]))
    return entry, manifest


def test_two_builds_give_the_same_digest(built: tuple[Path, str, str]) -> None:
    out, first, second = built
    assert first.startswith("sha256:") and first == second
    entry, _ = _manifest(out / "oci")
    assert entry["digest"] == first
    assert hashlib.sha256(_blob(out / "oci", first)).hexdigest() == first.split(":")[1]


def test_config_user_labels_and_name(built: tuple[Path, str, str]) -> None:
    out, _, _ = built
    entry, manifest = _manifest(out / "oci")
    config = json.loads(_blob(out / "oci", manifest["config"]["digest"]))
    assert config["config"]["User"] == "65532:65532"
    labels = config["config"]["Labels"]
    for key in ("source", "version", "revision", "licenses", "created"):
        assert labels[f"org.opencontainers.image.{key}"], key
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    chart = yaml.safe_load((REPO / "charts/plumbob/Chart.yaml").read_text())
    values = yaml.safe_load((REPO / "charts/plumbob/values.yaml").read_text())
    expected = f"{values['image']['repository']}:{values['image']['tag'] or chart['appVersion']}"
    assert entry["annotations"]["io.containerd.image.name"] == expected
    assert labels["org.opencontainers.image.version"] == chart["appVersion"]


def _members(out: Path) -> dict[str, tarfile.TarInfo]:
    _, manifest = _manifest(out / "oci")
    [layer] = manifest["layers"]
    path = out / "oci" / "blobs" / "sha256" / layer["digest"].split(":")[1]
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def test_no_shell_package_manager_or_compiler(built: tuple[Path, str, str]) -> None:
    out, _, _ = built
    members = _members(out)
    names = set(members)
    assert "usr/bin/python3.11" in names
    basenames = {
        n.rsplit("/", 1)[-1] for n in names if n.startswith(("bin/", "usr/bin/", "sbin/", "usr/sbin/"))
    }
    assert basenames == {"python", "python3", "python3.11"}, basenames
    forbidden = ("apt", "dpkg", "pip", "gcc", "cc", "ld", "sh", "bash", "dash", "busybox", "perl")
    for name in names:
        base = name.rsplit("/", 1)[-1]
        assert base not in forbidden, name
    assert not any("/pip/" in n or n.endswith("/pip") for n in names)
    assert not [n for n, m in members.items() if m.mode & 0o6000], "set-uid/set-gid files"
    assert {m.uid for m in members.values()} <= {0, 65532}
    assert {m.mtime for m in members.values()} == {members["usr/bin/python3.11"].mtime}


def test_plumbob_runs_as_nonroot_in_the_image(built: tuple[Path, str, str], tmp_path: Path) -> None:
    out, _, _ = built
    _, manifest = _manifest(out / "oci")
    root = tmp_path / "rootfs"
    root.mkdir()
    [layer] = manifest["layers"]
    with tarfile.open(out / "oci" / "blobs" / "sha256" / layer["digest"].split(":")[1], "r:gz") as tar:
        tar.extractall(root, filter="fully_trusted")  # our own image
    script = "import os, plumbob, kopf, kubernetes, pydantic, ssl; print(os.getuid(), plumbob.__version__)"
    run = subprocess.run(
        ["chroot", "--userspec=65532:65532", str(root), "/usr/bin/python3", "-c", script],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["65532", "0.1.0"], run.stdout
    audit = subprocess.run(
        ["chroot", "--userspec=65532:65532", str(root), "/usr/bin/python3", "-m", "plumbob", "audit",
         "--host-root", "/", "--rules", "4.1.*", "--format", "json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert audit.returncode in (0, 1, 4), audit.stderr
    assert json.loads(audit.stdout)["findings"], audit.stdout[:500]
