"""The Kubernetes node components the engine knows: how to recognise them and where they keep things.

Facts, not policy: the binary names a component runs as, the static pod manifests kubeadm and
friends write for it, the flag that names its config file, and the node role it implies. The
agent uses this to find components; the engine uses it to name them and to read their settings.
Known locations follow the public layouts of kubeadm, RKE2, k3s and the distribution packages.
"""

from __future__ import annotations

from typing import NamedTuple

from plumbob.benchmarks.rules import Component, Target


class ComponentInfo(NamedTuple):
    component: Component
    name: str  # how people call it: the binary name
    binaries: tuple[str, ...]  # argv[0] basenames; also recognised as ``hyperkube <name>``
    role: Target
    manifests: tuple[str, ...] = ()  # known static pod manifest locations
    config_flag: str | None = None  # the flag naming its config file, if it reads one
    env_prefix: str | None = None  # flags may also be given as environment variables (etcd: ETCD_)

    def env_name(self, flag: str) -> str | None:
        """The environment variable that carries ``flag`` (``--client-cert-auth`` → ETCD_CLIENT_CERT_AUTH)."""
        if self.env_prefix is None:
            return None
        return self.env_prefix + flag.lstrip("-").upper().replace("-", "_")


_MANIFEST_DIRS = ("/etc/kubernetes/manifests", "/var/lib/rancher/rke2/agent/pod-manifests")


def _manifests(stem: str) -> tuple[str, ...]:
    return tuple(f"{d}/{stem}.{ext}" for d in _MANIFEST_DIRS for ext in ("yaml", "yml", "manifest"))


COMPONENTS: dict[Component, ComponentInfo] = {
    info.component: info
    for info in (
        ComponentInfo(
            Component.APISERVER,
            "kube-apiserver",
            ("kube-apiserver", "apiserver"),
            Target.CONTROL_PLANE,
            _manifests("kube-apiserver"),
        ),
        ComponentInfo(
            Component.CONTROLLER_MANAGER,
            "kube-controller-manager",
            ("kube-controller-manager", "controller-manager"),
            Target.CONTROL_PLANE,
            _manifests("kube-controller-manager"),
        ),
        ComponentInfo(
            Component.SCHEDULER,
            "kube-scheduler",
            ("kube-scheduler", "scheduler"),
            Target.CONTROL_PLANE,
            _manifests("kube-scheduler"),
        ),
        ComponentInfo(
            Component.ETCD,
            "etcd",
            ("etcd",),
            Target.ETCD,
            _manifests("etcd"),
            config_flag="--config-file",
            env_prefix="ETCD_",
        ),
        ComponentInfo(Component.KUBELET, "kubelet", ("kubelet",), Target.WORKER, config_flag="--config"),
        ComponentInfo(
            Component.PROXY, "kube-proxy", ("kube-proxy", "proxy"), Target.WORKER, config_flag="--config"
        ),
    )
}


def component_of_argv(argv: tuple[str, ...]) -> Component | None:
    """Which component a command line runs, if any: ``kube-apiserver …`` or ``hyperkube apiserver …``."""
    if not argv:
        return None
    exe = argv[0].rsplit("/", 1)[-1]
    if exe == "hyperkube" and len(argv) > 1:
        exe = argv[1]
        if exe.startswith("-"):
            return None
    for info in COMPONENTS.values():
        # Short aliases (``apiserver``, ``proxy``) only count behind hyperkube.
        if exe == info.binaries[0] or (argv[0].endswith("hyperkube") and exe in info.binaries):
            return info.component
    return None


class Embedding(NamedTuple):
    """A distribution that runs several components inside one process (k3s).

    ``binary subcommand`` (``k3s server``) runs ``subcommands[subcommand]``; each component's own
    flags are passed through ``arg_flags[component]`` (``--kube-apiserver-arg=profiling=false``,
    repeatable), on the command line or as the same key in ``config_file`` (a YAML list). etcd is
    embedded only when ``etcd_when`` is set (a flag, or the same key true in the config file).
    """

    binary: str
    subcommands: dict[str, tuple[Component, ...]]
    arg_flags: dict[Component, str]
    config_file: str
    etcd_when: str


EMBEDDINGS: dict[str, Embedding] = {
    "k3s": Embedding(
        binary="k3s",
        subcommands={
            "server": (
                Component.APISERVER,
                Component.CONTROLLER_MANAGER,
                Component.SCHEDULER,
                Component.KUBELET,
                Component.PROXY,
            ),
            "agent": (Component.KUBELET, Component.PROXY),
        },
        arg_flags={
            Component.APISERVER: "--kube-apiserver-arg",
            Component.CONTROLLER_MANAGER: "--kube-controller-manager-arg",
            Component.SCHEDULER: "--kube-scheduler-arg",
            Component.KUBELET: "--kubelet-arg",
            Component.PROXY: "--kube-proxy-arg",
            Component.ETCD: "--etcd-arg",
        },
        config_file="/etc/rancher/k3s/config.yaml",
        etcd_when="--cluster-init",
    )
}


def embedding_of_argv(argv: tuple[str, ...]) -> tuple[Embedding, tuple[Component, ...]] | None:
    """The embedding a command line runs (``k3s server …``) and the components inside it."""
    if len(argv) < 2:
        return None
    embedding = EMBEDDINGS.get(argv[0].rsplit("/", 1)[-1])
    if embedding is None or argv[1] not in embedding.subcommands:
        return None
    return embedding, embedding.subcommands[argv[1]]
