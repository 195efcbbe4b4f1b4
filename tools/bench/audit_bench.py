"""Node audit benchmark: median wall time of a whole-node audit, in-process and as a CLI process.

Builds a compliant control-plane tree and a compliant worker tree (``testbed.hosttrees``), then:

- in-process: ``run_audit`` on each tree, every rule of the benchmark (catalog cache warm, as in
  the agent), N runs, median; while doing so counts the subprocesses the audit starts, with an
  audit hook on ``subprocess.Popen``, ``os.exec*``, ``os.posix_spawn*``, ``os.system`` and
  ``os.fork`` (must be 0);
- as a CLI process: ``python -m plumbob audit --host-root TREE --format json``, M runs, median
  wall and CPU time (includes interpreter start-up and imports);
- the agent as an audit Pod runs it: ``python -m plumbob agent`` on the worker tree, writing its
  report to a local HTTPS stub of the API server (:mod:`testbed.apistub`: loopback, a service
  account directory with a token and the stub's CA), M runs, median wall and CPU time;
- against kube-bench (:mod:`kubebench`, built once from its Go module): each tree shown as the
  machine itself in private namespaces (:class:`kubebench.HostView`: the tree's files overlaid on
  ``/etc``, ``/var``, ``/usr``; its processes running under their names), then ``plumbob audit
  --host-root /`` and ``kube-bench run --benchmark cis-1.12`` in turn, K runs each (A B A B …),
  wall time of each whole process; medians and the ratio.

Prints the figures and the goals (in-process < 50 ms; whole process, audit and agent alike,
< 150 ms; at least 10x faster than kube-bench, on wall time), then a summary of the medians with
the ratios to kube-bench on the same tree; CPU time (user + system) is printed beside wall time,
since on a shared machine wall time also counts the wait for a core. Asserts nothing about time.
Usage: ``python tools/bench/audit_bench.py [--runs 30] [--cli-runs 5] [--kube-bench-runs 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "operator"), str(REPO / "tools"), str(REPO / "tools" / "bench")]

from kubebench import KUBE_BENCH_VERSION, HostView, ensure_kube_bench  # noqa: E402

from plumbob.agent.auditing import run_audit  # noqa: E402
from plumbob.benchmarks.catalog import load_benchmark  # noqa: E402
from testbed.apistub import ApiStub  # noqa: E402
from testbed.binaries import BuildError  # noqa: E402
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
    parser.add_argument("--kube-bench-runs", type=int, default=5)
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
        env = {"PYTHONPATH": str(REPO / "operator"), "PATH": "/usr/bin:/bin"}
        ours: dict[str, tuple[list[float], list[float]]] = {}
        for kind, root in trees.items():
            argv = [sys.executable, "-m", "plumbob", "audit", "--host-root", str(root), "--format", "json"]
            ours[f"audit {kind}"] = _runs(argv, env, args.cli_runs)
            print(f"CLI process {kind:<20}{_median_ms(ours[f'audit {kind}'][0])}")
        ours["agent worker"] = agent_runs(trees["worker"], Path(tmp), args.cli_runs)
        print(f"agent process worker{'':<11}{_median_ms(ours['agent worker'][0])}")
        theirs: dict[str, tuple[list[float], list[float]]] = {}
        if args.kube_bench_runs > 0:
            try:
                theirs = against_kube_bench(trees, args.kube_bench_runs, Path(tmp))
            except (BuildError, RuntimeError, OSError) as exc:
                print(f"\nplumbob vs kube-bench: NOT MEASURED: {exc}")
                return 1
        summary(ours, theirs)
    return 1 if _spawned else 0


def _runs(argv: list[str], env: dict[str, str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``runs`` whole processes (after one warm-up run); each must exit 0."""
    walls, cpus = [], []
    for i in range(runs + 1):
        wall, cpu, done = _timed(argv, env)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv[:4])} exited {done.returncode}: {done.stderr.decode()[-2000:]}"
            )
        if i:
            walls.append(wall)
            cpus.append(cpu)
    return walls, cpus


def agent_runs(tree: Path, scratch: Path, runs: int) -> tuple[list[float], list[float]]:
    """The agent as in an audit Pod, up to its report written to a local HTTPS stub of the API."""
    with ApiStub(scratch / "api-stub") as stub:
        env = {
            "PYTHONPATH": str(REPO / "operator"),
            "PATH": "/usr/bin:/bin",
            **stub.agent_env(scratch / "api-stub" / "serviceaccount"),
            "PLUMBOB_NODE_NAME": "worker-1",
            "PLUMBOB_PROFILE": "bench",
            "PLUMBOB_SCAN": "bench-20261202-000000",
            "PLUMBOB_HOST_ROOT": str(tree),
            "PLUMBOB_TAILORING": json.dumps({"benchmark": "cis-1.12"}),
        }
        out = _runs([sys.executable, "-m", "plumbob", "agent"], env, runs)
        written = [r for r in stub.requests if r.method in ("POST", "PUT")]
        if len(written) != runs + 1:
            raise RuntimeError(f"the agent wrote {len(written)} reports in {runs + 1} runs")
    return out


