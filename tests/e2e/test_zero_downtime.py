"""A zero-downtime session move under live load: a 3-instance reference fleet keeps serving
while its sessions go from SQLite to PostgreSQL, and no write is lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from client import api
from deployment.audit.figures import impact_of
from deployment.fleet.local import LocalFleet
from deployment.pool.load import run_load
from deployment.sessions.record import is_expired
from deployment.sessions.snapshot import generate_sessions
from deployment.sessions.stores import open_store
from tests.e2e.helpers import wait_for_phase
from workflows.session_models import SessionMigrationInput

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fleet"


def fleet_config(store_url: str) -> dict:
    return {
        "config_version": "v1",
        "pools": [{"name": "default", "pool_size": 3, "adapter_args": ["--adapter", "fleet_adapters.CounterAdapter"],
                   "adapter_env": {"PYTHONPATH": str(FIXTURES)}}],
        "session_store": store_url,
        "session_default_ttl": 600,
    }  # fmt: skip


async def seed(url: str, count: int) -> None:
    """Sessions the fleet already holds before the migration."""
    async with open_store(url) as store:
        await store.write_many(list(generate_sessions(count, now=__import__("time").time(), expired_fraction=0.1)))


async def watch(fleet: LocalFleet, handle, seen: dict, done: asyncio.Event) -> None:
    """Record every fleet status, routing mode and migration phase seen while the move runs."""
    while not done.is_set():
        health = await fleet.health()
        seen["status"].add(health.status)
        seen["modes"].update(i.sessions["mode"] for i in await fleet.list_instances() if i.sessions)
        if health.migration:
            seen["phases"].add(health.migration.phase)
        await asyncio.sleep(0.1)


async def run_move(temporal_client, queue: str, fleet: LocalFleet, source: str, target: str, **extra):
    handle = await api.start_session_migration(
        temporal_client,
        SessionMigrationInput(**{"source": source, "target": target, "zero_downtime": True, "soak_seconds": 1.0,
                                 "batch_size": 50, "fleet": fleet.url, **extra}),
        task_queue=queue,
    )  # fmt: skip
    return handle


async def assert_every_write_kept(report, target: str) -> None:
    """What each client was last told is what the store now holds."""
    async with open_store(target) as store:
        held = await store.read_many(list(report.last_results))
    for sid, last in report.last_results.items():
        assert held[sid]["metadata"]["counter"] == last, sid


async def test_sessions_move_to_postgresql_under_load_with_no_failed_request(temporal_client, task_queue, tmp_path, pg_url):
    source = f"sqlite://{tmp_path}/sessions.db"
    await seed(source, 400)
    (tmp_path / "v1.json").write_text(json.dumps(fleet_config(source)))
    async with LocalFleet.running(tmp_path / "v1.json", instances=3, port=0, ready_timeout=60) as fleet:
        seen = {"status": set(), "modes": set(), "phases": set()}
        done, stop = asyncio.Event(), asyncio.Event()
        load = asyncio.create_task(run_load(fleet.url, rate=30, duration=120, sessions=25, tool="incr",
                                            keep_results=True, stop=stop))  # fmt: skip
        await asyncio.sleep(1.0)  # traffic before the move
        handle = await run_move(temporal_client, task_queue, fleet, source, pg_url)
        watcher = asyncio.create_task(watch(fleet, handle, seen, done))
        result = await api.wait_for_result(handle)
        await asyncio.sleep(1.0)  # traffic after the move, served from the target alone
        stop.set()
        report = await load
        done.set()
        await watcher
        after = await fleet.health()
        after_instances = await fleet.list_instances()
    assert result.status == "completed", result.error
    assert report.errors == 0 and report.ok == report.requests and report.requests > 30, report.error_kinds
    assert {"dual_write", "dual_write_read_target", "target"} <= seen["modes"]
    assert "migrating" in seen["status"] and "soaking" in seen["phases"]  # the 1 s soak; shorter phases may fall between samples
    assert after.status == "ok" and after.migration is None
    assert {i.sessions["mode"] for i in after_instances} == {"target"}
    # the impact on the live fleet was sampled while the backfill ran: its traffic, latency and errors
    assert result.fleet_samples >= 1 and result.fleet_rps_mean > 0 and result.fleet_p99_ms_max > 0, result
    assert result.fleet_errors == 0 and result.fleet_requests >= 0
    impact = impact_of(result.model_dump())
    assert impact["fleet_p99_ms_max"] == result.fleet_p99_ms_max and impact["fleet_rps_mean"] == result.fleet_rps_mean
    await assert_every_write_kept(report, pg_url)
    async with open_store(source) as src, open_store(pg_url) as tgt:  # every seeded live session moved
        moved = [r async for b in src.iter_records() for r in b if not is_expired(r, __import__("time").time() + 60)]
        held = await tgt.read_many([r["id"] for r in moved])
        assert len(held) == len(moved) and all(held[r["id"]].get("rev", 0) >= r.get("rev", 0) for r in moved)


async def test_worker_killed_mid_backfill_still_loses_no_write(temporal_env, tmp_path, pg_url):
    source = f"sqlite://{tmp_path}/sessions.db"
    await seed(source, 6000)
    (tmp_path / "v1.json").write_text(json.dumps(fleet_config(source)))
    address = temporal_env.client.service_client.config.target_host
    queue = f"zd-{uuid.uuid4().hex[:6]}"
    log = (tmp_path / "workers.log").open("ab")
    cmd = [sys.executable, "-m", "client.cli", "worker", "--address", address, "--task-queue", queue]
    workers = [subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)]
    try:
        async with LocalFleet.running(tmp_path / "v1.json", instances=3, port=0, ready_timeout=60) as fleet:
            stop = asyncio.Event()
            load = asyncio.create_task(run_load(fleet.url, rate=20, duration=180, sessions=15, tool="incr",
                                                keep_results=True, stop=stop))  # fmt: skip
            handle = await run_move(temporal_env.client, queue, fleet, source, pg_url, slice_seconds=60)
            handle = handle
            await wait_for_phase(handle, "copying")
            await asyncio.sleep(1.0)
            os.killpg(workers[0].pid, signal.SIGKILL)
            workers[0].wait()
            workers.append(subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True))
            result = await asyncio.wait_for(api.wait_for_result(handle), timeout=240)
            stop.set()
            report = await load
    finally:
        for proc in workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert result.status == "completed", result.error
    assert result.copy_resumes >= 1
    assert report.errors == 0, report.error_kinds
    await assert_every_write_kept(report, pg_url)


async def assert_source_holds_every_write(report, source: str) -> None:
    """After a rollback the source serves again: it must hold each client's last write."""
    async with open_store(source) as store:
        held = await store.read_many(list(report.last_results))
    for sid, last in report.last_results.items():
        assert held[sid]["metadata"]["counter"] == last, sid


