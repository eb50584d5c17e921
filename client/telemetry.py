"""OpenTelemetry export, chosen by the standard ``OTEL_*`` variables: OTLP when set, off by default.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, spans (from the Temporal tracing
interceptor) and the migration metrics of :mod:`activities.metrics` go to
that collector over OTLP/HTTP; ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``..._METRICS_ENDPOINT`` alone exports only that signal; ``OTEL_SDK_DISABLED=true`` turns it off again. Without them,
nothing is exported and nothing is set up.
"""

from __future__ import annotations

import os

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
_done = False


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
    if _wanted("METRICS"):
        reader = PeriodicExportingMetricReader(OTLPMetricExporter())
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    _done = True
    return True
