"""What the benchmarks share: filling stores fast and measuring a process's peak memory."""

from __future__ import annotations

import asyncio
import time

from deployment.sessions.snapshot import generate_sessions
from deployment.sessions.stores import open_store


async def fill(url: str, count: int, batch: int = 5000) -> None:
    """Write ``count`` generated live sessions into a store, in big batches."""
    async with open_store(url) as store:
        chunk: list[dict] = []
        for rec in generate_sessions(count, now=time.time(), expired_fraction=0.0, seed=11):
            chunk.append(rec)
            if len(chunk) >= batch:
                await store.write_many(chunk)
                chunk = []
        if chunk:
            await store.write_many(chunk)


async def drop(url: str) -> None:
    """Remove every session (and side table / key) of a benchmark store."""
    async with open_store(url) as store:
        if store.scheme == "redis":
            keys = [k async for k in store.r.scan_iter(match=store.prefix + "*", count=5000)]
            for i in range(0, len(keys), 5000):
                await store.r.delete(*keys[i : i + 5000])
            for k in [k async for k in store.r.scan_iter(match="snakepit-migrate:*" + store.prefix + "*")]:
                await store.r.delete(k)
        elif store.scheme == "postgresql":
            t = store.table
            await store.pool.execute(f"DROP TABLE IF EXISTS {t}, {t}_migrate_journal, {t}_migrate_control")


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


async def start_dev_server():  # noqa: ANN201
    """A throwaway Temporal dev server whose banner does not reach stdout (the JSON goes there)."""
    import os
    import sys

    from temporalio.testing import WorkflowEnvironment

    from client.connect import client_options
    from client.paths import temporal_cli

    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the server process inherits this stdout
    try:
        return await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_cli(), **client_options())
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
