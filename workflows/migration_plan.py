"""MigrationPlan: run a plan's migrations as child workflows, group by group.

The migrations of one group (a topological level) run in parallel; a group
starts when the one before it has completed.  When a child fails (its own
saga has rolled it back by then), no further group starts; the children of
the failing group still running are left to finish.  Then, by the plan's
policy, ``stop`` leaves completed children in place, and ``rollback`` undoes
them newest first, each by a later run of its own workflow with
``rollback_of`` (``<child id>-rollback``).  ``dry_run`` is passed to every child.
With a maintenance window (``window_s``), no group starts once it has ended:
the run pauses (completed steps kept) or rolls back, by ``on_window_exceeded``.

Before the first child, a real run takes the lock of every resource it
touches (a ``ResourceLock`` child each, in sorted order); a resource another
run holds fails the plan with ``ResourceLocked`` at once, or, with
``wait_for_lock``, is tried again every few seconds (:mod:`workflows.locks`).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, ChildWorkflowError, FailureError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.alerts import AlertActivities
    from activities.plans import PlanActivities
    from deployment.plans.model import REVERSIBLE, ResolvedStep
    from workflows.audit_models import AlertInput
    from workflows.locks import ResourceLocks
    from workflows.plan_models import MigrationPlanInput, MigrationPlanResult, PlanProgress, StepProgress

# figures copied from a child's result into the plan's (only counts, digests and statuses)
_FIGURES = ("sessions_total", "sessions_copied", "source_digest", "target_digest", "restored", "files_written", "duration_s",
            "restarted", "changed", "done", "from_version", "to_version", "version")
# fault-injection params a rollback run must not inherit
_FAULTS = ("fail_after_batches", "fail_after_files", "fail_after_checkpoints")
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=3)


def _figures(child: dict[str, Any]) -> dict[str, Any]:
    """The counts, digests and statuses of a child's result worth keeping (lists become their length)."""
    figures = {k: child[k] for k in _FIGURES if child.get(k) is not None}
    if isinstance(child.get("files_written"), list):
        figures["files_written"] = len(child["files_written"])
    if isinstance(child.get("findings"), list):
        figures["findings"] = len(child["findings"])
    return figures


def _child_failure(exc: BaseException) -> tuple[str, dict[str, Any]]:
    """The innermost message of a child's failure, and the result it attached (or {})."""
    cause: BaseException | None = exc
    while isinstance(cause, ChildWorkflowError) and cause.cause is not None:
        cause = cause.cause
    details: dict[str, Any] = {}
    if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], dict):
        details = cause.details[0]
    message = cause.message if isinstance(cause, FailureError) and cause.message else str(cause) or type(cause).__name__
    return details.get("error") or message, details


