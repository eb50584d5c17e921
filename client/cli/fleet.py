"""``snakepit-migrate fleet ...``: migrate a running fleet (rolling restarts)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from pydantic import ValidationError

from client import api
from client.cli import app
from client.cli.common import emit_json, err, out, run
from client.cli.config import report_refusal
from client.cli.locks import is_lock_refusal, locked_after_start, refuse_if_locked
from client.cli.progress import ProgressView
from client.embedded import ensure_client, spawn_background_worker, worker_is_polling, worker_while_waiting
from deployment.audit import default_actor
from deployment.errors import BadInput
from deployment.fleet import open_fleet
from deployment.plans.errors import ResourceLocked
from temporalio.client import WorkflowFailureError
from workflows.locks import run_resources
from deployment.pool.config import parse_pool_config, read_config_file
from workflows.fleet_models import RollingRestartInput, RollingRestartResult

fleet_app = typer.Typer(help="Migrate a running fleet: rolling restarts onto a new config.", no_args_is_help=True)
app.add_typer(fleet_app, name="fleet")

Address = Annotated[Optional[str], typer.Option("--address", help="Temporal address (default: TEMPORAL_ADDRESS or the embedded server)")]
Json = Annotated[bool, typer.Option("--json", help="print exactly one JSON object on stdout")]

# Failures found while validating that mean the input cannot work: exit 2, nothing was changed.
BAD_INPUT_TYPES = {
    "InvalidInput", "PoolConfigError", "BadInput", "FleetUnreachable", "UnknownInstance", "FleetNotReady", "FleetBusy",
    "InstanceError", "FleetChanged", "NothingToRollBack",
}  # fmt: skip


@fleet_app.command("restart")
def restart(
    fleet: Annotated[str, typer.Option("--fleet", help="the fleet front URL (or a hooks file with --driver command)")],
    config: Annotated[Path, typer.Option("--config", help="the new deployment config (.json, .yaml, .toml, .exs)")],
    driver: Annotated[Optional[str], typer.Option("--driver", help="local | http | command (default: from --fleet, else http)")] = None,
    instance: Annotated[Optional[list[str]], typer.Option("--instance", help="restart only this instance (repeatable, in order)")] = None,
    drain_timeout: Annotated[float, typer.Option("--drain-timeout", min=0.1, max=600, help="seconds in-flight requests may take")] = 30.0,
    health_timeout: Annotated[float, typer.Option("--health-timeout", min=0.1, max=600, help="seconds a restarted instance may take to be healthy")] = 60.0,
    settle: Annotated[float, typer.Option("--settle", min=0, max=600, help="seconds it must then stay healthy")] = 2.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check the fleet and the config, show the plan, change nothing")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="start it and return its id at once")] = False,
    migration_id: Annotated[Optional[str], typer.Option("--id", help="the migration id (default: generated)")] = None,
    actor: Annotated[Optional[str], typer.Option("--actor", help="who runs it, for the audit log (default: the OS user)")] = None,
    wait_for_lock: Annotated[bool, typer.Option("--wait-for-lock", help="wait while another run holds the fleet, instead of refusing (exit 3)")] = False,
    stall_alert: Annotated[float, typer.Option("--stall-alert", min=1, help="alert when one instance's restart has not finished after this many seconds")] = 600.0,
    address: Address = None,
    json_out: Json = False,
) -> int:
    """Restart every instance onto a new config, one at a time, without failing a request.

    Each instance is drained, waited idle, restarted, checked healthy and put
    back in service; if one fails, those already restarted go back to their
    previous config. The run locks the fleet: while another migration holds
    it, it is refused with exit 3 naming the holder (or waits, with
    --wait-for-lock). Exit 0 on success, 1 if it failed (rolled back or not),
    2 on bad input (nothing changed), 3 locked.
    """
    if driver is not None and driver not in ("local", "http", "command"):
        raise typer.BadParameter(f"--driver must be local, http or command, not {driver!r}")
    parse_pool_config(read_config_file(config))  # a config the fleet cannot load is refused here (exit 2)
    try:
        inp = RollingRestartInput(
            fleet=fleet, driver=driver, config_path=str(config.resolve()), instances=instance or None,  # type: ignore[arg-type]
            drain_timeout_s=drain_timeout, health_timeout_s=health_timeout, settle_s=settle, dry_run=dry_run,
            wait_for_lock=wait_for_lock, stall_alert_seconds=stall_alert,
        )  # fmt: skip
    except ValidationError as exc:
        raise BadInput("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
    inp.actor, inp.actor_host = default_actor(actor)
    open_fleet(inp.spec)  # an unknown fleet spec or an unreadable hooks file is refused here (exit 2)
    if inp.spec.startswith("command:"):  # the worker may run elsewhere: hand it an absolute path
        inp = inp.model_copy(update={"fleet": "command:" + str(Path(inp.spec[len("command:"):]).resolve()), "driver": None})
    try:
        return run(_restart(inp, migration_id, no_wait, address, json_out))
    except ResourceLocked as exc:
        return report_refusal(exc, json_out)


async def _restart(inp: RollingRestartInput, migration_id: str | None, no_wait: bool, address: str | None,
                   json_out: bool) -> int:
    client = await ensure_client(address)
    await refuse_if_locked(client, "rolling_restart", inp.lock_params())
    handle = await api.start_rolling_restart(client, inp, migration_id)
    if no_wait:
        if not await worker_is_polling(client):
            spawn_background_worker(address)
            err.print("No worker was polling; started one in the background.")
        if json_out:
            emit_json({"migration_id": handle.id, "status": "running"})
        else:
            out.print(f"Started {handle.id}. Follow it with: snakepit-migrate status {handle.id} --watch")
        return 0
    return await _follow(client, handle, inp, json_out)


async def _follow(client: Any, handle: Any, inp: RollingRestartInput, json_out: bool) -> int:
    """Wait for the run, showing its progress, and report its result; a run refused at its start by a lock is exit 3."""
    try:
        async with worker_while_waiting(client, handle):
            with ProgressView(quiet=json_out and not err.is_terminal, unit="instances") as view:
                result = await api.wait_for_rolling_restart(handle, view)
    except WorkflowFailureError as exc:  # a lock taken between the check and the start
        if is_lock_refusal(exc):
            raise await locked_after_start(client, exc, run_resources("rolling_restart", inp.lock_params())) from None
        raise
    return report_result(result, json_out)


@fleet_app.command("rollback")
def rollback(
    migration_id: Annotated[str, typer.Argument(help="the id of a completed rolling restart")],
    actor: Annotated[Optional[str], typer.Option("--actor", help="who runs it, for the audit log (default: the OS user)")] = None,
    wait_for_lock: Annotated[bool, typer.Option("--wait-for-lock", help="wait while another run holds the fleet, instead of refusing (exit 3)")] = False,
    address: Address = None,
    json_out: Json = False,
) -> int:
    """Put every instance a completed rolling restart moved back onto the config it ran before.

    Runs ``ID-rollback``: the same careful restart, one instance at a time,
    onto each instance's previous config as ID recorded it. Refused (exit 2,
    nothing moved) when an instance runs something else since. Exit 0 when
    the fleet is back, 1 if the rollback failed, 2 refused, 3 locked.
    """
    try:
        return run(_rollback(migration_id, default_actor(actor), wait_for_lock, address, json_out))
    except ResourceLocked as exc:
        return report_refusal(exc, json_out)


async def _rollback(migration_id: str, actor: tuple[str, str], wait_for_lock: bool, address: str | None, json_out: bool) -> int:
    client = await ensure_client(address)
    info = await api.describe(client, migration_id)
    if info["type"] != "RollingRestart":
        raise BadInput(f"{migration_id} is a {info['type']}, not a rolling restart", hint=f"use: snakepit-migrate rollback {migration_id}")
    return await rollback_restart(client, migration_id, info, actor, wait_for_lock, json_out)


async def rollback_restart(client: Any, migration_id: str, info: dict[str, Any], actor: tuple[str, str], wait_for_lock: bool,
                           json_out: bool) -> int:
    """Start ``ID-rollback`` of a completed rolling restart and follow it to its end (refused, nothing started, otherwise)."""
    outcome = (info.get("result") or {}).get("status") or info["status"]
    if info["status"] != "completed" or outcome != "completed":
        raise BadInput(f"rolling restart {migration_id} is {outcome}: only a completed restart is undone",
                       hint="a failed restart rolled itself back; a dry run changed nothing")
    done = await api.original_input(client, migration_id)
    keep = {k: done[k] for k in ("fleet", "driver", "drain_timeout_s", "health_timeout_s", "settle_s") if k in done}
    inp = RollingRestartInput(**keep, rollback_of=migration_id, actor=actor[0], actor_host=actor[1], wait_for_lock=wait_for_lock)
    await refuse_if_locked(client, "rolling_restart", inp.lock_params())
    handle = await api.start_rolling_restart(client, inp, f"{migration_id}-rollback", info["task_queue"])
    return await _follow(client, handle, inp, json_out)


def report_result(result: RollingRestartResult, json_out: bool) -> int:
    """Print a rolling restart's result (one JSON object with ``json_out``) and return its exit code."""
    if json_out:
        emit_json(result.model_dump())
    else:
        out.print(render(result))
    return exit_code(result)


