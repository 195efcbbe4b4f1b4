"""kube-bench for the node audit benchmark: built once from its Go module, cached, and run in the
same private host view as ``plumbob audit``.

- :func:`ensure_kube_bench` downloads the kube-bench module at :data:`KUBE_BENCH_VERSION`
  (``go mod download`` of that exact version), builds it from the module directory, copies its
  ``cfg/`` beside the binary, and builds ``tools/bench/pause`` (a stand-in process); all cached
  by version under the testbed's cache directory, like the control-plane binaries.
- :class:`HostView` shows a simulated host tree (``testbed.hosttrees``) as the machine itself to
  whatever runs inside it: a private mount and PID namespace (``unshare``, needs root) where each
  top-level directory of the tree is overlaid, read-only, on the real one (``/etc``, ``/var``; as
  deep as the tree goes where it is a single chain, ``/usr/lib/systemd/system``), and the tree's
  processes run for real, each a ``pause`` started under the
  component's name with the component's command line. Commands enter it with ``nsenter``, so both
  tools see the same files and processes, and nothing of the machine's own processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from testbed.binaries import BuildError, Progress, _go, _say, cache_root

KUBE_BENCH_MODULE = "github.com/aquasecurity/kube-bench"
KUBE_BENCH_VERSION = "v0.15.6"
PAUSE_DIR = Path(__file__).resolve().parent / "pause"


def kube_bench_dir() -> Path:
    return cache_root() / f"kube-bench-{KUBE_BENCH_VERSION}"


def ensure_kube_bench(progress: Progress = _say) -> tuple[Path, Path, Path]:
    """(kube-bench binary, its cfg directory, the pause binary), built on first use."""
    directory = kube_bench_dir()
    binary, cfg, pause = directory / "kube-bench", directory / "cfg", directory / "pause"
    if binary.is_file() and (cfg / "config.yaml").is_file() and pause.is_file():
        return binary, cfg, pause
    go = _go()
    env = {**os.environ, "CGO_ENABLED": "0"}
    progress(f"downloading the {KUBE_BENCH_MODULE} module {KUBE_BENCH_VERSION}")
    download = subprocess.run(
        [go, "mod", "download", "-json", f"{KUBE_BENCH_MODULE}@{KUBE_BENCH_VERSION}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=PAUSE_DIR,
    )
    if download.returncode != 0:
        raise BuildError(
            f"go mod download {KUBE_BENCH_MODULE}@{KUBE_BENCH_VERSION} failed:\n{download.stdout}"
        )
    module = Path(json.loads(download.stdout)["Dir"])
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    progress(f"building kube-bench {KUBE_BENCH_VERSION} (a few minutes on two cores)")
    started = time.monotonic()
    for cmd, cwd, what in (
        (
            [
                "nice",
                "-n",
                "10",
                go,
                "build",
                "-trimpath",
                "-ldflags",
                "-s -w",
                "-o",
                str(partial / "kube-bench"),
                ".",
            ],
            module,
            "kube-bench",
        ),
        ([go, "build", "-trimpath", "-o", str(partial / "pause"), "."], PAUSE_DIR, "pause"),
    ):
        result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BuildError(f"go build of {what} failed:\n{result.stderr[-3000:]}")
    shutil.copytree(module / "cfg", partial / "cfg")
    for path in (partial / "cfg").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)  # the module cache is read-only
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)
    progress(f"built kube-bench and pause in {time.monotonic() - started:.0f}s into {directory}")
    return binary, cfg, pause


_HOLDER = r"""
import os, subprocess, sys
tree, pause, links = sys.argv[1], sys.argv[2], sys.argv[3]
for top in sorted(os.listdir(tree)):
    if top == "proc" or not os.path.isdir(os.path.join(tree, top)) or not os.path.isdir("/" + top):
        continue
    # overlay as deep as the tree is a single chain of directories (usr/lib/systemd/system), so
    # the tools' own files (the Python standard library in /usr) stay on the plain file system
    sub = top
    while True:
        entries = os.listdir(os.path.join(tree, sub))
        only = os.path.join(sub, entries[0]) if len(entries) == 1 else None
        if only is None or not os.path.isdir(os.path.join(tree, only)) or not os.path.isdir("/" + only):
            break
        sub = only
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={os.path.join(tree, sub)}:/{sub}", "/" + sub], check=True)
os.makedirs(links, exist_ok=True)
children = []
proc = os.path.join(tree, "proc")
for pid in sorted(os.listdir(proc), key=int):
    with open(os.path.join(proc, pid, "cmdline"), "rb") as fh:
        try:
            argv = [w.decode() for w in fh.read().split(b"\0") if w]
        except UnicodeDecodeError:
            continue  # the trees' deliberately garbled command lines: nothing to run
    if not argv:
        continue
    name = os.path.basename(argv[0])
    link = os.path.join(links, name)
    if not os.path.lexists(link):
        os.symlink(pause, link)
    children.append(subprocess.Popen(argv, executable=link))
print("ready", flush=True)
sys.stdin.read()  # until the harness closes our stdin (or dies)
for child in children:
    child.kill()
"""


class HostView:
    """A simulated host tree seen as the machine, in private namespaces; enter it with :meth:`command`."""

    def __init__(self, tree: Path, pause: Path, scratch: Path) -> None:
        self.proc = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--pid",
                "--fork",
                "--mount-proc",
                "--propagation",
                "private",
                sys.executable,
                "-c",
                _HOLDER,
                str(tree),
                str(pause),
                str(scratch / "bin"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.close()
            raise RuntimeError(f"the host view of {tree} did not start (needs root and unshare)")
        self.pid = self._inner_pid()

    def _inner_pid(self) -> int:
        """The namespace's first process (the holder), as the host numbers it: unshare's child."""
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            children = (task / "children").read_text().split()
            if children:
                return int(children[0])
        raise RuntimeError("unshare has no child")

    def command(self, argv: list[str]) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-m", "-p", "--", *argv]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> HostView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    try:
        for item in ensure_kube_bench():
            print(item)
    except BuildError as exc:
        _say(f"error: {exc}")
        raise SystemExit(1) from None
