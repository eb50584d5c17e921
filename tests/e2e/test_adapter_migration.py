"""AdapterMigration end to end: real reference fleets, real sandboxes, a real Temporal dev server.

(1) a fleet under load moves from a custom adapter with migratable and
stateful tools to a mixed generic configuration: no failed request, the
recorded calls answered the same by the live fleet; (2) an injected generic
mapping that answers differently is refused and nothing changes; (3) a new
config that cannot start on one instance rolls everything back: the pool
config byte for byte, every instance on its old config.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_asyncio
from temporalio.client import WorkflowFailureError, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from activities.adapters import GENERIC_ADAPTER, sha256
from client import api
from client.connect import client_options
from deployment.adapters.analyzer import analyze_path
from deployment.adapters.proposal import propose_config
from deployment.fleet.local import LocalFleet
from deployment.pool.load import LoadReport, run_load
from workflows import all_workflows
from workflows.adapter_models import AdapterMigrationInput, AdapterMigrationProgress, AdapterMigrationResult

pytestmark = pytest.mark.asyncio(loop_scope="session")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HISTORIES = Path(__file__).resolve().parents[1] / "histories"
MATH_TOOLS = FIXTURES / "adapters" / "base_adapter_tools.py"
HOST_BOUND = FIXTURES / "adapter_migration" / "host_bound_tools.py"
FAST = {"examples": 5, "sandbox_timeout_s": 60.0, "drain_timeout_s": 10.0, "health_timeout_s": 20.0, "settle_s": 0.3}
CALLS = [
    ("square_root", {"x": 2.0}), ("mean", {"values": [1, 2, 4]}), ("round_to", {"x": 2.34567}),
    ("title", {"text": "hello  big world"}), ("gcd", {"a": 12, "b": 18}), ("log_base", {"x": 1000.0}),
    ("fsum", {"values": [0.1] * 10}), ("double_hypot", {"a": 3, "b": 4}), ("cached_factorial", {"n": 5}),
    ("countdown", {"n": 2}),
]
MATH_FLEET = ("base_adapter_tools.MathToolsAdapter", FIXTURES / "adapters", {})
HOST_BOUND_FLEET = ("host_bound_tools.HostBoundAdapter", FIXTURES / "adapter_migration", {"HOST_BOUND_BROKEN_ON": "w2"})
MIGRATED = ["fsum", "gcd", "log_base", "mean", "round_to", "square_root", "title"]


def pool_config(adapter: str, fixtures: Path, store_url: str, **env: str) -> dict[str, Any]:
    """A deployment config (Snakepit keys) running a fixture adapter on two instances."""
    return {
        "config_version": "v1",
        "pools": [{"name": "default", "pool_size": 2, "adapter_args": ["--adapter", adapter],
                   "adapter_env": {"PYTHONPATH": str(fixtures), **env}}],
        "session_store": store_url,
        "session_default_ttl": 600,
    }


def call(url: str, tool: str, arguments: dict[str, Any]) -> Any:
    body = json.dumps({"session_id": "test", "arguments": arguments}).encode()
    request = urllib.request.Request(f"{url}/tools/{tool}", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())["result"]


class Load:
    """Small steady load (8 requests/s of square_root(9) over 4 sessions) until :meth:`end`."""

    def __init__(self, url: str) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(run_load(url, rate=8, duration=300, sessions=4, tool="square_root",
                                                 arguments={"x": 9.0}, keep_results=True, stop=self.stop))

    async def end(self) -> LoadReport:
        assert not self.task.done(), "the load ended before the migration did: the test proves nothing"
        self.stop.set()
        return await self.task


class Deployment:
    """A pool config file (written with a comment-free but hand-made layout) and the fleet started on it."""

    def __init__(self, folder: Path, config: dict[str, Any], fleet: LocalFleet) -> None:
        self.folder, self.fleet = folder, fleet
        self.config_path = folder / "pool.json"
        self.original = self.config_path.read_bytes()
        self.traffic = folder / "calls.jsonl"

    async def state(self) -> set[tuple[str, str | None, str | None]]:
        return {(i.id, i.config_version, i.adapter) for i in (await self.fleet.health()).instances}

    def files(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir() if p.is_file())


@pytest_asyncio.fixture
async def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Deployment]:
    """A 2-instance reference fleet on ``pool.json`` running the adapter the test names, recording calls.

    Every process of it is gone afterwards.
    """
    adapter, fixtures, env = request.param
    folder = tmp_path / "deploy"
    folder.mkdir()
    config = pool_config(adapter, fixtures, f"sqlite:///{tmp_path / 'sessions.db'}", **env)
    (folder / "pool.json").write_text(json.dumps(config, indent=4) + "\n")
    fleet = await LocalFleet.start(folder / "pool.json", instances=2, port=0, ready_timeout=60,
                                   extra_args=["--record", str(folder / "calls.jsonl"), "--run-dir", str(tmp_path / "run")])
    pids = await fleet.process_ids()
    try:
        yield Deployment(folder, config, fleet)
    finally:
        pids = sorted(set(pids) | set(await fleet.process_ids()))
        await fleet.stop()
        left = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        assert not left, f"fleet processes left running: {left}"


async def migrate(client, queue: str, dep: Deployment, path: Path, record: str | None = None,
                  **fields: Any) -> AdapterMigrationResult:
    inp = AdapterMigrationInput(path=str(path), fleet=f"local:{dep.fleet.url}", config_path=str(dep.config_path),
                                **{**FAST, **fields})
    handle = await api.start_adapter_migration(client, inp, None, queue)
    result = await api.wait_for_adapter_migration(handle)
    await save_history(handle, record)
    return result


async def save_history(handle, name: str | None) -> None:
    """With SNAKEPIT_RECORD_HISTORIES set, keep the run's history for the replay test."""
    if name and os.environ.get("SNAKEPIT_RECORD_HISTORIES"):
        (HISTORIES / f"{name}.json").write_text((await handle.fetch_history()).to_json())


