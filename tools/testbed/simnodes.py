"""Simulated nodes: a small Python "kubelet" for N nodes, against a real kube-apiserver.

There is no real kubelet (and no container runtime) on the testbed, so this module plays the nodes'
part. ``SimulatedCluster`` registers ``Node`` objects and their ``Lease`` heartbeats, watches the Pods
bound to its nodes (``spec.nodeName``) and runs them: it writes the Pod status a kubelet would write
(Pending -> Running -> Succeeded/Failed, container state and exit code, conditions), so that the real
job controller completes or retries Jobs.

Design, kept light enough for 1000 nodes in one process:

- one Pod watch for the whole cluster (``fieldSelector=spec.nodeName!=``), filtered client side by the
  set of simulated node names; objects stay plain JSON dicts (no client-model deserialisation);
- one loop renews every node's Lease (and, less often, the Ready heartbeat in the Node status);
- Pods run on a bounded thread pool: as subprocesses (``runner="subprocess"``) or by calling a
  Python callable (``runner="inprocess"``), for scale runs without a process per node;
- a watchdog thread enforces ``activeDeadlineSeconds``;
- like a kubelet's status manager, nothing is dropped when the API server is away (restarting,
  overloaded): a Pod runs regardless, its latest status is kept until the API server has taken it
  (a sync loop sends pending statuses and final deletes every second), and the token request is
  retried until it works or the Pod is stopped.

Conventions for what runs inside a simulated Pod (one container per Pod; init containers are not
supported):

- argv is the container ``command`` + ``args`` (with ``$(VAR)`` expansion); ``python``/``python3``
  as argv[0] is replaced by ``sys.executable``.
- environment: ``PATH``, ``HOME`` (the pod's work directory), ``LANG``; the container ``env``
  (literal values and ``valueFrom.fieldRef``); ``KUBERNETES_SERVICE_HOST=127.0.0.1`` and
  ``KUBERNETES_SERVICE_PORT=<api port>``.
- ``PLUMBOB_HOST_ROOT``: the node's host tree. A real audit Pod mounts the host read-only under
  ``/host`` and sets ``PLUMBOB_HOST_ROOT=/host``; the simulated kubelet cannot bind-mount, so it
  overrides the variable with the node's ``host_root`` (a fixture tree, or ``/`` for the node that
  hosts the real control-plane processes). The Pod's ``PLUMBOB_HOST_PATHS`` (the host directories
  its volumes mount) is passed as it is, so the agent reads only what the real Pod would see.
- ``PLUMBOB_SERVICEACCOUNT_DIR``: a per-pod directory holding ``token``, ``ca.crt`` and ``namespace``,
  i.e. what a real Pod finds in ``/var/run/secrets/kubernetes.io/serviceaccount``. The token comes
  from the TokenRequest API bound to the Pod (boundObjectRef kind Pod, name and uid; default
  audiences; 3600 s), as a real kubelet obtains it, so it carries the pod and node identity. It is
  set only when the Pod has a projected ``serviceAccountToken`` volume, which the ServiceAccount
  admission plugin adds unless ``automountServiceAccountToken`` is false (on the Pod or its
  ServiceAccount).
- stdout and stderr go to a per-pod log file; :meth:`SimulatedCluster.pod_log` returns its tail.
- in-process runner: ``runner(argv, env, cancel) -> exit code``. ``cancel`` is set on deadline,
  Pod deletion and :meth:`SimulatedCluster.stop`; the runner must then return promptly. The default
  runner calls ``plumbob.agent.running.run_agent(args, env, cancel)`` with the arguments after
  ``agent`` in ``python -m plumbob agent ...``.

Faults (:class:`Fault`), settable at runtime with :meth:`SimulatedCluster.set_fault`:
``crash`` (the container exits 1 at once without running), ``hang`` (it sleeps until killed),
``vanish`` (the Node object is deleted when the node's next Pod starts; the node is then gone),
``notready`` (Ready=False with the not-ready taints, Lease no longer renewed, new Pods are not
started), ``lost`` (the kubelet writes nothing any more: no Lease, no status, no new Pods, no pod
deletion finalised). Setting ``none`` again recovers the node (a vanished node is registered again).

The testbed runs no node-lifecycle controller, so the simulated cluster also plays its part for its
own nodes: it removes the ``node.kubernetes.io/not-ready`` taint that admission puts on new Nodes
once they are Ready, and marks a lost node Ready=Unknown with the ``node.kubernetes.io/unreachable``
taints once its Lease has expired (``lease_duration_seconds`` after the last renewal). It does not
evict pods.

CLI for manual use: ``python -m testbed.simnodes --kubeconfig K --nodes 3 --host-root DIR``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import enum
import importlib
import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config

log = logging.getLogger("testbed.simnodes")

KUBELET_VERSION = "v1.36.3"
LEASE_NAMESPACE = "kube-node-lease"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
TOKEN_EXPIRATION_SECONDS = 3600

InProcessRunner = Callable[[list[str], dict[str, str], threading.Event], int]
Json = dict[str, Any]


class Fault(enum.StrEnum):
    """How a simulated node misbehaves."""

    NONE = "none"
    CRASH = "crash"
    HANG = "hang"
    VANISH = "vanish"
    NOTREADY = "notready"
    LOST = "lost"


@dataclass
class SimulatedNode:
    """Configuration of one simulated node.

    ``labels`` and ``taints`` are added to the defaults: hostname, os, arch and, for the
    control-plane role, the ``node-role.kubernetes.io/control-plane`` label and a NoSchedule taint
    (pass ``taints=[]`` explicitly to have none). ``fault`` may be changed at runtime through
    :meth:`SimulatedCluster.set_fault`.
    """

    name: str
    role: str = "worker"
    host_root: str | Path = "/"
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Json] | None = None
    fault: Fault | str = Fault.NONE
    kubelet_version: str = KUBELET_VERSION  # status.nodeInfo.kubeletVersion (platforms suffix it)
    kube_proxy_version: str = ""  # status.nodeInfo.kubeProxyVersion (deprecated upstream; often empty)
    provider_id: str = ""  # spec.providerID
    capacity: dict[str, str] = field(
        default_factory=lambda: {
            "cpu": "4",
            "memory": "8148056Ki",
            "pods": "110",
            "ephemeral-storage": "61202244Ki",
        }
    )

    def __post_init__(self) -> None:
        if self.role not in ("control-plane", "worker"):
            raise ValueError(f"node {self.name}: role must be control-plane or worker, not {self.role!r}")
        self.fault = Fault(self.fault)

    def all_labels(self) -> dict[str, str]:
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
        }
        if self.role == "control-plane":
            labels[CONTROL_PLANE_LABEL] = ""
        labels.update(self.labels)
        return labels

    def all_taints(self) -> list[Json]:
        if self.taints is not None:
            return list(self.taints)
        if self.role == "control-plane":
            return [{"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}]
        return []


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class _GoneError(Exception):
    """The watch's resourceVersion is too old: list again."""


