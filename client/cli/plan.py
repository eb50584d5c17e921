"""``snakepit-migrate plan validate|show|run``: several migrations as one plan, bound per environment."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from temporalio.client import Client, WorkflowFailureError

from client import api
from client.cli import app
from client.cli.common import emit_json, err, out, run
from client.embedded import ensure_client, worker_while_waiting
from client.paths import home
from deployment.errors import BadInput, MigrateError
from deployment.plans.check import Validation, validate_plan
from deployment.plans.compare import compare_runs, render_comparison
from client.cli.locks import is_lock_refusal, locked, locked_after_start
from client.cli.plan_events import Actor, record_event, validation_state
from client.search import indexing_available
from deployment.audit import default_actor
from deployment.plans.model import ResolvedPlan
from deployment.plans.report import markdown, show as show_plan
from workflows.plan_models import MigrationPlanResult, PlanProgress, StepProgress

plan_app = typer.Typer(help="Validate, show and run migration plans (several migrations, ordered, per environment).",
                       no_args_is_help=True)
app.add_typer(plan_app, name="plan")

PlanArg = Annotated[str, typer.Argument(help="the plan file (YAML)")]
Envs = Annotated[Optional[str], typer.Option("--environments", help="the environments file (default: environments.yaml beside the plan)")]
Json = Annotated[bool, typer.Option("--json", help="print exactly one JSON object on stdout")]


def _unreadable(exc: MigrateError, json_out: bool) -> int:
    if json_out:
        emit_json({"valid": False, "error": exc.message, "hint": exc.hint, "type": type(exc).__name__})
    err.print(f"error: {exc}")
    return exc.exit_code


def _validate(plan: str, env: str | None, environments: str | None, json_out: bool) -> Validation | int:
    """The validation of a plan, or the exit code of a file that could not be read (2)."""
    try:
        return run(validate_plan(plan, env, environments, home() / "config-backups"))
    except MigrateError as exc:
        return _unreadable(exc, json_out)


def validated_or_exit(plan: str, env: str, environments: str | None, json_out: bool,
                      actor: tuple[str, str] | None = None) -> Validation | int:
    """A valid plan bound to ``env``, or the exit code after printing why not (2: nothing is started).

    The validation goes to the audit log (``plan_validated``), valid or not, in ``actor``'s name (default: the OS user).
    """
    found = _validate(plan, env, environments, json_out)
    if isinstance(found, int):
        return found
    run(record_event("plan_validated", f"plan:{found.plan.name}", actor or default_actor(), validation_state(found, env)))
    if not found.valid:
        if json_out:
            emit_json(found.as_json())
        _print_issues(found)
        err.print(f"the plan is not valid in {env}, nothing was started: fix the errors above")
        return 2
    return found


def _print_issues(found: Validation) -> None:
    for issue in found.issues:
        err.print(f"{issue.kind} {issue.severity}: {issue.text()}")


@plan_app.command("validate")
def validate(plan: PlanArg, env: Annotated[Optional[str], typer.Option("--env", help="the environment to bind and check for real")] = None,
             environments: Envs = None, actor: Actor = None, json_out: Json = False) -> int:
    """Schema (with lines), cycles, conflicts; with --env, bindings and feasibility. Exit 0 valid, 1 invalid, 2 unreadable.

    The verdict (with its counts of errors, warnings and conflicts) goes to the audit log as ``plan_validated``."""
    found = _validate(plan, env, environments, json_out)
    if isinstance(found, int):
        return found
    run(record_event("plan_validated", f"plan:{found.plan.name}", default_actor(actor), validation_state(found, env)))
    if json_out:
        emit_json(found.as_json())
    else:
        _print_issues(found)
        where = f" in {found.environment.name}" if found.environment else " (no environment: bindings and feasibility not checked)"
        groups = " → ".join("[" + ", ".join(g) + "]" for g in found.levels)
        verdict = f"valid{where}: {len(found.plan.migrations)} migration(s), groups {groups}" if found.valid else \
            f"invalid{where}: {sum(i.severity == 'error' for i in found.issues)} error(s)"
        out.print(verdict)
    return 0 if found.valid else 1


@plan_app.command("show")
def show(plan: PlanArg, env: Annotated[str, typer.Option("--env", help="the environment to bind")],
         environments: Envs = None, json_out: Json = False,
         md: Annotated[bool, typer.Option("--md", help="print Markdown (for a change request or runbook)")] = False,
         address: Annotated[Optional[str], typer.Option("--address", help="Temporal address to read measured throughput from "
                                                         "(default: TEMPORAL_ADDRESS, else localhost:7233 if it answers)")] = None) -> int:
    """Steps, order and parallel groups, estimated durations, rollback of each step, risks with mitigations."""
    found = _validate(plan, env, environments, json_out)
    if isinstance(found, int):
        return found
    if not found.valid:
        if json_out:
            emit_json(found.as_json())
        _print_issues(found)
        err.print("the plan is not valid: fix the errors above (snakepit-migrate plan validate)")
        return 1
    shown = show_plan(found.plan, found.environment, found.levels, found.params, found.feasibility, run(_measured(address)))
    if json_out:
        emit_json(shown)
    else:
        out.print(markdown(shown), end="")
    return 0


async def _measured(address: str | None) -> dict[str, tuple[float, int]]:
    """Throughput measured in earlier runs, from a Temporal server that answers within 3 s (none started for this)."""
    from client.connect import connect

    try:
        client = await asyncio.wait_for(connect(address), 3)
        return await asyncio.wait_for(api.measured_throughput(client), 10)
    except Exception:  # no server, or it does not answer: the stated defaults apply
        return {}


@plan_app.command("run")
def run_plan(
    plan: PlanArg,
    env: Annotated[str, typer.Option("--env", help="the environment to run in")],
    environments: Envs = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="every migration simulates and writes nothing; report what would change")] = False,
    plan_id: Annotated[Optional[str], typer.Option("--id", help="the plan run id (default: generated)")] = None,
    wait_for_lock: Annotated[bool, typer.Option("--wait-for-lock", help="wait for resources another run holds instead of refusing (exit 3)")] = False,
    address: Annotated[Optional[str], typer.Option("--address", help="Temporal address (default: TEMPORAL_ADDRESS or the embedded server)")] = None,
    actor: Actor = None,
    json_out: Json = False,
) -> int:
    """Validate, then run every migration as a child of the MigrationPlan workflow: groups in order, each group in
    parallel; on failure stop or roll back by the plan's policy. Exit 0 done, 1 failed (or paused by its window),
    2 invalid plan (nothing started)."""
    who = default_actor(actor)
    found = validated_or_exit(plan, env, environments, json_out, who)
    if isinstance(found, int):
        return found
    inp = found.resolved(dry_run=dry_run).model_copy(update={"wait_for_lock": wait_for_lock, "actor": who[0], "actor_host": who[1]})
    try:
        return run(_run(inp, plan_id, address, json_out))
    except MigrateError as exc:
        if json_out:
            emit_json({"error": exc.message, "hint": exc.hint, "type": "ResourceLocked"})
        err.print(f"error: {exc}")
        return exc.exit_code


async def _run(inp: ResolvedPlan, plan_id: str | None, address: str | None, json_out: bool) -> int:
    client = await ensure_client(address)
    if not inp.dry_run and not inp.wait_for_lock:
        held = await api.lock_holders(client, inp)
        if held:
            raise locked(held)
    inp.search_attributes = await indexing_available(client)
    handle = await api.start_migration_plan(client, inp, plan_id)
    err.print(f"Started plan {inp.plan} in {inp.environment} as {handle.id}" + (" (dry run)" if inp.dry_run else ""))
    await record_event("plan_submitted", handle.id, default_actor(inp.actor), {
        "plan": inp.plan, "environment": inp.environment, "digest": inp.digest, "dry_run": inp.dry_run,
        "promoted_from": inp.promoted_from, "steps": len(inp.steps)}, workflow_id=handle.id)  # fmt: skip
    return await follow(client, handle, json_out, inp.resources())


async def follow(client: Client, handle: Any, json_out: bool, resources: list[str], pauses_seen: int = 0) -> int:
    """Follow a plan run to its end, or until its window pauses it (again: more than ``pauses_seen`` times); print its
    tree. Exit 0 done, 1 otherwise."""
    seen: dict[str, str] = {}
    paused = asyncio.Event()

    def changed(progress: PlanProgress) -> None:
        for step in progress.steps:
            if seen.get(step.id) != step.state:
                seen[step.id] = step.state
                err.print(f"  group {step.group} {step.id}: {step.state}")
        if progress.phase == "paused" and progress.pauses > pauses_seen:
            paused.set()

    try:
        async with worker_while_waiting(client, handle):
            waiting = asyncio.ensure_future(api.wait_for_plan(handle, changed))
            pausing = asyncio.ensure_future(paused.wait())
            await asyncio.wait({waiting, pausing}, return_when=asyncio.FIRST_COMPLETED)
            pausing.cancel()
            if not waiting.done():
                waiting.cancel()
                return _paused(await handle.query("progress", result_type=PlanProgress), json_out)
            result = waiting.result()
    except WorkflowFailureError as exc:  # refused at its start: a lock taken between the check and the start
        if is_lock_refusal(exc):
            raise await locked_after_start(client, exc, resources) from None
        raise
    if json_out:
        emit_json(result.model_dump())
    else:
        out.print(render_tree(result.plan_id, result.plan, result.environment, result.status, result.steps))
        if result.promoted_from:
            out.print(f"promoted from {result.promoted_from}")
        if result.error:
            out.print(f"failed at {result.failed_step}: {result.error}")
    return 0 if result.status in ("completed", "dry_run") else 1


def _paused(progress: PlanProgress, json_out: bool) -> int:
    """A run its window paused: it waits, locks held, for ``plan resume`` or ``plan cancel``."""
    if json_out:
        emit_json({**progress.model_dump(), "status": "paused"})
    else:
        out.print(render_tree(progress.plan_id, progress.plan, progress.environment,
                              f"paused before group {progress.group + 1}/{progress.groups}", progress.steps))
        out.print(progress.paused or "")
    return 1


def render_tree(plan_id: str, plan: str, environment: str, status: str, steps: list[StepProgress],
                phases: dict[str, dict[str, Any]] | None = None) -> str:
    """The plan and its children, group by group, with their state (and a running child's phase)."""
    lines = [f"{plan_id} (plan {plan}, {environment}): {status}"]
    groups = sorted({s.group for s in steps})
    for g in groups:
        lines.append(f"  group {g}")
        for s in (s for s in steps if s.group == g):
            child = s.rollback_id if s.state == "undoing" else s.child_id
            live = (phases or {}).get(child or "")
            detail = f" ({live.get('phase')} {live.get('done', 0)}/{live.get('total', 0)})" if live else ""
            figures = ", ".join(f"{k} {v}" for k, v in s.figures.items() if isinstance(v, int))
            lines.append(f"    {s.id:<20} {s.workflow:<17} {s.state}{detail}  {child}" + (f"  [{figures}]" if figures else ""))
            if s.rollback_id and s.state != "undoing":
                lines.append(f"      undone by {s.rollback_id}")
            if s.error:
                lines.append(f"      error: {s.error}")
    return "\n".join(lines)


async def show_status(client: Client, info: dict[str, Any], watch: bool, json_out: bool) -> int:
    """``status PLAN_ID``: the tree of children with their state, and the phase of the running ones."""
    if watch and info["status"] == "running":
        handle = client.get_workflow_handle(info["migration_id"])
        async with worker_while_waiting(client, handle):
            result = await api.wait_for_plan(handle)
        info = {**info, "status": result.status, "result": result.model_dump()}
    if info["status"] == "running":
        progress = PlanProgress.model_validate(info["progress"])
        phases = await api.child_phases(client, progress)
        if json_out:
            emit_json({**info, "children": phases})
        else:
            where = (f"paused before group {progress.group + 1}/{progress.groups}" if progress.phase == "paused"
                     else f"running, group {progress.group}/{progress.groups}")
            out.print(render_tree(progress.plan_id, progress.plan, progress.environment, where, progress.steps, phases))
            if progress.paused:
                out.print(progress.paused)
        return 0
    if json_out:
        emit_json(info)
    elif info.get("result"):
        r = MigrationPlanResult.model_validate(info["result"])
        out.print(render_tree(r.plan_id, r.plan, r.environment, r.status, r.steps))
        if r.error:
            out.print(f"failed at {r.failed_step}: {r.error}")
    else:
        out.print(f"{info['migration_id']}: {info['status']}")
    return 0


@plan_app.command("export")
def export(
    plan: PlanArg,
    env: Annotated[str, typer.Option("--env", help="the environment to bind")],
    environments: Envs = None,
    out_file: Annotated[Optional[str], typer.Option("--out", help="write it to this file (default: stdout)")] = None,
    actor: Actor = None,
) -> int:
    """Write the plan bound to an environment as one self-contained, digest-stamped procedure (JSON).

    The procedure created goes to the audit log as ``plan_created`` (plan, environment, both digests)."""
    found = _validate(plan, env, environments, False)
    if isinstance(found, int):
        return found
    if not found.valid:
        _print_issues(found)
        err.print("the plan is not valid: nothing exported")
        return 1
    procedure = found.resolved()
    text = json.dumps({
        "format": "snakepit-migrate-procedure/1", "plan": procedure.plan, "environment": procedure.environment,
        "plan_digest": procedure.digest, "procedure_digest": procedure.procedure_digest(),
        "procedure": procedure.model_dump(include={"plan", "environment", "digest", "policy", "steps", "levels"}),
    }, indent=2, sort_keys=True) + "\n"  # fmt: skip
    if out_file:
        Path(out_file).write_text(text)
        err.print(f"exported {procedure.plan} for {procedure.environment} to {out_file} "
                  f"(procedure digest {procedure.procedure_digest()[:16]})")
    else:
        sys.stdout.write(text)
    run(record_event("plan_created", f"plan:{procedure.plan}", default_actor(actor), {
        "plan": procedure.plan, "environment": procedure.environment, "digest": procedure.digest,
        "procedure_digest": procedure.procedure_digest(), "steps": len(procedure.steps), "out": out_file}))  # fmt: skip
    return 0


@plan_app.command("promote")
def promote(
    plan: PlanArg,
    source_env: Annotated[str, typer.Option("--from", help="the environment the plan passed in, e.g. staging")],
    target_env: Annotated[str, typer.Option("--to", help="the environment to run it in now, e.g. production")],
    environments: Envs = None,
    wait_for_lock: Annotated[bool, typer.Option("--wait-for-lock", help="wait for resources another run holds")] = False,
    address: Annotated[Optional[str], typer.Option("--address", help="Temporal address (default: TEMPORAL_ADDRESS or the embedded server)")] = None,
    actor: Actor = None,
    json_out: Json = False,
) -> int:
    """Run in --to the same plan (same digest) that completed in --from, recording which run it was promoted from.

    Refused (exit 2, nothing started) unless a real run of this exact plan file completed in --from.
    """
    who = default_actor(actor)
    found = validated_or_exit(plan, target_env, environments, json_out, who)
    if isinstance(found, int):
        return found
    inp = found.resolved().model_copy(update={"wait_for_lock": wait_for_lock, "actor": who[0], "actor_host": who[1]})
    try:
        return run(_promote(inp, source_env, address, json_out))
    except MigrateError as exc:
        if json_out:
            emit_json({"error": exc.message, "hint": exc.hint, "type": type(exc).__name__})
        err.print(f"error: {exc}")
        return exc.exit_code


async def _promote(inp: ResolvedPlan, source_env: str, address: str | None, json_out: bool) -> int:
    client = await ensure_client(address)
    passed = await api.completed_plan_runs(client, inp.digest, source_env)
    if not passed:
        raise BadInput(
            f"plan {inp.plan} (digest {inp.digest[:16]}) has no completed run in {source_env}: not promoted to {inp.environment}",
            hint=f"run it there first: snakepit-migrate plan run PLAN --env {source_env} (a changed plan file has a new digest)",
        )
    err.print(f"promoting {inp.plan} from {source_env} run {passed[0]} to {inp.environment}")
    return await _run(inp.model_copy(update={"promoted_from": passed[0]}), None, address, json_out)


@plan_app.command("compare")
def compare(
    run_a: Annotated[str, typer.Argument(help="a plan run id (e.g. the staging run)")],
    run_b: Annotated[str, typer.Argument(help="another plan run id (e.g. the production run)")],
    address: Annotated[Optional[str], typer.Option("--address", help="Temporal address (default: TEMPORAL_ADDRESS or the embedded server)")] = None,
    json_out: Json = False,
) -> int:
    """Two plan runs side by side: status, durations, and per step its state, counts and findings."""
    compared = run(_compare(run_a, run_b, address))
    if json_out:
        emit_json(compared)
    else:
        out.print(render_comparison(compared))
    return 0


async def _compare(run_a: str, run_b: str, address: str | None) -> dict[str, Any]:
    client = await ensure_client(address)
    results = []
    for rid in (run_a, run_b):
        info = await api.describe(client, rid)
        if info["type"] != "MigrationPlan" or not info.get("result"):
            raise BadInput(f"{rid} is not a finished plan run ({info['type']}, {info['status']})",
                           hint="compare two runs of snakepit-migrate plan run that have ended")
        results.append(info["result"])
    return compare_runs(results[0], results[1])


@plan_app.command("resume")
def resume(
    plan_id: Annotated[str, typer.Argument(help="the id of a plan run its maintenance window paused")],
    window: Annotated[Optional[str], typer.Option("--window", help="the new window, e.g. 2h (default: the run's own), from now")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="send it and return; follow with: snakepit-migrate status PLAN_ID")] = False,
    address: Annotated[Optional[str], typer.Option("--address", help="Temporal address (default: TEMPORAL_ADDRESS or the embedded server)")] = None,
    actor: Actor = None,
    json_out: Json = False,
) -> int:
    """Go on with a paused plan run: the groups it had not started run now, in a new window; then follow it to its end.

    Refused (exit 2) when the run is not paused. Exit 0 done, 1 failed (or paused again)."""
    from client.schedules import parse_duration

    window_s = parse_duration(window) if window else None
    return run(_signal_paused(plan_id, "resume", {"window_s": window_s}, default_actor(actor), address, json_out, no_wait))


