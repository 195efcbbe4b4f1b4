"""Pure rule evaluation: node facts in, findings out. No I/O, no Kubernetes client, no clock.

- :mod:`~plumbob.engine.facts`: the input snapshot (:class:`NodeFacts`);
- :mod:`~plumbob.engine.findings`: the output (:class:`Finding`, :class:`Status`, :class:`Evidence`);
- :mod:`~plumbob.engine.checks`: one pure check per kind of audit;
- :mod:`~plumbob.engine.evaluation`: rules x facts → findings, and what to gather for given rules.
"""

from plumbob.engine.evaluation import evaluate, node_roles
from plumbob.engine.facts import NodeFacts
from plumbob.engine.findings import AuditResult, Evidence, Finding, Source, Status

__all__ = ["AuditResult", "Evidence", "Finding", "NodeFacts", "Source", "Status", "evaluate", "node_roles"]
