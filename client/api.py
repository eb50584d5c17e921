"""The Python client API: start, follow, inspect and roll back migrations.

Everything the CLI does goes through here, so a script can do the same:

    client = await connect("localhost:7233")
    handle = await start_session_migration(client, SessionMigrationInput(source=..., target=...))
    result = await wait_for_result(handle)
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from client.connect import TASK_QUEUE
from deployment.errors import BadInput, NotFound
from workflows.adapter_models import AdapterMigrationInput, AdapterMigrationProgress, AdapterMigrationResult
from workflows.extension_models import CustomMigrationInput, CustomMigrationResult, ExtensionProgress
from workflows.config_migration import ConfigMigrationResult
from workflows.fleet_models import RollingRestartInput, RollingRestartProgress, RollingRestartResult
from workflows.plan_models import MigrationPlanInput, MigrationPlanResult, PlanProgress
from workflows.session_models import MigrationProgress, SessionMigrationInput, SessionMigrationResult

class AlreadyRolledBack(BadInput):
    """A rollback asked of a migration that was rolled back already."""


ProgressCallback = Callable[[Any], Awaitable[None] | None]
R = TypeVar("R", bound=BaseModel)


def new_migration_id(kind: str) -> str:
    """A fresh, readable migration id such as ``sessions-3f9c2a1b``."""
    return f"{kind}-{uuid.uuid4().hex[:8]}"


async def start_session_migration(
    client: Client, inp: SessionMigrationInput, migration_id: str | None = None, task_queue: str = TASK_QUEUE
) -> WorkflowHandle[Any, Any]:
    """Start the ``SessionMigration`` workflow; the migration id is its workflow id."""
    return await client.start_workflow(
        "SessionMigration",
        inp.model_dump(exclude_defaults=True),
        id=migration_id or new_migration_id("sessions"),
        task_queue=task_queue,
        result_type=SessionMigrationResult,
    )


async def wait_for_result(
    handle: WorkflowHandle[Any, Any],
    on_progress: ProgressCallback | None = None,
    poll_s: float = 0.5,
    *,
    result_type: type[BaseModel] = SessionMigrationResult,
    progress_type: type[BaseModel] = MigrationProgress,
) -> Any:
    """Wait for the workflow's result, reporting progress from its query meanwhile.

    A migration that failed (rolled back or not) returns its result too, with
    ``status`` saying so; only an unexpected failure raises. ``result_type`` and
    ``progress_type`` are the models of the workflow (SessionMigration's by default).
    """
    result_task = asyncio.ensure_future(handle.result())
    try:
        while not result_task.done():
            if on_progress is not None:
                try:
                    progress = await handle.query("progress", result_type=progress_type)
                    maybe = on_progress(progress)
                    if maybe is not None:
                        await maybe
                except Exception:  # the query races the end of the run; the result decides
                    pass
            await asyncio.wait({result_task}, timeout=poll_s)
        return _as_result(await result_task, result_type)
    except WorkflowFailureError as exc:
        found = result_from_failure(exc, result_type)
        if found is None:
            raise
        return found
    finally:
        result_task.cancel()


def _as_result(value: Any, result_type: type[R] = SessionMigrationResult) -> R:  # type: ignore[assignment]
    return value if isinstance(value, result_type) else result_type.model_validate(value)


def result_from_failure(exc: WorkflowFailureError, result_type: type[R] = SessionMigrationResult) -> R | None:  # type: ignore[assignment]
    """The result a failed migration attached to its failure, if any."""
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.details:
        try:
            return _as_result(cause.details[0], result_type)
        except Exception:
            return None
    return None


async def start_rolling_restart(
    client: Client, inp: RollingRestartInput, migration_id: str | None = None, task_queue: str = TASK_QUEUE
) -> WorkflowHandle[Any, Any]:
    """Start the ``RollingRestart`` workflow; the migration id is its workflow id."""
    return await client.start_workflow(
        "RollingRestart",
        inp.model_dump(exclude_defaults=True),
        id=migration_id or new_migration_id("restart"),
        task_queue=task_queue,
        result_type=RollingRestartResult,
    )


async def wait_for_rolling_restart(
    handle: WorkflowHandle[Any, Any], on_progress: ProgressCallback | None = None, poll_s: float = 0.5
) -> RollingRestartResult:
    """Wait for a rolling restart's result (also when it failed or was rolled back), reporting progress."""
    return await wait_for_result(
        handle, on_progress, poll_s, result_type=RollingRestartResult, progress_type=RollingRestartProgress
    )


async def start_adapter_migration(
    client: Client, inp: AdapterMigrationInput, migration_id: str | None = None, task_queue: str = TASK_QUEUE
) -> WorkflowHandle[Any, Any]:
    """Start the ``AdapterMigration`` workflow (custom adapter → generic adapter); the migration id is its workflow id."""
    return await client.start_workflow(
        "AdapterMigration",
        inp.model_dump(exclude_defaults=True),
        id=migration_id or new_migration_id("adapter"),
        task_queue=task_queue,
        result_type=AdapterMigrationResult,
    )


async def wait_for_adapter_migration(
    handle: WorkflowHandle[Any, Any], on_progress: ProgressCallback | None = None, poll_s: float = 0.5
) -> AdapterMigrationResult:
    """Wait for an adapter migration's result (also when it failed or was rolled back), reporting progress."""
    return await wait_for_result(
        handle, on_progress, poll_s, result_type=AdapterMigrationResult, progress_type=AdapterMigrationProgress
    )


async def request_adapter_rollback(client: Client, migration_id: str, info: dict[str, Any] | None = None) -> WorkflowHandle[Any, Any]:
    """Roll an adapter migration back: signal it if it runs, else undo it by a new run ``<id>-rollback``.

    The undo puts the backed-up pool config back (refused if it was edited
    since the migration wrote it), restarts the fleet onto it, then removes
    the generic configuration file the migration created.
    """
    info = info or await describe(client, migration_id)
    handle = client.get_workflow_handle(migration_id, result_type=AdapterMigrationResult)
    if info["status"] == "running":
        await handle.signal("rollback")
        return handle
    params = await original_input(client, migration_id)
    if params.get("rollback_of"):
        raise BadInput(f"{migration_id} is itself the rollback of {params['rollback_of']}",
                       hint=f"to try that rollback again: snakepit-migrate rollback {params['rollback_of']}")
    result = info.get("result") or {}
    if info["status"] != "completed" or not result.get("written"):
        raise NotFound(
            f"adapter migration {migration_id} is {info['status']}: there is nothing to roll back",
            hint="a failed adapter migration restored its config and fleet itself; only a completed one is undone",
        )
    with contextlib.suppress(NotFound):
        earlier = await describe(client, f"{migration_id}-rollback")
        if earlier["status"] == "rolled_back":
            raise AlreadyRolledBack(
                f"adapter migration {migration_id} was rolled back already by {migration_id}-rollback",
                hint=f"see: snakepit-migrate status {migration_id}-rollback",
            )
    params.update(rollback_of=migration_id, dry_run=False, undo={"backup": result["backup"], "written": result["written"]})
    return await start_adapter_migration(
        client, AdapterMigrationInput.model_validate(params), f"{migration_id}-rollback", info["task_queue"]
    )


async def start_custom_migration(
    client: Client, inp: CustomMigrationInput, migration_id: str | None = None, task_queue: str = TASK_QUEUE
) -> WorkflowHandle[Any, Any]:
    """Start the ``CustomMigration`` workflow (one extension as a saga); the migration id is its workflow id."""
    return await client.start_workflow(
        "CustomMigration",
        inp.model_dump(exclude_defaults=True),
        id=migration_id or new_migration_id("custom"),
        task_queue=task_queue,
        result_type=CustomMigrationResult,
    )


async def wait_for_custom_migration(
    handle: WorkflowHandle[Any, Any], on_progress: ProgressCallback | None = None, poll_s: float = 0.5
) -> CustomMigrationResult:
    """Wait for a custom migration's result (also when it failed or was rolled back), reporting progress."""
    return await wait_for_result(
        handle, on_progress, poll_s, result_type=CustomMigrationResult, progress_type=ExtensionProgress
    )


async def request_extension_rollback(client: Client, migration_id: str) -> WorkflowHandle[Any, Any]:
    """Roll a custom migration back: signal it if it runs, else undo it from its journal.

    A completed run (or one whose own rollback failed) is undone by a new run
    ``<id>-rollback`` with the extension version the run recorded, so a
    worker with another major version refuses it as it refused the run.
    """
    info = await describe(client, migration_id)
    if info["type"] != "CustomMigration":
        raise BadInput(f"{migration_id} is a {info['type']}, not a custom migration", hint=f"use: snakepit-migrate rollback {migration_id}")
    handle = client.get_workflow_handle(migration_id, result_type=CustomMigrationResult)
    if info["status"] == "running":
        await handle.signal("rollback")
        return handle
    if info["status"] not in ("completed", "rollback_failed"):
        raise NotFound(
            f"custom migration {migration_id} is {info['status']}: there is nothing to roll back",
            hint="only a running, completed or rollback_failed custom migration can be rolled back",
        )
    params = await original_input(client, migration_id)
    if params.get("rollback_of"):
        raise BadInput(
            f"{migration_id} is itself the rollback of {params['rollback_of']}",
            hint=f"to try that rollback again: snakepit-migrate extensions rollback {params['rollback_of']}",
        )
    with contextlib.suppress(NotFound):
        earlier = await describe(client, f"{migration_id}-rollback")
        if earlier["status"] == "rolled_back":
            raise AlreadyRolledBack(
                f"custom migration {migration_id} was rolled back already by {migration_id}-rollback",
                hint=f"see: snakepit-migrate status {migration_id}-rollback --json",
            )
    result = info.get("result") or {}
    params.update(rollback_of=migration_id, version=result.get("version"), dry_run=False)
    params.pop("fail_after_checkpoints", None)
    return await start_custom_migration(
        client, CustomMigrationInput.model_validate(params), f"{migration_id}-rollback", info["task_queue"]
    )


def list_extensions() -> list[dict[str, Any]]:
    """Every extension shipped or installed here, with name, version, source, and the error of a broken one."""
    from deployment.extensions.registry import discover

    return [info.as_dict() for info in discover()]


async def describe(client: Client, migration_id: str) -> dict[str, Any]:
    """Where a migration stands: its Temporal status, progress or result."""
    handle = client.get_workflow_handle(migration_id)
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(f"no migration with id {migration_id!r}", hint="list them with: snakepit-migrate list") from None
        raise
    info: dict[str, Any] = {
        "migration_id": migration_id,
        "type": desc.workflow_type,
        "task_queue": desc.task_queue,
        "workflow_status": desc.status.name if desc.status else "UNKNOWN",
        "started": desc.start_time.isoformat() if desc.start_time else None,
        "closed": desc.close_time.isoformat() if desc.close_time else None,
    }
    progress_type, result_type = _MODELS.get(desc.workflow_type or "", (MigrationProgress, SessionMigrationResult))
    if desc.status == WorkflowExecutionStatus.RUNNING:
        progress = await handle.query("progress", result_type=progress_type)
        info["status"] = "running"
        info["progress"] = progress.model_dump()
    else:
        result = await _closed_result(handle, result_type)
        info["status"] = result.status if result else (desc.status.name.lower() if desc.status else "unknown")
        info["result"] = result.model_dump() if result else None
    return info


# The progress and result models of workflow types other than SessionMigration.
_MODELS: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "RollingRestart": (RollingRestartProgress, RollingRestartResult),
    "ConfigMigration": (MigrationProgress, ConfigMigrationResult),
    "CustomMigration": (ExtensionProgress, CustomMigrationResult),
    "AdapterMigration": (AdapterMigrationProgress, AdapterMigrationResult),
    "MigrationPlan": (PlanProgress, MigrationPlanResult),
}


