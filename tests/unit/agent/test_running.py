"""Agent mode without the API: findings → report results → report body; whole audits on host trees.

Cases:
- check_result: status and reason copied; a rule tailored to manual becomes ``manual`` with the
  rationale (fail, pass and error alike) but a not-applicable finding stays not-applicable;
  evidence capped at 8 items, each text at 512 characters (ellipsis), title at 256, reason at
  1024; every engine evidence source maps to the API source of the same name; location joins
  subject and location; absent found/expected are omitted; the result validates as CheckResult;
- report_body: name ``<profile>.<node>``, labels profile/scan/node, no node label for a node name
  longer than a label value, spec fields, validates as a ComplianceReport;
- audit_node on a host tree: results only for node rules (no section 5), tailoring honoured
  (include/exclude, manual), a misconfiguration fails its rule, ``PLUMBOB_HOST_PATHS`` limits
  what is read (a file outside it is an error, not absent); missing environment, unknown
  benchmark and a missing host root raise AuditError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plumbob.agent.auditing import AuditError
from plumbob.agent.running import MAX_EVIDENCE, MAX_TEXT, audit_node, check_result, report_body
from plumbob.api import ComplianceReport
from plumbob.api.reports import CheckResult, EvidenceSource
from plumbob.benchmarks.tailoring import Tailoring
from plumbob.engine.findings import Evidence, Finding, Source, Status
from testbed.hosttrees import build_tree

PLAIN = Tailoring(benchmark="cis-1.12")


def finding(
    status: Status = Status.FAIL,
    *,
    evidence: tuple[Evidence, ...] = (),
    rule: str = "4.2.1",
    reason: str | None = "anonymous auth is enabled",
    title: str = "Kubelet anonymous auth off",
) -> Finding:
    return Finding(
        rule_id=rule,
        title=title,
        severity="high",
        scored=True,
        status=status,
        reason=reason,
        evidence=evidence,
    )


def ev(source: Source = Source.CONFIG, **fields: str) -> Evidence:
    return Evidence(
        subject=fields.pop("subject", "kubelet authentication.anonymous.enabled"), source=source, **fields
    )


# ---- check_result -----------------------------------------------------------------------------------


def test_status_reason_and_shape() -> None:
    out = check_result(
        finding(evidence=(ev(location="/var/lib/kubelet/config.yaml", found="true", expected="false"),)),
        PLAIN,
    )
    assert out == {
        "id": "4.2.1",
        "title": "Kubelet anonymous auth off",
        "severity": "high",
        "status": "fail",
        "reason": "anonymous auth is enabled",
        "evidence": [
            {
                "source": "config",
                "location": "kubelet authentication.anonymous.enabled (/var/lib/kubelet/config.yaml)",
                "found": "true",
                "expected": "false",
            }
        ],
    }
    CheckResult.model_validate(out)


def test_no_reason_no_found_no_expected_are_omitted() -> None:
    out = check_result(finding(Status.PASS, reason=None, evidence=(ev(Source.DEFAULT),)), PLAIN)
    assert "reason" not in out
    assert out["evidence"] == [{"source": "default", "location": "kubelet authentication.anonymous.enabled"}]


@pytest.mark.parametrize("status", [Status.FAIL, Status.PASS, Status.ERROR, Status.MANUAL])
def test_tailored_to_manual(status: Status) -> None:
    t = Tailoring(benchmark="cis-1.12", manual={"4.2.*": "the provider manages the kubelet"})
    out = check_result(finding(status), t)
    assert out["status"] == "manual"
    assert "the provider manages the kubelet" in out["reason"]
    assert check_result(finding(status, rule="1.1.1"), t)["status"] == status.value


def test_not_applicable_stays_not_applicable_under_manual() -> None:
    t = Tailoring(benchmark="cis-1.12", manual={"*": "people decide"})
    out = check_result(finding(Status.NOT_APPLICABLE, reason="kubelet is not running"), t)
    assert out["status"] == "not-applicable"
    assert out["reason"] == "kubelet is not running"


def test_evidence_clipped() -> None:
    long = "x" * 2000
    items = tuple(ev(found=long, expected=long, location=long) for _ in range(MAX_EVIDENCE + 5))
    out = check_result(finding(evidence=items, title="t" * 400, reason="r" * 3000), PLAIN)
    assert len(out["evidence"]) == MAX_EVIDENCE == 8
    for item in out["evidence"]:
        for key in ("location", "found", "expected"):
            assert len(item[key]) == MAX_TEXT == 512
            assert item[key].endswith("…")
    assert len(out["title"]) == 256
    assert len(out["reason"]) == 1024
    CheckResult.model_validate(out)


def test_text_at_the_limit_is_kept() -> None:
    exact = "y" * MAX_TEXT
    out = check_result(finding(evidence=(ev(found=exact),)), PLAIN)
    assert out["evidence"][0]["found"] == exact


@pytest.mark.parametrize("source", list(Source))
def test_evidence_source_mapping(source: Source) -> None:
    out = check_result(finding(evidence=(ev(source),)), PLAIN)
    assert out["evidence"][0]["source"] == source.value
    assert EvidenceSource(out["evidence"][0]["source"]).value == source.value


# ---- report_body ------------------------------------------------------------------------------------


def test_report_body_name_labels_spec() -> None:
    body = report_body(
        profile="cis",
        node="worker-1",
        scan="cis-20260601-120000",
        benchmark="cis-1.12",
        findings=[finding(), finding(Status.PASS, rule="4.2.2")],
        tailoring=PLAIN,
    )
    assert body["apiVersion"] == "plumbob.dev/v1alpha1"
    assert body["kind"] == "ComplianceReport"
    assert body["metadata"] == {
        "name": "cis.worker-1",
        "labels": {
            "plumbob.dev/profile": "cis",
            "plumbob.dev/scan": "cis-20260601-120000",
            "plumbob.dev/node": "worker-1",
        },
    }
    spec = body["spec"]
    assert (spec["profile"], spec["nodeName"], spec["scan"], spec["benchmark"]) == (
        "cis",
        "worker-1",
        "cis-20260601-120000",
        "cis-1.12",
    )
    assert [r["id"] for r in spec["results"]] == ["4.2.1", "4.2.2"]
    report = ComplianceReport.model_validate(body)
    assert report.spec.audit_time is not None


def test_report_body_long_node_name() -> None:
    node = "ip-10-0-0-1." + "x" * 80 + ".internal"
    body = report_body(profile="cis", node=node, scan="s", benchmark="cis-1.12", findings=[], tailoring=PLAIN)
    assert "plumbob.dev/node" not in body["metadata"]["labels"]
    assert body["spec"]["nodeName"] == node
    ComplianceReport.model_validate(body)


# ---- audit_node -------------------------------------------------------------------------------------


def env(root: Path, **extra: str) -> dict[str, str]:
    return {
        "PLUMBOB_NODE_NAME": "worker-1",
        "PLUMBOB_PROFILE": "cis",
        "PLUMBOB_SCAN": "cis-x",
        "PLUMBOB_HOST_ROOT": str(root),
        **extra,
    }


def test_audit_node_reports_node_rules_only(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, "control-plane")
    body = audit_node(env(tree.root))
    ids = [r["id"] for r in body["spec"]["results"]]
    assert ids
    assert not any(i.startswith("5.") for i in ids)
    assert {i.split(".")[0] for i in ids} == {"1", "2", "3", "4"}
    statuses = {r["status"] for r in body["spec"]["results"]}
    assert "pass" in statuses
    assert "fail" not in statuses, "a compliant control-plane tree"
    assert body["metadata"]["name"] == "cis.worker-1"
    ComplianceReport.model_validate(body)


def test_audit_node_finds_a_misconfiguration(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, "worker", ["kubelet-anonymous-auth"])
    results = {r["id"]: r for r in audit_node(env(tree.root))["spec"]["results"]}
    failing = [i for i, r in results.items() if r["status"] == "fail"]
    assert failing == ["4.2.1"]
    assert results["4.2.1"]["evidence"]


def test_audit_node_reads_only_the_mounted_host_paths(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, "worker")
    only_etc = {
        r["id"]: r for r in audit_node(env(tree.root, PLUMBOB_HOST_PATHS="/proc:/etc"))["spec"]["results"]
    }
    assert only_etc["4.1.9"]["status"] == "error"  # /var/lib/kubelet/config.yaml
    assert (
        "outside the host directories mounted in the audit Pod (/proc, /etc)" in only_etc["4.1.9"]["reason"]
    )
    assert only_etc["4.1.1"]["status"] == "pass"  # /etc/systemd/system/kubelet.service.d/10-kubeadm.conf
    everything = {r["id"]: r for r in audit_node(env(tree.root))["spec"]["results"]}
    assert everything["4.1.9"]["status"] == "pass"


def test_audit_node_honours_the_tailoring(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, "worker", ["kubelet-anonymous-auth"])
    tailoring = Tailoring(
        benchmark="cis-1.12",
        include=("4",),
        exclude=("4.1.*",),
        manual={"4.2.1": "anonymous auth is reviewed by the platform team"},
    )
    body = audit_node(env(tree.root, PLUMBOB_TAILORING=tailoring.to_json()))
    results = {r["id"]: r for r in body["spec"]["results"]}
    assert results
    assert all(i.startswith("4.") and not i.startswith("4.1.") for i in results)
    assert results["4.2.1"]["status"] == "manual"
    assert "platform team" in results["4.2.1"]["reason"]


@pytest.mark.parametrize("missing", ["PLUMBOB_NODE_NAME", "PLUMBOB_PROFILE", "PLUMBOB_SCAN"])
def test_audit_node_needs_its_environment(tmp_path: Path, missing: str) -> None:
    values = env(tmp_path)
    del values[missing]
    with pytest.raises(AuditError, match=missing):
        audit_node(values)
    with pytest.raises(AuditError, match=missing):
        audit_node({**values, missing: ""})


def test_audit_node_unknown_benchmark_or_root(tmp_path: Path) -> None:
    with pytest.raises(AuditError):
        audit_node(env(tmp_path, PLUMBOB_TAILORING='{"benchmark": "cis-0.1"}'))
    with pytest.raises(AuditError):
        audit_node(env(tmp_path / "absent"))


@pytest.mark.parametrize("tailoring", [{"exclude": ["*"]}, {"include": ["5.*"]}, {"include": ["9.9"]}])
def test_audit_node_refuses_a_tailoring_that_selects_no_node_rule(
    tmp_path: Path, tailoring: dict[str, Any]
) -> None:
    # Once, an empty selection meant "every rule": all 131 were audited and the profile said Compliant.
    tree = build_tree(tmp_path, "worker")
    environ = env(tree.root) | {"PLUMBOB_TAILORING": Tailoring(benchmark="cis-1.12", **tailoring).to_json()}
    with pytest.raises(AuditError, match="selects no node rule"):
        audit_node(environ)


def test_write_report_waits_out_an_unreachable_api_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib3.exceptions import MaxRetryError  # noqa: PLC0415

    from plumbob.agent import running  # noqa: PLC0415
    from plumbob.kube import InvalidError  # noqa: PLC0415

    calls: list[int] = []

    def flaky(body: dict[str, Any], env: Any) -> None:
        calls.append(1)
        if len(calls) < 3:
            raise MaxRetryError(None, "/apis", "Connection refused")  # type: ignore[arg-type]

    monkeypatch.setattr(running, "_write_report_once", flaky)
    pauses: list[float] = []
    running.write_report({}, {}, sleep=pauses.append)
    assert len(calls) == 3 and pauses == [1.0, 2.0]

    def refused(body: dict[str, Any], env: Any) -> None:
        raise InvalidError(422, "spec.results: Invalid value")

    monkeypatch.setattr(running, "_write_report_once", refused)
    with pytest.raises(InvalidError):
        running.write_report({}, {}, sleep=pauses.append)  # a refusal is final: no waiting
    assert pauses == [1.0, 2.0]


def test_write_report_waits_out_a_refusal_from_an_api_server_that_just_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Seen in the chaos soak: the agent retried through an API server restart and its first answer,
    # before the API server's authorization caches were filled, was 403 "cannot get resource
    # compliancereports"; the agent gave up and its Pod failed.
    from urllib3.exceptions import MaxRetryError  # noqa: PLC0415

    from plumbob.agent import running  # noqa: PLC0415
    from plumbob.kube import KubeError  # noqa: PLC0415

    answers: list[Exception | None] = [
        MaxRetryError(None, "/apis", "Connection refused"),  # type: ignore[arg-type]
        KubeError(403, 'compliancereports.plumbob.dev "p.n" is forbidden'),
        KubeError(401, "Unauthorized"),
        None,
    ]

    def after_restart(body: dict[str, Any], env: Any) -> None:
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    monkeypatch.setattr(running, "_write_report_once", after_restart)
    pauses: list[float] = []
    running.write_report({}, {}, sleep=pauses.append)
    assert not answers and pauses == [1.0, 2.0, 4.0]

    def forbidden(body: dict[str, Any], env: Any) -> None:
        raise KubeError(403, "forbidden")

    monkeypatch.setattr(running, "_write_report_once", forbidden)
    with pytest.raises(KubeError):
        running.write_report({}, {}, sleep=pauses.append)  # forbidden from the start: final
    assert pauses == [1.0, 2.0, 4.0]
