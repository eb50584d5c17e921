"""SessionMigration: move sessions between stores as a saga.

validate both ends → record a backup point → copy in slices (each activity
heartbeats its cursor) → finalize the target → verify by digest → done.
Any failure after the backup point runs the compensation registered before
the copy, which puts the target back exactly as it was found.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.sessions import SessionActivities
    from deployment.sessions.stores.base import redact_url
    from workflows.saga import Saga
    from workflows.session_models import (
        CopyCursor,
        CopyInput,
        MigrationProgress,
        SessionMigrationInput,
        SessionMigrationResult,
        StoresInput,
        TargetInput,
        VerifyInput,
    )

_PERMANENT = ["TargetNotCompatible", "QuotaExceeded", "SnapshotParseError", "InvalidInput", "InjectedFailure"]


def _retry(attempts: int) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=20),
        maximum_attempts=attempts,
        non_retryable_error_types=_PERMANENT,
    )


_SHORT = {"start_to_close_timeout": timedelta(minutes=30), "heartbeat_timeout": timedelta(seconds=30)}
_COPY = {"start_to_close_timeout": timedelta(minutes=10), "heartbeat_timeout": timedelta(seconds=10)}


def _innermost(exc: BaseException) -> BaseException:
    while isinstance(exc, ActivityError) and exc.cause is not None:
        exc = exc.cause
    return exc


def failure_text(exc: BaseException) -> str:
    """The innermost message of an activity or application failure."""
    exc = _innermost(exc)
    if isinstance(exc, asyncio.CancelledError):
        return "the migration was cancelled"
    return str(exc) or type(exc).__name__


def failure_type(exc: BaseException) -> str:
    """The innermost failure's type: the ApplicationError type, else the class name."""
    exc = _innermost(exc)
    if isinstance(exc, ApplicationError) and exc.type:
        return exc.type
    return "Cancelled" if isinstance(exc, asyncio.CancelledError) else type(exc).__name__


