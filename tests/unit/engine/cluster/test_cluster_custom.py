"""Custom CEL rules: compile with the rule id in every error, evaluate per object.

Cases: a true expression passes and a false one fails naming the object and the rule's message;
an undeclared function, a syntax error or a non-boolean result is a compile error naming the rule
while the other rules still run; a missing field at run time is error for that object only, never
a pass and never a crash; objects of another kind, apiVersion or namespace are not selected; a
huge expression is rejected or evaluated without crashing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cluster_builders import hardened, pod

from plumbob.engine.cluster.custom import CustomRule, compile_rules, evaluate_custom
from plumbob.engine.findings import Status

NO_HOST_NET = "!has(object.spec.hostNetwork) || object.spec.hostNetwork == false"


def rule(rule_id: str, expression: str, **extra: Any) -> CustomRule:
    return CustomRule(
        id=rule_id, title="t", severity="high", api_version="v1", kind="Pod", expression=expression, **extra
    )


def test_pass_and_fail_per_object() -> None:
    compiled, errors = compile_rules(
        [rule("custom.no-host-net", NO_HOST_NET, message="uses the host network")]
    )
    assert errors == []
    objects = [pod("ok", "team"), pod("bad", "team", hardened(), hostNetwork=True)]
    found = evaluate_custom(compiled, objects)
    assert [(f.status, f.resource.name if f.resource else None, f.reason) for f in found] == [
        (Status.FAIL, "bad", "uses the host network")
    ]
    (ok,) = evaluate_custom(compiled, objects[:1])
    assert ok.status is Status.PASS and "1 Pod object(s) checked" in (ok.reason or "")


def test_compile_errors_name_the_rule_and_the_rest_still_runs() -> None:
    compiled, errors = compile_rules(
        [
            rule("custom.a", "nosuch(object)"),
            rule("custom.b", "object.spec +"),
            rule("custom.c", "1 + 2"),
            rule("custom.ok", NO_HOST_NET),
        ]
    )
    assert [c.rule.id for c in compiled] == ["custom.ok"]
    assert [e.rule_id for e in errors] == ["custom.a", "custom.b", "custom.c"]
    assert "nosuch" in errors[0].message and "custom.a" in str(errors[0])
    assert "must return a bool" in errors[2].message


def test_runtime_errors_are_errors_for_that_object_only() -> None:
    compiled, _ = compile_rules([rule("custom.sa", "object.spec.serviceAccountName != 'default'")])
    objects = [pod("named", "team", serviceAccountName="app"), pod("unset", "team")]
    found = evaluate_custom(compiled, objects)
    assert [(f.status, f.resource.name if f.resource else None) for f in found] == [(Status.ERROR, "unset")]
    assert "serviceAccountName" in (found[0].reason or "")


def test_only_matching_objects_are_selected() -> None:
    compiled, _ = compile_rules([rule("custom.x", "false", namespaces=("team",))])
    objects = [
        pod("a", "team"),
        pod("b", "other"),
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "team"}},
    ]
    assert [f.resource.name for f in evaluate_custom(compiled, objects) if f.resource] == ["a"]


def test_a_pathological_expression_is_reported_not_fatal() -> None:
    deep = "(" * 300 + "true" + ")" * 300
    compiled, errors = compile_rules([rule("custom.deep", deep), rule("custom.ok", "true")])
    assert "custom.ok" in [c.rule.id for c in compiled]
    for c in compiled:
        evaluate_custom([c], [pod("a", "team")])
    assert all(e.rule_id == "custom.deep" for e in errors)


def test_the_sample_profiles_custom_rule_compiles_and_finds_a_latest_tag() -> None:
    import yaml  # noqa: PLC0415

    from plumbob.api.profiles import ComplianceProfile  # noqa: PLC0415
    from plumbob.controller.steps.cluster.cluster_status import custom_rules  # noqa: PLC0415

    sample = Path(__file__).parents[4] / "docs" / "examples" / "profile-kubeadm.yaml"
    profile = ComplianceProfile.model_validate(yaml.safe_load(sample.read_text()))
    rules = custom_rules(profile)
    compiled, errors = compile_rules(rules)
    assert rules and not errors
    pinned = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ok", "namespace": "prod"}}
    pinned["spec"] = {"template": {"spec": {"containers": [{"name": "a", "image": "app:1.2"}]}}}
    latest = {**pinned, "metadata": {"name": "bad", "namespace": "prod"}}
    latest["spec"] = {"template": {"spec": {"containers": [{"name": "a", "image": "app:latest"}]}}}
    found = evaluate_custom(compiled, [pinned, latest])
    assert [(f.status, f.resource.name) for f in found if f.resource] == [(Status.FAIL, "bad")]


def test_a_too_costly_rule_stops_with_an_error_and_the_others_still_run() -> None:
    compiled, errors = compile_rules([rule("custom.slow", "true"), rule("custom.fast", "true")])
    assert not errors
    pods = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "namespace": "a"}} for i in range(5)
    ]
    ticks = iter(range(1000))  # a clock that advances one "second" per reading
    findings = evaluate_custom(compiled[:1], pods, budget=2.5, clock=lambda: float(next(ticks)))
    (only,) = findings
    assert only.status.value == "error" and "stopped after 2.5 s of CPU at object 2 of 5" in (
        only.reason or ""
    )
    fast = evaluate_custom(compiled[1:], pods)
    assert [f.status.value for f in fast] == ["pass"]
