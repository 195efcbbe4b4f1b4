"""Host trees: fake node file systems for the audit agent, built by code so modes and owners are exact.

A tree is described in memory (:class:`NodeSpec`: the components with their command lines, the
files with content, mode and owner), changed by *misconfigurations*, then written to a directory:
``proc/<pid>/cmdline`` for each running component, static pod manifests generated from the same
command lines, kubeconfigs, PKI, the kubelet and kube-proxy config files, the etcd data directory,
and ``/etc/passwd`` + ``/etc/group`` declaring ``root``, ``etcd`` and an ``intruder`` account.

- :func:`control_plane_spec`: a kubeadm control-plane node (apiserver, controller-manager,
  scheduler, etcd as static pods; kubelet and kube-proxy as host processes), CIS-compliant;
- :func:`worker_spec`: a compliant kubeadm worker (kubelet, kube-proxy);
- :data:`MISCONFIGURATIONS`: named, hand-written deviations (``apiserver-anonymous-auth``…);
- :func:`violation_for`: a misconfiguration derived from a rule's own audit, so every automated
  rule can be broken on purpose (``rule:1.2.15`` as a name in :func:`build_tree`).

Owners are set with ``os.chown`` to the ids declared in the tree's own ``/etc/passwd``; building
a tree with non-root owners therefore needs root (the test machines run as root).
"""

# Paths in a spec are the node's POSIX strings; os.path on them is deliberate.

# ruff: noqa: PTH101, PTH120

from __future__ import annotations

import copy
import fnmatch
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from plumbob.benchmarks.catalog import load_benchmark
from plumbob.benchmarks.rules import (
    AllOf,
    AnyOf,
    Audit,
    Benchmark,
    Component,
    FileModeAudit,
    FileOwnerAudit,
    FileRef,
    Op,
    SettingAudit,
    Test,
    to_plain,
)
from plumbob.engine.node.values import as_number

ROOT_UID = 0
ETCD_UID = 990
INTRUDER_UID = 4242
PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    f"etcd:x:{ETCD_UID}:{ETCD_UID}:etcd user:/var/lib/etcd:/usr/sbin/nologin\n"
    f"intruder:x:{INTRUDER_UID}:{INTRUDER_UID}::/home/intruder:/bin/sh\n"
)
GROUP = f"root:x:0:\ndaemon:x:1:\netcd:x:{ETCD_UID}:\nintruder:x:{INTRUDER_UID}:\n"
PEM_CERT = "-----BEGIN CERTIFICATE-----\nplumbob-test-certificate\n-----END CERTIFICATE-----\n"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nplumbob-test-key\n-----END PRIVATE KEY-----\n"
BOGUS = "plumbob-bogus"

CIPHERS = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,"
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,"
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
)


class MutationError(Exception):
    """A misconfiguration that cannot be applied to this tree."""


@dataclass
class Entry:
    """A file (``content`` or ``data``, a YAML document) or, when both are None, a directory."""

    mode: int
    uid: int = ROOT_UID
    gid: int = ROOT_UID
    content: str | bytes | None = None
    data: dict[str, Any] | None = None

    @property
    def is_dir(self) -> bool:
        return self.content is None and self.data is None


@dataclass
class Proc:
    pid: int
    argv: list[str]
    running: bool = True
    manifest: str | None = None  # static pod manifest written from ``argv``
    raw_cmdline: bytes | None = None  # overrides argv in /proc (garbage tests)
    env: dict[str, str] = field(default_factory=dict)  # the manifest container's environment


