"""What a MigrationPlan run tells its audit log, its alerts and the Temporal index: pure functions of its input and result.

Deterministic (no I/O, no clock): the workflow passes ``workflow.now()`` in.
Entry states hold ids, counts, digests and statuses, never data.
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from deployment.plans.model import ResolvedPlan
from workflows.audit_models import AlertInput
from workflows.plan_models import MigrationPlanResult
from workflows.search_attributes import ENVIRONMENT, MIGRATION_TYPE, PLAN_ID

# set by the server on a run a Temporal Schedule started (also when the schedule is triggered by hand)
SCHEDULED_BY = SearchAttributeKey.for_keyword("TemporalScheduledById")


def schedule_of(plan_id: str, inp: ResolvedPlan, attributes: TypedSearchAttributes) -> str | None:
    """The schedule that fired this run: the server's ``TemporalScheduledById``, else a schedule input whose id starts the run's."""
    fired = attributes.get(SCHEDULED_BY)
    if fired:
        return fired
    if inp.schedule_id and plan_id.startswith(f"{inp.schedule_id}-"):
        return inp.schedule_id
    return None


def started_state(inp: ResolvedPlan, schedule_id: str | None) -> dict[str, Any]:
    """The ``started`` entry: which plan, where, its digest, where it was promoted from, and what fired it."""
    return {
        "plan": inp.plan, "environment": inp.environment, "digest": inp.digest, "policy": inp.policy, "dry_run": inp.dry_run,
        "promoted_from": inp.promoted_from, "window_s": inp.window_s, "on_window_exceeded": inp.on_window_exceeded,
        "steps": len(inp.steps), "groups": len(inp.levels), "schedule_fired": schedule_id,
    }  # fmt: skip


def child_attributes(inp: ResolvedPlan, plan_id: str, workflow_type: str) -> TypedSearchAttributes:
    """The attributes a child starts with, so ``PlanId='<plan run>'`` lists the plan and its children."""
    return TypedSearchAttributes([
        SearchAttributePair(ENVIRONMENT, inp.environment), SearchAttributePair(PLAN_ID, plan_id),
        SearchAttributePair(MIGRATION_TYPE, workflow_type),
    ])  # fmt: skip


def memo(inp: ResolvedPlan, status: str) -> dict[str, Any]:
    """The run's memo: a one-line summary, and the digest ``plan promote`` matches without reading results."""
    return {"summary": f"plan {inp.plan} in {inp.environment}: {status}", "plan_digest": inp.digest, "dry_run": inp.dry_run}


def action_taken(result: MigrationPlanResult) -> str:
    """What was done about a plan that did not complete, in words an on-call person acts on."""
    return {
        "rolled_back": "completed steps undone newest first",
        "paused": "remaining groups left for a later run",
        "cancelled": "cancelled by an operator: completed steps kept, the remaining ones never started",
        "rollback_failed": "the undo stopped: see the steps' states",
    }.get(result.status, "stopped; completed steps kept")


def ended_state(result: MigrationPlanResult) -> dict[str, Any]:
    """The ``ended`` entry; for a plan that did not complete, its fields are the alert's (``failed_phase``, ``action``)."""
    return {
        "status": result.status, "failed_phase": result.failed_step, "error": result.error,
        "error_type": result.error_type,
        "action": None if result.status in ("completed", "dry_run") else action_taken(result),
        "completed": list(result.completed_order), "undone": list(result.undone_order), "pauses": len(result.pauses),
        "duration_s": result.duration_s,
    }  # fmt: skip


def window_alert(result: MigrationPlanResult, inp: ResolvedPlan, group: int, window_s: float, at: float) -> AlertInput:
    """The ``window_exceeded`` alert: the plan, the group it reached, the steps done and skipped, and the action taken."""
    skipped = [s.id for s in result.steps if s.state == "pending"]
    if inp.on_window_exceeded == "rollback":
        action = f"rolling back the {len(result.completed_order)} completed step(s) newest first"
    else:
        action = (f"paused, completed steps kept and locks held: go on with snakepit-migrate plan resume {result.plan_id}, "
                  f"or give up with snakepit-migrate plan cancel {result.plan_id} [--rollback]")  # fmt: skip
    return AlertInput(
        kind="window_exceeded", migration_id=result.plan_id, at=at, step=f"group {group} of {len(inp.levels)}",
        error=window_error(window_s, group, len(inp.levels)), error_type="WindowExceeded", action=action,
        figures={"plan": inp.plan, "environment": inp.environment, "group": group, "groups": len(inp.levels),
                 "done": list(result.completed_order), "skipped": skipped, "on_window_exceeded": inp.on_window_exceeded},
    )  # fmt: skip


def window_error(window_s: float, group: int, groups: int) -> str:
    return f"the maintenance window of {window_s:g} s ended before group {group} of {groups}"
