"""RollingRestart's guarantees beyond the fleet: its audit trail with the actor, the fleet lock of a lone run, and the
undo of a completed run (``rollback_of``), alone and as a plan's reverse rollback after a later step failed."""

from __future__ import annotations

import json
import os
import textwrap
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from client import api
from client.connect import client_options
from deployment.audit import open_audit_log
from deployment.plans.check import validate_plan
from deployment.plans.model import lock_id
from tests.deployment.extensions.helpers import fill, store_bytes
from tests.e2e.test_rolling_restart_ops import cli  # noqa: F401 (fixture)
from tests.e2e.test_session_alerts import receiver  # noqa: F401 (fixture)
from tests.e2e.rolling_helpers import (  # noqa: F401 (fixtures)
    FAST,
    fleet,
    fleet_config,
    fleet_dir,
    store_url,
    versions,
)
from workflows import all_workflows
from workflows.fleet_models import RollingRestartInput, RollingRestartResult
from workflows.plan_models import MigrationPlanResult


HISTORIES = Path(__file__).resolve().parents[1] / "histories"


async def save_history(client, migration_id: str, name: str) -> None:
    """With SNAKEPIT_RECORD_HISTORIES set, keep the run's history for the replay test below."""
    if os.environ.get("SNAKEPIT_RECORD_HISTORIES"):
        (HISTORIES / f"{name}.json").write_text((await client.get_workflow_handle(migration_id).fetch_history()).to_json())


@pytest.fixture
def audit_url(tmp_path, monkeypatch) -> str:
    """A log of this test only (the in-process worker reads SNAKEPIT_AUDIT_URL at each append)."""
    url = f"sqlite://{tmp_path}/audit.db"
    monkeypatch.setenv("SNAKEPIT_AUDIT_URL", url)
    return url


async def entries_of(url: str, migration_id: str):
    async with open_audit_log(url) as log:
        found = await log.entries(migration=migration_id)
        report = await log.verify()
    assert report.ok, report.problems
    return found


async def restart(client, queue: str, migration_id: str | None = None, **fields) -> RollingRestartResult:
    handle = await api.start_rolling_restart(client, RollingRestartInput(**{**FAST, **fields}), migration_id, queue)
    return await api.wait_for_rolling_restart(handle)