@pytest.mark.parametrize("deployment", [MATH_FLEET], indirect=True)
async def test_a_fleet_under_load_moves_to_the_mixed_generic_config_with_identical_answers_and_back(
    temporal_client, task_queue, cli, deployment: Deployment
) -> None:
    dep = deployment
    for tool, arguments in CALLS:
        await asyncio.to_thread(call, dep.fleet.url, tool, arguments)
    before = {tool: await asyncio.to_thread(call, dep.fleet.url, tool, args) for tool, args in CALLS}

    plan = await migrate(temporal_client, task_queue, dep, MATH_TOOLS, traffic=str(dep.traffic), dry_run=True)
    assert plan.status == "dry_run" and plan.error is None, plan.error
    assert plan.verification is not None and plan.verification.generic_tools == MIGRATED
    assert {"cached_factorial", "countdown", "session_hits", "read_config"} <= set(plan.verification.custom_tools)
    assert dep.files() == ["calls.jsonl", "pool.json"] and dep.config_path.read_bytes() == dep.original
    assert await dep.state() == {(w, "v1", "base_adapter_tools.MathToolsAdapter") for w in ("w1", "w2")}

    load = Load(dep.fleet.url)
    handle = await api.start_adapter_migration(
        temporal_client,
        AdapterMigrationInput(path=str(MATH_TOOLS), fleet=f"local:{dep.fleet.url}", config_path=str(dep.config_path),
                              traffic=str(dep.traffic), **FAST),
        None, task_queue,
    )
    phases: list[str] = []

    def seen(p: AdapterMigrationProgress) -> None:
        if not phases or phases[-1] != p.phase:
            phases.append(p.phase)

    result = await api.wait_for_adapter_migration(handle, seen, poll_s=0.2)
    await save_history(handle, "adapter_completed")
    assert result.status == "completed" and result.error is None, result.error
    assert {"verifying", "rolling_out"} <= set(phases), phases  # the brief replay phase is proven by result.replay below

    # Verified: the migratable tools moved, the stateful ones stayed on the custom adapter.
    assert result.verification is not None
    assert {t.tool: t.decision for t in result.verification.tools} == {t: "generic" for t in MIGRATED}
    assert all(t.matches == t.cases > 0 for t in result.verification.tools)
    # The files: the backup is the original byte for byte, the generic config is the verified one.
    assert result.backup is not None and Path(result.backup.config.backup_path).read_bytes() == dep.original
    assert result.backup.config.digest == sha256(dep.original) and not result.backup.generic.existed
    written = json.loads(dep.config_path.read_text())
    pool = written["pools"][0]
    generic_path = dep.folder / "generic-adapter.json"
    assert written["config_version"] == "v1-generic" and pool["adapter_args"] == ["--adapter", GENERIC_ADAPTER]
    assert pool["adapter_env"] == {"PYTHONPATH": str(FIXTURES / "adapters"), "SNAKEPIT_GENERIC_CONFIG": str(generic_path)}
    generic = json.loads(generic_path.read_text())
    assert sorted(generic["tool_aliases"]) == MIGRATED and generic["custom_adapter"] == "base_adapter_tools.MathToolsAdapter"
    assert sha256(generic_path.read_bytes()) == result.verification.config_digest
    # The fleet: every instance on the generic adapter, no migration reported any more.
    assert result.rollout is not None and (result.rollout.status, result.rollout.restarted) == ("completed", 2)
    assert await dep.state() == {(w, "v1-generic", GENERIC_ADAPTER) for w in ("w1", "w2")}
    assert (await dep.fleet.health()).migration is None
    # Identical answers: the live replay of the recorded calls, and the same calls made again here.
    assert result.replay is not None and result.replay.ok and result.replay.matched == result.replay.replayed
    # Custom tools are replayed when they answer from their arguments alone (composite logic, streaming);
    # a tool with a module-level cache is not (its answers may depend on what the worker saw before).
    assert [t.tool for t in result.replay.tools] == sorted([*MIGRATED, "countdown", "double_hypot"])
    assert result.replay.skipped_tools == ["cached_factorial"]
    after = {tool: await asyncio.to_thread(call, dep.fleet.url, tool, args) for tool, args in CALLS}
    assert after == before

    info = await api.describe(temporal_client, result.migration_id)
    assert info["type"] == "AdapterMigration" and info["status"] == "completed"
    assert info["result"]["written"]["config_version"] == "v1-generic"

    # Undone on request, still under load: the pool config byte for byte, the fleet on the custom adapter.
    code, out, err = await cli("rollback", result.migration_id, "--json")
    assert code == 0, (out, err)
    undone = json.loads(out)
    assert (undone["migration_id"], undone["status"], undone["error"]) == (f"{result.migration_id}-rollback", "rolled_back", None)
    assert (undone["rollback"]["restarted"], undone["rollback"]["config_version"]) == (2, "v1")
    await save_history(temporal_client.get_workflow_handle(undone["migration_id"]), "adapter_rollback_of")
    report = await load.end()
    assert report.errors == 0 and report.ok == report.requests > 40, report.error_kinds
    assert set(report.last_results.values()) == {3.0}
    assert dep.config_path.read_bytes() == dep.original and not generic_path.exists()
    assert await dep.state() == {(w, "v1", "base_adapter_tools.MathToolsAdapter") for w in ("w1", "w2")}
    assert (await dep.fleet.health()).migration is None
    assert {tool: await asyncio.to_thread(call, dep.fleet.url, tool, args) for tool, args in CALLS} == before
    code, out, err = await cli("rollback", result.migration_id)
    assert (code, out) == (2, "") and "rolled back already" in err, (out, err)


