"""The pydantic models of the API: parsing, the checks that mirror the CRD's, helpers, sizes.

Cases:
- every sample in docs/examples parses, and dumps back to what was written (plus defaults);
- every file of the invalid corpus (tests/invalid) is also refused by the models, with an error
  that names the field the file expects;
- checks only the models can make: cron ranges, unknown time zones, impossible dates;
- both spellings (snake_case and camelCase) are accepted; dumps are camelCase without None;
- helpers: expiry instants, score, aggregation across nodes, conditions, object names (a report
  name is never shortened: too long is an error; scan names fit Job names; which names are scans
  of a profile), effective status of a report result;
- a scan must be named <profile>-YYYYMMDD-hhmmss (the CRD's rule, mirrored);
- size: a scan of 1000 nodes where every rule fails everywhere stays far below 512 KiB.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from plumbob.api import KINDS, ComplianceReport, ComplianceScan, ComplianceSchedule
from plumbob.api.common import (
    MAX_NODE_NAMES,
    MAX_PROFILE_NAME,
    Condition,
    ConditionStatus,
    ResultStatus,
    Summary,
    is_scan_name_of,
    scan_name,
    set_condition,
)
from plumbob.api.exceptions import expiry_instant
from plumbob.api.profiles import ComplianceProfile
from plumbob.api.scans import (
    ComplianceScanStatus,
    DriftEntry,
    NodeProblem,
    NodeProgress,
    NodeState,
    RuleResult,
    ScanDrift,
    aggregate_status,
)
from plumbob.names import report_name

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((REPO / "docs" / "examples").glob("*.yaml"))
INVALID = sorted((REPO / "tests" / "invalid").glob("*.yaml"))
BY_KIND = {k.__name__: k for k in KINDS}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def expectation(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    match = re.fullmatch(r"# expect: (\S+)", first)
    assert match, f"{path.name}: the first line must be '# expect: <field>'"
    return match.group(1)


def error_text(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        path = ""
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        lines.append(f"{path.lstrip('.')}: {err['msg']}")
    return "\n".join(lines)


def test_corpus_is_large_and_covers_every_kind() -> None:
    assert len(INVALID) >= 30
    assert {load(p)["kind"] for p in INVALID} == set(BY_KIND)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_samples_parse(path: Path) -> None:
    data = load(path)
    model = BY_KIND[data["kind"]].model_validate(data)
    dumped = model.to_dict()
    assert dumped["metadata"]["name"] == data["metadata"]["name"]

    def contained(small: Any, big: Any) -> bool:
        if isinstance(small, dict):
            return all(k in big and contained(v, big[k]) for k, v in small.items())
        if isinstance(small, list):
            return len(small) == len(big) and all(contained(a, b) for a, b in zip(small, big, strict=True))
        return bool(small == big)

    assert contained(data["spec"], dumped["spec"])


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_corpus_refused_by_models(path: Path) -> None:
    data = load(path)
    with pytest.raises(ValidationError) as info:
        BY_KIND[data["kind"]].model_validate(data)
    text = error_text(info.value)
    field = expectation(path)
    # The last segment of the field names what is wrong, in the error's location or its message.
    last = re.split(r"[.\[]", field.rstrip("]"))[-1]
    assert last in text or field in text, f"{path.name}: expected {field!r} in:\n{text}"


def schedule(**spec: Any) -> dict[str, Any]:
    return {"kind": "ComplianceSchedule", "metadata": {"name": "s"}, "spec": {"profiles": ["p"], **spec}}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"schedule": "0 3 * * *", "timeZone": "Mars/Olympus_Mons"}, "timeZone"),
    ],
)
def test_checks_only_the_models_make(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        ComplianceSchedule.model_validate(schedule(**spec))


def test_valid_schedule_and_defaults() -> None:
    s = ComplianceSchedule.model_validate(schedule(schedule="@daily", timeZone="Europe/Berlin"))
    assert (s.spec.max_parallel_nodes, s.spec.node_deadline_seconds, s.spec.history_limit) == (10, 300, 5)
    assert s.spec.suspend is False


def test_impossible_expiry_date_refused() -> None:
    body = {
        "kind": "ClusterComplianceException",
        "metadata": {"name": "x"},
        "spec": {"entries": [{"rules": ["1.1.1"], "reason": "r", "owner": "o", "expires": "2027-02-30"}]},
    }
    with pytest.raises(ValidationError, match="not a real date"):
        BY_KIND["ClusterComplianceException"].model_validate(body)


def test_both_spellings_and_dump() -> None:
    by_alias = Summary.model_validate({"pass": 3, "notApplicable": 2})
    by_name = Summary(pass_=3, not_applicable=2)
    assert by_alias == by_name
    assert by_name.to_dict() == {
        "pass": 3,
        "fail": 0,
        "manual": 0,
        "notApplicable": 2,
        "error": 0,
        "excepted": 0,
        "total": 0,
    }
    profile = ComplianceProfile.model_validate(
        {"metadata": {"name": "p"}, "spec": {"benchmark": {"name": "cis-kubernetes"}}}
    )
    assert "status" not in profile.to_dict()
    assert profile.spec.rules.include == ["*"]


def test_expiry_instant() -> None:
    assert expiry_instant("2027-03-31") == datetime(2027, 4, 1, tzinfo=UTC)
    assert expiry_instant("2027-03-31T17:00:00+02:00") == datetime(2027, 3, 31, 15, tzinfo=UTC)


def test_score() -> None:
    assert Summary(pass_=6, excepted=1, fail=2, error=1, manual=5, not_applicable=9).score() == 70.0
    assert Summary(manual=3).score() is None


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["pass", "fail", "excepted"], "fail"),
        (["pass", "error"], "error"),
        (["pass", "excepted"], "excepted"),
        (["pass", "manual"], "manual"),
        (["pass", "not-applicable"], "pass"),
        (["not-applicable"], "not-applicable"),
        ([], "not-applicable"),
    ],
)
def test_aggregate_status(statuses: list[str], expected: str) -> None:
    assert aggregate_status(ResultStatus(s) for s in statuses) == ResultStatus(expected)


def test_set_condition_keeps_transition_time() -> None:
    t0, t1 = datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 1, 2, tzinfo=UTC)
    ready = Condition(type="Ready", status=ConditionStatus.TRUE, reason="Scanned", last_transition_time=t0)
    same = ready.model_copy(update={"last_transition_time": t1, "message": "again"})
    out = set_condition([ready], same)
    assert out == [same.model_copy(update={"last_transition_time": t0})]
    flipped = ready.model_copy(update={"status": ConditionStatus.FALSE, "last_transition_time": t1})
    assert set_condition([ready], flipped) == [flipped]


def test_object_names() -> None:
    assert report_name("cis", None) == "cis"
    assert report_name("cis", "node-1.example.com") == "cis.node-1.example.com"
    # never shortened (the admission policy checks the exact name): too long is an error that says
    # how long the profile name may be, or that no profile fits
    assert report_name("p" * 36, "n" * 216) == "p" * 36 + "." + "n" * 216
    with pytest.raises(ValueError, match=r"254 characters.*profile name of at most 36 characters"):
        report_name("p" * 37, "n" * 216)
    with pytest.raises(ValueError, match="a shorter node name"):
        report_name("p", "n" * 253)
    started = datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert scan_name("cis-kubeadm", started) == "cis-kubeadm-20270102-030405"
    assert len(scan_name("p" * MAX_PROFILE_NAME, started)) == 52  # its Job names fit in 63
    assert is_scan_name_of("cis-kubeadm-20270102-030405", "cis-kubeadm")
    assert not is_scan_name_of("cis-kubeadm-20270102-030405", "cis")  # a prefix is not the profile
    assert not is_scan_name_of("cis-kubeadm-2027-01-02", "cis-kubeadm")
    assert not is_scan_name_of("cis-20270102-030405-x", "cis")


def test_scan_is_named_after_its_profile() -> None:
    scan = {
        "apiVersion": "plumbob.dev/v1alpha1",
        "kind": "ComplianceScan",
        "metadata": {"name": "cis-20270102-030405"},
        "spec": {"profile": "cis", "trigger": "manual"},
    }
    assert ComplianceScan.model_validate(scan).metadata.name == "cis-20270102-030405"
    for name in ("my-scan", "cis-kubeadm-20270102-030405", "cis-20270102-0304"):
        with pytest.raises(ValidationError, match="<profile>-YYYYMMDD-hhmmss"):
            ComplianceScan.model_validate({**scan, "metadata": {"name": name}})


def test_effective_status_of_report_results() -> None:
    result = {"id": "4.2.13", "severity": "medium", "status": "fail"}
    exception = {
        "kind": "ClusterComplianceException",
        "name": "platform",
        "entry": 0,
        "reason": "r",
        "owner": "o",
        "expires": "2027-03-31",
    }
    report = ComplianceReport.model_validate(
        {
            "metadata": {"name": "cis.n1"},
            "spec": {"profile": "cis", "nodeName": "n1", "scan": "cis-1", "results": [result]},
            "status": {"exceptions": [{"rule": "4.2.13", "exception": exception}]},
        }
    )
    only = report.spec.results[0]
    assert report.effective_status(only) is ResultStatus.EXCEPTED
    bare = report.model_copy(update={"status": None})
    assert bare.effective_status(only) is ResultStatus.FAIL


def test_scan_status_stays_small_at_1000_nodes() -> None:
    nodes = [f"worker-{i:04d}.eu-central-1.compute.internal" for i in range(1000)]
    rules = [f"{s}.{i}" for s in ("1.1", "1.2", "4.1", "4.2") for i in range(1, 31)]
    status = ComplianceScanStatus(
        nodes=NodeProgress(
            total=1000,
            done=800,
            failed=200,
            problems=[
                NodeProblem(
                    node=n, state=NodeState.FAILED, reason="AgentCrashed", message="exit code 137 " * 10
                )
                for n in nodes[:100]
            ],
        ),
        rules=[
            RuleResult(id=r, status=ResultStatus.FAIL, fail_count=1000, failing_nodes=nodes[:MAX_NODE_NAMES])
            for r in rules
        ],
        summary=Summary(fail=len(rules), total=len(rules)),
        drift=ScanDrift(
            regression_count=120_000,
            regressions=[DriftEntry(rule=r, count=1000, nodes=nodes[:MAX_NODE_NAMES]) for r in rules],
        ),
    )
    size = len(json.dumps(status.to_dict()))
    assert size < 200 * 1024, size
