"""Operator mode (``python -m plumbob operator``): check permissions, then run kopf with the handlers.

Replicas elect a leader through a Lease (:mod:`~plumbob.controller.leadership`); only the leader
reconciles. Before it watches anything, the operator asks the API server (SelfSubjectAccessReview) whether it
holds every permission it needs, and stops with the list of what is missing. Without that, a
missing permission shows up only as a watch that kopf retries and then gives up on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable

from plumbob.controller.kinds import CLUSTER_RULE_KINDS, CORE, OWN_INPUTS, OWN_OUTPUTS
from plumbob.names import GROUP

# PolicyReport / OpenReports exports (written only when the cluster serves these APIs).
EXPORTS = (
    ("wgpolicyk8s.io", "policyreports"),
    ("wgpolicyk8s.io", "clusterpolicyreports"),
    ("openreports.io", "reports"),
    ("openreports.io", "clusterreports"),
)


def required_permissions(namespace: str) -> list[tuple[str, str, str, str | None]]:
    """(verb, group, resource, namespace) the operator needs; the chart's RBAC grants exactly these."""
    needed: list[tuple[str, str, str, str | None]] = []
    for plural in OWN_INPUTS:
        needed += [(v, GROUP, plural, None) for v in ("get", "list", "watch")]
        needed.append(("patch", GROUP, f"{plural}/status", None))
    for plural in OWN_OUTPUTS:
        needed += [(v, GROUP, plural, None) for v in ("get", "list", "watch", "create", "delete")]
        needed.append(("patch", GROUP, f"{plural}/status", None))
    needed += [(v, GROUP, "namespacecompliancereports", None) for v in ("list", "create", "delete")]
    needed.append(("patch", GROUP, "namespacecompliancereports/status", None))
    needed += [(v, "", "nodes", None) for v in ("get", "list", "watch")]
    needed += [(v, "", plural, None) for plural in CORE for v in ("list", "watch")]
    needed += [(v, "batch", "jobs", None) for v in ("list", "watch")]
    needed += [(v, "batch", "jobs", namespace) for v in ("create", "delete", "deletecollection")]
    needed.append(("create", "", "events", None))
    needed.append(("get", "", "configmaps", namespace))  # the Kubernetes CVE data override
    for group, plural in EXPORTS:
        needed += [(v, group, plural, None) for v in ("get", "list", "create", "update", "delete")]
    needed += [(v, "coordination.k8s.io", "leases", namespace) for v in ("get", "create", "update")]
    # cluster-level rules read these (never secrets or configmaps); see steps/cluster/cluster_status.py
    for api_version, plural, _kind in CLUSTER_RULE_KINDS:
        group = api_version.rpartition("/")[0]
        needed += [(v, group, plural, None) for v in ("list", "watch")]
    return needed


def missing_permissions(namespace: str) -> list[str]:
    from plumbob.kube import Kube  # noqa: PLC0415 - heavy import

    kube = Kube()
    try:
        missing = []
        for verb, group, resource, ns in required_permissions(namespace):
            if not kube.allowed(verb, group, resource, ns):
                where = f" in namespace {ns}" if ns else " cluster-wide"
                missing.append(f"{verb} {resource}{'.' + group if group else ''}{where}")
        return missing
    finally:
        kube.api.close()  # type: ignore[no-untyped-call]  # the client leaves close() unannotated


def run(
    *,
    lease_seconds: int,
    liveness: str | None = None,
    verbose: bool = False,
    on_ready: Callable[[], object] | None = None,
) -> int:
    """Check permissions, set up telemetry, call ``on_ready`` (e.g. start the dashboard), run kopf."""
    import kopf  # noqa: PLC0415 - keep `plumbob --help` fast

    from plumbob import telemetry  # noqa: PLC0415
    from plumbob.kube import KubeError  # noqa: PLC0415

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("kopf.objects", "kopf.activities.probe", "kubernetes.client.rest", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    namespace = os.environ.get("PLUMBOB_NAMESPACE", "plumbob-system")
    try:
        missing = missing_permissions(namespace)
    except KubeError as exc:
        print(f"plumbob operator: cannot reach the API server to check permissions: {exc}", file=sys.stderr)
        return 3
    if missing:
        print(
            "plumbob operator: missing permissions (install the Helm chart's RBAC, or grant them):\n  "
            + "\n  ".join(missing),
            file=sys.stderr,
        )
        return 4
    tel = telemetry.configure("plumbob-operator", serve_metrics=True)
    from plumbob.controller import handlers  # noqa: PLC0415 - registers the handlers (after the SDK)

    handlers.LEASE_SECONDS = lease_seconds
    if on_ready is not None:
        on_ready()

    try:
        # standalone: kopf's own peering stays off; replicas elect a leader through a Lease instead
        # (docs/decisions/2026-12-02-leader-election-lease.md).
        asyncio.run(kopf.operator(clusterwide=True, standalone=True, liveness_endpoint=liveness))
    finally:
        tel.shutdown()
    return 0
