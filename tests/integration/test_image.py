"""The container image built by ``make image`` (tools/image/build.py).

Cases:
- reproducible: two builds from the same commit, in different directories, give the same
  manifest digest (and so the same layer and config);
- the config runs the operator as uid/gid 65532 and carries the OCI labels (source, version,
  revision, licenses); the layout names the image as the chart's default (``image.repository``
  and the chart's appVersion);
- the file system has no shell, no package manager, no pip and no compiler, and no set-uid file;
- the image's own Python runs ``plumbob`` as uid 65532 inside the unpacked root (chroot, so this
  test needs root, as CI has): imports, and an audit of this machine;
- the operator runs from the image as uid 65532 with the root file system mounted read-only (a
  private mount namespace), under the chart's service account, against the real control plane:
  a scan over two simulated nodes completes, and the operator is still running afterwards; it
  listens on loopback ports of this test's own (another suite may run on the machine), where its
  liveness probe answers, its metrics carry the profile's score and its dashboard shows it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.controlplane import ControlPlane
from testbed.deploy import NAMESPACE, install, service_account_kubeconfig
from testbed.hosttrees import build_tree
from testbed.simnodes import SimulatedCluster, SimulatedNode

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "tools" / "image" / "build.py"


def _commit() -> dict[str, str]:
    """The commit both builds are of, fixed up front (a commit made meanwhile changes nothing)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()

    return {
        "SOURCE_DATE_EPOCH": git("log", "-1", "--format=%ct"),
        "PLUMBOB_IMAGE_REVISION": git("rev-parse", "HEAD"),
    }


