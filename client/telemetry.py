"""OpenTelemetry export, chosen by the standard ``OTEL_*`` variables: OTLP when set, off by default.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, spans (from the Temporal tracing
interceptor) and the migration metrics of :mod:`activities.metrics` go to
that collector over OTLP/HTTP; ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``..._METRICS_ENDPOINT`` alone exports only that signal; ``OTEL_SDK_DISABLED=true`` turns it off again. Without them,
nothing is exported and nothing is set up.

The CLI leaves through ``os._exit`` (see :func:`client.cli.entry_with`), which
runs no exit handler, so it calls :func:`flush_telemetry` first: spans and
metrics still buffered are exported then, within a bounded time.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger("snakepit_migrate.telemetry")

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
_done = False
_providers: list[Any] = []  # the tracer and meter providers set up here, flushed by flush_telemetry
FLUSH_TIMEOUT_S = 5.0


def telemetry_wanted() -> bool:
    """Whether the environment asks for OTLP export."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return any(os.environ.get(name) for name in _ENDPOINTS)


def _wanted(signal: str) -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"))


def setup_telemetry() -> bool:
    """Install OTLP exporters for traces and metrics once, if the environment asks; returns whether it did."""
    global _done
    if _done or not telemetry_wanted():
        return _done
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "snakepit-migrate")})
    if _wanted("TRACES"):
        tracer = TracerProvider(resource=resource)
        tracer.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(tracer)
        _providers.append(tracer)
    if _wanted("METRICS"):
        reader = PeriodicExportingMetricReader(OTLPMetricExporter())
        meter = MeterProvider(resource=resource, metric_readers=[reader])
        metrics.set_meter_provider(meter)
        _providers.append(meter)
    _done = True
    return True


def flush_telemetry(timeout_s: float = FLUSH_TIMEOUT_S) -> bool:
    """Export every buffered span and metric now, waiting at most ``timeout_s`` in all; returns whether all went.

    A collector that does not answer costs at most ``timeout_s``; what it did not take is logged, not raised.
    """
    import time

    deadline = time.monotonic() + timeout_s
    ok = True
    for provider in _providers:
        left_ms = max(int((deadline - time.monotonic()) * 1000), 1)
        try:
            ok = bool(provider.force_flush(timeout_millis=left_ms)) and ok
        except Exception as exc:  # an exporter error must not change the command's exit code
            log.warning("Telemetry not flushed: %s", exc)
            ok = False
    if not ok:
        log.warning("Some spans or metrics were not exported within %.1f s", timeout_s)
    return ok