async def test_a_lone_restart_logs_each_instance_and_its_undo_puts_the_fleet_back(
    temporal_client, task_queue, fleet, fleet_dir, store_url, audit_url, cli  # noqa: F811
):
    before = await versions(fleet)
    old = next(iter(before.values()))
    v20 = fleet_dir / "v20.json"
    v20.write_text(json.dumps(fleet_config("fleet_adapters.CounterAdapterV2", "v20", store_url)))
    spec = f"local:{fleet.url}"
    mid = f"restart-audit-{uuid.uuid4().hex[:6]}"
    result = await restart(temporal_client, task_queue, mid, fleet=spec, config_path=str(v20), actor="carol", actor_host="ops2")
    assert result.status == "completed" and result.restarted == 3, result.error
    assert set((await versions(fleet)).values()) == {"v20"}
    assert await api.resource_holders(temporal_client, [spec]) == {}  # its lock ended with it
    await save_history(temporal_client, mid, "rolling_restart_audited")

    entries = await entries_of(audit_url, mid)
    assert all((e.actor, e.host, e.workflow_id) == ("carol", "ops2", mid) for e in entries)
    events = [e.event for e in entries]
    assert events[:3] == ["started", "locked", "phase"] and events[-2:] == ["phase", "ended"], events
    assert entries[1].after == {"locks": sorted([lock_id(spec), lock_id(str(v20))])}
    per_instance = [(e.after["phase"], e.after["instance"]) for e in entries if e.event == "phase"]
    for n in (1, 2, 3):
        steps = [p for p, i in per_instance if i == f"w{n}"]
        assert steps == ["draining", "waiting_idle", "restarting", "checking_health", "undraining"], (n, steps)
    restarted = [e for e in entries if e.event == "instance_restarted"]
    assert [(e.before, e.after["instance"], e.after["config_version"]) for e in restarted] == [
        ({"instance": f"w{n}", "config_version": old}, f"w{n}", "v20") for n in (1, 2, 3)]
    assert events.index("instance_restarted") > max(i for i, e in enumerate(entries) if e.event == "phase"
                                                    and e.after["instance"] == "w1")
    ended = entries[-1].after
    assert ended["status"] == "completed" and ended["restarted"] == 3 and ended["versions"]["w2"] == [old, "v20", "restarted"]

    # Undone later by a run with rollback_of: each instance back on the config it ran before, newest first.
    code, out, err = await cli("fleet", "rollback", mid, "--actor", "dave", "--json")
    assert code == 0, (out, err)
    undo = RollingRestartResult.model_validate(json.loads(out))
    assert undo.migration_id == f"{mid}-rollback" and undo.status == "rolled_back" and undo.error is None, undo.error
    assert undo.rolled_back == ["w3", "w2", "w1"] and undo.config_version == old
    assert await versions(fleet) == before
    await save_history(temporal_client, undo.migration_id, "rolling_restart_rollback_of")
    health = await fleet.health()
    assert health.status == "ok" and health.migration is None and {i.state for i in health.instances} == {"serving"}
    entries = await entries_of(audit_url, undo.migration_id)
    rollback = next(e for e in entries if e.event == "rollback")
    assert rollback.before["rollback_of"] == mid and rollback.after == {"status": "rolled_back", "restored": 3,
                                                                         "instances": ["w3", "w2", "w1"]}
    assert {e.actor for e in entries} == {"dave"} and entries[-1].after["status"] == "rolled_back"

    # Undone again: nothing left to move (idempotent); once an instance runs something else, refused before anything moves.
    again = await restart(temporal_client, task_queue, None, fleet=spec, rollback_of=mid)
    assert (again.status, again.restarted) == ("rolled_back", 0) and {i.outcome for i in again.instances} == {"unchanged"}
    assert await versions(fleet) == before
    v23 = fleet_dir / "v23.json"
    v23.write_text(json.dumps(fleet_config("fleet_adapters.CounterAdapter", "v23", store_url)))
    assert (await restart(temporal_client, task_queue, None, fleet=spec, config_path=str(v23), instances=["w2"])).restarted == 1
    code, out, err = await cli("rollback", mid, "--json")  # the generic verb reaches the same undo
    assert code == 2, (out, err)  # refused: nothing moved
    changed = RollingRestartResult.model_validate(json.loads(out))
    assert (changed.status, changed.error_type, changed.restarted) == ("failed", "FleetChanged", 0)
    assert f"the fleet changed since {mid} left it on v20: w2 runs v23; nothing was restarted" in changed.error
    assert (await versions(fleet))["w2"] == "v23"
    with pytest.raises(WorkflowFailureError) as refused:  # a run that did not complete has nothing to undo
        await (await api.start_rolling_restart(temporal_client, RollingRestartInput(fleet=spec, rollback_of=changed.migration_id),
                                               None, task_queue)).result()
    assert "is failed: only a completed run is undone" in refused.value.cause.message
    back = await restart(temporal_client, task_queue, None, fleet=spec, config_path=str(fleet_dir / "v1.json"), instances=["w2"])
    assert back.restarted == 1 and await versions(fleet) == before


async def test_a_locked_fleet_is_refused_and_a_slow_instance_alerts_as_stalled(
    temporal_client, task_queue, fleet, fleet_dir, store_url, audit_url, cli, receiver  # noqa: F811
):
    spec = f"local:{fleet.url}"
    v21 = fleet_dir / "v21.json"
    v21.write_text(json.dumps(fleet_config("fleet_adapters.CounterAdapter", "v21", store_url)))
    holder = await temporal_client.start_workflow("ResourceLock", {"resource": spec, "holder": "plan-elsewhere"},
                                                  id=lock_id(spec), task_queue=task_queue)
    before = await versions(fleet)
    try:
        code, out, err = await cli("fleet", "restart", "--fleet", fleet.url, "--driver", "local", "--config", str(v21), "--json")
        assert code == 3, (out, err)
        found = json.loads(out)
        assert found["type"] == "ResourceLocked" and f"{spec} by an unknown run" in found["error"] and "--wait-for-lock" in found["hint"]
        with pytest.raises(WorkflowFailureError) as refused:  # started anyway: it refuses itself before touching the fleet
            await restart(temporal_client, task_queue, None, fleet=spec, config_path=str(v21))
        assert refused.value.cause.type == "ResourceLocked" and lock_id(spec) in refused.value.cause.message
    finally:
        await holder.terminate("test over")
    assert await versions(fleet) == before

    # free again: it runs; an instance whose restart outlasts the stall time is logged and alerted once, and goes on
    mid = f"restart-stall-{uuid.uuid4().hex[:6]}"
    result = await restart(temporal_client, task_queue, mid, fleet=spec, config_path=str(v21), settle_s=1.5,
                           instances=["w1"], stall_alert_seconds=0.5)
    assert result.status == "completed" and result.restarted == 1 and (await versions(fleet))["w1"] == "v21"
    stalled = [a for a in receiver if a["kind"] == "stalled"]
    assert len({a["alert_id"] for a in stalled}) == 1  # once (the receiver refuses each alert's first delivery)
    assert stalled[0]["migration_id"] == mid and stalled[0]["step"] in ("waiting_idle", "restarting", "checking_health")
    assert "no progress reported for 0.5 s" in stalled[0]["error"]
    entries = await entries_of(audit_url, mid)
    assert [e.after["stalled_s"] for e in entries if e.event == "stalled"] == [0.5]
    back = await restart(temporal_client, task_queue, None, fleet=spec, config_path=str(fleet_dir / "v1.json"), instances=["w1"])
    assert back.restarted == 1 and await versions(fleet) == before