async def test_rollback_during_soak_returns_to_source_and_leaves_the_target_as_found(
    temporal_client, task_queue, tmp_path, pg_url
):
    source = f"sqlite://{tmp_path}/sessions.db"
    await seed(source, 300)
    (tmp_path / "v1.json").write_text(json.dumps(fleet_config(source)))
    async with LocalFleet.running(tmp_path / "v1.json", instances=3, port=0, ready_timeout=60) as fleet:
        stop = asyncio.Event()
        load = asyncio.create_task(run_load(fleet.url, rate=30, duration=120, sessions=20, tool="incr",
                                            keep_results=True, stop=stop))  # fmt: skip
        handle = await run_move(temporal_client, task_queue, fleet, source, pg_url, soak_seconds=120)
        await wait_for_phase(handle, "soaking")
        await asyncio.sleep(1.0)  # reads come from the target for a while
        await handle.signal("rollback")
        result = await api.wait_for_result(handle)
        await asyncio.sleep(1.0)
        stop.set()
        report = await load
        modes = {i.sessions["mode"] for i in await fleet.list_instances()}
    assert result.status == "rolled_back" and result.error_type == "RollbackRequested", result.error
    assert report.errors == 0, report.error_kinds
    assert modes == {"source"}
    await assert_source_holds_every_write(report, source)
    async with open_store(pg_url) as target:
        assert await target.count() == 0 and await target.journal_ids() == []


async def test_rollback_after_finalize_copies_back_what_the_target_took(temporal_client, task_queue, tmp_path, pg_url):
    source = f"sqlite://{tmp_path}/sessions.db"
    await seed(source, 300)
    (tmp_path / "v1.json").write_text(json.dumps(fleet_config(source)))
    async with LocalFleet.running(tmp_path / "v1.json", instances=3, port=0, ready_timeout=60) as fleet:
        stop = asyncio.Event()
        load = asyncio.create_task(run_load(fleet.url, rate=30, duration=120, sessions=20, tool="incr",
                                            keep_results=True, stop=stop))  # fmt: skip
        handle = await run_move(temporal_client, task_queue, fleet, source, pg_url)
        done = await api.wait_for_result(handle)
        await asyncio.sleep(1.5)  # writes that only the target holds
        undo = await api.request_rollback(temporal_client, handle.id)
        undone = await api.wait_for_result(undo)
        await asyncio.sleep(1.0)
        stop.set()
        report = await load
        modes = {i.sessions["mode"] for i in await fleet.list_instances()}
    assert done.status == "completed" and undone.status == "rolled_back", undone.error
    assert report.errors == 0, report.error_kinds
    assert modes == {"source"}
    await assert_source_holds_every_write(report, source)
