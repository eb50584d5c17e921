"""Flat memory: the worker's peak RSS copying N sessions vs 10×N, through the real SessionMigration.

    .venv/bin/python bench/memory.py [--small 100000] [--large 1000000] [--to sqlite|postgresql]

Writes two JSONL snapshots (generated, streamed to disk), starts a throwaway dev server and a
separate worker process per run, migrates each snapshot and samples the worker's resident memory
every 0.1 s. Prints one JSON object with both peaks and their ratio (target: at most 1.2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import drop, start_dev_server  # noqa: E402
from bench.raw_copy import PG  # noqa: E402
from bench.session_copy import sample_rss  # noqa: E402
from client import api  # noqa: E402
from deployment.sessions.snapshot import generate_sessions, write_snapshot  # noqa: E402
from workflows.session_models import SessionMigrationInput  # noqa: E402


async def peak_rss(env, snapshot: Path, target: str) -> tuple[int, int, float]:  # noqa: ANN001
    """Migrate ``snapshot`` into ``target`` with a fresh worker process; its peak RSS, sessions copied, seconds."""
    queue = f"mem-{uuid.uuid4().hex[:6]}"
    address = env.client.service_client.config.target_host
    worker = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "worker", "--address", address, "--task-queue", queue],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        peak, stop = [0], asyncio.Event()
        sampler = asyncio.create_task(sample_rss(worker.pid, peak, stop))
        started = time.perf_counter()
        inp = SessionMigrationInput(source=f"jsonl://{snapshot}", target=target, batch_size=1000)
        result = await api.wait_for_result(await api.start_session_migration(env.client, inp, task_queue=queue))
        seconds = time.perf_counter() - started
        stop.set()
        await sampler
        assert result.status == "completed", result.error
        return peak[0], result.sessions_copied, seconds
    finally:
        worker.kill()
        worker.wait()


async def main(small: int, large: int, to: str) -> dict:
    env = await start_dev_server()
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for n in (small, large):
                snapshot = Path(tmp) / f"s{n}.jsonl"
                write_snapshot(snapshot, generate_sessions(n, now=time.time(), expired_fraction=0.0, seed=3))
                target = f"sqlite://{tmp}/t{n}.db" if to == "sqlite" else f"{PG}?table=mem_{uuid.uuid4().hex[:8]}"
                try:
                    figures[n] = await peak_rss(env, snapshot, target)
                finally:
                    if to == "postgresql":
                        await drop(target)
                snapshot.unlink()
        finally:
            await env.shutdown()
    (rss_s, copied_s, sec_s), (rss_l, copied_l, sec_l) = figures[small], figures[large]
    return {
        "benchmark": "memory", "from": "jsonl", "to": to,
        "small_sessions": copied_s, "small_peak_rss_mb": round(rss_s / 2**20, 1), "small_seconds": round(sec_s, 1),
        "large_sessions": copied_l, "large_peak_rss_mb": round(rss_l / 2**20, 1), "large_seconds": round(sec_l, 1),
        "ratio": round(rss_l / rss_s, 3), "target_ratio": 1.2, "flat": rss_l / rss_s <= 1.2,
    }  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--to", choices=["sqlite", "postgresql"], default="sqlite")
    a = parser.parse_args()
    print(json.dumps(asyncio.run(main(a.small, a.large, a.to)), indent=2))
