"""Operating a running session migration: reconfigure, pause/resume, continue-as-new, corrupt records."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest
from temporalio.client import WorkflowUpdateFailedError

from client import api
from deployment.sessions.snapshot import generate_sessions
from deployment.sessions.stores import open_store
from tests.e2e.helpers import store_bytes, wait_for_phase
from workflows.session_models import MigrationProgress, ReconfigureInput, SessionMigrationInput


@pytest.fixture
def cli(temporal_env, tmp_path):
    """Run ``snakepit-migrate`` against the test server without blocking the test's worker; returns (code, stdout, stderr)."""
    env = {**os.environ, "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
           "SNAKEPIT_MIGRATE_HOME": str(tmp_path / "home")}  # fmt: skip

    async def run(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "client.cli", *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
        assert b"Traceback" not in err, err.decode()
        return proc.returncode, out.decode(), err.decode()

    return run


async def fill(url: str, n: int, seed: int = 12) -> None:
    async with open_store(url) as store:
        await store.write_many(list(generate_sessions(n, now=time.time(), expired_fraction=0.0, seed=seed)))


async def progress(handle) -> MigrationProgress:  # noqa: ANN001
    return await handle.query("progress", result_type=MigrationProgress)


async def until(check, timeout: float = 60.0, what: str = "") -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_live_reconfigure_changes_the_batch_size_and_bad_values_are_refused(
    temporal_client, task_queue, sqlite_url, pg_url, cli
):
    await fill(sqlite_url, 3000)
    # slow enough (about 30 s) that the CLI's commands reach it while it copies, however loaded the machine
    inp = SessionMigrationInput(source=sqlite_url, target=pg_url, batch_size=10, parallelism=2, rate_limit_per_s=100,
                                slice_seconds=0.3)  # fmt: skip
    handle = await api.start_session_migration(temporal_client, inp, task_queue=task_queue)
    await wait_for_phase(handle, "copying", min_done=1)
    await until(lambda: _batch_is(handle, 10), what="batch size 10 in progress")

    code, out, err = await cli("sessions", "reconfigure", handle.id, "--batch-size", "0", "--parallelism", "9", "--json")
    assert code == 2 and out == "", err
    assert "batch size 0 is out of range: give 1 to 10000" in err
    assert "parallelism 9 is out of range: this copy has 2 partition(s), give 1 to 2" in err
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("reconfigure", ReconfigureInput(rate_limit_per_s=-1))

    code, out, err = await cli("sessions", "reconfigure", handle.id, "--batch-size", "150", "--rate", "2000", "--json")
    assert code == 0, err
    assert json.loads(out) == {"migration_id": handle.id, "batch_size": 150, "parallelism": 2,
                               "rate_limit_per_s": 2000.0, "paused": False}  # fmt: skip
    await until(lambda: _batch_is(handle, 150), what="batch size 150 in progress")
    result = await api.wait_for_result(handle)
    assert result.status == "completed", result.error
    assert result.batch_size == 150 and result.rate_limit_per_s == 2000 and result.sessions_copied == 3000
    assert result.source_digest == result.target_digest


async def _batch_is(handle, size: int) -> bool:  # noqa: ANN001
    return (await progress(handle)).batch_size == size


async def test_pause_stops_progress_and_resume_finishes_with_equal_digests(temporal_client, task_queue, redis_url, pg_url, cli):
    await fill(redis_url, 2000)
    # about 15 s of copying: the pause from a CLI process arrives long before the end, however loaded the machine
    inp = SessionMigrationInput(source=redis_url, target=pg_url, batch_size=50, parallelism=2, rate_limit_per_s=130,
                                slice_seconds=0.3)  # fmt: skip
    handle = await api.start_session_migration(temporal_client, inp, task_queue=task_queue)
    await wait_for_phase(handle, "copying", min_done=1)
    code, out, err = await cli("sessions", "pause", handle.id, "--json")
    assert code == 0 and json.loads(out) == {"migration_id": handle.id, "paused": True}, err
    await asyncio.sleep(1.5)  # slices under way when the pause came end within their 0.3 s
    held = (await progress(handle)).done
    await asyncio.sleep(2.0)
    paused = await progress(handle)
    assert paused.done == held and paused.done < 2000 and paused.settings.paused
    code, _, err = await cli("sessions", "resume", handle.id)
    assert code == 0, err
    result = await api.wait_for_result(handle)
    assert result.status == "completed", result.error
    assert result.sessions_copied == 2000 and result.source_digest == result.target_digest
    assert len(await store_bytes(pg_url)) == 2000


async def test_controls_of_an_unknown_migration_are_bad_input(cli):
    code, out, err = await cli("sessions", "pause", "no-such-migration")
    assert code == 2 and "no migration 'no-such-migration'" in err


async def test_a_long_copy_continues_as_new_and_keeps_its_progress(temporal_client, task_queue, sqlite_url, pg_url):
    await fill(sqlite_url, 1200)
    inp = SessionMigrationInput(source=sqlite_url, target=pg_url, batch_size=40, parallelism=3, slice_seconds=0.01,
                                continue_as_new_after_slices=4)  # fmt: skip
    handle = await api.start_session_migration(temporal_client, inp, task_queue=task_queue)
    result = await api.wait_for_result(handle)
    assert result.status == "completed", result.error
    assert result.continued_as_new >= 2
    assert result.sessions_copied == 1200 and result.batches >= 30
    assert result.source_digest == result.target_digest and result.verification.ok
    assert len(await store_bytes(pg_url)) == 1200
    runs = [wf.run_id async for wf in temporal_client.list_workflows(f"WorkflowId = '{handle.id}'")]
    assert len(runs) == result.continued_as_new + 1
    # the journal kept every id that every run wrote
    async with open_store(pg_url) as target:
        entries, _ = await target.journal_scan(handle.id, None, 5000)
    assert len(entries) == 1200


async def test_a_continued_run_rolls_back_everything_every_run_wrote(temporal_client, task_queue, sqlite_url, pg_url):
    await fill(sqlite_url, 600)
    inp = SessionMigrationInput(source=sqlite_url, target=pg_url, batch_size=20, parallelism=2, slice_seconds=0.01,
                                continue_as_new_after_slices=3)  # fmt: skip
    handle = await api.start_session_migration(temporal_client, inp, task_queue=task_queue)
    await until(lambda: _continued(handle), what="a continued run")
    await handle.signal("rollback")
    result = await api.wait_for_result(handle)
    assert result.status == "rolled_back" and result.error_type == "RollbackRequested"
    assert await store_bytes(pg_url) == {}


async def _continued(handle) -> bool:  # noqa: ANN001
    return (await progress(handle)).continued >= 1


@pytest.mark.parametrize("mode", ["stop", "skip"])
async def test_corrupt_source_records_stop_or_are_skipped_and_listed(temporal_client, task_queue, sqlite_url, pg_url, mode):
    await fill(sqlite_url, 300)
    path = sqlite_url.removeprefix("sqlite://").split("?")[0]
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO snakepit_sessions VALUES ('broken-json', 1e12, '{\"id\": \"broken-json\", ')")
        db.execute("INSERT INTO snakepit_sessions VALUES ('no-ttl', 1e12, ?)",
                   (json.dumps({"id": "no-ttl", "created_at": 1.0, "last_accessed": 2.0}),))  # fmt: skip
    inp = SessionMigrationInput(source=sqlite_url, target=pg_url, batch_size=64, on_corrupt=mode)
    handle = await api.start_session_migration(temporal_client, inp, task_queue=task_queue)
    result = await api.wait_for_result(handle)
    if mode == "stop":
        assert result.status == "rolled_back" and result.error_type == "CorruptRecord"
        assert "'broken-json'" in result.error or "'no-ttl'" in result.error
        assert "--on-corrupt skip" in result.error
        assert await store_bytes(pg_url) == {}
    else:
        assert result.status == "completed", result.error
        assert result.sessions_corrupt == 2 and sorted(result.corrupt_ids) == ["broken-json", "no-ttl"]
        assert result.sessions_copied == 300 and result.verification.ok
        assert "broken-json" not in await store_bytes(pg_url)


async def test_a_second_lone_migration_into_the_same_target_is_refused_naming_the_holder(
    temporal_client, task_queue, sqlite_url, pg_url, cli, tmp_path
):
    await fill(sqlite_url, 2000)
    inp = SessionMigrationInput(source=sqlite_url, target=pg_url, batch_size=50, parallelism=1, rate_limit_per_s=200)
    handle = await api.start_session_migration(temporal_client, inp, task_queue=task_queue)
    await wait_for_phase(handle, "copying", min_done=1)
    other = f"sqlite://{tmp_path}/other.db"
    await fill(other, 10, seed=3)
    code, out, err = await cli("sessions", "migrate", "--from", other, "--to", pg_url, "--json")
    assert code == 3 and out == "", err
    assert handle.id in err and "locked by a running migration" in err
    await handle.signal("rollback")
    result = await api.wait_for_result(handle)
    assert result.status == "rolled_back"
