"""The CLI's own spans reach an OTLP receiver although the CLI leaves through os._exit (no exit handlers run)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.e2e.helpers import make_snapshot


@pytest.fixture
async def otlp_receiver():
    """A local OTLP/HTTP trace receiver: POST /v1/traces (protobuf); returns the names of every span it got."""
    spans: list[str] = []

    async def traces(request: web.Request) -> web.Response:
        body = ExportTraceServiceRequest()
        body.ParseFromString(await request.read())
        spans.extend(s.name for rs in body.resource_spans for ss in rs.scope_spans for s in ss.spans)
        return web.Response(status=200, content_type="application/x-protobuf", body=b"")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/v1/traces", spans
    await runner.cleanup()


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    code = "from client.cli import entry; entry()"  # the console script's path: guarded, then os._exit
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120)


async def test_the_cli_flushes_its_spans_before_it_exits(temporal_env, tmp_path, sqlite_url, otlp_receiver):
    endpoint, spans = otlp_receiver
    make_snapshot(tmp_path / "in.jsonl", 20)
    (tmp_path / "home").mkdir()
    env = {**os.environ, "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
           "SNAKEPIT_MIGRATE_HOME": str(tmp_path / "home"), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint,
           "OTEL_BSP_SCHEDULE_DELAY": "60000"}  # fmt: skip  (no periodic export: only the flush at exit can send them)
    env.pop("OTEL_SDK_DISABLED", None)
    proc = await asyncio.to_thread(run_cli, env, "sessions", "migrate", "--from", f"jsonl://{tmp_path}/in.jsonl",
                                   "--to", sqlite_url, "--no-wait", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "StartWorkflow:SessionMigration" in spans, spans

    spans.clear()
    quiet = {k: v for k, v in env.items() if not k.startswith("OTEL_EXPORTER")}
    proc = await asyncio.to_thread(run_cli, quiet, "sessions", "migrate", "--from", f"jsonl://{tmp_path}/in.jsonl",
                                   "--to", f"sqlite://{tmp_path}/other.db", "--no-wait", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert spans == []  # off by default: nothing set up, nothing sent


async def test_a_collector_that_does_not_answer_does_not_change_the_outcome(temporal_env, tmp_path, sqlite_url):
    make_snapshot(tmp_path / "in.jsonl", 10)
    (tmp_path / "home").mkdir()
    env = {**os.environ, "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
           "SNAKEPIT_MIGRATE_HOME": str(tmp_path / "home"), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces"}  # fmt: skip
    env.pop("OTEL_SDK_DISABLED", None)
    proc = await asyncio.to_thread(run_cli, env, "sessions", "migrate", "--from", f"jsonl://{tmp_path}/in.jsonl",
                                   "--to", sqlite_url, "--no-wait", "--json")  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert json.loads(proc.stdout)["status"] == "running"  # still exactly one JSON object on stdout
