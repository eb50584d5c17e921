"""Plans on Temporal Schedules, on the dev server: the time-skipping test server does not support the Schedules API.
Overlapping windows on a shared resource are refused at creation; a trigger runs the plan, which records the schedule
that fired it; creating, triggering and deleting are audited with the actor.  What a window that ends does (pause,
resume, rollback) is tested with skipped time in tests/e2e/test_plan_window.py."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import pytest

from client import schedules
from client.cli.schedule import _act
from deployment.audit import open_audit_log
from tests.deployment.extensions.helpers import fill
from tests.e2e.test_resource_lock import resolved
from workflows.plan_models import MigrationPlanResult

ONE = """\
    plan: nightly
    migrations:
      - id: move
        type: sessions
        params: {source: "@src", target: "@dst"}
    """

async def test_overlap_refused_disjoint_accepted_trigger_runs(temporal_client, task_queue, tmp_path):
    src, dst = f"sqlite://{tmp_path}/src.db", f"sqlite://{tmp_path}/dst.db"
    await fill(src, 25, expired_fraction=0)
    for other in ("elsewhere", "x"):
        await fill(f"sqlite://{tmp_path}/{other}.db", 3, expired_fraction=0)
    tag = uuid.uuid4().hex[:6]
    first = (await resolved(tmp_path / "a", ONE, {"src": src, "dst": dst})).model_copy(update={"window_s": 1800})
    same_target = await resolved(tmp_path / "b", ONE, {"src": f"sqlite://{tmp_path}/elsewhere.db", "dst": dst})
    disjoint = await resolved(tmp_path / "c", ONE, {"src": f"sqlite://{tmp_path}/x.db", "dst": f"sqlite://{tmp_path}/y.db"})
    ids = [f"a-{tag}", f"b-{tag}", f"c-{tag}"]
    try:
        made = await schedules.create_plan_schedule(temporal_client, ids[0], first, cron="0 3 * * *", task_queue=task_queue)
        assert made["next_times"] and made["window_s"] == 1800
        with pytest.raises(schedules.ScheduleOverlap, match=f"its window overlaps, on a shared resource, {ids[0]} \\(plan nightly"):
            await schedules.create_plan_schedule(temporal_client, ids[1], same_target, cron="15 3 * * *", task_queue=task_queue)
        # after the first one's 30-minute window: no overlap
        await schedules.create_plan_schedule(temporal_client, ids[1], same_target, cron="0 4 * * *", task_queue=task_queue)
        await schedules.create_plan_schedule(temporal_client, ids[2], disjoint, cron="0 3 * * *", task_queue=task_queue)
        listed = {s["id"]: s for s in await schedules.list_plan_schedules(temporal_client)}
        assert set(ids) <= set(listed) and not listed[ids[0]]["paused"]

        address = temporal_client.service_client.config.target_host
        await _act(schedules.trigger_plan_schedule, "schedule_triggered", ids[0], address, "fay")  # what schedule trigger does
        for _ in range(100):
            runs = (await schedules.list_plan_schedules(temporal_client))
            recent = next(s for s in runs if s["id"] == ids[0])["recent_runs"]
            if recent:
                break
            await asyncio.sleep(0.2)
        result = await temporal_client.get_workflow_handle(recent[0], result_type=MigrationPlanResult).result()
        assert result.status == "completed" and result.steps[0].figures["sessions_copied"] == 25
        assert result.schedule_id == ids[0]
        async with open_audit_log() as log:
            fired = [e for e in await log.entries(migration=recent[0]) if e.event == "schedule_fired"]
            triggered = [e for e in await log.entries(migration="plan:nightly") if e.event == "schedule_triggered"]
        assert [e.after["schedule_id"] for e in fired] == [ids[0]]
        assert any(e.after["schedule_id"] == ids[0] and e.actor == "fay" for e in triggered)
    finally:
        for sid in ids:
            try:
                await schedules.delete_plan_schedule(temporal_client, sid)
            except Exception:
                pass


async def test_cli_create_refuses_overlap_with_exit_3(temporal_env, temporal_client, task_queue, tmp_path):
    src, dst = f"sqlite://{tmp_path}/src.db", f"sqlite://{tmp_path}/dst.db"
    await fill(src, 5, expired_fraction=0)
    await resolved(tmp_path / "a", ONE, {"src": src, "dst": dst})
    env = {**os.environ, "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
           "SNAKEPIT_MIGRATE_HOME": str(tmp_path / "home")}  # fmt: skip
    tag = uuid.uuid4().hex[:6]

    async def cli(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "client.cli", *args, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert b"Traceback" not in err, err
        return proc.returncode, out.decode() + err.decode()

    plan = str(tmp_path / "a" / "plan.yaml")
    try:
        code, text = await cli("schedule", "create", plan, "--env", "staging", "--cron", "0 5 * * *", "--window", "2h",
                               "--id", f"one-{tag}", "--actor", "gus")
        assert code == 0 and f"scheduled one-{tag}" in text, text
        code, text = await cli("schedule", "create", plan, "--env", "staging", "--cron", "0 6 * * *", "--id", f"two-{tag}")
        assert code == 3 and f"overlaps, on a shared resource, one-{tag}" in text, text
        code, text = await cli("schedule", "create", plan, "--env", "staging", "--at", "2001-01-01T00:00:00", "--id", f"x-{tag}")
        assert code == 2 and "is in the past" in text
        code, text = await cli("schedule", "list")
        assert code == 0 and f"one-{tag}: plan nightly in staging" in text and f"two-{tag}" not in text
        code, text = await cli("schedule", "delete", f"one-{tag}", "--actor", "gus")
        assert code == 0
        code, text = await cli("schedule", "delete", f"one-{tag}")
        assert code == 2 and f"no schedule 'one-{tag}'" in text
        async with open_audit_log() as log:
            mine = [(e.event, e.actor, (e.after or {}).get("schedule_id")) for e in await log.entries(migration="plan:nightly")
                    if e.actor == "gus"]
        assert ("schedule_created", "gus", f"one-{tag}") in mine and ("schedule_deleted", "gus", f"one-{tag}") in mine
        assert [m for m in mine if m[2] == f"two-{tag}"] == []  # the refused one was not created
        assert [m[0] for m in mine if m[0] != "schedule_deleted"] == ["plan_validated", "schedule_created"]
    finally:
        try:
            await schedules.delete_plan_schedule(temporal_client, f"one-{tag}")
        except Exception:
            pass