@plan_app.command("cancel")
def cancel(
    plan_id: Annotated[str, typer.Argument(help="the id of a running or paused plan run")],
    rollback: Annotated[bool, typer.Option("--rollback", help="undo the completed steps newest first (default: keep them)")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="send it and return; follow with: snakepit-migrate status PLAN_ID")] = False,
    address: Annotated[Optional[str], typer.Option("--address", help="Temporal address (default: TEMPORAL_ADDRESS or the embedded server)")] = None,
    actor: Actor = None,
    json_out: Json = False,
) -> int:
    """Give a plan run up: no further group starts (a running group finishes first); the completed steps stay, or
    with --rollback are undone newest first. Exit 0 when the run ended cancelled or rolled back, 1 otherwise."""
    return run(_signal_paused(plan_id, "cancel", {"rollback": rollback}, default_actor(actor), address, json_out, no_wait))


async def _signal_paused(plan_id: str, signal: str, params: dict[str, Any], who: tuple[str, str], address: str | None,
                         json_out: bool, no_wait: bool) -> int:
    client = await ensure_client(address)
    return await signal_plan(client, await api.describe(client, plan_id), signal, params, who, json_out, no_wait)


async def signal_plan(client: Client, info: dict[str, Any], signal: str, params: dict[str, Any], who: tuple[str, str],
                      json_out: bool, no_wait: bool = False) -> int:
    """Send ``resume`` or ``cancel`` to a plan run (``info`` from ``api.describe``), audited; then follow it to its end.

    Also what ``snakepit-migrate rollback PLAN_ID`` does (``cancel`` with ``rollback``)."""
    plan_id = info["migration_id"]
    phase = (info.get("progress") or {}).get("phase")
    if info["type"] != "MigrationPlan" or info["status"] != "running" or (signal == "resume" and phase != "paused"):
        state = f"{info['type']} {info['status']}" + (f", {phase}" if phase else "")
        raise BadInput(f"{plan_id} is not a {'paused' if signal == 'resume' else 'running'} plan run ({state}): "
                       f"nothing to {signal}", hint=f"see: snakepit-migrate status {plan_id}")
    handle = client.get_workflow_handle(plan_id)
    await handle.signal(signal, {**params, "actor": who[0], "actor_host": who[1]})
    await record_event(f"plan_{signal}_requested", plan_id, who, params, workflow_id=plan_id)
    err.print(f"{signal} sent to {plan_id}")
    if no_wait:
        if json_out:
            emit_json({"plan_id": plan_id, "signal": signal, **params})
        return 0
    code = await follow(client, handle, json_out, [], (info.get("progress") or {}).get("pauses", 0))
    if signal == "cancel":
        ended = await api.describe(client, plan_id)
        return 0 if ended["status"] in ("cancelled", "rolled_back") else 1
    return code
