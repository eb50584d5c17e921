"""ConfigMigration: move a config file or directory to another Snakepit version as a saga.

plan (convert and validate, write nothing) → refuse if findings are not
accepted, a down-conversion is lossy or the result is invalid → back up every
file to change (content and digest) → write each one atomically → read back
and validate → done.  The restore of the backup is registered before the
backup is taken; any failure after that restores the files byte for byte.
With ``rollback_of`` the same workflow restores a completed migration's backup.

Every step is in the audit log (started, findings accepted and by whom, each
phase, the files' digests before and after, the rollback, the end; a failure
or a rollback alerts), and a run on its own locks its path first (see
:mod:`workflows.locks`); runs started before either existed do neither (the
``audit-trail`` and ``lone-locks`` patches).
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.config_files import (
        BackupRecord,
        ConfigFileActivities,
        ConfigMigrationInput,
        PlanInput,
        PlanResult,
        RestoreInput,
        RestoreResult,
        ValidateInput,
        WriteInput,
        refusal,
    )
    from deployment.config.model import Change, Finding, Issue
    from workflows.audit_trail import AuditTrail
    from workflows.locks import ResourceLocks
    from workflows.lone_locks import lock_logged
    from workflows.saga import Saga
    from workflows.session_migration import failure_text

Status = Literal["completed", "unchanged", "dry_run", "refused", "rolled_back", "rollback_failed", "failed"]
_PERMANENT = [
    "InvalidInput", "InjectedFailure", "FileChanged", "InvalidResult", "ConfigParseError", "NoConfigFound",
    "UnknownVersion", "FindingsNotAccepted", "LossyDownConversion",
]  # fmt: skip
# the common phase names of the ``progress`` query
_PROGRESS_PHASE = {"pending": "pending", "planning": "validating", "backup": "backup", "writing": "copying",
                   "validating": "verifying", "rolling_back": "rolling_back", "done": "done"}
_LISTED = 40  # files named one by one in an audit entry (its state must stay under 8 KiB)
_TIMEOUTS = {"start_to_close_timeout": timedelta(minutes=2), "heartbeat_timeout": timedelta(seconds=30)}


def _retry(attempts: int) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=attempts,
        non_retryable_error_types=_PERMANENT,
    )


def failure_type(exc: BaseException) -> str | None:
    """The type of the innermost application failure (the domain error's class name)."""
    while isinstance(exc, ActivityError) and exc.cause is not None:
        exc = exc.cause
    return exc.type if isinstance(exc, ApplicationError) else None


class ConfigMigrationResult(BaseModel):
    """What a config migration did; also attached to its failure."""

    migration_id: str
    status: Status
    path: str
    from_version: str | None = None
    to_version: str | None = None
    changes: list[Change] = []
    findings: list[Finding] = []
    warnings: list[Issue] = []
    backup: BackupRecord | None = None
    files_written: list[str] = []
    restored: list[str] = []
    diff: str = ""
    error: str | None = None
    error_type: str | None = None  # the domain error's class name, e.g. FileChanged
    failed_phase: str | None = None

    def audit_state(self) -> dict[str, Any]:
        """The outcome in a few figures, for the audit log's last entry of the run."""
        state = self.model_dump(include={"status", "path", "from_version", "to_version", "error_type", "failed_phase"})
        state.update(error=(self.error or "")[:500] or None, changes=len(self.changes), findings=len(self.findings),
                     files_written=len(self.files_written), restored=len(self.restored))
        return state


@workflow.defn(name="ConfigMigration")
class ConfigMigrationWorkflow:
    """Config files to another version, all files or none, restored byte for byte on failure."""

    def __init__(self) -> None:
        self._phase = "pending"
        self._files = (0, 0)  # written, to write
        self._audit = AuditTrail()
        self._locks = ResourceLocks()

    @workflow.query(name="phase")
    def phase(self) -> str:
        """Where the run is: planning, backup, writing, validating, rolling_back, done."""
        return self._phase

    @workflow.query(name="progress")
    def progress(self) -> dict[str, Any]:
        """The shape every migration's ``progress`` query answers (``snakepit-migrate status``): files done of total."""
        done, total = self._files
        return {
            "migration_id": workflow.info().workflow_id,
            "phase": _PROGRESS_PHASE.get(self._phase, "pending"),
            "done": done,
            "total": total,
            "message": f"config files: {self._phase}",
        }

    @workflow.run
    async def run(self, params: dict[str, Any]) -> ConfigMigrationResult:
        try:
            inp = ConfigMigrationInput.model_validate(params)
        except ValidationError as exc:
            raise ApplicationError(f"invalid ConfigMigration input: {exc}", type="InvalidInput", non_retryable=True)
        mid = workflow.info().workflow_id
        result = ConfigMigrationResult(migration_id=mid, status="completed", path=inp.path)
        self._audit.actor, self._audit.host = inp.actor, inp.actor_host
        self._audit.record("started", after=inp.model_dump(exclude_defaults=True, exclude={"actor", "actor_host"}))
        try:
            await lock_logged(self._locks, self._audit, "config", inp.model_dump(), inp.wait_for_lock)
            if inp.rollback_of:
                return await self._rollback(inp, result)
            return await self._run(inp, mid, result)
        finally:
            await self._locks.release()

    async def _run(self, inp: ConfigMigrationInput, mid: str, result: ConfigMigrationResult) -> ConfigMigrationResult:
        if not inp.path or not inp.to_version:
            raise ApplicationError("ConfigMigration needs 'path' and 'to_version'", type="InvalidInput", non_retryable=True)
        saga = Saga()
        try:
            await self._migrate(inp, mid, result, saga)
        except (Exception, asyncio.CancelledError) as exc:
            result.error, result.error_type = failure_text(exc), failure_type(exc)
            result.failed_phase = self._phase
            workflow.logger.warning("Config migration %s failed: %s", mid, result.error)
            await self._unwind(saga, result)
            await self._finish(result)
            raise ApplicationError(
                f"config migration {result.status}: {result.error}", result,
                type="MigrationRolledBack" if result.status == "rolled_back" else "MigrationFailed", non_retryable=True,
            )  # fmt: skip
        await self._finish(result)
        return result

    async def _migrate(self, inp: ConfigMigrationInput, mid: str, result: ConfigMigrationResult, saga: Saga) -> None:
        self._set_phase("planning")
        plan: PlanResult = await workflow.execute_activity_method(
            ConfigFileActivities.plan_config_migration,
            PlanInput(migration_id=mid, path=inp.path, to_version=inp.to_version, from_version=inp.from_version),
            retry_policy=_retry(3),
            **_TIMEOUTS,
        )
        result.from_version, result.to_version = plan.from_version, plan.to_version
        result.changes, result.findings, result.warnings, result.diff = plan.changes, plan.findings, plan.warnings, plan.diff
        refused = refusal(plan.to_version, plan.findings, plan.errors, inp.accept_findings)
        if refused is not None:
            result.status = "refused"
            raise ApplicationError(str(refused), type=type(refused).__name__, non_retryable=True)
        if inp.accept_findings and plan.findings:  # a person's decision: who accepted what
            self._audit.record("findings_accepted", None, {
                "count": len(plan.findings), "keys": sorted({f.key for f in plan.findings})[:50],
                "from_version": plan.from_version, "to_version": plan.to_version,
            })  # fmt: skip
        if not any(f.changed for f in plan.files):
            result.status = "unchanged"
            return
        if inp.dry_run:
            result.status = "dry_run"
            return
        writes = WriteInput(migration_id=mid, files=plan.files, fail_after_files=inp.fail_after_files)
        self._files = (0, sum(1 for f in plan.files if f.changed))
        saga.add("restore_config_backup", lambda: self._restore(RestoreInput(migration_id=mid, compensation=True)))
        self._set_phase("backup")
        result.backup = await workflow.execute_activity_method(
            ConfigFileActivities.backup_config_files, writes, retry_policy=_retry(5), **_TIMEOUTS
        )
        self._set_phase("writing")
        written = await workflow.execute_activity_method(
            ConfigFileActivities.write_config_files, writes, retry_policy=_retry(5), **_TIMEOUTS
        )
        result.files_written = written.written + written.already
        self._files = (len(result.files_written), self._files[1])
        self._audit.record("data_moved", _digests(plan, "before_digest"), {
            **_digests(plan, "after_digest"), "files_written": result.files_written[:_LISTED], "changes": len(plan.changes),
            "diff_lines": _diff_size(plan.diff),
        })  # fmt: skip
        self._set_phase("validating")
        expected = {f.path: f.after_digest for f in plan.files}
        await workflow.execute_activity_method(
            ConfigFileActivities.validate_config_files,
            ValidateInput(path=inp.path, to_version=plan.to_version, expected=expected),
            retry_policy=_retry(3),
            **_TIMEOUTS,
        )

    async def _restore(self, params: RestoreInput) -> RestoreResult:
        return await workflow.execute_activity_method(
            ConfigFileActivities.restore_config_backup, params, retry_policy=_retry(10), **_TIMEOUTS
        )

    async def _unwind(self, saga: Saga, result: ConfigMigrationResult) -> None:
        if not saga.pending:
            result.status = "refused" if result.status == "refused" else "failed"
            return
        self._set_phase("rolling_back")
        try:
            undone = await saga.compensate()
            result.restored = [p for r in undone for p in r.restored]
            result.status = "rolled_back"
        except (Exception, asyncio.CancelledError) as exc:
            result.status = "rollback_failed"
            result.error = f"{result.error}; and the restore failed: {failure_text(exc)}"

    async def _rollback(self, inp: ConfigMigrationInput, result: ConfigMigrationResult) -> ConfigMigrationResult:
        assert inp.rollback_of is not None
        self._set_phase("rolling_back")
        try:
            restored = await self._restore(RestoreInput(migration_id=inp.rollback_of, force=inp.force))
        except Exception as exc:
            result.status, result.failed_phase = "failed", "rolling_back"
            result.error, result.error_type = failure_text(exc), failure_type(exc)
            await self._finish(result, inp.rollback_of)
            raise ApplicationError(f"config rollback failed: {result.error}", result, type="MigrationFailed", non_retryable=True)
        result.restored = restored.restored
        result.status = "rolled_back"
        await self._finish(result, inp.rollback_of)
        return result

    def _set_phase(self, phase: str) -> None:
        done, total = self._files
        self._audit.record("phase", {"phase": self._phase}, {"phase": phase, "done": done, "total": total})
        self._phase = phase

    async def _finish(self, result: ConfigMigrationResult, rollback_of: str | None = None) -> None:
        self._set_phase("done")
        if result.status in ("rolled_back", "rollback_failed") or rollback_of:
            before = {"failed_phase": result.failed_phase, "error_type": result.error_type, "rollback_of": rollback_of}
            self._audit.record("rollback", before, {"status": result.status, "restored": result.restored})
        self._audit.record("ended", None, result.audit_state())
        await self._audit.flush()


def _digests(plan: PlanResult, which: str) -> dict[str, Any]:
    """The changed files' digests before or after the write (never their bytes): each of the first ``_LISTED``,
    and one SHA-256 over every (path, digest), so that an entry stays small however large the unit."""
    changed = sorted((f.path, getattr(f, which)) for f in plan.files if f.changed)
    every = hashlib.sha256("".join(f"{p}\0{d}\n" for p, d in changed).encode()).hexdigest()
    return {"files": len(changed), "digests": dict(changed[:_LISTED]), "all_files_sha256": every}


def _diff_size(diff: str) -> dict[str, int]:
    """Lines added and removed by the unified diff."""
    lines = diff.splitlines()
    return {"added": sum(1 for ln in lines if ln.startswith("+") and not ln.startswith("+++")),
            "removed": sum(1 for ln in lines if ln.startswith("-") and not ln.startswith("---"))}
