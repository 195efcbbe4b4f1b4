"""The kinds the operator watches, in one table: the handlers register a watch for each, store
priming lists them, and the permission check asks for list and watch on each.

- Plumbob's own inputs (people's objects, whose status the operator writes) and outputs (scans
  and reports it creates), parsed into the store;
- Jobs (only the audit Jobs, by label), Nodes and Namespaces (names), parsed into the store;
- the kinds cluster-level rules read (``engine.cluster.inventory.API_KINDS``), held in the store
  as compact JSON for the cluster step.
"""

from __future__ import annotations

from plumbob.engine.cluster.inventory import API_KINDS

OWN_INPUTS = (
    "complianceprofiles",
    "complianceschedules",
    "complianceexceptions",
    "clustercomplianceexceptions",
)
OWN_OUTPUTS = ("compliancescans", "compliancereports")
CORE = ("nodes", "namespaces")  # core/v1, cluster-wide
CLUSTER_RULE_KINDS = API_KINDS  # (apiVersion, plural, kind)