@dataclass
class NodeSpec:
    kind: str
    hostname: str
    components: dict[Component, Proc] = field(default_factory=dict)
    files: dict[str, Entry] = field(default_factory=dict)
    other_processes: dict[int, bytes] = field(default_factory=dict)

    # -- flags ------------------------------------------------------------------------------------
    def flag(self, component: Component, flag: str) -> str | None:
        proc = self.components.get(component)
        if proc is None:
            return None
        value = None
        name = flag.lstrip("-")
        for word in proc.argv[1:]:
            key, eq, val = word.lstrip("-").partition("=")
            if word.startswith("-") and key == name:
                value = val if eq else "true"
        return value

    def set_flag(self, component: Component, flag: str, value: str) -> None:
        proc = self._proc(component)
        self.remove_flag(component, flag)
        proc.argv.append(f"--{flag.lstrip('-')}={value}")

    def remove_flag(self, component: Component, flag: str) -> None:
        proc = self._proc(component)
        name = flag.lstrip("-")
        proc.argv[1:] = [w for w in proc.argv[1:] if w.lstrip("-").partition("=")[0] != name]

    def _proc(self, component: Component) -> Proc:
        if component not in self.components:
            raise MutationError(f"{component} is not on this {self.kind} node")
        return self.components[component]

    # -- config files -----------------------------------------------------------------------------
    def config(self, component: Component) -> dict[str, Any] | None:
        path = self.flag(component, "--config-file" if component is Component.ETCD else "--config")
        entry = self.files.get(path) if path else None
        return entry.data if entry is not None else None

    def set_config(self, component: Component, key: str, value: Any) -> None:
        data = self.config(component)
        if data is None:
            raise MutationError(f"{component} has no config file on this node")
        *parents, last = key.split(".")
        for part in parents:
            data = data.setdefault(part, {})
        data[last] = value

    def remove_config(self, component: Component, key: str) -> None:
        data = self.config(component)
        *parents, last = key.split(".")
        for part in parents:
            if not isinstance(data, dict):
                return
            data = data.get(part)
        if isinstance(data, dict):
            data.pop(last, None)

    def config_value(self, component: Component, key: str) -> Any:
        data: Any = self.config(component)
        for part in key.split("."):
            if not isinstance(data, dict) or part not in data:
                return None
            data = data[part]
        return data

    # -- files ------------------------------------------------------------------------------------
    def add(self, path: str, entry: Entry) -> None:
        parent = os.path.dirname(path)
        while parent not in ("/", "") and parent not in self.files:
            self.files[parent] = Entry(0o755)
            parent = os.path.dirname(parent)
        self.files[path] = entry

    def matches(self, pattern: str) -> list[str]:
        """Paths of the spec matching a glob, component by component (``*`` never crosses ``/``)."""
        want = pattern.strip("/").split("/")
        return sorted(
            p
            for p in self.files
            if len(parts := p.strip("/").split("/")) == len(want)
            and all(fnmatch.fnmatchcase(a, b) for a, b in zip(parts, want, strict=True))
        )

    def below(self, directory: str) -> list[str]:
        return sorted(p for p in self.files if p.startswith(directory.rstrip("/") + "/"))

    # -- writing ----------------------------------------------------------------------------------
    def write(self, root: Path) -> HostTree:
        root.mkdir(parents=True, exist_ok=True)
        files = dict(self.files)
        for proc in self.components.values():
            if proc.manifest is not None and proc.manifest in files:
                files[proc.manifest] = Entry(
                    files[proc.manifest].mode,
                    files[proc.manifest].uid,
                    files[proc.manifest].gid,
                    data=_pod(proc.argv, proc.env),
                )
        files.setdefault("/etc/passwd", Entry(0o644, content=PASSWD))
        files.setdefault("/etc/group", Entry(0o644, content=GROUP))
        files.setdefault("/etc/hostname", Entry(0o644, content=self.hostname + "\n"))
        for path in sorted(files):
            entry = files[path]
            real = root / path.lstrip("/")
            if entry.is_dir:
                real.mkdir(parents=True, exist_ok=True)
            else:
                real.parent.mkdir(parents=True, exist_ok=True)
                body = (
                    entry.content
                    if entry.content is not None
                    else yaml.safe_dump(entry.data, sort_keys=False)
                )
                real.write_bytes(body.encode() if isinstance(body, str) else body)
        # modes and owners last, deepest first, so tight directory modes do not get in the way
        for path in sorted(files, key=lambda p: -p.count("/")):
            entry = files[path]
            real = root / path.lstrip("/")
            os.chown(real, entry.uid, entry.gid)
            os.chmod(real, entry.mode)
        pids: dict[str, int] = {}
        for component, proc in self.components.items():
            if not proc.running:
                continue
            pids[component.value] = proc.pid
            cmdline = (
                proc.raw_cmdline
                if proc.raw_cmdline is not None
                else b"\0".join(w.encode() for w in proc.argv) + b"\0"
            )
            _write_proc(root, proc.pid, cmdline)
        for pid, raw in self.other_processes.items():
            _write_proc(root, pid, raw)
        return HostTree(root=root, kind=self.kind, pids=pids)


@dataclass(frozen=True)
class HostTree:
    root: Path
    kind: str
    pids: dict[str, int]


def _write_proc(root: Path, pid: int, cmdline: bytes) -> None:
    d = root / "proc" / str(pid)
    d.mkdir(parents=True, exist_ok=True)
    (d / "cmdline").write_bytes(cmdline)


def _pod(argv: Sequence[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    name = argv[0].rsplit("/", 1)[-1]
    container: dict[str, Any] = {
        "name": name,
        "image": f"registry.k8s.io/{name}:v1.33.0",
        "command": list(argv),
    }
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "kube-system",
            "labels": {"component": name, "tier": "control-plane"},
        },
        "spec": {
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "containers": [container],
        },
    }


# ---- compliant nodes ------------------------------------------------------------------------------

PKI = "/etc/kubernetes/pki"


def _kubeconfig(user: str, server: str = "https://10.0.0.10:6443") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "kubernetes", "cluster": {"server": server, "certificate-authority-data": "Q0E="}}
        ],
        "users": [{"name": user, "user": {"client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"}}],
        "contexts": [{"name": "default", "context": {"cluster": "kubernetes", "user": user}}],
        "current-context": "default",
    }