def exit_code(result: RollingRestartResult) -> int:
    """0 success, 2 bad input (nothing changed), 1 any other failure."""
    if result.error is None:
        return 0
    if result.failed_phase in (None, "pending", "validating") and result.error_type in BAD_INPUT_TYPES:
        return 2
    if result.error_type == "InstanceStartFailed" and result.restarted == 0 and not result.rolled_back:
        return 2  # the new config started nowhere: the first instance refused it and kept its old config
    return 1


def render(r: RollingRestartResult) -> str:
    """A short human report of a rolling restart."""
    lines = [f"Rolling restart {r.migration_id}: {r.status.upper()}",
             f"  fleet {r.fleet} onto config {r.config_version or '?'}" + (" (dry run: nothing changed)" if r.dry_run else "")]
    for i in r.instances:
        took = f" ({i.duration_s:.1f} s)" if i.duration_s else ""
        lines.append(f"  {i.id:<8} {i.from_version} -> {i.to_version}  {i.outcome}{took}")
    if r.error:
        lines.append(f"  error: {r.error}")
        if r.status == "rollback_failed":
            lines.append("  the rollback did not finish: check the fleet (snakepit-migrate pool status)")
        else:
            lines.append(f"  rolled back to the previous config: {', '.join(r.rolled_back)}" if r.rolled_back
                         else "  no instance was left on the new config")
    lines.append(f"  took {r.duration_s:.1f} s")
    return "\n".join(lines)