@pytest.fixture
def cli(temporal_env, tmp_path):
    """Run ``snakepit-migrate`` against the test dev server; returns (code, stdout, stderr), never a traceback."""
    env = {**os.environ, "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
           "SNAKEPIT_MIGRATE_HOME": str(tmp_path / "home")}  # fmt: skip

    async def run(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "client.cli", *args, env=env,
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 240)
        assert b"Traceback" not in err, err.decode()
        return proc.returncode or 0, out.decode(), err.decode()

    return run


@pytest.mark.parametrize("deployment", [MATH_FLEET], indirect=True)
async def test_a_generic_mapping_that_answers_differently_is_refused_and_nothing_changes(
    cli, deployment: Deployment
) -> None:
    dep = deployment
    config = propose_config(analyze_path(MATH_TOOLS))
    wrong = {"tool_aliases": {"square_root": {**config["tool_aliases"]["square_root"], "target": "math.exp"}}}
    for lib in config["libraries"]:
        if lib["name"] == "math":
            lib["function_filters"].append("exp")
    injected = dep.folder.parent / "injected.json"
    injected.write_text(json.dumps({**config, **wrong}))
    common = ["--fleet", f"local:{dep.fleet.url}", "--config", str(dep.config_path), "--examples", "5",
              "--settle", "0.3"]

    code, out, err = await cli("adapter", "migrate", str(MATH_TOOLS), *common, "--generic", str(injected), "--json")
    assert code == 1, (out, err)
    result = json.loads(out)
    assert (result["status"], result["error_type"], result["failed_phase"]) == ("failed", "NothingToMigrate", "verifying")
    square_root = next(t for t in result["verification"]["tools"] if t["tool"] == "square_root")
    assert (square_root["status"], square_root["decision"]) == ("mismatch", "custom")
    assert square_root["matches"] < square_root["cases"] and '"generic"' in square_root["first_mismatch"]
    assert "square_root: mismatch" in result["error"] and result["written"] is None and result["backup"] is None
    assert dep.files() == ["pool.json"] and dep.config_path.read_bytes() == dep.original
    assert await dep.state() == {(w, "v1", "base_adapter_tools.MathToolsAdapter") for w in ("w1", "w2")}
    assert (await dep.fleet.health()).migration is None

    # Accepted explicitly, the mismatching mapping would migrate (shown by a dry run).
    code, out, err = await cli("adapter", "migrate", str(MATH_TOOLS), *common, "--generic", str(injected),
                               "--accept-mismatch", "square_root", "--dry-run", "--json")
    assert code == 0, (out, err)
    accepted = json.loads(out)
    assert accepted["status"] == "dry_run" and accepted["verification"]["generic_tools"] == ["square_root"]
    assert {(t["tool"], t["status"], t["decision"]) for t in accepted["verification"]["tools"]} == {
        ("square_root", "accepted", "generic"), *((t, "not_in_config", "custom") for t in MIGRATED if t != "square_root")}

    # The proposal itself, as a dry run: verified and reported, nothing written; status shows the same report.
    mid = f"adapter-dry-{os.urandom(3).hex()}"
    code, out, err = await cli("adapter", "migrate", str(MATH_TOOLS), *common, "--dry-run", "--id", mid)
    assert code == 0, (out, err)
    assert f"Adapter migration {mid}: DRY_RUN (dry run: nothing changed)" in out and "square_root: equivalent -> generic" in out
    assert "generic: fsum, gcd, log_base, mean, round_to, square_root, title; custom: " in out, out
    code, status, err = await cli("status", mid)
    assert code == 0 and status == out, (status, err)
    code, out, err = await cli("rollback", mid)
    assert (code, out) == (2, "") and f"adapter migration {mid} is dry_run: there is nothing to roll back" in err, err
    assert dep.files() == ["pool.json"] and dep.config_path.read_bytes() == dep.original

    # Bad input: exit 2, one clear line, nothing written.
    stale = dep.folder.parent / "stale.json"
    stale.write_text(dep.original.decode().replace('"v1"', '"v0"'))
    code, out, err = await cli("adapter", "migrate", str(MATH_TOOLS), *common[:2], "--config", str(stale), "--json")
    assert code == 2 and "the fleet does not run" in json.loads(out)["error"], (out, err)
    code, out, err = await cli("adapter", "migrate", str(HOST_BOUND), *common, "--json")
    assert code == 2 and "the fleet runs base_adapter_tools.MathToolsAdapter, but " in json.loads(out)["error"], (out, err)
    code, out, err = await cli("adapter", "migrate", str(FIXTURES / "fleet" / "missing.py"), *common)
    assert (code, out) == (2, "") and "missing.py" in err, err
    code, out, err = await cli("adapter", "migrate", str(MATH_TOOLS), *common, "--accept-mismatch", "no_such_tool")
    assert code == 2 and "no alias of that name" in out, (out, err)
    assert dep.files() == ["pool.json"] and dep.config_path.read_bytes() == dep.original


