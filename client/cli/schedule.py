"""``snakepit-migrate schedule create|list|delete|trigger``: plans on Temporal Schedules, in maintenance windows."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import typer

from client import schedules
from client.cli import app
from client.cli.common import emit_json, out, run
from client.cli.plan import Envs, Json, validated_or_exit
from client.embedded import ensure_client

schedule_app = typer.Typer(help="Run plans on Temporal Schedules, in maintenance windows.", no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")

Address = Annotated[Optional[str], typer.Option("--address", help="Temporal address (default: TEMPORAL_ADDRESS or the embedded server)")]


@schedule_app.command("create")
def create(
    plan: Annotated[str, typer.Argument(help="the plan file (YAML)")],
    env: Annotated[str, typer.Option("--env", help="the environment to run in")],
    at: Annotated[Optional[str], typer.Option("--at", help="once, at this ISO-8601 time (UTC unless it names a zone)")] = None,
    cron: Annotated[Optional[str], typer.Option("--cron", help="repeatedly, e.g. '0 2 * * SUN'")] = None,
    window: Annotated[Optional[str], typer.Option("--window", help="the maintenance window, e.g. 2h: no step group starts after it")] = None,
    on_exceeded: Annotated[str, typer.Option("--on-window-exceeded", help="pause | rollback")] = "pause",
    schedule_id: Annotated[Optional[str], typer.Option("--id", help="the schedule id (default: plan-ENV)")] = None,
    environments: Envs = None,
    address: Address = None,
    json_out: Json = False,
) -> int:
    """Validate the plan now, then schedule it; refused (exit 3) when its window overlaps another schedule's on a shared resource."""
    if on_exceeded not in ("pause", "rollback"):
        raise typer.BadParameter("--on-window-exceeded is pause or rollback")
    found = validated_or_exit(plan, env, environments, json_out)
    if isinstance(found, int):
        return found
    when = schedules.parse_at(at) if at else None
    policy: Literal["pause", "rollback"] = "rollback" if on_exceeded == "rollback" else "pause"
    inp = found.resolved().model_copy(update={
        "window_s": schedules.parse_duration(window) if window else None, "on_window_exceeded": policy})
    created = run(_create(schedule_id or f"{inp.plan}-{inp.environment}", inp, when, cron, address))
    if json_out:
        emit_json(created)
    else:
        out.print(f"scheduled {created['id']}: plan {created['plan']} in {created['environment']}, next {created['next_times'][0]}")
    return 0


async def _create(sid: str, inp, when, cron, address):  # type: ignore[no-untyped-def]
    client = await ensure_client(address)
    return await schedules.create_plan_schedule(client, sid, inp, at=when, cron=cron)


@schedule_app.command("list")
def list_(address: Address = None, json_out: Json = False) -> int:
    """Every plan schedule with its next times and recent runs."""
    found = run(_list(address))
    if json_out:
        emit_json({"schedules": [{**s, "next_times": [t.isoformat() for t in s["next_times"]]} for s in found]})
        return 0
    for s in found:
        nxt = s["next_times"][0].isoformat() if s["next_times"] else "never"
        out.print(f"{s['id']}: plan {s['plan']} in {s['environment']}, next {nxt}, window {s['window_s']:g} s"
                  + (" (paused)" if s["paused"] else ""))
    return 0


async def _list(address: str | None):  # type: ignore[no-untyped-def]
    return await schedules.list_plan_schedules(await ensure_client(address))


@schedule_app.command("delete")
def delete(schedule_id: Annotated[str, typer.Argument(help="the schedule id")], address: Address = None) -> int:
    """Delete a schedule (runs it started finish)."""
    run(_act(schedules.delete_plan_schedule, schedule_id, address))
    out.print(f"deleted {schedule_id}")
    return 0


@schedule_app.command("trigger")
def trigger(schedule_id: Annotated[str, typer.Argument(help="the schedule id")], address: Address = None) -> int:
    """Start the schedule's plan now (follow it with snakepit-migrate list / status)."""
    run(_act(schedules.trigger_plan_schedule, schedule_id, address))
    out.print(f"triggered {schedule_id}")
    return 0


async def _act(action, schedule_id: str, address: str | None) -> None:  # type: ignore[no-untyped-def]
    await action(await ensure_client(address), schedule_id)