@workflow.defn(name="MigrationPlan")
class MigrationPlanWorkflow:
    """Every migration of a plan, in dependency order, independent ones in parallel, stopped or undone on failure."""

    def __init__(self) -> None:
        self._progress = PlanProgress(plan_id="", plan="", environment="")
        self._locks = ResourceLocks()
        self._progress.locks = self._locks.held

    @workflow.query(name="progress")
    def progress(self) -> PlanProgress:
        """The tree: every child with its workflow id and state."""
        self._progress.waiting_for = self._locks.waiting_for
        return self._progress

    @workflow.run
    async def run(self, params: dict[str, Any]) -> MigrationPlanResult:
        try:
            inp = MigrationPlanInput.model_validate(params)
        except ValidationError as exc:
            raise ApplicationError(f"invalid MigrationPlan input: {exc}", type="InvalidInput", non_retryable=True)
        plan_id = workflow.info().workflow_id
        group_of = {mid: n + 1 for n, group in enumerate(inp.levels) for mid in group}
        steps = {s.id: s for s in inp.steps}
        self._progress = PlanProgress(
            plan_id=plan_id, plan=inp.plan, environment=inp.environment, phase="pending", groups=len(inp.levels),
            steps=[StepProgress(id=s.id, type=s.type, workflow=s.workflow, group=group_of[s.id], child_id=f"{plan_id}.{s.id}")
                   for s in inp.steps],
        )  # fmt: skip
        result = MigrationPlanResult(
            plan_id=plan_id, plan=inp.plan, environment=inp.environment, digest=inp.digest, policy=inp.policy,
            dry_run=inp.dry_run, promoted_from=inp.promoted_from, started_at=workflow.now().timestamp(),
            steps=self._progress.steps,
        )  # fmt: skip
        state = {s.id: s for s in self._progress.steps}
        self._progress.locks = self._locks.held
        if not inp.dry_run:  # a dry run writes nothing: it takes no lock
            self._progress.phase = "locking"
            await self._locks.take(inp.resources(), plan_id, inp.wait_for_lock)
        try:
            await self._check_feasibility(inp, result)
            self._progress.phase = "running"
            return await self._run_groups(inp, steps, state, result)
        except ApplicationError as exc:
            if result.status != "completed":  # the plan's own failure: alert, then fail with the result attached
                await self._alert(inp, result)
            raise exc
        finally:
            await self._locks.release()

    async def _check_feasibility(self, inp: MigrationPlanInput, result: MigrationPlanResult) -> None:
        """Check every store, config and fleet again now (under the locks): a scheduled run has no CLI that did."""
        self._progress.phase = "validating"
        found = await workflow.execute_activity_method(
            PlanActivities.check_plan_feasibility, inp, start_to_close_timeout=timedelta(minutes=2), retry_policy=_RETRY,
        )  # fmt: skip
        if found.errors:
            result.status, result.failed_step, result.error = "failed", "(validation)", "; ".join(found.errors)
            for s in self._progress.steps:
                s.state = "skipped"
            self._finish(result)
            raise ApplicationError(f"plan {inp.plan} is not feasible: {result.error}", result, type="PlanInfeasible",
                                   non_retryable=True)

    async def _alert(self, inp: MigrationPlanInput, result: MigrationPlanResult) -> None:
        """Tell the alert sinks (webhooks, log) that the plan did not complete; a sink that fails does not change the outcome."""
        action = {"rolled_back": "completed steps undone newest first", "paused": "remaining groups left for a later run",
                  "rollback_failed": "the undo stopped: see the steps' states"}.get(result.status, "stopped; completed steps kept")
        alert = AlertInput(kind=result.status, migration_id=result.plan_id, at=workflow.now().timestamp(),
                           step=result.failed_step, error=result.error, error_type="MigrationPlan", action=action,
                           figures={"completed": len(result.completed_order), "undone": len(result.undone_order)})
        try:
            await workflow.execute_activity_method(AlertActivities.send_alert, alert, retry_policy=_RETRY,
                                                   start_to_close_timeout=timedelta(seconds=60))
        except Exception as exc:
            workflow.logger.warning("Alert for plan %s not delivered: %s", result.plan_id, exc)

    async def _run_groups(self, inp: MigrationPlanInput, steps: dict[str, ResolvedStep], state: dict[str, StepProgress],
                          result: MigrationPlanResult) -> MigrationPlanResult:
        for n, group in enumerate(inp.levels, 1):
            if inp.window_s is not None and workflow.now().timestamp() - result.started_at > inp.window_s:
                result.failed_step = "(window)"
                result.error = f"the maintenance window of {inp.window_s:g} s ended before group {n} of {len(inp.levels)}"
                break
            self._progress.group = n
            await asyncio.gather(*(self._run_child(steps[mid], state[mid], inp.dry_run, result) for mid in group))
            if result.failed_step is not None:
                break
        if result.failed_step is None:
            result.status = "dry_run" if inp.dry_run else "completed"
            return self._finish(result)
        for s in self._progress.steps:
            if s.state == "pending":
                s.state = "skipped"
        window_ended = result.failed_step == "(window)"
        if window_ended and inp.on_window_exceeded == "pause":
            result.status = "paused"  # completed steps stay; the skipped ones wait for a later run
        elif (inp.policy == "rollback" or window_ended) and not inp.dry_run:
            await self._roll_back(steps, state, result)
        else:
            result.status = "failed"
        self._finish(result)
        raise ApplicationError(f"plan {inp.plan} {result.status}: {result.failed_step}: {result.error}", result,
                               type="PlanRolledBack" if result.status == "rolled_back" else "PlanFailed", non_retryable=True)

    async def _run_child(self, step: ResolvedStep, state: StepProgress, dry_run: bool, result: MigrationPlanResult) -> None:
        child_input = dict(step.input, dry_run=True) if dry_run else dict(step.input)
        state.state = "running"
        try:
            child = await workflow.execute_child_workflow(
                step.workflow, child_input, id=state.child_id, parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            )  # fmt: skip
        except (ChildWorkflowError, asyncio.CancelledError) as exc:
            state.error, details = _child_failure(exc)
            state.child_status = details.get("status")
            state.state = "rolled_back" if state.child_status == "rolled_back" else "failed"
            state.figures = _figures(details)
            if result.failed_step is None:
                result.failed_step, result.error = step.id, state.error
            return
        child = child if isinstance(child, dict) else {}
        state.child_status = child.get("status")
        state.figures = _figures(child)
        state.state = "dry_run" if dry_run else "completed"
        result.completed_order.append(step.id)

    async def _roll_back(self, steps: dict[str, ResolvedStep], state: dict[str, StepProgress], result: MigrationPlanResult) -> None:
        """Undo the completed children newest first; one that cannot be undone (or whose undo fails) stops the unwinding."""
        self._progress.phase = "rolling_back"
        result.status = "rolled_back"

        async def unwind() -> None:
            for mid in reversed(result.completed_order):
                step, s = steps[mid], state[mid]
                if step.type not in REVERSIBLE:
                    s.state = "not_undoable"
                    s.error = f"a completed {step.type} is not undone by a plan: follow its manual rollback"
                    result.status = "rollback_failed"
                    return  # the older steps stay as they are: undoing them under it could break what it relies on
                s.state, s.rollback_id = "undoing", f"{s.child_id}-rollback"
                undo_input = {k: v for k, v in step.input.items() if k not in _FAULTS}
                undo_input.update(rollback_of=s.child_id, dry_run=False)
                if step.type == "custom" and s.figures.get("version"):
                    undo_input["version"] = s.figures["version"]
                try:
                    await workflow.execute_child_workflow(step.workflow, undo_input, id=s.rollback_id)
                except (ChildWorkflowError, asyncio.CancelledError) as exc:
                    s.state, (s.error, _) = "undo_failed", _child_failure(exc)
                    result.status = "rollback_failed"
                    return  # what is older than a failed undo stays, so the order of undoing is never broken
                s.state = "undone"
                result.undone_order.append(mid)

        await asyncio.shield(asyncio.ensure_future(unwind()))

    def _finish(self, result: MigrationPlanResult) -> MigrationPlanResult:
        result.duration_s = round(workflow.now().timestamp() - result.started_at, 3)
        self._progress.phase = "done"
        return result