class _Rest:
    """Plain-JSON requests through the kubernetes client's configuration and connection pool.

    The generated API classes validate every call with pydantic and deserialise into models: too
    slow for a thousand nodes. This keeps the kubeconfig handling and auth of the client library.
    """

    def __init__(self, kubeconfig: str | Path, pool_size: int) -> None:
        kube_config: Any = kubernetes.config  # untyped module functions
        cfg: Any = kubernetes.client.Configuration()
        kube_config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        cfg.connection_pool_maxsize = pool_size
        self.config = cfg
        self.client: Any = kubernetes.client.ApiClient(cfg)
        self.host: str = cfg.host.rstrip("/")

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "plumbob-simulated-kubelet"}
        if content_type:
            headers["Content-Type"] = content_type
        for setting in self.config.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[str(setting["key"])] = str(setting["value"])
        return headers

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = 30,
        ok_missing: bool = False,
    ) -> Any:
        url = self.host + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        resp = self.client.rest_client.request(
            method,
            url,
            headers=self._headers(content_type if body is not None else None),
            body=body,
            _request_timeout=timeout,
        )
        data: bytes = resp.read()
        if ok_missing and resp.status == 404:
            return None
        if not 200 <= resp.status < 300:
            raise ApiError(method, path, resp.status, data.decode(errors="replace"))
        return json.loads(data) if data else None

    def stream(self, path: str, query: Mapping[str, str], read_timeout: float) -> Any:
        """Open a watch; returns the raw urllib3 response (not yet read)."""
        url = f"{self.host}{path}?{urllib.parse.urlencode(query)}"
        resp = self.client.rest_client.request(
            "GET", url, headers=self._headers(None), _request_timeout=(10, read_timeout)
        )
        if resp.status != 200:
            data = resp.read()
            raise ApiError("GET", path, resp.status, data.decode(errors="replace"))
        return resp.response

    def close(self) -> None:
        self.client.close()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _die_with_parent() -> None:
    """Between fork and exec: SIGKILL this child when the thread that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: defined variables are replaced, ``$$`` escapes a ``$``,
    references to undefined variables are left as they are."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(repl, text)


_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_ref(pod: Json, path: str) -> str:
    """The value of a downward-API ``fieldRef`` path."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
    }
    if path in simple:
        return str(simple[path] or "")
    m = _LABEL_REF.match(path)
    if m:
        return str(meta.get(m.group(1), {}).get(m.group(2), ""))
    raise ValueError(f"unsupported fieldRef {path!r}")


