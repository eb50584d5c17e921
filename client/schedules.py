"""Plans run on Temporal Schedules: create (refusing overlapping windows on a shared resource), list, delete, trigger.

A schedule starts the ``MigrationPlan`` workflow with the plan bound to its
environment at creation; its memo keeps what overlap detection needs (the
locks of the plan's resources, its window), so no other store is involved.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from temporalio.client import (
    Client, Schedule, ScheduleActionStartWorkflow, ScheduleCalendarSpec, ScheduleOverlapPolicy, SchedulePolicy,
    ScheduleRange, ScheduleSpec, ScheduleState,
)  # fmt: skip

from client.connect import TASK_QUEUE
from deployment.errors import BadInput, NotFound
from deployment.plans.model import ResolvedPlan, lock_id

MEMO_KEY = "snakepit_plan"
DEFAULT_WINDOW_S = 3600.0  # the window assumed for overlap checks when a schedule states none


class ScheduleOverlap(BadInput):
    """Two schedules whose windows overlap on a shared resource."""

    exit_code = 3


def parse_duration(text: str) -> float:
    """Seconds of ``90s``, ``30m``, ``2h``, ``1h30m``; raises BadInput otherwise."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text.strip())
    if not text.strip() or parts is None or not any(parts.groups()):
        raise BadInput(f"window {text!r} is not a duration", hint="for example: 90s, 30m, 2h, 1h30m")
    h, m, s = (int(g or 0) for g in parts.groups())
    return float(h * 3600 + m * 60 + s)


def parse_at(text: str) -> datetime:
    """An ISO-8601 time (UTC if it names no zone), in the future; raises BadInput otherwise."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"--at {text!r} is not an ISO-8601 time", hint="for example: 2026-12-01T02:00:00+00:00") from None
    at = at if at.tzinfo else at.replace(tzinfo=timezone.utc)
    if at <= datetime.now(timezone.utc):
        raise BadInput(f"--at {text} is in the past")
    return at


def _spec(at: datetime | None, cron: str | None) -> tuple[ScheduleSpec, ScheduleState]:
    if at is not None:
        a = at.astimezone(timezone.utc)
        cal = ScheduleCalendarSpec(second=[ScheduleRange(a.second)], minute=[ScheduleRange(a.minute)], hour=[ScheduleRange(a.hour)],
                                   day_of_month=[ScheduleRange(a.day)], month=[ScheduleRange(a.month)], year=[ScheduleRange(a.year)])
        return ScheduleSpec(calendars=[cal]), ScheduleState(paused=True, limited_actions=True, remaining_actions=1)
    return ScheduleSpec(cron_expressions=[cron or ""]), ScheduleState(paused=True)


def _windows(times: list[datetime], window_s: float) -> list[tuple[datetime, datetime]]:
    return [(t, t + timedelta(seconds=window_s)) for t in times]


async def create_plan_schedule(client: Client, schedule_id: str, inp: ResolvedPlan, *, at: datetime | None = None,
                               cron: str | None = None, task_queue: str = TASK_QUEUE) -> dict[str, Any]:
    """Create the schedule paused, refuse it (deleted again) if a window of it overlaps another's on a shared resource,
    else unpause it. Returns its id and next run times."""
    if (at is None) == (cron is None):
        raise BadInput("give exactly one of --at and --cron")
    spec, state = _spec(at, cron)
    inp = inp.model_copy(update={"schedule_id": schedule_id})  # the run records which schedule fired it
    locks = sorted({lock_id(r) for r in inp.resources()})
    window = inp.window_s or DEFAULT_WINDOW_S
    memo = {MEMO_KEY: {"plan": inp.plan, "environment": inp.environment, "digest": inp.digest, "locks": locks, "window_s": window}}
    action = ScheduleActionStartWorkflow("MigrationPlan", inp.model_dump(), id=schedule_id, task_queue=task_queue)
    schedule = Schedule(action=action, spec=spec, state=state, policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP))
    try:
        handle = await client.create_schedule(schedule_id, schedule, memo=memo)
    except Exception as exc:  # ScheduleAlreadyRunningError, or a cron expression the server rejects
        raise BadInput(f"schedule {schedule_id} not created: {exc}", hint="check --cron, or pick another --id") from None
    mine = (await handle.describe()).info.next_action_times
    if not mine:
        await handle.delete()
        raise BadInput(f"schedule {schedule_id} would never run (no future time matches)", hint="check --at or --cron")
    others = await list_plan_schedules(client)
    for _ in range(50):  # the list is eventually consistent: wait until it shows this one (and so those before it)
        if any(o["id"] == schedule_id for o in others):
            break
        await asyncio.sleep(0.1)
        others = await list_plan_schedules(client)
    clashes = []
    for other in others:
        if other["id"] == schedule_id or not set(other["locks"]) & set(locks):
            continue
        for a0, a1 in _windows(mine, window):
            for b0, b1 in _windows(other["next_times"], other["window_s"]):
                if a0 < b1 and b0 < a1:
                    clashes.append(f"{other['id']} (plan {other['plan']}, {b0.isoformat()} for {other['window_s']:g} s)")
                    break
            else:
                continue
            break
    if clashes:
        await handle.delete()
        raise ScheduleOverlap(f"schedule {schedule_id} not created: its window overlaps, on a shared resource, {'; '.join(clashes)}",
                              hint="pick another time or a shorter --window, or delete the other schedule")
    await handle.unpause(note="created by snakepit-migrate schedule create")
    return {"id": schedule_id, "plan": inp.plan, "environment": inp.environment, "next_times": [t.isoformat() for t in mine],
            "window_s": window}


async def list_plan_schedules(client: Client) -> list[dict[str, Any]]:
    """Every plan schedule: id, plan, environment, locks, window, next run times."""
    found = []
    async for listed in await client.list_schedules():
        handle = client.get_schedule_handle(listed.id)
        desc = await handle.describe()
        memo = (await desc.memo()).get(MEMO_KEY)
        if not memo:
            continue
        found.append({"id": listed.id, **memo, "paused": desc.schedule.state.paused,
                      "next_times": list(desc.info.next_action_times),
                      "recent_runs": [a.action.workflow_id for a in desc.info.recent_actions
                                      if hasattr(a.action, "workflow_id")]})
    return found


async def plan_schedule(client: Client, schedule_id: str) -> dict[str, Any]:
    """What a plan schedule runs (its memo: plan, environment, digest, locks, window); NotFound when there is none."""
    try:
        desc = await client.get_schedule_handle(schedule_id).describe()
    except Exception:
        raise NotFound(f"no schedule {schedule_id!r}", hint="list them with: snakepit-migrate schedule list") from None
    memo = (await desc.memo()).get(MEMO_KEY)
    if not memo:
        raise NotFound(f"schedule {schedule_id!r} does not run a plan", hint="list plan schedules with: snakepit-migrate schedule list")
    return {"id": schedule_id, **memo}


async def delete_plan_schedule(client: Client, schedule_id: str) -> None:
    """Delete a schedule (runs it started are left to finish)."""
    try:
        await client.get_schedule_handle(schedule_id).delete()
    except Exception:
        raise NotFound(f"no schedule {schedule_id!r}", hint="list them with: snakepit-migrate schedule list") from None


async def trigger_plan_schedule(client: Client, schedule_id: str) -> None:
    """Start the schedule's plan now, as its next time would."""
    try:
        await client.get_schedule_handle(schedule_id).trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)
    except Exception:
        raise NotFound(f"no schedule {schedule_id!r}", hint="list them with: snakepit-migrate schedule list") from None