PLAN = """\
    plan: restart-then-move
    policy: rollback
    migrations:
      - id: restart
        type: rolling_restart
        params: {fleet: "@fleet", config_path: "@next", drain_timeout_s: 10, health_timeout_s: 20, settle_s: 0.5}
      - id: move
        type: sessions
        depends_on: [restart]
        params: {source: "@legacy", target: "@final", fail_after_batches: 1, batch_size: 20}
    """


async def test_a_plan_that_fails_after_a_rolling_restart_puts_the_fleet_back_on_its_old_config(
    temporal_client, task_queue, fleet, fleet_dir, store_url, tmp_path: Path
):
    before = await versions(fleet)
    v22 = fleet_dir / "v22.json"
    v22.write_text(json.dumps(fleet_config("fleet_adapters.CounterAdapterV2", "v22", store_url)))
    legacy, final = f"sqlite://{tmp_path}/legacy.db", f"sqlite://{tmp_path}/final.db"
    await fill(legacy, 100, expired_fraction=0)
    (tmp_path / "plan.yaml").write_text(textwrap.dedent(PLAN))
    resources = {"fleet": f"local:{fleet.url}", "next": str(v22), "legacy": legacy, "final": final}
    body = "".join(f"      {k}: {v!r}\n" for k, v in resources.items())
    (tmp_path / "environments.yaml").write_text(f"environments:\n  staging:\n    resources:\n{body}")
    found = await validate_plan(str(tmp_path / "plan.yaml"), "staging", None, tmp_path / "backups")
    assert found.valid, [i.text() for i in found.issues]

    handle = await api.start_migration_plan(temporal_client, found.resolved(), f"plan-{uuid.uuid4().hex[:6]}", task_queue)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    result = api.result_from_failure(failed.value, MigrationPlanResult)
    assert result is not None and result.status == "rolled_back", failed.value
    assert result.failed_step == "move" and result.completed_order == ["restart"] and result.undone_order == ["restart"]
    steps = {s.id: s for s in result.steps}
    assert (steps["restart"].state, steps["restart"].rollback_id) == ("undone", f"{steps['restart'].child_id}-rollback")
    assert steps["restart"].figures["restarted"] == 3 and steps["move"].state == "rolled_back"

    # the fleet is back on its old config, every instance serving, no migration reported; the target as found
    assert await versions(fleet) == before
    health = await fleet.health()
    assert health.status == "ok" and health.migration is None and {i.state for i in health.instances} == {"serving"}
    assert await store_bytes(final) == {}
    undo = await api.describe(temporal_client, steps["restart"].rollback_id)
    assert undo["status"] == "rolled_back" and undo["result"]["rolled_back"] == ["w3", "w2", "w1"]


@pytest.mark.parametrize("name", ["rolling_restart_audited", "rolling_restart_rollback_of"])
async def test_saved_histories_with_audit_locks_and_undo_replay(name: str) -> None:
    text = (HISTORIES / f"{name}.json").read_text()
    history = WorkflowHistory.from_json(name, text)
    scheduled = [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
                 if e.HasField("activity_task_scheduled_event_attributes")]
    assert "append_audit_entry" in scheduled  # recorded with the audit trail, or it proves nothing new
    assert ("load_restart_undo" in scheduled) == (name == "rolling_restart_rollback_of")
    result = await Replayer(workflows=all_workflows(), **client_options()).replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