async def _closed_result(handle: WorkflowHandle[Any, Any], result_type: type[R] = SessionMigrationResult) -> R | None:  # type: ignore[assignment]
    try:
        return _as_result(await handle.result(), result_type)
    except WorkflowFailureError as exc:
        return result_from_failure(exc, result_type)
    except Exception:
        return None


async def export_history(client: Client, migration_id: str) -> str:
    """The migration's Temporal event history as JSON (the form ``Replayer`` and ``temporal workflow show`` read)."""
    try:
        history = await client.get_workflow_handle(migration_id).fetch_history()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(f"no migration with id {migration_id!r}", hint="list them with: snakepit-migrate list") from None
        raise
    return history.to_json()


async def original_input(client: Client, migration_id: str) -> dict[str, Any]:
    """The JSON input a migration was started with, read from its history."""
    handle = client.get_workflow_handle(migration_id)
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            values = await client.data_converter.decode(payloads)
            return dict(values[0]) if values else {}
    raise NotFound(f"migration {migration_id!r} has no start event")


async def request_rollback(client: Client, migration_id: str, actor: tuple[str, str] | None = None) -> WorkflowHandle[Any, Any]:
    """Roll a migration back: signal it if it runs, else start its undo.

    A running migration stops at its next slice and compensates; a completed
    one is undone from its journal by a new run with id ``<id>-rollback``.
    Returns the handle whose result tells the outcome. ``actor`` (name, host)
    is who asked: the undo run's audit entries name them.
    """
    info = await describe(client, migration_id)
    if info["type"] == "RollingRestart":
        raise BadInput(
            f"{migration_id} is a rolling restart: a failed one rolled itself back, and a completed one is "
            "undone by a rolling restart back onto the configs its instances served before",
            hint=f"snakepit-migrate fleet rollback {migration_id}",
        )
    if info["type"] == "AdapterMigration":
        return await request_adapter_rollback(client, migration_id, info)
    handle = client.get_workflow_handle(migration_id, result_type=SessionMigrationResult)
    if info["status"] == "running":
        await handle.signal("rollback")
        return handle
    if info["status"] != "completed":
        raise NotFound(
            f"migration {migration_id} is {info['status']}: there is nothing to roll back",
            hint="only a running or completed migration can be rolled back",
        )
    with contextlib.suppress(NotFound):
        earlier = await describe(client, f"{migration_id}-rollback")
        if earlier["status"] == "rolled_back":
            raise AlreadyRolledBack(
                f"migration {migration_id} was rolled back already by {migration_id}-rollback",
                hint=f"see: snakepit-migrate status {migration_id}-rollback",
            )
    params = await original_input(client, migration_id)
    params.update(rollback_of=migration_id, dry_run=False)
    if actor is not None:
        params.update(actor=actor[0], actor_host=actor[1])
    return await start_session_migration(
        client, SessionMigrationInput.model_validate(params), f"{migration_id}-rollback", info["task_queue"]
    )


