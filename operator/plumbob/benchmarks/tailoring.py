"""A profile's tailoring of a benchmark, as handed from the operator to the node agent.

The operator resolves the profile (benchmark id from the cluster version, rule globs, rules
forced to manual, variable overrides) into a :class:`Tailoring` and passes it to each audit Pod
as JSON in ``PLUMBOB_TAILORING``. The agent needs no read access to profiles, and every node of
one scan audits exactly the same rule set. A frozen dataclass parsed by hand (:meth:`from_json`
refuses wrong types and unknown keys), so the agent starts without a validation library.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from plumbob.benchmarks.rules import Rule, Target, rule_matches


class TailoringError(ValueError):
    """A tailoring document with a missing or unknown key or a value of the wrong type."""


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TailoringError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


def _string_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise TailoringError(f"{where}: expected a mapping of strings, got {value!r}")
    return dict(value)


@dataclass(frozen=True, kw_only=True)
class Tailoring:
    benchmark: str
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    manual: dict[str, str] = dataclasses.field(default_factory=dict)  # rule glob → rationale
    variables: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Tailoring:
        """Parse :meth:`to_json`'s output; raises :class:`TailoringError` naming the bad key."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise TailoringError(f"not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise TailoringError(f"expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"benchmark", "include", "exclude", "manual", "variables"})
        if unknown:
            raise TailoringError(f"unknown keys: {', '.join(unknown)}")
        benchmark = data.get("benchmark")
        if not isinstance(benchmark, str) or not benchmark:
            raise TailoringError(f"benchmark: expected a benchmark id, got {benchmark!r}")
        return cls(
            benchmark=benchmark,
            include=_strings(data.get("include", ["*"]), "include"),
            exclude=_strings(data.get("exclude", []), "exclude"),
            manual=_string_map(data.get("manual", {}), "manual"),
            variables=_string_map(data.get("variables", {}), "variables"),
        )

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

    def problems(self, rules: Iterable[Rule], added: Iterable[Rule] = (), custom_rules: int = 0) -> list[str]:
        """Why this tailoring cannot give a meaningful result with ``rules``, naming the profile field.

        A pattern in ``include``, ``exclude`` or ``manual`` that matches no rule of the benchmark
        nor of an ``added`` rule set (the Pod Security Standards of ``spec.podSecurity``) points at
        nothing (a typo, or a rule of another benchmark), and a tailoring that selects no rule at
        all (no node rule, no cluster-level rule, no added rule and no custom rule) would check
        nothing. A profile of cluster-level rules only is fine: it scans no node.
        """
        rules, added = list(rules), list(added)
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
        selected = any(self.selects(r.id) for r in rules) or any(not self.excludes(r.id) for r in added)
        if not out and not selected and not custom_rules:
            out.append(
                f"spec.rules: include and exclude select no rule of {self.benchmark}, and the profile "
                "has no podSecurity and no customRules; nothing would be checked"
            )
        return out

    def node_rules(self, rules: Iterable[Rule]) -> list[Rule]:
        """The selected rules that are evaluated on nodes (cluster-level rules are not)."""
        return [r for r in rules if self.selects(r.id) and any(t is not Target.CLUSTER for t in r.targets)]
