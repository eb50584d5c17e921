"""Partitions of a key space: every id, including one written during the scan, is read by exactly one partition."""

from __future__ import annotations

import asyncio
import random
import string
import time

import pytest

from deployment.sessions.partition import hash_plan, range_plan
from deployment.sessions.snapshot import generate_sessions
from deployment.sessions.stores import open_store


def random_ids(n: int, seed: int = 3) -> list[str]:
    rnd = random.Random(seed)
    return ["".join(rnd.choices(string.ascii_letters + string.digits + "-_:é", k=rnd.randint(1, 24))) for _ in range(n)]


@pytest.mark.parametrize("plan", [hash_plan(4), hash_plan(7), range_plan(["g", "m", "t"]), range_plan(["b", "b", "x"])])
def test_every_id_belongs_to_exactly_one_partition(plan):
    for sid in random_ids(5000) + ["g", "m", "t", "b", "x", "a"]:
        assert sum(p.holds(sid) for p in plan) == 1, sid


def test_a_plan_of_one_is_the_whole_key_space():
    assert hash_plan(1) == range_plan([]) and hash_plan(1)[0].whole


@pytest.fixture(params=["sqlite_url", "redis_url", "pg_url"])
def store_url(request) -> str:
    return request.getfixturevalue(request.param)


async def test_partitions_scanned_concurrently_read_every_id_once_even_those_added_meanwhile(store_url):
    now = time.time()
    first = list(generate_sessions(3000, now=now, expired_fraction=0.0, seed=1))
    later = [{**r, "id": f"late-{r['id']}"} for r in generate_sessions(600, now=now, expired_fraction=0.0, seed=2)]
    async with open_store(store_url) as store:
        await store.write_many(first)
        plan = await store.plan_partitions(4)
        assert len(plan) == 4
        seen: list[list[str]] = [[] for _ in plan]

        async def scan(i: int) -> None:
            cursor = None
            while True:
                blobs, cursor = await store.scan_partition(plan[i], cursor, 97)
                seen[i] += [r["id"] for r in blobs]
                await asyncio.sleep(0)
                if cursor is None:
                    return

        async def write_meanwhile() -> None:
            for k in range(0, len(later), 50):
                async with open_store(store_url) as other:
                    await other.write_many(later[k : k + 50])
                await asyncio.sleep(0)

        await asyncio.gather(*(scan(i) for i in range(len(plan))), write_meanwhile())
    every = [sid for ids in seen for sid in ids]
    assert len(every) == len(set(every)), "an id was read by two partitions (or twice by one)"
    assert {r["id"] for r in first} <= set(every), "an id present throughout was missed"
    for part, ids in zip(plan, seen):
        assert all(part.holds(sid) for sid in ids)
    assert all(sum(p.holds(r["id"]) for p in plan) == 1 for r in later)  # a late id has exactly one owner
    assert all(seen), "some partition read nothing: the split is not spreading the ids"
