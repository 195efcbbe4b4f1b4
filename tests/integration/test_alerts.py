"""The chart's alerts and Grafana dashboard, checked with the real promtool and helm.

Cases:
- ``promtool check rules`` accepts ``charts/plumbob/files/alerts.yaml``;
- ``promtool test rules`` passes ``tests/data/alerts-test.yaml``: drift fires (and clears), failed
  and stale scans, failing nodes, an exception about to expire, the operator down or absent;
- the chart renders the PrometheusRule (when the cluster serves monitoring.coreos.com/v1) with
  exactly the rules file, and the dashboard ConfigMap with the Grafana sidecar label and JSON;
- the dashboard JSON: unique panel ids, a Prometheus query in every panel, each parsed by promtool.
  (Every query returning data on real metrics is ``tests/e2e/test_dashboards.py``.)
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from testbed.binaries import KUBE_VERSION, ensure_helm
from testbed.prometheus import ensure_prometheus

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "plumbob"
RULES = CHART / "files" / "alerts.yaml"
DASHBOARD = CHART / "files" / "grafana-dashboard.json"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ensure_prometheus()["promtool"]), *args], capture_output=True, text=True, check=False
    )


def dashboard_queries() -> list[str]:
    return [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]


def test_rules_check() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_rules_unit_tests() -> None:
    result = promtool("test", "rules", str(REPO / "tests" / "data" / "alerts-test.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_chart_renders_rules_and_dashboard() -> None:
    rendered = subprocess.run(
        [str(ensure_helm()), "template", "plumbob", str(CHART), "--namespace", "plumbob-system",
         "--kube-version", KUBE_VERSION, "--api-versions", "monitoring.coreos.com/v1/PrometheusRule",
         "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(rendered.stdout) if d}
    assert docs["PrometheusRule", "plumbob"]["spec"] == yaml.safe_load(RULES.read_text())
    monitor = docs["ServiceMonitor", "plumbob-operator"]
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    service = docs["Service", "plumbob-operator-metrics"]
    deployment = docs["Deployment", "plumbob-operator"]
    ports = {
        p["name"]: p["containerPort"]
        for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert service["spec"]["ports"][0]["port"] == ports["metrics"] == 8081
    config = docs["ConfigMap", "plumbob-grafana-dashboard"]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config["data"]["plumbob-compliance.json"]) == json.loads(DASHBOARD.read_text())
    plain = subprocess.run(
        [str(ensure_helm()), "template", "plumbob", str(CHART), "--kube-version", KUBE_VERSION],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "kind: PrometheusRule" not in plain and "kind: ServiceMonitor" not in plain


def test_dashboard_json(tmp_path: Path) -> None:
    doc = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)) and all(p["targets"] for p in doc["panels"])
    assert {v["name"] for v in doc["templating"]["list"]} == {"datasource", "profile"}
    # promtool parses each expression as part of a recording rule (the variables substituted)
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {
                        "record": f"dashboard:q{i}",
                        "expr": q.replace("$profile", ".*").replace("$__rate_interval", "1m"),
                    }
                    for i, q in enumerate(dashboard_queries())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
