"""CustomMigration end to end: the re-key example against real SQLite and Redis, failure, crash and versions."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from client import api
from client.connect import client_options
from deployment.extensions.rekey import renamed, with_prefix
from deployment.sessions.record import canonical_bytes, is_expired
from deployment.sessions.stores import open_store
from tests.deployment.extensions.helpers import fill, install_package, store_bytes
from workflows import all_workflows
from workflows.extension_models import CustomMigrationInput, ExtensionProgress


def live_in(recs: list[dict], horizon_s: float = 120) -> list[dict]:
    horizon = time.time() + horizon_s
    return [r for r in recs if not is_expired(r, horizon)]


async def run(client, queue, **fields):
    handle = await api.start_custom_migration(client, CustomMigrationInput(**fields), task_queue=queue)
    return await api.wait_for_custom_migration(handle)


async def test_rename_a_metadata_key_in_sqlite_end_to_end(temporal_client, task_queue, sqlite_url):
    recs = await fill(sqlite_url, 500)
    before = await store_bytes(sqlite_url)
    result = await run(
        temporal_client, task_queue, extension="rekey-sessions",
        params={"store": "${sessions}", "from_key": "tier", "to_key": "plan", "batch_size": 50},
        bindings={"sessions": sqlite_url}, slice_seconds=0.2,
    )  # fmt: skip
    assert result.status == "completed", result.error
    assert (result.name, result.version) == ("rekey-sessions", "1.0.0")
    live_now = [r for r in recs if not is_expired(r, time.time())]
    assert result.changed == len(live_now) and result.done == 500 and result.plan.to_change == len(live_now)
    assert result.verification.ok and result.verification.checked == result.changed
    after = await store_bytes(sqlite_url)
    for r in live_now:  # renamed, and otherwise byte for byte as before (timestamps untouched)
        assert after[r["id"]] == canonical_bytes(renamed(r, "tier", "plan"))
    expired = [r for r in recs if r not in live_now]
    assert expired and all(after[r["id"]] == before[r["id"]] for r in expired)

    handle = await api.request_extension_rollback(temporal_client, result.migration_id)  # a completed run, from its journal
    undone = await api.wait_for_custom_migration(handle)
    assert (handle.id, undone.status, undone.restored) == (f"{result.migration_id}-rollback", "rolled_back", len(live_now))
    assert await store_bytes(sqlite_url) == before
    with pytest.raises(api.AlreadyRolledBack):
        await api.request_extension_rollback(temporal_client, result.migration_id)


async def test_move_redis_keys_to_a_new_prefix_end_to_end_and_a_dry_run_writes_nothing(temporal_client, task_queue, redis_url):
    await fill(redis_url, 400)
    before = await store_bytes(redis_url)
    new_prefix = f"moved-{uuid.uuid4().hex[:8]}:"
    params = {"store": redis_url, "to_prefix": new_prefix, "batch_size": 40}
    dry = await run(temporal_client, task_queue, extension="deployment.extensions.rekey:RekeySessions", params=params, dry_run=True)
    assert dry.status == "dry_run" and dry.plan.to_change == len(before) and dry.changed == 0
    assert await store_bytes(redis_url) == before

    result = await run(temporal_client, task_queue, extension="rekey-sessions", params=params, slice_seconds=0.3)
    target = with_prefix(redis_url, new_prefix)
    try:
        assert result.status == "completed", result.error
        assert result.changed == len(before) and result.verification.ok
        assert await store_bytes(redis_url) == {} and await store_bytes(target) == before
    finally:
        async with open_store(target) as t:
            await t.delete_many(list(before))
            await t.journal_drop(result.migration_id)


async def test_a_failure_in_apply_rolls_back_to_the_exact_bytes(temporal_client, task_queue, sqlite_url):
    recs = await fill(sqlite_url, 400)
    before = await store_bytes(sqlite_url)
    result = await run(
        temporal_client, task_queue, extension="rekey-sessions",
        params={"store": sqlite_url, "from_key": "tier", "to_key": "plan", "batch_size": 20},
        fail_after_checkpoints=5, slice_seconds=0.05, max_per_second=200,
    )  # fmt: skip
    assert result.status == "rolled_back" and result.rolled_back
    assert result.error_type == "InjectedFailure" and result.failed_phase == "applying"
    first_five_batches = sorted(recs, key=lambda r: r["id"])[:100]
    assert result.restored == len(live_in(first_five_batches)) > 0  # every session renamed before the failure
    assert result.checkpoints >= 2 and 0 < result.changed <= result.restored  # figures as of the last finished slice
    assert await store_bytes(sqlite_url) == before


async def test_an_operator_rollback_stops_a_running_apply_and_undoes_it(temporal_client, task_queue, sqlite_url):
    await fill(sqlite_url, 600)
    before = await store_bytes(sqlite_url)
    handle = await api.start_custom_migration(
        temporal_client,
        CustomMigrationInput(extension="rekey-sessions", params={"store": sqlite_url, "from_key": "tier", "to_key": "plan",
                             "batch_size": 20}, max_per_second=200, slice_seconds=0.3),
        task_queue=task_queue,
    )  # fmt: skip
    await wait_until_applying(handle)
    await asyncio.sleep(0.8)
    assert await api.request_extension_rollback(temporal_client, handle.id) is not None  # a running run: signalled
    result = await api.wait_for_custom_migration(handle)
    assert (result.status, result.error_type) == ("rolled_back", "RollbackRequested")
    assert 0 < result.restored < 600
    assert await store_bytes(sqlite_url) == before


async def test_bad_input_fails_before_anything_is_written(temporal_client, task_queue, sqlite_url):
    recs = await fill(sqlite_url, 10, expired_fraction=0)
    async with open_store(sqlite_url) as s:
        await s.write_many([{**recs[0], "metadata": {**recs[0]["metadata"], "plan": "held"}}])
    before = await store_bytes(sqlite_url)
    result = await run(temporal_client, task_queue, extension="rekey-sessions",
                       params={"store": sqlite_url, "from_key": "tier", "to_key": "plan"})  # fmt: skip
    assert (result.status, result.error_type, result.failed_phase) == ("failed", "ExtensionInvalid", "validating")
    assert "already have a metadata key 'plan'" in result.error
    bad = await run(temporal_client, task_queue, extension="rekey-sessions", params={"store": sqlite_url, "from_key": "tier"})
    assert bad.error_type == "ExtensionError" and "needs both from_key and to_key" in bad.error
    assert await store_bytes(sqlite_url) == before


# -- a worker SIGKILLed during apply, and another worker picking the run up ----------

EXTENSION_OF_VERSION = """
from deployment.extensions.rekey import RekeySessions


