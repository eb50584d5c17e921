"""SessionMigration: move sessions between stores as a saga.

validate both ends → record a backup point → copy in slices (each activity
heartbeats its cursor) → finalize the target → verify by digest → done.
Any failure after the backup point runs the compensation registered before
the copy, which puts the target back exactly as it was found.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from collections.abc import Callable
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.fleet import FleetActivities
    from activities.session_routing import SessionRoutingActivities
    from workflows.fleet_models import MarkInput
    from activities.sessions import SessionActivities
    from deployment.sessions.partition import Partition
    from deployment.sessions.stores.base import redact_url
    from workflows.audit_trail import AuditTrail
    from workflows.search_attributes import MigrationIndex
    from workflows.saga import Saga, failure_text, failure_type
    from workflows.locks import ResourceLocks
    from workflows.lone_locks import lock_logged
    from workflows.session_copy import PartitionedCopy
    from workflows.session_models import (
        AckInput,
        CopyCursor,
        CopyInput,
        CopyResume,
        CopySettings,
        MigrationProgress,
        ReconfigureInput,
        RoutingInput,
        SessionMigrationInput,
        SessionMigrationResult,
        StoresInput,
        TargetInput,
        VerifyInput,
    )

_PERMANENT = [
    "TargetNotCompatible", "QuotaExceeded", "SnapshotParseError", "InvalidInput", "InjectedFailure",
    "RoutingNotAcknowledged", "BadInput", "CorruptRecord",
]  # fmt: skip


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


@workflow.defn(name="SessionMigration")
class SessionMigrationWorkflow:
    """Sessions from one store to another, nothing lost, expiry kept, undone on failure."""

    def __init__(self) -> None:
        self._progress = MigrationProgress(migration_id="", phase="pending")
        self._rollback_requested = False
        self._copy_started: float | None = None
        self._epoch = 0  # the routing epoch last published (zero-downtime mode)
        self._audit = AuditTrail()
        self._index = MigrationIndex()
        self._phase_since: float | None = None  # when the current phase began (workflow time)
        self._copied_digest: str | None = None  # what the copy wrote into an empty target, for verification
        self._locks = ResourceLocks()
        self._partitioned = PartitionedCopy(CopySettings(batch_size=500, parallelism=1))  # settings from the input in run()

    @workflow.query(name="progress")
    def progress(self) -> MigrationProgress:
        """Phase, sessions done and total, rate and ETA."""
        return self._progress

    @workflow.signal(name="rollback")
    def request_rollback(self) -> None:
        """Stop at the next slice boundary and undo what was written."""
        self._rollback_requested = True

    @workflow.update(name="reconfigure")
    def reconfigure(self, change: ReconfigureInput) -> CopySettings:
        """Change the rate limit, batch size or parallelism of the copy; slices started from now on use them."""
        settings = self._partitioned.apply(change)
        self._progress.settings = settings
        return settings

    @reconfigure.validator
    def _check_reconfigure(self, change: ReconfigureInput) -> None:
        self._partitioned.check(change, finished=self._progress.phase == "done")

    @workflow.signal(name="pause")
    def pause(self) -> None:
        """Start no new copy slice until ``resume`` (running slices finish theirs)."""
        self._set_paused(True)

    @workflow.signal(name="resume")
    def resume(self) -> None:
        """Go on copying after a ``pause``."""
        self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        self._partitioned.settings = self._partitioned.settings.model_copy(update={"paused": paused})
        self._progress.settings = self._partitioned.settings

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
            started_at=inp.resume.started_at if inp.resume else workflow.now().timestamp(),
        )
        self._partitioned.settings = inp.resume.settings if inp.resume else CopySettings(
            batch_size=inp.batch_size, parallelism=inp.parallelism, rate_limit_per_s=inp.rate_limit_per_s
        )
        self._audit.actor, self._audit.host = inp.actor, inp.actor_host
        asked = inp.model_dump(exclude_defaults=True, exclude={"actor", "actor_host", "resume"})
        if inp.resume is None:  # a run continued as new was started already
            self._audit.record("started", after={**asked, "source": result.source, "target": result.target})
        self._index.enabled = inp.search_attributes
        self._index.start("SessionMigration", f"sessions {result.source} -> {result.target}: running")
        # A run alone locks its stores (and fleet); a continued run takes them again (they ended with the run before).
        await lock_logged(self._locks, self._audit, "sessions", inp.model_dump(exclude={"resume"}), inp.wait_for_lock)
        try:
            return await self._run_inner(inp, mid, result)
        finally:
            if not self._partitioned.handover:  # continuing as new: the locks end with this run, the next takes them
                await self._locks.release()

    async def _run_inner(self, inp: SessionMigrationInput, mid: str, result: SessionMigrationResult) -> SessionMigrationResult:
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
            if inp.fleet and saga.pending:
                await self._mark_fleet(inp, "rolling_back")
            await self._unwind(saga, result)
            await self._mark_fleet(inp, None)
            await self._finish(result)
            raise ApplicationError(
                f"session migration {result.status}: {result.error}",
                result,
                type="MigrationRolledBack" if result.rolled_back else "MigrationFailed",
                non_retryable=True,
            )
        result.status = "dry_run" if inp.dry_run else "completed"
        await self._mark_fleet(inp, None)
        await self._finish(result)
        return result

    async def _migrate(self, inp: SessionMigrationInput, mid: str, result: SessionMigrationResult, saga: Saga) -> None:
        target = TargetInput(migration_id=mid, target=inp.target)
        if inp.resume is not None:  # continued as new mid-copy: validated and backed up by the first run
            result.target_before = inp.resume.target_before
            result.sessions_total = self._progress.total = inp.resume.sessions_total
            self._progress.continued = inp.resume.continued
        else:
            await self._validate(inp, mid, result)
        if not inp.dry_run:
            if inp.resume is None:
                self._set_phase("backup")
                result.target_before = await workflow.execute_activity_method(
                    SessionActivities.record_backup_point, target, retry_policy=_retry(5), **_SHORT
                )
            # the journal lives in the target, so a continued run compensates exactly as the first would
            saga.add("undo_session_copy", lambda: self._undo(target))
        if inp.zero_downtime and not inp.dry_run:
            await self._migrate_live(inp, mid, result, saga)
            return

        self._set_phase("copying")
        await self._copy_into(inp, mid, result)
        if inp.dry_run:
            return
        self._set_phase("finalizing")
        await workflow.execute_activity_method(
            SessionActivities.finalize_session_target, target, retry_policy=_retry(5), **_SHORT
        )
        self._check_rollback_request()
        if inp.verify:
            await self._verify(inp, result, settle_s=None)

    async def _migrate_live(self, inp: SessionMigrationInput, mid: str, result: SessionMigrationResult, saga: Saga) -> None:
        """Dual writes → backfill → verify → switch reads → soak → finalize, with live traffic throughout."""
        current = await workflow.execute_activity_method(
            SessionRoutingActivities.get_session_routing, inp.source, retry_policy=_retry(5), **_SHORT
        )
        if current.mode != "source":
            raise ApplicationError(
                f"the source is already routed {current.mode} by migration {current.migration_id}",
                type="TargetNotCompatible",
                non_retryable=True,
            )
        self._epoch = current.epoch
        # Registered before dual writes start: back to source, then the target as it was found.
        saga.add("route_to_source", lambda: self._route(inp, mid, "source"))

        await self._phase(inp, "dual_write")
        await self._route(inp, mid, "dual_write")
        await self._phase(inp, "copying")
        await self._copy_into(inp, mid, result, only_newer=True)
        self._check_rollback_request()
        await self._verify(inp, result, settle_s=0.5)
        await self._phase(inp, "switching_reads")
        await self._route(inp, mid, "dual_write_read_target")
        await self._phase(inp, "soaking")
        if workflow.patched("interruptible-soak"):
            try:  # a durable timer an operator's rollback cuts short
                await workflow.wait_condition(lambda: self._rollback_requested, timeout=timedelta(seconds=inp.soak_seconds))
            except asyncio.TimeoutError:
                pass
        else:  # runs started before the patch keep their plain timer
            await workflow.sleep(timedelta(seconds=inp.soak_seconds))
        self._check_rollback_request()
        await self._phase(inp, "finalizing")
        await self._route(inp, mid, "target")
        saga.clear()  # every instance now writes only the target: undoing the copy would lose those writes
        await workflow.execute_activity_method(
            SessionRoutingActivities.purge_session_tombstones,
            TargetInput(migration_id=mid, target=inp.target),
            retry_policy=_retry(10),
            **_SHORT,
        )

    async def _phase(self, inp: SessionMigrationInput, phase: Any) -> None:
        """Enter a phase and, when a fleet is named, show it in the fleet's health."""
        self._set_phase(phase)
        await self._mark_fleet(inp, phase)

    async def _mark_fleet(self, inp: SessionMigrationInput, phase: str | None) -> None:
        if inp.fleet:
            await workflow.execute_activity_method(
                FleetActivities.set_fleet_migration,
                MarkInput(fleet=inp.fleet, migration_id=workflow.info().workflow_id, phase=phase),
                retry_policy=_retry(5),
                start_to_close_timeout=timedelta(seconds=30),
            )

    async def _route(self, inp: SessionMigrationInput, mid: str, mode: str) -> None:
        """Publish a routing mode at the next epoch and wait until every live instance follows it."""
        self._epoch += 1
        epoch = self._epoch
        await workflow.execute_activity_method(
            SessionRoutingActivities.set_session_routing,
            RoutingInput(source=inp.source, mode=mode, epoch=epoch, target=inp.target, migration_id=mid),  # type: ignore[arg-type]
            retry_policy=_retry(10),
            **_SHORT,
        )
        await workflow.execute_activity_method(
            SessionRoutingActivities.wait_for_routing_acks,
            AckInput(source=inp.source, epoch=epoch, timeout_seconds=inp.ack_timeout_seconds),
            retry_policy=_retry(3),
            start_to_close_timeout=timedelta(seconds=inp.ack_timeout_seconds + 60),
            heartbeat_timeout=timedelta(seconds=30),
        )

    async def _validate(self, inp: SessionMigrationInput, mid: str, result: SessionMigrationResult) -> None:
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

    async def _copy_into(self, inp: SessionMigrationInput, mid: str, result: SessionMigrationResult, only_newer: bool = False) -> None:
        if workflow.patched("parallel-copy"):
            cursor = await self._copy_partitions(inp, mid, result, only_newer)
        else:  # runs started before partitions copy in one stream
            cursor = await self._copy(inp, mid, only_newer)
        result.sessions_copied = 0 if inp.dry_run else cursor.copied
        result.sessions_skipped_expired = cursor.skipped_expired
        result.batches = cursor.batches
        result.copy_resumes = cursor.resumes
        result.worker_cpu_s, result.worker_peak_rss_bytes = cursor.worker_cpu_s, cursor.worker_peak_rss_bytes
        if cursor.fleet_samples:  # the live fleet's traffic while the copy ran
            result.fleet_samples, result.fleet_p99_ms_max = cursor.fleet_samples, cursor.fleet_p99_ms_max
            result.fleet_rps_mean = round(cursor.fleet_rps_sum / cursor.fleet_samples, 2)
            result.fleet_requests, result.fleet_errors = cursor.fleet_requests, cursor.fleet_errors
        result.source_digest = cursor.digest
        moved = cursor.model_dump(include={"scanned", "copied", "skipped_expired", "batches", "digest"})
        self._audit.record("data_moved", result.target_before.model_dump() if result.target_before else None, moved)

    async def _verify(self, inp: SessionMigrationInput, result: SessionMigrationResult, settle_s: float | None) -> None:
        self._set_phase("verifying")
        report = await workflow.execute_activity_method(
            SessionActivities.verify_session_stores,
            VerifyInput(
                source=inp.source,
                target=inp.target,
                margin_seconds=inp.verify_margin_seconds,
                batch_size=inp.batch_size,
                tolerate_extra=bool(result.target_before and result.target_before.target_count),
                settle_seconds=settle_s,
                copied_digest=self._copied_digest,
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

    async def _copy_partitions(
        self, inp: SessionMigrationInput, mid: str, result: SessionMigrationResult, only_newer: bool
    ) -> CopyCursor:
        """Split the source's key space and copy every partition concurrently, each by its own activities.

        Every id belongs to exactly one partition, so the partitions' counts
        and set digests add up to those of the whole copy.  Into a target that
        was empty (offline mode) priors are journaled unread, written batches
        are not read back one by one, and verification compares the target's
        digest with the sum of the partitions' digests instead.  A long
        offline copy continues as new, handing over only its cursors.
        """
        if inp.resume is not None:
            self._partitioned.start(inp.resume.partitions, inp.resume.cursors)
            self._partitioned.continued = inp.resume.continued
            self._copy_started = inp.resume.copy_started
        else:
            # Fault injection counts batches of one stream, as it always has.
            width = 1 if inp.fail_after_batches is not None else inp.parallelism
            plan = await workflow.execute_activity_method(
                SessionActivities.plan_session_partitions,
                StoresInput(migration_id=mid, source=inp.source, target=inp.target, parallelism=width),
                retry_policy=_retry(5),
                **_SHORT,
            )
            self._partitioned.start(plan.partitions)
            self._copy_started = workflow.now().timestamp()
        fresh = bool(not only_newer and not inp.dry_run and result.target_before and not result.target_before.target_count)
        extra = {"only_newer": only_newer, "read_back": not (fresh and inp.verify), "known_absent": fresh}

        async def run_slice(part: Partition, cursor: CopyCursor, batch_size: int, rate: float | None) -> CopyCursor:
            # a failing partition cancels the others, and nothing compensates until they have stopped
            cancel = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
            fields = {**extra, "partition": part, "batch_size": batch_size, "rate_per_s": rate, "on_corrupt": inp.on_corrupt}
            return await self._slice(inp, mid, cursor, fields, cancel)

        stop = lambda: self._rollback_requested  # noqa: E731
        hand_over = None if inp.zero_downtime else inp.continue_as_new_after_slices
        merged = await self._partitioned.run(run_slice, self._record_copy_progress, stop, hand_over)
        if self._partitioned.handover:
            await self._continue_as_new(inp, result)
        s = self._partitioned.settings
        result.partitions, result.batch_size = len(self._partitioned.partitions), s.batch_size
        result.parallelism, result.rate_limit_per_s = s.parallelism, s.rate_limit_per_s
        result.continued_as_new = self._partitioned.continued
        result.sessions_corrupt, result.corrupt_ids = merged.corrupt, merged.corrupt_ids
        result.copy_seconds = round(workflow.now().timestamp() - self._copy_started, 3)
        result.copy_sessions_per_s = round(merged.scanned / result.copy_seconds, 1) if result.copy_seconds > 0 else 0.0
        if fresh and inp.verify:
            self._copied_digest = merged.digest
        return merged

    async def _continue_as_new(self, inp: SessionMigrationInput, result: SessionMigrationResult) -> None:
        """Hand the copy over to a new run of this workflow: cursors, counts, digests and the backup point only."""
        c = self._partitioned
        resume = CopyResume(
            started_at=result.started_at, copy_started=self._copy_started or result.started_at,
            sessions_total=result.sessions_total, target_before=result.target_before,
            partitions=c.partitions, cursors=c.cursors, continued=c.continued + 1, settings=c.settings,
        )  # fmt: skip
        self._audit.record("continued_as_new", None, {"done": c.merged.scanned, "continued": resume.continued})
        await self._audit.flush()
        workflow.logger.info("Continuing as new after %d sessions (hand-over %d)", c.merged.scanned, resume.continued)
        workflow.continue_as_new(inp.model_copy(update={"resume": resume}).model_dump(mode="json", exclude_defaults=True))

    async def _copy(self, inp: SessionMigrationInput, mid: str, only_newer: bool = False) -> CopyCursor:
        """One stream of copy slices (runs started before partitions, and the copy back of a rollback)."""
        cursor = CopyCursor()
        self._copy_started = workflow.now().timestamp()
        while not cursor.finished:
            cursor = await self._slice(inp, mid, cursor, {"only_newer": only_newer})
            self._record_copy_progress(cursor)
        return cursor

    async def _slice(
        self,
        inp: SessionMigrationInput,
        mid: str,
        cursor: CopyCursor,
        fields: dict[str, Any],
        cancel: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
    ) -> CopyCursor:
        """One copy slice from ``cursor``; ``fields`` set or override the CopyInput built from the run's input."""
        self._check_rollback_request()
        base = {"batch_size": inp.batch_size, "slice_seconds": inp.slice_seconds, "dry_run": inp.dry_run,
                "fail_after_batches": inp.fail_after_batches, "fleet": inp.fleet}  # fmt: skip
        params = CopyInput(migration_id=mid, source=inp.source, target=inp.target, cursor=cursor, **{**base, **fields})
        return await self._audit.watched(workflow.execute_activity_method(
            SessionActivities.copy_session_batches, params, retry_policy=_retry(20), cancellation_type=cancel, **_COPY,
        ), inp.stall_alert_seconds, self._progress.model_dump)  # fmt: skip

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
            result.restored = sum(n for n in undone if isinstance(n, int))
            result.status = "rolled_back"
        except (Exception, asyncio.CancelledError) as exc:
            result.status = "rollback_failed"
            result.error = f"{result.error}; and the rollback failed: {failure_text(exc)}"

    async def _undo_completed(self, inp: SessionMigrationInput, result: SessionMigrationResult) -> SessionMigrationResult:
        assert inp.rollback_of is not None
        self._set_phase("rolling_back")
        try:
            if inp.zero_downtime:
                result.restored = await self._copy_back(inp, result)
            else:
                result.restored = await self._undo(
                    TargetInput(migration_id=inp.rollback_of, target=inp.target, require_journal=True)
                )
        except (Exception, asyncio.CancelledError) as exc:
            result.status = "rollback_failed"
            result.error, result.error_type = failure_text(exc), failure_type(exc)
            result.failed_phase = "rolling_back"
            await self._finish(result)
            raise ApplicationError(
                f"rollback of {inp.rollback_of} failed: {result.error}", result, type="RollbackFailed", non_retryable=True
            )
        result.rolled_back = True
        result.status = "rolled_back"
        await self._finish(result)
        return result

    async def _copy_back(self, inp: SessionMigrationInput, result: SessionMigrationResult) -> int:
        """Undo a finalized zero-downtime move: live traffic goes back through dual writes to the source."""
        mid = workflow.info().workflow_id
        current = await workflow.execute_activity_method(
            SessionRoutingActivities.get_session_routing, inp.source, retry_policy=_retry(5), **_SHORT
        )
        self._epoch = current.epoch
        await self._route(inp, mid, "dual_write_read_target")  # both written again, the target still leads
        self._set_phase("copying_back")
        back = inp.model_copy(update={"source": inp.target, "target": inp.source})
        cursor = await self._copy(back, mid, only_newer=True)
        removed = await workflow.execute_activity_method(
            SessionRoutingActivities.mirror_session_deletes,
            StoresInput(migration_id=mid, source=inp.target, target=inp.source, batch_size=inp.batch_size),
            retry_policy=_retry(10),
            **_SHORT,
        )
        await self._route(inp, mid, "dual_write")
        await self._route(inp, mid, "source")
        result.sessions_copied = cursor.copied
        return cursor.copied + removed

    def _check_rollback_request(self) -> None:
        if self._rollback_requested:
            raise ApplicationError("rollback requested by an operator", type="RollbackRequested", non_retryable=True)

    def _set_phase(self, phase: Any) -> None:
        since, self._phase_since = self._phase_since, workflow.now().timestamp()
        took = self._phase_since - (since or self._phase_since)
        workflow.logger.info("Phase %s -> %s after %.1f s", self._progress.phase, phase, took)
        self._index.phase(phase)
        p = self._progress
        self._audit.record("phase", {"phase": p.phase}, {"phase": phase, "done": p.done, "total": p.total})
        self._progress.phase = phase

    def _record_copy_progress(self, cursor: CopyCursor) -> None:
        elapsed = workflow.now().timestamp() - (self._copy_started or workflow.now().timestamp())
        rate = cursor.scanned / elapsed if elapsed > 0 else 0.0
        remaining = max(self._progress.total - cursor.scanned, 0)
        self._progress.done = cursor.scanned
        self._progress.rate_per_s = round(rate, 1)
        self._progress.eta_s = round(remaining / rate, 1) if rate > 0 else None
        self._progress.message = f"{cursor.copied} copied, {cursor.skipped_expired} expired skipped" + (
            f", {cursor.corrupt} corrupt skipped" if cursor.corrupt else ""
        ) + (", paused" if self._partitioned.settings.paused else "")
        self._progress.batch_size = cursor.batch_size
        self._progress.partitions = len(self._partitioned.partitions)
        self._progress.settings = self._partitioned.settings

    async def _finish(self, result: SessionMigrationResult) -> None:
        result.duration_s = round(workflow.now().timestamp() - result.started_at, 3)
        self._set_phase("done")
        if result.rolled_back or result.status == "rollback_failed":
            before = {"failed_phase": result.failed_phase, "error_type": result.error_type}
            self._audit.record("rollback", before, {"status": result.status, "restored": result.restored})
        self._audit.record("ended", None, result.audit_state())
        r = result
        self._index.summary(f"sessions {r.source} -> {r.target}: {r.status}, {r.sessions_copied} copied, {r.restored} restored")
        await self._audit.flush()

