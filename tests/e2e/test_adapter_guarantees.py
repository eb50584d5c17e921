"""AdapterMigration's guarantees beyond the fleet: its audit trail with the actor, and a plan's reverse rollback of a
completed adapter step (the undo read from that run's result) after a later step failed."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError

from activities.adapters import GENERIC_ADAPTER
from client import api
from deployment.audit import open_audit_log
from deployment.plans.check import validate_plan
from deployment.plans.model import lock_id
from tests.deployment.extensions.helpers import fill, store_bytes
from tests.e2e.test_adapter_migration import (  # noqa: F401 (fixture)
    MATH_FLEET,
    MATH_TOOLS,
    Deployment,
    cli,
    deployment,
    save_history,
)
from workflows.plan_models import MigrationPlanResult

pytestmark = pytest.mark.asyncio(loop_scope="session")

PLAN = """\
    plan: adapter-then-move
    policy: rollback
    migrations:
      - id: adapt
        type: adapter
        params: {path: "@adapter", fleet: "@fleet", config_path: "@pool", examples: 5, sandbox_timeout_s: 60,
                 drain_timeout_s: 10, health_timeout_s: 20, settle_s: 0.3, actor: erin, actor_host: ops3}
      - id: move
        type: sessions
        depends_on: [adapt]
        params: {source: "@legacy", target: "@final", fail_after_batches: 1, batch_size: 20}
    """


@pytest.mark.parametrize("deployment", [MATH_FLEET], indirect=True)
async def test_a_plan_that_fails_after_an_adapter_step_puts_files_and_fleet_back(
    temporal_client, task_queue, deployment: Deployment, tmp_path: Path, monkeypatch
) -> None:
    dep = deployment
    audit_url = f"sqlite://{tmp_path}/audit.db"
    monkeypatch.setenv("SNAKEPIT_AUDIT_URL", audit_url)
    legacy, final = f"sqlite://{tmp_path}/legacy.db", f"sqlite://{tmp_path}/final.db"
    await fill(legacy, 100, expired_fraction=0)
    folder = tmp_path / "plan"
    folder.mkdir()
    (folder / "plan.yaml").write_text(textwrap.dedent(PLAN))
    resources = {"adapter": str(MATH_TOOLS), "fleet": f"local:{dep.fleet.url}", "pool": str(dep.config_path),
                 "legacy": legacy, "final": final}
    body = "".join(f"      {k}: {v!r}\n" for k, v in resources.items())
    (folder / "environments.yaml").write_text(f"environments:\n  staging:\n    resources:\n{body}")
    found = await validate_plan(str(folder / "plan.yaml"), "staging", None, folder / "backups")
    assert found.valid, [i.text() for i in found.issues]

    handle = await api.start_migration_plan(temporal_client, found.resolved(), f"plan-{uuid.uuid4().hex[:6]}", task_queue)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    result = api.result_from_failure(failed.value, MigrationPlanResult)
    assert result is not None and result.status == "rolled_back", failed.value
    assert result.failed_step == "move" and result.completed_order == ["adapt"] and result.undone_order == ["adapt"]
    adapt = next(s for s in result.steps if s.id == "adapt")
    assert adapt.state == "undone" and adapt.rollback_id == f"{adapt.child_id}-rollback"
    await save_history(temporal_client.get_workflow_handle(adapt.child_id), "adapter_audited")
    await save_history(temporal_client.get_workflow_handle(adapt.rollback_id), "adapter_plan_undo")

    # The files byte for byte, no generic configuration left; the fleet on the custom adapter, no migration reported.
    assert dep.config_path.read_bytes() == dep.original and not (dep.folder / "generic-adapter.json").exists()
    assert await dep.state() == {(w, "v1", "base_adapter_tools.MathToolsAdapter") for w in ("w1", "w2")}
    assert (await dep.fleet.health()).migration is None and await store_bytes(final) == {}
    undo = await api.describe(temporal_client, adapt.rollback_id)
    assert undo["status"] == "rolled_back" and undo["result"]["rollback"]["restarted"] == 2
    assert undo["result"]["restored"]["generic_removed"] is True

    # The adapter step's audit trail: every step in order, with who ran it; the undo run's rollback entry.
    async with open_audit_log(audit_url) as log:
        entries = await log.entries(migration=adapt.child_id)
        undone = await log.entries(migration=adapt.rollback_id)
        assert (await log.verify()).ok
    assert all((e.actor, e.host) == ("erin", "ops3") for e in entries + undone)
    assert [(e.event, (e.after or {}).get("phase")) for e in entries] == [
        ("started", None), ("phase", "analyzing"), ("phase", "inspecting"), ("phase", "verifying"), ("phase", "backup"),
        ("phase", "writing"), ("data_moved", None), ("phase", "rolling_out"), ("fleet_restarted", None),
        ("phase", "done"), ("ended", None),
    ]  # no recorded traffic: no live replay  # fmt: skip
    moved = next(e for e in entries if e.event == "data_moved")
    assert moved.before["config_version"] == "v1" and moved.after["config_version"] == "v1-generic"
    assert moved.before["config_digest"] != moved.after["config_digest"] and moved.after["generic_tools"]
    rollout = next(e for e in entries if e.event == "fleet_restarted")
    assert rollout.before == {"instances": {"w1": "v1", "w2": "v1"}}
    assert rollout.after["instances"] == {"w1": "v1-generic", "w2": "v1-generic"} and rollout.after["restarted"] == 2
    assert entries[-1].after["status"] == "completed" and entries[-1].after["config_version"] == "v1-generic"
    rollback = next(e for e in undone if e.event == "rollback")
    assert rollback.before["rollback_of"] == adapt.child_id and rollback.after["status"] == "rolled_back"
    assert rollback.after["fleet_restarted"] == 2 and undone[-1].event == "ended"
    assert any(e.event == "fleet_restarted" and e.after["instances"] == {"w1": "v1", "w2": "v1"} for e in undone)
    assert GENERIC_ADAPTER not in dep.config_path.read_text()


async def test_a_migration_of_a_locked_fleet_is_refused_with_exit_3_naming_the_holder(
    temporal_client, task_queue, cli, tmp_path: Path  # noqa: F811
) -> None:
    spec = "local:http://127.0.0.1:9"
    pool = tmp_path / "pool.json"
    pool.write_text("{}")
    holder = await temporal_client.start_workflow("ResourceLock", {"resource": spec, "holder": "another-run"},
                                                  id=lock_id(spec), task_queue=task_queue)
    try:
        code, out, err = await cli("adapter", "migrate", str(MATH_TOOLS), "--fleet", spec, "--config", str(pool), "--json")
    finally:
        await holder.terminate("test over")
    assert code == 3, (out, err)
    found = json.loads(out)
    assert found["type"] == "ResourceLocked" and f"{spec} by an unknown run" in found["error"] and "--wait-for-lock" in found["hint"]
    assert pool.read_text() == "{}"