async def start_migration_plan(
    client: Client, inp: MigrationPlanInput, plan_id: str | None = None, task_queue: str = TASK_QUEUE
) -> WorkflowHandle[Any, Any]:
    """Start the ``MigrationPlan`` workflow (a plan bound to an environment); the plan id is its workflow id."""
    return await client.start_workflow(
        "MigrationPlan", inp.model_dump(), id=plan_id or new_migration_id("plan"), task_queue=task_queue,
        result_type=MigrationPlanResult,
    )  # fmt: skip


async def wait_for_plan(
    handle: WorkflowHandle[Any, Any], on_progress: ProgressCallback | None = None, poll_s: float = 0.5
) -> MigrationPlanResult:
    """Wait for a plan's result (also when it failed or was rolled back), reporting its tree of children."""
    return await wait_for_result(handle, on_progress, poll_s, result_type=MigrationPlanResult, progress_type=PlanProgress)


async def lock_holders(client: Client, inp: MigrationPlanInput) -> dict[str, str]:
    """The resources of a plan that a running lock holds, each with the run holding it (its parent)."""
    return await resource_holders(client, inp.resources())


async def resource_holders(client: Client, resources: list[str]) -> dict[str, str]:
    """The resources a running lock holds (redacted), each with the run holding it (the lock's parent)."""
    from deployment.plans.model import lock_id
    from deployment.sessions.stores.base import redact_url

    held: dict[str, str] = {}
    for resource in resources:
        with contextlib.suppress(RPCError):  # no such lock: free
            desc = await client.get_workflow_handle(lock_id(resource)).describe()
            if desc.status == WorkflowExecutionStatus.RUNNING:
                held[redact_url(resource)] = desc.parent_id or "an unknown run"
    return held


