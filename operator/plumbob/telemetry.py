"""OpenTelemetry for Plumbob: helpers on the API for library code, SDK set-up for the processes.

Library code (the reconciler, the agent, :mod:`plumbob.kube`) uses only the OpenTelemetry API
through :func:`span` and :func:`meter`; until a process installs providers these are no-ops, so
unit tests and ``plumbob audit`` pay nothing. The processes install the SDK once at start-up
with :func:`configure`:

- **metrics** (the operator): a ``MeterProvider`` whose only reader is the Prometheus exporter,
  served on ``/metrics`` of ``PLUMBOB_METRICS_ADDRESS`` (default ``0.0.0.0:8081``; ``off``
  disables it). No configuration is needed for Prometheus to scrape it;
- **traces** (operator and agent): exported over OTLP (HTTP/protobuf) only when the standard
  variables ask for it: ``OTEL_TRACES_EXPORTER`` names ``otlp``, or an OTLP endpoint is set
  (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) and
  ``OTEL_TRACES_EXPORTER`` is not ``none``. ``OTEL_SDK_DISABLED=true`` turns both off.
  The exporter reads the rest of the ``OTEL_EXPORTER_OTLP_*`` variables itself (headers,
  timeout, certificates); ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` name the source.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.util.types import AttributeValue

log = logging.getLogger("plumbob.telemetry")

SCOPE = "plumbob"
DEFAULT_METRICS_ADDRESS = "0.0.0.0:8081"
# Series per instrument before the SDK folds the rest into one overflow series. The only
# instrument that grows with the cluster is the per-node score (one series per profile and node).
CARDINALITY_LIMIT = 50_000


def meter() -> metrics.Meter:
    return metrics.get_meter(SCOPE)


def tracer() -> trace.Tracer:
    return trace.get_tracer(SCOPE)


@contextmanager
def span(name: str, attributes: Mapping[str, AttributeValue] | None = None) -> Iterator[trace.Span]:
    """A span around a block (one reconcile step, one node audit); exceptions are recorded on it."""
    with tracer().start_as_current_span(name, attributes=dict(attributes or {})) as current:
        yield current


def traces_requested(env: Mapping[str, str]) -> bool:
    """Whether the standard ``OTEL_*`` variables ask for OTLP trace export."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()}
    if "none" in exporters:
        return False
    if "otlp" in exporters:
        return True
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def parse_address(text: str) -> tuple[str, int] | None:
    """``host:port`` (``[::1]:8081`` for IPv6) → (host, port); ``off``/empty → None."""
    text = text.strip()
    if text.lower() in ("", "off", "false", "0", "none"):
        return None
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - see DEFAULT_METRICS_ADDRESS


@dataclass
class Telemetry:
    """What :func:`configure` installed; :meth:`shutdown` flushes spans and stops the server."""

    metrics_address: tuple[str, int] | None = None
    tracing: bool = False
    _closers: list[Any] = field(default_factory=list)

    def shutdown(self) -> None:
        for close in reversed(self._closers):
            try:
                close()
            except Exception:  # shutdown must not fail the process exit
                log.debug("telemetry shutdown step failed", exc_info=True)
        self._closers.clear()


def configure(service: str, *, serve_metrics: bool, env: Mapping[str, str] | None = None) -> Telemetry:
    """Install the SDK providers for this process (see the module docstring). Call once, at start."""
    # The SDK and exporters are imported here only: library code never needs them.
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415

    env = os.environ if env is None else env
    out = Telemetry()
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return out
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or service})
    if serve_metrics:
        address = parse_address(env.get("PLUMBOB_METRICS_ADDRESS", DEFAULT_METRICS_ADDRESS))
        if address is not None:
            _configure_metrics(resource, address, out)
    if traces_requested(env):
        _configure_traces(resource, env, out)
    return out


def _configure_metrics(resource: Any, address: tuple[str, int], out: Telemetry) -> None:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: PLC0415
    from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.metrics.view import View  # noqa: PLC0415
    from prometheus_client import start_http_server  # noqa: PLC0415

    reader = PrometheusMetricReader(scope_info_enabled=False)
    provider = MeterProvider(
        metric_readers=[reader],
        resource=resource,
        views=[View(instrument_name="*", aggregation_cardinality_limit=CARDINALITY_LIMIT)],
    )
    metrics.set_meter_provider(provider)
    try:
        server, _thread = start_http_server(address[1], addr=address[0])
    except OSError as exc:  # the operator's work matters more than its metrics: say so loudly, go on
        log.error("cannot serve metrics on %s:%d: %s", address[0], address[1], exc)
        out._closers.append(provider.shutdown)
        return
    out.metrics_address = (address[0], server.server_address[1])
    out._closers += [provider.shutdown, server.shutdown]
    log.info("metrics on http://%s:%d/metrics", *out.metrics_address)


def _configure_traces(resource: Any, env: Mapping[str, str], out: Telemetry) -> None:
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol and protocol.strip() not in ("http/protobuf",):
        log.warning(
            "OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported (Plumbob ships the http/protobuf OTLP "
            "exporter only); traces are not exported",
            protocol,
        )
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    out.tracing = True
    out._closers.append(provider.shutdown)
    log.info("exporting traces over OTLP")