@pytest.mark.parametrize("deployment", [HOST_BOUND_FLEET], indirect=True)
async def test_a_rollout_that_fails_on_one_instance_rolls_everything_back(
    temporal_client, task_queue, deployment: Deployment
) -> None:
    dep = deployment
    assert await asyncio.to_thread(call, dep.fleet.url, "seen", {"key": "k"}) == 1
    result = await migrate(temporal_client, task_queue, dep, HOST_BOUND, record="adapter_rolled_back")
    assert (result.status, result.failed_phase, result.error_type) == ("rolled_back", "rolling_out", "InstanceStartFailed")
    assert "w2" in (result.error or "") and "cannot be loaded on w2" in (result.error or ""), result.error
    assert result.verification is not None and result.verification.generic_tools == ["gcd", "square_root"]
    # The rollout got w1 onto the generic adapter, then put it back itself; the fleet's own rollback found nothing left to do.
    assert result.rollout is not None and result.rollout.rolled_back == ["w1"]
    assert [(i.id, i.outcome) for i in result.rollout.instances] == [("w1", "rolled_back"), ("w2", "failed")]
    assert result.rollback is not None and (result.rollback.status, result.rollback.restarted) == ("completed", 0)
    # Files: the pool config byte for byte, no generic configuration left; the backup kept beside it.
    assert result.rolled_back and result.restored is not None and result.restored.restored
    assert dep.config_path.read_bytes() == dep.original
    assert dep.files() == ["calls.jsonl", f"pool.{result.migration_id}.bak.json", "pool.json"]
    # Fleet: every instance on the old config and adapter, serving, no migration reported.
    assert await dep.state() == {(w, "v1", "host_bound_tools.HostBoundAdapter") for w in ("w1", "w2")}
    health = await dep.fleet.health()
    assert health.status == "ok" and health.migration is None
    assert await asyncio.to_thread(call, dep.fleet.url, "square_root", {"x": 16}) == 4.0


