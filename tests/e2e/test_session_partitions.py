"""Parallel partitions end to end: each session copied exactly once, digests added across partitions."""

from __future__ import annotations

import time

from temporalio.testing import ActivityEnvironment

from activities.sessions import SessionActivities
from deployment.sessions.digest import SetDigest
from deployment.sessions.record import canonical_bytes, is_expired
from deployment.sessions.snapshot import generate_sessions
from deployment.sessions.stores import open_store
from tests.e2e.helpers import migrate, store_bytes
from workflows.session_models import VerifyInput


async def test_four_partitions_copy_every_live_session_once_and_verify_by_digest(temporal_client, task_queue, redis_url, pg_url):
    recs = list(generate_sessions(2500, now=time.time(), expired_fraction=0.1, seed=5))
    async with open_store(redis_url) as source:
        await source.write_many([r for r in recs if not is_expired(r, time.time())])  # Redis takes only live keys
    live = {r["id"]: canonical_bytes(r) for r in recs if not is_expired(r, time.time() + 60)}
    result = await migrate(temporal_client, task_queue, source=redis_url, target=pg_url, batch_size=100, parallelism=4)
    assert result.status == "completed", result.error
    assert result.partitions == 4 and result.batch_size == 100 and result.copy_seconds > 0
    assert result.verification and result.verification.ok and result.verification.method == "digest"
    held = await store_bytes(pg_url)
    assert held == live  # byte for byte, nothing missing, nothing extra
    # a session read by two partitions would be counted (and digested) twice
    assert result.sessions_copied == len(held) == int(result.source_digest.split(":")[0])
    assert result.source_digest == result.target_digest


async def test_a_target_that_held_sessions_is_compared_record_by_record(temporal_client, task_queue, sqlite_url, pg_url):
    """Its digest cannot equal the copy's: both stores are compared, and the foreign session is tolerated."""
    recs = list(generate_sessions(400, now=time.time(), expired_fraction=0.0, seed=6))
    async with open_store(sqlite_url) as source:
        await source.write_many(recs)
    async with open_store(pg_url) as target:
        await target.write_many([{**recs[0], "id": "already-there"}])
    result = await migrate(temporal_client, task_queue, source=sqlite_url, target=pg_url, batch_size=50, parallelism=3)
    assert result.status == "completed", result.error
    assert result.partitions == 3 and result.verification.method == "compare"
    assert result.verification.extra_count == 1 and result.sessions_copied == 400


async def test_a_target_whose_digest_differs_from_the_copys_is_compared_and_the_ids_named(sqlite_url, pg_url):
    recs = list(generate_sessions(300, now=time.time(), expired_fraction=0.0, seed=8))
    async with open_store(sqlite_url) as source, open_store(pg_url) as target:
        await source.write_many(recs)
        await target.write_many(recs[:-1] + [{**recs[-1], "metadata": {"changed": True}}])
    copied = SetDigest()
    for r in recs:
        copied.add(r)
    verify = VerifyInput(source=sqlite_url, target=pg_url, copied_digest=str(copied))
    report = await ActivityEnvironment().run(SessionActivities().verify_session_stores, verify)
    assert not report.ok and report.method == "compare"
    assert report.mismatched == [recs[-1]["id"]]
    async with open_store(pg_url) as target:
        await target.write_many([recs[-1]])
    report = await ActivityEnvironment().run(SessionActivities().verify_session_stores, verify)
    assert report.ok and report.method == "digest" and report.source_digest == str(copied)
