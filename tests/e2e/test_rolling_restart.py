"""RollingRestart end to end: a real 3-instance reference fleet, real workers, a real Temporal dev server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
import pytest_asyncio
from temporalio.client import WorkflowFailureError, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer, Worker

from activities import all_activities
from client import api
from client.connect import client_options
from deployment.fleet.base import FleetHealth
from deployment.fleet.local import LocalFleet
from deployment.pool.load import run_load
from deployment.sessions.stores import open_store
from tests.e2e.rolling_parent import ParentMigrationWorkflow
from workflows import all_workflows
from workflows.fleet_models import RollingRestartInput, RollingRestartProgress, RollingRestartResult
from workflows.rolling_restart import RollingRestartWorkflow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HISTORY = Path(__file__).resolve().parents[1] / "histories" / "rolling_restart_completed.json"
FAST = {"drain_timeout_s": 10.0, "health_timeout_s": 20.0, "settle_s": 0.5}


def fleet_config(adapter: str, version: str, store_url: str, **env: str) -> dict[str, Any]:
    """A deployment config (Snakepit keys) running a fixture adapter."""
    path = os.pathsep.join([str(FIXTURES / "fleet"), str(FIXTURES / "rolling")])
    return {
        "config_version": version,
        "pools": [{"name": "default", "pool_size": 3, "adapter_args": ["--adapter", adapter],
                   "adapter_env": {"PYTHONPATH": path, **env}}],
        "session_store": store_url,
        "session_default_ttl": 600,
    }


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rolling")


@pytest.fixture(scope="module")
def store_url(fleet_dir: Path) -> str:
    return f"sqlite:///{fleet_dir / 'sessions.db'}"


@pytest_asyncio.fixture(scope="module")
async def fleet(fleet_dir: Path, store_url: str) -> AsyncIterator[LocalFleet]:
    """A 3-instance reference fleet on config v1; every process of it is gone afterwards."""
    v1 = fleet_dir / "v1.json"
    v1.write_text(json.dumps(fleet_config("fleet_adapters.CounterAdapter", "v1", store_url)))
    running = await LocalFleet.start(v1, instances=3, port=0, ready_timeout=60,
                                     extra_args=["--run-dir", str(fleet_dir / "run")])
    pids = [running.process.pid] if running.process else []
    try:
        yield running
    finally:
        async with aiohttp.ClientSession() as http:
            try:
                async with http.get(f"{running.url}/admin/instances") as resp:
                    pids += [i["pid"] for i in (await resp.json())["instances"] if i["pid"]]
            except aiohttp.ClientError:
                pass
        assert await running.stop() == 0
        assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


async def versions(fleet: LocalFleet) -> dict[str, str | None]:
    return {i.id: i.config_version for i in await fleet.list_instances()}


async def restart_watching(
    client, queue: str, fleet: LocalFleet, on_progress: Callable[[RollingRestartProgress], None] | None = None,
    **fields: Any,
) -> tuple[str, RollingRestartResult, list[tuple[RollingRestartProgress, FleetHealth]]]:
    """Run a rolling restart to its end, sampling its progress and the fleet's health every 0.1 s."""
    inp = RollingRestartInput(fleet=fleet.url, driver="local", **{**FAST, **fields})
    handle = await api.start_rolling_restart(client, inp, task_queue=queue)
    samples: list[tuple[RollingRestartProgress, FleetHealth]] = []

    async def sample(progress: RollingRestartProgress) -> None:
        samples.append((progress, await fleet.health()))
        if on_progress is not None:
            on_progress(progress)

    result = await api.wait_for_rolling_restart(handle, sample, poll_s=0.1)
    return handle.id, result, samples


def assert_one_out_at_most(samples: list[tuple[RollingRestartProgress, FleetHealth]], migration_id: str) -> None:
    """While the run touched the fleet: health said ``migrating`` (this run), and at most one instance was out."""
    during = [(p, h) for p, h in samples if p.phase not in ("pending", "validating", "done")]
    assert len(during) >= 6, f"too few samples to prove anything: {len(during)}"
    for progress, health in during:
        out = [i.id for i in health.instances if i.state != "serving"]
        assert len(out) <= 1, f"{out} out of service at once during {progress.phase} {progress.instance}"
        if health.migration is not None:
            assert health.status == "migrating" and health.migration.id == migration_id


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


