"""AdapterMigration: a fleet from its custom adapter onto the generic adapter, proven equivalent, as a saga.

analyze → inspect the pool config and the fleet → verify equivalence (a tool
that does not match stays on the custom adapter unless accepted) → back up
the pool config and the generic configuration file → write both
(write-then-rename) → roll the fleet onto them (child ``RollingRestart``) →
replay recorded calls against the live fleet → done.  The restore of both
files is registered before the write, and the fleet's way back (a child
``RollingRestart`` onto the backed-up config) before the rollout, so any
failure from the write on leaves files and fleet as they were found.  The
``rollback`` signal stops a running migration at the next step boundary and
compensates; a completed one is undone by a later run with ``rollback_of``
(``<id>-rollback``): pool config back, fleet onto it, generic file removed;
what to undo comes with the input (``undo``) or is read from that run's result
(how a plan undoes a completed child).

Every step is in the audit log (started, mismatches accepted and by whom,
each phase, the config change, the rollout, the rollback, the end; a failure
or a rollback alerts), and a run on its own locks the resources its input
names before it changes anything (its ``RollingRestart`` child, like a plan's
children, takes none).  Runs started before either existed do neither (the
``audit-trail`` and ``lone-locks`` patches).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.adapters import AdapterActivities
    from activities.fleet import FleetActivities
    from workflows.adapter_models import (
        AdapterMigrationInput,
        AdapterMigrationProgress,
        AdapterMigrationResult,
        AnalyzeInput,
        BackupInput,
        BackupPoint,
        Phase,
        REPLAYABLE_REASONS,
        PoolConfigInput,
        ReplayInput,
        RestoreInput,
        VerifyInput,
        WriteInput,
    )
    from workflows.audit_trail import AuditTrail
    from workflows.fleet_models import MarkInput, RollingRestartInput, RollingRestartResult
    from workflows.locks import ResourceLocks
    from workflows.lone_locks import lock_logged
    from workflows.saga import Saga, failure_text, failure_type

_PERMANENT = [
    "InvalidInput", "BadInput", "AdapterSourceError", "NoAdapterFound", "GenericConfigError", "SamplesParseError",
    "PoolConfigError", "ConfigChanged", "FleetUnreachable", "NothingToRollBack",
]  # fmt: skip
_STEPS = 7  # analyze, inspect, verify, backup, write, roll out, replay


def _retry(attempts: int) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=attempts,
        non_retryable_error_types=_PERMANENT,
    )


_QUICK = {"start_to_close_timeout": timedelta(seconds=120), "heartbeat_timeout": timedelta(seconds=30)}


def _long(seconds: float) -> dict[str, Any]:
    return {"start_to_close_timeout": timedelta(seconds=seconds), "heartbeat_timeout": timedelta(seconds=30)}


def _replayable(result: AdapterMigrationResult) -> list[str]:
    """Tools whose recorded calls the live fleet must answer the same: every tool now served by a generic
    call, and the custom ones that answer from their arguments alone (no session, state or I/O)."""
    assert result.analysis is not None and result.verification is not None
    custom = [t.name for t in result.analysis.tools
              if t.name not in result.verification.generic_tools and set(t.categories) <= REPLAYABLE_REASONS]
    return sorted({*result.verification.generic_tools, *custom})


def _attached(exc: ApplicationError) -> RollingRestartResult | None:
    """The rolling restart's result a failure carries, if any."""
    return exc.details[0] if exc.details and isinstance(exc.details[0], RollingRestartResult) else None


