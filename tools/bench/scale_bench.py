"""Operator scale benchmark: one whole scan of N simulated nodes on a fresh testbed.

For each requested node count (default 100 and 1000) and repetition:

1. a fresh control plane (``testbed.controlplane``) with a raised controller-manager QPS and an
   apiserver **audit log** that records, at level ``Metadata``, every request made by the
   operator's and the agents' service accounts (nothing else is logged);
2. Plumbob installed (CRDs, policy, chart RBAC) and the operator started as a child process under
   the chart's ``plumbob-operator`` service account (``testbed.deploy``);
3. N simulated nodes with in-process agents (1 control-plane node + N-1 workers), sharing ONE
   control-plane fixture tree and ONE worker fixture tree, labelled with the run's label;
4. a ``ComplianceProfile`` selecting them and a ``ComplianceSchedule`` (yearly cron that does not
   fire during the run; ``maxParallelNodes`` 100 by default) that names the profile, so the rescan
   uses the schedule's parallelism;
5. the trigger: the ``plumbob.dev/rescan`` annotation on the profile.

Measured:

- **time to complete**: wall time from just before the annotation is written to the first poll
  (every 0.5 s) that shows the profile status with ``lastScan.completionTime``, ``Ready=True`` and a
  ``summary``;
- **operator peak RSS**: ``VmHWM`` of the operator process from ``/proc/<pid>/status`` (the kernel's
  high-water mark, read at the end) and the maximum ``VmRSS`` seen by a 0.25 s poller;
- **operator writes per node**: the apiserver audit log, ``stage == ResponseComplete`` events whose
  ``user.username`` is ``system:serviceaccount:plumbob-system:plumbob-operator`` and whose verb is
  create/update/patch/delete/deletecollection, from the trigger until the end of the settle period
  (``--settle`` seconds after completion, so late writes caused by the scan are counted too),
  divided by N. The audit log is written by the apiserver itself (blocking log backend), so it
  counts every request the operator actually sent, including refused ones (409/422), whichever
  client library made it. ``apiserver_request_total`` from ``/metrics`` is not used: it has no
  user label, so the simulated kubelets' and agents' writes could not be told apart;
- **largest object**: every ``plumbob.dev`` object (scans, reports, profiles, schedules) listed
  as admin after the settle period, size of each item's compact JSON;
- **operator CPU per node per scan**: utime + stime of the operator process (all its threads,
  ``/proc/<pid>/stat``) from the trigger to completion, divided by N (issue 8's goal: under 20 ms
  at 1,000 nodes). It includes everything the operator does meanwhile: its watches' handling of
  every event (Nodes, Jobs, reports, the Pods cluster rules read), the reconcile passes, the
  cluster step's evaluations.

Usage: ``python tools/bench/scale_bench.py [--nodes 100 1000] [--repeat-small 3]``; only the
1,000-node figures (a few minutes a run): ``--nodes 1000 [--repeat-large 2]``.
Exit code 0 unless the benchmark itself crashes; missed goals are reported, not enforced.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
for _p in (str(REPO / "tools"), str(REPO / "operator")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from testbed.controlplane import ControlPlane  # noqa: E402
from testbed.deploy import NAMESPACE, install, start_operator  # noqa: E402
from testbed.hosttrees import build_tree  # noqa: E402
from testbed.simnodes import SimulatedCluster, SimulatedNode  # noqa: E402

GROUP_PATH = "/apis/plumbob.dev/v1alpha1"
OPERATOR_USER = f"system:serviceaccount:{NAMESPACE}:plumbob-operator"
AGENT_USER = f"system:serviceaccount:{NAMESPACE}:plumbob-agent"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
RUN_LABEL = "plumbob.bench/run"
PROFILE = "bench"
SCHEDULE = "bench"
TIMELINE_STEP = 10  # seconds per row of the per-run timeline

# goals (issue 4)
GOAL_SECONDS_1000 = 300.0
GOAL_RSS_MB = 300.0
GOAL_WRITES_PER_NODE = 5.0
GOAL_OBJECT_BYTES = 512 * 1024
GOAL_OPERATOR_CPU_MS_PER_NODE = 20.0  # issue 8: the node-scan path's operator CPU per node per scan

AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "users": [OPERATOR_USER, AGENT_USER]},
        {"level": "None"},
    ],
}


def say(msg: str) -> None:
    print(f"[scale] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


@dataclass
class RunResult:
    nodes: int
    seconds: float | None = None  # trigger -> profile status complete; None: did not complete
    timed_out: bool = False
    progress: str = ""
    rss_hwm_mb: float = 0.0
    rss_max_polled_mb: float = 0.0
    writes_scan: int = 0  # trigger .. completion + settle
    writes_until_complete: int = 0
    writes_total: int = 0  # operator start .. end
    writes_refused: int = 0  # of writes_scan, non-2xx answers
    writes_by_kind: Counter[str] = field(default_factory=Counter)
    reads_scan: Counter[str] = field(default_factory=Counter)
    agent_writes: int = 0
    largest_object: tuple[int, str] = (0, "")
    sizes_by_kind: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind -> (count, max bytes)
    scan_status: dict[str, Any] = field(default_factory=dict)
    operator_warnings: int = 0
    operator_log_tail: str = ""
    phases: dict[str, float] = field(default_factory=dict)
    profile: str = ""
    apiserver_requests: Counter[str] = field(default_factory=Counter)  # all users, trigger..complete
    watch_events: Counter[str] = field(default_factory=Counter)  # by kind, all watchers, trigger..complete
    watch_bytes: Counter[str] = field(default_factory=Counter)  # by resource, all watchers
    apiserver_seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process, trigger..complete
    timeline: defaultdict[int, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    @property
    def writes_per_node(self) -> float:
        return self.writes_scan / max(1, self.nodes)

    @property
    def operator_cpu_ms_per_node(self) -> float | None:
        """The operator's CPU from trigger to completion per node, in ms (None: not measured)."""
        if "operator" not in self.cpu:
            return None
        return 1000.0 * self.cpu["operator"] / max(1, self.nodes)


