"""The cluster step: cluster-level rules evaluated from API objects into each profile's
cluster-level ComplianceReport (:mod:`.cluster_status`), their drift Events
(:mod:`.cluster_drift`) and one NamespaceComplianceReport per namespace
(:mod:`.namespace_reports`), all from one evaluation.
"""