async def completed_plan_runs(client: Client, digest: str, environment: str, limit: int = 200) -> list[str]:
    """Ids of the real (not dry) runs of the plan with this digest that completed in ``environment``, newest first.

    Indexed runs are found by a visibility query (``MigrationType``, ``Environment``, ``ExecutionStatus``) and
    matched on their memo's digest, without reading any result; runs from before plans were indexed (no
    ``Environment`` attribute) are still found by reading the results of completed plans.
    """
    from client.search import indexing_available
    from workflows.search_attributes import ENVIRONMENT

    found: list[str] = []
    if await indexing_available(client):
        where = environment.replace("\\", "\\\\").replace("'", "\\'")
        query = f"MigrationType = 'MigrationPlan' AND Environment = '{where}' AND ExecutionStatus = 'Completed'"
        async for wf in client.list_workflows(query, limit=limit):
            memo = await wf.memo()
            if memo.get("plan_digest") == digest and memo.get("dry_run") is False:  # only a completed run returns a result
                found.append(wf.id)
        if found:
            return found
    async for wf in client.list_workflows("WorkflowType = 'MigrationPlan' AND ExecutionStatus = 'Completed'", limit=limit):
        if wf.typed_search_attributes.get(ENVIRONMENT) is not None:
            continue  # indexed: the query above has seen it
        with contextlib.suppress(Exception):  # a run whose result does not read as a plan's is not one
            result = _as_result(await client.get_workflow_handle(wf.id, run_id=wf.run_id).result(), MigrationPlanResult)
            if result.digest == digest and result.environment == environment and result.status == "completed":
                found.append(wf.id)
    return found


