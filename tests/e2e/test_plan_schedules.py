"""Plans on Temporal Schedules (dev server: the time-skipping test server has no schedules): overlapping windows on a
shared resource refused at creation, a trigger runs the plan, and a maintenance window that ends pauses or rolls back."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError

from client import api, schedules
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
CHAIN = """\
    plan: chain
    migrations:
      - id: first
        type: sessions
        params: {source: "@src", target: "@dst", zero_downtime: true, soak_seconds: 5}
      - id: second
        type: sessions
        depends_on: [first]
        params: {source: "@src", target: "@other"}
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

        await schedules.trigger_plan_schedule(temporal_client, ids[0])
        for _ in range(100):
            runs = (await schedules.list_plan_schedules(temporal_client))
            recent = next(s for s in runs if s["id"] == ids[0])["recent_runs"]
            if recent:
                break
            await asyncio.sleep(0.2)
        result = await temporal_client.get_workflow_handle(recent[0], result_type=MigrationPlanResult).result()
        assert result.status == "completed" and result.steps[0].figures["sessions_copied"] == 25
    finally:
        for sid in ids:
            try:
                await schedules.delete_plan_schedule(temporal_client, sid)
            except Exception:
                pass


@pytest.mark.parametrize("on_exceeded, status, first", [("pause", "paused", "completed"), ("rollback", "rolled_back", "undone")])
async def test_window_ended_before_the_next_group(temporal_client, task_queue, tmp_path, on_exceeded, status, first):
    src, dst = f"sqlite://{tmp_path}/src.db", f"sqlite://{tmp_path}/dst.db"
    await fill(src, 20, expired_fraction=0)
    # the first group soaks 5 s (a durable timer): it ends after the 3 s window, which the locks and checks do not use up
    inp = (await resolved(tmp_path / "p", CHAIN, {"src": src, "dst": dst, "other": f"sqlite://{tmp_path}/other.db"})
           ).model_copy(update={"window_s": 3.0, "on_window_exceeded": on_exceeded})
    handle = await api.start_migration_plan(temporal_client, inp, None, task_queue)
    with pytest.raises(WorkflowFailureError) as exc:
        await handle.result()
    result = api.result_from_failure(exc.value, MigrationPlanResult)
    assert result.status == status and "maintenance window of 3 s ended before group 2 of 2" in result.error
    assert {s.id: s.state for s in result.steps} == {"first": first, "second": "skipped"}
    assert result.undone_order == ([] if on_exceeded == "pause" else ["first"])
    assert not Path(f"{tmp_path}/other.db").exists()


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
        code, text = await cli("schedule", "create", plan, "--env", "staging", "--cron", "0 5 * * *", "--window", "2h", "--id", f"one-{tag}")
        assert code == 0 and f"scheduled one-{tag}" in text, text
        code, text = await cli("schedule", "create", plan, "--env", "staging", "--cron", "0 6 * * *", "--id", f"two-{tag}")
        assert code == 3 and f"overlaps, on a shared resource, one-{tag}" in text, text
        code, text = await cli("schedule", "create", plan, "--env", "staging", "--at", "2001-01-01T00:00:00", "--id", f"x-{tag}")
        assert code == 2 and "is in the past" in text
        code, text = await cli("schedule", "list")
        assert code == 0 and f"one-{tag}: plan nightly in staging" in text and f"two-{tag}" not in text
        code, text = await cli("schedule", "delete", f"one-{tag}")
        assert code == 0
    finally:
        try:
            await schedules.delete_plan_schedule(temporal_client, f"one-{tag}")
        except Exception:
            pass
