"""Verbs about the engine and migrations of any type: server, worker, status, rollback, list."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from client import api
from client.cli import app
from client.cli.audit import record_request
from client.cli.common import emit_json, err, out, run
from client.cli.progress import ProgressView
from client.cli.sessions import render, report_result
from client.connect import TASK_QUEUE
from client.embedded import ensure_client, server_command, worker_while_waiting
from deployment.audit import default_actor
from workflows.fleet_models import RollingRestartResult
from workflows.config_migration import ConfigMigrationResult
from workflows.session_models import MigrationProgress, SessionMigrationResult

Address = Annotated[Optional[str], typer.Option("--address", help="Temporal address (default: TEMPORAL_ADDRESS or the embedded server)")]
Json = Annotated[bool, typer.Option("--json", help="print exactly one JSON object on stdout")]


@app.command("server")
def server() -> int:
    """Run the embedded Temporal dev server in the foreground (gRPC 7233, UI http://localhost:8233).

    Its state is kept in $SNAKEPIT_MIGRATE_HOME/temporal.db (default ~/.snakepit-migrate).
    """
    cmd = server_command()
    err.print(f"Temporal dev server: gRPC localhost:7233, UI http://localhost:8233, state {cmd[cmd.index('--db-filename') + 1]}")
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 0


@app.command("worker")
def worker(address: Address = None, task_queue: Annotated[str, typer.Option(help="task queue to poll")] = TASK_QUEUE) -> int:
    """Run a worker for every migration type (same as `python worker.py`)."""
    from worker import run_worker

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().handlers[:] = [handler]  # a worker's logs are for its operator: stderr
    try:
        asyncio.run(run_worker(address or os.environ.get("TEMPORAL_ADDRESS"), task_queue))
    except KeyboardInterrupt:
        pass
    return 0


@app.command("status")
def status(
    migration_id: Annotated[str, typer.Argument(help="the migration id")],
    watch: Annotated[bool, typer.Option("--watch", help="follow it live until it ends")] = False,
    address: Address = None,
    json_out: Json = False,
) -> int:
    """Where a migration stands: phase, progress, rate and ETA, or its result."""
    return run(_status(migration_id, watch, address, json_out))


async def _status(migration_id: str, watch: bool, address: str | None, json_out: bool) -> int:
    client = await ensure_client(address)
    info = await api.describe(client, migration_id)
    if info["type"] == "MigrationPlan":
        from client.cli import plan

        return await plan.show_status(client, info, watch, json_out)
    if info["type"] == "RollingRestart":
        return await _restart_status(client, info, watch, json_out)
    if info["type"] == "CustomMigration":
        from client.cli import extensions

        return await extensions.show_status(client, info, watch, json_out)
    if info["type"] == "AdapterMigration":
        from client.cli import adapter

        return await adapter.show_status(client, info, watch, json_out)
    if watch and info["status"] == "running":
        handle = client.get_workflow_handle(migration_id)
        async with worker_while_waiting(client, handle):
            with ProgressView(quiet=json_out and not err.is_terminal) as view:
                result = await api.wait_for_result(handle, view)
        return report_result(result, json_out)
    if watch and info["type"] == "SessionMigration" and info.get("result"):  # ended before the watch began
        return report_result(SessionMigrationResult.model_validate(info["result"]), json_out)
    if info["type"] == "ConfigMigration" and info.get("result") and not json_out:
        from client.cli import config

        config.report(ConfigMigrationResult.model_validate(info["result"]), json_out)
        return 0
    if json_out:
        emit_json(info)
    elif info["status"] == "running":
        p = MigrationProgress.model_validate(info["progress"])
        eta = f", ETA {p.eta_s:.0f} s" if p.eta_s is not None else ""
        out.print(f"{migration_id}: running, phase {p.phase}, {p.done}/{p.total} ({p.rate_per_s:,.0f}/s{eta}) {p.message}")
    elif info.get("result"):
        out.print(render(SessionMigrationResult.model_validate(info["result"])))
    else:
        out.print(f"{migration_id}: {info['status']}")
    return 0


async def _restart_status(client: Any, info: dict[str, Any], watch: bool, json_out: bool) -> int:
    """``status`` of a rolling restart: its progress, or its result as ``fleet restart`` prints it."""
    from client.cli import fleet

    if watch and info["status"] == "running":
        handle = client.get_workflow_handle(info["migration_id"])
        async with worker_while_waiting(client, handle):
            with ProgressView(quiet=json_out and not err.is_terminal, unit="instances") as view:
                return fleet.report_result(await api.wait_for_rolling_restart(handle, view), json_out)
    if json_out:
        emit_json(info)
    elif info["status"] == "running":
        p = info["progress"]
        out.print(f"{info['migration_id']}: running, phase {p['phase']} {p['instance'] or ''}, "
                  f"{p['done']}/{p['total']} instances")
    elif info.get("result"):
        out.print(fleet.render(RollingRestartResult.model_validate(info["result"])))
    else:
        out.print(f"{info['migration_id']}: {info['status']}")
    return 0


@app.command("rollback")
def rollback(
    migration_id: Annotated[str, typer.Argument(help="the migration id")],
    force: Annotated[bool, typer.Option("--force", help="config: restore even files edited since the migration")] = False,
    actor: Annotated[Optional[str], typer.Option("--actor", help="who asks, for the audit log (default: the OS user)")] = None,
    address: Address = None,
    json_out: Json = False,
) -> int:
    """Undo a migration: a running one stops and compensates; a completed one is undone (sessions from
    their journal, config files from their backup)."""
    return run(_rollback(migration_id, force, address, json_out, default_actor(actor)))


async def _rollback(migration_id: str, force: bool, address: str | None, json_out: bool, actor: tuple[str, str]) -> int:
    client = await ensure_client(address)
    info = await api.describe(client, migration_id)
    await record_request("rollback_requested", info, actor)
    if info["type"] == "ConfigMigration":
        from client.cli import config

        async with worker_while_waiting(client):
            return config.report(await config.rollback_config(client, migration_id, force, info["task_queue"]), json_out)
    if info["type"] == "CustomMigration":
        from client.cli import extensions

        return await extensions.rollback_run(client, migration_id, json_out)
    if info["type"] == "AdapterMigration":
        from client.cli import adapter

        return await adapter.rollback_run(client, migration_id, json_out)
    if info["type"] == "RollingRestart":  # each instance back onto the config it served before
        from client.cli import fleet

        return await fleet.rollback_restart(client, migration_id, info, actor, False, json_out)
    if info["type"] == "MigrationPlan":  # a running plan: no further group, completed steps undone newest first
        from client.cli import plan

        return await plan.signal_plan(client, info, "cancel", {"rollback": True}, actor, json_out)
    handle = await api.request_rollback(client, migration_id, actor)
    async with worker_while_waiting(client, handle):
        with ProgressView(quiet=json_out and not err.is_terminal) as view:
            result = await api.wait_for_result(handle, view)
    if handle.id == migration_id and result.status == "rolled_back":
        result.error = None  # a requested rollback that completed is a success of this command
    return report_result(result, json_out)


@app.command("list")
def list_(address: Address = None, limit: Annotated[int, typer.Option(min=1, help="how many")] = 50, json_out: Json = False) -> int:
    """The most recent migrations, newest first."""
    rows = run(_list(address, limit))
    if json_out:
        emit_json({"migrations": rows})
        return 0
    table = Table("id", "type", "status", "started", "closed")
    for r in rows:
        table.add_row(r["migration_id"], r["type"], r["workflow_status"], r["started"] or "", r["closed"] or "")
    out.print(table)
    return 0


async def _list(address: str | None, limit: int) -> list[dict[str, Any]]:
    client = await ensure_client(address)
    return await api.list_migrations(client, limit)