@pytest.mark.parametrize("deployment", [MATH_FLEET], indirect=True)
async def test_a_live_replay_that_answers_differently_rolls_the_whole_fleet_back_under_load(
    temporal_client, task_queue, deployment: Deployment
) -> None:
    dep = deployment
    for tool, arguments in CALLS:
        await asyncio.to_thread(call, dep.fleet.url, tool, arguments)
    # A recorded answer the fleet will not give again, of a tool that stays custom (as if its code had changed
    # since it was recorded): the check before the rollout does not run custom tools, the live replay does.
    lines = [json.loads(line) for line in dep.traffic.read_text().splitlines()]
    for line in lines:
        if line["tool"] == "double_hypot":
            line["result"] = 11.0
    traffic = dep.folder.parent / "tampered.jsonl"
    traffic.write_text("".join(json.dumps(line) + "\n" for line in lines))

    load = Load(dep.fleet.url)
    result = await migrate(temporal_client, task_queue, dep, MATH_TOOLS, traffic=str(traffic))
    report = await load.end()
    assert report.errors == 0 and report.ok == report.requests > 40, report.error_kinds
    assert set(report.last_results.values()) == {3.0}
    assert (result.status, result.failed_phase, result.error_type) == ("rolled_back", "replaying", "ReplayMismatch")
    assert "double_hypot (1 of 1" in (result.error or "") and '"replayed": {"ok": true, "value": 10.0}' in result.error
    assert result.replay is not None and (result.replay.ok, result.replay.replayed, result.replay.matched) == (False, 9, 8)
    assert result.rollout is not None and result.rollout.restarted == 2
    # The fleet had moved completely; the migration's own rollback restarted every instance onto the backup.
    assert result.rollback is not None and (result.rollback.status, result.rollback.restarted) == ("completed", 2)
    assert result.rollback.config_version == "v1"
    assert dep.config_path.read_bytes() == dep.original and not (dep.folder / "generic-adapter.json").exists()
    assert await dep.state() == {(w, "v1", "base_adapter_tools.MathToolsAdapter") for w in ("w1", "w2")}
    assert (await dep.fleet.health()).migration is None

