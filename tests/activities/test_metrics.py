"""The migration metrics, read back through an in-memory OpenTelemetry reader while real migrations run."""

from __future__ import annotations

import uuid

import pytest
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from client import api
from client.telemetry import setup_telemetry, telemetry_wanted
from tests.e2e.helpers import make_snapshot
from workflows.session_models import SessionMigrationInput

_READER = InMemoryMetricReader()


@pytest.fixture(scope="module")
def reader() -> InMemoryMetricReader:
    """The process's meter provider, reading into memory (set once: OpenTelemetry allows one global provider)."""
    metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
    return _READER


def points(reader: InMemoryMetricReader, name: str, migration_id: str) -> list:
    data = reader.get_metrics_data()
    return [
        p
        for rm in (data.resource_metrics if data else [])
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
        for p in m.data.data_points
        if p.attributes.get("migration_id") == migration_id
    ]


async def test_a_copy_counts_its_sessions_and_times_its_batches(reader, temporal_client, task_queue, tmp_path, sqlite_url):
    make_snapshot(tmp_path / "in.jsonl", 330, expired_fraction=0.2)
    mid = f"metrics-{uuid.uuid4().hex[:6]}"
    handle = await api.start_session_migration(
        temporal_client, SessionMigrationInput(source=f"jsonl://{tmp_path}/in.jsonl", target=sqlite_url, batch_size=100), mid, task_queue
    )
    result = await api.wait_for_result(handle)
    assert result.status == "completed"
    counted = {p.attributes["outcome"]: p.value for p in points(reader, "snakepit_migrate.sessions", mid)}
    assert counted == {"copied": result.sessions_copied, "skipped_expired": result.sessions_skipped_expired}
    (latency,) = points(reader, "snakepit_migrate.batch.duration", mid)
    assert latency.count == result.batches == 4 and latency.sum > 0
    assert points(reader, "snakepit_migrate.errors", mid) == [] and points(reader, "snakepit_migrate.rollbacks", mid) == []
    # impact on the worker: this test process is the worker, so its figures bound them
    import psutil

    me = psutil.Process()
    assert 0 < result.worker_cpu_s <= sum(me.cpu_times()[:2])
    assert 20 * 2**20 < result.worker_peak_rss_bytes <= me.memory_info().rss * 2


async def test_a_failure_counts_its_error_type_and_the_rollback(reader, temporal_client, task_queue, tmp_path, sqlite_url):
    make_snapshot(tmp_path / "in.jsonl", 300, expired_fraction=0.0)
    mid = f"metrics-{uuid.uuid4().hex[:6]}"
    handle = await api.start_session_migration(
        temporal_client,
        SessionMigrationInput(source=f"jsonl://{tmp_path}/in.jsonl", target=sqlite_url, batch_size=50, fail_after_batches=2),
        mid,
        task_queue,
    )
    result = await api.wait_for_result(handle)
    assert result.status == "rolled_back"
    errors = {(p.attributes["activity"], p.attributes["error_type"]): p.value for p in points(reader, "snakepit_migrate.errors", mid)}
    assert errors == {("copy_session_batches", "InjectedFailure"): 1}
    assert [p.value for p in points(reader, "snakepit_migrate.rollbacks", mid)] == [1]


def test_export_is_off_unless_an_otlp_endpoint_is_set(monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert not telemetry_wanted() and setup_telemetry() is False
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert telemetry_wanted()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not telemetry_wanted()
