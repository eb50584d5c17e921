"""SessionMigration writes its audit trail: start, every phase, data moved, rollback, end, chained and verifiable."""

from __future__ import annotations

import uuid

import pytest

from client import api
from deployment.audit import open_audit_log
from tests.e2e.helpers import make_snapshot
from workflows.session_models import SessionMigrationInput


@pytest.fixture
def audit_url(tmp_path, monkeypatch) -> str:
    """A log of this test only (the in-process worker reads SNAKEPIT_AUDIT_URL at each append)."""
    url = f"sqlite://{tmp_path}/audit.db"
    monkeypatch.setenv("SNAKEPIT_AUDIT_URL", url)
    return url


async def run(client, queue, **fields):
    mid = f"audit-{uuid.uuid4().hex[:6]}"
    handle = await api.start_session_migration(client, SessionMigrationInput(**fields), mid, queue)
    return handle, await api.wait_for_result(handle)


async def test_a_completed_migration_leaves_every_step_in_the_log(temporal_client, task_queue, tmp_path, sqlite_url, audit_url):
    make_snapshot(tmp_path / "in.jsonl", 300)
    handle, result = await run(temporal_client, task_queue, source=f"jsonl://{tmp_path}/in.jsonl", target=sqlite_url,
                               batch_size=50, actor="alice", actor_host="ops1")  # fmt: skip
    assert result.status == "completed"
    async with open_audit_log(audit_url) as log:
        entries = await log.entries(migration=handle.id)
        report = await log.verify()
    assert report.ok and report.entries == len(entries)
    assert [(e.event, e.after.get("phase")) for e in entries] == [
        ("started", None), ("locked", None), ("phase", "validating"), ("phase", "backup"), ("phase", "copying"), ("data_moved", None),
        ("phase", "finalizing"), ("phase", "verifying"), ("phase", "done"), ("ended", None),
    ]  # fmt: skip
    assert entries[1].after["locks"]  # a lone run locks its source and target
    assert entries[4].before == {"phase": "backup"} and entries[8].after["done"] == 300
    assert all(e.actor == "alice" and e.host == "ops1" and e.workflow_id == handle.id for e in entries)
    assert {e.run_id for e in entries} == {handle.result_run_id}
    started, moved, ended = entries[0], next(e for e in entries if e.event == "data_moved"), entries[-1]
    assert started.after["target"] == sqlite_url and started.after["batch_size"] == 50
    assert moved.after["copied"] == result.sessions_copied and moved.after["digest"] == result.source_digest
    assert moved.before == {"target_count": 0, "target_digest": result.target_before.target_digest}
    assert ended.after["status"] == "completed" and ended.after["verification"]["ok"] is True
    assert ended.after["sessions_copied"] == result.sessions_copied and ended.after["target_digest"] == result.target_digest
    assert [e.ts for e in entries] == sorted(e.ts for e in entries)


async def test_a_rolled_back_migration_logs_the_rollback_with_what_was_restored(temporal_client, task_queue, tmp_path, sqlite_url, audit_url):
    make_snapshot(tmp_path / "in.jsonl", 400, expired_fraction=0.0)
    handle, result = await run(temporal_client, task_queue, source=f"jsonl://{tmp_path}/in.jsonl", target=sqlite_url,
                               batch_size=50, fail_after_batches=3)  # fmt: skip
    assert result.status == "rolled_back" and result.restored == 150
    async with open_audit_log(audit_url) as log:
        entries = await log.entries(migration=handle.id)
        assert (await log.verify()).ok
    rollback = next(e for e in entries if e.event == "rollback")
    assert rollback.before == {"failed_phase": "copying", "error_type": "InjectedFailure"}
    assert rollback.after == {"status": "rolled_back", "restored": 150}
    assert entries[-1].event == "ended" and entries[-1].after["status"] == "rolled_back"
    assert "injected failure after 3 batches" in entries[-1].after["error"]
    assert "rolling_back" in [e.after["phase"] for e in entries if e.event == "phase"]
