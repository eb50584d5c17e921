"""ConfigMigration's guarantees beyond the files: its audit trail (with who accepted the findings), the alert of a
rolled-back run, and the lock a lone run holds on its path (refused with exit 3 naming the holder, waited for,
released at the end or when the holder is terminated)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import shutil
import sys
import threading
import uuid
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError

from activities.config_files import ConfigFileActivities, PlanInput, PlanResult
from client import api
from client.cli.config import rollback_config, start_config_workflow
from deployment.audit import open_audit_log
from deployment.plans.model import lock_id
from tests.deployment.config.config_corpus import CORPUS, snapshot
from tests.deployment.config.test_config_workflow import config_worker
from tests.e2e.test_session_alerts import receiver  # noqa: F401 (fixture)


@pytest.fixture
def audit_url(tmp_path, monkeypatch) -> str:
    """A log of this test only (the in-process worker reads SNAKEPIT_AUDIT_URL at each append)."""
    url = f"sqlite://{tmp_path}/audit.db"
    monkeypatch.setenv("SNAKEPIT_AUDIT_URL", url)
    monkeypatch.setenv("SNAKEPIT_MIGRATE_HOME", str(tmp_path / "home"))  # backups of the default worker go here
    return url


def unit(tmp_path: Path, name: str, dest: str | None = None) -> Path:
    folder = tmp_path / (dest or name)
    shutil.copytree(CORPUS / name, folder)
    return folder


async def entries_of(url: str, migration_id: str):
    async with open_audit_log(url) as log:
        found = await log.entries(migration=migration_id)
        report = await log.verify()
    assert report.ok, report.problems
    return found


async def test_a_completed_migration_and_its_rollback_leave_every_step_with_the_actor(
    temporal_client, task_queue, tmp_path, audit_url
):
    folder = unit(tmp_path, "v0_3")  # one setting in it needs a person's review
    before = snapshot(folder)
    params = {"path": str(folder), "to_version": "0.10", "accept_findings": True, "actor": "alice", "actor_host": "ops1"}
    result = await start_config_workflow(temporal_client, params, f"cfg-audit-{uuid.uuid4().hex[:6]}", task_queue)
    assert result.status == "completed" and result.findings, result.error

    entries = await entries_of(audit_url, result.migration_id)
    assert [(e.event, (e.after or {}).get("phase")) for e in entries] == [
        ("started", None), ("locked", None), ("phase", "planning"), ("findings_accepted", None), ("phase", "backup"),
        ("phase", "writing"), ("data_moved", None), ("phase", "validating"), ("phase", "done"), ("ended", None),
    ]  # fmt: skip
    assert all((e.actor, e.host, e.workflow_id) == ("alice", "ops1", result.migration_id) for e in entries)
    started, locked, accepted, moved, ended = (next(e for e in entries if e.event == k)
                                               for k in ("started", "locked", "findings_accepted", "data_moved", "ended"))
    assert started.after == {"path": str(folder), "to_version": "0.10", "accept_findings": True}
    assert locked.after == {"locks": [lock_id(str(folder))]}
    assert accepted.after["count"] == len(result.findings) and set(accepted.after["keys"]) == {f.key for f in result.findings}
    written = {p: e.after_digest for e in result.backup.files for p in [e.path]}
    assert moved.after["digests"] == written and sorted(moved.after["files_written"]) == sorted(result.files_written)
    assert moved.before["digests"] == {e.path: e.digest for e in result.backup.files}
    assert moved.after["files"] == moved.before["files"] == len(result.backup.files)
    assert moved.after["all_files_sha256"] != moved.before["all_files_sha256"]
    assert moved.after["diff_lines"]["added"] > 0
    assert ended.after["status"] == "completed" and ended.after["files_written"] == len(result.files_written) > 0 and ended.after["error"] is None
    assert await api.resource_holders(temporal_client, [str(folder)]) == {}  # released at the end

    undo = await start_config_workflow(temporal_client, {"rollback_of": result.migration_id, "actor": "bob"},
                                       f"{result.migration_id}-rollback", task_queue)
    assert undo.status == "rolled_back" and snapshot(folder) == before
    entries = await entries_of(audit_url, undo.migration_id)
    assert [e.event for e in entries] == ["started", "phase", "phase", "rollback", "ended"]
    assert {e.actor for e in entries} == {"bob"}
    assert entries[3].before["rollback_of"] == result.migration_id and entries[3].after["status"] == "rolled_back"
    assert sorted(entries[3].after["restored"]) == sorted(e.path for e in result.backup.files)


async def test_a_rolled_back_migration_alerts_the_webhook_and_logs_its_rollback(
    temporal_client, task_queue, tmp_path, audit_url, receiver  # noqa: F811
):
    folder = unit(tmp_path, "v0_5")
    before = snapshot(folder)
    params = {"path": str(folder), "to_version": "0.10", "accept_findings": True, "fail_after_files": 1}
    result = await start_config_workflow(temporal_client, params, f"cfg-alert-{uuid.uuid4().hex[:6]}", task_queue)
    assert result.status == "rolled_back" and snapshot(folder) == before

    assert len(receiver) == 2 and receiver[0] == receiver[1]  # refused once by the receiver, delivered on the retry
    alert = receiver[0]
    assert (alert["kind"], alert["migration_id"], alert["step"]) == ("rolled_back", result.migration_id, "writing")
    assert alert["error_type"] == "InjectedFailure" and "injected failure after writing 1 file(s)" in alert["error"]
    assert alert["action"] == "rolled back: 1 record(s) put back as they were found" and alert["figures"]["restored"] == 1

    entries = await entries_of(audit_url, result.migration_id)
    events = [(e.event, (e.after or {}).get("phase")) for e in entries]
    assert events[-4:] == [("phase", "rolling_back"), ("phase", "done"), ("rollback", None), ("ended", None)], events
    assert ("data_moved", None) not in events  # the write failed: no change is logged as made
    rollback = entries[-2]
    assert rollback.before == {"failed_phase": "writing", "error_type": "InjectedFailure", "rollback_of": None}
    assert rollback.after["status"] == "rolled_back" and len(rollback.after["restored"]) == 1

    # a success alerts nothing
    ok = await start_config_workflow(temporal_client, {"path": str(folder), "to_version": "0.10", "accept_findings": True},
                                     None, task_queue)
    assert ok.status == "completed" and len(receiver) == 2


class HeldPlanning(ConfigFileActivities):
    """Planning that waits (heartbeating) until the test lets it go: the run holds its lock meanwhile."""

    def __init__(self, backups: Path) -> None:
        super().__init__(backups)
        self.entered = threading.Event()
        self.go = threading.Event()

    @activity.defn(name="plan_config_migration")
    def plan_config_migration(self, params: PlanInput) -> PlanResult:
        self.entered.set()
        while not self.go.wait(0.5):
            activity.heartbeat()
        return super().plan_config_migration(params)


async def held_run(client, queue: str, acts: HeldPlanning, folder: Path) -> object:
    """Start a lone migration of ``folder`` that holds its lock until ``acts.go`` is set."""
    acts.entered.clear()
    handle = await client.start_workflow("ConfigMigration", {"path": str(folder), "to_version": "0.10"},
                                         id=f"cfg-holder-{uuid.uuid4().hex[:6]}", task_queue=queue)
    assert await asyncio.to_thread(acts.entered.wait, 30), "the holder never reached its planning"
    return handle


async def cli(temporal_env, tmp_path: Path, *args: str) -> tuple[int, dict, str]:
    env = {**os.environ, "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
           "SNAKEPIT_MIGRATE_HOME": str(tmp_path / "cli-home")}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "client.cli", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert b"Traceback" not in err, err.decode()
    return proc.returncode, json.loads(out or b"{}"), err.decode()


async def test_a_lone_run_holds_its_path_refusing_others_until_it_ends_or_is_terminated(
    temporal_env, temporal_client, tmp_path, audit_url
):
    folder = unit(tmp_path, "v0_8")
    original = snapshot(folder)
    acts = HeldPlanning(tmp_path / "backups")
    queue = f"cfg-lock-{uuid.uuid4().hex[:6]}"
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        async with config_worker(temporal_env, queue, acts, pool):
            try:
                holder = await held_run(temporal_client, queue, acts, folder)
                assert await api.resource_holders(temporal_client, [str(folder)]) == {str(folder): holder.id}

                # the CLI refuses before starting anything: exit 3, the holder named, how to wait
                code, found, err = await cli(temporal_env, tmp_path, "config", "migrate", str(folder), "--to", "0.10", "--json")
                assert code == 3, err
                assert found["type"] == "ResourceLocked" and f"{folder} by {holder.id}" in found["error"]
                assert "--wait-for-lock" in found["hint"]
                # a run started anyway refuses itself at its start, having changed nothing
                second = await temporal_client.start_workflow("ConfigMigration", {"path": str(folder), "to_version": "0.10"},
                                                              id=f"cfg-second-{uuid.uuid4().hex[:6]}", task_queue=queue)
                with pytest.raises(WorkflowFailureError) as refused:
                    await second.result()
                assert refused.value.cause.type == "ResourceLocked" and lock_id(str(folder)) in refused.value.cause.message
                assert [e.event for e in await entries_of(audit_url, second.id)] == ["started", "lock_refused"]

                # one that waits for the lock runs once the holder has finished (and finds the files migrated)
                waiting = asyncio.ensure_future(start_config_workflow(
                    temporal_client, {"path": str(folder), "to_version": "0.10", "wait_for_lock": True}, None, queue))
                await asyncio.sleep(3)
                assert not waiting.done()
                acts.go.set()
                assert (await holder.result())["status"] == "completed"
                assert (await asyncio.wait_for(waiting, 60)).status == "unchanged"
                assert await api.resource_holders(temporal_client, [str(folder)]) == {}

                # a holder terminated mid-run (a crash): its lock ends with it, and the next run goes ahead; here the
                # restore of the first run, which locks the path that run changed and is refused while it is held
                acts.go.clear()
                crashed = await held_run(temporal_client, queue, acts, folder)
                code, found, err = await cli(temporal_env, tmp_path, "config", "rollback", holder.id, "--json")
                assert code == 3 and f"{folder} by {crashed.id}" in found["error"], (found, err)
                await crashed.terminate("simulated crash")
                for _ in range(100):
                    if not await api.resource_holders(temporal_client, [str(folder)]):
                        break
                    await asyncio.sleep(0.1)
                assert await api.resource_holders(temporal_client, [str(folder)]) == {}
                acts.go.set()
                undone = await rollback_config(temporal_client, holder.id, task_queue=queue)
                assert undone.status == "rolled_back" and undone.path == str(folder) and snapshot(folder) == original
                assert "locked" in [e.event for e in await entries_of(audit_url, undone.migration_id)]
            finally:
                acts.go.set()