@workflow.defn(name="AdapterMigration")
class AdapterMigrationWorkflow:
    """Custom adapter → generic adapter on a running fleet, equivalence proven before and after."""

    def __init__(self) -> None:
        self._progress = AdapterMigrationProgress(migration_id="", phase="pending", total=_STEPS)
        self._marked = False
        self._rollback_requested = False
        self._audit = AuditTrail()
        self._locks = ResourceLocks()

    @workflow.query(name="progress")
    def progress(self) -> AdapterMigrationProgress:
        """Phase, steps done of the seven, and what the current step concerns."""
        return self._progress

    @workflow.signal(name="rollback")
    def request_rollback(self) -> None:
        """Stop at the next step boundary and undo what was done."""
        self._rollback_requested = True

    @workflow.run
    async def run(self, params: dict[str, Any]) -> AdapterMigrationResult:
        try:
            inp = AdapterMigrationInput.model_validate(params)
        except ValidationError as exc:
            raise ApplicationError(f"invalid AdapterMigration input: {exc}", type="InvalidInput", non_retryable=True)
        mid = workflow.info().workflow_id
        self._progress.migration_id = mid
        result = AdapterMigrationResult(
            migration_id=mid, status="completed", path=inp.path, fleet=inp.spec, config_path=inp.config_path,
            dry_run=inp.dry_run, started_at=workflow.now().timestamp(),
        )  # fmt: skip
        self._audit.actor, self._audit.host = inp.actor, inp.actor_host
        asked = inp.model_dump(exclude_defaults=True, exclude={"actor", "actor_host", "undo"})
        self._audit.record("started", after={**asked, "fleet": result.fleet})
        try:
            await lock_logged(self._locks, self._audit, "adapter", inp.lock_params(), inp.wait_for_lock)
            if inp.rollback_of is not None:
                return await self._undo_completed(inp, mid, result)
            return await self._run(inp, mid, result)
        finally:
            await self._locks.release()

    async def _run(self, inp: AdapterMigrationInput, mid: str, result: AdapterMigrationResult) -> AdapterMigrationResult:
        saga = Saga()
        try:
            await self._migrate(inp, mid, result, saga)
        except (Exception, asyncio.CancelledError) as exc:
            result.error, result.error_type = failure_text(exc), failure_type(exc)
            result.failed_phase = self._progress.phase
            workflow.logger.warning("Adapter migration %s failed: %s", mid, result.error)
            await asyncio.shield(asyncio.ensure_future(self._unwind(saga, result)))
            await self._clear_mark(inp, mid)
            await self._finish(result)
            raise ApplicationError(
                f"adapter migration {result.status}: {result.error}",
                result,
                type="MigrationRolledBack" if result.rolled_back else "MigrationFailed",
                non_retryable=True,
            )
        await self._clear_mark(inp, mid)
        result.status = "dry_run" if inp.dry_run else "completed"
        await self._finish(result)
        return result

    async def _migrate(self, inp: AdapterMigrationInput, mid: str, result: AdapterMigrationResult, saga: Saga) -> None:
        self._set_phase("analyzing", "reading the adapter source")
        result.analysis = await self._act(AdapterActivities.analyze_adapter, AnalyzeInput(path=inp.path))
        self._set_phase("inspecting", "checking the pool config against the fleet")
        pool = await self._act(
            AdapterActivities.inspect_pool_config,
            PoolConfigInput(config_path=inp.config_path, pool=inp.pool, fleet=inp.spec, generic_path=inp.generic_path,
                            migration_id=mid, needs_url=inp.traffic is not None),
        )  # fmt: skip
        result.pool, result.generic_path = pool, pool.generic_path
        if pool.adapter not in result.analysis.adapters:
            raise ApplicationError(
                f"the fleet runs {pool.adapter}, but {inp.path} defines {', '.join(result.analysis.adapters)}; "
                "give the source of the adapter the fleet runs",
                type="BadInput",
                non_retryable=True,
            )
        self._set_phase("verifying", f"running {result.analysis.migratable} migratable tool(s) through both adapters")
        verified = await self._watched(self._act(
            AdapterActivities.verify_adapter_equivalence,
            VerifyInput(
                path=inp.path, generic=inp.generic, custom_adapter=pool.adapter, traffic=inp.traffic, samples=inp.samples,
                examples=inp.examples, accept=inp.accept_mismatch, rel_tol=inp.rel_tol, abs_tol=inp.abs_tol,
                timeout_s=inp.sandbox_timeout_s, stage_as=None if inp.dry_run else mid,
            ),
            _long(inp.sandbox_timeout_s * (len(result.analysis.tools) // 2 + 1) + 600),  # two tools at a time
            attempts=2,
        ), inp)  # fmt: skip
        result.verification = verified
        accepted = [t.tool for t in verified.tools if t.status == "accepted"]
        if accepted:  # a person's decision: who let which mismatching tools move
            self._audit.record("mismatches_accepted", None, {"tools": accepted, "dry_run": inp.dry_run})
        if not verified.generic_tools:
            refused = "; ".join(f"{t.tool}: {t.status}" + (f" ({t.detail})" if t.detail else "") for t in verified.tools)
            raise ApplicationError(
                "no tool verified equivalent, so the generic adapter would serve nothing: " + (refused or "no tool to migrate"),
                type="NothingToMigrate",
                non_retryable=True,
            )
        if inp.dry_run:
            return
        self._check_rollback_request()

        self._set_phase("backup", f"backing up {pool.config_path}")
        await self._mark(inp, mid, "adapter_migration: backup")
        result.backup = await self._act(
            AdapterActivities.backup_adapter_config,
            BackupInput(migration_id=mid, config_path=pool.config_path, generic_path=pool.generic_path),
        )
        backup = result.backup
        saga.add("restore_adapter_config", lambda: self._restore_files(backup, result))
        self._set_phase("writing", f"writing {pool.generic_path}")
        assert verified.staged_path is not None
        result.written = await self._act(
            AdapterActivities.write_generic_config,
            WriteInput(
                migration_id=mid, config_path=pool.config_path, pool=inp.pool, generic_path=pool.generic_path,
                staged_path=verified.staged_path, staged_digest=verified.config_digest, custom_adapter=pool.adapter,
                expected_digest=pool.digest,
            ),
        )  # fmt: skip
        self._audit.record(
            "data_moved",
            {"config_path": pool.config_path, "config_digest": pool.digest, "config_version": pool.config_version,
             "adapter": pool.adapter, "generic_existed": backup.generic.existed},
            {"config_path": result.written.config_path, "config_digest": result.written.config_digest,
             "config_version": result.written.config_version, "generic_path": result.written.generic_path,
             "generic_digest": result.written.generic_digest, "generic_tools": verified.generic_tools},
        )  # fmt: skip

        self._check_rollback_request()
        self._set_phase("rolling_out", f"rolling the fleet onto config {result.written.config_version}")
        assert backup.config.backup_path is not None
        old_config = backup.config.backup_path
        saga.add("roll_fleet_back", lambda: self._roll_back(inp, mid, old_config, result))
        try:
            result.rollout = await self._watched(
                self._rolling_restart(inp, mid, f"{mid}-rollout", result.written.config_path), inp
            )
        except ApplicationError as exc:
            result.rollout = _attached(exc)
            raise
        finally:
            if result.rollout is not None:
                self._record_restart("fleet_restarted", result.rollout)

        self._check_rollback_request()
        if inp.traffic is not None and inp.replay_per_tool:
            self._set_phase("replaying", "replaying recorded calls against the live fleet")
            await self._mark(inp, mid, "adapter_migration: replaying")
            result.replay = await self._act(
                AdapterActivities.replay_recorded_calls,
                ReplayInput(fleet=inp.spec, traffic=inp.traffic, tools=_replayable(result), per_tool=inp.replay_per_tool,
                            rel_tol=inp.rel_tol, abs_tol=inp.abs_tol, session_id=f"{mid}-replay"),
                _long(600),
            )  # fmt: skip
            if not result.replay.ok:
                wrong = [f"{t.tool} ({t.cases - t.matches} of {t.cases}; first: {t.first_mismatch})"
                         for t in result.replay.tools if t.matches != t.cases]
                raise ApplicationError("the live fleet answered recorded calls differently: " + "; ".join(wrong),
                                       type="ReplayMismatch", non_retryable=True)
        self._check_rollback_request()
        self._progress.done = _STEPS

    async def _rolling_restart(self, inp: AdapterMigrationInput, mid: str, child_id: str, config_path: str) -> RollingRestartResult:
        """Run RollingRestart as a child under this migration's id; its failure carries its result."""
        child = RollingRestartInput(
            fleet=inp.spec, config_path=config_path, pool=inp.pool, drain_timeout_s=inp.drain_timeout_s,
            health_timeout_s=inp.health_timeout_s, settle_s=inp.settle_s, migration_id=mid, keep_migration_mark=True,
            actor=inp.actor, actor_host=inp.actor_host,
        )  # fmt: skip
        try:
            return await workflow.execute_child_workflow(
                "RollingRestart", child.model_dump(exclude_none=True), id=child_id, result_type=RollingRestartResult
            )
        except ChildWorkflowError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.details:
                failed = RollingRestartResult.model_validate(cause.details[0])
                raise ApplicationError(
                    f"rolling restart {failed.status}: {failed.error}", failed, type=failed.error_type or "RolloutFailed",
                    non_retryable=True,
                ) from exc
            raise

    async def _roll_back(self, inp: AdapterMigrationInput, mid: str, old_config: str, result: AdapterMigrationResult) -> None:
        """Compensation: every instance back onto the backed-up config (those already on it are left alone)."""
        self._set_phase("rolling_back", "rolling the fleet back onto the backed-up config")
        try:
            result.rollback = await self._rolling_restart(inp, mid, f"{mid}-rollback", old_config)
        except ApplicationError as exc:
            result.rollback = _attached(exc)
            raise
        finally:
            if result.rollback is not None:
                self._record_restart("fleet_restarted", result.rollback)

    async def _restore_files(self, backup: BackupPoint, result: AdapterMigrationResult) -> None:
        """Compensation: the pool config and the generic configuration file back as found."""
        self._set_phase("rolling_back", f"restoring {backup.config.path}")
        result.restored = await self._act(AdapterActivities.restore_adapter_config, RestoreInput(backup=backup), attempts=10)

    async def _unwind(self, saga: Saga, result: AdapterMigrationResult) -> None:
        if not saga.pending:
            result.status = "failed"
            return
        try:
            await saga.compensate()
            result.rolled_back = True
            result.status = "rolled_back"
        except (Exception, asyncio.CancelledError) as exc:
            result.status = "rollback_failed"
            result.error = f"{result.error}; and the rollback failed: {failure_text(exc)} (still to do: {', '.join(saga.pending)})"

    async def _undo_completed(self, inp: AdapterMigrationInput, mid: str, result: AdapterMigrationResult) -> AdapterMigrationResult:
        """Undo a completed migration: the pool config back (unless edited since), the fleet onto it, then
        the generic configuration file removed (instances read it until they leave the generic adapter)."""
        assert inp.rollback_of is not None
        self._set_phase("rolling_back", f"reading what {inp.rollback_of} backed up and wrote")
        try:
            undo = inp.undo or await self._act(AdapterActivities.load_adapter_undo, inp.rollback_of)
            result.backup, result.generic_path = undo.backup, undo.written.generic_path
            self._set_phase("rolling_back", f"restoring {undo.backup.config.path}")
            await self._act(AdapterActivities.restore_adapter_config,
                            RestoreInput(backup=undo.backup, expect_digest=undo.written.config_digest, config_only=True))
            self._set_phase("rolling_back", "rolling the fleet back onto the restored config")
            try:  # the child marks the fleet with this run's id once it found no other migration there
                result.rollback = await self._rolling_restart(inp, mid, f"{mid}-restart", undo.backup.config.path)
                self._marked = True
            except ApplicationError as exc:
                result.rollback = _attached(exc)
                self._marked = result.rollback is not None and result.rollback.failed_phase != "validating"
                raise
            finally:
                if result.rollback is not None:
                    self._record_restart("fleet_restarted", result.rollback)
            result.restored = await self._act(AdapterActivities.restore_adapter_config, RestoreInput(backup=undo.backup),
                                              attempts=10)
        except (Exception, asyncio.CancelledError) as exc:
            result.status, result.failed_phase = "rollback_failed", "rolling_back"
            result.error, result.error_type = failure_text(exc), failure_type(exc)
            await self._clear_mark(inp, mid)
            await self._finish(result, inp.rollback_of)
            raise ApplicationError(f"rollback of {inp.rollback_of} failed: {result.error}", result, type="RollbackFailed",
                                   non_retryable=True)
        await self._clear_mark(inp, mid)
        result.status, result.rolled_back = "rolled_back", True
        await self._finish(result, inp.rollback_of)
        return result

    async def _watched(self, step: Any, inp: AdapterMigrationInput) -> Any:
        """A long step (the check, the rollout): logged as stalled and alerted once it outlasts ``stall_alert_seconds``."""
        return await self._audit.watched(step, inp.stall_alert_seconds, self._progress.model_dump)

    def _record_restart(self, event: str, run: RollingRestartResult) -> None:
        """The fleet's change: each instance's config version before and after."""
        self._audit.record(event, {"instances": {i.id: i.from_version for i in run.instances}}, {
            "run": run.migration_id, "status": run.status, "config_version": run.config_version, "restarted": run.restarted,
            "instances": {i.id: i.to_version if i.outcome == "restarted" else i.from_version for i in run.instances},
            "rolled_back": run.rolled_back,
        })  # fmt: skip

    def _check_rollback_request(self) -> None:
        if self._rollback_requested:
            raise ApplicationError("rollback requested by an operator", type="RollbackRequested", non_retryable=True)

    async def _mark(self, inp: AdapterMigrationInput, mid: str, phase: str) -> None:
        self._marked = True
        await self._act(FleetActivities.set_fleet_migration, MarkInput(fleet=inp.spec, migration_id=mid, phase=phase), attempts=5)

    async def _clear_mark(self, inp: AdapterMigrationInput, mid: str) -> None:
        if not self._marked:
            return
        try:
            await self._act(FleetActivities.set_fleet_migration, MarkInput(fleet=inp.spec, migration_id=mid), attempts=5)
        except (Exception, asyncio.CancelledError) as exc:
            workflow.logger.warning("Could not clear the fleet's migration mark: %s", failure_text(exc))

    async def _act(self, method: Any, arg: Any, options: dict[str, Any] | None = None, attempts: int = 3) -> Any:
        return await workflow.execute_activity_method(method, arg, retry_policy=_retry(attempts), **(options or _QUICK))

    def _set_phase(self, phase: Phase, message: str) -> None:
        workflow.logger.info("Phase %s -> %s", self._progress.phase, phase)
        if phase != self._progress.phase:
            p = self._progress
            self._audit.record("phase", {"phase": p.phase}, {"phase": phase, "done": p.done, "total": p.total, "message": message})
        order = ["analyzing", "inspecting", "verifying", "backup", "writing", "rolling_out", "replaying"]
        if phase in order:
            self._progress.done = order.index(phase)
        self._progress.phase, self._progress.message = phase, message

    async def _finish(self, result: AdapterMigrationResult, rollback_of: str | None = None) -> None:
        result.duration_s = round(workflow.now().timestamp() - result.started_at, 3)
        self._set_phase("done", result.status)
        if result.rolled_back or result.status == "rollback_failed":
            before = {"failed_phase": result.failed_phase, "error_type": result.error_type, "rollback_of": rollback_of}
            restored = result.restored.model_dump() if result.restored else None
            self._audit.record("rollback", before, {"status": result.status, "restored": restored,
                                                    "fleet_restarted": result.rollback.restarted if result.rollback else 0})
        self._audit.record("ended", None, result.audit_state())
        await self._audit.flush()
