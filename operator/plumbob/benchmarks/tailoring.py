"""A profile's tailoring of a benchmark, as handed from the operator to the node agent.

The operator resolves the profile (benchmark id from the cluster version, rule globs, rules
forced to manual, variable overrides) into a :class:`Tailoring` and passes it to each audit Pod
as JSON in ``PLUMBOB_TAILORING``. The agent needs no read access to profiles, and every node of
one scan audits exactly the same rule set.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from plumbob.benchmarks.rules import Rule, Target, rule_matches


class Tailoring(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    benchmark: str
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    manual: dict[str, str] = Field(default_factory=dict, description="rule glob → rationale")
    variables: dict[str, str] = Field(default_factory=dict)

    def selects(self, rule_id: str) -> bool:
        def hit(pattern: str) -> bool:
            return rule_matches(rule_id, pattern)

        return any(hit(p) for p in self.include) and not any(hit(p) for p in self.exclude)

    def excludes(self, rule_id: str) -> bool:
        """Whether an ``exclude`` glob leaves the rule out (rules of an added rule set ignore ``include``)."""
        return any(rule_matches(rule_id, p) for p in self.exclude)

    def manual_rationale(self, rule_id: str) -> str | None:
        for pattern, rationale in self.manual.items():
            if rule_matches(rule_id, pattern):
                return rationale
        return None

    def problems(self, rules: Iterable[Rule], added: Iterable[Rule] = ()) -> list[str]:
        """Why this tailoring cannot give a meaningful result with ``rules``, naming the profile field.

        A pattern in ``include``, ``exclude`` or ``manual`` that matches no rule of the benchmark
        nor of an ``added`` rule set (the Pod Security Standards of ``spec.podSecurity``) points at
        nothing (a typo, or a rule of another benchmark), and a tailoring that selects no node rule
        would check nothing.
        """
        rules = list(rules)
        ids = [r.id for r in rules] + [r.id for r in added]

        def hits(pattern: str) -> bool:
            return any(rule_matches(i, pattern) for i in ids)

        out = []
        for field, patterns in (
            ("include", self.include),
            ("exclude", self.exclude),
            ("manual", self.manual),
        ):
            for i, pattern in enumerate(patterns):
                if not hits(pattern):
                    where = f"spec.rules.{field}[{i}]" + (".rule" if field == "manual" else "")
                    names = self.benchmark + (" or the Pod Security Standards" if added else "")
                    out.append(f"{where}: {pattern!r} matches no rule of {names}")
        if not out and not self.node_rules(rules):
            out.append(
                f"spec.rules: include and exclude select no node rule of {self.benchmark}; "
                "nothing would be checked"
            )
        return out

    def node_rules(self, rules: Iterable[Rule]) -> list[Rule]:
        """The selected rules that are evaluated on nodes (cluster-level rules are not)."""
        return [r for r in rules if self.selects(r.id) and any(t is not Target.CLUSTER for t in r.targets)]
