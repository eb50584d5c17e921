"""Fault-injection trials for the migration types other than sessions (see :mod:`tests.chaos.harness`).

* ``config_permission``: a config migration whose directory refuses every
  write (``chattr +i``: EPERM even for root) from the start of the run for a
  chosen time (``at_fraction`` × 20 s), then accepts them again. Shorter than
  the write's retry budget, the run completes; longer, it rolls back.
  Invariant: each file holds its old bytes or the planned new version, the
  unit validates as the new version when completed, no temporary file is left.
* ``fleet_instance_kill``: a rolling restart of a 3-instance reference fleet
  (``deployment/pool`` behind the ``local`` driver) during which the worker
  process of one instance is SIGKILLed once ``at_fraction`` of the instances
  were restarted. Invariant: the fleet fully serving afterwards, every
  instance healthy on one version (the new one if completed, else the old).
* ``extension_raise``: the rekey example extension with a hook that raises
  in its apply step after ``at_fraction`` of the sessions, once: a plain
  exception (transient: the step is retried and resumes) or the extension's
  own error (permanent: the run rolls back). Invariant: every live session
  present exactly once, renamed and otherwise byte for byte the same when
  completed, exactly as before when rolled back.

Every trial also checks the audit chain of the log the worker wrote.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg

from client import api
from client.cli.config import start_config_workflow
from client.connect import connect
from deployment.config.plan import check_unit, load_base, load_unit
from deployment.config.source import read_base, read_unit
from deployment.fleet.local import LocalFleet
from deployment.sessions.record import canonical_bytes
from deployment.sessions.snapshot import generate_sessions
from deployment.sessions.stores import open_store
from tests.chaos.harness import PG, Trial, audit_problems, judge, trial_run
from tests.e2e.rolling_helpers import fleet_config
from workflows.extension_models import CustomMigrationInput
from workflows.fleet_models import RollingRestartInput, RollingRestartProgress

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MAX_HOLD_S = 20.0


# -- config: a directory that refuses writes -------------------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def config_problems(folder: Path, original: dict[str, bytes], status: str, result) -> list[str]:  # noqa: ANN001
    """Old bytes or a valid new version, file by file; nothing half-written."""
    problems = [f"temporary file left: {p.name}" for p in folder.iterdir() if p.name.endswith(".tmp")]
    now = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and not p.name.endswith(".tmp")}
    planned = {Path(e.path).name: e.after_digest for e in (result.backup.files if result.backup else [])}
    for name, data in now.items():
        new = hashlib.sha256(data).hexdigest() == planned.get(name)
        if data != original.get(name) and not new:
            problems.append(f"{name} is neither its old bytes nor the planned new version")
        if status == "rolled_back" and data != original.get(name):
            problems.append(f"{name} not restored after the rollback")
        if status == "completed" and name in planned and not new:
            problems.append(f"{name} not the planned new version after completion")
    if status == "completed":
        report = check_unit(load_unit(read_unit(str(folder))), result.to_version, load_base(read_base(str(folder))))
        problems += [f"invalid after completion: {i.text()}" for i in report.issues if i.severity == "error"]
    return problems


def _chattr(flag: str, folder: Path) -> None:
    subprocess.run(["chattr", flag, str(folder)], check=True)


async def run_config_trial(trial: Trial, timeout: float = 240) -> Trial:
    async with trial_run(trial) as svc:
        folder = svc.folder / "config"
        shutil.copytree(FIXTURES / "config" / "v0_5", folder)
        original = {p.name: p.read_bytes() for p in folder.iterdir()}
        hold = round(trial.at_fraction * MAX_HOLD_S, 1)
        client = await connect(svc.address)
        _chattr("+i", folder)
        try:
            params = {"path": str(folder), "to_version": "0.10", "accept_findings": True}
            run = asyncio.ensure_future(start_config_workflow(client, params, f"config-{uuid.uuid4().hex[:8]}", svc.queue))
            await asyncio.sleep(hold)
        finally:
            _chattr("-i", folder)
        trial.injected = f"config directory immutable (EPERM on every write) for the first {hold} s of the run"
        result = await asyncio.wait_for(run, timeout)
        judge(trial, result.status, result.error, config_problems(folder, original, "completed", result),
              config_problems(folder, original, "rolled_back", result))  # fmt: skip
        trial.problems += await audit_problems(svc.audit_url, result.migration_id)
    return trial


# -- fleet: an instance killed during a rolling restart ---------------------------------


async def instance_pids(fleet: LocalFleet) -> dict[str, int]:
    async with aiohttp.ClientSession() as http, http.get(f"{fleet.admin}/instances") as resp:
        return {i["id"]: i["pid"] for i in (await resp.json())["instances"] if i.get("pid")}


async def settled(fleet: LocalFleet, timeout: float = 60) -> tuple[bool, set[str | None]]:
    """Wait until every instance serves (a killed one is respawned by the fleet's health loop); the versions seen."""
    deadline = time.monotonic() + timeout
    while True:
        health = await fleet.health()
        versions = {i.config_version for i in health.instances}
        if health.status == "ok" and len(versions) == 1 or time.monotonic() > deadline:
            return health.status == "ok", versions
        await asyncio.sleep(0.5)


async def run_fleet_trial(trial: Trial, timeout: float = 240) -> Trial:
    async with trial_run(trial) as svc:
        store = f"sqlite:///{svc.folder / 'sessions.db'}"
        for v in ("v1", "v2"):
            (svc.folder / f"{v}.json").write_text(json.dumps(fleet_config("fleet_adapters.CounterAdapter", v, store)))
        async with LocalFleet.running(svc.folder / "v1.json", instances=3, port=0, ready_timeout=60,
                                      extra_args=["--run-dir", str(svc.folder / "run")]) as fleet:  # fmt: skip
            client = await connect(svc.address)
            inp = RollingRestartInput(fleet=fleet.url, driver="local", config_path=str(svc.folder / "v2.json"),
                                      drain_timeout_s=10.0, health_timeout_s=20.0, settle_s=0.5)  # fmt: skip
            handle = await api.start_rolling_restart(client, inp, task_queue=svc.queue)
            goal = min(int(3 * trial.at_fraction), 2)  # instances restarted before the kill
            while True:
                p = await handle.query("progress", result_type=RollingRestartProgress)
                if p.phase not in ("pending", "validating") and p.done >= goal or p.phase == "done":
                    break
                await asyncio.sleep(0.05)
            pids = await instance_pids(fleet)
            victim = sorted(pids)[int(trial.at_fraction * 100) % len(pids)]
            os.kill(pids[victim], signal.SIGKILL)
            trial.injected = f"instance {victim} (pid {pids[victim]}) SIGKILLed after {p.done} of 3 restarted ({p.phase})"
            result = await asyncio.wait_for(api.wait_for_rolling_restart(handle), timeout)
            serving, versions = await settled(fleet)
            problems = [] if serving else [f"fleet not fully serving: {(await fleet.health()).model_dump()}"]
            judge(trial, result.status, result.error,
                  problems + ([] if versions == {"v2"} else [f"versions after completion: {versions}"]),
                  problems + ([] if versions == {"v1"} else [f"versions after rollback: {versions}"]))  # fmt: skip
            trial.problems += await audit_problems(svc.audit_url, handle.id)
    return trial


# -- a custom extension raising in its apply step --------------------------------------


async def _records(url: str) -> dict[str, dict]:
    async with open_store(url) as store:
        return {r["id"]: r async for batch in store.iter_records() for r in batch}


def extension_problems(before: dict[str, dict], after: dict[str, dict], status: str) -> list[str]:
    """Every session exactly once: renamed and otherwise the same (completed), or byte for byte as before."""
    if set(after) != set(before):
        return [f"sessions not present exactly once: {len(set(before) - set(after))} missing, {len(set(after) - set(before))} extra"]
    if status == "rolled_back":
        wrong = [i for i in before if canonical_bytes(after[i]) != canonical_bytes(before[i])]
    else:
        now = time.time()
        def expected(r: dict) -> dict:
            if r["last_accessed"] + r["ttl"] < now:
                return r
            meta = dict(r["metadata"])
            meta["account"] = meta.pop("user")
            return {**r, "metadata": meta}
        wrong = [i for i in before if canonical_bytes(after[i]) != canonical_bytes(expected(before[i]))]
    return [f"{len(wrong)} session(s) not as expected after {status}: {wrong[:5]}"] if wrong else []


async def run_extension_trial(trial: Trial, timeout: float = 240) -> Trial:
    table = f"chaos_{uuid.uuid4().hex[:8]}"
    async with trial_run(trial, redis=trial.target == "redis") as svc:
        try:
            store = f"{PG}?table={table}" if trial.target == "postgresql" else f"{svc.redis_url}?prefix={table}:"
            async with open_store(store) as s:
                await s.write_many(list(generate_sessions(1500, now=time.time(), expired_fraction=0.0, seed=len(table))))
            before = await _records(store)
            mode = "permanent" if int(trial.at_fraction * 100) % 2 else "transient"
            params = {"store": store, "from_key": "user", "to_key": "account", "batch_size": 50,
                      "fail_after_done": int(1500 * trial.at_fraction), "fail_mode": mode,
                      "marker": str(svc.folder / "raised")}  # fmt: skip
            client = await connect(svc.address)
            inp = CustomMigrationInput(extension="tests.chaos.faulty_extension:FaultyRekey", params=params, slice_seconds=1.0)
            handle = await api.start_custom_migration(client, inp, task_queue=svc.queue)
            result = await asyncio.wait_for(api.wait_for_custom_migration(handle), timeout)
            raised = (svc.folder / "raised").read_text().strip() if (svc.folder / "raised").exists() else "never raised"
            trial.injected = f"apply step raised ({mode}): {raised}"
            after = await _records(store)
            judge(trial, result.status, result.error, extension_problems(before, after, "completed"),
                  extension_problems(before, after, "rolled_back"))  # fmt: skip
            trial.problems += await audit_problems(svc.audit_url, handle.id)
        finally:
            async with asyncpg.create_pool(PG, min_size=1, max_size=1) as pool:
                await pool.execute(f"DROP TABLE IF EXISTS {table}, {table}_migrate_journal, {table}_migrate_control")
    return trial
