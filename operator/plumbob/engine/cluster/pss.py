"""The Pod Security Standards (baseline and restricted) as data and pure checks.

Facts follow Kubernetes' pod-security-admission (``policy/check_*.go``): check ids, levels, the
policy version each check or variant starts at, the fields and the allowed values. The code is
our own. A check returns the evidence of every violation for a policy version ``(1, minor)``;
checks the version does not have return nothing (see :data:`PSS_CHECKS` for the first version).

Relaxations: from v1.25 the Windows-exempt checks (allowPrivilegeEscalation,
capabilities_restricted, seccompProfile_restricted) skip pods with ``spec.os.name: windows``;
from v1.35 pods in a user namespace (``spec.hostUsers: false``) may set any runAsNonRoot,
runAsUser and procMount (but not for procMount_restricted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from plumbob.benchmarks.rules import PssCheck
from plumbob.engine.cluster import pods
from plumbob.engine.cluster.containers import container_violation, containers, pod_security, violation
from plumbob.engine.cluster.inventory import Workload, dig, items, mapping, strings
from plumbob.engine.findings import Evidence, ObjectRef

Version = tuple[int, int]
LATEST: Version = (1, 10_000)


def parse_version(value: str | None, default: Version) -> Version:
    """``v1.31`` → (1, 31); ``latest`` → :data:`LATEST`; anything else → ``default``."""
    if value == "latest":
        return LATEST
    if value and value.startswith("v"):
        major, _, minor = value[1:].partition(".")
        if major.isdigit() and minor.isdigit():
            return int(major), int(minor)
    return default


def _windows(w: Workload, version: Version) -> bool:
    return version >= (1, 25) and dig(w.spec, "os", "name") == "windows"


def _userns(w: Workload, version: Version) -> bool:
    return version >= (1, 35) and w.spec.get("hostUsers") is False


def windows_host_process(w: Workload, version: Version) -> list[Evidence]:
    out = []
    if dig(pod_security(w), "windowsOptions", "hostProcess") is True:
        out.append(violation(w, "spec.securityContext.windowsOptions.hostProcess", True, "unset or false"))
    for c in containers(w.spec):
        if dig(c.security, "windowsOptions", "hostProcess") is True:
            out.append(
                container_violation(
                    w, c, "securityContext.windowsOptions.hostProcess", True, "unset or false"
                )
            )
    return out


def host_namespaces(w: Workload, version: Version) -> list[Evidence]:
    return [
        violation(w, f"spec.{f}", True, "unset or false")
        for f in ("hostNetwork", "hostPID", "hostIPC")
        if w.spec.get(f) is True
    ]


def privileged(w: Workload, version: Version) -> list[Evidence]:
    return pods.privileged_containers(w)  # the same check as CIS 5.2.2


BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
        "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    }
)  # fmt: skip


def capabilities_baseline(w: Workload, version: Version) -> list[Evidence]:
    out = []
    for c in containers(w.spec):
        added = strings(dig(c.security, "capabilities", "add"))
        bad = [a for a in added if a not in BASELINE_CAPABILITIES]
        if bad:
            expected = "a subset of " + ", ".join(sorted(BASELINE_CAPABILITIES))
            out.append(container_violation(w, c, "securityContext.capabilities.add", ",".join(bad), expected))
    return out


def host_path_volumes(w: Workload, version: Version) -> list[Evidence]:
    return [
        violation(w, f"spec.volumes[{i}].hostPath", dig(v, "hostPath", "path"), "unset")
        for i, v in enumerate(items(w.spec.get("volumes")))
        if mapping(v).get("hostPath") is not None
    ]


def host_ports(w: Workload, version: Version) -> list[Evidence]:
    return pods.host_ports(w)  # the same check as CIS 5.2.12


_APPARMOR_TYPES = ("RuntimeDefault", "Localhost")
_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def apparmor_profile(w: Workload, version: Version) -> list[Evidence]:
    out = []
    kind = dig(pod_security(w), "appArmorProfile", "type")
    if kind is not None and kind not in _APPARMOR_TYPES:
        out.append(
            violation(
                w, "spec.securityContext.appArmorProfile.type", kind, "RuntimeDefault, Localhost or unset"
            )
        )
    for c in containers(w.spec):
        kind = dig(c.security, "appArmorProfile", "type")
        if kind is not None and kind not in _APPARMOR_TYPES:
            out.append(
                container_violation(
                    w, c, "securityContext.appArmorProfile.type", kind, "RuntimeDefault, Localhost or unset"
                )
            )
    for key, value in w.pod_annotations.items():
        if key.startswith(_APPARMOR_ANNOTATION) and not (
            value in ("", "runtime/default") or value.startswith("localhost/")
        ):
            out.append(
                violation(w, f"metadata.annotations[{key}]", value, "runtime/default, localhost/* or empty")
            )
    return out


_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
_SELINUX_TYPES_1_31 = _SELINUX_TYPES | {"container_engine_t"}


def selinux_options(w: Workload, version: Version) -> list[Evidence]:
    allowed = _SELINUX_TYPES_1_31 if version >= (1, 31) else _SELINUX_TYPES
    expected_type = "unset or one of " + ", ".join(sorted(t for t in allowed if t))
    out: list[Evidence] = []

    def check(options: Mapping[str, Any], where: str, c: Any = None) -> None:
        for field in ("type", "user", "role"):
            value = options.get(field)
            bad = value not in allowed if field == "type" else value not in (None, "")
            if value is not None and bad:
                expected = expected_type if field == "type" else "unset"
                if c is None:
                    out.append(violation(w, f"{where}.{field}", value, expected))
                else:
                    out.append(
                        container_violation(w, c, f"securityContext.seLinuxOptions.{field}", value, expected)
                    )

    check(mapping(pod_security(w).get("seLinuxOptions")), "spec.securityContext.seLinuxOptions")
    for c in containers(w.spec):
        check(mapping(c.security.get("seLinuxOptions")), "", c)
    return out


def proc_mount(w: Workload, version: Version) -> list[Evidence]:
    if _userns(w, version):
        return []
    return proc_mount_restricted(w, version)


def proc_mount_restricted(w: Workload, version: Version) -> list[Evidence]:
    return [
        container_violation(w, c, "securityContext.procMount", c.security["procMount"], "unset or Default")
        for c in containers(w.spec)
        if c.security.get("procMount") not in (None, "Default")
    ]


_SECCOMP_ANNOTATIONS = (
    "seccomp.security.alpha.kubernetes.io/pod",
    "container.seccomp.security.alpha.kubernetes.io/",
)


def seccomp_profile_baseline(w: Workload, version: Version) -> list[Evidence]:
    out = []
    if version < (1, 19):
        for key, value in w.pod_annotations.items():
            annotated = key == _SECCOMP_ANNOTATIONS[0] or key.startswith(_SECCOMP_ANNOTATIONS[1])
            if annotated and not (
                value in ("runtime/default", "docker/default") or value.startswith("localhost/")
            ):
                out.append(
                    violation(
                        w,
                        f"metadata.annotations[{key}]",
                        value,
                        "runtime/default, docker/default, localhost/*",
                    )
                )
        return out
    kind = dig(pod_security(w), "seccompProfile", "type")
    if kind is not None and kind not in ("RuntimeDefault", "Localhost"):
        out.append(
            violation(
                w, "spec.securityContext.seccompProfile.type", kind, "RuntimeDefault, Localhost or unset"
            )
        )
    for c in containers(w.spec):
        kind = dig(c.security, "seccompProfile", "type")
        if kind is not None and kind not in ("RuntimeDefault", "Localhost"):
            out.append(
                container_violation(
                    w, c, "securityContext.seccompProfile.type", kind, "RuntimeDefault, Localhost or unset"
                )
            )
    return out


_SYSCTLS: tuple[tuple[Version, tuple[str, ...]], ...] = (
    ((1, 0), ("kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
              "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start")),
    ((1, 27), ("net.ipv4.ip_local_reserved_ports",)),
    ((1, 29), ("net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
               "net.ipv4.tcp_keepalive_probes")),
    ((1, 32), ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem")),
    ((1, 37), ("net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat")),
)  # fmt: skip


def allowed_sysctls(version: Version) -> frozenset[str]:
    return frozenset(name for since, names in _SYSCTLS if version >= since for name in names)


def sysctls(w: Workload, version: Version) -> list[Evidence]:
    allowed = allowed_sysctls(version)
    out = []
    for i, s in enumerate(items(pod_security(w).get("sysctls"))):
        name = mapping(s).get("name")
        if name not in allowed:
            out.append(
                violation(
                    w, f"spec.securityContext.sysctls[{i}].name", name, "one of " + ", ".join(sorted(allowed))
                )
            )
    return out


_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_HANDLERS = ("postStart", "preStop")


def host_probes_and_host_lifecycle(w: Workload, version: Version) -> list[Evidence]:
    out = []
    for c in containers(w.spec):
        places = [(p, c.body.get(p)) for p in _PROBES]
        places += [(f"lifecycle.{h}", dig(c.body, "lifecycle", h)) for h in _HANDLERS]
        for where, handler in places:
            for action in ("httpGet", "tcpSocket"):
                host = dig(handler, action, "host")
                if host not in (None, ""):
                    out.append(container_violation(w, c, f"{where}.{action}.host", host, "unset or empty"))
    return out


RESTRICTED_VOLUME_SOURCES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)


def restricted_volumes(w: Workload, version: Version) -> list[Evidence]:
    out = []
    for i, v in enumerate(items(w.spec.get("volumes"))):
        sources = [k for k, value in mapping(v).items() if k != "name" and value is not None]
        bad = [s for s in sources if s not in RESTRICTED_VOLUME_SOURCES]
        if bad:
            out.append(
                violation(
                    w,
                    f"spec.volumes[{i}]",
                    ",".join(bad),
                    "one of " + ", ".join(sorted(RESTRICTED_VOLUME_SOURCES)),
                )
            )
    return out


def allow_privilege_escalation(w: Workload, version: Version) -> list[Evidence]:
    if _windows(w, version):
        return []
    return [
        container_violation(
            w,
            c,
            "securityContext.allowPrivilegeEscalation",
            c.security.get("allowPrivilegeEscalation", "unset"),
            "false",
        )
        for c in containers(w.spec)
        if c.security.get("allowPrivilegeEscalation") is not False
    ]


def capabilities_restricted(w: Workload, version: Version) -> list[Evidence]:
    if _windows(w, version):
        return []
    out = []
    for c in containers(w.spec):
        drop = strings(dig(c.security, "capabilities", "drop"))
        add = [a for a in strings(dig(c.security, "capabilities", "add")) if a != "NET_BIND_SERVICE"]
        if "ALL" not in drop:
            out.append(
                container_violation(
                    w, c, "securityContext.capabilities.drop", ",".join(drop) or "unset", "contains ALL"
                )
            )
        if add:
            out.append(
                container_violation(
                    w, c, "securityContext.capabilities.add", ",".join(add), "unset or NET_BIND_SERVICE"
                )
            )
    return out


def run_as_non_root(w: Workload, version: Version) -> list[Evidence]:
    if _userns(w, version):
        return []
    out = []
    pod_value = pod_security(w).get("runAsNonRoot")
    if pod_value is False:
        out.append(violation(w, "spec.securityContext.runAsNonRoot", False, "true or unset"))
    for c in containers(w.spec):
        value = c.security.get("runAsNonRoot")
        if value is False:
            out.append(container_violation(w, c, "securityContext.runAsNonRoot", False, "true"))
        elif value is None and pod_value is not True:
            out.append(
                container_violation(w, c, "securityContext.runAsNonRoot", "unset", "true here or on the pod")
            )
    return out


def run_as_user(w: Workload, version: Version) -> list[Evidence]:
    if _userns(w, version):
        return []
    out = []
    if pod_security(w).get("runAsUser") == 0:
        out.append(violation(w, "spec.securityContext.runAsUser", 0, "unset or non-zero"))
    for c in containers(w.spec):
        if c.security.get("runAsUser") == 0:
            out.append(container_violation(w, c, "securityContext.runAsUser", 0, "unset or non-zero"))
    return out


def seccomp_profile_restricted(w: Workload, version: Version) -> list[Evidence]:
    if _windows(w, version):
        return []
    pod_type = dig(pod_security(w), "seccompProfile", "type")
    out = []
    if pod_type is not None and pod_type not in ("RuntimeDefault", "Localhost"):
        out.append(
            violation(w, "spec.securityContext.seccompProfile.type", pod_type, "RuntimeDefault or Localhost")
        )
    for c in containers(w.spec):
        kind = dig(c.security, "seccompProfile", "type")
        if kind is None and pod_type is None:
            out.append(
                container_violation(
                    w,
                    c,
                    "securityContext.seccompProfile.type",
                    "unset",
                    "RuntimeDefault or Localhost, here or on the pod",
                )
            )
        elif kind is not None and kind not in ("RuntimeDefault", "Localhost"):
            out.append(
                container_violation(
                    w, c, "securityContext.seccompProfile.type", kind, "RuntimeDefault or Localhost"
                )
            )
    return out


Check = Callable[[Workload, Version], list[Evidence]]


@dataclass(frozen=True)
class PssCheckDef:
    level: str  # baseline or restricted
    since: Version  # the first policy version with this check
    check: Check
    overrides: PssCheck | None = None  # the baseline check this one replaces in restricted


PSS_CHECKS: dict[PssCheck, PssCheckDef] = {
    PssCheck.WINDOWS_HOST_PROCESS: PssCheckDef("baseline", (1, 0), windows_host_process),
    PssCheck.HOST_NAMESPACES: PssCheckDef("baseline", (1, 0), host_namespaces),
    PssCheck.PRIVILEGED: PssCheckDef("baseline", (1, 0), privileged),
    PssCheck.CAPABILITIES_BASELINE: PssCheckDef("baseline", (1, 0), capabilities_baseline),
    PssCheck.HOST_PATH_VOLUMES: PssCheckDef("baseline", (1, 0), host_path_volumes),
    PssCheck.HOST_PORTS: PssCheckDef("baseline", (1, 0), host_ports),
    PssCheck.APPARMOR_PROFILE: PssCheckDef("baseline", (1, 0), apparmor_profile),
    PssCheck.SELINUX_OPTIONS: PssCheckDef("baseline", (1, 0), selinux_options),
    PssCheck.PROC_MOUNT: PssCheckDef("baseline", (1, 0), proc_mount),
    PssCheck.SECCOMP_PROFILE_BASELINE: PssCheckDef("baseline", (1, 0), seccomp_profile_baseline),
    PssCheck.SYSCTLS: PssCheckDef("baseline", (1, 0), sysctls),
    PssCheck.HOST_PROBES_AND_HOST_LIFECYCLE: PssCheckDef("baseline", (1, 34), host_probes_and_host_lifecycle),
    PssCheck.RESTRICTED_VOLUMES: PssCheckDef(
        "restricted", (1, 0), restricted_volumes, PssCheck.HOST_PATH_VOLUMES
    ),
    PssCheck.ALLOW_PRIVILEGE_ESCALATION: PssCheckDef("restricted", (1, 8), allow_privilege_escalation),
    PssCheck.CAPABILITIES_RESTRICTED: PssCheckDef(
        "restricted", (1, 22), capabilities_restricted, PssCheck.CAPABILITIES_BASELINE
    ),
    PssCheck.RUN_AS_NON_ROOT: PssCheckDef("restricted", (1, 0), run_as_non_root),
    PssCheck.RUN_AS_USER: PssCheckDef("restricted", (1, 23), run_as_user),
    PssCheck.SECCOMP_PROFILE_RESTRICTED: PssCheckDef(
        "restricted", (1, 19), seccomp_profile_restricted, PssCheck.SECCOMP_PROFILE_BASELINE
    ),
    PssCheck.PROC_MOUNT_RESTRICTED: PssCheckDef(
        "restricted", (1, 35), proc_mount_restricted, PssCheck.PROC_MOUNT
    ),
}


def checks_for(level: str, version: Version) -> list[PssCheck]:
    """The checks a level has at a policy version, with overridden baseline checks replaced."""
    levels = ("baseline",) if level == "baseline" else ("baseline", "restricted")
    chosen = [c for c, d in PSS_CHECKS.items() if d.level in levels and version >= d.since]
    replaced = {PSS_CHECKS[c].overrides for c in chosen} if level == "restricted" else set()
    return [c for c in chosen if c not in replaced]


def pss_violations(check: PssCheck, w: Workload, version: Version) -> list[Evidence]:
    definition = PSS_CHECKS[check]
    if version < definition.since:
        return []
    return definition.check(w, version)


PSS_LABEL_PREFIX = "pod-security.kubernetes.io/"
ENFORCE_VERSION = PSS_LABEL_PREFIX + "enforce-version"


def namespace_pss_labels(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k.startswith(PSS_LABEL_PREFIX)}


LEVELS = ("privileged", "baseline", "restricted")  # from least to most strict


def level_met(w: Workload, version: Version) -> str:
    """The strictest level ``w`` meets at ``version``: restricted, baseline or privileged."""
    for level in ("restricted", "baseline"):
        if not any(pss_violations(c, w, version) for c in checks_for(level, version)):
            return level
    return "privileged"


def namespace_levels(
    workloads: Iterable[Workload], namespaces: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """Per namespace (name → labels), the strictest level every one of its workloads meets, at the
    namespace's enforce-version label (else the latest policy): the level it could enforce today."""
    versions = {ns: parse_version(labels.get(ENFORCE_VERSION), LATEST) for ns, labels in namespaces.items()}
    met = (
        (w.meta.ref, level_met(w, versions[w.meta.namespace or ""]))
        for w in workloads
        if w.meta.namespace in versions
    )
    return lowest_levels(namespaces, met)


def lowest_levels(namespaces: Iterable[str], levels: Iterable[tuple[ObjectRef, str]]) -> dict[str, str]:
    """Per namespace, the least strict of its workloads' levels (``restricted`` when none is given)."""
    out = dict.fromkeys(namespaces, "restricted")
    for ref, level in levels:
        ns = ref.namespace or ""
        if ns in out and LEVELS.index(level) < LEVELS.index(out[ns]):
            out[ns] = level
    return out
