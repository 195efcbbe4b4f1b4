"""A real node next to the testbed's control plane: containerd, runc, kubelet, kube-proxy, kube-scheduler.

What ``/work/shared/design/real-node.md`` found to work on these machines, made repeatable:

- Each node lives in its own network, mount and PID namespaces (``unshare``). Its PID 1 is
  :func:`_init` (``python -m testbed.realnode init``): it brings up a veth pair (the kernel has no
  ``dummy`` driver; the kubelet refuses a loopback node IP), puts overlays on ``/etc``, ``/var``
  and ``/usr`` (the node's files land in the overlays' upper folders, and nothing the runtime
  creates, such as a missing hostPath, reaches the machine), a private tmpfs on ``/run``,
  read-only masks over the global sysctls the kubelet would rewrite, and ``nameserver 127.0.0.1``
  so no name lookup leaves the machine; then starts containerd, imports the pause image and
  Plumbob's image, and starts the kubelet, kube-proxy and (on the first node) kube-scheduler.
- Its files follow kubeadm's layout (``/etc/kubernetes/kubelet.conf``, ``/var/lib/kubelet/config.yaml``,
  ``/var/lib/kube-proxy/``, ``/etc/cni/net.d/``), so an audit Pod reads them where a real node has them.
- The host-specific settings: kubelet ``failCgroupV1: false`` (the VM is cgroup v1), containerd
  ``restrict_oom_score_adj`` (the bounding set lacks CAP_SYS_RESOURCE), the veth pair, and the
  local pause image pinned as the sandbox image. Each node gets its own ``cgroupRoot``, so nodes
  (and test runs) never share ``/kubepods``.
- The API server stays on the machine's loopback; it advertises :data:`API_ADDRESS`, which the
  supervisor's relay serves inside every node namespace (``nsbridge.py``). Its egress selector sends
  logs/exec through the first node's CONNECT relay.

Process tree: the caller → the supervisor (``python -m testbed.realnode supervise``, in the
machine's namespaces, killed with SIGTERM when the caller dies: ``PR_SET_PDEATHSIG``) → ``unshare
--kill-child`` → PID 1 of the node → daemons, shims, containers. The supervisor's SIGTERM handler
kills PID 1 (the kernel then kills everything in the PID namespace and the network and mount
namespaces vanish with their last process), removes the node's cgroup folders and its work
folder. So a caller killed with SIGKILL leaves nothing behind (``tests/e2e/test_real_node.py``).
If the supervisor itself is killed with SIGKILL, ``unshare`` and PID 1 still die with it (the
namespaces go), but the node's empty cgroup folders (``/sys/fs/cgroup/*/plumbob-<node>-<hex>``)
and its work folder stay.

Usage::

    plan = ClusterPlan.create(["node-a"])
    cp = ControlPlane.start(extra_apiserver_args=plan.apiserver_args(), extra_controllers=CONTROLLERS)
    node = RealNode.start(plan, cp, "node-a")
    ...
    node.stop(); cp.stop(); plan.remove()
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from testbed.binaries import _say, ensure_binaries
from testbed.controlplane import (
    ADMIN_TOKEN,
    ControlPlane,
    StartError,
    _die_with_parent,
    write_token_kubeconfig,
)
from testbed.nodebinaries import ensure_node_binaries
from testbed.nodeimages import PAUSE_IMAGE, pause_archive, plumbob_image

API_ADDRESS = "10.98.0.1"  # advertised by the API server; served by the relay in every node namespace
NODE_SUBNET = "10.99.0"  # node i gets 10.99.0.<i+1>/24 on its veth
POD_SUBNET = "10.244.{index}.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
CONTROLLERS = (  # what a node with a scheduler needs beyond the testbed's default controllers
    "node-lifecycle-controller",
    "deployment-controller",
    "replicaset-controller",
    "endpointslice-controller",
)
CGROUP_FS = Path("/sys/fs/cgroup")
# Global sysctls the kubelet sets when they differ (protectKernelDefaults: false): masked inside the
# node's mount namespace with files holding these values, so the kubelet finds them set and writes nothing.
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}
HOST_TOOLS = ("ip", "unshare", "iptables", "runc")


def _sh(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StartError(f"{' '.join(argv)} failed: {result.stderr.strip()}")


def _openssl(*args: str) -> None:
    _sh("openssl", *args)


# ---- the cluster-wide part: tokens, kubelet client CA, egress configuration -------------------------


@dataclass
class ClusterPlan:
    """What the API server must know about the real nodes before it starts."""

    workdir: Path
    nodes: list[str]
    tokens: dict[str, str]

    @classmethod
    def create(cls, nodes: Sequence[str], workdir: Path | None = None) -> ClusterPlan:
        wd = workdir or Path(tempfile.mkdtemp(prefix="plumbob-rn-"))
        wd.mkdir(parents=True, exist_ok=True)
        tokens = {user: secrets.token_hex(16) for user in ("kube-proxy", "kube-scheduler", *nodes)}
        plan = cls(wd, list(nodes), tokens)
        plan._write()
        return plan

    @property
    def egress_socket(self) -> Path:
        return self.workdir / "egress.sock"

    @property
    def kubelet_ca(self) -> Path:
        return self.workdir / "pki" / "kubelet-client-ca.crt"

    def apiserver_args(self) -> list[str]:
        pki = self.workdir / "pki"
        return [
            f"--advertise-address={API_ADDRESS}",
            f"--token-auth-file={self.workdir / 'tokens.csv'}",
            f"--egress-selector-config-file={self.workdir / 'egress.yaml'}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        ]

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _write(self) -> None:
        wd = self.workdir
        lines = [f'{ADMIN_TOKEN},admin,admin,"system:masters"']
        lines += [f"{self.tokens['kube-proxy']},system:kube-proxy,kube-proxy"]
        lines += [f"{self.tokens['kube-scheduler']},system:kube-scheduler,kube-scheduler"]
        lines += [f'{self.tokens[n]},system:node:{n},{n},"system:nodes"' for n in self.nodes]
        (wd / "tokens.csv").write_text("\n".join(lines) + "\n")
        (wd / "tokens.csv").chmod(0o600)
        pki = wd / "pki"
        pki.mkdir(exist_ok=True)
        ca_key, ca = pki / "kubelet-client-ca.key", self.kubelet_ca
        new_key = ("-newkey", "rsa:2048", "-nodes")
        ca_subject = "/CN=plumbob-testbed-kubelet-client-ca"
        _openssl(
            "req",
            "-x509",
            *new_key,
            "-days",
            "2",
            "-subj",
            ca_subject,
            "-keyout",
            str(ca_key),
            "-out",
            str(ca),
        )
        key, csr, crt = (pki / f"apiserver-kubelet-client.{s}" for s in ("key", "csr", "crt"))
        subject = "/O=system:masters/CN=kube-apiserver-kubelet-client"
        _openssl("req", *new_key, "-subj", subject, "-keyout", str(key), "-out", str(csr))
        signer = ("-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial")
        _openssl("x509", "-req", "-in", str(csr), *signer, "-days", "2", "-out", str(crt))
        egress = {
            "apiVersion": "apiserver.k8s.io/v1beta1",
            "kind": "EgressSelectorConfiguration",
            "egressSelections": [
                {
                    "name": "cluster",
                    "connection": {
                        "proxyProtocol": "HTTPConnect",
                        "transport": {"uds": {"udsName": str(self.egress_socket)}},
                    },
                }
            ],
        }
        (wd / "egress.yaml").write_text(json.dumps(egress))


# ---- one node: its files, and the handle the caller keeps ----------------------------------------


def _put(root: Path, path: str, text: str, mode: int) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(mode)


@dataclass
class NodeLayout:
    """Where one node's pieces are, as the supervisor and PID 1 read them from ``node.json``."""

    name: str
    index: int
    workdir: Path
    api_port: int
    cgroup_root: str
    scheduler: bool
    egress_socket: str
    binaries: dict[str, str]
    images: list[str]
    image_names: list[str]
    python: str = sys.executable

    @property
    def node_ip(self) -> str:
        return f"{NODE_SUBNET}.{self.index + 1}"

    def upper(self, top: str) -> Path:
        return self.workdir / "overlay" / top / "upper"

    @property
    def state(self) -> Path:
        return self.workdir / "state"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    def save(self) -> None:
        data = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}
        (self.workdir / "node.json").write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, workdir: Path) -> NodeLayout:
        data = json.loads((workdir / "node.json").read_text())
        data["workdir"] = Path(data["workdir"])
        return cls(**data)


