"""Dashboards on the real testbed: metrics scraped by a real Prometheus, alerts, PolicyReports and
OpenReports on their upstream CRDs, the web dashboard in headless Chromium, the auditor's report.

One flow (a control-plane node, two workers, one of them misconfigured, an exception), then:

Cases:
- Prometheus (built from its Go module) scrapes the operator's ``/metrics``; every PromQL
  expression of the Grafana dashboard returns data, and every series the alert rules read exists;
- a misconfiguration introduced on a worker + a rescan: the ``PlumbobComplianceDrift`` alert fires
  on that Prometheus, loaded with the chart's rules file;
- ClusterPolicyReports (wgpolicyk8s.io/v1alpha2) and ClusterReports (openreports.io/v1alpha1) are
  written per node, scoped to the Node, read back: valid enum values (manual → warn, excepted →
  skip with the exception's owner), CIS id and evidence in properties, the audit time as timestamp;
- the web dashboard, in Debian's headless Chromium (served with ``Content-Security-Policy:
  default-src 'none'``, so no script could run even if a page had one): the profile's row and
  score on the index, evidence on a rule page, owner and expiry on the exceptions page; every link
  reachable from ``/`` answers 200; screenshots (phone and desktop) kept in ``test-artifacts/``;
- ``plumbob report`` renders every control of the real scan in all four formats; ``plumbob status``
  names the profile;
- deleting the profile removes its PolicyReports and OpenReports (garbage collection).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import (
    MakeCluster,
    NodeSpec,
    Plumbob,
    apply,
    completed_scan,
    get,
    items,
    profile_body,
    rescan,
    wait_for,
)

from testbed.controlplane import ControlPlane
from testbed.hosttrees import build_tree
from testbed.prometheus import Prometheus, start_prometheus

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "dashboards"
REPORT_CRDS = REPO / "tests" / "data" / "crds"
RULES = REPO / "charts" / "plumbob" / "files" / "alerts.yaml"
DASHBOARD = REPO / "charts" / "plumbob" / "files" / "grafana-dashboard.json"
APIS = {
    # upstream's CRD also serves (and stores) v1beta1: read back the version Plumbob writes
    "wgpolicyk8s.io/v1alpha2": "clusterpolicyreports.v1alpha2.wgpolicyk8s.io",
    "openreports.io/v1alpha1": "clusterreports.v1alpha1.openreports.io",
}


@pytest.fixture(scope="module")
def report_apis(crds_installed: ControlPlane) -> ControlPlane:
    cp = crds_installed
    for folder in ("wgpolicyk8s", "openreports"):
        cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPORT_CRDS / folder))
    names = [f"crd/{n}" for n in ("clusterpolicyreports.wgpolicyk8s.io", "policyreports.wgpolicyk8s.io",
                                  "clusterreports.openreports.io", "reports.openreports.io")]  # fmt: skip
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    wait_for(
        "the report APIs to be served",
        lambda: cp.kubectl("get", ",".join(n[4:] for n in names), "-A", check=False).returncode == 0,
    )
    return cp


def http(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as res:
            if "/metrics" not in url:
                assert "default-src 'none'" in res.headers["Content-Security-Policy"]
            return res.status, res.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    browser = shutil.which("chromium")
    assert browser, "Debian's chromium is needed: apt-get install -y chromium"
    profile = tmp / f"chromium-{len(list(tmp.glob('chromium-*')))}"
    profile.mkdir()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]  # fmt: skip
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120, check=False)


def dom(url: str, tmp: Path) -> str:
    result = chromium("--dump-dom", url, tmp=tmp)
    assert result.returncode == 0 and "<html" in result.stdout, result.stderr[-2000:]
    return result.stdout


def selectors(expr: str) -> list[str]:
    """The series selectors of a PromQL expression (metric names with their matchers)."""
    return [
        m.group(0) for m in re.finditer(r"\b(plumbob_[a-z_]+|up)(\{[^}]*\})?", expr) if "(" not in m.group(0)
    ]


def exported(cp: ControlPlane, resource: str, name: str, scan: str) -> dict[str, Any] | None:
    """The exported report ``name`` once it carries the results of ``scan``."""
    body = get(cp, resource, name)
    if body and any(r["properties"].get("scan") == scan for r in body.get("results") or []):
        return body
    return None


def has_data(prom: Prometheus, expr: str) -> bool:
    return bool(prom.query(expr))


def test_dashboards_end_to_end(
    report_apis: ControlPlane, plumbob: Plumbob, make_cluster: MakeCluster, run_id: str, tmp_path: Path
) -> None:
    cp = report_apis
    plumbob.restart_operator()  # discovers the report APIs at once
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    cp_node, w1, w2 = f"cp-{run_id}", f"w1-{run_id}", f"w2-{run_id}"
    cluster = make_cluster(
        [
            NodeSpec(cp_node, "control-plane"),
            NodeSpec(w1, "worker"),
            NodeSpec(w2, "worker", ["kubelet-always-allow"]),
        ]
    )
    profile = f"dash-{run_id}"
    expires = (datetime.now(UTC) + timedelta(days=5)).strftime("%Y-%m-%d")
    apply(cp, {
        "apiVersion": "plumbob.dev/v1alpha1", "kind": "ClusterComplianceException",
        "metadata": {"name": f"dash-{run_id}"},
        "spec": {"entries": [{"rules": ["4.2.2"], "profiles": [profile], "nodes": [w2],
                              "reason": "legacy monitoring agent needs it", "owner": "sre@example.com",
                              "ticket": "SRE-7", "expires": expires}]},
    })  # fmt: skip
    apply(
        cp, profile_body(profile, run_id, rules={"manual": [{"rule": "4.2.6", "rationale": "CNI-managed"}]})
    )
    rescan(cp, profile, "1")
    first = wait_for("the first scan", lambda: completed_scan(cp, profile), timeout=120)

    # ---- metrics on a real Prometheus --------------------------------------------------------
    metrics_url = plumbob.operator.url("metrics")
    status, text = http(f"{metrics_url}/metrics")
    assert status == 200
    prom = start_prometheus(tmp_path / "prometheus", [metrics_url.removeprefix("http://")], (RULES,))
    try:
        wait_for(
            "the profile's score in Prometheus",
            lambda: has_data(prom, f'plumbob_profile_score_ratio{{profile="{profile}"}}'),
            60,
        )
        build_tree(cluster.node(w1).host_root, "worker", ["kubelet-anonymous-auth"], hostname=w1)  # type: ignore[arg-type]
        rescan(cp, profile, "2")
        wait_for("the second scan", lambda: completed_scan(cp, profile, {first["metadata"]["name"]}), 120)
        firing = f'ALERTS{{alertname="PlumbobComplianceDrift", profile="{profile}", alertstate="firing"}}'
        wait_for("the drift alert to fire", lambda: has_data(prom, firing), 90)
        panels = json.loads(DASHBOARD.read_text())["panels"]
        for panel in panels:
            for target in panel["targets"]:
                expr = target["expr"].replace("$profile", profile).replace("$__rate_interval", "1m")
                wait_for(f"data for panel {panel['title']!r}: {expr}", partial(has_data, prom, expr), 60)
        rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
        for rule in rules:
            for selector in selectors(rule["expr"]):
                wait_for(f"series {selector} of alert {rule['alert']}", partial(has_data, prom, selector), 60)
        (ARTIFACTS / "metrics.txt").write_text(http(f"{metrics_url}/metrics")[1])
    finally:
        prom.stop()
    scan = completed_scan(cp, profile, {first["metadata"]["name"]})
    assert scan is not None
    scan_rules = {r["id"] for r in scan["status"]["rules"]}

    # ---- PolicyReports and OpenReports, read back ---------------------------------------------
    for api, resource in APIS.items():
        for node in (cp_node, w1, w2):
            name = f"plumbob-{profile}.{node}"
            body = wait_for(
                f"{resource} {name} of the second scan",
                partial(exported, cp, resource, name, scan["metadata"]["name"]),
                60,
            )
            assert body["apiVersion"] == api and body["scope"] == {
                "apiVersion": "v1",
                "kind": "Node",
                "name": node,
            }
            assert body["metadata"]["ownerReferences"][0]["kind"] == "ComplianceReport"
            results = {r["rule"]: r for r in body["results"]}
            assert set(results) <= scan_rules
            assert {r["result"] for r in results.values()} <= {"pass", "fail", "warn", "error", "skip"}
            assert sum(body["summary"].values()) == len(body["results"])
            report = get(cp, "compliancereport", f"{profile}.{node}")
            assert report is not None
            audit = datetime.fromisoformat(report["spec"]["auditTime"].replace("Z", "+00:00"))
            assert results["4.2.1"]["timestamp"]["seconds"] == int(audit.timestamp())
            assert (
                results["4.2.6"]["result"] == "warn" and results["4.2.6"]["properties"]["status"] == "manual"
            )
        excepted = {r["rule"]: r for r in get(cp, resource, f"plumbob-{profile}.{w2}")["results"]}["4.2.2"]  # type: ignore[index]
        assert excepted["result"] == "skip" and excepted["properties"]["status"] == "excepted"
        assert excepted["properties"]["exceptionOwner"] == "sre@example.com"
        drifted = {r["rule"]: r for r in get(cp, resource, f"plumbob-{profile}.{w1}")["results"]}["4.2.1"]  # type: ignore[index]
        assert drifted["result"] == "fail" and drifted["properties"]["index"] == "4.2.1"
        assert "anonymous" in drifted["properties"]["evidence"].lower() or drifted["properties"]["evidence"]

    # ---- web dashboard in headless Chromium -----------------------------------------------------
    base = plumbob.operator.url("dashboard")
    seen: dict[str, int] = {}
    todo = ["/"]
    while todo:
        path = todo.pop()
        if path in seen or (path.startswith("/profiles/") and not path.startswith(f"/profiles/{profile}")):
            continue  # other tests' profiles come and go while this one walks
        status, html = http(base + path)
        seen[path] = status
        todo += [h.split("#")[0] for h in re.findall(r'href="([^"]+)"', html)]
    assert {p: s for p, s in seen.items() if s != 200} == {}
    assert f"/profiles/{profile}/rules/4.2.1" in seen and f"/profiles/{profile}/nodes/{w1}" in seen
    index = dom(base + "/", tmp_path)
    assert re.search(rf'data-profile="{profile}".*?class="score">\d+\.\d%', index, re.S), index[:3000]
    rule_page = dom(f"{base}/profiles/{profile}/rules/4.2.1", tmp_path)
    assert w1 in rule_page and "[config]" in rule_page and "Remediation" in rule_page
    exceptions_page = dom(base + "/exceptions", tmp_path)
    assert "sre@example.com" in exceptions_page and expires in exceptions_page
    shots = (
        ("index-phone", "/", "390,844"),
        ("profile-phone", f"/profiles/{profile}", "390,844"),
        ("profile-desktop", f"/profiles/{profile}", "1280,1000"),
        ("rule-desktop", f"/profiles/{profile}/rules/4.2.1", "1280,900"),
    )
    for name, path, size in shots:
        shot = ARTIFACTS / f"{name}.png"
        result = chromium(f"--screenshot={shot}", f"--window-size={size}", base + path, tmp=tmp_path)
        assert result.returncode == 0 and shot.read_bytes()[:4] == b"\x89PNG", result.stderr[-2000:]

    # ---- the auditor's report and plumbob status --------------------------------------------------
    def cli(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "plumbob", *args],
            env=cp.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    doc = json.loads(cli("report", profile, "--format", "json"))
    assert doc["scan"]["name"] == scan["metadata"]["name"]
    cluster_report = get(cp, "compliancereport", profile) or {}
    cluster_rules = {r["id"] for r in (cluster_report.get("spec") or {}).get("results") or []}
    assert cluster_rules, "the profile's cluster-level report is part of the auditor's report"
    scan_rules |= cluster_rules
    assert doc["generatedBy"] not in ("", "unknown")
    for fmt, suffix in (("html", "html"), ("markdown", "md"), ("junit", "xml")):
        text = cli("report", profile, "--format", fmt)
        (ARTIFACTS / f"report.{suffix}").write_text(text)
        assert all(rule in text for rule in scan_rules)
    suite = ET.fromstring(cli("report", profile, "--format", "junit")).find("testsuite")
    assert suite is not None and int(suite.get("tests", "0")) == len(scan_rules)
    assert profile in cli("status")

    # ---- gone with the profile ------------------------------------------------------------------
    cp.kubectl("delete", "complianceprofile", profile)
    for resource in APIS.values():

        def gone(r: str = resource) -> bool:
            return not [i for i in items(cp, r) if i["metadata"]["name"].startswith(f"plumbob-{profile}.")]

        wait_for(f"{resource} of {profile} to be garbage-collected", gone, 90)
    cp.kubectl("delete", "clustercomplianceexception", f"dash-{run_id}")
