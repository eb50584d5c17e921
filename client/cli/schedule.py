"""``snakepit-migrate schedule create|list|delete|trigger``: plans on Temporal Schedules, in maintenance windows."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import typer

from client import schedules
from client.cli import app
from client.cli.common import emit_json, out, run
from client.cli.plan import Envs, Json, validated_or_exit
from client.cli.plan_events import Actor, record_event
from client.embedded import ensure_client
from client.search import indexing_available
from deployment.audit import default_actor

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
    actor: Actor = None,
    json_out: Json = False,
) -> int:
    """Validate the plan now, then schedule it; refused (exit 3) when its window overlaps another schedule's on a shared resource.

    The runs it fires are audited in the creator's name (``--actor``) and record the schedule (``schedule_fired``)."""
    if on_exceeded not in ("pause", "rollback"):
        raise typer.BadParameter("--on-window-exceeded is pause or rollback")
    who = default_actor(actor)
    found = validated_or_exit(plan, env, environments, json_out, who)
    if isinstance(found, int):
        return found
    when = schedules.parse_at(at) if at else None
    policy: Literal["pause", "rollback"] = "rollback" if on_exceeded == "rollback" else "pause"
    inp = found.resolved().model_copy(update={
        "window_s": schedules.parse_duration(window) if window else None, "on_window_exceeded": policy,
        "actor": who[0], "actor_host": who[1]})  # fmt: skip
    created = run(_create(schedule_id or f"{inp.plan}-{inp.environment}", inp, when, cron, address, who))
    if json_out:
        emit_json(created)
    else:
        out.print(f"scheduled {created['id']}: plan {created['plan']} in {created['environment']}, next {created['next_times'][0]}")
    return 0


async def _create(sid: str, inp, when, cron, address, who):  # type: ignore[no-untyped-def]
    client = await ensure_client(address)
    inp.search_attributes = await indexing_available(client)
    created = await schedules.create_plan_schedule(client, sid, inp, at=when, cron=cron)
    await record_event("schedule_created", f"plan:{inp.plan}", who, {
        "schedule_id": sid, "environment": inp.environment, "digest": inp.digest, "at": when.isoformat() if when else None,
        "cron": cron, "window_s": inp.window_s, "on_window_exceeded": inp.on_window_exceeded,
        "next_times": created["next_times"][:3]})  # fmt: skip
    return created


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
def delete(schedule_id: Annotated[str, typer.Argument(help="the schedule id")], address: Address = None, actor: Actor = None) -> int:
    """Delete a schedule (runs it started finish); audited as ``schedule_deleted``."""
    run(_act(schedules.delete_plan_schedule, "schedule_deleted", schedule_id, address, actor))
    out.print(f"deleted {schedule_id}")
    return 0


@schedule_app.command("trigger")
def trigger(schedule_id: Annotated[str, typer.Argument(help="the schedule id")], address: Address = None, actor: Actor = None) -> int:
    """Start the schedule's plan now (follow it with snakepit-migrate list / status); audited as ``schedule_triggered``."""
    run(_act(schedules.trigger_plan_schedule, "schedule_triggered", schedule_id, address, actor))
    out.print(f"triggered {schedule_id}")
    return 0


async def _act(action, event: str, schedule_id: str, address: str | None, actor: str | None) -> None:  # type: ignore[no-untyped-def]
    client = await ensure_client(address)
    target = await schedules.plan_schedule(client, schedule_id)  # NotFound (exit 2) before anything is done
    await action(client, schedule_id)
    await record_event(event, f"plan:{target['plan']}", default_actor(actor),
                       {"schedule_id": schedule_id, "environment": target["environment"], "digest": target["digest"]})
