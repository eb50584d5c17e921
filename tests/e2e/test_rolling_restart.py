"""RollingRestart end to end: a real 3-instance reference fleet under load, real workers, a real Temporal dev server."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer, Worker

from activities import all_activities
from client.connect import client_options
from deployment.pool.load import run_load
from deployment.sessions.stores import open_store
from tests.deployment.pool.fleet_helpers import call_tool
from tests.e2e.rolling_helpers import (  # noqa: F401 (fixtures)
    FAST,
    assert_one_out_at_most,
    fleet,
    fleet_config,
    fleet_dir,
    restart_watching,
    store_url,
    versions,
)
from tests.e2e.rolling_parent import ParentMigrationWorkflow
from workflows import all_workflows
from workflows.fleet_models import RollingRestartProgress, RollingRestartResult
from workflows.rolling_restart import RollingRestartWorkflow

HISTORY = Path(__file__).resolve().parents[1] / "histories" / "rolling_restart_completed.json"


async def test_rolling_restart_under_load_fails_no_request(temporal_client, task_queue, fleet, fleet_dir, store_url):
    v2 = fleet_dir / "v2.json"
    v2.write_text(json.dumps(fleet_config("fleet_adapters.CounterAdapterV2", "v2", store_url)))
    done = asyncio.Event()
    load = asyncio.create_task(run_load(fleet.url, rate=25, duration=120, sessions=5, tool="incr",
                                        keep_results=True, stop=done))
    await asyncio.sleep(0.5)
    mid, result, samples = await restart_watching(temporal_client, task_queue, fleet, config_path=str(v2))
    assert not load.done(), "the load ended before the restart did: the test proves nothing"
    await asyncio.sleep(0.5)  # traffic on the new config too
    done.set()
    report = await load

    assert result.status == "completed", result.error
    assert result.restarted == 3 and [(i.id, i.from_version, i.to_version, i.outcome) for i in result.instances] == [
        (f"w{n}", "v1", "v2", "restarted") for n in (1, 2, 3)
    ]
    assert report.requests >= 50 and report.errors == 0, report.error_kinds
    assert_one_out_at_most(samples, mid)
    marked = {h.migration.phase for _, h in samples if h.migration is not None}
    assert {f"rolling_restart: restarting w{n}" for n in (1, 2, 3)} <= marked, marked
    assert {"migrating"} == {h.status for p, h in samples if p.phase == "restarting"}
    assert {p.instance for p, _ in samples if p.phase == "restarting"} == {"w1", "w2", "w3"}

    health = await fleet.health()
    assert health.status == "ok" and health.migration is None
    assert {(i.state, i.config_version) for i in health.instances} == {("serving", "v2")}
    # every increment landed and what each client was last told is what the store holds
    async with open_store(store_url) as store:
        records = await store.read_many([f"load-{k}" for k in range(5)])
    assert sum(r["metadata"]["counter"] for r in records.values()) == report.requests
    assert report.last_results == {sid: r["metadata"]["counter"] for sid, r in records.items()}


async def test_an_instance_unhealthy_after_restart_rolls_the_others_back(temporal_client, task_queue, fleet, fleet_dir,
                                                                          store_url):
    before = await versions(fleet)
    assert len(set(before.values())) == 1
    bad = fleet_config("rolling_adapters.FailOnInstanceAdapter", "v3-bad", store_url, ROLLING_FAIL_INSTANCE="w2")
    done = asyncio.Event()
    load = asyncio.create_task(run_load(fleet.url, rate=20, duration=120, sessions=4, tool="ping", stop=done))
    await asyncio.sleep(0.3)
    mid, result, samples = await restart_watching(temporal_client, task_queue, fleet, config=bad, settle_s=1.0)
    assert not load.done()
    done.set()
    report = await load

    assert result.status == "rolled_back", result
    assert result.failed_instance == "w2" and result.failed_phase == "restarting"
    assert result.error_type == "InstanceStartFailed"
    assert result.error.startswith("instance w2: unhealthy within 1s of starting") and "exited with 3" in result.error, \
        result.error
    assert result.error.count("instance w2") == 1 and "InstanceStartFailed" not in result.error
    assert result.rolled_back == ["w1"]
    assert [(i.id, i.outcome) for i in result.instances] == [("w1", "rolled_back"), ("w2", "failed"), ("w3", "not_reached")]
    assert report.requests >= 30 and report.errors == 0, report.error_kinds
    assert_one_out_at_most(samples, mid)
    assert any(p.phase == "rolling_back" and p.instance == "w1" for p, _ in samples)
    # w1 served the new config for a while, and is back on the old one
    assert any(i.id == "w1" and i.config_version == "v3-bad" for _, h in samples for i in h.instances)
    health = await fleet.health()
    assert health.status == "ok" and health.migration is None
    assert await versions(fleet) == before
    assert {i.state for i in health.instances} == {"serving"}


async def test_an_instance_that_drops_out_after_its_restart_fails_the_health_check(temporal_client, task_queue, fleet,
                                                                                    fleet_dir, store_url):
    before = await versions(fleet)
    flag = fleet_dir / "crash-now"
    flaky = fleet_config("rolling_adapters.CrashOnSignalAdapter", "v3-flaky", store_url,
                         ROLLING_FAIL_INSTANCE="w2", ROLLING_CRASH_FILE=str(flag))

    seen: list[float] = []

    def crash_w2_once_it_is_checked(progress: RollingRestartProgress) -> None:
        # w2 came up on the new config and passed the fleet's own settle; once the health check
        # has watched it serve for a while, it dies
        if (progress.phase, progress.instance) == ("checking_health", "w2"):
            seen.append(asyncio.get_running_loop().time())
            if seen[-1] - seen[0] >= 0.6:
                flag.touch()

    done = asyncio.Event()
    load = asyncio.create_task(run_load(fleet.url, rate=20, duration=120, sessions=4, tool="ping", stop=done))
    await asyncio.sleep(0.3)
    try:
        mid, result, samples = await restart_watching(temporal_client, task_queue, fleet, crash_w2_once_it_is_checked,
                                                      config=flaky, settle_s=2.5, health_timeout_s=10.0)
    finally:
        done.set()
        report = await load
    assert flag.exists(), "the health check of w2 was never seen: the test proves nothing"
    flag.unlink()

    assert result.status == "rolled_back", result
    assert (result.failed_instance, result.failed_phase, result.error_type) == ("w2", "checking_health", "InstanceUnhealthy")
    assert result.error.startswith("instance w2: went down") and "v3-flaky" in result.error, result.error
    assert result.rolled_back == ["w2", "w1"]
    assert [(i.id, i.outcome) for i in result.instances] == [("w1", "rolled_back"), ("w2", "rolled_back"),
                                                             ("w3", "not_reached")]
    assert report.requests >= 30 and report.errors == 0, report.error_kinds
    assert_one_out_at_most(samples, mid)
    health = await fleet.health()
    assert health.status == "ok" and health.migration is None and await versions(fleet) == before


async def test_requests_still_in_flight_past_the_drain_timeout_stop_it_before_any_restart(temporal_client, task_queue,
                                                                                            fleet, store_url):
    before = await versions(fleet)
    slow = [asyncio.create_task(call_tool(fleet.url, "slow", f"slow-{n}", {"seconds": 4.0})) for n in range(6)]
    await asyncio.sleep(0.5)  # two long calls in flight on every instance
    _, result, _ = await restart_watching(temporal_client, task_queue, fleet, drain_timeout_s=1.0,
                                          config=fleet_config("fleet_adapters.CounterAdapterV2", "v15", store_url))
    answers = await asyncio.gather(*slow)
    assert (result.status, result.failed_instance, result.failed_phase, result.error_type) == (
        "rolled_back", "w1", "waiting_idle", "DrainTimeout")
    assert result.error == "instance w1: requests still in flight after 1s of draining", result.error
    assert result.restarted == 0 and result.rolled_back == []
    assert [status for status, _ in answers] == [200] * 6  # the calls it waited for were not cut off
    health = await fleet.health()
    assert health.status == "ok" and await versions(fleet) == before


async def test_started_from_a_plain_dict_and_bad_dicts_are_refused(temporal_client, task_queue, fleet, store_url):
    v4 = fleet_config("fleet_adapters.CounterAdapter", "v4", store_url)
    wid = f"restart-dict-{uuid.uuid4().hex[:6]}"
    handle = await temporal_client.start_workflow(
        "RollingRestart", {"fleet": f"local:{fleet.url}", "config": v4, "settle_s": 0.2, "health_timeout_s": 20},
        id=wid, task_queue=task_queue, result_type=RollingRestartResult,
    )  # fmt: skip
    result = await handle.result()
    assert result.status == "completed" and result.restarted == 3 and result.config_version == "v4"
    assert set((await versions(fleet)).values()) == {"v4"}
    if os.environ.get("SNAKEPIT_RECORD_HISTORIES"):
        HISTORY.parent.mkdir(parents=True, exist_ok=True)
        HISTORY.write_text((await handle.fetch_history()).to_json())

    for params, expected in [
        ({"fleet": fleet.url}, "give exactly one of config_path and config"),
        ({"fleet": fleet.url, "config": v4, "drain_timeout_s": -1}, "drain_timeout_s"),
        ({"config": v4}, "fleet"),
    ]:
        bad = await temporal_client.start_workflow("RollingRestart", params, id=f"{wid}-bad-{uuid.uuid4().hex[:4]}",
                                                   task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as caught:
            await bad.result()
        cause = caught.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "InvalidInput" and expected in cause.message
    assert set((await versions(fleet)).values()) == {"v4"}


async def test_runs_as_the_child_of_another_migration_under_its_id(temporal_client, fleet, store_url):
    before = await versions(fleet)
    v7 = fleet_config("fleet_adapters.CounterAdapter", "v7", store_url)
    bad = fleet_config("rolling_adapters.FailOnInstanceAdapter", "v8-bad", store_url, ROLLING_FAIL_INSTANCE="w2")
    queue = f"test-parent-{uuid.uuid4().hex[:6]}"
    marks: set[tuple[str, str]] = set()

    async def parent(config: dict[str, Any]) -> RollingRestartResult:
        pid = f"parent-{uuid.uuid4().hex[:6]}"
        handle = await temporal_client.start_workflow(
            "TestParentMigration", {"fleet": fleet.url, "driver": "local", "config": config, **FAST, "settle_s": 1.0},
            id=pid, task_queue=queue, result_type=RollingRestartResult,
        )  # fmt: skip
        waiting = asyncio.ensure_future(handle.result())
        while not waiting.done():
            mark = (await fleet.health()).migration
            if mark is not None:
                marks.add((mark.id, mark.phase))
            await asyncio.wait({waiting}, timeout=0.1)
        assert {m for m, _ in marks} == {pid}, marks  # the child reported its steps under the parent's id
        assert ("parent: rolling" in {p for _, p in marks}) and any(p.startswith("rolling_restart: ") for _, p in marks)
        marks.clear()
        return waiting.result()

    with ThreadPoolExecutor(2) as executor:
        async with Worker(temporal_client, task_queue=queue, workflows=[*all_workflows(), ParentMigrationWorkflow],
                          activities=all_activities(), activity_executor=executor):
            result = await parent(v7)
            assert result.status == "completed" and result.restarted == 3 and result.config_version == "v7"
            assert set((await versions(fleet)).values()) == {"v7"} and (await fleet.health()).migration is None

            failed = await parent(bad)
    assert failed.status == "rolled_back" and failed.failed_instance == "w2" and failed.rolled_back == ["w1"]
    assert "instance w2" in failed.error
    health = await fleet.health()
    assert health.status == "ok" and health.migration is None and set((await versions(fleet)).values()) == {"v7"}
    assert before != await versions(fleet)


async def test_a_fleet_busy_with_another_migration_is_refused_and_its_mark_kept(temporal_client, task_queue, fleet,
                                                                                 store_url):
    before = await versions(fleet)
    await fleet.set_migration("someone-else", "copying")
    try:
        _, result, _ = await restart_watching(temporal_client, task_queue, fleet,
                                              config=fleet_config("fleet_adapters.CounterAdapter", "v9", store_url))
        health = await fleet.health()
    finally:
        await fleet.clear_migration()
    assert (result.status, result.error_type, result.failed_phase) == ("failed", "FleetBusy", "validating")
    assert "someone-else" in result.error and result.restarted == 0
    assert health.migration is not None and (health.migration.id, health.migration.phase) == ("someone-else", "copying")
    assert await versions(fleet) == before


async def test_a_saved_completed_history_replays() -> None:
    text = HISTORY.read_text()
    history = WorkflowHistory.from_json("rolling-restart-completed", text)
    kinds = [e.event_type for e in history.events]
    assert sum(1 for e in history.events if e.HasField("activity_task_scheduled_event_attributes")) >= 15, len(kinds)
    await Replayer(workflows=[RollingRestartWorkflow], **client_options()).replay_workflow(history)
