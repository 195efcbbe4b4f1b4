"""Chaos soak: many scans while the operator is killed, the API server restarts and watches expire.

One fresh testbed (control plane with an apiserver audit log of the operator's and the agents'
requests), Plumbob installed, ``--nodes`` simulated nodes with in-process agents, one profile and
one schedule (yearly cron, so only rescans start scans). Then ``--scans`` rescans one after the
other; each scan waits for the previous one to complete. During the run:

- the operator is SIGKILLed at a random moment of a scan (seeded; roughly every other scan) and
  started again at once;
- the API server is restarted once, in the middle of a scan (every watch and connection breaks);
- watches expire once: etcd is compacted to its current revision, some writes happen, then the
  API server restarts, so clients resuming their watches from an older resourceVersion get 410
  Gone and must re-list.

Counted afterwards, from the audit log and the API (each must be as stated):

- audit Jobs created per node per scan (successful ``create jobs`` by the operator, per Job name;
  Job names derive from scan and node): 1 for every (scan, node), never 0 or 2;
- lost results: (scan, node) pairs a completed scan does not count as done: 0;
- duplicated results: nodes a completed scan counts more than once, and node reports beyond one per
  node for the profile: 0 (retried writes and retried Pods are printed apart: they are retries of
  the same result, e.g. an agent writing again when the answer to its write was lost in a restart);
- scans not completed within the time limit: 0;
- Jobs and Pods of the soak left once the last scan completed: 0.

Usage: ``python tools/bench/chaos_soak.py [--nodes 50] [--scans 20] [--seed 7] [--keep]``.
Prints the figures with their goals; the exit code is non-zero only when the soak crashed. The
simulated kubelet's warnings go to stderr with their times; ``--keep`` keeps the work directory
(the apiserver audit log, the operator's log, each Pod's log) to find where a result went.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import random
import shutil
import sys
import tempfile
import time
import urllib.error
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
for _p in (str(REPO / "tools" / "bench"), str(REPO / "tools"), str(REPO / "operator")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from scale_bench import AGENT_USER, AUDIT_POLICY, OPERATOR_USER, read_audit  # noqa: E402

from testbed.controlplane import ControlPlane  # noqa: E402
from testbed.deploy import NAMESPACE, Operator, install, start_operator  # noqa: E402
from testbed.hosttrees import build_tree  # noqa: E402
from testbed.simnodes import SimulatedCluster, SimulatedNode  # noqa: E402

PROFILE = "soak"
RUN_LABEL = "plumbob.bench/soak"
GROUP_PATH = "/apis/plumbob.dev/v1alpha1"


def say(msg: str) -> None:
    print(f"[soak] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


@dataclass
class Soak:
    nodes: int
    scans: int
    operator_kills: int = 0
    apiserver_restarts: int = 0
    watch_expiries: int = 0
    completed: list[str] = field(default_factory=list)
    not_completed: list[str] = field(default_factory=list)
    jobs_per_scan_node: Counter[int] = field(default_factory=Counter)  # creates per Job name -> count
    jobs_missing: int = 0
    lost: int = 0
    duplicated: int = 0
    leftover_jobs: int = 0
    leftover_pods: int = 0
    seconds: float = 0.0
    extra_report_writes: int = 0  # agents' retries (a write whose answer was lost in a restart)
    extra_pods: int = 0  # the Job controller's retries of a failed audit Pod


def request_key(value: str) -> str:
    """The label the operator puts on the scan a rescan value started (profile_status.handle_rescans)."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def scan_of(cp: ControlPlane, value: str) -> dict[str, Any] | None:
    listing = cp.request(
        "GET",
        f"{GROUP_PATH}/compliancescans?labelSelector=plumbob.dev%2Frescan-request%3D{request_key(value)}",
    )
    items = listing.get("items") or []
    return items[0] if items else None


def _completed(cp: ControlPlane, value: str) -> dict[str, Any] | None:
    scan = scan_of(cp, value)
    return scan if scan and (scan.get("status") or {}).get("phase") == "Complete" else None


