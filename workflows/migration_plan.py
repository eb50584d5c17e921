"""MigrationPlan: run a plan's migrations as child workflows, group by group.

The migrations of one group (a topological level) run in parallel; a group
starts when the one before it has completed.  When a child fails (its own
saga has rolled it back by then), no further group starts; the children of
the failing group still running are left to finish.  Then, by the plan's
policy, ``stop`` leaves completed children in place, and ``rollback`` undoes
them newest first, each by a later run of its own workflow with
``rollback_of`` (``<child id>-rollback``).  ``dry_run`` is passed to every child.
With a maintenance window (``window_s``), no group starts once it has ended:
a ``window_exceeded`` alert goes out, and the run rolls back or pauses, by
``on_window_exceeded``.  A paused run stays open, locks held, and waits
(durably, as long as it takes) for the ``resume`` signal (``plan resume``),
which starts the remaining groups in a new window, or for ``cancel``
(``plan cancel [--rollback]``), which ends it keeping or undoing the completed
steps.  ``cancel`` (and ``rollback``) sent to a running plan stop it before
its next group (the ``plan-cancel`` patch).  Runs that reached their window before this existed ended as
``paused`` at once (the ``plan-window`` patch).

Every action goes to the audit log (:class:`workflows.audit_trail.AuditTrail`):
``started`` (with ``schedule_fired``), ``locks_taken``, each step's
``step_started`` / ``step_finished`` / ``step_failed`` with its timing and
figures, ``window_exceeded``, ``paused`` / ``resumed`` / ``cancelled``,
``rollback`` and ``ended``, whose alert (failure, rollback) is the plan's.
Runs started before the plan had an audit trail record nothing and alert
directly (the ``audit-trail`` patch).  With ``search_attributes`` (the
``plan-index`` patch) the run is indexed by ``MigrationType``,
``MigrationPhase``, ``Environment`` and ``PlanId`` (its own id), and its
children start with ``Environment`` and ``PlanId``.

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
    from workflows import plan_audit
    from workflows.audit_models import AlertInput
    from workflows.audit_trail import PATCH as AUDIT_PATCH, AuditTrail
    from workflows.locks import ResourceLocks
    from workflows.plan_models import (
        CancelInput, MigrationPlanInput, MigrationPlanResult, PlanProgress, ResumeInput, StepProgress,
    )  # fmt: skip
    from workflows.saga import failure_text, failure_type
    from workflows.search_attributes import ENVIRONMENT, MIGRATION_PHASE, MIGRATION_TYPE, PLAN_ID

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


WINDOW_PATCH = "plan-window"  # the window_exceeded alert, and a paused run that waits for resume or cancel
INDEX_PATCH = "plan-index"  # search attributes on the plan and its children, when the input asks
CANCEL_PATCH = "plan-cancel"  # a cancel (or rollback) signal stops the run before its next group


@workflow.defn(name="MigrationPlan")
class MigrationPlanWorkflow:
    """Every migration of a plan, in dependency order, independent ones in parallel, stopped or undone on failure."""

    def __init__(self) -> None:
        self._progress = PlanProgress(plan_id="", plan="", environment="")
        self._locks = ResourceLocks()
        self._progress.locks = self._locks.held
        self._audit = AuditTrail()
        self._audited = False
        self._indexed = False
        self._resume: ResumeInput | None = None
        self._cancel: CancelInput | None = None
        self._cancelled = False  # a cancel this run acts on

    @workflow.query(name="progress")
    def progress(self) -> PlanProgress:
        """The tree: every child with its workflow id and state."""
        self._progress.waiting_for = self._locks.waiting_for
        return self._progress

    @workflow.signal(name="resume")
    def resume(self, params: dict[str, Any] | None = None) -> None:
        """A paused run goes on with the groups it has not started, in a new window (ignored unless paused)."""
        if self._progress.phase == "paused":
            self._resume = ResumeInput.model_validate(params or {})

    @workflow.signal(name="cancel")
    def cancel(self, params: dict[str, Any] | None = None) -> None:
        """Start no further group; keep the completed steps, or with ``rollback`` undo them newest first."""
        if self._cancel is None:
            self._cancel = CancelInput.model_validate(params or {})

    @workflow.signal(name="rollback")
    def request_rollback(self) -> None:
        """``snakepit-migrate rollback PLAN_ID``: cancel, undoing the completed steps."""
        self.cancel({"rollback": True})

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
        self._start_trail(inp, result)
        try:
            if not inp.dry_run:  # a dry run writes nothing: it takes no lock
                self._set_phase("locking")
                await self._locks.take(inp.resources(), plan_id, inp.wait_for_lock)
                self._audit.record("locks_taken", None, {"locks": list(self._locks.held)})
            await self._check_feasibility(inp, result)
            self._set_phase("running")
            return await self._run_groups(inp, steps, state, result)
        except ApplicationError as exc:
            if result.status != "completed" and not self._audited:  # runs without a trail alert here; others from "ended"
                await self._alert(inp, result)
            self._outcome(result, exc)
            raise exc
        except (Exception, asyncio.CancelledError) as exc:
            self._outcome(result, exc)
            raise
        finally:
            await self._locks.release()
            await self._end_trail(inp, result)

    def _start_trail(self, inp: MigrationPlanInput, result: MigrationPlanResult) -> None:
        """Who started the run and what fired it into the audit log; index the run when its input asks."""
        self._audited = workflow.patched(AUDIT_PATCH)
        self._audit.actor, self._audit.host = inp.actor, inp.actor_host
        result.schedule_id = plan_audit.schedule_of(result.plan_id, inp, workflow.info().typed_search_attributes)
        self._audit.record("started", None, plan_audit.started_state(inp, result.schedule_id))
        if result.schedule_id:
            self._audit.record("schedule_fired", None, {"schedule_id": result.schedule_id, "workflow_id": result.plan_id})
        self._indexed = inp.search_attributes and workflow.patched(INDEX_PATCH)
        if self._indexed:
            workflow.upsert_search_attributes([
                MIGRATION_TYPE.value_set("MigrationPlan"), ENVIRONMENT.value_set(inp.environment),
                PLAN_ID.value_set(result.plan_id), MIGRATION_PHASE.value_set("pending"),
            ])  # fmt: skip
            workflow.upsert_memo(plan_audit.memo(inp, "running"))

    def _outcome(self, result: MigrationPlanResult, exc: BaseException) -> None:
        """A failure that is not the plan's own outcome (a lock refusal, a cancellation) is still its end: say so."""
        if result.status == "completed":
            result.status, result.error = "failed", failure_text(exc, "the plan was cancelled")
            result.failed_step = result.failed_step or f"({self._progress.phase})"
        result.error_type = failure_type(exc)

    async def _end_trail(self, inp: MigrationPlanInput, result: MigrationPlanResult) -> None:
        """The ``ended`` entry (which raises the alert of a plan that did not complete), the memo, and every entry written."""
        if not result.duration_s:
            result.duration_s = round(workflow.now().timestamp() - result.started_at, 3)
        self._audit.record("ended", None, plan_audit.ended_state(result))
        if self._indexed:
            workflow.upsert_memo(plan_audit.memo(inp, result.status))
        await self._audit.flush()

    def _set_phase(self, phase: Any) -> None:
        self._progress.phase = phase
        if self._indexed:
            workflow.upsert_search_attributes([MIGRATION_PHASE.value_set(phase)])

    async def _check_feasibility(self, inp: MigrationPlanInput, result: MigrationPlanResult) -> None:
        """Check every store, config and fleet again now (under the locks): a scheduled run has no CLI that did."""
        self._set_phase("validating")
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
        """Runs without an audit trail: tell the alert sinks (webhooks, log) that the plan did not complete; a sink that
        fails does not change the outcome."""
        alert = AlertInput(kind=result.status, migration_id=result.plan_id, at=workflow.now().timestamp(),
                           step=result.failed_step, error=result.error, error_type="MigrationPlan",
                           action=plan_audit.action_taken(result),
                           figures={"completed": len(result.completed_order), "undone": len(result.undone_order)})
        try:
            await workflow.execute_activity_method(AlertActivities.send_alert, alert, retry_policy=_RETRY,
                                                   start_to_close_timeout=timedelta(seconds=60))
        except Exception as exc:
            workflow.logger.warning("Alert for plan %s not delivered: %s", result.plan_id, exc)

    async def _run_groups(self, inp: MigrationPlanInput, steps: dict[str, ResolvedStep], state: dict[str, StepProgress],
                          result: MigrationPlanResult) -> MigrationPlanResult:
        window_s, window_from = inp.window_s, result.started_at
        n = 0
        while n < len(inp.levels):
            if self._cancel_asked():
                result.failed_step = "(cancelled)"
                result.error = f"cancelled by an operator before group {n + 1} of {len(inp.levels)}"
                break
            if window_s is not None and workflow.now().timestamp() - window_from > window_s:
                result.failed_step = "(window)"
                result.error = plan_audit.window_error(window_s, n + 1, len(inp.levels))
                if not workflow.patched(WINDOW_PATCH):
                    break
                new_window = await self._window_ended(inp, result, n + 1, window_s)
                if new_window is None:
                    break
                result.failed_step = result.error = None
                window_s, window_from = new_window, workflow.now().timestamp()
                continue
            n += 1
            self._progress.group = n
            await asyncio.gather(*(self._run_child(inp, steps[mid], state[mid], result) for mid in inp.levels[n - 1]))
            if result.failed_step is not None:
                break
        if result.failed_step is None:
            result.status = "dry_run" if inp.dry_run else "completed"
            return self._finish(result)
        for s in self._progress.steps:
            if s.state == "pending":
                s.state = "skipped"
        window_ended = result.failed_step == "(window)"
        if self._cancelled:
            assert self._cancel is not None
            self._audit.record("cancelled", None, {**self._cancel.model_dump(), "before_group": n + 1})
        if self._cancelled and not (self._cancel and self._cancel.rollback):
            result.status = "cancelled"
        elif window_ended and inp.on_window_exceeded == "pause":
            result.status = "paused"  # a run from before the plan-window patch: completed steps stay, the rest wait
        elif (inp.policy == "rollback" or window_ended or self._cancelled) and not inp.dry_run:
            await self._roll_back(inp, steps, state, result)
        else:
            result.status = "failed"
        self._finish(result)
        raise ApplicationError(f"plan {inp.plan} {result.status}: {result.failed_step}: {result.error}", result,
                               type="PlanRolledBack" if result.status == "rolled_back" else "PlanFailed", non_retryable=True)

    async def _window_ended(self, inp: MigrationPlanInput, result: MigrationPlanResult, group: int, window_s: float) -> float | None:
        """Alert; then either give up (rollback policy, or cancelled while paused): None, or resume: the new window."""
        alert = plan_audit.window_alert(result, inp, group, window_s, workflow.now().timestamp())
        self._audit.record("window_exceeded", None, {**alert.figures, "window_s": window_s, "action": alert.action})
        self._audit.alert(alert)
        if inp.on_window_exceeded == "rollback":
            return None
        pause: dict[str, Any] = {"group": group, "window_s": window_s, "at": workflow.now().timestamp()}
        result.pauses.append(pause)
        self._progress.paused, self._progress.pauses = alert.action, self._progress.pauses + 1
        self._set_phase("paused")
        self._audit.record("paused", None, {"group": group, "skipped": alert.figures["skipped"]})
        await workflow.wait_condition(lambda: self._resume is not None or self._cancel is not None)
        self._progress.paused = None
        self._set_phase("running")
        if self._cancel is not None:  # cancel wins over a resume sent with it (the cancel patch came with the pause)
            self._cancelled = True
            pause["ended_by"] = "cancel"
            result.failed_step = "(cancelled)"
            result.error = f"cancelled by {self._cancel.actor or 'an operator'} while paused: {result.error}"
            return None
        resumed, self._resume = self._resume, None
        assert resumed is not None
        pause.update(resumed_at=workflow.now().timestamp(), resumed_by=resumed.actor)
        new_window = resumed.window_s or window_s
        self._audit.record("resumed", None, {"group": group, "window_s": new_window, "by": resumed.actor, "host": resumed.actor_host})
        return new_window

    def _cancel_asked(self) -> bool:
        """Whether a cancel (or rollback) signal stops the run now; runs from before it ignore one (the cancel patch)."""
        if self._cancel is not None and not self._cancelled:
            self._cancelled = workflow.patched(CANCEL_PATCH)
        return self._cancelled

    async def _run_child(self, inp: MigrationPlanInput, step: ResolvedStep, state: StepProgress, result: MigrationPlanResult) -> None:
        child_input = dict(step.input, dry_run=True) if inp.dry_run else dict(step.input)
        state.state = "running"
        started = workflow.now().timestamp()
        self._audit.record("step_started", None, {"step": step.id, "type": step.type, "workflow": step.workflow,
                                                  "child_id": state.child_id, "group": state.group})
        try:
            child = await workflow.execute_child_workflow(
                step.workflow, child_input, id=state.child_id, parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                **self._child_index(inp, step),
            )  # fmt: skip
        except (ChildWorkflowError, asyncio.CancelledError) as exc:
            state.error, details = _child_failure(exc)
            state.child_status = details.get("status")
            state.state = "rolled_back" if state.child_status == "rolled_back" else "failed"
            state.figures = _figures(details)
            if result.failed_step is None:
                result.failed_step, result.error = step.id, state.error
            self._step_ended("step_failed", state, started)
            return
        child = child if isinstance(child, dict) else {}
        state.child_status = child.get("status")
        state.figures = _figures(child)
        state.state = "dry_run" if inp.dry_run else "completed"
        result.completed_order.append(step.id)
        self._step_ended("step_finished", state, started)

    def _step_ended(self, event: str, state: StepProgress, started: float) -> None:
        state.duration_s = round(workflow.now().timestamp() - started, 3)
        self._audit.record(event, None, {
            "step": state.id, "child_id": state.child_id, "state": state.state, "child_status": state.child_status,
            "duration_s": state.duration_s, "error": state.error, "figures": state.figures,
        })  # fmt: skip

    def _child_index(self, inp: MigrationPlanInput, step: ResolvedStep) -> dict[str, Any]:
        """``search_attributes=`` for a child of an indexed plan; nothing otherwise (commands stay as they were)."""
        if not self._indexed:
            return {}
        return {"search_attributes": plan_audit.child_attributes(inp, self._progress.plan_id, step.workflow)}

    async def _roll_back(self, inp: MigrationPlanInput, steps: dict[str, ResolvedStep], state: dict[str, StepProgress],
                         result: MigrationPlanResult) -> None:
        """Undo the completed children newest first; one that cannot be undone (or whose undo fails) stops the unwinding."""
        self._set_phase("rolling_back")
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
                    await workflow.execute_child_workflow(step.workflow, undo_input, id=s.rollback_id, **self._child_index(inp, step))
                except (ChildWorkflowError, asyncio.CancelledError) as exc:
                    s.state, (s.error, _) = "undo_failed", _child_failure(exc)
                    result.status = "rollback_failed"
                    return  # what is older than a failed undo stays, so the order of undoing is never broken
                s.state = "undone"
                result.undone_order.append(mid)

        await asyncio.shield(asyncio.ensure_future(unwind()))
        self._audit.record("rollback", {"failed_step": result.failed_step, "completed": list(result.completed_order)},
                           {"status": result.status, "undone": list(result.undone_order)})

    def _finish(self, result: MigrationPlanResult) -> MigrationPlanResult:
        result.duration_s = round(workflow.now().timestamp() - result.started_at, 3)
        self._set_phase("done")
        return result
