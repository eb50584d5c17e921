"""The copy's fast paths keep the guarantees of the general ones."""

from __future__ import annotations

import json
import time

import pytest

from deployment.sessions.partition import WHOLE
from deployment.sessions.record import canonical_bytes
from deployment.sessions.snapshot import generate_sessions, write_snapshot
from deployment.sessions.stores import open_store


@pytest.fixture(params=["sqlite_url", "redis_url", "pg_url", "jsonl_source"])
def filled(request, tmp_path):
    recs = list(generate_sessions(120, now=time.time(), expired_fraction=0.0, seed=4))
    if request.param == "jsonl_source":
        write_snapshot(tmp_path / "s.jsonl", iter(recs))
        return f"jsonl://{tmp_path}/s.jsonl", recs
    return request.getfixturevalue(request.param), recs


async def test_encoded_scan_returns_each_record_as_its_canonical_bytes(filled):
    url, recs = filled
    async with open_store(url) as store:
        if not url.startswith("jsonl"):
            await store.write_many(recs)
        seen, cursor = [], None
        while True:
            pairs, cursor = await store.scan_encoded(WHOLE, cursor, 25)
            seen += [b for _, b in pairs]
            assert all(json.loads(b)["id"] == sid for sid, b in pairs)
            if cursor is None:
                break
    assert sorted(seen) == sorted(canonical_bytes(r) for r in recs)


async def test_a_retried_batch_into_an_empty_postgresql_table_is_written_once_and_undone(pg_url):
    recs = list(generate_sessions(50, now=time.time(), expired_fraction=0.0, seed=9))
    async with open_store(pg_url) as store:
        assert await store.write_journaled("m1", recs[:30], known_absent=True) == 30
        # the retry overlaps what the first attempt wrote: COPY refuses it, the general path takes it
        assert await store.write_journaled("m1", recs, known_absent=True) == 50
        assert await store.count() == 50
        entries, _ = await store.journal_scan("m1", None, 100)
        assert len(entries) == 50 and all(prior is None for _, prior in entries)
        assert await store.undo("m1") == 50
        assert await store.count() == 0