def _build(out: Path, commit: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, str(BUILD), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
        env={**os.environ, **commit},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    first, second = tmp_path_factory.mktemp("image-1"), tmp_path_factory.mktemp("image-2")
    commit = _commit()
    return first, _build(first, commit), _build(second, commit)


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


@pytest.fixture(scope="module")
def rootfs(built: tuple[Path, str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out, _, _ = built
    _, manifest = _manifest(out / "oci")
    root = tmp_path_factory.mktemp("rootfs")
    root.chmod(0o755)  # it becomes "/" for uid 65532
    [layer] = manifest["layers"]
    with tarfile.open(out / "oci" / "blobs" / "sha256" / layer["digest"].split(":")[1], "r:gz") as tar:
        tar.extractall(root, filter="fully_trusted")  # our own image
    return root


def test_plumbob_runs_as_nonroot_in_the_image(rootfs: Path) -> None:
    root = rootfs
    # every module of the package, so a dependency's missing native library (libstdc++ for the CEL
    # library, seen on the real node) fails here rather than in a running Pod
    script = (
        "import importlib, os, pkgutil, plumbob, kopf, kubernetes, pydantic, ssl\n"
        "for m in pkgutil.walk_packages(plumbob.__path__, 'plumbob.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "print(os.getuid(), plumbob.__version__)"
    )
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


def _wait_for_complete_scan(cp: ControlPlane, profile: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for scan in json.loads(cp.kubectl("get", "compliancescans", "-o", "json").stdout)["items"]:
            if scan["spec"]["profile"] == profile and (scan.get("status") or {}).get("phase") == "Complete":
                return dict(scan)
        time.sleep(0.5)
    raise AssertionError(f"no complete scan of {profile} within {timeout:.0f}s")


@dataclass(frozen=True)
class ImageOperator:
    process: subprocess.Popen[bytes]
    log: Path
    liveness: str  # its liveness probe's URL

    def url(self, what: str, timeout: float = 60) -> str:
        """The base URL the operator logged for ``what`` ("metrics" or "dashboard")."""
        pattern = re.compile(rf"{what} on (http://127\.0\.0\.1:[0-9]+)/")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = pattern.search(self.log.read_text(errors="replace"))
            if found:
                return found.group(1)
            time.sleep(0.2)
        raise AssertionError(f"the operator logged no {what} address on loopback")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30) as res:
        return int(res.status), res.read().decode()


@pytest.fixture
def image_operator(rootfs: Path, crds_installed: ControlPlane, tmp_path: Path) -> Iterator[ImageOperator]:
    """``plumbob operator`` from the image: uid 65532, read-only root, only a kubeconfig mounted;
    metrics and dashboard on free loopback ports (logged), liveness on one chosen here (kopf's
    endpoint takes no port 0), never the defaults that another suite's operator may hold."""
    cp = crds_installed
    install(cp)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(cp.ca_file, home / "ca.crt")
    config = json.loads(
        service_account_kubeconfig(cp, "plumbob-operator", NAMESPACE, tmp_path / "kc").read_text()
    )
    config["clusters"][0]["cluster"]["certificate-authority"] = "/home/nonroot/ca.crt"
    (home / "kubeconfig").write_text(json.dumps(config))
    os.chown(home, 65532, 65532)
    for path in home.iterdir():
        os.chown(path, 65532, 65532)
    script = (
        'mount --bind "$1" "$1" && mount --bind "$2" "$1/home/nonroot" && mount -o remount,bind,ro "$1" && '
        'exec chroot --userspec=65532:65532 "$1" /usr/bin/python3 -m plumbob operator --liveness "$3"'
    )
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "KUBECONFIG": "/home/nonroot/kubeconfig",
        "PLUMBOB_NAMESPACE": NAMESPACE,
        "PLUMBOB_POD_NAME": "operator-image",
        "PLUMBOB_METRICS_ADDRESS": "127.0.0.1:0",
        "PLUMBOB_DASHBOARD_ADDRESS": "127.0.0.1:0",
        "HOME": "/home/nonroot",
    }
    liveness = f"http://127.0.0.1:{_free_port()}/healthz"
    log = (tmp_path / "operator.log").open("wb")
    process = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(rootfs), str(home),
         liveness],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    yield ImageOperator(process, tmp_path / "operator.log", liveness)
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()
    print((tmp_path / "operator.log").read_text(errors="replace")[-3000:])


def test_operator_runs_from_the_image_read_only_as_nonroot(
    image_operator: ImageOperator, crds_installed: ControlPlane, tmp_path: Path
) -> None:
    cp = crds_installed
    process = image_operator.process
    nodes = []
    for name in ("img-w1", "img-w2"):
        root = tmp_path / "hosts" / name
        build_tree(root, "worker", [], hostname=name)
        nodes.append(
            SimulatedNode(name=name, role="worker", host_root=root, labels={"plumbob.test/run": "img"})
        )
    cluster = SimulatedCluster(cp.kubeconfig, nodes, ca_file=cp.ca_file, workdir=tmp_path / "simnodes")
    cluster.start()
    try:
        profile = {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ComplianceProfile",
            "metadata": {"name": "image", "annotations": {"plumbob.dev/rescan": "1"}},
            "spec": {
                "benchmark": {"name": "cis-kubernetes", "version": "auto"},
                "nodeSelector": {"matchLabels": {"plumbob.test/run": "img"}},
            },
        }
        cp.kubectl("apply", "-f", "-", input=json.dumps(profile))
        scan = _wait_for_complete_scan(cp, "image", timeout=180)
        assert scan["status"]["nodes"]["done"] == 2, json.dumps(scan["status"]["nodes"])
        assert process.poll() is None, "the operator from the image exited"
        status = Path(f"/proc/{process.pid}/status").read_text()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        assert set(uids) == {"65532"}, status
        assert _get(image_operator.liveness)[0] == 200
        metrics_url = image_operator.url("metrics") + "/metrics"
        score = re.compile(r'^plumbob_profile_score_ratio\{[^}]*profile="image"', re.M)
        deadline = time.monotonic() + 60  # the profile's score is written a pass after the scan
        while not score.search(metrics := _get(metrics_url)[1]) and time.monotonic() < deadline:
            time.sleep(1)
        assert score.search(metrics), metrics[-2000:]
        code, page = _get(image_operator.url("dashboard") + "/")
        assert code == 200 and 'data-profile="image"' in page, page[:2000]
    finally:
        cluster.stop()
        cp.kubectl("delete", "complianceprofile", "image", "--wait=false", check=False)
