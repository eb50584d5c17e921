"""The tool's SessionMigration through Temporal against the raw copy, in the same run.

    .venv/bin/python bench/session_copy.py [--from redis] [--to postgresql] [--sessions N] [--partitions P]

Starts a throwaway dev server and a separate worker process (its peak RSS is
sampled), fills the source, runs the raw reference copy and then the
migration (validation, backup point, journaled copy, per-batch read-back,
full digest verification). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from bench.common import drop, fill, start_dev_server  # noqa: E402
from bench.raw_copy import REDIS, PG, raw_redis_to_pg  # noqa: E402
from client import api  # noqa: E402
from client.connect import client_options  # noqa: E402
from client.paths import temporal_cli  # noqa: E402
from workflows.session_models import SessionMigrationInput  # noqa: E402


async def sample_rss(pid: int, peak: list[int], stop: asyncio.Event) -> None:
    proc = psutil.Process(pid)
    while not stop.is_set():
        try:
            peak[0] = max(peak[0], proc.memory_info().rss)
        except psutil.NoSuchProcess:
            return
        await asyncio.sleep(0.1)


async def main(sessions: int, partitions: int, batch_size: int, profile: str | None = None) -> dict:
    env = await start_dev_server()
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    prefix = f"bench-{uuid.uuid4().hex[:6]}:"
    source = f"{REDIS}?prefix={prefix}"
    target = f"{PG}?table=bench_{uuid.uuid4().hex[:8]}"
    address = env.client.service_client.config.target_host
    worker = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "worker", "--address", address, "--task-queue", queue],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        await fill(source, sessions)
        started = time.perf_counter()
        raw = await raw_redis_to_pg(REDIS, prefix, f"raw_{uuid.uuid4().hex[:8]}")
        raw_s = time.perf_counter() - started
        spy = None
        if profile:  # py-spy samples the worker during the migration only; the flame graph goes to ``profile``
            spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "-o", profile, "-f", "speedscope"
                                    if profile.endswith(".json") else "flamegraph", "--pid", str(worker.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        peak, stop = [0], asyncio.Event()
        sampler = asyncio.create_task(sample_rss(worker.pid, peak, stop))
        started = time.perf_counter()
        handle = await api.start_session_migration(
            env.client,
            SessionMigrationInput(source=source, target=target, batch_size=batch_size, parallelism=partitions),
            task_queue=queue,
        )
        result = await api.wait_for_result(handle)
        tool_s = time.perf_counter() - started
        stop.set()
        await sampler
        if spy is not None:
            spy.send_signal(2)
            spy.wait()
    finally:
        worker.kill()
        worker.wait()
        await drop(source)
        await drop(target)
        await env.shutdown()
    return {
        "benchmark": "session_copy",
        "from": "redis",
        "to": "postgresql",
        "sessions": sessions,
        "partitions": partitions,
        "batch_size": batch_size,
        "status": result.status,
        "verified": bool(result.verification and result.verification.ok),
        "raw_sessions_per_s": round(raw / raw_s),
        "tool_seconds": round(tool_s, 2),
        "tool_sessions_per_s": round(result.sessions_copied / tool_s),
        "ratio_to_raw": round((result.sessions_copied / tool_s) / (raw / raw_s), 2),
        "worker_peak_rss_mb": round(peak[0] / 2**20, 1),
        "copy_seconds": result.copy_seconds,
        "copy_sessions_per_s": result.copy_sessions_per_s,
        "run_seconds": result.duration_s,
        "verification": result.verification.method if result.verification else None,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--profile", metavar="PATH", help="record a py-spy profile of the worker (.svg flame graph or .json speedscope)")
    a = parser.parse_args()
    print(json.dumps(asyncio.run(main(a.sessions, a.partitions, a.batch_size, a.profile)), indent=2))
