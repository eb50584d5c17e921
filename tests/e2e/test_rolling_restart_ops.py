"""RollingRestart in operation: a worker killed mid-restart, cancellation, the command driver, the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from typing import Any

import pytest

from client import api
from client.connect import TASK_QUEUE
from deployment.pool.load import run_load
from tests.e2e.rolling_helpers import (  # noqa: F401 (fixtures)
    FAST,
    fleet,
    fleet_config,
    fleet_dir,
    restart_watching,
    store_url,
    versions,
)
from worker import build_worker
from workflows.fleet_models import RollingRestartInput, RollingRestartProgress


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


async def test_a_rollback_that_cannot_restore_names_what_it_left_and_every_instance_serves(
    temporal_client, task_queue, fleet, fleet_dir, store_url
):
    gone = fleet_dir / "dependency-gone"
    fragile = fleet_config("rolling_adapters.RefuseIfFlaggedAdapter", "fragile", store_url, ROLLING_REFUSE_FILE=str(gone))
    bad = fleet_config("rolling_adapters.FailOnInstanceAdapter", "v13-bad", store_url, ROLLING_FAIL_INSTANCE="w2")
    _, onto_fragile, _ = await restart_watching(temporal_client, task_queue, fleet, config=fragile)
    assert onto_fragile.status == "completed", onto_fragile.error

    def dependency_goes_away(progress: RollingRestartProgress) -> None:
        if (progress.phase, progress.instance) == ("restarting", "w2"):
            gone.touch()  # from now on the old config cannot start: restoring w1 must fail

    try:
        _, result, _ = await restart_watching(temporal_client, task_queue, fleet, dependency_goes_away, config=bad,
                                              settle_s=1.0)
    finally:
        gone.unlink(missing_ok=True)
    assert result.status == "rollback_failed" and result.failed_instance == "w2", result
    assert "and the rollback failed: instance w1: " in result.error and "the dependency is gone" in result.error
    assert result.error.endswith("(not restored: w1)"), result.error
    health = await fleet.health()  # w1 stays on the new config, which it serves; nothing is left drained
    assert {i.id: (i.state, i.config_version) for i in health.instances} == {
        "w1": ("serving", "v13-bad"), "w2": ("serving", "fragile"), "w3": ("serving", "fragile")}
    assert health.status == "ok" and health.migration is None


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
    assert (code, out) == (2, "") and "is dry_run: only a completed restart is undone" in err, (out, err)

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


async def test_cli_no_wait_then_status_watch_follows_it_to_its_result(cli, temporal_client, fleet, fleet_dir, store_url):
    v14 = fleet_dir / "v14.json"
    v14.write_text(json.dumps(fleet_config("fleet_adapters.CounterAdapter", "v14", store_url)))
    async with build_worker(temporal_client, TASK_QUEUE):  # an operator's worker on the default queue
        code, out, err = await cli("fleet", "restart", "--fleet", fleet.url, "--config", str(v14), "--settle", "0.2",
                                   "--no-wait", "--json")
        assert code == 0, err
        started = json.loads(out)
        assert started["status"] == "running" and "background" not in err
        code, out, err = await cli("status", started["migration_id"], "--watch", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["migration_id"] == started["migration_id"] and result["status"] == "completed"
    assert [(i["id"], i["to_version"], i["outcome"]) for i in result["instances"]] == [
        (f"w{n}", "v14", "restarted") for n in (1, 2, 3)]
    assert set((await versions(fleet)).values()) == {"v14"}

