"""Node audit benchmark: median wall time of a whole-node audit, in-process and as a CLI process.

Builds a compliant control-plane tree and a compliant worker tree (``testbed.hosttrees``), then:

- in-process: ``run_audit`` on each tree, every rule of the benchmark (catalog cache warm, as in
  the agent), N runs, median; while doing so counts the subprocesses the audit starts, with an
  audit hook on ``subprocess.Popen``, ``os.exec*``, ``os.posix_spawn*``, ``os.system`` and
  ``os.fork`` (must be 0);
- as a CLI process: ``python -m plumbob audit --host-root TREE --format json``, M runs, median
  (includes interpreter start-up and imports).

Prints the figures; asserts nothing about time (the goal is < 50 ms in-process).
Usage: ``python tools/bench/audit_bench.py [--runs 30] [--cli-runs 5]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "operator"), str(REPO / "tools")]

from plumbob.agent.auditing import run_audit  # noqa: E402
from plumbob.benchmarks.catalog import load_benchmark  # noqa: E402
from testbed.hosttrees import build_tree  # noqa: E402

_SPAWN_EVENTS = {"subprocess.Popen", "os.exec", "os.posix_spawn", "os.system", "os.fork", "os.forkpty"}
_spawned: list[str] = []
_state = {"counting": False}


def _hook(event: str, args: tuple[object, ...]) -> None:
    if _state["counting"] and event in _SPAWN_EVENTS:
        _spawned.append(event)


def _median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:8.2f} ms (min {min(samples) * 1000:.2f}, n={len(samples)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--cli-runs", type=int, default=5)
    args = parser.parse_args()
    sys.addaudithook(_hook)
    load_benchmark("cis-1.12")  # warm the catalog cache, as a long-lived agent would
    with tempfile.TemporaryDirectory(prefix="plumbob-bench-") as tmp:
        trees = {kind: build_tree(Path(tmp) / kind, kind).root for kind in ("control-plane", "worker")}
        print(f"{'audit':<32}{'median':>12}")
        for kind, root in trees.items():
            samples = []
            _state["counting"] = True
            for _ in range(args.runs):
                t0 = time.perf_counter()
                result = run_audit(root)
                samples.append(time.perf_counter() - t0)
            _state["counting"] = False
            counts = result.counts()
            print(
                f"in-process {kind:<21}{_median_ms(samples)}   {counts['pass']} pass, {counts['fail']} fail"
            )
        print(f"subprocesses spawned by in-process audits: {len(_spawned)}")
        for kind, root in trees.items():
            samples = []
            for _ in range(args.cli_runs):
                t0 = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "plumbob", "audit", "--host-root", str(root), "--format", "json"],
                    check=True,
                    capture_output=True,
                    env={"PYTHONPATH": str(REPO / "operator"), "PATH": "/usr/bin:/bin"},
                )
                samples.append(time.perf_counter() - t0)
            print(f"CLI process {kind:<20}{_median_ms(samples)}")
    return 1 if _spawned else 0


if __name__ == "__main__":
    raise SystemExit(main())
