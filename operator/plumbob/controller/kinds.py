"""The kinds the operator watches, in one table; the permission check asks for list and watch
on each.

- Plumbob's own inputs (people's objects, whose status the operator writes) and outputs (scans
  and reports it creates), and Jobs (only the audit Jobs, by label), Nodes and Namespaces (names):
  the handlers register a kopf watch for each, store priming lists them, parsed into the store;
- the kinds cluster-level rules read (``engine.cluster.inventory.API_KINDS``): watched by the
  cluster step while a profile needs them (``steps.cluster.watches``), held in the store as
  compact JSON.
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
