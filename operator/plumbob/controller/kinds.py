"""The kinds the operator watches, in one table; the permission check asks for list and watch
on each.

- Plumbob's own inputs (people's objects, whose status the operator writes) and outputs (scans
  and reports it creates), and Jobs (only the audit Jobs, by label), Nodes and Namespaces (names):
  every replica follows each (``feeds``: LIST, then watch), parsed into the store (:data:`FED`);
- the kinds cluster-level rules read (``engine.cluster.inventory.API_KINDS``): watched by the
  cluster step while a profile needs them (``steps.cluster.watches``), held in the store as
  compact JSON.
"""

from __future__ import annotations

from typing import NamedTuple

from plumbob.controller.decisions.digests import LABEL_MANAGED_BY, MANAGER
from plumbob.engine.cluster.inventory import API_KINDS
from plumbob.names import GROUP, VERSION

# plural → kind
OWN_INPUTS = {
    "complianceprofiles": "ComplianceProfile",
    "complianceschedules": "ComplianceSchedule",
    "complianceexceptions": "ComplianceException",
    "clustercomplianceexceptions": "ClusterComplianceException",
}
OWN_OUTPUTS = {"compliancescans": "ComplianceScan", "compliancereports": "ComplianceReport"}
OWN_KINDS = OWN_INPUTS | OWN_OUTPUTS
CORE = {"nodes": "Node", "namespaces": "Namespace"}  # core/v1, cluster-wide
CLUSTER_RULE_KINDS = API_KINDS  # (apiVersion, plural, kind)


class Fed(NamedTuple):
    """A kind the store is fed, under ``plural``; ``labels`` selects which of its objects."""

    api_version: str
    plural: str
    kind: str
    labels: str | None = None


FED = (
    *(Fed(f"{GROUP}/{VERSION}", plural, kind) for plural, kind in OWN_KINDS.items()),
    Fed("batch/v1", "jobs", "Job", f"{LABEL_MANAGED_BY}={MANAGER}"),
    *(Fed("v1", plural, kind) for plural, kind in CORE.items()),
)
