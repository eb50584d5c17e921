"""Resource locks: a second run on a held resource is refused (exit 3, naming the holder) or waits;
a crashed (terminated) holder's locks end with it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import uuid
from pathlib import Path

from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError

from client import api
from deployment.plans.check import validate_plan
from deployment.plans.model import ResolvedPlan, lock_id
from tests.deployment.extensions.helpers import fill
from workflows.plan_models import PlanProgress

HOLDER = """\
    plan: holder
    migrations:
      - id: live-move
        type: sessions
        params: {source: "@live", target: "@shared", zero_downtime: true, soak_seconds: 600}
    """
SECOND = """\
    plan: second
    migrations:
      - id: into-shared
        type: sessions
        params: {source: "@other", target: "@shared", overwrite: true}
    """


async def resolved(folder: Path, plan: str, resources: dict[str, str], **update) -> ResolvedPlan:
    folder.mkdir(exist_ok=True)
    (folder / "plan.yaml").write_text(textwrap.dedent(plan))
    body = "".join(f"      {k}: {v!r}\n" for k, v in resources.items())
    (folder / "environments.yaml").write_text(f"environments:\n  staging:\n    resources:\n{body}")
    found = await validate_plan(str(folder / "plan.yaml"), "staging", None, folder / "backups")
    assert found.valid, [i.text() for i in found.issues]
    return found.resolved().model_copy(update=update)


async def start_holder(client: Client, queue: str, tmp_path: Path, shared: str) -> str:
    live = f"sqlite://{tmp_path}/live.db"
    await fill(live, 20, expired_fraction=0)
    inp = await resolved(tmp_path / "holder", HOLDER, {"live": live, "shared": shared})
    handle = await api.start_migration_plan(client, inp, f"holder-{uuid.uuid4().hex[:6]}", queue)
    for _ in range(200):  # until its child soaks, holding the locks
        progress = await handle.query("progress", result_type=PlanProgress)
        if progress.steps[0].state == "running":
            try:
                child = await client.get_workflow_handle(progress.steps[0].child_id).query("progress")
            except RPCError:  # marked running a moment before the child exists
                child = {}
            if child.get("phase") == "soaking":
                return handle.id
        await asyncio.sleep(0.1)
    raise AssertionError("the holder never reached its soak")


async def test_refused_while_held_then_free_after_the_holder_crashes(temporal_client, task_queue, tmp_path):
    shared = f"sqlite://{tmp_path}/shared.db"
    holder = await start_holder(temporal_client, task_queue, tmp_path, shared)
    other = f"sqlite://{tmp_path}/other.db"
    await fill(other, 10, expired_fraction=0, seed=2)
    second = await resolved(tmp_path / "second", SECOND, {"other": other, "shared": shared})
    assert await api.lock_holders(temporal_client, second) == {shared: holder}

    refused = await api.start_migration_plan(temporal_client, second, None, task_queue)
    try:
        await refused.result()
        raise AssertionError("the second plan ran on a held resource")
    except WorkflowFailureError as exc:
        assert exc.cause.type == "ResourceLocked" and lock_id(shared) in exc.cause.message
    # the refused run released what it had taken: the other store is free
    assert await api.lock_holders(temporal_client, second) == {shared: holder}
    # it asked for both locks at once (one round trip), not one after the other
    kinds = [e.WhichOneof("attributes") for e in (await refused.fetch_history()).events]
    first_answer = min(i for i, k in enumerate(kinds) if k in ("child_workflow_execution_started_event_attributes",
                                                                "start_child_workflow_execution_failed_event_attributes"))
    assert kinds[:first_answer].count("start_child_workflow_execution_initiated_event_attributes") == 2

    await temporal_client.get_workflow_handle(holder).terminate("simulated crash")
    for _ in range(100):
        if not await api.lock_holders(temporal_client, second):
            break
        await asyncio.sleep(0.1)
    assert await api.lock_holders(temporal_client, second) == {}
    result = await (await api.start_migration_plan(temporal_client, second, None, task_queue)).result()
    assert result.status == "completed" and result.steps[0].figures["sessions_copied"] == 10
    assert await api.lock_holders(temporal_client, second) == {}  # released at the end


async def test_wait_for_lock_runs_once_the_holder_ends(temporal_client, task_queue, tmp_path):
    shared = f"sqlite://{tmp_path}/shared.db"
    holder = await start_holder(temporal_client, task_queue, tmp_path, shared)
    other = f"sqlite://{tmp_path}/other.db"
    await fill(other, 5, expired_fraction=0, seed=2)
    second = await resolved(tmp_path / "second", SECOND, {"other": other, "shared": shared}, wait_for_lock=True)
    waiting = await api.start_migration_plan(temporal_client, second, None, task_queue)
    for _ in range(100):
        progress = await waiting.query("progress", result_type=PlanProgress)
        if progress.waiting_for == lock_id(shared):
            break
        await asyncio.sleep(0.1)
    assert progress.phase == "locking" and progress.waiting_for == lock_id(shared)
    await temporal_client.get_workflow_handle(holder).terminate("simulated crash")
    result = await waiting.result()
    assert result.status == "completed" and result.steps[0].figures["sessions_copied"] == 5


async def test_cli_refuses_with_exit_3_naming_the_holder(temporal_env, temporal_client, task_queue, tmp_path):
    shared = f"sqlite://{tmp_path}/shared.db"
    holder = await start_holder(temporal_client, task_queue, tmp_path, shared)
    other = f"sqlite://{tmp_path}/other.db"
    await fill(other, 5, expired_fraction=0, seed=2)
    await resolved(tmp_path / "second", SECOND, {"other": other, "shared": shared})
    env = {**os.environ, "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
           "SNAKEPIT_MIGRATE_HOME": str(tmp_path / "home")}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client.cli", "plan", "run", str(tmp_path / "second" / "plan.yaml"), "--env", "staging", "--json",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 3, err.decode()
    found = json.loads(out)
    assert found["type"] == "ResourceLocked" and f"{shared} by {holder}" in found["error"]
    assert "--wait-for-lock" in found["hint"] and "Traceback" not in err.decode()
    await temporal_client.get_workflow_handle(holder).terminate("test over")