@pytest.mark.parametrize("deployment", [MATH_FLEET], indirect=True)
@pytest.mark.parametrize("how", ["cancel", "rollback"])
async def test_a_migration_cancelled_or_rolled_back_mid_rollout_puts_files_and_fleet_back(
    temporal_client, task_queue, deployment: Deployment, how: str
) -> None:
    dep = deployment
    inp = AdapterMigrationInput(path=str(MATH_TOOLS), fleet=f"local:{dep.fleet.url}", config_path=str(dep.config_path),
                                **{**FAST, "settle_s": 2.0})
    handle = await api.start_adapter_migration(temporal_client, inp, None, task_queue)
    for _ in range(600):  # until the first instance runs the generic adapter
        if any(v == "v1-generic" for _, v, _ in await dep.state()):
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("no instance reached the generic adapter")
    if how == "cancel":
        await handle.cancel()
    else:  # an operator's rollback: the rollout finishes, then the migration stops and undoes it
        assert (await api.request_rollback(temporal_client, handle.id)).id == handle.id
    result = await api.wait_for_adapter_migration(handle)
    assert result.status == "rolled_back", result
    if how == "cancel":
        assert result.failed_phase == "rolling_out" and "cancelled" in (result.error or ""), result.error
        assert result.rollback is not None and result.rollback.status == "completed"
    else:
        assert (result.failed_phase, result.error_type) == ("rolling_out", "RollbackRequested"), result
        assert result.rollout is not None and result.rollout.restarted == 2
        assert result.rollback is not None and (result.rollback.status, result.rollback.restarted) == ("completed", 2)
    assert dep.config_path.read_bytes() == dep.original and not (dep.folder / "generic-adapter.json").exists()
    assert await dep.state() == {(w, "v1", "base_adapter_tools.MathToolsAdapter") for w in ("w1", "w2")}
    assert (await dep.fleet.health()).migration is None

async def test_bad_input_dicts_are_refused_before_any_step(temporal_client, task_queue, tmp_path: Path) -> None:
    for params, expected in [
        ({"path": str(MATH_TOOLS), "fleet": "http://127.0.0.1:9"}, "config_path"),
        ({"path": str(MATH_TOOLS), "fleet": "http://127.0.0.1:9", "config_path": "x.json", "examples": -1}, "examples"),
    ]:
        handle = await temporal_client.start_workflow("AdapterMigration", params, id=f"adapter-bad-{os.urandom(3).hex()}",
                                                      task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "InvalidInput" and expected in cause.message


@pytest.mark.parametrize("name, children", [("adapter_completed", ["rollout"]), ("adapter_rolled_back", ["rollout", "rollback"]),
                                            ("adapter_rollback_of", ["restart"]),
                                            # with the audit trail, as a plan's child, and its undo read from its result
                                            ("adapter_audited", ["rollout"]), ("adapter_plan_undo", ["restart"])])
async def test_saved_history_replays(name: str, children: list[str]) -> None:
    text = (HISTORIES / f"{name}.json").read_text()
    started = [e.start_child_workflow_execution_initiated_event_attributes.workflow_id
               for e in WorkflowHistory.from_json(name, text).events
               if e.HasField("start_child_workflow_execution_initiated_event_attributes")]
    mid = started[0].rsplit("-", 1)[0]  # children are named after the run: replay under its id
    assert started == [f"{mid}-{child}" for child in children]
    history = WorkflowHistory.from_json(mid, text)
    result = await Replayer(workflows=all_workflows(), **client_options()).replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
