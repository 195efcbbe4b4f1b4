"""Pure evaluation of cluster-level rules: API objects in, findings out. No Kubernetes client.

- :mod:`~plumbob.engine.cluster.inventory`: the input (plain API objects parsed once);
- :mod:`~plumbob.engine.cluster.rbac`: who can do what (rules x bindings → subjects);
- :mod:`~plumbob.engine.cluster.containers`, :mod:`~plumbob.engine.cluster.pods`: CIS pod checks;
- :mod:`~plumbob.engine.cluster.pss`: the Pod Security Standards, versioned;
- :mod:`~plumbob.engine.cluster.objects_checks`: roles, service accounts, namespaces;
- :mod:`~plumbob.engine.cluster.evidence`: what a person needs for the rules left manual;
- :mod:`~plumbob.engine.cluster.holders`: violations and expected holders;
- :mod:`~plumbob.engine.cluster.evaluation`: rules x inventory → findings;
- :mod:`~plumbob.engine.cluster.custom`: the profile's own CEL rules.
"""

from plumbob.engine.cluster.evaluation import ClusterSettings, evaluate_cluster
from plumbob.engine.cluster.holders import Holders
from plumbob.engine.cluster.inventory import Inventory

__all__ = ["ClusterSettings", "Holders", "Inventory", "evaluate_cluster"]