async def test_a_worker_killed_mid_restart_is_replaced_and_the_restart_completes(temporal_env, fleet, fleet_dir,
                                                                                  store_url):
    address = temporal_env.client.service_client.config.target_host
    queue = f"kill-{uuid.uuid4().hex[:6]}"
    v10 = fleet_config("fleet_adapters.CounterAdapterV2", "v10", store_url)

    def start_worker(log: Any) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "client.cli", "worker", "--address", address, "--task-queue", queue],
                                stdout=log, stderr=log, start_new_session=True)

    async def restarts() -> dict[str, int]:
        return {i["id"]: i["restarts"] for i in (await fleet._request("GET", f"{fleet.admin}/instances"))["instances"]}

    restarts_before = await restarts()
    done = asyncio.Event()
    load = asyncio.create_task(run_load(fleet.url, rate=20, duration=180, sessions=4, tool="ping", stop=done))
    workers: list[subprocess.Popen] = []
    with (fleet_dir / "workers.log").open("ab") as log:
        workers.append(start_worker(log))
        try:
            inp = RollingRestartInput(fleet=fleet.url, driver="local", config=v10, **{**FAST, "settle_s": 1.5})
            handle = await api.start_rolling_restart(temporal_env.client, inp, task_queue=queue)
            deadline = asyncio.get_running_loop().time() + 60
            while True:  # kill it while its restart_instance activity waits for w2's new process
                if {i.id: i.state for i in await fleet.list_instances()}["w2"] == "restarting":
                    break
                assert asyncio.get_running_loop().time() < deadline, "w2 was never seen restarting"
                await asyncio.sleep(0.05)
            os.killpg(workers[0].pid, signal.SIGKILL)
            workers[0].wait()
            workers.append(start_worker(log))
            result = await asyncio.wait_for(api.wait_for_rolling_restart(handle), 120)
        finally:
            done.set()
            report = await load
            for proc in workers:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    assert result.status == "completed", result.error
    assert result.restarted == 3 and {i.outcome for i in result.instances} == {"restarted"}
    assert report.requests >= 60 and report.errors == 0, report.error_kinds
    health = await fleet.health()
    assert health.status == "ok" and health.migration is None
    assert {(i.state, i.config_version) for i in health.instances} == {("serving", "v10")}
    history = await handle.fetch_history()
    attempts = [e.activity_task_started_event_attributes.attempt for e in history.events
                if e.HasField("activity_task_started_event_attributes")]
    assert max(attempts) >= 2, "no activity was retried: the kill came too late to prove anything"
    # the retried restart found w2 on the new config already and did not restart it a second time
    assert {k: v - restarts_before[k] for k, v in (await restarts()).items()} == {"w1": 1, "w2": 1, "w3": 1}


async def test_a_cancelled_restart_puts_every_instance_back(temporal_client, task_queue, fleet, store_url):
    before = await versions(fleet)
    v11 = fleet_config("fleet_adapters.CounterAdapter", "v11", store_url)
    done = asyncio.Event()
    load = asyncio.create_task(run_load(fleet.url, rate=20, duration=120, sessions=4, tool="ping", stop=done))
    try:
        inp = RollingRestartInput(fleet=fleet.url, driver="http", config=v11, **{**FAST, "settle_s": 1.5})
        handle = await api.start_rolling_restart(temporal_client, inp, task_queue=task_queue)
        deadline = asyncio.get_running_loop().time() + 60
        while {i.id: i.state for i in await fleet.list_instances()}["w2"] != "restarting":
            assert asyncio.get_running_loop().time() < deadline, "w2 was never seen restarting"
            await asyncio.sleep(0.05)
        await handle.cancel()
        result = await asyncio.wait_for(api.wait_for_rolling_restart(handle), 120)
    finally:
        done.set()
        report = await load
    assert result.status == "rolled_back" and result.failed_instance == "w2", result
    assert result.error == "the rolling restart was cancelled while restarting w2" and result.error_type == "Cancelled"
    assert result.rolled_back[-1] == "w1", result
    assert report.errors == 0, report.error_kinds
    health = await fleet.health()
    assert health.status == "ok" and health.migration is None and await versions(fleet) == before


HOOKS = """
list = '''curl -s --fail-with-body {url}/admin/instances'''
drain = '''curl -s --fail-with-body -X POST {url}/admin/instances/$SNAKEPIT_INSTANCE/drain'''
wait_idle = '''curl -s --fail-with-body -X POST -d '{{"timeout": '$SNAKEPIT_TIMEOUT'}}' {url}/admin/instances/$SNAKEPIT_INSTANCE/wait-idle'''
restart = '''python3 -c 'import json, os; print(json.dumps({{"config": json.load(open(os.environ["SNAKEPIT_CONFIG_FILE"])), "settle": float(os.environ["SNAKEPIT_SETTLE"])}}))' | curl -s --fail-with-body --data-binary @- {url}/admin/instances/$SNAKEPIT_INSTANCE/restart'''
undrain = '''curl -s --fail-with-body -X POST {url}/admin/instances/$SNAKEPIT_INSTANCE/undrain'''
config = '''curl -s --fail-with-body {url}/admin/instances/$SNAKEPIT_INSTANCE/config | python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["config"]))' '''
set_migration = '''python3 -c 'import json, os; print(json.dumps({{"id": os.environ["SNAKEPIT_MIGRATION_ID"], "phase": os.environ["SNAKEPIT_MIGRATION_PHASE"]}}))' | curl -s --fail-with-body -X PUT --data-binary @- {url}/admin/migration'''
clear_migration = '''curl -s --fail-with-body -X DELETE {url}/admin/migration'''
timeout = 60
"""


