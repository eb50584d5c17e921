"""p99 latency of the same load before and during a zero-downtime session migration.

    .venv/bin/python bench/zero_downtime_latency.py [--sessions N] [--rate R] [--seconds S]

Starts a throwaway Temporal dev server, a worker, and a 3-instance reference
fleet on SQLite; measures a steady load for S seconds, then the same load
while the fleet's sessions move to PostgreSQL ($SNAKEPIT_TEST_PG) with
zero_downtime. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from temporalio.testing import WorkflowEnvironment  # noqa: E402

from bench.common import start_dev_server  # noqa: E402
from client import api  # noqa: E402
from client.connect import client_options  # noqa: E402
from client.paths import temporal_cli  # noqa: E402
from deployment.fleet.local import LocalFleet  # noqa: E402
from deployment.pool.load import run_load  # noqa: E402
from deployment.sessions.snapshot import generate_sessions  # noqa: E402
from deployment.sessions.stores import open_store  # noqa: E402
from worker import build_worker  # noqa: E402
from workflows.session_models import SessionMigrationInput  # noqa: E402

PG = os.environ.get("SNAKEPIT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


async def main(sessions: int, rate: float, seconds: float) -> dict:
    env = await start_dev_server()
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    table = f"bench_{uuid.uuid4().hex[:8]}"
    target = f"{PG}?table={table}"
    with tempfile.TemporaryDirectory() as tmp:
        source = f"sqlite://{tmp}/sessions.db"
        async with open_store(source) as store:
            await store.write_many(list(generate_sessions(sessions, now=time.time(), expired_fraction=0.05)))
        config = {
            "config_version": "v1", "session_store": source, "session_default_ttl": 600,
            "pools": [{"name": "default", "pool_size": 3, "adapter_args": ["--adapter", "fleet_adapters.CounterAdapter"],
                       "adapter_env": {"PYTHONPATH": str(ROOT / "tests" / "fixtures" / "fleet")}}],
        }  # fmt: skip
        (Path(tmp) / "fleet.json").write_text(json.dumps(config))
        try:
            async with build_worker(env.client, queue), LocalFleet.running(Path(tmp) / "fleet.json", instances=3, port=0) as fleet:
                before = await run_load(fleet.url, rate=rate, duration=seconds, sessions=50, tool="incr")
                stop = asyncio.Event()
                during_task = asyncio.create_task(run_load(fleet.url, rate=rate, duration=600, sessions=50, tool="incr", stop=stop))
                started = time.monotonic()
                handle = await api.start_session_migration(
                    env.client,
                    SessionMigrationInput(source=source, target=target, zero_downtime=True, soak_seconds=2, fleet=fleet.url),
                    task_queue=queue,
                )
                result = await api.wait_for_result(handle)
                migration_s = time.monotonic() - started
                stop.set()
                during = await during_task
        finally:
            async with open_store(target) as store:
                await store.pool.execute(f"DROP TABLE IF EXISTS {table}, {table}_migrate_journal, {table}_migrate_control")
            await env.shutdown()
    p99_before, p99_during = before.latency_ms["p99"], during.latency_ms["p99"]
    return {
        "benchmark": "zero_downtime_latency",
        "sessions": sessions,
        "rate_per_s": rate,
        "migration_status": result.status,
        "migration_s": round(migration_s, 2),
        "requests_before": before.requests,
        "errors_before": before.errors,
        "requests_during": during.requests,
        "errors_during": during.errors,
        "p50_before_ms": before.latency_ms["p50"],
        "p50_during_ms": during.latency_ms["p50"],
        "p99_before_ms": p99_before,
        "p99_during_ms": p99_during,
        "p99_ratio": round(p99_during / p99_before, 2) if p99_before else None,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.sessions, args.rate, args.seconds)), indent=2))