def _node_common(spec: NodeSpec, node_ip: str) -> None:
    """What every kubeadm node has: kubelet, kube-proxy, their files, the cluster CA."""
    spec.add("/etc/kubernetes", Entry(0o755))
    spec.add("/etc/kubernetes/manifests", Entry(0o700))
    spec.add(f"{PKI}/ca.crt", Entry(0o644, content=PEM_CERT))
    spec.add("/etc/kubernetes/kubelet.conf", Entry(0o600, data=_kubeconfig(f"system:node:{spec.hostname}")))
    spec.add(
        "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
        Entry(
            0o600,
            content=(
                '[Service]\nEnvironment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/'
                'bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"\n'
                'Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"\n'
                "ExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS\n"
            ),
        ),
    )
    spec.add(
        "/usr/lib/systemd/system/kubelet.service",
        Entry(0o600, content="[Service]\nExecStart=/usr/bin/kubelet\n"),
    )
    spec.add("/var/lib/kubelet", Entry(0o700))
    spec.add("/var/lib/kubelet/pki", Entry(0o700))
    spec.add("/var/lib/kubelet/pki/kubelet.crt", Entry(0o644, content=PEM_CERT))
    spec.add("/var/lib/kubelet/pki/kubelet.key", Entry(0o600, content=PEM_KEY))
    spec.add(
        "/var/lib/kubelet/config.yaml",
        Entry(
            0o600,
            data={
                "apiVersion": "kubelet.config.k8s.io/v1beta1",
                "kind": "KubeletConfiguration",
                "authentication": {
                    "anonymous": {"enabled": False},
                    "webhook": {"enabled": True, "cacheTTL": "0s"},
                    "x509": {"clientCAFile": f"{PKI}/ca.crt"},
                },
                "authorization": {"mode": "Webhook"},
                "cgroupDriver": "systemd",
                "clusterDNS": ["10.96.0.10"],
                "clusterDomain": "cluster.local",
                "eventRecordQPS": 5,
                "featureGates": {"RotateKubeletServerCertificate": True},
                "makeIPTablesUtilChains": True,
                "podPidsLimit": 4096,
                "protectKernelDefaults": True,
                "readOnlyPort": 0,
                "rotateCertificates": True,
                "seccompDefault": True,
                "serverTLSBootstrap": True,
                "staticPodPath": "/etc/kubernetes/manifests",
                "streamingConnectionIdleTimeout": "4h0m0s",
                "tlsCertFile": "/var/lib/kubelet/pki/kubelet.crt",
                "tlsPrivateKeyFile": "/var/lib/kubelet/pki/kubelet.key",
                "tlsCipherSuites": CIPHERS.split(","),
            },
        ),
    )
    spec.add("/var/lib/kube-proxy", Entry(0o755))
    spec.add("/var/lib/kube-proxy/kubeconfig.conf", Entry(0o600, data=_kubeconfig("system:kube-proxy")))
    spec.add(
        "/var/lib/kube-proxy/config.conf",
        Entry(
            0o600,
            data={
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                "kind": "KubeProxyConfiguration",
                "bindAddress": "0.0.0.0",
                "clientConnection": {"kubeconfig": "/var/lib/kube-proxy/kubeconfig.conf"},
                "metricsBindAddress": "127.0.0.1:10249",
                "mode": "iptables",
            },
        ),
    )
    spec.add("/etc/cni/net.d", Entry(0o755))
    spec.add(
        "/etc/cni/net.d/10-bridge.conflist",
        Entry(0o600, content='{"cniVersion": "1.0.0", "name": "bridge"}\n'),
    )
    spec.components[Component.KUBELET] = Proc(
        pid=1201,
        argv=[
            "/usr/bin/kubelet",
            "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
            "--kubeconfig=/etc/kubernetes/kubelet.conf",
            "--config=/var/lib/kubelet/config.yaml",
            "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock",
            f"--node-ip={node_ip}",
            "--pod-infra-container-image=registry.k8s.io/pause:3.10",
        ],
    )
    spec.components[Component.PROXY] = Proc(
        pid=1301,
        argv=[
            "/usr/local/bin/kube-proxy",
            "--config=/var/lib/kube-proxy/config.conf",
            f"--hostname-override={spec.hostname}",
        ],
    )
    spec.other_processes.update(
        {
            1: b"/sbin/init\0splash\0",
            2: b"",  # a kernel thread
            777: b"/usr/bin/containerd\0",
            778: b"/bin/bash\0-c\0kube-apiserver --profiling=true\0",  # mentions a component, is not one
            779: b"\xff\xfe\x00binary\x00junk",
        }
    )