def run(nodes: int, scans: int, seed: int, per_scan_timeout: float, keep: bool = False) -> Soak:
    rng = random.Random(seed)
    soak = Soak(nodes=nodes, scans=scans)
    wd = Path(tempfile.mkdtemp(prefix="plumbob-soak-"))
    policy = wd / "audit-policy.json"
    policy.write_text(json.dumps(AUDIT_POLICY))
    audit_log = wd / "audit.log"
    cp = ControlPlane.start(
        wd / "cp",
        progress=say,
        extra_apiserver_args=[
            f"--audit-policy-file={policy}",
            f"--audit-log-path={audit_log}",
            "--audit-log-format=json",
            "--audit-log-mode=blocking",
            "--audit-log-maxsize=0",
        ],
    )
    cluster: SimulatedCluster | None = None
    operator: Operator | None = None
    try:
        install(cp)
        operator = start_operator(cp, wd)
        trees = {kind: build_tree(wd / "trees" / kind, kind).root for kind in ("control-plane", "worker")}
        cluster = SimulatedCluster(
            cp.kubeconfig,
            [
                SimulatedNode(
                    name=f"soak-{i:03d}",
                    role="control-plane" if i == 0 else "worker",
                    host_root=trees["control-plane" if i == 0 else "worker"],
                    labels={RUN_LABEL: "1"},
                )
                for i in range(nodes)
            ],
            runner="inprocess",
            ca_file=cp.ca_file,
            workdir=wd / "simnodes",
        ).start()
        body = {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ComplianceProfile",
            "metadata": {"name": PROFILE},
            "spec": {
                "benchmark": {"name": "cis-kubernetes", "version": "auto"},
                "nodeSelector": {"matchLabels": {RUN_LABEL: "1"}},
            },
        }
        cp.kubectl("apply", "-f", "-", input=json.dumps(body))
        schedule = {
            "apiVersion": "plumbob.dev/v1alpha1",
            "kind": "ComplianceSchedule",
            "metadata": {"name": PROFILE},
            "spec": {
                "schedule": "0 0 1 1 *",
                "profiles": [PROFILE],
                "maxParallelNodes": 10,
                # longer than an API server restart takes on a loaded 2-core machine (about a
                # minute): the agents wait the restart out instead of hitting their deadline
                "nodeDeadlineSeconds": 300,
                "historyLimit": 100,
            },
        }
        cp.kubectl("apply", "-f", "-", input=json.dumps(schedule))
        restart_at, expire_at = scans // 3, (2 * scans) // 3
        t0 = time.monotonic()
        for i in range(1, scans + 1):
            value = f"soak-{i}"
            cp.kubectl("annotate", "--overwrite", "complianceprofile", PROFILE, f"plumbob.dev/rescan={value}")
            if i == restart_at:
                _wait(lambda v=value: scan_of(cp, v), 60)  # type: ignore[misc]
                say(f"scan {i}: restarting the API server")
                t = time.monotonic()
                cp.restart_apiserver()
                say(f"scan {i}: the API server was away for {time.monotonic() - t:.0f} s")
                soak.apiserver_restarts += 1
            elif i == expire_at:
                _wait(lambda v=value: scan_of(cp, v), 60)  # type: ignore[misc]
                revision = cp.compact_etcd()
                cp.kubectl(
                    "annotate", "--overwrite", "complianceschedule", PROFILE, f"soak/compacted={revision}"
                )
                cp.compact_etcd()
                say(f"scan {i}: etcd compacted past every watch's resourceVersion; restarting the API server")
                t = time.monotonic()
                cp.restart_apiserver()
                say(f"scan {i}: the API server was away for {time.monotonic() - t:.0f} s")
                soak.watch_expiries += 1
            elif rng.random() < 0.5:
                delay = rng.uniform(0.0, 6.0)
                time.sleep(delay)  # a random moment of the scan, from the seeded generator
                say(f"scan {i}: SIGKILL the operator {delay:.1f}s after the trigger, then start it again")
                operator.kill()
                operator = start_operator(cp, wd)
                soak.operator_kills += 1
            try:
                scan = _wait(lambda v=value: _completed(cp, v), per_scan_timeout)  # type: ignore[misc]
                soak.completed.append(scan["metadata"]["name"])
                missing = nodes - int(scan["status"]["nodes"]["done"])
                soak.lost += missing
                soak.duplicated += max(0, int(scan["status"]["nodes"]["total"]) - nodes)
                if missing:
                    say(f"scan {i}: {missing} node(s) without results: {json.dumps(scan['status']['nodes'])}")
            except TimeoutError:
                current = scan_of(cp, value)
                soak.not_completed.append(current["metadata"]["name"] if current else value)
                say(
                    f"scan {i} did not complete: {json.dumps((current or {}).get('status', {}).get('nodes'))}"
                )
        soak.seconds = time.monotonic() - t0
        soak.leftover_jobs, soak.leftover_pods = _leftovers(cp)
        reports = cp.request("GET", f"{GROUP_PATH}/compliancereports").get("items") or []
        # node reports only: the profile's cluster-level report (no spec.nodeName) is one of its own
        node_reports = [r for r in reports if r["spec"]["profile"] == PROFILE and r["spec"].get("nodeName")]
        soak.duplicated += max(0, len(node_reports) - nodes)
        _count(soak, read_audit(audit_log), cluster)
    finally:
        if cluster is not None:
            cluster.stop(delete_nodes=False)
        if operator is not None:
            if not operator.alive():
                say("operator not running at the end; log tail:\n" + operator.tail(40))
            operator.stop()
        cp.stop()
        if keep:
            say(f"kept the work directory (audit log, operator log, Pod logs): {wd}")
        else:
            shutil.rmtree(wd, ignore_errors=True)
    return soak