async def test_the_command_driver_runs_it_through_operator_hooks(temporal_client, task_queue, fleet, fleet_dir,
                                                                  store_url):
    hooks = fleet_dir / "hooks.toml"
    hooks.write_text(HOOKS.format(url=fleet.url))
    v12 = fleet_config("fleet_adapters.CounterAdapterV2", "v12", store_url)
    inp = RollingRestartInput(fleet=str(hooks), driver="command", config=v12, **FAST)
    handle = await api.start_rolling_restart(temporal_client, inp, task_queue=task_queue)
    marks: set[str] = set()

    async def sample(progress: RollingRestartProgress) -> None:
        mark = (await fleet.health()).migration
        if mark is not None:
            marks.add(mark.phase)

    result = await api.wait_for_rolling_restart(handle, sample, poll_s=0.1)
    assert result.status == "completed" and result.restarted == 3, result.error
    assert result.fleet == f"command:{hooks}"
    assert "rolling_restart: restarting w2" in marks, marks  # the set_migration hook reported the phases
    health = await fleet.health()
    assert health.status == "ok" and health.migration is None
    assert {(i.state, i.config_version) for i in health.instances} == {("serving", "v12")}


async def test_a_saved_completed_history_replays() -> None:
    text = HISTORY.read_text()
    history = WorkflowHistory.from_json("rolling-restart-completed", text)
    kinds = [e.event_type for e in history.events]
    assert sum(1 for e in history.events if e.HasField("activity_task_scheduled_event_attributes")) >= 15, len(kinds)
    await Replayer(workflows=[RollingRestartWorkflow], **client_options()).replay_workflow(history)


@pytest.fixture
def cli(temporal_env, tmp_path):
    """Run ``snakepit-migrate`` against the test dev server; returns (code, stdout, stderr), never a traceback."""
    env = {**os.environ, "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
           "SNAKEPIT_MIGRATE_HOME": str(tmp_path / "home")}  # fmt: skip

    async def run(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "client.cli", *args, env=env,
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 180)
        assert b"Traceback" not in err, err.decode()
        return proc.returncode or 0, out.decode(), err.decode()

    return run


async def test_cli_dry_run_then_bad_inputs_exit_2_and_change_nothing(cli, fleet, fleet_dir, store_url):
    before = await versions(fleet)
    v5 = fleet_dir / "v5.json"
    v5.write_text(json.dumps(fleet_config("fleet_adapters.CounterAdapterV2", "v5", store_url)))
    code, out, err = await cli("fleet", "restart", "--fleet", fleet.url, "--driver", "local", "--config", str(v5),
                               "--dry-run", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["status"] == "dry_run" and plan["config_version"] == "v5" and plan["restarted"] == 0
    assert [(i["id"], i["outcome"]) for i in plan["instances"]] == [(f"w{n}", "would_restart") for n in (1, 2, 3)]
    code, out, err = await cli("status", plan["migration_id"])
    assert code == 0 and f"Rolling restart {plan['migration_id']}: DRY_RUN" in out and "w3 " in out, (out, err)
    code, out, err = await cli("rollback", plan["migration_id"])
    assert (code, out) == (2, "") and "is a rolling restart" in err

    not_dotted = fleet_dir / "not-dotted.json"
    not_dotted.write_text(json.dumps(fleet_config("fleet_adapters:CounterAdapter", "bad", store_url)))
    code, out, err = await cli("fleet", "restart", "--fleet", fleet.url, "--config", str(not_dotted), "--json")
    assert (code, out) == (2, "") and "is not a dotted Python path" in err
    code, out, err = await cli("fleet", "restart", "--fleet", fleet.url, "--config", str(v5), "--instance", "w1",
                               "--instance", "w1")
    assert (code, out) == (2, "") and "without repeats" in err and "internal error" not in err
    code, out, err = await cli("fleet", "restart", "--fleet", fleet.url, "--config", str(v5), "--driver", "ssh")
    assert (code, out) == (2, "") and "--driver must be local, http or command" in err

    code, out, err = await cli("fleet", "restart", "--fleet", "http://127.0.0.1:9", "--config", str(v5), "--json")
    assert code == 2 and "did not answer" in json.loads(out)["error"], out

    missing = fleet_dir / "missing-adapter.json"
    missing.write_text(json.dumps(fleet_config("no_such_pkg.Adapter", "v6", store_url)))
    code, out, err = await cli("fleet", "restart", "--fleet", fleet.url, "--config", str(missing),
                               "--health-timeout", "10", "--settle", "0.2")
    assert code == 2, (out, err)
    assert "instance w1: " in out and "no module named 'no_such_pkg'" in out.lower(), out
    assert "no instance was left on the new config" in out
    health = await fleet.health()
    assert health.status == "ok" and await versions(fleet) == before