def container_env(pod: Json, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` plus the first container's ``env``, in order, with ``$(VAR)`` expansion."""
    env = dict(base)
    container = pod["spec"]["containers"][0]
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" in var:
            source = var["valueFrom"]
            if "fieldRef" not in source:
                raise ValueError(f"env {name}: only valueFrom.fieldRef is supported, got {sorted(source)}")
            env[name] = field_ref(pod, source["fieldRef"]["fieldPath"])
        else:
            env[name] = expand_vars(str(var.get("value", "")), env)
    return env


def container_argv(pod: Json, env: Mapping[str, str]) -> list[str]:
    container = pod["spec"]["containers"][0]
    argv = [
        expand_vars(str(a), env) for a in [*(container.get("command") or []), *(container.get("args") or [])]
    ]
    if not argv:
        raise ValueError("the container has no command: the simulated kubelet has no image entrypoint")
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    return argv


def token_projection(pod: Json) -> Json | None:
    """The projected serviceAccountToken source the ServiceAccount admission plugin added, if any."""
    if pod["spec"].get("automountServiceAccountToken") is False:
        return None
    for volume in pod["spec"].get("volumes") or []:
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "serviceAccountToken" in source:
                return dict(source["serviceAccountToken"])
    return None


def default_inprocess_runner(argv: list[str], env: dict[str, str], cancel: threading.Event) -> int:
    """Run ``python -m plumbob agent ARGS`` as ``plumbob.agent.running.run_agent(ARGS, env, cancel)``."""
    if "agent" not in argv:
        raise ValueError(f"the default in-process runner only runs 'plumbob agent', not {argv!r}")
    module = importlib.import_module("plumbob.agent.running")
    run_agent = module.run_agent
    return int(run_agent(argv[argv.index("agent") + 1 :], env, cancel))


# ---- per-node and per-pod state -------------------------------------------------------------------
@dataclass
class _NodeState:
    spec: SimulatedNode
    index: int
    uid: str = ""
    vanished: bool = False
    ready_since: str = field(default_factory=_now)
    boot_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    renewed_at: float = field(default_factory=time.monotonic)
    lost_marked: bool = False
    pod_seq: int = 0

    @property
    def fault(self) -> Fault:
        return Fault(self.spec.fault)

    def heartbeats(self) -> bool:
        return not self.vanished and self.fault not in (Fault.NOTREADY, Fault.LOST)

    def pod_cidr(self) -> str:
        return f"10.{100 + self.index // 256}.{self.index % 256}.0/24"

    def pod_ip(self) -> str:
        self.pod_seq += 1
        return f"10.{100 + self.index // 256}.{self.index % 256}.{self.pod_seq % 253 + 2}"


@dataclass
class _Run:
    uid: str
    namespace: str
    name: str
    node: str
    pod: Json
    workdir: Path
    cancel: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str | None = None
    deadline: float | None = None
    done: bool = False
    finalize_submitted: bool = False
    pid: int | None = None
    start_time: str = ""
    host_ip: str = ""
    pod_ip: str = ""
    # The latest status the kubelet decided on, numbered; ``written_seq`` is the number the API
    # server has. A status the API server did not take is written again by the sync loop.
    status: Json | None = None
    status_seq: int = 0
    written_seq: int = 0
    noted_seq: int = 0  # the status whose failed write was logged (once per status)
    finalize_failed: bool = False  # the final DELETE did not reach the API server: the sync loop retries
    write_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def log_path(self) -> Path:
        return self.workdir / "log"

    def stop_with(self, reason: str) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self.cancel.set()


@dataclass
class _Outcome:
    exit_code: int
    started_at: str
    finished_at: str
    reason: str | None = None  # pod-level reason (DeadlineExceeded)
    message: str | None = None
    container_reason: str | None = None


class SimulatedCluster:
    """Simulated kubelets for ``nodes``. Use as a context manager or call :meth:`start`/:meth:`stop`."""

    def __init__(
        self,
        kubeconfig: str | Path,
        nodes: Iterable[SimulatedNode],
        *,
        runner: str = "subprocess",
        inprocess_runner: InProcessRunner | None = None,
        max_parallel: int | None = None,
        workdir: str | Path | None = None,
        ca_file: str | Path | None = None,
        lease_interval: float = 10.0,
        lease_duration_seconds: int = 40,
        node_status_interval: float = 60.0,
        max_grace_seconds: float = 5.0,
        delete_nodes_on_stop: bool = True,
        node_ip: str = "127.0.0.1",
    ) -> None:
        if runner not in ("subprocess", "inprocess"):
            raise ValueError(f"runner must be subprocess or inprocess, not {runner!r}")
        self.runner = runner
        self.inprocess_runner: InProcessRunner = inprocess_runner or default_inprocess_runner
        self.max_parallel = max_parallel or (8 if runner == "inprocess" else 32)
        self.lease_interval = lease_interval
        self.lease_duration_seconds = lease_duration_seconds
        self.node_status_interval = node_status_interval
        self.max_grace_seconds = max_grace_seconds
        self.delete_nodes_on_stop = delete_nodes_on_stop
        self.node_ip = node_ip

        self._nodes: dict[str, _NodeState] = {}
        for i, spec in enumerate(nodes):
            if spec.name in self._nodes:
                raise ValueError(f"duplicate node name {spec.name}")
            self._nodes[spec.name] = _NodeState(spec, i)

        self._api = _Rest(kubeconfig, pool_size=self.max_parallel + 8)
        self.api_port = urllib.parse.urlparse(self._api.host).port or 443
        ca = ca_file or self._api.config.ssl_ca_cert
        self.ca_data: bytes | None = Path(ca).read_bytes() if ca else None

        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="plumbob-simnodes-"))
        self.workdir.mkdir(parents=True, exist_ok=True)

        self._lock = threading.RLock()
        self._pods: dict[str, Json] = {}  # uid -> latest pod seen, for pods on our nodes
        self._runs: dict[str, _Run] = {}  # uid -> run (kept, marked done, until the Pod is deleted)
        self._logs: dict[tuple[str, str], _Run] = {}  # (namespace, name) -> latest run
        self._pods_started: collections.Counter[str] = collections.Counter()  # node -> Pods started
        self._stopping = threading.Event()
        self._started = False
        self._threads: list[threading.Thread] = []
        self._watch_resp: Any = None
        self._pool = ThreadPoolExecutor(self.max_parallel, thread_name_prefix="simnode-pod")
        self._aux = ThreadPoolExecutor(2, thread_name_prefix="simnode-aux")

    # ---- public API -------------------------------------------------------------------------------
    @property
    def node_names(self) -> list[str]:
        return list(self._nodes)

    def node(self, name: str) -> SimulatedNode:
        return self._nodes[name].spec

    def start(self) -> SimulatedCluster:
        """Register the nodes and Leases, then start the pod watch, lease loop and watchdog."""
        if self._started:
            return self
        self._started = True
        try:
            with ThreadPoolExecutor(min(8, max(1, len(self._nodes)))) as ex:
                for _ in ex.map(self._register, self._nodes.values()):
                    pass
            for target, name in (
                (self._watch_loop, "simnode-watch"),
                (self._lease_loop, "simnode-lease"),
                (self._watchdog_loop, "simnode-watchdog"),
                (self._sync_loop, "simnode-sync"),
            ):
                t = threading.Thread(target=target, name=name, daemon=True)
                t.start()
                self._threads.append(t)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, delete_nodes: bool | None = None) -> None:
        """Kill every running pod, stop the threads and (by default) delete the Node objects."""
        self._stopping.set()
        resp = self._watch_resp
        if resp is not None:
            with contextlib.suppress(Exception):
                resp.shutdown()
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.stop_with("stop")
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._aux.shutdown(wait=True, cancel_futures=True)
        for t in self._threads:
            t.join(timeout=30)
        self._threads.clear()
        if self._started and (self.delete_nodes_on_stop if delete_nodes is None else delete_nodes):
            with ThreadPoolExecutor(min(8, max(1, len(self._nodes)))) as ex:
                for _ in ex.map(self._delete_node, [st for st in self._nodes.values() if not st.vanished]):
                    pass
        self._started = False
        self._api.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SimulatedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_fault(self, name: str, fault: Fault | str) -> None:
        """Change a node's fault mode now (side effects on the Node are written before returning)."""
        st = self._nodes[name]
        new = Fault(fault)
        with self._lock:
            old, st.spec.fault = st.fault, new
            vanished = st.vanished
        if vanished and new is not Fault.VANISH:
            st.vanished = False
            self._register(st)
        elif new is Fault.NOTREADY and old is not Fault.NOTREADY:
            self._set_health(st, "False")
        elif old in (Fault.NOTREADY, Fault.LOST) and new not in (Fault.NOTREADY, Fault.LOST):
            st.lost_marked = False
            self._set_health(st, "True")
            self._renew_lease(st)
        if st.heartbeats():
            with self._lock:
                for uid, pod in list(self._pods.items()):
                    if pod["spec"].get("nodeName") == name:
                        self._consider(uid, pod, st)

    def pod_log(self, namespace: str, name: str, max_bytes: int = 8192) -> str:
        """The last ``max_bytes`` of the latest run of that pod (stdout and stderr), or ''."""
        with self._lock:
            run = self._logs.get((namespace, name))
        if run is None:
            return ""
        try:
            with run.log_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - max_bytes))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def process_id(self, namespace: str, name: str) -> int | None:
        """PID of the pod's process (subprocess runner), also after it ended; None if none was started."""
        with self._lock:
            run = self._logs.get((namespace, name))
        return run.pid if run else None

    def serviceaccount_dir(self, namespace: str, name: str) -> Path | None:
        """The pod's credentials directory while it runs (removed when the pod ends)."""
        with self._lock:
            run = self._logs.get((namespace, name))
        path = run.workdir / "serviceaccount" if run else None
        return path if path and path.is_dir() else None

    def pods_started(self, node: str) -> int:
        """How many Pods this node has started since the cluster started (retries included)."""
        with self._lock:
            return self._pods_started[node]

    def running_pods(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted((r.namespace, r.name) for r in self._runs.values() if not r.done)

    # ---- nodes and leases -------------------------------------------------------------------------
    def _conditions(self, st: _NodeState, ready: str) -> list[Json]:
        """Node conditions; ``ready`` is "True", "False" (notready) or "Unknown" (lost)."""
        now = _now()
        if ready == "Unknown":  # written in the node-lifecycle controller's place: no heartbeat
            return [
                {
                    "type": t,
                    "status": "Unknown",
                    "reason": "NodeStatusUnknown",
                    "message": "Kubelet stopped posting node status.",
                    "lastTransitionTime": now,
                }
                for t in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
            ]
        conditions = [
            {
                "type": t,
                "status": "False",
                "reason": r,
                "message": m,
                "lastHeartbeatTime": now,
                "lastTransitionTime": st.ready_since,
            }
            for t, r, m in (
                ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            )
        ]
        ok = ready == "True"
        conditions.append(
            {
                "type": "Ready",
                "status": ready,
                "reason": "KubeletReady" if ok else "KubeletNotReady",
                "message": "kubelet is posting ready status"
                if ok
                else "container runtime network not ready (simulated fault)",
                "lastHeartbeatTime": now,
                "lastTransitionTime": st.ready_since,
            }
        )
        return conditions

    def _node_status(self, st: _NodeState, ready: str) -> Json:
        spec = st.spec
        name_uuid = str(uuid.uuid5(uuid.NAMESPACE_DNS, spec.name))
        return {
            "status": {
                "capacity": dict(spec.capacity),
                "allocatable": dict(spec.capacity),
                "conditions": self._conditions(st, ready),
                "addresses": [
                    {"type": "InternalIP", "address": self.node_ip},
                    {"type": "Hostname", "address": spec.name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "machineID": name_uuid.replace("-", ""),
                    "systemUUID": name_uuid,
                    "bootID": st.boot_id,
                    "kernelVersion": platform.release(),
                    "osImage": "Plumbob simulated node",
                    "containerRuntimeVersion": "simulated://1.0.0",
                    "kubeletVersion": spec.kubelet_version,
                    "kubeProxyVersion": spec.kube_proxy_version,
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            }
        }

    def _register(self, st: _NodeState) -> None:
        spec = st.spec
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": spec.name,
                "labels": spec.all_labels(),
                "annotations": {"plumbob.dev/simulated": "true"},
            },
            "spec": {
                "taints": spec.all_taints(),
                "podCIDR": st.pod_cidr(),
                **({"providerID": spec.provider_id} if spec.provider_id else {}),
            },
        }
        try:
            node = self._api.request("POST", "/api/v1/nodes", body)
        except ApiError as e:
            if e.status != 409:
                raise
            node = self._api.request(
                "PATCH",
                f"/api/v1/nodes/{spec.name}",
                {"metadata": {"labels": spec.all_labels()}, "spec": {"taints": spec.all_taints()}},
                content_type="application/merge-patch+json",
            )
        st.uid = node["metadata"]["uid"]
        st.renewed_at = time.monotonic()
        self._set_health(st, "False" if st.fault is Fault.NOTREADY else "True")
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": spec.name,
                "namespace": LEASE_NAMESPACE,
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": spec.name, "uid": st.uid}],
            },
            "spec": {
                "holderIdentity": spec.name,
                "leaseDurationSeconds": self.lease_duration_seconds,
                "renewTime": _now_micro(),
            },
        }
        try:
            self._api.request(
                "POST", f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases", lease
            )
        except ApiError as e:
            if e.status != 409:
                raise
            self._api.request(
                "PATCH",
                f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{spec.name}",
                {"metadata": lease["metadata"], "spec": lease["spec"]},
                content_type="application/merge-patch+json",
            )

    def _write_node_status(self, st: _NodeState, ready: str) -> None:
        body = (
            self._node_status(st, ready)
            if ready != "Unknown"
            else {"status": {"conditions": self._conditions(st, ready)}}
        )
        self._api.request(
            "PATCH",
            f"/api/v1/nodes/{st.spec.name}/status",
            body,
            content_type="application/strategic-merge-patch+json",
            ok_missing=True,
        )

    def _set_health(self, st: _NodeState, ready: str) -> None:
        """Write the Ready condition and the taints that go with it.

        There is no node-lifecycle controller on the testbed, so this also plays its part for the
        simulated nodes: the ``node.kubernetes.io/not-ready`` taint that admission puts on every new
        Node is removed once it is Ready; a NotReady node gets the not-ready taints, a lost node
        (its Lease expired) Ready=Unknown and the unreachable taints.
        """
        st.ready_since = _now()
        self._write_node_status(st, ready)
        taints = st.spec.all_taints()
        key = {"False": "node.kubernetes.io/not-ready", "Unknown": "node.kubernetes.io/unreachable"}.get(
            ready
        )
        if key:
            taints += [
                {"key": key, "effect": "NoSchedule"},
                {"key": key, "effect": "NoExecute", "timeAdded": _now()},
            ]
        self._api.request(
            "PATCH",
            f"/api/v1/nodes/{st.spec.name}",
            {"spec": {"taints": taints}},
            content_type="application/merge-patch+json",
            ok_missing=True,
        )

    def _mark_lost(self, st: _NodeState) -> None:
        """In the node-lifecycle controller's place: a lost node whose Lease expired becomes Unknown."""
        if st.fault is not Fault.LOST or st.vanished or st.lost_marked:
            return
        if time.monotonic() - st.renewed_at >= self.lease_duration_seconds:
            self._set_health(st, "Unknown")
            st.lost_marked = True  # only once written: a failed write is tried again next round

    def _renew_lease(self, st: _NodeState) -> None:
        st.renewed_at = time.monotonic()
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{st.spec.name}"
        self._api.request(
            "PATCH",
            path,
            {"spec": {"renewTime": _now_micro()}},
            content_type="application/merge-patch+json",
            ok_missing=True,
        )

    def _delete_node(self, st: _NodeState) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{st.spec.name}"
        for p in (f"/api/v1/nodes/{st.spec.name}", path):
            try:
                self._api.request("DELETE", p, ok_missing=True, timeout=10)
            except Exception as e:
                log.warning("deleting %s: %s", p, e)

    def _lease_loop(self) -> None:
        last_status = time.monotonic()
        while not self._stopping.wait(self.lease_interval):
            status_due = time.monotonic() - last_status >= self.node_status_interval
            if status_due:
                last_status = time.monotonic()
            for st in list(self._nodes.values()):
                if self._stopping.is_set():
                    return
                try:
                    if not st.heartbeats():
                        self._mark_lost(st)
                        continue
                    self._renew_lease(st)
                    if status_due:
                        self._write_node_status(st, "True")
                except Exception as e:
                    log.warning("heartbeat of node %s: %s", st.spec.name, e)

    # ---- the pod watch ----------------------------------------------------------------------------
    def _watch_loop(self) -> None:
        rv: str | None = None
        while not self._stopping.is_set():
            try:
                if rv is None:
                    rv = self._relist()
                rv = self._watch_once(rv)
            except _GoneError:
                rv = None
            except Exception as e:
                if self._stopping.is_set():
                    return
                log.warning("pod watch: %s; listing again", e)
                rv = None
                self._stopping.wait(1)

    def _relist(self) -> str:
        pods = self._api.request("GET", "/api/v1/pods", query={"fieldSelector": "spec.nodeName!="})
        seen = set()
        for pod in pods.get("items") or []:
            if pod["spec"].get("nodeName") in self._nodes:
                seen.add(pod["metadata"]["uid"])
                self._on_event("MODIFIED", pod)
        with self._lock:
            for uid in list(self._pods):
                if uid not in seen:
                    self._on_event("DELETED", self._pods[uid])
        return str(pods["metadata"]["resourceVersion"])

    def _watch_once(self, rv: str) -> str:
        query = {
            "fieldSelector": "spec.nodeName!=",
            "watch": "true",
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "300",
        }
        resp = self._api.stream("/api/v1/pods", query, read_timeout=330)
        self._watch_resp = resp
        try:
            for line in _lines(resp):
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        raise _GoneError
                    raise ApiError("WATCH", "/api/v1/pods", int(obj.get("code") or 0), json.dumps(obj))
                rv = str(obj.get("metadata", {}).get("resourceVersion") or rv)
                if event.get("type") != "BOOKMARK":
                    self._on_event(str(event.get("type")), obj)
        finally:
            self._watch_resp = None
            resp.release_conn()
        return rv

    def _on_event(self, etype: str, pod: Json) -> None:
        st = self._nodes.get(pod.get("spec", {}).get("nodeName", ""))
        if st is None:
            return
        uid = pod["metadata"]["uid"]
        with self._lock:
            if etype == "DELETED":
                self._pods.pop(uid, None)
                run = self._runs.pop(uid, None)
                if run and not run.done:
                    run.stop_with("deleted")
                return
            self._pods[uid] = pod
            if not st.vanished:
                self._consider(uid, pod, st)

    def _consider(self, uid: str, pod: Json, st: _NodeState) -> None:
        """Decide what to do with the latest state of a pod on one of our nodes (lock held)."""
        if self._stopping.is_set() or st.fault is Fault.LOST:
            return
        run = self._runs.get(uid)
        if run is not None:
            run.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            if run is not None and not run.done:
                run.stop_with("deleted")  # the worker kills, writes the status and finalises
            elif run is None or not run.finalize_submitted:
                if run is None:
                    run = self._new_run(uid, pod, st)
                    run.done = True
                run.finalize_submitted = True
                self._aux.submit(self._finalize, run)
            return
        if run is not None or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return
        if st.fault is Fault.NOTREADY:
            return  # started when the node recovers
        run = self._new_run(uid, pod, st)
        self._pods_started[st.spec.name] += 1
        self._pool.submit(self._run_pod, run)

    def _new_run(self, uid: str, pod: Json, st: _NodeState) -> _Run:
        meta = pod["metadata"]
        workdir = self.workdir / "pods" / f"{meta['namespace']}_{meta['name']}_{uid[:8]}"
        run = _Run(uid, meta["namespace"], meta["name"], st.spec.name, pod, workdir)
        self._runs[uid] = run
        self._logs[(run.namespace, run.name)] = run
        return run

    # ---- running a pod ----------------------------------------------------------------------------
    def _run_pod(self, run: _Run) -> None:
        try:
            self._execute(run)
        except Exception as e:
            log.exception("pod %s/%s", run.namespace, run.name)
            self._note(run, f"simulated kubelet error: {e}\n{traceback.format_exc()}")
        finally:
            shutil.rmtree(run.workdir / "serviceaccount", ignore_errors=True)
            with self._lock:
                run.done = True
                deleted = run.cancel_reason == "deleted"
                submit = deleted and not run.finalize_submitted and not self._stopping.is_set()
                if submit:
                    run.finalize_submitted = True
            if submit:
                self._finalize(run)

    def _note(self, run: _Run, text: str) -> None:
        run.workdir.mkdir(parents=True, exist_ok=True)
        with run.log_path.open("a") as f:
            f.write(f"[simulated-kubelet] {text.rstrip()}\n")

    def _execute(self, run: _Run) -> None:
        st = self._nodes[run.node]
        run.workdir.mkdir(parents=True, exist_ok=True)
        if run.cancel.is_set():
            return
        fault = st.fault
        pod = run.pod
        run.host_ip = self.node_ip
        run.pod_ip = run.host_ip if pod["spec"].get("hostNetwork") else st.pod_ip()
        run.start_time = _now()
        self._pod_status(run, "Pending", {"waiting": {"reason": "ContainerCreating"}}, with_ip=False)
        deadline_s = pod["spec"].get("activeDeadlineSeconds")
        if deadline_s is not None:
            run.deadline = time.monotonic() + float(deadline_s)

        if fault is Fault.VANISH:
            self._pod_status(run, "Running", {"running": {"startedAt": _now()}}, ready=True)
            self._vanish(st)
            return

        try:
            env, argv = self._prepare(run, st)
        except Exception as e:
            self._note(run, f"cannot start the container: {e}")
            now = _now()
            start_error = _Outcome(128, now, now, message=str(e), container_reason="StartError")
            failed = self._outcome(run, 137, now) if run.cancel.is_set() else start_error
            if failed is not None:
                self._finish(run, failed)
            return

        outcome: _Outcome | None
        if fault is Fault.CRASH:
            self._note(run, "simulated crash: the container exited at once")
            now = _now()
            outcome = _Outcome(1, now, now)
        elif self.runner == "inprocess":
            outcome = self._run_inprocess(run, argv, env, fault)
        else:
            outcome = self._run_subprocess(run, argv, env, fault)
        if outcome is not None:
            self._finish(run, outcome)

    def _prepare(self, run: _Run, st: _NodeState) -> tuple[dict[str, str], list[str]]:
        pod = run.pod
        base = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(run.workdir),
            "LANG": "C.UTF-8",
        }
        env = container_env(pod, base)
        env.update(
            {
                "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                "KUBERNETES_SERVICE_PORT": str(self.api_port),
                "KUBERNETES_SERVICE_PORT_HTTPS": str(self.api_port),
                "PLUMBOB_HOST_ROOT": str(st.spec.host_root),
            }
        )
        projection = token_projection(pod)
        if projection is not None:
            env["PLUMBOB_SERVICEACCOUNT_DIR"] = str(self._write_credentials(run, projection))
        else:
            env.pop("PLUMBOB_SERVICEACCOUNT_DIR", None)
        return env, container_argv(pod, env)

    def _write_credentials(self, run: _Run, projection: Json) -> Path:
        pod = run.pod
        sa = pod["spec"].get("serviceAccountName") or "default"
        audience = projection.get("audience")
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [audience] if audience else [],
                "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": run.name, "uid": run.uid},
            },
        }
        path = f"/api/v1/namespaces/{run.namespace}/serviceaccounts/{sa}/token"
        # A kubelet retries mounting the token volume until it works (the Pod stays
        # ContainerCreating): an API server that is away or overloaded only delays the container.
        pause = 0.5
        while True:
            failure: Exception
            try:
                token = str(self._api.request("POST", path, body)["status"]["token"])
                break
            except ApiError as e:
                if e.status < 500 and e.status != 429:
                    raise
                failure = e
            except Exception as e:  # refused or broken connection: the API server is away
                failure = e
            self._note(run, f"token request failed ({_brief(failure)}); trying again in {pause:.1f}s")
            if run.cancel.wait(pause):
                raise RuntimeError("the Pod was stopped before its token could be requested") from failure
            pause = min(pause * 2, 5.0)
        sa_dir = run.workdir / "serviceaccount"
        sa_dir.mkdir(parents=True, exist_ok=True)
        token_file = sa_dir / "token"
        token_file.touch(0o600)
        token_file.write_text(token)
        if self.ca_data is not None:
            (sa_dir / "ca.crt").write_bytes(self.ca_data)
        (sa_dir / "namespace").write_text(run.namespace)
        return sa_dir

    def _run_subprocess(
        self, run: _Run, argv: list[str], env: dict[str, str], fault: Fault
    ) -> _Outcome | None:
        if fault is Fault.HANG:
            self._note(run, "simulated hang: the container sleeps until it is killed")
            argv = [shutil.which("sleep") or "/bin/sleep", "infinity"]
        with run.log_path.open("ab") as logf:
            try:
                proc = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=run.workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, async-signal-safe
                )
            except OSError as e:
                self._note(run, f"cannot start {argv[0]}: {e}")
                now = _now()
                return _Outcome(128, now, now, message=str(e), container_reason="StartError")
        run.pid = proc.pid
        started_at = _now()
        self._pod_status(run, "Running", {"running": {"startedAt": started_at}}, ready=True)
        while True:
            try:
                rc = proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            if run.cancel.is_set():
                rc = self._kill(run, proc)
                break
        exit_code = 128 - rc if rc < 0 else rc
        return self._outcome(run, exit_code, started_at)

    def _kill(self, run: _Run, proc: subprocess.Popen[bytes]) -> int:
        grace = float(run.pod["spec"].get("terminationGracePeriodSeconds", 30))
        if run.cancel_reason == "deleted":
            grace = float(run.pod["metadata"].get("deletionGracePeriodSeconds", grace))
        grace = min(grace, self.max_grace_seconds if run.cancel_reason != "stop" else 1.0)
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                return proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        return proc.wait()

    def _run_inprocess(
        self, run: _Run, argv: list[str], env: dict[str, str], fault: Fault
    ) -> _Outcome | None:
        started_at = _now()
        self._pod_status(run, "Running", {"running": {"startedAt": started_at}}, ready=True)
        if fault is Fault.HANG:
            self._note(run, "simulated hang: the container waits until it is killed")
            run.cancel.wait()
            return self._outcome(run, 137, started_at)
        try:
            rc = int(self.inprocess_runner(argv, env, run.cancel))
        except Exception as e:
            self._note(run, f"in-process runner raised {e!r}\n{traceback.format_exc()}")
            rc = 1
        return self._outcome(run, rc, started_at)

    def _outcome(self, run: _Run, exit_code: int, started_at: str) -> _Outcome | None:
        if run.cancel_reason == "stop":
            return None  # the kubelet itself stops: it writes nothing more
        if run.cancel_reason == "deadline":
            return _Outcome(
                exit_code or 137,
                started_at,
                _now(),
                reason="DeadlineExceeded",
                message="Pod was active on the node longer than the specified deadline",
                container_reason="Error",
            )
        return _Outcome(exit_code, started_at, _now())

    def _finish(self, run: _Run, outcome: _Outcome) -> None:
        if self._stopping.is_set():
            return
        phase = "Succeeded" if outcome.exit_code == 0 and outcome.reason is None else "Failed"
        terminated = {
            "exitCode": outcome.exit_code,
            "reason": outcome.container_reason or ("Completed" if outcome.exit_code == 0 else "Error"),
            "startedAt": outcome.started_at,
            "finishedAt": outcome.finished_at,
            "containerID": f"simulated://{run.uid}",
        }
        if outcome.message:
            terminated["message"] = outcome.message
        self._pod_status(
            run, phase, {"terminated": terminated}, reason=outcome.reason, message=outcome.message
        )

    def _pod_status(
        self,
        run: _Run,
        phase: str,
        state: Json,
        *,
        ready: bool = False,
        with_ip: bool = True,
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        """Write the pod's status as a kubelet would (nothing when the node is lost or gone)."""
        st = self._nodes[run.node]
        if st.fault is Fault.LOST or st.vanished:
            return
        now = _now()
        terminal = phase in ("Succeeded", "Failed")
        not_ready_reason = "PodCompleted" if terminal else "ContainersNotReady"
        container = run.pod["spec"]["containers"][0]

        def cond(ctype: str, ok: bool, why: str | None = None) -> Json:
            c: Json = {"type": ctype, "status": "True" if ok else "False", "lastTransitionTime": now}
            if why and not ok:
                c["reason"] = why
            return c

        container_status: Json = {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": "",
            "ready": ready,
            "restartCount": 0,
            "started": "running" in state,
            "state": state,
        }
        if "waiting" not in state:
            container_status["imageID"] = f"simulated://{container.get('image', '')}"
            container_status["containerID"] = f"simulated://{run.uid}"
        status: Json = {
            "phase": phase,
            "hostIP": run.host_ip,
            "hostIPs": [{"ip": run.host_ip}],
            "startTime": run.start_time,
            "conditions": [
                cond("PodReadyToStartContainers", with_ip and phase == "Running"),
                cond("Initialized", True),
                cond("Ready", ready, not_ready_reason),
                cond("ContainersReady", ready, not_ready_reason),
                cond("PodScheduled", True),
            ],
            "containerStatuses": [container_status],
        }
        if with_ip:
            status["podIP"], status["podIPs"] = run.pod_ip, [{"ip": run.pod_ip}]
        if reason:
            status["reason"] = reason
        if message:
            status["message"] = message
        # the status before its number: a writer that reads the number then sees it or a newer one
        run.status = status
        run.status_seq += 1
        self._write_status(run)

    def _write_status(self, run: _Run) -> None:
        """Send the Pod's latest status unless the API server has it already.

        Like a kubelet's status manager, the simulated kubelet never drops a status: the Pod runs
        on whatever the API server does, and a status the API server did not take (it was away,
        restarting, overloaded) stays pending; the sync loop writes the newest one once it answers.
        """
        with run.write_lock:
            seq, status = run.status_seq, run.status
            st = self._nodes[run.node]
            if seq <= run.written_seq or status is None or self._stopping.is_set():
                return
            if st.fault is Fault.LOST or st.vanished:
                return  # cut off: kept, written if the node comes back
            path = f"/api/v1/namespaces/{run.namespace}/pods/{run.name}/status"
            try:
                self._api.request(
                    "PATCH",
                    path,
                    {"metadata": {"uid": run.uid}, "status": status},
                    content_type="application/strategic-merge-patch+json",
                    ok_missing=True,  # the Pod is gone: nothing to write to
                )
            except ApiError as e:
                if e.status not in (409, 422):  # those: a uid mismatch, a newer pod of that name
                    self._status_pending(run, seq, status, e)
                    return
                log.warning("pod %s/%s status: %s", run.namespace, run.name, e)
            except Exception as e:  # refused or broken connection, timeout: the API server is away
                self._status_pending(run, seq, status, e)
                return
            run.written_seq = seq

    def _status_pending(self, run: _Run, seq: int, status: Json, failure: Exception) -> None:
        if run.noted_seq == seq:
            return  # said once per status
        run.noted_seq = seq
        text = f"status {status['phase']} not written yet ({_brief(failure)}): it is sent again"
        log.warning("pod %s/%s: %s", run.namespace, run.name, text)
        self._note(run, text)

    def _finalize(self, run: _Run) -> None:
        """The pod has a deletionTimestamp and no process any more: delete it for good."""
        if self._nodes[run.node].fault is Fault.LOST:
            return
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": run.uid},
        }
        run.finalize_failed = False
        try:
            self._api.request(
                "DELETE", f"/api/v1/namespaces/{run.namespace}/pods/{run.name}", body, ok_missing=True
            )
        except ApiError as e:
            if e.status != 409:  # 409: the uid precondition failed, a newer pod of that name
                log.warning("finalising pod %s/%s: %s; trying again", run.namespace, run.name, e)
                run.finalize_failed = True
        except Exception as e:  # the API server is away: the sync loop tries again
            log.warning("finalising pod %s/%s: %s; trying again", run.namespace, run.name, _brief(e))
            run.finalize_failed = True

    def _vanish(self, st: _NodeState) -> None:
        log.info("node %s vanishes", st.spec.name)
        st.vanished = True
        self._delete_node(st)

    def _sync_loop(self) -> None:
        """Every second: write the statuses and final deletions the API server did not take."""
        while not self._stopping.wait(1.0):
            with self._lock:
                runs = list(self._runs.values())
            for run in runs:
                if self._stopping.is_set():
                    return
                try:
                    if run.written_seq < run.status_seq:
                        self._write_status(run)
                    if run.finalize_failed:
                        self._finalize(run)
                except Exception:
                    log.exception("syncing pod %s/%s", run.namespace, run.name)

    def _watchdog_loop(self) -> None:
        while not self._stopping.wait(0.2):
            now = time.monotonic()
            with self._lock:
                for run in self._runs.values():
                    if not run.done and run.deadline is not None and now >= run.deadline:
                        run.stop_with("deadline")


def _brief(exc: Exception) -> str:
    """An API failure in one line (urllib3 nests the cause of a refused connection deep inside)."""
    text = str(exc)
    return text if len(text) <= 200 else text[:197] + "..."


def _lines(resp: Any) -> Iterator[bytes]:
    """The lines of a streamed watch response, as they arrive."""
    pending = b""
    for chunk in resp.stream(None, decode_content=False):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from (line for line in complete if line.strip())
    if pending.strip():
        yield pending


# ---- CLI ------------------------------------------------------------------------------------------
def make_nodes(
    count: int,
    host_root: str | Path,
    *,
    control_planes: int = 1,
    prefix: str = "node",
    control_plane_host_root: str | Path | None = None,
) -> list[SimulatedNode]:
    """``count`` nodes: the first ``control_planes`` with the control-plane role."""
    nodes = []
    for i in range(count):
        cp = i < control_planes
        root = control_plane_host_root if cp and control_plane_host_root is not None else host_root
        nodes.append(
            SimulatedNode(name=f"{prefix}-{i}", role="control-plane" if cp else "worker", host_root=root)
        )
    return nodes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.simnodes", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--control-planes", type=int, default=1)
    parser.add_argument("--host-root", default="/")
    parser.add_argument("--control-plane-host-root", default=None)
    parser.add_argument("--prefix", default="node")
    parser.add_argument("--runner", choices=("subprocess", "inprocess"), default="subprocess")
    parser.add_argument("--max-parallel", type=int, default=None)
    parser.add_argument("--keep-nodes", action="store_true", help="do not delete the Node objects on exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[simnodes] %(message)s")
    nodes = make_nodes(
        args.nodes,
        args.host_root,
        control_planes=args.control_planes,
        prefix=args.prefix,
        control_plane_host_root=args.control_plane_host_root,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    cluster = SimulatedCluster(
        args.kubeconfig,
        nodes,
        runner=args.runner,
        max_parallel=args.max_parallel,
        delete_nodes_on_stop=not args.keep_nodes,
    )
    with cluster:
        log.info(
            "nodes %s ready (pod logs under %s); Ctrl-C to stop",
            ", ".join(cluster.node_names),
            cluster.workdir,
        )
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
