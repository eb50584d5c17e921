"""Earlier workflow runs, as an activity reads them: what a completed run returned and what its history recorded.

A later run that undoes a completed one (``rollback_of``) learns what that
run did here, from Temporal itself (through the worker's client), so the
undo needs nothing but the run's id.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode


def nothing_to_undo(message: str) -> ApplicationError:
    """The refusal of an undo: the run is unknown, not completed, or did nothing to undo."""
    return ApplicationError(message, type="NothingToRollBack", non_retryable=True)


async def completed_run(workflow_id: str, expect_type: str) -> tuple[dict[str, Any], list[Any]]:
    """The result of the completed run ``workflow_id`` of type ``expect_type`` (as JSON), and its history's events.

    Raises ``NothingToRollBack`` when there is no such run, it is of another
    type, or it has not completed.
    """
    client = activity.client()
    handle = client.get_workflow_handle(workflow_id)
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise nothing_to_undo(f"no run with id {workflow_id!r}") from None
        raise
    if desc.workflow_type != expect_type:
        raise nothing_to_undo(f"{workflow_id} is a {desc.workflow_type}, not a {expect_type}")
    if desc.status != WorkflowExecutionStatus.COMPLETED:
        status = desc.status.name.lower() if desc.status else "unknown"
        raise nothing_to_undo(f"{workflow_id} is {status}: only a completed run is undone (a failed one undid itself)")
    events = [event async for event in handle.fetch_history_events()]
    result: dict[str, Any] = {}
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            values = await client.data_converter.decode(event.workflow_execution_completed_event_attributes.result.payloads)
            result = dict(values[0]) if values and isinstance(values[0], dict) else {}
    return result, events


async def activity_result(events: list[Any], activity_type: str) -> Any:
    """The decoded result of the first completed activity of ``activity_type`` in a run's history, or None."""
    scheduled = {
        e.event_id for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == activity_type
    }  # fmt: skip
    for e in events:
        attrs = e.activity_task_completed_event_attributes
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED and attrs.scheduled_event_id in scheduled:
            values = await activity.client().data_converter.decode(attrs.result.payloads)
            return values[0] if values else None
    return None
