"""SessionMigration end to end: real workflow, real worker, real stores."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid

import pytest
import redis as redis_sync

from client import api
from client.paths import temporal_cli
from deployment.sessions.record import canonical_bytes, expires_at
from deployment.sessions.snapshot import generate_sessions
from deployment.sessions.stores import open_store
from tests.e2e.helpers import live_lines, make_snapshot, migrate, store_bytes, wait_for_phase
from workflows.session_models import SessionMigrationInput, SessionMigrationResult


async def test_round_trip_through_every_store_keeps_every_live_session_byte_for_byte(
    temporal_client, task_queue, tmp_path, redis_url, pg_url, sqlite_url
):
    recs = make_snapshot(tmp_path / "in.jsonl", 1200)
    expected = live_lines(recs)
    expired = sum(1 for r in recs if canonical_bytes(r) not in live_lines(recs, horizon_s=0))
    hops = [f"jsonl://{tmp_path}/in.jsonl", redis_url, pg_url, sqlite_url, f"jsonl://{tmp_path}/out.jsonl"]
    for n, (src, dst) in enumerate(zip(hops, hops[1:])):
        result = await migrate(temporal_client, task_queue, source=src, target=dst, batch_size=137)
        assert result.status == "completed", result.error
        assert result.source_digest == result.target_digest
        assert result.verification and result.verification.ok
        assert result.sessions_skipped_expired == (expired if n == 0 else 0)
        assert result.sessions_copied == len(recs) - expired
    out = set((tmp_path / "out.jsonl").read_bytes().splitlines())
    assert expected <= out and len(out) == len(recs) - expired
    # the Redis hop kept every expiry: each key expires when its session does
    r = redis_sync.Redis.from_url(redis_url.split("?")[0])
    prefix = redis_url.split("prefix=")[1]
    for rec in recs[:50]:
        ms = r.pexpiretime(prefix + rec["id"])
        if canonical_bytes(rec) in expected:
            assert 0 <= ms - expires_at(rec) * 1000 < 1


async def test_failure_after_half_the_batches_leaves_the_target_as_it_was(temporal_client, task_queue, tmp_path, pg_url):
    recs = make_snapshot(tmp_path / "in.jsonl", 1000, expired_fraction=0.0)
    async with open_store(pg_url) as target:  # the target already holds sessions, one of them shared with the source
        others = list(generate_sessions(30, now=recs[0]["last_accessed"], expired_fraction=0.0, seed=99))
        await target.write_many(others + [{**recs[0], "metadata": {"older": "copy"}}])
    before = await store_bytes(pg_url)
    result = await migrate(
        temporal_client, task_queue, source=f"jsonl://{tmp_path}/in.jsonl", target=pg_url,
        batch_size=100, overwrite=True, fail_after_batches=5,
    )  # fmt: skip
    assert result.status == "rolled_back" and result.rolled_back
    assert result.error_type == "InjectedFailure" and result.failed_phase == "copying"
    assert result.restored == 500
    assert await store_bytes(pg_url) == before
    async with open_store(pg_url) as target:
        assert await target.journal_ids() == []


async def test_conflicting_target_is_refused_and_left_untouched(temporal_client, task_queue, tmp_path, sqlite_url):
    recs = make_snapshot(tmp_path / "in.jsonl", 200, expired_fraction=0.0)
    async with open_store(sqlite_url) as target:
        await target.write_many(recs[10:12])
    before = await store_bytes(sqlite_url)
    result = await migrate(temporal_client, task_queue, source=f"jsonl://{tmp_path}/in.jsonl", target=sqlite_url)
    assert result.status == "failed" and result.error_type == "TargetNotCompatible"
    assert "2 session(s)" in result.error and recs[10]["id"] in result.error
    assert await store_bytes(sqlite_url) == before


async def test_dry_run_reads_everything_and_writes_nothing(temporal_client, task_queue, tmp_path, redis_url):
    recs = make_snapshot(tmp_path / "in.jsonl", 300)
    result = await migrate(temporal_client, task_queue, source=f"jsonl://{tmp_path}/in.jsonl", target=redis_url, dry_run=True)
    assert result.status == "dry_run" and result.sessions_total == 300
    assert result.sessions_copied == 0 and result.sessions_skipped_expired > 0
    assert await store_bytes(redis_url) == {}


async def test_completed_migration_rolls_back_from_its_journal(temporal_client, task_queue, tmp_path, sqlite_url):
    make_snapshot(tmp_path / "in.jsonl", 400)
    async with open_store(sqlite_url) as target:
        await target.write_many(list(generate_sessions(5, now=1e9 + 10**6, expired_fraction=0.0, seed=3)))
    before = await store_bytes(sqlite_url)
    mid = f"m-{uuid.uuid4().hex[:6]}"
    done = await migrate(temporal_client, task_queue, mid, source=f"jsonl://{tmp_path}/in.jsonl", target=sqlite_url)
    assert done.status == "completed" and done.verification.extra_count == 0
    assert len(await store_bytes(sqlite_url)) == len(before) + done.sessions_copied
    handle = await api.request_rollback(temporal_client, mid)
    undone = await api.wait_for_result(handle)
    assert handle.id == f"{mid}-rollback" and undone.status == "rolled_back"
    assert undone.restored == done.sessions_copied
    assert await store_bytes(sqlite_url) == before
    with pytest.raises(api.AlreadyRolledBack, match="rolled back already"):
        await api.request_rollback(temporal_client, mid)


async def test_operator_rollback_signal_mid_copy_and_progress_query(temporal_client, task_queue, tmp_path, sqlite_url):
    make_snapshot(tmp_path / "in.jsonl", 6000, expired_fraction=0.0)
    handle = await api.start_session_migration(
        temporal_client,
        SessionMigrationInput(source=f"jsonl://{tmp_path}/in.jsonl", target=sqlite_url, batch_size=5, slice_seconds=0.2),
        task_queue=task_queue,
    )
    p = await wait_for_phase(handle, "copying", min_done=1)
    assert p.total == 6000 and p.rate_per_s > 0 and p.eta_s is not None
    await handle.signal("rollback")
    result = await api.wait_for_result(handle)
    assert result.status == "rolled_back" and result.error_type == "RollbackRequested"
    assert await store_bytes(sqlite_url) == {}


async def test_workflow_starts_from_the_temporal_cli_with_one_json_object(temporal_env, task_queue, tmp_path, sqlite_url):
    make_snapshot(tmp_path / "in.jsonl", 100)
    wid = f"cli-{uuid.uuid4().hex[:6]}"
    payload = json.dumps({"source": f"jsonl://{tmp_path}/in.jsonl", "target": sqlite_url})
    address = temporal_env.client.service_client.config.target_host
    subprocess.run(
        [temporal_cli(), "workflow", "start", "--address", address, "--type", "SessionMigration",
         "--task-queue", task_queue, "--workflow-id", wid, "--input", payload],
        check=True, capture_output=True,
    )  # fmt: skip
    result = await temporal_env.client.get_workflow_handle(wid, result_type=SessionMigrationResult).result()
    assert result.status == "completed" and result.source_digest == result.target_digest


async def test_invalid_input_fails_the_run_at_once_with_the_reason(temporal_client, task_queue):
    handle = await temporal_client.start_workflow(
        "SessionMigration", {"source": "jsonl:///x", "batch_size": 0}, id=f"bad-{uuid.uuid4().hex[:6]}", task_queue=task_queue
    )
    try:
        await handle.result()
        raise AssertionError("the run should have failed")
    except Exception as exc:
        text = str(exc.cause) if getattr(exc, "cause", None) else str(exc)
        assert "target" in text and "batch_size" in text
