"""recover: partial data of a terminated migration is found, cleaned up, or the copy resumed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

from client import api
from deployment.sessions.snapshot import generate_sessions
from deployment.sessions.stores import open_store
from tests.e2e.helpers import make_snapshot, store_bytes, wait_for_phase
from workflows.session_models import SessionMigrationInput


def cli(temporal_env, tmp_path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
           "SNAKEPIT_MIGRATE_HOME": str(tmp_path / "home")}  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "client.cli", *args], env=env, capture_output=True, text=True, timeout=180)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


async def terminated_mid_copy(temporal_client, task_queue, source: str, target: str) -> str:
    handle = await api.start_session_migration(
        temporal_client, SessionMigrationInput(source=source, target=target, batch_size=5, slice_seconds=0.2),
        task_queue=task_queue,
    )  # fmt: skip
    await wait_for_phase(handle, "copying", min_done=50)
    await handle.terminate("operator pulled the plug")  # no compensation runs: partial data stays
    return handle.id


async def test_scan_finds_partial_data_and_cleanup_restores_the_target(temporal_env, temporal_client, task_queue, tmp_path, sqlite_url):
    make_snapshot(tmp_path / "in.jsonl", 3000, expired_fraction=0.0)
    async with open_store(sqlite_url) as target:
        await target.write_many(list(generate_sessions(7, now=1e9 + 10**7, expired_fraction=0.0, seed=5)))
    before = await store_bytes(sqlite_url)
    mid = await terminated_mid_copy(temporal_client, task_queue, f"jsonl://{tmp_path}/in.jsonl", sqlite_url)
    assert len(await store_bytes(sqlite_url)) > len(before)

    code, out, _ = await asyncio.to_thread(cli, temporal_env, tmp_path, "recover", "--scan", "--store", sqlite_url, "--json")
    scan = json.loads(out)
    assert code == 1 and scan["partial"] == 1
    assert scan["journals"][0]["migration_id"] == mid and scan["journals"][0]["run"] == "terminated"

    code, out, _ = await asyncio.to_thread(cli, temporal_env, tmp_path, "recover", "--cleanup", mid, "--store", sqlite_url, "--json")
    assert code == 0 and json.loads(out)["restored"]
    assert await store_bytes(sqlite_url) == before
    code, out, _ = await asyncio.to_thread(cli, temporal_env, tmp_path, "recover", "--scan", "--store", sqlite_url)
    assert code == 0 and "nothing left behind" in out


async def test_resume_finishes_an_interrupted_copy_under_the_same_id(temporal_env, temporal_client, task_queue, tmp_path, sqlite_url):
    make_snapshot(tmp_path / "in.jsonl", 3000, expired_fraction=0.0)
    mid = await terminated_mid_copy(temporal_client, task_queue, f"jsonl://{tmp_path}/in.jsonl", sqlite_url)
    code, out, err = await asyncio.to_thread(cli, temporal_env, tmp_path, "recover", "--resume", mid, "--store", sqlite_url, "--json")
    result = json.loads(out)
    assert code == 0, err
    assert result["migration_id"] == mid and result["status"] == "completed"
    assert result["source_digest"] == result["target_digest"]
    undo = await api.wait_for_result(await api.request_rollback(temporal_client, mid))
    assert undo.status == "rolled_back" and await store_bytes(sqlite_url) == {}  # the first run's writes undone too
