"""CustomMigration: run any extension as a saga.

resolve (record name and version) → validate → plan → (dry run stops) →
register the extension's rollback → apply in slices (each heartbeats its
checkpoint) → verify → done. Any failure after the rollback is registered
runs it. Every activity refuses a worker whose installed extension has
another major version than the one recorded at the start.

Like SessionMigration, a run writes its audit trail (``started`` with the
extension's name and version, each ``phase``, ``data_moved`` with the apply
figures, ``rollback``, ``ended``), alerts when it fails, rolls back or a
slice stalls, and, started on its own, locks the resources the extension
declares and its bindings name. Each is guarded by its patch
(``audit-trail``, ``alerts``, ``stall-alerts``, ``lone-locks``), so runs
started before them replay.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.extensions import ExtensionActivities
    from workflows.extension_models import (
        ApplyCursor,
        ApplyInput,
        CustomMigrationInput,
        CustomMigrationResult,
        ExtensionDescription,
        ExtensionProgress,
        StepInput,
    )
    from workflows.audit_trail import AuditTrail
    from workflows.locks import ResourceLocks
    from workflows.saga import Saga, failure_text, failure_type

_PERMANENT = [
    "InvalidInput", "BadInput", "ExtensionError", "ExtensionInvalid", "ExtensionVersionMismatch", "InjectedFailure",
    "StoreUnreachable", "StoreMissing", "UnknownStoreScheme",
]  # fmt: skip


def _retry(attempts: int) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=20),
        maximum_attempts=attempts,
        non_retryable_error_types=_PERMANENT,
    )


_STEP = {"start_to_close_timeout": timedelta(minutes=30), "heartbeat_timeout": timedelta(seconds=30)}
_SLICE = {"start_to_close_timeout": timedelta(minutes=10), "heartbeat_timeout": timedelta(seconds=10)}


@workflow.defn(name="CustomMigration")
class CustomMigrationWorkflow:
    """One extension's validate, plan, apply, verify, with its rollback on failure."""

    def __init__(self) -> None:
        self._progress = ExtensionProgress(migration_id="", phase="pending")
        self._rollback_requested = False
        self._apply_started: float | None = None
        self._audit = AuditTrail()
        self._locks = ResourceLocks()
        self._started_logged = False

    @workflow.query(name="progress")
    def progress(self) -> ExtensionProgress:
        """Phase, items done and total, rate and ETA."""
        return self._progress

    @workflow.signal(name="rollback")
    def request_rollback(self) -> None:
        """Stop at the next slice boundary and roll back."""
        self._rollback_requested = True

    @workflow.run
    async def run(self, params: dict[str, Any]) -> CustomMigrationResult:
        try:
            inp = CustomMigrationInput.model_validate(params)
        except ValidationError as exc:
            raise ApplicationError(f"invalid CustomMigration input: {exc}", type="InvalidInput", non_retryable=True)
        mid = workflow.info().workflow_id
        self._progress.migration_id = mid
        self._audit.actor, self._audit.host = inp.actor, inp.actor_host
        result = CustomMigrationResult(
            migration_id=mid, status="completed", extension=inp.extension, dry_run=inp.dry_run,
            started_at=workflow.now().timestamp(),
        )  # fmt: skip
        try:
            if inp.rollback_of:
                return await self._undo_run(inp, result)
            return await self._run(inp, mid, result)
        finally:
            await self._locks.release()

    async def _run(self, inp: CustomMigrationInput, mid: str, result: CustomMigrationResult) -> CustomMigrationResult:
        saga = Saga()
        try:
            await self._migrate(inp, mid, result, saga)
        except (Exception, asyncio.CancelledError) as exc:
            if failure_type(exc) == "ResourceLocked":  # refused at the start: nothing ran, the CLI names the holder
                await self._refused(inp, result, exc)
                raise
            result.error = failure_text(exc)
            result.error_type = failure_type(exc)
            result.failed_phase = self._progress.phase
            workflow.logger.warning("Custom migration %s failed: %s", mid, result.error)
            await self._unwind(saga, result)
            await self._finish(inp, result)
            raise ApplicationError(
                f"custom migration {result.status}: {result.error}",
                result,
                type="MigrationRolledBack" if result.rolled_back else "MigrationFailed",
                non_retryable=True,
            )
        result.status = "dry_run" if inp.dry_run else "completed"
        await self._finish(inp, result)
        return result

    async def _resolve(self, inp: CustomMigrationInput, run_id: str, result: CustomMigrationResult) -> StepInput:
        """Resolve the extension on a worker and record its name and version in the history."""
        step = StepInput(
            migration_id=run_id, extension=inp.extension, params=inp.params, bindings=inp.bindings,
            dry_run=inp.dry_run, max_per_second=inp.max_per_second, actor=inp.actor, actor_host=inp.actor_host,
        )  # fmt: skip
        self._progress.phase = "resolving"  # its entry would precede "started", which needs the version it finds
        found = await workflow.execute_activity_method(
            ExtensionActivities.describe_extension, step, retry_policy=_retry(3), **_STEP
        )
        # Every later step refuses a worker with another major version than this one.
        step.name, step.version = found.name, inp.version or found.version
        result.name, result.version, result.reference = found.name, step.version, found.reference
        self._progress.extension, self._progress.version = found.name, step.version
        self._log_started(inp, result)
        await self._lock(inp, found)
        return step

    def _log_started(self, inp: CustomMigrationInput, result: CustomMigrationResult) -> None:
        """The ``started`` entry: what was asked, and the extension as resolved (once; also when resolving failed)."""
        if self._started_logged:
            return
        self._started_logged = True
        asked = inp.model_dump(exclude_defaults=True, exclude={"actor", "actor_host"})
        self._audit.record("started", after={**asked, "name": result.name, "version": result.version, "reference": result.reference})

    async def _lock(self, inp: CustomMigrationInput, found: ExtensionDescription) -> None:
        """On its own (not in a plan, not a dry run): lock what the extension declares and the bindings name."""
        if workflow.info().parent is None and not inp.dry_run:
            self._set_phase("locking")
        if await self._locks.take_alone("custom", inp.model_dump(), inp.wait_for_lock, touches=found.resources):
            self._audit.record("locked", None, {"locks": list(self._locks.held)})

    async def _refused(self, inp: CustomMigrationInput, result: CustomMigrationResult, exc: BaseException) -> None:
        """Log a start refused by a lock (no alert: nothing ran), and end the run's trail."""
        self._audit.record("lock_refused", None, {"error": failure_text(exc)})
        result.duration_s = round(workflow.now().timestamp() - result.started_at, 3)
        self._set_phase("done")
        await self._audit.flush()

    async def _migrate(self, inp: CustomMigrationInput, mid: str, result: CustomMigrationResult, saga: Saga) -> None:
        step = await self._resolve(inp, mid, result)

        self._set_phase("validating")
        await workflow.execute_activity_method(ExtensionActivities.validate_extension, step, retry_policy=_retry(3), **_STEP)
        self._set_phase("planning")
        result.plan = await workflow.execute_activity_method(
            ExtensionActivities.plan_extension, step, retry_policy=_retry(3), **_STEP
        )
        self._progress.total = result.plan.total
        self._progress.message = result.plan.summary
        if inp.dry_run:
            return

        saga.add("rollback_extension", lambda: self._rollback(step, result))
        self._set_phase("applying")
        try:
            await self._apply(inp, step, result)
        finally:  # the figures as of the last finished slice, also when a later one failed
            plan = {"total": result.plan.total, "to_change": result.plan.to_change}
            self._audit.record("data_moved", plan, {"done": result.done, "changed": result.changed,
                                                    "checkpoints": result.checkpoints, "resumes": result.apply_resumes})
        self._check_rollback_request()
        if inp.verify:
            self._set_phase("verifying")
            report = await workflow.execute_activity_method(
                ExtensionActivities.verify_extension, step, retry_policy=_retry(5), **_STEP
            )
            result.verification = report
            if not report.ok:
                raise ApplicationError(
                    f"verification failed: {'; '.join(report.problems[:10])}", type="VerificationFailed", non_retryable=True
                )

    async def _apply(self, inp: CustomMigrationInput, step: StepInput, result: CustomMigrationResult) -> ApplyCursor:
        """Apply slice by slice; the result holds the figures of the last slice, also if a later one fails."""
        cursor = ApplyCursor()
        self._apply_started = workflow.now().timestamp()
        while not cursor.finished:
            self._check_rollback_request()
            cursor = await self._audit.watched(workflow.execute_activity_method(
                ExtensionActivities.apply_extension,
                ApplyInput(step=step, cursor=cursor, slice_seconds=inp.slice_seconds, fail_after_checkpoints=inp.fail_after_checkpoints),
                retry_policy=_retry(20),
                **_SLICE,
            ), inp.stall_alert_seconds, self._progress.model_dump)
            self._record_progress(cursor)
            if cursor.progress is not None:
                result.done, result.changed = cursor.progress.done, cursor.progress.changed
            result.checkpoints, result.apply_resumes = cursor.checkpoints, cursor.resumes
        if cursor.applied:
            result.done, result.changed = cursor.applied.done, cursor.applied.changed
        return cursor

    async def _rollback(self, step: StepInput, result: CustomMigrationResult) -> int:
        undone = await workflow.execute_activity_method(
            ExtensionActivities.rollback_extension, step, retry_policy=_retry(10), **_STEP
        )
        result.rollback_message = undone.message
        return undone.restored

    async def _undo_run(self, inp: CustomMigrationInput, result: CustomMigrationResult) -> CustomMigrationResult:
        """Roll back an earlier run from its journal, with the extension version it recorded."""
        assert inp.rollback_of is not None
        try:
            step = await self._resolve(inp, inp.rollback_of, result)
            self._set_phase("rolling_back")
            result.restored = await self._rollback(step, result)
        except (Exception, asyncio.CancelledError) as exc:
            if failure_type(exc) == "ResourceLocked":
                await self._refused(inp, result, exc)
                raise
            result.status = "rollback_failed"
            result.error, result.error_type = failure_text(exc), failure_type(exc)
            result.failed_phase = self._progress.phase
            await self._finish(inp, result)
            raise ApplicationError(
                f"rollback of {inp.rollback_of} failed: {result.error}", result, type="RollbackFailed", non_retryable=True
            )
        result.rolled_back = True
        result.status = "rolled_back"
        await self._finish(inp, result)
        return result

    async def _unwind(self, saga: Saga, result: CustomMigrationResult) -> None:
        if not saga.pending:
            result.status = "failed"
            return
        self._set_phase("rolling_back")
        try:
            undone = await saga.compensate()
            result.rolled_back = True
            result.restored = sum(undone)
            result.status = "rolled_back"
        except (Exception, asyncio.CancelledError) as exc:
            result.status = "rollback_failed"
            result.error = f"{result.error}; and the rollback failed: {failure_text(exc)}"

    def _check_rollback_request(self) -> None:
        if self._rollback_requested:
            raise ApplicationError("rollback requested by an operator", type="RollbackRequested", non_retryable=True)

    def _set_phase(self, phase: Any) -> None:
        workflow.logger.info("Phase %s -> %s", self._progress.phase, phase)
        p = self._progress
        self._audit.record("phase", {"phase": p.phase}, {"phase": phase, "done": p.done, "total": p.total})
        self._progress.phase = phase

    def _record_progress(self, cursor: ApplyCursor) -> None:
        p = cursor.progress
        if p is None:
            return
        elapsed = workflow.now().timestamp() - (self._apply_started or workflow.now().timestamp())
        rate = p.done / elapsed if elapsed > 0 else 0.0
        total = p.total if p.total is not None else self._progress.total
        self._progress.total = total
        self._progress.done = p.done
        self._progress.rate_per_s = round(rate, 1)
        self._progress.eta_s = round(max(total - p.done, 0) / rate, 1) if rate > 0 else None
        self._progress.message = f"{p.changed} changed, {cursor.checkpoints} checkpoints" + (f": {p.message}" if p.message else "")

    async def _finish(self, inp: CustomMigrationInput, result: CustomMigrationResult) -> None:
        result.duration_s = round(workflow.now().timestamp() - result.started_at, 3)
        self._log_started(inp, result)  # when resolving failed, the trail still starts
        self._set_phase("done")
        if result.rolled_back or result.status == "rollback_failed":
            before = {"failed_phase": result.failed_phase, "error_type": result.error_type}
            self._audit.record("rollback", before, {"status": result.status, "restored": result.restored})
        self._audit.record("ended", None, result.audit_state())
        await self._audit.flush()
