"""CIS pod checks (5.2.2-5.2.12, 5.4.1, 5.6.2): one pure function per check, named after what it finds.

Each takes a :class:`~plumbob.engine.cluster.inventory.Workload` (a Pod or a controller's pod
template) and returns the evidence of every violation; no evidence means the workload complies.
All container checks read initContainers, containers and ephemeralContainers.
"""

from __future__ import annotations

from collections.abc import Callable

from plumbob.benchmarks.rules import PodCheck
from plumbob.engine.cluster.containers import (
    container_violation,
    containers,
    pod_security,
    violation,
)
from plumbob.engine.cluster.inventory import Workload, dig, items, mapping, strings
from plumbob.engine.findings import Evidence

PodCheckFn = Callable[[Workload], list[Evidence]]


def privileged_containers(w: Workload) -> list[Evidence]:
    return [
        container_violation(w, c, "securityContext.privileged", True, "unset or false")
        for c in containers(w.spec)
        if c.security.get("privileged") is True
    ]


def _host_namespace(field: str) -> PodCheckFn:
    def check(w: Workload) -> list[Evidence]:
        if w.spec.get(field) is True:
            return [violation(w, f"spec.{field}", True, "unset or false")]
        return []

    check.__name__ = f"shared_{field}"
    return check


def escalating_containers(w: Workload) -> list[Evidence]:
    """allowPrivilegeEscalation unset counts as allowed (the kernel default for a non-root process)."""
    out = []
    for c in containers(w.spec):
        value = c.security.get("allowPrivilegeEscalation")
        if value is not False:
            found = "unset (allowed)" if value is None else value
            out.append(container_violation(w, c, "securityContext.allowPrivilegeEscalation", found, "false"))
    return out


def root_containers(w: Workload) -> list[Evidence]:
    """runAsNonRoot true (pod or container, container wins) and no runAsUser 0."""
    pod = pod_security(w)
    out = []
    for c in containers(w.spec):
        non_root = c.security.get("runAsNonRoot", pod.get("runAsNonRoot"))
        user = c.security.get("runAsUser", pod.get("runAsUser"))
        if user == 0:
            out.append(container_violation(w, c, "securityContext.runAsUser", 0, "unset or non-zero"))
        elif non_root is not True:
            found = "unset" if non_root is None else non_root
            out.append(
                container_violation(w, c, "securityContext.runAsNonRoot", found, "true (pod or container)")
            )
    return out


def _capabilities(c_security: object) -> tuple[set[str], set[str]]:
    caps = mapping(mapping(c_security).get("capabilities"))
    return {s.upper() for s in strings(caps.get("add"))}, {s.upper() for s in strings(caps.get("drop"))}


def net_raw_containers(w: Workload) -> list[Evidence]:
    out = []
    for c in containers(w.spec):
        add, drop = _capabilities(c.security)
        if add & {"NET_RAW", "CAP_NET_RAW", "ALL"}:
            found = ",".join(sorted(add))
            out.append(
                container_violation(w, c, "securityContext.capabilities.add", found, "no NET_RAW or ALL")
            )
        elif not drop & {"NET_RAW", "CAP_NET_RAW", "ALL"}:
            found = ",".join(sorted(drop)) or "unset"
            out.append(
                container_violation(w, c, "securityContext.capabilities.drop", found, "NET_RAW or ALL")
            )
    return out


def capable_containers(w: Workload) -> list[Evidence]:
    """Added capabilities, or ALL not dropped."""
    out = []
    for c in containers(w.spec):
        add, drop = _capabilities(c.security)
        if add:
            out.append(
                container_violation(w, c, "securityContext.capabilities.add", ",".join(sorted(add)), "empty")
            )
        elif "ALL" not in drop:
            found = ",".join(sorted(drop)) or "unset"
            out.append(container_violation(w, c, "securityContext.capabilities.drop", found, "contains ALL"))
    return out


def host_process_containers(w: Workload) -> list[Evidence]:
    out = []
    if dig(pod_security(w), "windowsOptions", "hostProcess") is True:
        out.append(violation(w, "spec.securityContext.windowsOptions.hostProcess", True, "unset or false"))
    out += [
        container_violation(w, c, "securityContext.windowsOptions.hostProcess", True, "unset or false")
        for c in containers(w.spec)
        if dig(c.security, "windowsOptions", "hostProcess") is True
    ]
    return out


def host_path_volumes(w: Workload) -> list[Evidence]:
    out = []
    for i, raw in enumerate(items(w.spec.get("volumes"))):
        v = mapping(raw)
        if "hostPath" in v:
            path = dig(v, "hostPath", "path")
            out.append(
                violation(
                    w, f"spec.volumes[{i}].hostPath", path, "no hostPath volume", f"volume {v.get('name')}"
                )
            )
    return out


def host_ports(w: Workload) -> list[Evidence]:
    out = []
    for c in containers(w.spec):
        for i, p in enumerate(items(c.body.get("ports"))):
            port = mapping(p).get("hostPort")
            if isinstance(port, int) and port != 0:
                out.append(container_violation(w, c, f"ports[{i}].hostPort", port, "unset or 0"))
    return out


def secrets_in_env(w: Workload) -> list[Evidence]:
    out = []
    for c in containers(w.spec):
        for i, e in enumerate(items(c.body.get("env"))):
            ref = dig(e, "valueFrom", "secretKeyRef")
            if ref is not None:
                found = f"{dig(ref, 'name')}/{dig(ref, 'key')}"
                out.append(
                    container_violation(
                        w, c, f"env[{i}].valueFrom.secretKeyRef", found, "secret mounted as a file"
                    )
                )
        for i, e in enumerate(items(c.body.get("envFrom"))):
            ref = mapping(e).get("secretRef")
            if ref is not None:
                out.append(
                    container_violation(
                        w, c, f"envFrom[{i}].secretRef", dig(ref, "name"), "secret mounted as a file"
                    )
                )
    return out


_SECCOMP_OK = ("RuntimeDefault", "Localhost")


def unconfined_seccomp(w: Workload) -> list[Evidence]:
    """seccompProfile.type RuntimeDefault or Localhost on the pod, or on every container."""
    pod_type = dig(pod_security(w), "seccompProfile", "type")
    out = []
    for c in containers(w.spec):
        kind = dig(c.security, "seccompProfile", "type") or pod_type
        if kind not in _SECCOMP_OK:
            out.append(
                container_violation(
                    w,
                    c,
                    "securityContext.seccompProfile.type",
                    kind or "unset",
                    "RuntimeDefault or Localhost",
                )
            )
    return out


POD_CHECKS: dict[PodCheck, PodCheckFn] = {
    PodCheck.PRIVILEGED: privileged_containers,
    PodCheck.HOST_PID: _host_namespace("hostPID"),
    PodCheck.HOST_IPC: _host_namespace("hostIPC"),
    PodCheck.HOST_NETWORK: _host_namespace("hostNetwork"),
    PodCheck.PRIVILEGE_ESCALATION: escalating_containers,
    PodCheck.ROOT: root_containers,
    PodCheck.NET_RAW: net_raw_containers,
    PodCheck.ADDED_CAPABILITIES: capable_containers,
    PodCheck.HOST_PROCESS: host_process_containers,
    PodCheck.HOST_PATH: host_path_volumes,
    PodCheck.HOST_PORT: host_ports,
    PodCheck.SECRETS_IN_ENV: secrets_in_env,
    PodCheck.SECCOMP: unconfined_seccomp,
}