def summary(
    ours: dict[str, tuple[list[float], list[float]]], host_view: dict[str, tuple[list[float], list[float]]]
) -> None:
    """Medians of every whole process, the goal, and kube-bench's time over ours on the same tree.

    The audit's ratio is taken in the host view, where both ran the same way; the agent's against
    kube-bench on the worker tree (kube-bench writes no report; the agent's figure includes its write).
    """
    print(
        f"\nsummary, whole processes (medians; goal: < {GOAL_MS:.0f} ms wall and kube-bench / plumbob "
        f">= {GOAL_RATIO:.0f}x; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus)"
    )
    print(f"{'':<42}{'wall ms':>9}{'cpu ms':>9}  {'< 150 ms':<9}kube-bench / plumbob: wall, cpu")
    rows = {f"plumbob {name}": runs for name, runs in ours.items()}
    rows.update(sorted(host_view.items(), key=lambda item: item[0].startswith("kube-bench")))
    for name, (walls, cpus) in rows.items():
        wall, cpu = statistics.median(walls) * 1000, statistics.median(cpus) * 1000
        line = f"{name:<42}{wall:>9.1f}{cpu:>9.1f}  "
        if name.startswith("kube-bench"):
            print(line)
            continue
        line += f"{'met' if wall < GOAL_MS else 'MISSED':<9}"
        kind = "worker" if "agent" in name else name.split()[2].rstrip(",")
        theirs = host_view.get(f"kube-bench {kind}")
        if theirs is not None and ("host view" in name or "agent" in name):
            ratio_wall = statistics.median(theirs[0]) * 1000 / wall
            ratio_cpu = statistics.median(theirs[1]) * 1000 / cpu
            line += f"{ratio_wall:.1f}x, {ratio_cpu:.1f}x ({'met' if ratio_wall >= GOAL_RATIO else 'MISSED'})"
        print(line)


GOAL_MS, GOAL_RATIO = 150.0, 10.0


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess[bytes]]:
    """Wall time and CPU time (user + system, the process and everything it waited for) of one run."""
    cpu0, t0 = _cpu_of_children(), time.perf_counter()
    done = subprocess.run(argv, capture_output=True, check=False, env=env)
    return time.perf_counter() - t0, _cpu_of_children() - cpu0, done


def _kube_bench_totals(stdout: bytes) -> str:
    try:
        totals = json.loads(stdout).get("Totals", {})
    except ValueError:
        return "no JSON output"
    return ", ".join(
        f"{totals.get(k, 0)} {k.removeprefix('total_')}" for k in ("total_pass", "total_fail", "total_warn")
    )


def against_kube_bench(
    trees: dict[str, Path], runs: int, scratch: Path
) -> dict[str, tuple[list[float], list[float]]]:
    """Whole-process plumbob audit vs kube-bench on each tree, seen as the machine itself; returns
    the wall and CPU seconds of both, by row name of the summary."""
    out = {}
    kube_bench, cfg, pause = ensure_kube_bench()
    env = {"PYTHONPATH": str(REPO / "operator"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    plumbob = [sys.executable, "-m", "plumbob", "audit", "--host-root", "/", "--format", "json"]
    theirs = [str(kube_bench), "run", "--config-dir", str(cfg), "--benchmark", "cis-1.12", "--json"]
    print(
        f"\nwhole process, same host view: plumbob audit vs kube-bench {KUBE_BENCH_VERSION} (n={runs} each)"
    )
    for kind, root in trees.items():
        with HostView(root, pause, scratch / f"view-{kind}") as view:
            ours_s, theirs_s, ours_cpu, theirs_cpu = [], [], [], []
            _timed(view.command(plumbob), env)  # warm-up: page cache, first exec
            last_theirs = _timed(view.command(theirs), env)[2]
            for _ in range(runs):
                elapsed, cpu, ours_done = _timed(view.command(plumbob), env)
                ours_s.append(elapsed)
                ours_cpu.append(cpu)
                elapsed, cpu, last_theirs = _timed(view.command(theirs), env)
                theirs_s.append(elapsed)
                theirs_cpu.append(cpu)
            counts = json.loads(ours_done.stdout)["summary"]
            print(f"plumbob {kind:<24}{_median_ms(ours_s)}   {counts['pass']} pass, {counts['fail']} fail")
            print(f"kube-bench {kind:<21}{_median_ms(theirs_s)}   {_kube_bench_totals(last_theirs.stdout)}")
            print(f"  cpu (user+sys): plumbob {_median_ms(ours_cpu)}; kube-bench {_median_ms(theirs_cpu)}")
            ours_ms = statistics.median(ours_s) * 1000
            ratio = statistics.median(theirs_s) / statistics.median(ours_s)
            cpu_ratio = statistics.median(theirs_cpu) / statistics.median(ours_cpu)
            fast = "met" if ours_ms < GOAL_MS else "MISSED"
            faster = "met" if ratio >= GOAL_RATIO else "MISSED"
            print(
                f"  {kind}: plumbob {ours_ms:.0f} ms wall (goal < {GOAL_MS:.0f} ms: {fast}); kube-bench / "
                f"plumbob = {ratio:.1f}x wall, {cpu_ratio:.1f}x cpu (goal >= {GOAL_RATIO:.0f}x: {faster})"
            )
            print(f"  load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
            out[f"kube-bench {kind}"] = (theirs_s, theirs_cpu)
            out[f"plumbob audit {kind}, host view"] = (ours_s, ours_cpu)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