@workflow.defn(name="SessionMigration")
class SessionMigrationWorkflow:
    """Sessions from one store to another, nothing lost, expiry kept, undone on failure."""

    def __init__(self) -> None:
        self._progress = MigrationProgress(migration_id="", phase="pending")
        self._rollback_requested = False
        self._copy_started: float | None = None

    @workflow.query(name="progress")
    def progress(self) -> MigrationProgress:
        """Phase, sessions done and total, rate and ETA."""
        return self._progress

    @workflow.signal(name="rollback")
    def request_rollback(self) -> None:
        """Stop at the next slice boundary and undo what was written."""
        self._rollback_requested = True

    @workflow.run
    async def run(self, params: dict[str, Any]) -> SessionMigrationResult:
        try:
            inp = SessionMigrationInput.model_validate(params)
        except ValidationError as exc:
            raise ApplicationError(f"invalid SessionMigration input: {exc}", type="InvalidInput", non_retryable=True)
        mid = workflow.info().workflow_id
        self._progress.migration_id = mid
        result = SessionMigrationResult(
            migration_id=mid,
            status="completed",
            source=redact_url(inp.source),
            target=redact_url(inp.target),
            dry_run=inp.dry_run,
            started_at=workflow.now().timestamp(),
        )
        if inp.rollback_of:
            return await self._undo_completed(inp, result)

        saga = Saga()
        try:
            await self._migrate(inp, mid, result, saga)
        except (Exception, asyncio.CancelledError) as exc:
            result.error = failure_text(exc)
            result.error_type = failure_type(exc)
            result.failed_phase = self._progress.phase
            workflow.logger.warning("Session migration %s failed: %s", mid, result.error)
            await self._unwind(saga, result)
            self._finish(result)
            raise ApplicationError(
                f"session migration {result.status}: {result.error}",
                result,
                type="MigrationRolledBack" if result.rolled_back else "MigrationFailed",
                non_retryable=True,
            )
        result.status = "dry_run" if inp.dry_run else "completed"
        self._finish(result)
        return result

    async def _migrate(self, inp: SessionMigrationInput, mid: str, result: SessionMigrationResult, saga: Saga) -> None:
        self._set_phase("validating")
        found = await workflow.execute_activity_method(
            SessionActivities.inspect_session_stores,
            StoresInput(
                migration_id=mid, source=inp.source, target=inp.target, batch_size=inp.batch_size, overwrite=inp.overwrite
            ),
            retry_policy=_retry(3),
            **_SHORT,
        )
        result.sessions_total = found.source_total
        self._progress.total = found.source_total
        target = TargetInput(migration_id=mid, target=inp.target)
        if not inp.dry_run:
            self._set_phase("backup")
            result.target_before = await workflow.execute_activity_method(
                SessionActivities.record_backup_point, target, retry_policy=_retry(5), **_SHORT
            )
            saga.add("undo_session_copy", lambda: self._undo(target))

        self._set_phase("copying")
        cursor = await self._copy(inp, mid)
        result.sessions_copied = 0 if inp.dry_run else cursor.copied
        result.sessions_skipped_expired = cursor.skipped_expired
        result.batches = cursor.batches
        result.copy_resumes = cursor.resumes
        result.source_digest = cursor.digest
        if inp.dry_run:
            return

        self._set_phase("finalizing")
        await workflow.execute_activity_method(
            SessionActivities.finalize_session_target, target, retry_policy=_retry(5), **_SHORT
        )
        self._check_rollback_request()
        if inp.verify:
            self._set_phase("verifying")
            report = await workflow.execute_activity_method(
                SessionActivities.verify_session_stores,
                VerifyInput(
                    source=inp.source,
                    target=inp.target,
                    margin_seconds=inp.verify_margin_seconds,
                    batch_size=inp.batch_size,
                    tolerate_extra=bool(result.target_before and result.target_before.target_count),
                ),
                retry_policy=_retry(5),
                **_SHORT,
            )
            result.verification = report
            result.source_digest, result.target_digest = report.source_digest, report.target_digest
            if not report.ok:
                raise ApplicationError(
                    f"verification failed: {report.missing_count} missing, {report.mismatched_count} mismatched, "
                    f"{report.extra_count} extra (missing: {report.missing[:10]}, mismatched: {report.mismatched[:10]}, "
                    f"extra: {report.extra[:10]})",
                    type="VerificationFailed",
                    non_retryable=True,
                )
            self._check_rollback_request()

    async def _copy(self, inp: SessionMigrationInput, mid: str) -> CopyCursor:
        cursor = CopyCursor()
        self._copy_started = workflow.now().timestamp()
        while not cursor.finished:
            self._check_rollback_request()
            cursor = await workflow.execute_activity_method(
                SessionActivities.copy_session_batches,
                CopyInput(
                    migration_id=mid,
                    source=inp.source,
                    target=inp.target,
                    batch_size=inp.batch_size,
                    cursor=cursor,
                    slice_seconds=inp.slice_seconds,
                    dry_run=inp.dry_run,
                    fail_after_batches=inp.fail_after_batches,
                ),
                retry_policy=_retry(20),
                **_COPY,
            )
            self._record_copy_progress(cursor)
        return cursor

    async def _undo(self, target: TargetInput) -> int:
        undone = await workflow.execute_activity_method(
            SessionActivities.undo_session_copy, target, retry_policy=_retry(10), **_SHORT
        )
        return undone.restored

    async def _unwind(self, saga: Saga, result: SessionMigrationResult) -> None:
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

    async def _undo_completed(self, inp: SessionMigrationInput, result: SessionMigrationResult) -> SessionMigrationResult:
        assert inp.rollback_of is not None
        self._set_phase("rolling_back")
        try:
            result.restored = await self._undo(
                TargetInput(migration_id=inp.rollback_of, target=inp.target, require_journal=True)
            )
        except (Exception, asyncio.CancelledError) as exc:
            result.status = "rollback_failed"
            result.error, result.error_type = failure_text(exc), failure_type(exc)
            result.failed_phase = "rolling_back"
            self._finish(result)
            raise ApplicationError(
                f"rollback of {inp.rollback_of} failed: {result.error}", result, type="RollbackFailed", non_retryable=True
            )
        result.rolled_back = True
        result.status = "rolled_back"
        self._finish(result)
        return result

    def _check_rollback_request(self) -> None:
        if self._rollback_requested:
            raise ApplicationError("rollback requested by an operator", type="RollbackRequested", non_retryable=True)

    def _set_phase(self, phase: Any) -> None:
        workflow.logger.info("Phase %s -> %s", self._progress.phase, phase)
        self._progress.phase = phase

    def _record_copy_progress(self, cursor: CopyCursor) -> None:
        elapsed = workflow.now().timestamp() - (self._copy_started or workflow.now().timestamp())
        rate = cursor.scanned / elapsed if elapsed > 0 else 0.0
        remaining = max(self._progress.total - cursor.scanned, 0)
        self._progress.done = cursor.scanned
        self._progress.rate_per_s = round(rate, 1)
        self._progress.eta_s = round(remaining / rate, 1) if rate > 0 else None
        self._progress.message = f"{cursor.copied} copied, {cursor.skipped_expired} expired skipped"

    def _finish(self, result: SessionMigrationResult) -> None:
        result.duration_s = round(workflow.now().timestamp() - result.started_at, 3)
        self._set_phase("done")