def _write_node_files(layout: NodeLayout, plan: ClusterPlan, cp: ControlPlane) -> None:
    etc, var = layout.upper("etc"), layout.upper("var")
    name = layout.name
    server = f"https://{API_ADDRESS}:{cp.api_port}"  # the relay in the node's namespace
    for path, user, token in (
        (etc / "kubernetes/kubelet.conf", f"system:node:{name}", plan.tokens[name]),
        (etc / "kubernetes/scheduler.conf", "system:kube-scheduler", plan.tokens["kube-scheduler"]),
        (var / "lib/kube-proxy/kubeconfig.conf", "system:kube-proxy", plan.tokens["kube-proxy"]),
    ):
        write_token_kubeconfig(path, server, cp.ca_file, user, token)
    _put(etc, "kubernetes/pki/ca.crt", plan.kubelet_ca.read_text(), 0o644)
    _put(etc, "resolv.conf", "nameserver 127.0.0.1\n", 0o644)
    conflist = {
        "cniVersion": "1.0.0",
        "name": "testbed",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET.format(index=layout.index)}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": "/run/cni-ipam",
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    _put(etc, "cni/net.d/10-bridge.conflist", json.dumps(conflist, indent=2), 0o644)
    kubelet = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,  # the VM runs cgroup v1 (hybrid)
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": layout.cgroup_root,
        "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
        "address": layout.node_ip,
        "port": 10250,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "readOnlyPort": 0,
        "failSwapOn": False,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"},
        },
        "authorization": {"mode": "Webhook"},
        "staticPodPath": "",
        "clusterDomain": "cluster.local",
        "resolvConf": "/etc/resolv.conf",
        "registerNode": True,
        "serializeImagePulls": False,
        # The machine's disk is shared with everything else: do not evict for its fill level.
        "evictionHard": {"memory.available": "100Mi"},
        "imageGCHighThresholdPercent": 100,
    }
    # kubeadm writes config.yaml with mode 644, as here; CIS 4.1.9 asks for 600 (a real finding).
    _put(var, "lib/kubelet/config.yaml", json.dumps(kubelet, indent=2), 0o644)
    proxy = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "hostnameOverride": name,
        "clusterCIDR": CLUSTER_CIDR,
        "clientConnection": {"kubeconfig": "/var/lib/kube-proxy/kubeconfig.conf"},
        "bindAddress": layout.node_ip,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    _put(var, "lib/kube-proxy/config.conf", json.dumps(proxy, indent=2), 0o644)
    containerd = f"""version = 3
root = "{layout.workdir / "containerd"}"
state = "/run/containerd/state"
[grpc]
  address = "/run/containerd/containerd.sock"
[ttrpc]
  address = "/run/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{PAUSE_IMAGE}"
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{shutil.which("runc") or "/usr/sbin/runc"}"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "/etc/cni/net.d"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""  # restrict_oom_score_adj: the VM's bounding set lacks CAP_SYS_RESOURCE
    _put(etc, "containerd/config.toml", containerd, 0o644)
    mask = layout.workdir / "sysctl"
    for key, value in KUBELET_SYSCTLS.items():
        _put(mask, key.replace("/", "_"), value + "\n", 0o444)


@dataclass
class RealNode:
    """A running real node. Build with :meth:`start`; always :meth:`stop` it."""

    layout: NodeLayout
    supervisor: subprocess.Popen[bytes]
    log_handle: IO[bytes]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.layout.name

    @property
    def workdir(self) -> Path:
        return self.layout.workdir

    @classmethod
    def start(
        cls,
        plan: ClusterPlan,
        cp: ControlPlane,
        name: str,
        *,
        scheduler: bool = True,
        progress: Callable[[str], None] | None = None,
        timeout: float = 600,
    ) -> RealNode:
        say = progress or _say
        missing = [t for t in HOST_TOOLS if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]
        if missing:
            raise StartError(f"the real node needs {', '.join(missing)}: apt-get install runc iptables "
                             "containernetworking-plugins (see .ci/run)")  # fmt: skip
        if os.geteuid() != 0:
            raise StartError("the real node needs root (namespaces, mounts, cgroups)")
        started = time.monotonic()
        binaries = {**ensure_node_binaries(say), "kubectl": ensure_binaries(say)["kubectl"]}
        image_name, image_tar = plumbob_image()
        index = plan.nodes.index(name)
        workdir = plan.workdir / f"node-{name}"
        workdir.mkdir()
        layout = NodeLayout(
            name=name,
            index=index,
            workdir=workdir,
            api_port=cp.api_port,
            cgroup_root=f"/plumbob-{name}-{secrets.token_hex(3)}",
            scheduler=scheduler,
            egress_socket=str(plan.egress_socket) if index == 0 else "",
            binaries={k: str(v) for k, v in binaries.items()},
            images=[str(pause_archive(say)), str(image_tar)],
            image_names=[PAUSE_IMAGE, image_name],
        )
        for sub in ("state", "logs"):
            (workdir / sub).mkdir()
        _write_node_files(layout, plan, cp)
        layout.save()
        say(f"starting real node {name} ({layout.node_ip}) in its own namespaces; logs in {layout.logs}")
        handle = (layout.logs / "supervisor.log").open("ab")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        popen = subprocess.Popen(
            [sys.executable, "-m", "testbed.realnode", "supervise", str(workdir)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=functools.partial(_die_with_parent, signal.SIGTERM),  # noqa: PLW1509 - no threads forked here
        )
        node = cls(layout, popen, handle)
        try:
            node._wait_started(cp, started, timeout, say)
        except BaseException:
            node.print_logs()
            node.stop()
            raise
        return node

    def _wait_started(
        self, cp: ControlPlane, started: float, timeout: float, say: Callable[[str], None]
    ) -> None:
        deadline = started + timeout
        for step, what in (("images", "containerd up, images imported"), ("daemons", "kubelet started")):
            while not (self.layout.state / step).exists():
                if self.supervisor.poll() is not None:
                    raise StartError(f"the real node's supervisor exited ({self.supervisor.returncode})")
                if time.monotonic() > deadline:
                    raise StartError(f"real node {self.name}: no '{what}' after {timeout:.0f}s")
                time.sleep(0.2)
            self.timings[step] = time.monotonic() - started
        while not self.ready(cp):
            if self.supervisor.poll() is not None:
                raise StartError(f"the real node's supervisor exited ({self.supervisor.returncode})")
            if time.monotonic() > deadline:
                raise StartError(f"real node {self.name} was not Ready after {timeout:.0f}s")
            time.sleep(0.3)
        self.timings["ready"] = time.monotonic() - started
        say(f"real node {self.name} Ready after {self.timings['ready']:.1f}s "
            f"(images imported at {self.timings['images']:.1f}s)")  # fmt: skip

    def ready(self, cp: ControlPlane) -> bool:
        """Ready, and without the taints the node lifecycle controller keeps while it is not."""
        result = cp.kubectl("get", "node", self.name, "-o", "json", check=False)
        if result.returncode != 0:
            return False
        body = json.loads(result.stdout)
        conditions = (body.get("status") or {}).get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        taints = (body.get("spec") or {}).get("taints") or []
        return ready and not any(t.get("key", "").startswith("node.kubernetes.io/") for t in taints)

    def info(self) -> dict[str, Any]:
        """The supervisor's record: its pid, PID 1's pid, the netns inode, the cgroup folders."""
        return dict(json.loads((self.layout.state / "pids.json").read_text()))

    def log_tail(self, component: str, lines: int = 40) -> str:
        path = self.layout.logs / f"{component}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def print_logs(self, lines: int = 30) -> None:
        for component in ("supervisor", "init", "containerd", "kubelet", "kube-proxy", "kube-scheduler"):
            print(f"---- {self.name} {component} ----\n{self.log_tail(component, lines)}", file=sys.stderr)

    def stop(self, timeout: float = 120) -> None:
        if self.supervisor.poll() is None:
            self.supervisor.terminate()
            try:
                self.supervisor.wait(timeout)
            except subprocess.TimeoutExpired:
                self.supervisor.kill()
                self.supervisor.wait()
        self.log_handle.close()


# ---- the supervisor (machine namespaces) ------------------------------------------------------------


def _hierarchies() -> list[Path]:
    seen: dict[Path, Path] = {}
    for entry in sorted(CGROUP_FS.iterdir()) if CGROUP_FS.is_dir() else []:
        if entry.is_dir():
            seen.setdefault(entry.resolve(), entry)
    return list(seen.values())


def _make_cgroup_root(root: str) -> list[str]:
    made = []
    for hierarchy in _hierarchies():
        path = hierarchy / root.lstrip("/")
        path.mkdir(exist_ok=True)
        made.append(str(path))
        for name in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset takes no task until both are set
            if (path / name).exists() and not (path / name).read_text().strip():
                (path / name).write_text((hierarchy / name).read_text())
    return made


def remove_cgroups(folders: Sequence[str], timeout: float = 60) -> list[str]:
    """rmdir every folder below and including each of ``folders``, deepest first; return what remains."""
    deadline = time.monotonic() + timeout
    left: list[str] = []
    while True:
        left = []
        for top in folders:
            if not Path(top).is_dir():
                continue
            for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
                with contextlib.suppress(OSError):
                    Path(dirpath).rmdir()
            if Path(top).is_dir():
                left.append(top)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _supervise(workdir: Path) -> int:
    from testbed.nsbridge import Bridge  # noqa: PLC0415 - only the supervisor needs it

    layout = NodeLayout.load(workdir)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda sig, _f: stopping.append(sig))
    signal.signal(signal.SIGINT, lambda sig, _f: stopping.append(sig))
    cgroups = _make_cgroup_root(layout.cgroup_root)
    log = (layout.logs / "init.log").open("ab")
    unshare = subprocess.Popen(
        ["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private",
         "--kill-child=SIGKILL", layout.python, "-m", "testbed.realnode", "init", str(workdir)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=dict(os.environ),
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - single-threaded at this point
    )  # fmt: skip
    bridge: Bridge | None = None
    init_pid = 0
    try:
        while not init_pid and not stopping and unshare.poll() is None:
            children = Path(f"/proc/{unshare.pid}/task/{unshare.pid}/children")
            with contextlib.suppress(OSError, ValueError, IndexError):
                init_pid = int(children.read_text().split()[0])
            time.sleep(0.05)
        while (
            init_pid and not (layout.state / "namespace").exists() and not stopping and unshare.poll() is None
        ):
            time.sleep(0.05)
        if init_pid and not stopping and unshare.poll() is None:
            netns = Path(f"/proc/{init_pid}/ns/net")
            bridge = Bridge(netns)
            bridge.forward_to_loopback(API_ADDRESS, layout.api_port, layout.api_port)
            if layout.egress_socket:
                Path(layout.egress_socket).unlink(missing_ok=True)
                bridge.connect_proxy(Path(layout.egress_socket))
            record = {
                "supervisor": os.getpid(),
                "unshare": unshare.pid,
                "init": init_pid,
                "netns": netns.stat().st_ino,
                "mntns": Path(f"/proc/{init_pid}/ns/mnt").stat().st_ino,
                "cgroups": cgroups,
                "workdir": str(workdir),
            }
            (layout.state / "pids.json").write_text(json.dumps(record))
            (layout.state / "bridge").touch()
            print(f"node {layout.name}: namespace of pid {init_pid} bridged", flush=True)
        while not stopping and unshare.poll() is None:
            time.sleep(0.2)
        if unshare.poll() is not None and not stopping:
            print(f"node {layout.name}: PID 1 exited ({unshare.returncode}) on its own", flush=True)
    finally:
        if init_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(init_pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            unshare.kill()
        unshare.wait()
        if bridge:
            bridge.close()
        if layout.egress_socket:
            Path(layout.egress_socket).unlink(missing_ok=True)
        left = remove_cgroups(cgroups)
        print(f"node {layout.name}: stopped; cgroup folders left: {left or 'none'}", flush=True)
        log.close()
    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if left else 0


# ---- PID 1 of the node (inside the namespaces) -----------------------------------------------------


def _init(workdir: Path) -> int:
    layout = NodeLayout.load(workdir)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda sig, _f: stopping.append(sig))

    def say(message: str) -> None:
        print(f"[init {layout.name}] {message}", flush=True)

    _sh("ip", "link", "set", "lo", "up")
    _sh("ip", "link", "add", "node0", "type", "veth", "peer", "name", "node0p")
    _sh("ip", "addr", "add", f"{layout.node_ip}/24", "dev", "node0")
    _sh("ip", "addr", "add", f"{API_ADDRESS}/32", "dev", "node0")
    _sh("ip", "link", "set", "node0", "up")
    _sh("ip", "link", "set", "node0p", "up")
    _sh("ip", "route", "add", "default", "dev", "node0")  # ClusterIPs routable before kube-proxy's DNAT
    _sh("mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run")
    for top in ("etc", "var", "usr"):
        upper, work = layout.upper(top), layout.workdir / "overlay" / top / "work"
        upper.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        _sh(
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir=/{top},upperdir={upper},workdir={work}",
            f"/{top}",
        )
    for key in KUBELET_SYSCTLS:
        _sh(
            "mount",
            "--bind",
            "-o",
            "ro",
            str(layout.workdir / "sysctl" / key.replace("/", "_")),
            f"/proc/sys/{key}",
        )
    (layout.state / "namespace").touch()
    say("namespace ready; waiting for the supervisor's relay")
    while not (layout.state / "bridge").exists():
        if stopping:
            return 0
        time.sleep(0.05)
    bins = layout.binaries
    path = f"{Path(bins['containerd']).parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    env = {"PATH": path, "HOME": "/root", "LANG": "C.UTF-8"}
    children: dict[int, str] = {}

    def spawn(name: str, argv: list[str]) -> None:
        handle = (layout.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        children[proc.pid] = name
        say(f"started {name} (pid {proc.pid})")

    spawn("containerd", [bins["containerd"], "--config", "/etc/containerd/config.toml"])
    ctr = [bins["ctr"], "--address", "/run/containerd/containerd.sock", "-n", "k8s.io"]
    deadline = time.monotonic() + 300
    while subprocess.run([*ctr, "version"], capture_output=True, env=env, check=False).returncode != 0:
        if time.monotonic() > deadline or stopping:
            say("containerd did not answer")
            return 1
        time.sleep(0.2)
    for archive, name in zip(layout.images, layout.image_names, strict=True):
        while True:  # an import right after containerd started can fail silently: retry until listed
            subprocess.run([*ctr, "images", "import", archive], capture_output=True, env=env, check=False)
            listed = subprocess.run(
                [*ctr, "images", "ls", "-q"], capture_output=True, text=True, env=env, check=False
            )
            if name in listed.stdout.split():
                say(f"imported {name}")
                break
            if time.monotonic() > deadline or stopping:
                say(f"could not import {archive}")
                return 1
            time.sleep(1)
    (layout.state / "images").touch()
    spawn("kubelet", [
        bins["kubelet"], "--config=/var/lib/kubelet/config.yaml", "--kubeconfig=/etc/kubernetes/kubelet.conf",
        "--root-dir=/var/lib/kubelet", f"--hostname-override={layout.name}", f"--node-ip={layout.node_ip}",
    ])  # fmt: skip
    spawn("kube-proxy", [bins["kube-proxy"], "--config=/var/lib/kube-proxy/config.conf"])
    if layout.scheduler:
        spawn("kube-scheduler", [
            bins["kube-scheduler"], "--kubeconfig=/etc/kubernetes/scheduler.conf",
            "--authentication-kubeconfig=/etc/kubernetes/scheduler.conf",
            "--authorization-kubeconfig=/etc/kubernetes/scheduler.conf",
            "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=10259",
        ])  # fmt: skip
    (layout.state / "daemons").touch()
    while not stopping:  # PID 1: reap every orphan (shims, exited containers' parents)
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid = 0
        if pid and pid in children:
            say(f"{children.pop(pid)} exited with status {status}")
        if not pid:
            time.sleep(0.2)
    return 0


def main(argv: Sequence[str]) -> int:
    if len(argv) == 2 and argv[0] == "supervise":
        return _supervise(Path(argv[1]))
    if len(argv) == 2 and argv[0] == "init":
        return _init(Path(argv[1]))
    print(
        "usage: python -m testbed.realnode supervise|init WORKDIR (started by RealNode.start)",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
