"""Telemetry set-up: zero-config Prometheus metrics, OTLP traces only when OTEL_* asks.

Each case runs :func:`plumbob.telemetry.configure` in a child process (the OpenTelemetry globals
can be set once per process), talking only to loopback.

Cases:
- ``plumbob agent`` makes one "audit node" span with its profile and exit code;
- ``traces_requested`` follows the standard variables (endpoint, OTEL_TRACES_EXPORTER=otlp,
  none, OTEL_SDK_DISABLED); ``parse_address`` reads host:port, IPv6 and ``off``;
- with an OTLP endpoint set, spans made through the API (``telemetry.span``) arrive at a real
  OTLP/HTTP receiver as protobuf, with the service name;
- without it, no tracer provider is installed, and metrics are still served on ``/metrics`` of
  ``PLUMBOB_METRICS_ADDRESS`` with the plumbob instruments; ``off`` serves nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from plumbob.telemetry import parse_address, traces_requested

CHILD = """
import sys, urllib.request
from plumbob import telemetry
from plumbob.controller.store import Store
from plumbob.controller.metrics import StoreMetrics, step
tel = telemetry.configure("plumbob-test", serve_metrics=True)
StoreMetrics(Store())
step("schedules", lambda: None)
with telemetry.span("reconcile", {"plumbob.step": "all"}):
    with telemetry.span("audit node", {"plumbob.node": "node-1"}):
        pass
if tel.metrics_address:
    host, port = tel.metrics_address
    body = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10).read().decode()
    print("METRICS", 'plumbob_reconcile_step_duration_seconds_count{step="schedules"} 1.0' in body)
    print(body)
print("TRACING", tel.tracing)
tel.shutdown()
"""


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_child(env: dict[str, str]) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_traces_requested() -> None:
    assert not traces_requested({})
    assert traces_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert traces_requested({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})
    assert traces_requested({"OTEL_TRACES_EXPORTER": "otlp"})
    assert not traces_requested({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert not traces_requested({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"})


def test_parse_address() -> None:
    assert parse_address("0.0.0.0:8081") == ("0.0.0.0", 8081)
    assert parse_address(":9000") == ("0.0.0.0", 9000)
    assert parse_address("[::1]:8081") == ("::1", 8081)
    assert parse_address("off") is None


def test_spans_reach_an_otlp_receiver_when_asked() -> None:
    receiver = Receiver()
    try:
        out = run_child(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "PLUMBOB_METRICS_ADDRESS": "off",
            }
        )
    finally:
        receiver.close()
    assert "TRACING True" in out
    assert receiver.requests, "no OTLP request arrived"
    names, services = [], []
    for path, body in receiver.requests:
        assert path == "/v1/traces"
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for rs in request.resource_spans:
            services += [a.value.string_value for a in rs.resource.attributes if a.key == "service.name"]
            names += [s.name for ss in rs.scope_spans for s in ss.spans]
    assert sorted(names) == ["audit node", "reconcile", "reconcile schedules"]
    assert services and set(services) == {"plumbob-test"}


def test_metrics_without_traces_by_default() -> None:
    out = run_child({"PLUMBOB_METRICS_ADDRESS": "127.0.0.1:0"})
    assert "TRACING False" in out
    assert "METRICS True" in out
    assert "# TYPE plumbob_reconcile_step_duration_seconds histogram" in out


def test_metrics_off() -> None:
    out = run_child({"PLUMBOB_METRICS_ADDRESS": "off"})
    assert "METRICS" not in out
    assert "TRACING False" in out


def test_agent_audit_is_one_span() -> None:
    """``plumbob agent`` traces its node audit (here one that cannot run: no node name given)."""
    receiver = Receiver()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PLUMBOB_"))}
    env = {
        **base,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "PLUMBOB_PROFILE": "cis",
        "PLUMBOB_SCAN": "s1",
    }
    try:
        out = subprocess.run(
            [sys.executable, "-m", "plumbob", "agent"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        receiver.close()
    assert out.returncode != 0 and "missing environment: PLUMBOB_NODE_NAME" in out.stderr
    spans = []
    for _, body in receiver.requests:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans += [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    [span] = spans
    attributes = {a.key: a.value for a in span.attributes}
    assert span.name == "audit node"
    assert attributes["plumbob.profile"].string_value == "cis"
    assert attributes["plumbob.exit_code"].int_value == out.returncode