class _QuietAgents:
    """sys.stdout wrapper dropping the in-process agents' one-line success messages
    (``plumbob agent: <report>: {...}``, 1000 of them at 1000 nodes); failures still show."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.local = threading.local()

    def write(self, text: str) -> int:
        if text.startswith("plumbob agent: ") and ": {" in text:
            self.local.dropped = True
            return len(text)
        if text == "\n" and getattr(self.local, "dropped", False):
            self.local.dropped = False
            return 1
        self.local.dropped = False
        return int(self.stream.write(text))

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


# ---- process memory -----------------------------------------------------------------------------
def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class RssPoller(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.25) -> None:
        super().__init__(name="rss-poller", daemon=True)
        self.pid, self.interval = pid, interval
        self.max_kb = 0
        self.hwm_kb = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        self.max_kb = max(self.max_kb, _status_kb(self.pid, "VmRSS"))
        self.hwm_kb = max(self.hwm_kb, _status_kb(self.pid, "VmHWM"))

    def stop(self) -> None:
        self.sample()
        self._halt.set()
        self.join(5)


# ---- audit log ----------------------------------------------------------------------------------
def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def read_audit(path: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    if not path.exists():
        return events
    with path.open() as f:
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("stage") == "ResponseComplete":
                events.append(ev)
    return events


def _what(ev: dict[str, Any]) -> str:
    ref = ev.get("objectRef") or {}
    res = ref.get("resource", "?")
    if ref.get("subresource"):
        res += "/" + ref["subresource"]
    return f"{ev.get('verb')} {res}"


# ---- API helpers ---------------------------------------------------------------------------------
def _get(cp: ControlPlane, path: str) -> Any:
    try:
        return cp.request("GET", path)
    except Exception:
        return None


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def _profile_done(profile: dict[str, Any] | None) -> bool:
    if not profile:
        return False
    status = profile.get("status") or {}
    return bool(
        (status.get("lastScan") or {}).get("completionTime")
        and _condition(profile, "Ready").get("status") == "True"
        and status.get("summary")
    )


def _wait(what: str, probe: Any, timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def measure_sizes(cp: ControlPlane, result: RunResult) -> None:
    for plural in ("compliancescans", "compliancereports", "complianceprofiles", "complianceschedules"):
        listing = cp.request("GET", f"{GROUP_PATH}/{plural}")
        items = listing.get("items") or []
        biggest = 0
        for item in items:
            size = len(json.dumps(item, separators=(",", ":")).encode())
            biggest = max(biggest, size)
            if size > result.largest_object[0]:
                result.largest_object = (size, f"{plural}/{item['metadata']['name']}")
        result.sizes_by_kind[plural] = (len(items), biggest)


def _metric_lines(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of one metric family in Prometheus text: (labels, value)."""
    out = []
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels_text, _, value = line.rpartition(" ")
        labels = dict(
            (kv.split("=", 1)[0], kv.split("=", 1)[1].strip('"'))
            for kv in labels_text[len(name) + 1 : -1].split(",")
            if "=" in kv
        )
        out.append((labels, float(value)))
    return out


