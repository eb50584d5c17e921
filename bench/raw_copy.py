"""The physical reference: a hand-written bulk copy of sessions, no framework.

    .venv/bin/python bench/raw_copy.py [--sessions N]

Redis → PostgreSQL: SCAN + pipelined MGET, then PostgreSQL COPY, single stream.
Prints one JSON object with sessions/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from bench.common import drop, fill  # noqa: E402

PG = os.environ.get("SNAKEPIT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("SNAKEPIT_TEST_REDIS", "redis://127.0.0.1:6379/15")


async def raw_redis_to_pg(redis_url: str, prefix: str, table: str) -> int:
    """Copy every ``prefix*`` key into ``table`` with COPY; returns how many."""
    r = aioredis.from_url(redis_url)
    conn = await asyncpg.connect(PG)
    await conn.execute(f"CREATE TABLE {table} (id text PRIMARY KEY, expires_at double precision NOT NULL, record json NOT NULL)")
    copied = 0
    cursor = 0
    while True:
        cursor, keys = await r.scan(cursor=cursor, match=prefix + "*", count=2000)
        if keys:
            values = await r.mget(keys)
            rows = []
            for k, v in zip(keys, values):
                if v is None:
                    continue
                rec = json.loads(v)
                rows.append((k.decode()[len(prefix):], rec["last_accessed"] + rec["ttl"], v.decode()))
            await conn.copy_records_to_table(table, records=rows, columns=["id", "expires_at", "record"])
            copied += len(rows)
        if cursor == 0:
            break
    await conn.execute(f"DROP TABLE {table}")
    await conn.close()
    await r.aclose()
    return copied


async def main(sessions: int) -> dict:
    prefix = f"bench-{uuid.uuid4().hex[:6]}:"
    source = f"{REDIS}?prefix={prefix}"
    await fill(source, sessions)
    try:
        started = time.perf_counter()
        copied = await raw_redis_to_pg(REDIS, prefix, f"raw_{uuid.uuid4().hex[:8]}")
        elapsed = time.perf_counter() - started
    finally:
        await drop(source)
    return {"benchmark": "raw_copy", "from": "redis", "to": "postgresql", "sessions": copied,
            "seconds": round(elapsed, 3), "sessions_per_s": round(copied / elapsed)}  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200_000)
    print(json.dumps(asyncio.run(main(parser.parse_args().sessions)), indent=2))
