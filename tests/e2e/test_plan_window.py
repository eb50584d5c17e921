"""A plan's maintenance window on the time-skipping test server: the window (30 min) ends while the first group
soaks for an hour of skipped time, never real time.  Then a ``window_exceeded`` alert goes out with the specifics,
and the run either rolls back, or pauses (locks held) and waits durably for ``resume`` (the remaining groups run,
in a new window) or ``cancel`` (completed steps kept, or undone with ``rollback``).

Schedules themselves are not supported by the time-skipping server: they are tested on the dev server
(tests/e2e/test_plan_schedules.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from client import api
from client.connect import client_options
from deployment.audit import open_audit_log
from tests.deployment.extensions.helpers import fill
from tests.e2e.test_resource_lock import resolved
from worker import build_worker
from workflows.plan_models import MigrationPlanResult, PlanProgress

TEST_SERVER = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "temporal-test-server"
CHAIN = """\
    plan: chain
    migrations:
      - id: first
        type: sessions
        params: {source: "@src", target: "@dst", zero_downtime: true, soak_seconds: 3600}
      - id: second
        type: sessions
        depends_on: [first]
        params: {source: "@src", target: "@other"}
    """
WINDOW_S = 1800.0


@pytest_asyncio.fixture
async def skipping() -> AsyncIterator[tuple[WorkflowEnvironment, str]]:
    """The time-skipping test server with a worker of the project on a fresh task queue."""
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(TEST_SERVER), **client_options())
    queue = f"window-{uuid.uuid4().hex[:6]}"
    try:
        async with build_worker(env.client, queue):
            yield env, queue
    finally:
        await env.shutdown()


@pytest_asyncio.fixture
async def alerts(monkeypatch) -> AsyncIterator[list[dict]]:
    """A local webhook that takes every alert; returns their bodies."""
    got: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    monkeypatch.setenv("SNAKEPIT_ALERT_WEBHOOKS", f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook")  # type: ignore[union-attr]
    yield got
    await runner.cleanup()


async def start(env: WorkflowEnvironment, queue: str, tmp_path: Path, on_exceeded: str) -> tuple[WorkflowHandle, dict[str, str]]:
    urls = {name: f"sqlite://{tmp_path}/{name}.db" for name in ("src", "dst", "other")}
    await fill(urls["src"], 20, expired_fraction=0)
    inp = await resolved(tmp_path / "p", CHAIN, urls, window_s=WINDOW_S, on_window_exceeded=on_exceeded, actor="dana")
    return await api.start_migration_plan(env.client, inp, f"window-{uuid.uuid4().hex[:6]}", queue), urls


async def paused(env: WorkflowEnvironment, handle: WorkflowHandle) -> PlanProgress:
    """Skip time (10 virtual minutes at a go) until the run's window pauses it."""
    for _ in range(60):
        progress = await handle.query("progress", result_type=PlanProgress)
        if progress.phase == "paused":
            return progress
        assert progress.phase != "done", progress
        await env.sleep(600)
    raise AssertionError(f"not paused after 10 virtual hours: {progress}")


async def events(plan_id: str) -> list[tuple[str, dict]]:
    async with open_audit_log() as log:
        return [(e.event, e.after or {}) for e in await log.entries(migration=plan_id)]


async def live(url: str) -> int:
    from deployment.sessions.stores import open_store

    async with open_store(url) as store:
        return (await store.stats())["live"]


async def test_pause_waits_then_resume_runs_the_remaining_group(skipping, tmp_path, alerts):
    env, queue = skipping
    handle, urls = await start(env, queue, tmp_path, "pause")
    progress = await paused(env, handle)
    assert {s.id: s.state for s in progress.steps} == {"first": "completed", "second": "pending"}
    assert progress.locks and "plan resume " + handle.id in (progress.paused or "")
    await env.sleep(3 * 3600)  # hours later it still waits, durably, holding its locks
    assert (await handle.query("progress", result_type=PlanProgress)).phase == "paused"
    assert not Path(urls["other"].removeprefix("sqlite://")).exists()

    [alert] = [a for a in alerts if a["kind"] == "window_exceeded"]
    assert alert["migration_id"] == handle.id and alert["step"] == "group 2 of 2"
    assert "maintenance window of 1800 s ended before group 2 of 2" in alert["error"]
    assert alert["figures"]["done"] == ["first"] and alert["figures"]["skipped"] == ["second"]
    assert alert["action"].startswith("paused") and f"plan resume {handle.id}" in alert["action"]

    await handle.signal("resume", {"actor": "erin", "actor_host": "ops-1"})
    result = await handle.result(rpc_timeout=None)
    result = MigrationPlanResult.model_validate(result) if isinstance(result, dict) else result
    assert result.status == "completed" and result.completed_order == ["first", "second"]
    assert result.pauses[0]["group"] == 2 and result.pauses[0]["resumed_by"] == "erin"
    assert await live(urls["other"]) == 20
    assert [a["kind"] for a in alerts] == ["window_exceeded"]  # a run that completes raises nothing else

    logged = await events(handle.id)
    names = [e for e, _ in logged]
    assert names[:2] == ["started", "locks_taken"] and names[-1] == "ended"
    assert names.index("window_exceeded") < names.index("paused") < names.index("resumed")
    assert names.count("step_started") == 2 and names.count("step_finished") == 2
    assert dict(logged)["resumed"]["by"] == "erin" and dict(logged)["ended"]["status"] == "completed"
    finished = [a for e, a in logged if e == "step_finished"]
    assert finished[0]["step"] == "first" and finished[0]["duration_s"] >= 3600  # the soak, in skipped time