def _wait(probe: Any, timeout: float) -> Any:
    """Poll ``probe`` until it returns something; an API server that is away or busy (a refused
    connection, 429 while it starts, 5xx) is the soak's own doing: keep polling."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = probe()
        except (OSError, urllib.error.URLError) as exc:  # HTTPError is a URLError
            say(f"(poll: {exc}; polling again)")
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError


def _leftovers(cp: ControlPlane) -> tuple[int, int]:
    """Jobs and Pods of the soak still there, once they had the chance to go (waits up to 60 s)."""
    selector = "app.kubernetes.io/managed-by%3Dplumbob"

    def count() -> tuple[int, int]:
        jobs = cp.request("GET", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs?labelSelector={selector}")
        pods = cp.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector={selector}")
        return len(jobs.get("items") or []), len(pods.get("items") or [])

    with contextlib.suppress(TimeoutError):
        _wait(lambda: count() == (0, 0), 60)
    return count()


def _count(soak: Soak, events: list[dict[str, Any]], cluster: SimulatedCluster) -> None:
    creates: Counter[str] = Counter()
    report_writes = 0
    for ev in events:
        ref, user = ev.get("objectRef") or {}, (ev.get("user") or {}).get("username")
        ok = 200 <= int((ev.get("responseStatus") or {}).get("code") or 0) < 300
        if user == OPERATOR_USER and ev.get("verb") == "create" and ref.get("resource") == "jobs" and ok:
            creates[ref.get("name", "")] += 1
        agent_write = user == AGENT_USER and ev.get("verb") in ("create", "update")
        if agent_write and ref.get("resource") == "compliancereports" and ok:
            report_writes += 1
    soak.jobs_per_scan_node = Counter(creates.values())
    soak.jobs_missing = max(0, len(soak.completed) * soak.nodes - len(creates))
    expected = len(soak.completed) * soak.nodes
    soak.extra_report_writes = max(0, report_writes - expected)
    soak.extra_pods = max(0, sum(cluster.pods_started(n) for n in cluster.node_names) - expected)


def table(s: Soak) -> str:
    rows = [
        (
            "scans completed",
            f"{len(s.completed)}/{s.scans}",
            f"{s.scans}/{s.scans}",
            len(s.completed) == s.scans,
        ),
        (
            "Jobs created per node per scan",
            ", ".join(f"{k}x{v}" for k, v in sorted(s.jobs_per_scan_node.items())) or "none",
            "all 1",
            set(s.jobs_per_scan_node) == {1} and not s.jobs_missing,
        ),
        ("(scan, node) without a Job", str(s.jobs_missing), "0", s.jobs_missing == 0),
        ("lost results", str(s.lost), "0", s.lost == 0),
        ("duplicated results", str(s.duplicated), "0", s.duplicated == 0),
        ("scans not completed", str(len(s.not_completed)), "0", not s.not_completed),
        (
            "leftover Jobs / Pods",
            f"{s.leftover_jobs} / {s.leftover_pods}",
            "0 / 0",
            not (s.leftover_jobs or s.leftover_pods),
        ),
    ]
    out = [
        f"chaos soak: {s.scans} scans x {s.nodes} nodes in {s.seconds:.0f} s; operator SIGKILLed "
        f"{s.operator_kills}x, API server restarted {s.apiserver_restarts}x, "
        f"watches expired {s.watch_expiries}x",
        f"{'figure':<34} {'measured':>16} {'goal':>10}  verdict",
    ]
    out += [
        f"{name:<34} {value:>16} {goal:>10}  {'met' if ok else 'MISSED'}" for name, value, goal, ok in rows
    ]
    out.append(
        f"(retries, not results: {s.extra_report_writes} agent report writes and {s.extra_pods} audit Pods "
        "beyond one per node per scan)"
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--scans", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--per-scan-timeout", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the work directory and its logs")
    args = parser.parse_args(argv)
    # the simulated kubelet's warnings (a status write that failed, a watch that broke), with times
    logging.basicConfig(level=logging.WARNING, format="[%(name)s] %(asctime)s %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # its retries while the API server is away
    soak = run(args.nodes, args.scans, args.seed, args.per_scan_timeout, keep=args.keep)
    print(table(soak), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