def control_plane_spec(hostname: str = "cp-1", node_ip: str = "10.0.0.10") -> NodeSpec:
    spec = NodeSpec(kind="control-plane", hostname=hostname)
    _node_common(spec, node_ip)
    for name in (
        "ca",
        "apiserver",
        "apiserver-kubelet-client",
        "apiserver-etcd-client",
        "front-proxy-ca",
        "front-proxy-client",
    ):
        spec.add(f"{PKI}/{name}.crt", Entry(0o644, content=PEM_CERT))
        spec.add(f"{PKI}/{name}.key", Entry(0o600, content=PEM_KEY))
    spec.add(f"{PKI}/sa.key", Entry(0o600, content=PEM_KEY))
    spec.add(
        f"{PKI}/sa.pub", Entry(0o644, content="-----BEGIN PUBLIC KEY-----\nsa\n-----END PUBLIC KEY-----\n")
    )
    for name in ("ca", "server", "peer", "healthcheck-client"):
        spec.add(f"{PKI}/etcd/{name}.crt", Entry(0o644, content=PEM_CERT))
        spec.add(f"{PKI}/etcd/{name}.key", Entry(0o600, content=PEM_KEY))
    for conf, user in (
        ("admin.conf", "kubernetes-admin"),
        ("super-admin.conf", "kubernetes-super-admin"),
        ("controller-manager.conf", "system:kube-controller-manager"),
        ("scheduler.conf", "system:kube-scheduler"),
    ):
        spec.add(f"/etc/kubernetes/{conf}", Entry(0o600, data=_kubeconfig(user)))
    spec.add(
        "/etc/kubernetes/audit-policy.yaml",
        Entry(
            0o600, data={"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "Metadata"}]}
        ),
    )
    spec.add(
        "/etc/kubernetes/enc/encryption-config.yaml",
        Entry(
            0o600,
            data={
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "EncryptionConfiguration",
                "resources": [
                    {"resources": ["secrets"], "providers": [{"aescbc": {"keys": []}}, {"identity": {}}]}
                ],
            },
        ),
    )
    spec.add(
        "/etc/kubernetes/admission/admission-config.yaml",
        Entry(0o600, data={"apiVersion": "apiserver.config.k8s.io/v1", "kind": "AdmissionConfiguration"}),
    )
    spec.add("/var/log/kubernetes/audit", Entry(0o700))
    spec.add("/var/lib/etcd", Entry(0o700, ETCD_UID, ETCD_UID))
    spec.add("/var/lib/etcd/member", Entry(0o700, ETCD_UID, ETCD_UID))
    spec.add("/var/lib/etcd/member/snap", Entry(0o700, ETCD_UID, ETCD_UID))
    spec.add("/var/lib/etcd/member/snap/db", Entry(0o600, ETCD_UID, ETCD_UID, content=b"\0" * 64))

    manifests = "/etc/kubernetes/manifests"
    for stem in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"):
        spec.add(f"{manifests}/{stem}.yaml", Entry(0o600, data={}))  # content written from the argv
    spec.components[Component.APISERVER] = Proc(
        pid=1001,
        manifest=f"{manifests}/kube-apiserver.yaml",
        argv=[
            "kube-apiserver",
            f"--advertise-address={node_ip}",
            "--allow-privileged=true",
            "--anonymous-auth=false",
            "--authorization-mode=Node,RBAC",
            f"--client-ca-file={PKI}/ca.crt",
            "--enable-admission-plugins=NodeRestriction,EventRateLimit,AlwaysPullImages,DenyServiceExternalIPs",
            "--admission-control-config-file=/etc/kubernetes/admission/admission-config.yaml",
            "--enable-bootstrap-token-auth=true",
            f"--etcd-cafile={PKI}/etcd/ca.crt",
            f"--etcd-certfile={PKI}/apiserver-etcd-client.crt",
            f"--etcd-keyfile={PKI}/apiserver-etcd-client.key",
            "--etcd-servers=https://127.0.0.1:2379",
            f"--kubelet-certificate-authority={PKI}/ca.crt",
            f"--kubelet-client-certificate={PKI}/apiserver-kubelet-client.crt",
            f"--kubelet-client-key={PKI}/apiserver-kubelet-client.key",
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
            "--profiling=false",
            "--audit-log-path=/var/log/kubernetes/audit/audit.log",
            "--audit-log-maxage=30",
            "--audit-log-maxbackup=10",
            "--audit-log-maxsize=100",
            "--audit-policy-file=/etc/kubernetes/audit-policy.yaml",
            "--encryption-provider-config=/etc/kubernetes/enc/encryption-config.yaml",
            "--request-timeout=60s",
            "--secure-port=6443",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={PKI}/sa.pub",
            f"--service-account-signing-key-file={PKI}/sa.key",
            "--service-account-lookup=true",
            "--service-account-extend-token-expiration=false",
            "--service-cluster-ip-range=10.96.0.0/12",
            f"--tls-cert-file={PKI}/apiserver.crt",
            f"--tls-private-key-file={PKI}/apiserver.key",
            f"--tls-cipher-suites={CIPHERS}",
        ],
    )
    spec.components[Component.CONTROLLER_MANAGER] = Proc(
        pid=1002,
        manifest=f"{manifests}/kube-controller-manager.yaml",
        argv=[
            "kube-controller-manager",
            "--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf",
            "--authorization-kubeconfig=/etc/kubernetes/controller-manager.conf",
            "--bind-address=127.0.0.1",
            f"--client-ca-file={PKI}/ca.crt",
            "--cluster-name=kubernetes",
            f"--cluster-signing-cert-file={PKI}/ca.crt",
            f"--cluster-signing-key-file={PKI}/ca.key",
            "--controllers=*,bootstrapsigner,tokencleaner",
            "--feature-gates=RotateKubeletServerCertificate=true",
            "--kubeconfig=/etc/kubernetes/controller-manager.conf",
            "--leader-elect=true",
            "--profiling=false",
            f"--root-ca-file={PKI}/ca.crt",
            f"--service-account-private-key-file={PKI}/sa.key",
            "--terminated-pod-gc-threshold=10",
            "--use-service-account-credentials=true",
        ],
    )
    spec.components[Component.SCHEDULER] = Proc(
        pid=1003,
        manifest=f"{manifests}/kube-scheduler.yaml",
        argv=[
            "kube-scheduler",
            "--authentication-kubeconfig=/etc/kubernetes/scheduler.conf",
            "--authorization-kubeconfig=/etc/kubernetes/scheduler.conf",
            "--bind-address=127.0.0.1",
            "--kubeconfig=/etc/kubernetes/scheduler.conf",
            "--leader-elect=true",
            "--profiling=false",
        ],
    )
    spec.components[Component.ETCD] = Proc(
        pid=1004,
        manifest=f"{manifests}/etcd.yaml",
        argv=[
            "etcd",
            f"--advertise-client-urls=https://{node_ip}:2379",
            f"--cert-file={PKI}/etcd/server.crt",
            "--client-cert-auth=true",
            "--auto-tls=false",
            "--data-dir=/var/lib/etcd",
            f"--initial-advertise-peer-urls=https://{node_ip}:2380",
            f"--initial-cluster={hostname}=https://{node_ip}:2380",
            f"--key-file={PKI}/etcd/server.key",
            f"--listen-client-urls=https://127.0.0.1:2379,https://{node_ip}:2379",
            f"--listen-peer-urls=https://{node_ip}:2380",
            f"--name={hostname}",
            f"--peer-cert-file={PKI}/etcd/peer.crt",
            "--peer-client-cert-auth=true",
            "--peer-auto-tls=false",
            f"--peer-key-file={PKI}/etcd/peer.key",
            f"--peer-trusted-ca-file={PKI}/etcd/ca.crt",
            f"--trusted-ca-file={PKI}/etcd/ca.crt",
        ],
    )
    return spec


def worker_spec(hostname: str = "worker-1", node_ip: str = "10.0.0.21") -> NodeSpec:
    spec = NodeSpec(kind="worker", hostname=hostname)
    _node_common(spec, node_ip)
    return spec


# ---- named misconfigurations --------------------------------------------------------------------

Mutation = Callable[[NodeSpec], None]


def _set(component: Component, flag: str, value: str) -> Mutation:
    return lambda spec: spec.set_flag(component, flag, value)


def _config(component: Component, key: str, value: Any) -> Mutation:
    return lambda spec: spec.set_config(component, key, value)


def _chmod(path: str, mode: int) -> Mutation:
    def apply(spec: NodeSpec) -> None:
        if path not in spec.files:
            raise MutationError(f"{path} is not on this {spec.kind} node")
        spec.files[path].mode = mode

    return apply


def _chown(path: str, uid: int) -> Mutation:
    def apply(spec: NodeSpec) -> None:
        if path not in spec.files:
            raise MutationError(f"{path} is not on this {spec.kind} node")
        spec.files[path].uid = spec.files[path].gid = uid

    return apply


def _stop(component: Component) -> Mutation:
    def apply(spec: NodeSpec) -> None:
        spec._proc(component).running = False

    return apply


def _external_etcd(spec: NodeSpec) -> None:
    spec.components.pop(Component.ETCD, None)
    for path in ["/var/lib/etcd", *spec.below("/var/lib/etcd"), "/etc/kubernetes/manifests/etcd.yaml"]:
        spec.files.pop(path, None)
    spec.set_flag(Component.APISERVER, "--etcd-servers", "https://etcd.example.internal:2379")


def _no_kube_proxy(spec: NodeSpec) -> None:
    spec.components.pop(Component.PROXY, None)
    for path in ["/var/lib/kube-proxy", *spec.below("/var/lib/kube-proxy")]:
        spec.files.pop(path, None)


def _garbage_kubelet_config(spec: NodeSpec) -> None:
    spec.files["/var/lib/kubelet/config.yaml"] = Entry(
        0o600, content="authentication:\n  anonymous: {enabled: fal"
    )


def _kubelet_no_config(spec: NodeSpec) -> None:
    """The kubelet runs from flags only: its legacy flag defaults apply (the file stays in place)."""
    spec.remove_flag(Component.KUBELET, "--config")


def _kubelet_config_defaults(spec: NodeSpec) -> None:
    """The kubelet config file omits the keys whose config-file default differs from the flag's."""
    for key in ("authentication.anonymous.enabled", "authorization.mode", "readOnlyPort"):
        spec.remove_config(Component.KUBELET, key)


KUBELET_DROP_INS = "/etc/kubernetes/kubelet.conf.d"


def kubelet_drop_in(name: str, data: dict[str, Any]) -> Mutation:
    """The kubelet also reads ``--config-dir``; ``name`` is a drop-in there (created on first use)."""

    def apply(spec: NodeSpec) -> None:
        spec.set_flag(Component.KUBELET, "--config-dir", KUBELET_DROP_INS)
        spec.add(f"{KUBELET_DROP_INS}/{name}", Entry(0o600, data={**_KUBELET_KIND, **data}))

    return apply


def _kubelet_garbage_drop_in(spec: NodeSpec) -> None:
    kubelet_drop_in("30-ok.conf", {})(spec)
    spec.add(f"{KUBELET_DROP_INS}/40-garbage.conf", Entry(0o600, content="readOnlyPort: [1"))


_KUBELET_KIND = {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration"}


def _etcd_env(flag: str, value: str) -> Mutation:
    """etcd's ``flag`` given as ``ETCD_*`` in its static pod instead of on the command line."""

    def apply(spec: NodeSpec) -> None:
        spec.remove_flag(Component.ETCD, flag)
        spec._proc(Component.ETCD).env["ETCD_" + flag.lstrip("-").upper().replace("-", "_")] = value

    return apply


AUTHZ_CONFIG = "/etc/kubernetes/authorization-config.yaml"
AUTHN_CONFIG = "/etc/kubernetes/authentication-config.yaml"


def _authorization_config(*types: str) -> Mutation:
    """The API server authorizes with an AuthorizationConfiguration file instead of the flag."""

    def apply(spec: NodeSpec) -> None:
        spec.remove_flag(Component.APISERVER, "--authorization-mode")
        spec.set_flag(Component.APISERVER, "--authorization-config", AUTHZ_CONFIG)
        authorizers: list[dict[str, Any]] = [{"type": t, "name": t.lower()} for t in types]
        for a in authorizers:
            if a["type"] == "Webhook":
                a["webhook"] = {"timeout": "3s", "subjectAccessReviewVersion": "v1", "failurePolicy": "Deny"}
        spec.add(
            AUTHZ_CONFIG,
            Entry(
                0o600,
                data={
                    "apiVersion": "apiserver.config.k8s.io/v1",
                    "kind": "AuthorizationConfiguration",
                    "authorizers": authorizers,
                },
            ),
        )

    return apply


def _authentication_config(anonymous: bool | None) -> Mutation:
    """An AuthenticationConfiguration file, with an anonymous section unless ``anonymous`` is None."""

    def apply(spec: NodeSpec) -> None:
        spec.remove_flag(Component.APISERVER, "--anonymous-auth")
        spec.set_flag(Component.APISERVER, "--authentication-config", AUTHN_CONFIG)
        data: dict[str, Any] = {
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "AuthenticationConfiguration",
        }
        if anonymous is not None:
            data["anonymous"] = {"enabled": anonymous, "conditions": [{"path": "/livez"}]}
        spec.add(AUTHN_CONFIG, Entry(0o600, data=data))

    return apply


MISCONFIGURATIONS: dict[str, Mutation] = {
    "apiserver-anonymous-auth": _set(Component.APISERVER, "--anonymous-auth", "true"),
    "apiserver-profiling": _set(Component.APISERVER, "--profiling", "true"),
    "apiserver-always-allow": _set(Component.APISERVER, "--authorization-mode", "AlwaysAllow"),
    "apiserver-token-auth-file": _set(Component.APISERVER, "--token-auth-file", "/etc/kubernetes/tokens.csv"),
    "apiserver-no-audit-log": lambda spec: spec.remove_flag(Component.APISERVER, "--audit-log-path"),
    "controller-manager-profiling": _set(Component.CONTROLLER_MANAGER, "--profiling", "true"),
    "scheduler-public-bind": _set(Component.SCHEDULER, "--bind-address", "0.0.0.0"),
    "etcd-no-client-cert-auth": _set(Component.ETCD, "--client-cert-auth", "false"),
    "etcd-data-dir-open": _chmod("/var/lib/etcd", 0o755),
    "etcd-data-dir-root-owned": _chown("/var/lib/etcd", ROOT_UID),
    "admin-conf-world-readable": _chmod("/etc/kubernetes/admin.conf", 0o644),
    "pki-key-foreign-owner": _chown(f"{PKI}/etcd/peer.key", INTRUDER_UID),
    "kubelet-anonymous-auth": _config(Component.KUBELET, "authentication.anonymous.enabled", True),
    "kubelet-anonymous-auth-flag": _set(Component.KUBELET, "--anonymous-auth", "true"),
    "kubelet-always-allow": _config(Component.KUBELET, "authorization.mode", "AlwaysAllow"),
    "kubelet-read-only-port": _config(Component.KUBELET, "readOnlyPort", 10255),
    "kubelet-config-world-readable": _chmod("/var/lib/kubelet/config.yaml", 0o644),
    "kubelet-config-garbage": _garbage_kubelet_config,
    "kubelet-no-config": _kubelet_no_config,
    "kubelet-config-defaults": _kubelet_config_defaults,
    "proxy-metrics-public": _config(Component.PROXY, "metricsBindAddress", "0.0.0.0:10249"),
    "scheduler-not-running": _stop(Component.SCHEDULER),
    "external-etcd": _external_etcd,
    "no-kube-proxy": _no_kube_proxy,
    # The kubelet's --config-dir: drop-ins override the --config file, later files override earlier.
    "kubelet-drop-in-anonymous": kubelet_drop_in(
        "50-anonymous.conf", {"authentication": {"anonymous": {"enabled": True}}}
    ),
    "kubelet-drop-in-read-only-port": kubelet_drop_in("10-port.conf", {"readOnlyPort": 10255}),
    "kubelet-drop-in-read-only-port-off": kubelet_drop_in("20-port.conf", {"readOnlyPort": 0}),
    "kubelet-drop-in-garbage": _kubelet_garbage_drop_in,
    # etcd settings from its static pod's environment instead of flags
    "etcd-env-client-cert-auth": _etcd_env("--client-cert-auth", "true"),
    "etcd-env-no-client-cert-auth": _etcd_env("--client-cert-auth", "false"),
    "etcd-env-data-dir": _etcd_env("--data-dir", "/var/lib/etcd"),
    # structured API server configuration files
    "apiserver-authorization-config": _authorization_config("Node", "RBAC"),
    "apiserver-authorization-config-webhook-only": _authorization_config("Webhook"),
    "apiserver-authorization-config-always-allow": _authorization_config("Node", "RBAC", "AlwaysAllow"),
    "apiserver-authentication-config-anonymous": _authentication_config(True),
    "apiserver-authentication-config-no-anonymous": _authentication_config(False),
    "apiserver-authentication-config-silent": _authentication_config(None),
}


# ---- platforms -------------------------------------------------------------------------------------


def _swap(value: Any, moves: Sequence[tuple[str, str]]) -> Any:
    """``value`` with every path that starts with a moved prefix rewritten (strings, lists, mappings)."""
    if isinstance(value, str):
        for old, new in moves:
            if old in value:
                return value.replace(old, new)
        return value
    if isinstance(value, list):
        return [_swap(v, moves) for v in value]
    if isinstance(value, dict):
        return {k: _swap(v, moves) for k, v in value.items()}
    return value


def relocate(spec: NodeSpec, moves: Sequence[tuple[str, str]]) -> NodeSpec:
    """Move files (and what names them: flags, manifests, config values) to a platform's layout."""
    files = dict(spec.files)
    spec.files = {}
    for path, entry in files.items():
        if entry.data is not None:
            entry.data = _swap(entry.data, moves)
        spec.add(_swap(path, moves), entry)
    for proc in spec.components.values():
        proc.argv = _swap(proc.argv, moves)
        proc.manifest = _swap(proc.manifest, moves)
    return spec


RKE2_MOVES = (
    ("/etc/kubernetes/manifests", "/var/lib/rancher/rke2/agent/pod-manifests"),
    ("/etc/kubernetes/pki", "/var/lib/rancher/rke2/server/tls"),
    ("/etc/kubernetes/super-admin.conf", "/var/lib/rancher/rke2/server/cred/super-admin.kubeconfig"),
    ("/etc/kubernetes/admin.conf", "/var/lib/rancher/rke2/server/cred/admin.kubeconfig"),
    ("/etc/kubernetes/scheduler.conf", "/var/lib/rancher/rke2/server/cred/scheduler.kubeconfig"),
    ("/etc/kubernetes/controller-manager.conf", "/var/lib/rancher/rke2/server/cred/controller.kubeconfig"),
    ("/etc/kubernetes/kubelet.conf", "/var/lib/rancher/rke2/agent/kubelet.kubeconfig"),
    ("/var/lib/etcd", "/var/lib/rancher/rke2/server/db/etcd"),
)


def rke2_server_spec(hostname: str = "rke2-1", node_ip: str = "10.0.0.30") -> NodeSpec:
    """An RKE2 server: kubeadm's components and files in RKE2's places; no kubelet service file."""
    spec = control_plane_spec(hostname, node_ip)
    for path in spec.below("/etc/systemd") + spec.below("/lib/systemd") + spec.below("/usr/lib/systemd"):
        spec.files.pop(path, None)
    relocate(spec, RKE2_MOVES)
    spec.kind = "rke2"
    return spec


K3S_TLS = "/var/lib/rancher/k3s/server/tls"
K3S_CONFIG = "/etc/rancher/k3s/config.yaml"


def k3s_server_spec(hostname: str = "k3s-1", node_ip: str = "10.0.0.40") -> NodeSpec:
    """A k3s server: one ``k3s server`` process runs every component; flags in its config file."""
    spec = NodeSpec(kind="k3s", hostname=hostname)
    spec.add("/etc/rancher/k3s", Entry(0o755))
    spec.add(
        K3S_CONFIG,
        Entry(
            0o600,
            data={
                "write-kubeconfig-mode": "0600",
                "kube-apiserver-arg": [
                    "audit-log-path=/var/lib/rancher/k3s/server/logs/audit.log",
                    "audit-log-maxage=30",
                    "audit-log-maxbackup=10",
                    "audit-log-maxsize=100",
                    "service-account-lookup=true",
                    "service-account-extend-token-expiration=false",
                ],
                "kube-controller-manager-arg": ["terminated-pod-gc-threshold=10"],
                "kubelet-arg": ["streaming-connection-idle-timeout=5m", "make-iptables-util-chains=true"],
            },
        ),
    )
    for directory in ("/var/lib/rancher/k3s", "/var/lib/rancher/k3s/server", "/var/lib/rancher/k3s/agent"):
        spec.add(directory, Entry(0o755))
    spec.add(K3S_TLS, Entry(0o700))
    for name in ("server-ca", "client-ca", "serving-kube-apiserver", "client-kube-apiserver"):
        spec.add(f"{K3S_TLS}/{name}.crt", Entry(0o644, content=PEM_CERT))
        spec.add(f"{K3S_TLS}/{name}.key", Entry(0o600, content=PEM_KEY))
    spec.add(f"{K3S_TLS}/service.key", Entry(0o600, content=PEM_KEY))
    spec.add("/var/lib/rancher/k3s/server/cred", Entry(0o700))
    for name in ("admin", "scheduler", "controller"):
        spec.add(
            f"/var/lib/rancher/k3s/server/cred/{name}.kubeconfig",
            Entry(0o600, data=_kubeconfig(name, "https://127.0.0.1:6444")),
        )
    for name in ("kubelet", "kubeproxy"):
        spec.add(
            f"/var/lib/rancher/k3s/agent/{name}.kubeconfig",
            Entry(0o600, data=_kubeconfig(name, "https://127.0.0.1:6443")),
        )
    spec.add("/var/lib/rancher/k3s/agent/client-ca.crt", Entry(0o644, content=PEM_CERT))
    spec.other_processes.update(
        {
            1: b"/sbin/init\0",
            2001: b"/usr/local/bin/k3s\0server\0--kube-apiserver-arg=request-timeout=60s\0",
            2002: b"/usr/bin/containerd\0",
        }
    )
    return spec


HOSTED = {
    "eks": (
        ("/var/lib/kubelet/config.yaml", "/etc/kubernetes/kubelet/kubelet-config.json"),
        ("/etc/kubernetes/kubelet.conf", "/var/lib/kubelet/kubeconfig"),
        ("/etc/kubernetes/bootstrap-kubelet.conf", "/var/lib/kubelet/bootstrap-kubeconfig"),
    ),
    "gke": (
        ("/var/lib/kubelet/config.yaml", "/home/kubernetes/kubelet-config.yaml"),
        ("/etc/kubernetes/kubelet.conf", "/var/lib/kubelet/kubeconfig"),
        ("/etc/kubernetes/pki/ca.crt", "/etc/srv/kubernetes/pki/ca-certificates.crt"),
    ),
    "aks": (
        ("/var/lib/kubelet/config.yaml", "/etc/default/kubeletconfig.json"),
        ("/etc/kubernetes/kubelet.conf", "/var/lib/kubelet/kubeconfig"),
        ("/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/certs/ca.crt"),
    ),
}
_HOSTED_MARKS = {
    "eks": "/etc/eks/bootstrap.sh",
    "gke": "/home/kubernetes/bin/kubelet",
    "aks": "/etc/kubernetes/azure.json",
}


def hosted_worker_spec(platform: str, hostname: str | None = None, node_ip: str = "10.0.0.50") -> NodeSpec:
    """A worker of a hosted cluster (``eks``, ``gke``, ``aks``): the kubelet's files in the
    provider's places, and the mark the provider's node image leaves."""
    spec = worker_spec(hostname or f"{platform}-worker-1", node_ip)
    relocate(spec, HOSTED[platform])
    spec.add(_HOSTED_MARKS[platform], Entry(0o755, content="#!/bin/sh\n"))
    spec.kind = platform
    return spec


PLATFORM_SPECS: dict[str, Callable[..., NodeSpec]] = {
    "k3s": k3s_server_spec,
    "rke2": rke2_server_spec,
    "eks": lambda hostname=None: hosted_worker_spec("eks", hostname),
    "gke": lambda hostname=None: hosted_worker_spec("gke", hostname),
    "aks": lambda hostname=None: hosted_worker_spec("aks", hostname),
}


# ---- misconfigurations derived from a rule --------------------------------------------------------


class _Remove:
    pass


REMOVE = _Remove()


def _number_text(reference: str, number: float) -> str:
    """A number written like ``reference`` (plain, or as a Go duration in seconds)."""
    try:
        float(reference)
    except ValueError:
        return f"{int(number)}s"
    return str(int(number)) if float(number).is_integer() else str(number)


def violating_value(test: Test, current: str | None) -> str | _Remove:
    """A value of the setting that breaks ``test`` (or REMOVE: unset it)."""
    value = test.value
    scalar = value if isinstance(value, str) else None
    listed = value if isinstance(value, list) else [v for v in (scalar or "").split(",") if v]
    op = test.op
    if op is Op.PRESENT:
        return REMOVE
    if op is Op.ABSENT:
        return current if current is not None else "true"
    if op is Op.EQ:
        low = (scalar or "").lower()
        if low in ("true", "false"):
            return "false" if low == "true" else "true"
        number = as_number(scalar or "")
        return _number_text(scalar or "", number + 1) if number is not None else BOGUS
    if op is Op.NE:
        return scalar or ""
    if op in (Op.IN, Op.CONTAINS, Op.SUBSET_OF):
        return BOGUS
    if op is Op.NOT_IN:
        return listed[0]
    if op is Op.NOT_CONTAINS:
        return f"{current},{listed[0]}" if current else listed[0]
    if op in (Op.GT, Op.GTE, Op.LT, Op.LTE):
        number = as_number(scalar or "")
        if number is None:
            raise MutationError(f"cannot violate {op} {scalar!r}")
        shift = {Op.GT: 0, Op.GTE: -1, Op.LT: 0, Op.LTE: 1}[op]
        return _number_text(scalar or "", number + shift)
    if op is Op.REGEX:
        for candidate in ("", BOGUS, "0", "false", "true", "-"):
            if re.search(scalar or "", candidate) is None:
                return candidate
        raise MutationError(f"no value found that escapes /{scalar}/")
    raise MutationError(f"unknown op {op}")  # pragma: no cover


def _yaml_value(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        return text


def _violate_setting(spec: NodeSpec, audit: SettingAudit) -> None:
    proc = spec.components.get(audit.component)
    if proc is None:
        raise MutationError(f"{audit.component} is not on this {spec.kind} node")
    current = spec.flag(audit.component, audit.flag) if audit.flag else None
    if current is None and audit.config_key:
        raw = spec.config_value(audit.component, audit.config_key)
        current = None if raw is None else str(raw).lower() if isinstance(raw, bool) else str(raw)
    # The default in effect: config_default when the component runs with a config file.
    default = audit.default
    if audit.config_default is not None and spec.config(audit.component) is not None:
        default = audit.config_default
    if current is None:
        current = default
    target = violating_value(audit.test, current)
    if isinstance(target, _Remove):
        if default is not None:
            raise MutationError(f"{audit.flag or audit.config_key} has a default: it cannot be unset")
        if audit.flag:
            spec.remove_flag(audit.component, audit.flag)
        if audit.config_key and spec.config(audit.component) is not None:
            spec.remove_config(audit.component, audit.config_key)
        return
    if audit.flag:
        spec.set_flag(audit.component, audit.flag, target)
    else:
        assert audit.config_key is not None
        spec.set_config(audit.component, audit.config_key, _yaml_value(target))


def spec_paths(spec: NodeSpec, ref: FileRef) -> list[str]:
    """The spec's files a file reference designates (the same order the engine tries them in)."""
    if ref.component is not None:
        named = spec.flag(ref.component, ref.flag) if ref.flag else None
        if named is None and ref.config_key:
            raw = spec.config_value(ref.component, ref.config_key)
            named = str(raw) if raw is not None else None
        if named is not None:
            return [named] if named in spec.files else []
    found: list[str] = []
    for pattern in ref.paths:
        found.extend(spec.matches(pattern))
        if found and not ref.all_matches:
            break
    return found


def _target_file(spec: NodeSpec, ref: FileRef) -> str:
    paths = spec_paths(spec, ref)
    if not paths:
        raise MutationError(f"no file of this {spec.kind} node matches {to_plain(ref)}")
    path = paths[0]
    if ref.recursive:
        below = [p for p in spec.below(path) if not spec.files[p].is_dir]
        path = below[-1] if below else path  # the deepest file: proves the walk goes down
    return path


def _violate_mode(spec: NodeSpec, audit: FileModeAudit) -> None:
    path = _target_file(spec, audit.file)
    allowed = int(audit.max_mode, 8)
    for bit in (0o004, 0o040, 0o002, 0o020, 0o001, 0o010, 0o100, 0o200, 0o400):
        if not bit & allowed:
            spec.files[path].mode |= bit
            return
    raise MutationError(f"mode {audit.max_mode} allows everything")


def _violate_owner(spec: NodeSpec, audit: FileOwnerAudit) -> None:
    path = _target_file(spec, audit.file)
    spec.files[path].uid = spec.files[path].gid = INTRUDER_UID


def violate(spec: NodeSpec, audit: Audit) -> None:
    """Change the spec so that ``audit`` fails."""
    if isinstance(audit, SettingAudit):
        _violate_setting(spec, audit)
    elif isinstance(audit, FileModeAudit):
        _violate_mode(spec, audit)
    elif isinstance(audit, FileOwnerAudit):
        _violate_owner(spec, audit)
    elif isinstance(audit, AnyOf):
        for sub in audit.audits:  # every alternative must fail
            violate(spec, sub)
    elif isinstance(audit, AllOf):
        problems = []
        # One failing part suffices. Take the last that applies here: rules put guards
        # ("--config is set") first and the substantive check last.
        for sub in reversed(audit.audits):
            trial = copy.deepcopy(spec)
            try:
                violate(trial, sub)
            except MutationError as exc:
                problems.append(str(exc))
                continue
            violate(spec, sub)
            return
        raise MutationError("; ".join(problems))


def violation_for(benchmark: Benchmark, rule_id: str) -> Mutation:
    rule = next((r for r in benchmark.rules if r.id == rule_id), None)
    if rule is None or rule.audit is None:
        raise MutationError(f"rule {rule_id} has no audit in {benchmark.id}")
    audit = rule.audit
    return lambda spec: violate(spec, audit)


def misconfigure(spec: NodeSpec, names: Iterable[str], benchmark: Benchmark | None = None) -> NodeSpec:
    """A copy of ``spec`` with the named misconfigurations applied (``rule:<id>`` derives one)."""
    out = copy.deepcopy(spec)
    for name in names:
        if name.startswith("rule:"):
            if benchmark is None:
                benchmark = load_benchmark("cis-1.12")
            violation_for(benchmark, name.removeprefix("rule:"))(out)
        elif name in MISCONFIGURATIONS:
            MISCONFIGURATIONS[name](out)
        else:
            raise MutationError(
                f"unknown misconfiguration {name!r}; known: {', '.join(sorted(MISCONFIGURATIONS))}"
            )
    return out


def build_tree(
    directory: Path,
    kind: str = "control-plane",
    misconfigurations: Sequence[str] = (),
    benchmark: Benchmark | None = None,
    hostname: str | None = None,
) -> HostTree:
    """Write a host tree of ``kind`` (``control-plane`` or ``worker``) into ``directory``."""
    makers: dict[str, Callable[..., NodeSpec]] = {
        "control-plane": control_plane_spec,
        "worker": worker_spec,
        **PLATFORM_SPECS,
    }
    if kind not in makers:
        raise ValueError(f"unknown node kind {kind!r}")
    spec = makers[kind](hostname) if hostname else makers[kind]()
    return misconfigure(spec, misconfigurations, benchmark).write(directory)
