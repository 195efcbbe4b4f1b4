"""``make bench``: node audit, metrics cardinality, the cluster-rule engine, then the operator scale
benchmark and one table.

- ``tools/bench/audit_bench.py`` runs as its own process (its output is shown as it is); the
  in-process median audit times are taken from its output for the summary table;
- ``tools/bench/metrics_bench.py`` (own process): series per metric family at 10, 100 and 1,000
  simulated nodes (flat but for the per-node family) and the scrape time;
- ``tools/bench/drift_bench.py`` (own process): on a real testbed with a background load of Pods
  and RBAC objects, the latency from a violating change to its ``ComplianceDrift`` (and from its
  fix to ``ComplianceRestored``) over 100 changes, the first full evaluation and RSS growth;
- ``tools/bench/scale_bench.py`` (imported) runs the scale scans (100 nodes x3, 1000 nodes x1 by
  default) and prints its table with the audit medians added;
- ``tools/bench/chaos_soak.py`` (imported) runs 20 scans over 50 simulated nodes while the
  operator is SIGKILLed, the API server restarts and watches expire, and prints what it counted
  (Jobs per node per scan, lost and duplicated results, incomplete scans, leftovers).

Benchmarks measure, they do not gate: the exit code is non-zero only when a benchmark crashed,
not when a goal was missed. Arguments after ``--`` go to the scale benchmark, e.g.
``python tools/bench/run.py -- --nodes 100 --repeat-small 1``.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for _p in (str(REPO / "tools" / "bench"), str(REPO / "tools"), str(REPO / "operator")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

_MEDIAN = re.compile(r"^in-process (control-plane|worker)\s+([0-9.]+) ms")


def run_audit_bench() -> tuple[int, dict[str, float]]:
    """Returns (crash: 0/1, {kind: median ms})."""
    print("== node audit benchmark (tools/bench/audit_bench.py) ==", flush=True)
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "bench" / "audit_bench.py")],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    medians = {}
    for line in proc.stdout.splitlines():
        m = _MEDIAN.match(line)
        if m:
            medians[m.group(1)] = float(m.group(2))
    # audit_bench exits 1 when audits spawned subprocesses: a missed goal, shown in its output.
    crashed = proc.returncode != 0 and (
        "Traceback" in proc.stderr
        or "subprocesses spawned" not in proc.stdout
        or "NOT MEASURED" in proc.stdout
    )
    if proc.returncode != 0 and not crashed:
        print("(audit_bench: subprocesses were spawned: goal 0 MISSED)", flush=True)
    return int(crashed), medians


def main(argv: list[str]) -> int:
    scale_args = argv[argv.index("--") + 1 :] if "--" in argv else argv
    t0 = time.monotonic()
    crashed, medians = run_audit_bench()
    print(flush=True)
    metrics = subprocess.run(
        [sys.executable, str(REPO / "tools" / "bench" / "metrics_bench.py")], check=False, cwd=REPO
    )
    crashed |= int(metrics.returncode not in (0, 1))  # 1: a goal missed, shown in its output
    print("== cluster-rule engine benchmark (tools/bench/cluster_bench.py) ==", flush=True)
    engine = subprocess.run(
        [sys.executable, str(REPO / "tools" / "bench" / "cluster_bench.py")], check=False, cwd=REPO
    )
    crashed |= int(engine.returncode != 0)
    print("\n== cluster drift benchmark (tools/bench/drift_bench.py) ==", flush=True)
    drift = subprocess.run(
        [sys.executable, str(REPO / "tools" / "bench" / "drift_bench.py")], check=False, cwd=REPO
    )
    crashed |= int(drift.returncode not in (0, 1))  # 1: a goal missed, shown in its output
    print(flush=True)
    scale_bench = importlib.import_module("scale_bench")  # after sys.path is set

    try:
        rc = scale_bench.main(scale_args, audit_ms=medians or None)
    except Exception:
        traceback.print_exc()
        rc = 2
    print("\n== chaos soak (tools/bench/chaos_soak.py) ==", flush=True)
    try:
        rc = importlib.import_module("chaos_soak").main([]) or rc
    except Exception:
        traceback.print_exc()
        rc = 2
    print(f"\nmake bench: {time.monotonic() - t0:.0f} s", flush=True)
    return 1 if crashed or rc else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