@pytest.mark.parametrize("rollback, status, first", [(True, "rolled_back", "undone"), (False, "cancelled", "completed")])
async def test_cancel_while_paused_keeps_or_undoes_the_completed_steps(skipping, tmp_path, alerts, rollback, status, first):
    env, queue = skipping
    handle, urls = await start(env, queue, tmp_path, "pause")
    await paused(env, handle)
    await handle.signal("cancel", {"rollback": rollback, "actor": "erin"})
    with pytest.raises(WorkflowFailureError) as exc:
        await handle.result(rpc_timeout=None)
    result = api.result_from_failure(exc.value, MigrationPlanResult)
    assert result.status == status and result.undone_order == (["first"] if rollback else [])
    assert result.failed_step == "(cancelled)" and result.error.startswith("cancelled by erin while paused: the maintenance")
    assert {s.id: s.state for s in result.steps} == {"first": first, "second": "skipped"}
    assert not Path(urls["other"].removeprefix("sqlite://")).exists()  # the second group never started
    assert [a["kind"] for a in alerts] == ["window_exceeded", status]
    names = [e for e, _ in await events(handle.id)]
    assert names.index("paused") < names.index("cancelled") < names.index("ended")
    assert ("rollback" in names) == rollback


async def test_rollback_when_the_window_ends(skipping, tmp_path, alerts):
    env, queue = skipping
    handle, urls = await start(env, queue, tmp_path, "rollback")
    with pytest.raises(WorkflowFailureError) as exc:
        await handle.result(rpc_timeout=None)  # waiting on the result lets the server skip the hour of soak
    result = api.result_from_failure(exc.value, MigrationPlanResult)
    assert result.status == "rolled_back" and "maintenance window of 1800 s ended before group 2 of 2" in result.error
    assert {s.id: s.state for s in result.steps} == {"first": "undone", "second": "skipped"}
    assert result.undone_order == ["first"] and result.pauses == []
    assert not Path(urls["other"].removeprefix("sqlite://")).exists()  # the second group never started
    window, ended = alerts
    assert window["kind"] == "window_exceeded" and window["action"] == "rolling back the 1 completed step(s) newest first"
    assert ended["kind"] == "rolled_back" and ended["action"] == "completed steps undone newest first"
    assert ended["step"] == "(window)" and ended["figures"]["undone"] == ["first"]


async def test_cli_resume_continues_a_paused_run(skipping, tmp_path, alerts):
    """``plan resume --no-wait`` (the CLI, against the test server, which has no task-queue description for the CLI's
    worker check: so the test follows the run) sends the signal and is audited; the run goes on to its end."""
    import json
    import os
    import sys

    env, queue = skipping
    handle, urls = await start(env, queue, tmp_path, "pause")
    await paused(env, handle)
    cli_env = {**os.environ, "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
               "SNAKEPIT_MIGRATE_HOME": str(tmp_path / "home")}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client.cli", "plan", "resume", handle.id, "--window", "2h", "--actor", "ivy", "--no-wait", "--json",
        env=cli_env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0 and b"Traceback" not in err, err.decode()
    assert json.loads(out) == {"plan_id": handle.id, "signal": "resume", "window_s": 7200.0}
    result = MigrationPlanResult.model_validate(await handle.result(rpc_timeout=None))
    assert result.status == "completed" and result.completed_order == ["first", "second"]
    assert result.pauses[0]["resumed_by"] == "ivy" and await live(urls["other"]) == 20
    logged = await events(handle.id)
    assert ("plan_resume_requested", {"window_s": 7200.0}) in logged
    assert dict(logged)["resumed"] == {"group": 2, "window_s": 7200.0, "by": "ivy", "host": dict(logged)["resumed"]["host"]}
