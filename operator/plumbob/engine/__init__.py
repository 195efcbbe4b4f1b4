"""Pure rule evaluation: no I/O, no Kubernetes client, no clock.

- :mod:`~plumbob.engine.findings`: the output both share (:class:`Finding`, :class:`Status`,
  :class:`Evidence`; a finding can name an API object);
- :mod:`~plumbob.engine.node`: node audits (a node's facts in, findings out);
- :mod:`~plumbob.engine.cluster`: cluster-level rules (API objects in, findings out).
"""

from plumbob.engine.findings import AuditResult, Evidence, Finding, Source, Status
from plumbob.engine.node import NodeFacts, evaluate, node_roles

__all__ = ["AuditResult", "Evidence", "Finding", "NodeFacts", "Source", "Status", "evaluate", "node_roles"]