async def measured_throughput(client: Client, limit: int = 50) -> dict[str, tuple[float, int]]:
    """Throughput measured in recent completed runs: ``sessions_per_s`` (the median, inverting the estimate
    ``2 * sessions / rate + 5 s``) and how many runs it comes from."""
    rates: list[float] = []
    query = "WorkflowType = 'SessionMigration' AND ExecutionStatus = 'Completed'"
    async for wf in client.list_workflows(query, limit=limit):
        with contextlib.suppress(Exception):  # a run whose result does not read is left out
            r = _as_result(await client.get_workflow_handle(wf.id, run_id=wf.run_id).result(), SessionMigrationResult)
            if r.status == "completed" and not r.dry_run and r.sessions_copied > 0 and r.duration_s > 0:
                rates.append(2 * r.sessions_copied / max(r.duration_s - 5, 0.5))
    if not rates:
        return {}
    rates.sort()
    return {"sessions_per_s": (round(rates[len(rates) // 2], 1), len(rates))}


async def child_phases(client: Client, progress: PlanProgress) -> dict[str, dict[str, Any]]:
    """The ``progress`` of every running child of a plan (phase, done, total), by child id."""
    phases: dict[str, dict[str, Any]] = {}
    for step in progress.steps:
        if step.state in ("running", "undoing"):
            child = step.rollback_id if step.state == "undoing" else step.child_id
            with contextlib.suppress(Exception):  # it may just have ended: the plan's own state says so
                found = await client.get_workflow_handle(child).query("progress")
                phases[child] = found if isinstance(found, dict) else dict(found)
    return phases


async def list_migrations(client: Client, limit: int = 50) -> list[dict[str, Any]]:
    """The most recent migrations on the task queue, newest first."""
    rows = []
    async for wf in client.list_workflows(f"TaskQueue = '{TASK_QUEUE}'", limit=limit):
        rows.append(
            {
                "migration_id": wf.id,
                "type": wf.workflow_type,
                "workflow_status": wf.status.name if wf.status else "UNKNOWN",
                "started": wf.start_time.isoformat() if wf.start_time else None,
                "closed": wf.close_time.isoformat() if wf.close_time else None,
            }
        )
    return rows


# -- live control of a running session migration (issue 9) ---------------------------------------


async def _running_session_migration(client: Client, migration_id: str) -> WorkflowHandle[Any, Any]:
    """The handle of a running SessionMigration; NotFound (exit 2) when there is none by that id."""
    handle = client.get_workflow_handle(migration_id)
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        raise NotFound(f"no migration {migration_id!r}", hint="list them with: snakepit-migrate list") from None
    if desc.workflow_type != "SessionMigration" or desc.status != WorkflowExecutionStatus.RUNNING:
        state = desc.status.name.lower() if desc.status else "unknown"
        raise BadInput(f"{migration_id} is a {desc.workflow_type} that is {state}: only a running session migration can be changed")
    return handle


async def reconfigure_session_migration(client: Client, migration_id: str, change: Any) -> Any:
    """Change a running copy's rate limit, batch size or parallelism (the ``reconfigure`` update).

    ``change`` is a ``ReconfigureInput``; returns the ``CopySettings`` now in force. A value the
    workflow refuses raises BadInput with its message.
    """
    from temporalio.client import WorkflowUpdateFailedError

    from workflows.session_models import CopySettings

    handle = await _running_session_migration(client, migration_id)
    for attempt in range(10):
        try:
            return await handle.execute_update("reconfigure", change, result_type=CopySettings)
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            raise BadInput(f"{migration_id} refused the change: {getattr(cause, 'message', None) or cause}") from None
        except RPCError as exc:  # the server refuses updates while a workflow task is being retried: try again
            if "Workflow Task in failed state" not in str(exc) or attempt == 9:
                raise
            await asyncio.sleep(1.0)


async def pause_session_migration(client: Client, migration_id: str, paused: bool = True) -> None:
    """Pause (or with ``paused=False`` resume) a running copy: no new slice starts while paused."""
    handle = await _running_session_migration(client, migration_id)
    await handle.signal("pause" if paused else "resume")
