"""The kubelet's two sets of defaults, on the shipped rules that depend on them (pure: no files).

A kubelet started with ``--config`` gives a key the config file omits its KubeletConfiguration
default (``config_default``); one started without ``--config`` keeps the legacy flag default
(``default``). For each of 4.2.1 (anonymous auth), 4.2.2 (authorization mode) and 4.2.4
(read-only port):

- without --config: flag absent → the flag default (unsafe) fails, with evidence naming it; a safe
  flag passes; a config key is not consulted (there is no config file);
- with --config: key absent → the config-file default (safe) passes, with evidence naming it; the
  key decides when present; a flag overrides the key either way; an unreadable config file is an
  error unless the flag decides;
- the evidence is one item (the setting), the reason one sentence.

Also: the model (``config_default`` optional, needs a ``config_key``) and reason de-duplication in
``all``/``any`` combinations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import ValidationError

from plumbob.benchmarks.catalog import load_benchmark
from plumbob.benchmarks.rules import Component, Rule, SettingAudit
from plumbob.benchmarks.validation import validated
from plumbob.engine.findings import Evidence, Source, Status
from plumbob.engine.node.checks import Context, Outcome, audit_outcome, combined_outcome
from plumbob.engine.node.evaluation import evaluate_rule
from plumbob.engine.node.facts import ConfigFile, NodeFacts, Process

RULES = {r.id: r for r in load_benchmark("cis-1.12").rules}
CONFIG_PATH = "/var/lib/kubelet/config.yaml"
FLAG_DEFAULT = "kubelet flag default (no --config)"
CONFIG_DEFAULT = "kubelet config-file default (running with --config)"


@dataclass(frozen=True)
class Case:
    rule_id: str
    flag: str
    key: str
    safe: Any  # as written in a config file
    unsafe: Any
    flag_default: str
    config_default: str

    def config(self, value: Any) -> dict[str, Any]:
        """A config document with ``key`` set to ``value`` (nested by the dots)."""
        *parents, last = self.key.split(".")
        data: dict[str, Any] = {last: value}
        for part in reversed(parents):
            data = {part: data}
        return {"kind": "KubeletConfiguration", **data}


CASES = [
    Case("4.2.1", "--anonymous-auth", "authentication.anonymous.enabled", False, True, "true", "false"),
    Case(
        "4.2.2",
        "--authorization-mode",
        "authorization.mode",
        "Webhook",
        "AlwaysAllow",
        "AlwaysAllow",
        "Webhook",
    ),
    Case("4.2.4", "--read-only-port", "readOnlyPort", 0, 10255, "10255", "0"),
]
PARAMS = [pytest.param(c, id=c.rule_id) for c in CASES]


def text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def facts(*flags: str, config: dict[str, Any] | None = None, error: str | None = None) -> NodeFacts:
    """A kubelet with ``flags``; with a config document (or error), it runs with ``--config``."""
    with_config = config is not None or error is not None
    argv = ("/usr/bin/kubelet", *((f"--config={CONFIG_PATH}",) if with_config else ()), *flags)
    configs = (
        (
            ConfigFile(
                component=Component.KUBELET,
                path=CONFIG_PATH,
                located_by="flag --config of pid 8",
                data=config,
                error=error,
            ),
        )
        if with_config
        else ()
    )
    return NodeFacts(processes=(Process(pid=8, component=Component.KUBELET, argv=argv),), configs=configs)


def outcome(case: Case, node: NodeFacts) -> Outcome:
    audit = RULES[case.rule_id].audit
    assert audit is not None
    return audit_outcome(audit, node, Context())


def only(o: Outcome) -> Evidence:
    [evidence] = o.evidence
    return evidence


# ---- the rules' shape ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", PARAMS)
def test_rule_is_one_setting_with_both_defaults(case: Case) -> None:
    audit = RULES[case.rule_id].audit
    assert isinstance(audit, SettingAudit)
    assert (audit.flag, audit.config_key) == (case.flag, case.key)
    assert (audit.default, audit.config_default) == (case.flag_default, case.config_default)


# ---- without --config ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", PARAMS)
def test_no_config_flag_absent_takes_the_flag_default(case: Case) -> None:
    o = outcome(case, facts())
    assert o.status is Status.FAIL
    e = only(o)
    assert (e.source, e.location, e.found) == (Source.DEFAULT, FLAG_DEFAULT, case.flag_default)
    assert o.reason == (
        f"kubelet {case.flag} is {case.flag_default!r} ({FLAG_DEFAULT}); expected {e.expected}"
    )


@pytest.mark.parametrize("case", PARAMS)
def test_no_config_safe_flag_passes(case: Case) -> None:
    o = outcome(case, facts(f"{case.flag}={text(case.safe)}"))
    assert o.status is Status.PASS
    e = only(o)
    assert (e.source, e.location, e.found) == (Source.FLAG, f"pid 8 {case.flag}", text(case.safe))


@pytest.mark.parametrize("case", PARAMS)
def test_no_config_unsafe_flag_fails(case: Case) -> None:
    o = outcome(case, facts(f"{case.flag}={text(case.unsafe)}"))
    assert o.status is Status.FAIL and only(o).source is Source.FLAG


# ---- with --config ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", PARAMS)
def test_config_key_absent_takes_the_config_file_default(case: Case) -> None:
    o = outcome(case, facts(config={"kind": "KubeletConfiguration"}))
    assert o.status is Status.PASS and o.reason is None
    e = only(o)
    assert (e.source, e.location, e.found) == (Source.DEFAULT, CONFIG_DEFAULT, case.config_default)


@pytest.mark.parametrize("case", PARAMS)
def test_config_key_present_decides(case: Case) -> None:
    good = outcome(case, facts(config=case.config(case.safe)))
    assert good.status is Status.PASS
    assert only(good).source is Source.CONFIG
    bad = outcome(case, facts(config=case.config(case.unsafe)))
    assert bad.status is Status.FAIL
    e = only(bad)
    assert (e.source, e.location, e.found) == (Source.CONFIG, f"{CONFIG_PATH}: {case.key}", text(case.unsafe))
    assert bad.reason == f"kubelet {case.flag} is {text(case.unsafe)!r}; expected {e.expected}"


@pytest.mark.parametrize("case", PARAMS)
def test_flag_overrides_the_config_file(case: Case) -> None:
    unsafe_flag = outcome(case, facts(f"{case.flag}={text(case.unsafe)}", config=case.config(case.safe)))
    assert unsafe_flag.status is Status.FAIL and only(unsafe_flag).source is Source.FLAG
    safe_flag = outcome(case, facts(f"{case.flag}={text(case.safe)}", config=case.config(case.unsafe)))
    assert safe_flag.status is Status.PASS and only(safe_flag).source is Source.FLAG
    # ... and over the config-file default
    over_default = outcome(case, facts(f"{case.flag}={text(case.unsafe)}", config={}))
    assert over_default.status is Status.FAIL and only(over_default).source is Source.FLAG


@pytest.mark.parametrize("case", PARAMS)
def test_unreadable_config_is_an_error_unless_the_flag_decides(case: Case) -> None:
    assert outcome(case, facts(error="not valid YAML/JSON")).status is Status.ERROR
    assert outcome(case, facts(f"{case.flag}={text(case.safe)}", error="x")).status is Status.PASS


@pytest.mark.parametrize("case", PARAMS)
def test_findings_keep_scored_flag_and_hint(case: Case) -> None:
    rule = RULES[case.rule_id]
    f = evaluate_rule(rule, facts(), frozenset(rule.targets))
    if rule.scored:
        assert f.status is Status.FAIL
    else:
        assert f.status is Status.MANUAL and "automated hint: fail" in (f.reason or "")
    assert [e.location for e in f.evidence] == [FLAG_DEFAULT]


# ---- the model -------------------------------------------------------------------------------------


def test_config_default_is_optional_and_needs_a_key() -> None:
    plain = validated(
        SettingAudit,
        {"component": "kubelet", "flag": "--x", "default": "1", "test": {"op": "eq", "value": "1"}},
    )
    assert plain.config_default is None
    with pytest.raises(ValidationError, match="config_default"):
        validated(
            SettingAudit,
            {"component": "kubelet", "flag": "--x", "config_default": "1", "test": {"op": "present"}},
        )


def test_without_config_default_one_default_serves_both_modes() -> None:
    rule = validated(
        Rule,
        {
            "id": "9.1.1",
            "title": "t",
            "section": "9.1",
            "severity": "low",
            "targets": ["worker"],
            "scored": True,
            "remediation": "r",
            "audit": {
                "type": "setting",
                "component": "kubelet",
                "flag": "--make-iptables-util-chains",
                "config_key": "makeIPTablesUtilChains",
                "default": "true",
                "test": {"op": "eq", "value": "true"},
            },
        },
    )
    assert rule.audit is not None
    for node in (facts(), facts(config={})):
        e = only(audit_outcome(rule.audit, node, Context()))
        assert (e.source, e.location, e.found) == (Source.DEFAULT, "kubelet default", "true")


# ---- combinations ----------------------------------------------------------------------------------


def test_combinations_give_each_reason_and_evidence_once() -> None:
    ev = Evidence(subject="kubelet --x", source=Source.FLAG, location="pid 8 --x", found="0")
    same = Outcome(Status.FAIL, (ev,), "kubelet --x is '0'; expected > 0")
    other = Outcome(Status.FAIL, (), "kubelet --y is not set; expected set")
    for kind in ("all", "any"):
        o = combined_outcome(kind, [same, same])
        assert o.reason == "kubelet --x is '0'; expected > 0" and o.evidence == (ev,)
    nested = combined_outcome("all", [combined_outcome("all", [same, other]), same])
    assert nested.reason == "kubelet --x is '0'; expected > 0; kubelet --y is not set; expected set"
    # whole reasons are compared, not the pieces between "; "
    third = Outcome(Status.FAIL, (), "kubelet --z is '0'; expected > 0")
    assert combined_outcome("any", [same, third]).reason == (
        "kubelet --x is '0'; expected > 0; kubelet --z is '0'; expected > 0"
    )
