"""A profile's tailoring of a benchmark, as handed from the operator to the node agent.

The operator resolves the profile (benchmark id from the cluster version, rule globs, rules
forced to manual, variable overrides) into a :class:`Tailoring` and passes it to each audit Pod
as JSON in ``PLUMBOB_TAILORING``. The agent needs no read access to profiles, and every node of
one scan audits exactly the same rule set.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from plumbob.benchmarks.rules import Rule, Target


class Tailoring(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    benchmark: str
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    manual: dict[str, str] = Field(default_factory=dict, description="rule glob → rationale")
    variables: dict[str, str] = Field(default_factory=dict)

    def selects(self, rule_id: str) -> bool:
        def hit(pattern: str) -> bool:
            return fnmatch.fnmatchcase(rule_id, pattern) or rule_id.startswith(pattern + ".")

        return any(hit(p) for p in self.include) and not any(hit(p) for p in self.exclude)

    def excludes(self, rule_id: str) -> bool:
        """Whether an ``exclude`` glob leaves the rule out (rules of an added rule set ignore ``include``)."""
        return any(fnmatch.fnmatchcase(rule_id, p) or rule_id.startswith(p + ".") for p in self.exclude)

    def manual_rationale(self, rule_id: str) -> str | None:
        for pattern, rationale in self.manual.items():
            if fnmatch.fnmatchcase(rule_id, pattern):
                return rationale
        return None

    def node_rules(self, rules: Iterable[Rule]) -> list[Rule]:
        """The selected rules that are evaluated on nodes (cluster-level rules are not)."""
        return [r for r in rules if self.selects(r.id) and any(t is not Target.CLUSTER for t in r.targets)]