def request_counts(cp: ControlPlane) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """From the apiserver's ``/metrics`` (all clients: the whole load): ``apiserver_request_total``
    by verb and resource; watch events sent (``apiserver_watch_events_total``) and their bytes
    (``apiserver_watch_events_sizes_sum``), by resource (or kind, as older versions label them)."""
    counts: Counter[str] = Counter()
    events: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    try:
        text = cp.kubectl("get", "--raw", "/metrics", timeout=60).stdout
    except Exception:
        return counts, events, sizes
    for labels, value in _metric_lines(text, "apiserver_request_total"):
        what = labels.get("resource", "")
        if labels.get("subresource"):
            what += "/" + labels["subresource"]
        counts[f"{labels.get('verb')} {what}"] += int(value)
    for labels, value in _metric_lines(text, "apiserver_watch_events_total"):
        events[labels.get("resource") or labels.get("kind") or "?"] += int(value)
    for labels, value in _metric_lines(text, "apiserver_watch_events_sizes_sum"):
        sizes[labels.get("resource") or labels.get("kind") or "?"] += int(value)
    return counts, events, sizes


# ---- in-process profile of the reconciler ------------------------------------------------------------
def profile_reconcile(cp: ControlPlane, passes: int = 3) -> str:
    """cProfile ``Reconciler.reconcile`` in this process against the same testbed, after the scan.

    The store is fed from lists (as the operator's feeds fill it), then ``passes`` reconciles run
    under cProfile. A pass after completion does the same per-report work a pass during the scan
    does (report statuses, exception matching, profile aggregation), without the Job creations.
    """
    import cProfile  # noqa: PLC0415
    import io  # noqa: PLC0415
    import pstats  # noqa: PLC0415

    from kubernetes import client as kclient  # noqa: PLC0415
    from kubernetes import config as kconfig  # noqa: PLC0415

    from plumbob.controller.decisions.digests import LABEL_MANAGED_BY, MANAGER  # noqa: PLC0415
    from plumbob.controller.reconciler import Reconciler, Settings  # noqa: PLC0415
    from plumbob.controller.store import Store  # noqa: PLC0415
    from plumbob.kube import Kube  # noqa: PLC0415

    cfg = kclient.Configuration()
    kconfig.load_kube_config(config_file=str(cp.kubeconfig), client_configuration=cfg)  # type: ignore[no-untyped-call]
    kube = Kube(kclient.ApiClient(cfg))
    store = Store()
    t = time.perf_counter()
    lists = {
        plural: (cp.request("GET", f"{GROUP_PATH}/{plural}").get("items") or [])
        for plural in (
            "complianceprofiles",
            "complianceschedules",
            "complianceexceptions",
            "clustercomplianceexceptions",
            "compliancescans",
            "compliancereports",
        )
    }
    lists["nodes"] = cp.request("GET", "/api/v1/nodes").get("items") or []
    lists["jobs"] = (
        cp.request("GET", f"/apis/batch/v1/jobs?labelSelector={LABEL_MANAGED_BY}%3D{MANAGER}").get("items")
        or []
    )
    t_list = time.perf_counter() - t
    t = time.perf_counter()
    for plural, items in lists.items():
        for item in items:
            store.upsert(plural, item)
    t_feed = time.perf_counter() - t
    rec = Reconciler(kube, store, Settings(namespace=NAMESPACE))
    prof = cProfile.Profile()
    times = []
    for _ in range(passes):
        t = time.perf_counter()
        prof.enable()
        rec.reconcile()
        prof.disable()
        times.append(time.perf_counter() - t)
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(25)
    counts = {k: len(v) for k, v in lists.items()}
    head = (
        f"reconciler profile: objects {counts}; list {t_list:.2f}s, store feed (parse) {t_feed:.2f}s; "
        f"reconcile passes {', '.join(f'{x:.2f}s' for x in times)}; writes by the in-process "
        f"reconciler: {dict(kube.writes) or 'none'}"
    )
    return head + "\n" + "\n".join(out.getvalue().splitlines()[:60])


