"""CustomMigration has the built-in types' guarantees: an audit trail (with the extension's own entries),
alerts on failure and rollback, and a lock on the resources the extension declares when it runs on its own."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid

import pytest
from temporalio.client import WorkflowFailureError

from client import api
from client.cli.audit import render_verify
from deployment.audit import open_audit_log
from deployment.plans.model import lock_id
from tests.deployment.extensions.helpers import fill, store_bytes
from tests.e2e.test_session_alerts import receiver  # noqa: F401  (the local webhook fixture)
from tests.e2e.test_session_audit import audit_url  # noqa: F401  (a log of the test only)
from workflows.extension_models import CustomMigrationInput, ExtensionProgress

RENAME = {"from_key": "tier", "to_key": "plan", "batch_size": 50}


async def start(client, queue, **fields):
    return await api.start_custom_migration(client, CustomMigrationInput(**fields), f"custom-{uuid.uuid4().hex[:6]}", queue)


async def test_a_completed_run_leaves_its_steps_and_the_extensions_entries_in_the_log(temporal_client, task_queue, sqlite_url, audit_url):  # noqa: F811
    await fill(sqlite_url, 300)
    handle = await start(temporal_client, task_queue, extension="rekey-sessions", params={"store": "${s}", **RENAME},
                         bindings={"s": sqlite_url}, slice_seconds=0.05, actor="alice", actor_host="ops1")  # fmt: skip
    result = await api.wait_for_custom_migration(handle)
    assert result.status == "completed", result.error
    async with open_audit_log(audit_url) as log:
        entries = await log.entries(migration=handle.id)
        chain = await log.verify()
    assert chain.ok and chain.entries == len(entries), render_verify(chain)
    own = [e for e in entries if not e.event.startswith("extension.")]
    assert [(e.event, (e.after or {}).get("phase")) for e in own] == [
        ("started", None), ("phase", "locking"), ("locked", None), ("phase", "validating"), ("phase", "planning"),
        ("phase", "applying"), ("data_moved", None), ("phase", "verifying"), ("phase", "done"), ("ended", None),
    ]  # fmt: skip
    started, locked, moved, ended = own[0], own[2], own[6], own[-1]
    assert (started.after["name"], started.after["version"], started.after["extension"]) == ("rekey-sessions", "1.0.0", "rekey-sessions")
    assert started.after["bindings"] == {"s": sqlite_url}
    assert locked.after == {"locks": [lock_id(sqlite_url)]}
    assert moved.before == {"total": result.plan.total, "to_change": result.plan.to_change}
    assert moved.after == {"done": result.done, "changed": result.changed, "checkpoints": result.checkpoints, "resumes": 0}
    assert ended.after["status"] == "completed" and ended.after["changed"] == result.changed and ended.after["verification"]["ok"]
    # What the extension wrote through ctx.audit is in the same log, with the run's ids and actor.
    ext = [e for e in entries if e.event.startswith("extension.")]
    assert {"extension.validate.start", "extension.plan", "extension.apply.slice", "extension.apply.done", "extension.verify"} <= {e.event for e in ext}
    assert all(e.after["extension"] == "rekey-sessions" and e.after["version"] == "1.0.0" for e in ext)
    assert all((e.actor, e.host, e.workflow_id) == ("alice", "ops1", handle.id) for e in entries)
    assert {e.run_id for e in entries} == {handle.result_run_id}
    done = next(e for e in ext if e.event == "extension.apply.done")
    assert done.after["changed"] == result.changed
    # The lock is released when the run ends.
    desc = await temporal_client.get_workflow_handle(lock_id(sqlite_url)).describe()
    assert desc.status.name != "RUNNING"


async def test_a_failure_in_apply_rolls_back_logs_it_and_alerts_a_webhook(temporal_client, task_queue, sqlite_url, audit_url, receiver):  # noqa: F811
    await fill(sqlite_url, 300, expired_fraction=0)
    before = await store_bytes(sqlite_url)
    handle = await start(temporal_client, task_queue, extension="rekey-sessions", params={"store": sqlite_url, **RENAME},
                         fail_after_checkpoints=3, slice_seconds=0.05)  # fmt: skip
    result = await api.wait_for_custom_migration(handle)
    assert (result.status, result.restored) == ("rolled_back", 150) and await store_bytes(sqlite_url) == before
    rolled = [a for a in receiver if a["kind"] == "rolled_back"]
    assert len(rolled) == 2 and rolled[0] == rolled[1]  # refused once by the receiver, delivered on the retry
    alert = rolled[0]
    assert (alert["migration_id"], alert["step"], alert["error_type"]) == (handle.id, "applying", "InjectedFailure")
    assert "injected failure after 3 checkpoints" in alert["error"]
    assert alert["action"] == "rolled back: 150 record(s) put back as they were found"
    assert alert["figures"]["restored"] == 150 and alert["run_id"] == handle.result_run_id
    async with open_audit_log(audit_url) as log:
        entries = await log.entries(migration=handle.id)
        assert (await log.verify()).ok
    events = [e.event for e in entries if not e.event.startswith("extension.")]
    assert events[-4:] == ["phase", "phase", "rollback", "ended"] and "data_moved" in events
    rollback = next(e for e in entries if e.event == "rollback")
    assert rollback.before == {"failed_phase": "applying", "error_type": "InjectedFailure"}
    assert rollback.after == {"status": "rolled_back", "restored": 150}
    ext = {e.event: e for e in entries if e.event.startswith("extension.")}
    assert ext["extension.step.failed"].after["error_type"] == "InjectedFailure"
    assert ext["extension.rollback.done"].after["restored"] == 150


async def wait_until_applying(handle) -> None:
    for _ in range(300):
        p = await handle.query("progress", result_type=ExtensionProgress)
        assert p.phase != "done", await api.wait_for_custom_migration(handle)
        if p.phase == "applying":
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the holder never started applying")


def cli(temporal_client, tmp_path, *args: str) -> subprocess.CompletedProcess:
    address = temporal_client.service_client.config.target_host
    (tmp_path / "home").mkdir(exist_ok=True)
    env = {**os.environ, "SNAKEPIT_MIGRATE_HOME": str(tmp_path / "home")}
    return subprocess.run([sys.executable, "-m", "client.cli", "extensions", "run", *args, "--address", address],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip


async def test_a_second_lone_run_on_the_declared_store_is_refused_until_the_first_releases_it(
    temporal_client, task_queue, tmp_path, sqlite_url, audit_url  # noqa: F811
):
    await fill(sqlite_url, 2000)
    holder = await start(temporal_client, task_queue, extension="rekey-sessions", params={"store": sqlite_url, **RENAME},
                         max_per_second=100, slice_seconds=0.5)  # fmt: skip
    await wait_until_applying(holder)
    other = {"store": sqlite_url, "from_key": "lang", "to_key": "language"}  # the store itself, no bindings: only the declaration locks it
    second = await start(temporal_client, task_queue, extension="rekey-sessions", params=other)
    with pytest.raises(WorkflowFailureError) as refused:
        await api.wait_for_custom_migration(second)
    assert refused.value.cause.type == "ResourceLocked" and lock_id(sqlite_url) in refused.value.cause.message
    async with open_audit_log(audit_url) as log:
        trail = [e.event for e in await log.entries(migration=second.id)]
    assert trail[0] == "started" and trail[-2:] == ["lock_refused", "phase"]  # no "ended": nothing ran, nothing alerted

    shown = await asyncio.to_thread(cli, temporal_client, tmp_path, "rekey-sessions", "--params", json.dumps(other))
    assert shown.returncode == 3, shown.stderr
    assert f"locked by a running migration: {sqlite_url} by {holder.id}" in shown.stderr and "--wait-for-lock" in shown.stderr
    assert "Traceback" not in shown.stderr

    await api.request_extension_rollback(temporal_client, holder.id)  # the holder stops, rolls back and releases
    assert (await api.wait_for_custom_migration(holder)).status == "rolled_back"
    third = await start(temporal_client, task_queue, extension="rekey-sessions", params=other, slice_seconds=0.2)
    done = await api.wait_for_custom_migration(third)
    assert done.status == "completed", done.error


async def test_wait_for_lock_waits_for_the_holder_and_then_runs(temporal_client, task_queue, sqlite_url, audit_url):  # noqa: F811
    await fill(sqlite_url, 1000)
    holder = await start(temporal_client, task_queue, extension="rekey-sessions", params={"store": sqlite_url, **RENAME},
                         max_per_second=400, slice_seconds=0.5)  # fmt: skip
    await wait_until_applying(holder)
    waiter = await start(temporal_client, task_queue, extension="rekey-sessions", wait_for_lock=True,
                         params={"store": sqlite_url, "from_key": "lang", "to_key": "language"}, slice_seconds=0.2)  # fmt: skip
    await asyncio.sleep(1.0)
    assert (await waiter.query("progress", result_type=ExtensionProgress)).phase == "locking"
    first = await api.wait_for_custom_migration(holder)
    second = await api.wait_for_custom_migration(waiter)
    assert (first.status, second.status) == ("completed", "completed"), (first.error, second.error)


async def test_undoing_a_completed_run_while_another_holds_its_store_exits_3_naming_the_holder(
    temporal_client, task_queue, tmp_path, sqlite_url, audit_url  # noqa: F811
):
    await fill(sqlite_url, 1500)
    done = await api.wait_for_custom_migration(await start(temporal_client, task_queue, extension="rekey-sessions",
                                                           params={"store": sqlite_url, **RENAME}, slice_seconds=0.2))  # fmt: skip
    assert done.status == "completed", done.error
    # busy for about 50 s, so the CLI started under load finds it still holding the store
    holder = await start(temporal_client, task_queue, extension="rekey-sessions", max_per_second=30, slice_seconds=0.5,
                         params={"store": sqlite_url, "from_key": "lang", "to_key": "language"})  # fmt: skip
    await wait_until_applying(holder)
    address = temporal_client.service_client.config.target_host
    env = {**os.environ, "SNAKEPIT_MIGRATE_HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    undo = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "client.cli", "extensions", "rollback", done.migration_id,
                                                    "--address", address], capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert undo.returncode == 3, undo.stderr
    assert f"{sqlite_url} by {holder.id}" in undo.stderr and "Traceback" not in undo.stderr
    await api.request_extension_rollback(temporal_client, holder.id)
    assert (await api.wait_for_custom_migration(holder)).status == "rolled_back"


async def test_an_apply_slice_silent_for_the_stall_time_alerts_once_and_goes_on(
    temporal_client, task_queue, sqlite_url, audit_url, receiver  # noqa: F811
):
    await fill(sqlite_url, 600, expired_fraction=0)
    handle = await start(temporal_client, task_queue, extension="rekey-sessions", stall_alert_seconds=1, slice_seconds=30,
                         max_per_second=150, params={"store": sqlite_url, **RENAME, "batch_size": 300})  # fmt: skip
    result = await api.wait_for_custom_migration(handle)
    assert result.status == "completed" and result.changed == 600, result.error
    assert result.duration_s > 2  # the slice outlasted the stall time, or the test proves nothing
    stalled = [a for a in receiver if a["kind"] == "stalled"]
    assert stalled and {a["alert_id"] for a in stalled} == {stalled[0]["alert_id"]}  # one alert (a retried delivery repeats its id)
    assert stalled[0]["migration_id"] == handle.id and stalled[0]["step"] == "applying"
    assert "no progress reported for 1 s" in stalled[0]["error"]
    async with open_audit_log(audit_url) as log:
        assert [e.event for e in await log.entries(migration=handle.id)].count("stalled") == 1
