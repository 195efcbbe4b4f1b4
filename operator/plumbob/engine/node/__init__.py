"""Node audits, pure: a node's facts in, findings out. No I/O, no Kubernetes client, no clock.

- :mod:`~plumbob.engine.node.facts`: the input snapshot (:class:`NodeFacts`);
- :mod:`~plumbob.engine.node.components`: each Kubernetes component's binaries, manifests, flags;
- :mod:`~plumbob.engine.node.flags`, :mod:`~plumbob.engine.node.values`: command lines and values
  read the way the components read them;
- :mod:`~plumbob.engine.node.checks`: one pure check per kind of audit;
- :mod:`~plumbob.engine.node.evaluation`: rules x facts → findings, and what to gather for given
  rules.
"""

from plumbob.engine.node.evaluation import evaluate, node_roles
from plumbob.engine.node.facts import NodeFacts

__all__ = ["NodeFacts", "evaluate", "node_roles"]
