"""Agent mode (``python -m plumbob agent``): audit this node, write the results through the API.

Runs in the audit Pod that the operator creates on each node. Input is the environment:

==========================  =====================================================================
``PLUMBOB_NODE_NAME``       the node (from the Pod's ``spec.nodeName``)
``PLUMBOB_PROFILE``         the profile being scanned
``PLUMBOB_SCAN``            the scan this audit belongs to
``PLUMBOB_PROFILE_UID``     uid of the profile: the report is owned by it (deleted with it)
``PLUMBOB_TAILORING``       JSON :class:`~plumbob.benchmarks.tailoring.Tailoring`
``PLUMBOB_HOST_ROOT``       where the host's file system is mounted (``/host``)
``PLUMBOB_HOST_PATHS``      the host directories mounted there, separated by ``:``; a path outside
                            them is reported as not mounted, not as absent (unset: all of them)
==========================  =====================================================================

The agent writes exactly one object, the node's ``ComplianceReport`` named ``<profile>.<node>``
(create, or replace the previous one), with one API write. The API server lets it write nothing
else: a ValidatingAdmissionPolicy checks the report's name, node, profile and scan against the
node and Pod its token is bound to (``crds/policy/node-bound-reports.yaml``).

Exit codes: 0 results written; 3 the audit could not run; 4 the results could not be written.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from plumbob import kubehttp
from plumbob.agent.auditing import AuditError, run_audit
from plumbob.benchmarks.catalog import CatalogError, load_benchmark
from plumbob.benchmarks.tailoring import Tailoring, TailoringError
from plumbob.engine.findings import Finding, Status
from plumbob.names import API_VERSION, LABEL_NODE, LABEL_PROFILE, LABEL_SCAN, report_name

EXIT_OK, EXIT_AUDIT, EXIT_WRITE = 0, 3, 4
# An evidence's source is written as the engine's Source value: each is a value of the API's
# EvidenceSource too (a unit test checks), so the agent needs none of the API models.
MAX_EVIDENCE, MAX_TEXT = 8, 512


def _clip(text: str | None, limit: int = MAX_TEXT) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def check_result(finding: Finding, tailoring: Tailoring) -> dict[str, Any]:
    status, reason = finding.status.value, finding.reason or ""
    rationale = tailoring.manual_rationale(finding.rule_id)
    if rationale is not None and finding.status is not Status.NOT_APPLICABLE:
        status, reason = Status.MANUAL.value, f"tailored to manual by the profile: {rationale}"
    evidence = []
    for ev in finding.evidence[:MAX_EVIDENCE]:
        item: dict[str, Any] = {
            "source": ev.source.value,
            "location": _clip(ev.subject + (f" ({ev.location})" if ev.location else "")),
        }
        if ev.found is not None:
            item["found"] = _clip(ev.found)
        if ev.expected is not None:
            item["expected"] = _clip(ev.expected)
        evidence.append(item)
    out: dict[str, Any] = {
        "id": finding.rule_id,
        "title": _clip(finding.title, 256),
        "severity": finding.severity,
        "status": status,
        "evidence": evidence,
    }
    if reason:
        out["reason"] = _clip(reason, 1024)
    return out


def report_body(
    *,
    profile: str,
    node: str,
    scan: str,
    benchmark: str,
    findings: Sequence[Finding],
    tailoring: Tailoring,
    profile_uid: str | None = None,
) -> dict[str, Any]:
    labels = {LABEL_PROFILE: profile, LABEL_SCAN: scan}
    if len(node) <= 63:
        labels[LABEL_NODE] = node
    metadata: dict[str, Any] = {"name": report_name(profile, node), "labels": labels}
    if profile_uid:
        # Not blockOwnerDeletion: that would need delete permission on profiles, which the agent lacks.
        metadata["ownerReferences"] = [
            {"apiVersion": API_VERSION, "kind": "ComplianceProfile", "name": profile, "uid": profile_uid}
        ]
    return {
        "apiVersion": API_VERSION,
        "kind": "ComplianceReport",
        "metadata": metadata,
        "spec": {
            "profile": profile,
            "nodeName": node,
            "scan": scan,
            "benchmark": benchmark,
            "auditTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "results": [check_result(f, tailoring) for f in findings],
        },
    }


def audit_node(env: Mapping[str, str]) -> dict[str, Any]:
    """Audit the node and return the report body (no API calls)."""
    missing = [k for k in ("PLUMBOB_NODE_NAME", "PLUMBOB_PROFILE", "PLUMBOB_SCAN") if not env.get(k)]
    if missing:
        raise AuditError(f"missing environment: {', '.join(missing)}")
    try:
        report_name(env["PLUMBOB_PROFILE"], env["PLUMBOB_NODE_NAME"])
    except ValueError as exc:  # the operator does not start such audits; say why if one runs anyway
        raise AuditError(str(exc)) from exc
    try:
        tailoring = Tailoring.from_json(env.get("PLUMBOB_TAILORING") or '{"benchmark": "cis-1.12"}')
    except TailoringError as exc:
        raise AuditError(f"PLUMBOB_TAILORING: {exc}") from exc
    try:
        benchmark = load_benchmark(tailoring.benchmark, tailoring.variables or None)
    except CatalogError as exc:
        raise AuditError(str(exc)) from exc
    rules = tailoring.node_rules(benchmark.rules)
    if not rules:
        raise AuditError(f"the tailoring selects no node rule of {tailoring.benchmark}: nothing to audit")
    mounted = env.get("PLUMBOB_HOST_PATHS")
    result = run_audit(
        env.get("PLUMBOB_HOST_ROOT") or "/",
        benchmark_id=tailoring.benchmark,
        rule_patterns=[r.id for r in rules],
        overrides=tailoring.variables or None,
        mounted=[p for p in mounted.split(":") if p] if mounted is not None else None,
    )
    return report_body(
        profile=env["PLUMBOB_PROFILE"],
        node=env["PLUMBOB_NODE_NAME"],
        scan=env["PLUMBOB_SCAN"],
        benchmark=result.benchmark,
        findings=result.findings,
        tailoring=tailoring,
        profile_uid=env.get("PLUMBOB_PROFILE_UID"),
    )


# The API server may be briefly away (a restart, an upgrade): the agent keeps its results and tries
# again with a growing pause, for at most this long, rather than failing the node's audit.
WRITE_PATIENCE_SECONDS = 90.0
TRANSIENT_STATUS = frozenset({0, 429, 500, 502, 503, 504})
# An API server that has just started answers before its caches are filled: for a moment it may
# refuse a valid token (401) or a granted permission (403). Once the agent has found it away, such
# answers are waited out as well, within the same patience; a first answer of 401/403 is final.
STARTING_STATUS = frozenset({401, 403})


def write_report(
    body: dict[str, Any],
    env: Mapping[str, str],
    *,
    patience: float = WRITE_PATIENCE_SECONDS,
    sleep: Any = time.sleep,
) -> None:
    """Write the report, waiting out an API server that is briefly unreachable or overloaded."""
    deadline = time.monotonic() + patience
    pause = 1.0
    away = False  # the API server was unreachable or overloaded during this write
    while True:
        try:
            _write_report_once(body, env)
            return
        except Exception as exc:
            status = exc.status if isinstance(exc, kubehttp.KubeError) else 0
            transient = _transient(exc) or (away and status in STARTING_STATUS)
            away = away or _transient(exc)
            if not transient or time.monotonic() + pause > deadline:
                raise
            print(
                f"plumbob agent: API server not reachable ({exc}); trying again in {pause:.0f}s",
                file=sys.stderr,
            )
            sleep(pause)
            pause = min(pause * 2, 15.0)


def _transient(exc: Exception) -> bool:
    """An error worth waiting out: no connection, no answer, or a status that says "later"."""
    if isinstance(exc, kubehttp.KubeError):
        return exc.status in TRANSIENT_STATUS
    if isinstance(exc, OSError):
        return True
    # The kubernetes client (kubeconfig credentials) raises urllib3's errors; when urllib3 was
    # never imported, the error cannot be one of them.
    urllib3_errors = sys.modules.get("urllib3.exceptions")
    return urllib3_errors is not None and isinstance(exc, urllib3_errors.HTTPError)


class _ReportClient(Protocol):
    def get_object(self, plural: str, name: str) -> dict[str, Any]: ...
    def create_object(self, plural: str, body: dict[str, Any]) -> dict[str, Any]: ...
    def replace_object(self, plural: str, body: dict[str, Any]) -> dict[str, Any]: ...


def _client(env: Mapping[str, str]) -> tuple[_ReportClient, Callable[[], None]]:
    """The small HTTPS client with a service account; the kubernetes client for a kubeconfig."""
    account = kubehttp.service_account(env)
    if account is not None:
        small = kubehttp.Client(account)
        return small, small.close
    from plumbob.kube import Kube, api_client  # noqa: PLC0415 - only kubeconfig credentials need it

    kube = Kube(api_client(env))
    return kube, kube.api.close


def _write_report_once(body: dict[str, Any], env: Mapping[str, str]) -> None:
    client, close = _client(env)
    try:
        for _attempt in range(5):
            try:
                current = client.get_object("compliancereports", body["metadata"]["name"])
            except kubehttp.NotFoundError:
                try:
                    client.create_object("compliancereports", body)
                    return
                except kubehttp.ConflictError:
                    continue
            replacement = {
                **body,
                "metadata": {**body["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]},
            }
            if "status" in current:
                replacement["status"] = current["status"]
            try:
                client.replace_object("compliancereports", replacement)
                return
            except kubehttp.ConflictError:
                continue
        raise RuntimeError("the report kept changing under the agent (5 conflicts)")
    finally:
        close()


def run_agent(argv: Sequence[str], env: Mapping[str, str], cancel: threading.Event | None = None) -> int:
    """Entry point shared by the CLI and the simulated kubelet's in-process runner."""
    del argv, cancel  # no options yet; an audit takes milliseconds, so cancellation is not polled
    try:
        body = audit_node(env)
    except AuditError as exc:
        print(f"plumbob agent: audit could not run: {exc}", file=sys.stderr)
        return EXIT_AUDIT
    try:
        write_report(body, env)
    except Exception as exc:  # any failure to write is reported with its reason
        print(f"plumbob agent: could not write the report: {exc}", file=sys.stderr)
        return EXIT_WRITE
    counts: dict[str, int] = {}
    for r in body["spec"]["results"]:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    print(f"plumbob agent: {body['metadata']['name']}: {json.dumps(counts, sort_keys=True)}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    env = dict(os.environ)
    if not any(name.startswith("OTEL_") for name in env):
        # No OTEL_* variable: telemetry.configure would install nothing and the span would be a
        # no-op, so the agent does not import OpenTelemetry at all.
        return run_agent(list(argv or []), env)
    from plumbob import telemetry  # noqa: PLC0415 - the SDK only for the agent process

    tel = telemetry.configure("plumbob-agent", serve_metrics=False)  # traces only, when OTEL_* asks
    names = ("NODE_NAME", "PROFILE", "SCAN")
    attributes = {f"plumbob.{k.lower()}": env.get(f"PLUMBOB_{k}", "") for k in names}
    try:
        with telemetry.span("audit node", attributes) as span:
            code = run_agent(list(argv or []), env)
            span.set_attribute("plumbob.exit_code", code)
            return code
    finally:
        tel.shutdown()
