"""A failed or rolled-back SessionMigration alerts a webhook (JSON POST, retried) and the log; a success does not."""

from __future__ import annotations

import logging
import uuid

import pytest
from aiohttp import web

from client import api
from tests.e2e.helpers import make_snapshot
from workflows.session_models import SessionMigrationInput


@pytest.fixture
async def receiver(monkeypatch):
    """A local webhook that answers 500 to the first POST of each alert and 200 after; returns every body it got."""
    got: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        got.append(body)
        first = sum(1 for b in got if b["alert_id"] == body["alert_id"]) == 1
        return web.Response(status=500 if first else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    monkeypatch.setenv("SNAKEPIT_ALERT_WEBHOOKS", f"http://127.0.0.1:{port}/hook")
    yield got
    await runner.cleanup()


async def run(client, queue, **fields):
    handle = await api.start_session_migration(client, SessionMigrationInput(**fields), f"alert-{uuid.uuid4().hex[:6]}", queue)
    return handle, await api.wait_for_result(handle)


async def test_a_rollback_alerts_with_the_specifics_and_is_retried(temporal_client, task_queue, tmp_path, sqlite_url, receiver, caplog):
    make_snapshot(tmp_path / "in.jsonl", 400, expired_fraction=0.0)
    with caplog.at_level(logging.WARNING, logger="snakepit_migrate.alerts"):
        handle, result = await run(temporal_client, task_queue, source=f"jsonl://{tmp_path}/in.jsonl", target=sqlite_url,
                                   batch_size=50, fail_after_batches=3)  # fmt: skip
    assert result.status == "rolled_back"
    assert len(receiver) == 2 and receiver[0] == receiver[1]  # refused once, delivered on the retry, same alert_id
    alert = receiver[0]
    assert alert["kind"] == "rolled_back" and alert["migration_id"] == handle.id and alert["step"] == "copying"
    assert alert["error_type"] == "InjectedFailure" and "injected failure after 3 batches" in alert["error"]
    assert alert["action"] == "rolled back: 150 record(s) put back as they were found"
    assert alert["figures"]["restored"] == 150 and alert["run_id"] == handle.result_run_id
    assert [r.getMessage() for r in caplog.records if r.name == "snakepit_migrate.alerts"] == [
        f"ALERT rolled_back {handle.id} in copying: injected failure after 3 batches ({alert['action']})"
    ]  # logged once, not once per delivery attempt


async def test_a_refused_target_alerts_as_failed_and_a_success_alerts_nothing(temporal_client, task_queue, tmp_path, sqlite_url, receiver):
    make_snapshot(tmp_path / "in.jsonl", 50, expired_fraction=0.0)
    _, ok = await run(temporal_client, task_queue, source=f"jsonl://{tmp_path}/in.jsonl", target=sqlite_url)
    assert ok.status == "completed" and receiver == []
    handle, refused = await run(temporal_client, task_queue, source=f"jsonl://{tmp_path}/in.jsonl", target=sqlite_url)
    assert refused.status == "failed" and refused.error_type == "TargetNotCompatible"
    assert {a["kind"] for a in receiver} == {"failed"} and receiver[-1]["step"] == "validating"
    assert receiver[-1]["action"] == "nothing had been written, so nothing was rolled back" and handle.id == receiver[-1]["migration_id"]


async def test_a_copy_slice_that_reports_nothing_for_the_configured_time_alerts_once_and_goes_on(
    temporal_client, task_queue, tmp_path, sqlite_url, receiver, monkeypatch
):
    monkeypatch.setenv("SNAKEPIT_AUDIT_URL", f"sqlite://{tmp_path}/audit.db")
    make_snapshot(tmp_path / "in.jsonl", 5000, expired_fraction=0.0)
    handle, result = await run(temporal_client, task_queue, source=f"jsonl://{tmp_path}/in.jsonl", target=sqlite_url,
                               batch_size=1, slice_seconds=6, stall_alert_seconds=1)  # fmt: skip
    assert result.status == "completed" and result.sessions_copied == 5000
    assert result.duration_s > 2  # the copy's first slice outlasted the stall time, or the test proves nothing
    stalled = [a for a in receiver if a["kind"] == "stalled"]
    assert stalled and {a["kind"] for a in receiver} == {"stalled"}  # nothing else went wrong
    first = stalled[0]
    assert first["migration_id"] == handle.id and first["step"] == "copying" and first["figures"]["stalled_s"] == 1
    assert first["error"].startswith("no progress reported for 1 s (") and "rollback ID stops it" in first["action"]
    from deployment.audit import open_audit_log

    async with open_audit_log() as log:
        events = [e.event for e in await log.entries(migration=handle.id)]
    assert "stalled" in events and events[-1] == "ended"