# ---- one run -------------------------------------------------------------------------------------
def run_once(
    n: int,
    trees: dict[str, Path],
    *,
    max_parallel_nodes: int,
    kcm_qps: int,
    timeout: float,
    settle: float,
    agent_threads: int,
    keep: Path | None = None,
    profile: bool = False,
) -> RunResult:
    result = RunResult(nodes=n)
    wd = Path(tempfile.mkdtemp(prefix=f"plumbob-scale-{n}-"))
    policy = wd / "audit-policy.json"
    policy.write_text(json.dumps(AUDIT_POLICY))
    audit_log = wd / "audit.log"
    cp: ControlPlane | None = None
    operator = None
    cluster: SimulatedCluster | None = None
    poller: RssPoller | None = None
    t_phase = time.monotonic()

    def phase(name: str) -> None:
        nonlocal t_phase
        now = time.monotonic()
        result.phases[name] = now - t_phase
        t_phase = now

    try:
        cp = ControlPlane.start(
            wd / "cp",
            kcm_qps=kcm_qps,
            progress=say,
            extra_apiserver_args=[
                f"--audit-policy-file={policy}",
                f"--audit-log-path={audit_log}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",
                "--audit-log-maxsize=0",
            ],
        )
        phase("control plane")
        install(cp)
        phase("install")
        operator = start_operator(cp, wd)
        poller = RssPoller(operator.process.pid)
        poller.start()
        t_operator = time.time()
        run_id = f"n{n}"
        nodes = [
            SimulatedNode(
                name=("cp-" if i == 0 else "w-") + f"{i:04d}",
                role="control-plane" if i == 0 else "worker",
                host_root=trees["control-plane" if i == 0 else "worker"],
                labels={RUN_LABEL: run_id},
            )
            for i in range(n)
        ]
        say(f"registering {n} simulated nodes")
        cluster = SimulatedCluster(
            cp.kubeconfig,
            nodes,
            runner="inprocess",
            ca_file=cp.ca_file,
            workdir=wd / "simnodes",
            max_parallel=agent_threads,
            lease_interval=10.0,
            node_status_interval=60.0,
            delete_nodes_on_stop=False,
        )
        cluster.start()
        phase("nodes registered")
        cp.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps(
                {
                    "apiVersion": "plumbob.dev/v1alpha1",
                    "kind": "ComplianceProfile",
                    "metadata": {"name": PROFILE},
                    "spec": {
                        "benchmark": {"name": "cis-kubernetes", "version": "auto"},
                        "nodeSelector": {"matchLabels": {RUN_LABEL: run_id}},
                    },
                }
            ),
        )
        cp.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps(
                {
                    "apiVersion": "plumbob.dev/v1alpha1",
                    "kind": "ComplianceSchedule",
                    "metadata": {"name": SCHEDULE},
                    "spec": {
                        "schedule": "0 0 1 1 *",
                        "timeZone": "UTC",
                        "profiles": [PROFILE],
                        "maxParallelNodes": max_parallel_nodes,
                        "nodeDeadlineSeconds": 600,
                        "historyLimit": 5,
                    },
                }
            ),
        )
        # the operator must have seen both before the trigger, or the rescan would use defaults
        _wait(
            "the operator to take up the schedule",
            lambda: (
                (s := _get(cp, f"{GROUP_PATH}/complianceschedules/{SCHEDULE}"))
                and (s.get("status") or {}).get("profiles") == [PROFILE]
            ),
            120,
        )
        _wait(
            "the operator to take up the profile",
            lambda: (
                (p := _get(cp, f"{GROUP_PATH}/complianceprofiles/{PROFILE}"))
                and (p.get("status") or {}).get("observedGeneration")
            ),
            120,
        )
        time.sleep(2)  # let the first passes settle, so the trigger starts from quiet
        phase("profile + schedule ready")

        say(f"trigger: rescan annotation on profile {PROFILE} ({n} nodes)")
        requests_before, events_before, sizes_before = request_counts(cp)
        pids = {
            **cp.pids,
            "operator": operator.process.pid,
            "bench (simulated kubelets + agents)": os.getpid(),
        }
        cpu_before = {k: cpu_seconds(pid) for k, pid in pids.items()}
        t0 = time.time()
        cp.kubectl("annotate", "--overwrite", "complianceprofile", PROFILE, "plumbob.dev/rescan=bench-1")
        deadline = time.monotonic() + timeout
        last_note = 0.0
        t_done: float | None = None
        while time.monotonic() < deadline:
            prof = _get(cp, f"{GROUP_PATH}/complianceprofiles/{PROFILE}")
            if _profile_done(prof):
                t_done = time.time()
                break
            if not operator.alive():
                raise RuntimeError(f"the operator exited:\n{operator.tail(60)}")
            if time.monotonic() - last_note > 15:
                last_note = time.monotonic()
                scans = (_get(cp, f"{GROUP_PATH}/compliancescans") or {}).get("items") or []
                nodes_st = ((scans[0].get("status") or {}).get("nodes") or {}) if scans else {}
                shown = json.dumps({k: v for k, v in nodes_st.items() if k != "problems"})
                say(f"  {time.time() - t0:6.1f}s: scan nodes {shown}, RSS {poller.max_kb / 1024:.0f} MB")
            time.sleep(0.5)
        phase("scan")
        if t_done is None:
            result.timed_out = True
            scans = (_get(cp, f"{GROUP_PATH}/compliancescans") or {}).get("items") or []
            nodes_st = ((scans[0].get("status") or {}).get("nodes") or {}) if scans else {}
            result.progress = json.dumps({k: v for k, v in nodes_st.items() if k != "problems"})
            say(f"not complete after {timeout:.0f}s: {result.progress}")
        else:
            result.seconds = t_done - t0
            say(f"complete in {result.seconds:.1f}s; settling {settle:.0f}s")
        t_scan_end = time.time()
        result.cpu = {k: cpu_seconds(pid) - cpu_before[k] for k, pid in pids.items()}
        requests, events, sizes = request_counts(cp)
        requests.subtract(requests_before)
        events.subtract(events_before)
        sizes.subtract(sizes_before)
        result.apiserver_requests = Counter({k: v for k, v in requests.items() if v > 0})
        result.watch_events = Counter({k: v for k, v in events.items() if v > 0})
        result.watch_bytes = Counter({k: v for k, v in sizes.items() if v > 0})
        result.apiserver_seconds = t_scan_end - t0
        time.sleep(settle)
        t_end = time.time()
        poller.stop()
        result.rss_hwm_mb = poller.hwm_kb / 1024
        result.rss_max_polled_mb = poller.max_kb / 1024
        measure_sizes(cp, result)
        scans = (_get(cp, f"{GROUP_PATH}/compliancescans") or {}).get("items") or []
        if scans:
            st = scans[0].get("status") or {}
            result.scan_status = {
                "phase": st.get("phase"),
                "nodes": {k: v for k, v in (st.get("nodes") or {}).items() if k != "problems"},
                "summary": st.get("summary"),
                "start": st.get("startTime"),
                "completion": st.get("completionTime"),
            }
        phase("settle + sizes")
        if profile:
            try:
                result.profile = profile_reconcile(cp)
            except Exception:
                result.profile = "reconciler profile failed:\n" + traceback.format_exc(limit=4)
            phase("profile")

        # writes from the audit log
        events = read_audit(audit_log)
        for ev in events:
            user = (ev.get("user") or {}).get("username")
            ts = _ts(ev.get("requestReceivedTimestamp") or ev["stageTimestamp"])
            write = ev.get("verb") in WRITE_VERBS
            if user == AGENT_USER and write and t0 <= ts <= t_end:
                result.agent_writes += 1
                result.timeline[int((ts - t0) // TIMELINE_STEP)]["reports"] += 1
            if user == OPERATOR_USER and write and t0 <= ts <= t_end:
                col = {"create jobs": "jobs", "patch compliancereports/status": "report-status"}.get(
                    _what(ev)
                )
                if col:
                    result.timeline[int((ts - t0) // TIMELINE_STEP)][col] += 1
            if user != OPERATOR_USER:
                continue
            if write and ts >= t_operator:
                result.writes_total += 1
            if not t0 <= ts <= t_end:
                continue
            if write:
                result.writes_scan += 1
                result.writes_by_kind[_what(ev)] += 1
                if t_done is None or ts <= t_done:
                    result.writes_until_complete += 1
                code = int((ev.get("responseStatus") or {}).get("code") or 0)
                if not 200 <= code < 300:
                    result.writes_refused += 1
            else:
                result.reads_scan[_what(ev)] += 1
    finally:
        if poller is not None and poller.is_alive():
            poller.stop()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.stop(delete_nodes=False)
        if operator is not None:
            text = operator.log.read_text(errors="replace") if operator.log.exists() else ""
            result.operator_warnings = sum(
                1 for line in text.splitlines() if " WARNING " in line or " ERROR " in line
            )
            result.operator_log_tail = "\n".join(text.splitlines()[-15:])
            operator.stop()
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(OSError):
                    shutil.copy(operator.log, keep / f"operator-{n}-{int(time.time())}.log")
        if cp is not None:
            cp.stop()
        shutil.rmtree(wd, ignore_errors=True)
    return result


# ---- report --------------------------------------------------------------------------------------
def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def describe_run(r: RunResult) -> str:
    lines = [
        f"  {r.nodes} nodes: "
        + (f"{r.seconds:.1f}s" if r.seconds is not None else f"NOT COMPLETE ({r.progress})")
        + f", RSS peak {r.rss_hwm_mb:.0f} MB (polled max {r.rss_max_polled_mb:.0f}),"
        f" operator writes {r.writes_scan} during scan+settle ({r.writes_per_node:.2f}/node;"
        f" {r.writes_until_complete} until complete; {r.writes_refused} refused),"
        f" {r.writes_total} since operator start; agent writes {r.agent_writes};"
        f" largest object {r.largest_object[0] / 1024:.1f} KiB ({r.largest_object[1]})"
    ]
    lines.append(
        "    operator writes by kind: " + ", ".join(f"{k}={v}" for k, v in r.writes_by_kind.most_common())
    )
    if r.reads_scan:
        lines.append("    operator reads: " + ", ".join(f"{k}={v}" for k, v in r.reads_scan.most_common(8)))
    if r.cpu:
        lines.append(
            f"    CPU seconds used during the scan ({r.apiserver_seconds:.0f} s wall, 2 cores shared): "
            + ", ".join(f"{k} {v:.1f}" for k, v in sorted(r.cpu.items(), key=lambda kv: -kv[1]))
        )
    if r.apiserver_requests:
        total = sum(r.apiserver_requests.values())
        lines.append(
            f"    apiserver load during the scan (all clients, apiserver_request_total): {total} requests, "
            f"{total / max(r.apiserver_seconds, 0.1):.0f}/s; top: "
            + ", ".join(f"{k}={v}" for k, v in r.apiserver_requests.most_common(10))
        )
    if r.watch_events:
        lines.append(
            "    watch events sent during the scan (all watchers; apiserver_watch_events_total, _sizes_sum): "
            + ", ".join(f"{k}={v}" for k, v in r.watch_events.most_common(8))
            + "; MB by resource: "
            + ", ".join(f"{k}={v / 1e6:.1f}" for k, v in r.watch_bytes.most_common(8))
        )
    if r.timeline:
        tl = r.timeline
        cells = [
            f"{k * TIMELINE_STEP}s:{tl[k]['jobs']}/{tl[k]['reports']}/{tl[k]['report-status']}"
            for k in range(max(tl) + 1)
        ]
        lines.append(
            f"    per {TIMELINE_STEP} s after the trigger, operator Job creates/agent report writes/operator "
            "report-status patches: " + "  ".join(cells)
        )
    lines.append(
        "    objects (count, max KiB): "
        + ", ".join(f"{k}=({c}, {b / 1024:.1f})" for k, (c, b) in r.sizes_by_kind.items())
    )
    lines.append(f"    scan: {json.dumps(r.scan_status)}")
    lines.append("    phases: " + ", ".join(f"{k} {v:.1f}s" for k, v in r.phases.items()))
    lines.append(f"    operator log: {r.operator_warnings} warning/error lines")
    return "\n".join(lines)


def summarise(results: dict[int, list[RunResult]], audit_ms: dict[str, float] | None = None) -> str:
    out = ["", "== operator scale benchmark =="]
    for n, runs in sorted(results.items()):
        out.append(f"-- {n} nodes, {len(runs)} run(s)")
        out.extend(describe_run(r) for r in runs)
    out.append("")
    header = f"{'figure':<56}{'value':>14}  {'goal':<22}{'':>5}"
    out += [header, "-" * len(header)]

    def row(name: str, value: str, goal: str, ok: bool | None) -> None:
        out.append(f"{name:<56}{value:>14}  {goal:<22}{_mark(ok):>5}")

    for n, runs in sorted(results.items()):
        times = [r.seconds for r in runs if r.seconds is not None]
        label = f"median of {len(runs)}" if len(runs) > 1 else "1 run"
        if len(times) == len(runs):
            med = statistics.median(times)
            value = f"{med:.1f} s"
            ok: bool | None = med < GOAL_SECONDS_1000 if n >= 1000 else None
        else:
            value, ok = f"incomplete ({len(times)}/{len(runs)})", (False if n >= 1000 else None)
        row(
            f"{n} nodes: trigger -> profile complete ({label})",
            value,
            "< 300 s (1000 nodes)" if n >= 1000 else "(informative)",
            ok,
        )
        rss = statistics.median(r.rss_hwm_mb for r in runs)
        row(f"{n} nodes: operator peak RSS (VmHWM)", f"{rss:.0f} MB", "< 300 MB", rss < GOAL_RSS_MB)
        wpn = statistics.median(r.writes_per_node for r in runs)
        row(
            f"{n} nodes: operator writes per node per scan", f"{wpn:.2f}", "<= 5", wpn <= GOAL_WRITES_PER_NODE
        )
        cpus = [c for r in runs if r.seconds is not None and (c := r.operator_cpu_ms_per_node) is not None]
        if cpus:
            cpu = statistics.median(cpus)
            row(
                f"{n} nodes: operator CPU per node per scan ({len(cpus)} run(s))",
                f"{cpu:.1f} ms",
                "< 20 ms (1000 nodes)" if n >= 1000 else "(informative)",
                cpu < GOAL_OPERATOR_CPU_MS_PER_NODE if n >= 1000 else None,
            )
        big = max(r.largest_object[0] for r in runs)
        row(
            f"{n} nodes: largest plumbob.dev object",
            f"{big / 1024:.1f} KiB",
            "<= 512 KiB",
            big <= GOAL_OBJECT_BYTES,
        )
    if audit_ms:
        for kind, ms in audit_ms.items():
            row(f"node audit in-process, {kind} (median)", f"{ms:.1f} ms", "< 50 ms", ms < 50)
    out.append("")
    out.append(
        "How: time = wall clock from the rescan annotation to the first 0.5 s poll showing "
        "lastScan.completionTime, Ready=True and a summary on the profile; RSS = VmHWM of the operator "
        "process (/proc/<pid>/status); writes = apiserver audit log (level Metadata), ResponseComplete "
        f"events of user {OPERATOR_USER} with verb create/update/patch/delete, from the trigger "
        "to the end of the settle period, divided by N; object size = compact JSON of each "
        "plumbob.dev item listed as admin after the scan; operator CPU = utime + stime of the operator "
        "process (/proc/<pid>/stat) from the trigger to completion, divided by N (completed runs only)."
    )
    return "\n".join(out)


def main(argv: list[str] | None = None, audit_ms: dict[str, float] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeat-small", type=int, default=3, help="repetitions of runs below 1000 nodes")
    parser.add_argument("--repeat-large", type=int, default=1, help="repetitions of runs of 1000+ nodes")
    parser.add_argument("--max-parallel-nodes", type=int, default=100)
    parser.add_argument("--kcm-qps", type=int, default=500)
    parser.add_argument("--agent-threads", type=int, default=8, help="simulated kubelet pod threads")
    parser.add_argument("--timeout", type=float, default=None, help="per scan; default max(300, 0.9 s x N)")
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument(
        "--profile-reconcile",
        action="store_true",
        help="after the first scan of the largest N, cProfile Reconciler.reconcile in-process",
    )
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy operator logs here")
    args = parser.parse_args(argv)

    results: dict[int, list[RunResult]] = {}
    crashed: list[str] = []
    if not isinstance(sys.stdout, _QuietAgents):
        sys.stdout = _QuietAgents(sys.stdout)
    with tempfile.TemporaryDirectory(prefix="plumbob-scale-trees-") as tmp:
        trees = {kind: build_tree(Path(tmp) / kind, kind).root for kind in ("control-plane", "worker")}
        for n in args.nodes:
            repeat = args.repeat_small if n < 1000 else args.repeat_large
            for i in range(repeat):
                say(f"=== {n} nodes, run {i + 1}/{repeat}")
                try:
                    r = run_once(
                        n,
                        trees,
                        max_parallel_nodes=args.max_parallel_nodes,
                        kcm_qps=args.kcm_qps,
                        timeout=args.timeout or max(300.0, 0.9 * n),
                        settle=args.settle,
                        agent_threads=args.agent_threads,
                        keep=args.keep_logs,
                        profile=args.profile_reconcile and n == max(args.nodes) and i == 0,
                    )
                except Exception:
                    traceback.print_exc()
                    crashed.append(f"{n} nodes run {i + 1}")
                    continue
                results.setdefault(n, []).append(r)
                print(describe_run(r), flush=True)
                if r.profile:
                    print(r.profile, flush=True)
                if r.operator_warnings:
                    print(
                        "    operator log tail:\n"
                        + "\n".join("      " + x for x in r.operator_log_tail.splitlines()),
                        flush=True,
                    )
    print(summarise(results, audit_ms), flush=True)
    if crashed:
        print(f"CRASHED (no figures): {', '.join(crashed)}", flush=True)
    return 2 if crashed else 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception:
        traceback.print_exc()
        raise SystemExit(2) from None