class Rekey(RekeySessions):
    name = "{name}"
    version = "{version}"
"""


def install_rekey(root, tag: str, version: str):
    """A temporary installed package whose re-key extension has ``version``."""
    return install_package(
        root / version, f"acme_rekey_{tag}", version, {f"rekey-{tag}": f"rekey_{tag}:Rekey"},
        {f"rekey_{tag}": EXTENSION_OF_VERSION.format(name=f"rekey-{tag}", version=version)},
    )  # fmt: skip


def start_worker(address: str, queue: str, site, log) -> subprocess.Popen:
    """A separate worker process with the package in ``site`` installed."""
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.getcwd()}"}
    return subprocess.Popen(
        [sys.executable, "-m", "client.cli", "worker", "--address", address, "--task-queue", queue],
        stdout=log, stderr=log, env=env, start_new_session=True,
    )  # fmt: skip


async def wait_until_applying(handle, timeout: float = 60) -> ExtensionProgress:
    deadline = time.monotonic() + timeout
    while True:
        p = await handle.query("progress", result_type=ExtensionProgress)
        if p.phase == "applying":
            return p
        assert p.phase != "done", f"the run ended early: {await api.wait_for_custom_migration(handle)}"
        assert time.monotonic() < deadline, f"no progress: {p}"
        await asyncio.sleep(0.1)


async def kill_during_apply_then(temporal_env, tmp_path, sqlite_url, resumed_by: str):
    """Start a run on a worker with 1.0.0, SIGKILL it mid-apply, let a worker with ``resumed_by`` continue."""
    recs = await fill(sqlite_url, 2000)
    before = await store_bytes(sqlite_url)
    tag = uuid.uuid4().hex[:6]
    first_site = install_rekey(tmp_path / "site", tag, "1.0.0")
    next_site = first_site if resumed_by == "1.0.0" else install_rekey(tmp_path / "site", tag, resumed_by)
    address = temporal_env.client.service_client.config.target_host
    queue = f"ext-kill-{tag}"
    log = (tmp_path / "workers.log").open("ab")
    first, second = start_worker(address, queue, first_site, log), None
    try:
        handle = await api.start_custom_migration(
            temporal_env.client,
            CustomMigrationInput(
                extension=f"rekey-{tag}", params={"store": sqlite_url, "from_key": "tier", "to_key": "plan", "batch_size": 50},
                max_per_second=500, slice_seconds=60,
            ),
            task_queue=queue,
        )  # fmt: skip
        await wait_until_applying(handle)
        await asyncio.sleep(1.5)  # inside the one long slice: only heartbeats know where apply is
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        at_kill = await store_bytes(sqlite_url)
        renamed_at_kill = sum(1 for b in at_kill.values() if b'"plan"' in b)
        assert 0 < renamed_at_kill < len(live_in(recs))
        second = start_worker(address, queue, next_site, log)
        result = await asyncio.wait_for(api.wait_for_custom_migration(handle), timeout=120)
        if resumed_by.startswith("2."):  # refused: undo it with the version it recorded
            os.killpg(second.pid, signal.SIGKILL)
            second.wait()
            assert await store_bytes(sqlite_url) == at_kill  # the refusing worker wrote nothing
            second = start_worker(address, queue, first_site, log)
            undo = await api.request_extension_rollback(temporal_env.client, handle.id)
            undone = await asyncio.wait_for(api.wait_for_custom_migration(undo), timeout=60)
            assert (undone.status, undone.version) == ("rolled_back", "1.0.0"), undone.error
            assert await store_bytes(sqlite_url) == before
    finally:
        for proc in (first, second):
            if proc and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return recs, at_kill, result


@pytest.mark.parametrize("resumed_by", ["1.0.0", "1.1.0"])
async def test_a_worker_killed_during_apply_is_resumed_from_its_checkpoint_by_the_same_major(
    temporal_env, tmp_path, sqlite_url, resumed_by
):
    recs, _, result = await kill_during_apply_then(temporal_env, tmp_path, sqlite_url, resumed_by)
    assert result.status == "completed", result.error
    assert result.version == "1.0.0"  # the version the run recorded at its start
    assert result.apply_resumes >= 1  # resumed from a heartbeated checkpoint, not from the start
    live_now = [r for r in recs if not is_expired(r, time.time())]
    assert result.changed == len(live_now) and result.verification.ok
    after = await store_bytes(sqlite_url)
    assert all(after[r["id"]] == canonical_bytes(renamed(r, "tier", "plan")) for r in live_now)


async def test_a_worker_with_another_major_version_refuses_to_resume_the_run(temporal_env, tmp_path, sqlite_url):
    _, at_kill, result = await kill_during_apply_then(temporal_env, tmp_path, sqlite_url, "2.0.0")
    assert result.error_type == "ExtensionVersionMismatch" and result.failed_phase == "applying"
    assert "is 2.0.0 on this worker, but the run was started with 1.0.0" in result.error
    assert "refuses" in result.error
    # Its rollback is refused too (the new major cannot read 1.x checkpoints); a 1.x worker undid it afterwards.
    assert result.status == "rollback_failed" and not result.rolled_back


# -- the command line ---------------------------------------------------------


def cli(temporal_env, tmp_path, *args: str, group: tuple[str, ...] = ("extensions",)) -> subprocess.CompletedProcess:
    address = temporal_env.client.service_client.config.target_host
    env = {**os.environ, "SNAKEPIT_MIGRATE_HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *group, *args, "--address", address],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


async def test_cli_dry_run_run_and_rollback(temporal_env, tmp_path, sqlite_url):
    recs = await fill(sqlite_url, 120)
    before = await store_bytes(sqlite_url)
    (tmp_path / "params.json").write_text(json.dumps({"store": sqlite_url, "from_key": "tier", "to_key": "plan"}))
    dry = await asyncio.to_thread(cli, temporal_env, tmp_path, "run", "rekey-sessions", "--params", f"@{tmp_path}/params.json", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    out = json.loads(dry.stdout)
    live_now = [r for r in recs if not is_expired(r, time.time())]
    assert (out["status"], out["plan"]["to_change"], out["changed"]) == ("dry_run", len(live_now), 0)
    assert await store_bytes(sqlite_url) == before

    done = await asyncio.to_thread(cli, temporal_env, tmp_path, "run", "rekey-sessions", "--params", f"@{tmp_path}/params.json", "--id", f"cli-{uuid.uuid4().hex[:6]}")
    assert done.returncode == 0, done.stderr
    assert "COMPLETED" in done.stdout and f"{len(live_now)} changed" in done.stdout and "verified: OK" in done.stdout
    run_id = done.stdout.split()[2]
    shown = await asyncio.to_thread(cli, temporal_env, tmp_path, "status", run_id, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["result"]["changed"] == len(live_now)
    generic = await asyncio.to_thread(cli, temporal_env, tmp_path, "status", run_id, group=())  # snakepit-migrate status ID
    assert generic.returncode == 0 and f"Custom migration {run_id} (rekey-sessions 1.0.0): COMPLETED" in generic.stdout
    undo = await asyncio.to_thread(cli, temporal_env, tmp_path, "rollback", run_id, "--json", group=())  # snakepit-migrate rollback ID
    assert undo.returncode == 0, undo.stderr
    assert json.loads(undo.stdout)["restored"] == len(live_now)
    assert await store_bytes(sqlite_url) == before


async def test_cli_bad_input_exits_2_with_a_clear_message_and_writes_nothing(temporal_env, tmp_path, sqlite_url):
    recs = await fill(sqlite_url, 10, expired_fraction=0)
    async with open_store(sqlite_url) as s:
        await s.write_many([{**recs[0], "metadata": {**recs[0]["metadata"], "plan": "held"}}])
    before = await store_bytes(sqlite_url)
    params = json.dumps({"store": sqlite_url, "from_key": "tier", "to_key": "plan"})
    clash = await asyncio.to_thread(cli, temporal_env, tmp_path, "run", "rekey-sessions", "--params", params, "--json")
    assert clash.returncode == 2, clash.stderr
    out = json.loads(clash.stdout)
    assert out["error_type"] == "ExtensionInvalid" and "already have a metadata key 'plan'" in out["error"]
    missing = await asyncio.to_thread(cli, temporal_env, tmp_path, "run", "rekey-sessions", "--params", f"@{tmp_path}/nope.json")
    assert missing.returncode == 2 and "cannot read --params file" in missing.stderr
    unbound = await asyncio.to_thread(cli, temporal_env, tmp_path, "run", "rekey-sessions", "--params", '{"store": "${prod}", "from_key": "a", "to_key": "b"}')
    assert unbound.returncode == 2 and "params.store: ${prod} is not bound" in unbound.stderr
    for proc in (clash, missing, unbound):
        assert "Traceback" not in proc.stderr
    assert await store_bytes(sqlite_url) == before


# -- saved histories ------------------------------------------------------------

HISTORIES = sorted((Path(__file__).resolve().parents[1] / "histories").glob("custom_*.json"))


def test_every_outcome_has_a_saved_history():
    outcomes = {"completed", "rolled_back", "dry_run", "rollback_of"}
    assert {p.stem for p in HISTORIES} == {f"custom_{o}" for o in outcomes} | {f"custom_audited_{o}" for o in outcomes}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_saved_history_replays(path: Path):
    replayer = Replayer(workflows=all_workflows(), **client_options())
    result = await replayer.replay_workflow(WorkflowHistory.from_json(path.stem, path.read_text()), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
