"""Operator mode (``python -m plumbob operator``): check permissions, then run kopf with the handlers.

Before it watches anything, the operator asks the API server (SelfSubjectAccessReview) whether it
holds every permission it needs, and stops with the list of what is missing. Without that, a
missing permission shows up only as a watch that kopf retries and then gives up on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from plumbob.api.common import GROUP
from plumbob.engine.cluster.inventory import API_KINDS

OWN_INPUTS = (
    "complianceprofiles",
    "complianceschedules",
    "complianceexceptions",
    "clustercomplianceexceptions",
)
OWN_OUTPUTS = ("compliancescans", "compliancereports")


def required_permissions(namespace: str) -> list[tuple[str, str, str, str | None]]:
    """(verb, group, resource, namespace) the operator needs; the chart's RBAC grants exactly these."""
    needed: list[tuple[str, str, str, str | None]] = []
    for plural in OWN_INPUTS:
        needed += [(v, GROUP, plural, None) for v in ("get", "list", "watch")]
        needed.append(("patch", GROUP, f"{plural}/status", None))
    for plural in OWN_OUTPUTS:
        needed += [(v, GROUP, plural, None) for v in ("get", "list", "watch", "create", "delete")]
        needed.append(("patch", GROUP, f"{plural}/status", None))
    needed += [(v, "", "nodes", None) for v in ("get", "list", "watch")]
    needed += [(v, "batch", "jobs", None) for v in ("list", "watch")]
    needed += [(v, "batch", "jobs", namespace) for v in ("create", "delete")]
    needed.append(("create", "", "events", None))
    # cluster-level rules read these (never secrets or configmaps); see controller/cluster_status.py
    for api_version, plural, _kind in API_KINDS:
        group = api_version.rpartition("/")[0]
        needed.append(("list", group, plural, None))
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


def run(*, peering: str | None = None, liveness: str | None = None, verbose: bool = False) -> int:
    import kopf  # noqa: PLC0415 - keep `plumbob --help` fast

    import plumbob.controller.handlers  # noqa: F401, PLC0415 - registers the handlers
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
    asyncio.run(
        kopf.operator(
            clusterwide=True,
            standalone=peering is None,
            peering_name=peering,
            liveness_endpoint=liveness,
        )
    )
    return 0
