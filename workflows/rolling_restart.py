"""RollingRestart: move a running fleet onto a new config, one instance at a time.

validate (the config loads, every instance serves, no other migration runs)
→ for each instance: drain → wait until idle → restart on the new config →
wait until healthy → undrain.  At most one instance is out of service at any
moment.  The undo of an instance (back onto the config it ran, healthy,
serving) is registered before it is drained, so a failure anywhere returns
every instance already touched to its previous config, newest first.  The
fleet reports the migration and its current phase in its health throughout.

Usable as a child workflow: a parent passes its own ``migration_id`` (and
``keep_migration_mark``) and gets a :class:`RollingRestartResult` back, or, on
failure, an ``ApplicationError`` carrying that result as its first detail.

With ``rollback_of`` it undoes a completed rolling restart: each instance that
run restarted goes back, the same careful way, onto the config it ran before,
read from the fleet snapshot that run recorded in its history (an instance
changed since is refused before anything moves).

Every step is in the audit log (started, each phase, each instance restarted
with its versions, the rollback, the end; a failure or a rollback alerts),
and a run on its own locks its fleet first (a child is covered by its
parent).  Runs started before either existed do neither (the
``audit-trail`` and ``lone-locks`` patches).
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

    from activities.fleet import FleetActivities
    from deployment.sessions.stores.base import redact_url
    from workflows.audit_trail import AuditTrail
    from workflows.fleet_models import (
        FleetConfig,
        FleetInput,
        FleetSnapshot,
        InstanceInput,
        InstanceOutcome,
        InstanceSnapshot,
        InstanceStatus,
        LoadConfigInput,
        MarkInput,
        Phase,
        RestartInput,
        RestartUndo,
        RollingRestartInput,
        RollingRestartProgress,
        RollingRestartResult,
        WaitHealthyInput,
        WaitIdleInput,
    )
    from workflows.locks import ResourceLocks
    from workflows.lone_locks import lock_logged
    from workflows.saga import Saga, failure_type
    from workflows.saga import failure_text as shared_failure_text

_PERMANENT = [
    "InvalidInput", "PoolConfigError", "BadInput", "InstanceError", "InstanceStartFailed", "InstanceUnhealthy",
    "UnknownInstance", "DrainTimeout", "FleetNotReady", "FleetBusy", "FleetChanged", "NothingToRollBack",
]  # fmt: skip
_QUICK = {"start_to_close_timeout": timedelta(seconds=60), "heartbeat_timeout": timedelta(seconds=30)}
MARK_PREFIX = "rolling_restart"


def _retry(attempts: int) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=attempts,
        non_retryable_error_types=_PERMANENT,
    )


CANCELLED = "the rolling restart was cancelled"


def failure_text(exc: BaseException) -> str:
    """The innermost failure's own message; a cancellation says it was this rolling restart's."""
    return shared_failure_text(exc, CANCELLED)


def _waiting(seconds: float) -> dict[str, Any]:
    """Options of an activity that waits up to ``seconds`` (heartbeating every second)."""
    return {"start_to_close_timeout": timedelta(seconds=seconds + 60), "heartbeat_timeout": timedelta(seconds=10)}


@workflow.defn(name="RollingRestart")
class RollingRestartWorkflow:
    """A fleet onto a new config without a failed request; back onto the old one on failure."""

    def __init__(self) -> None:
        self._progress = RollingRestartProgress(migration_id="", phase="pending")
        self._inp: RollingRestartInput | None = None
        self._mark_id = ""
        self._audit = AuditTrail()
        self._locks = ResourceLocks()

    @workflow.query(name="progress")
    def progress(self) -> RollingRestartProgress:
        """Phase, the instance it concerns, instances done and total."""
        return self._progress

    @workflow.run
    async def run(self, params: dict[str, Any]) -> RollingRestartResult:
        try:
            inp = RollingRestartInput.model_validate(params)
        except ValidationError as exc:
            raise ApplicationError(f"invalid RollingRestart input: {exc}", type="InvalidInput", non_retryable=True)
        mid = workflow.info().workflow_id
        self._inp, self._mark_id = inp, inp.migration_id or mid
        self._progress.migration_id = mid
        result = RollingRestartResult(
            migration_id=mid, status="completed", fleet=redact_url(inp.spec), dry_run=inp.dry_run,
            started_at=workflow.now().timestamp(),
        )
        self._audit.actor, self._audit.host = inp.actor, inp.actor_host
        asked = inp.model_dump(exclude_defaults=True, exclude={"actor", "actor_host", "config"})
        self._audit.record("started", after={**asked, "fleet": result.fleet})
        try:
            await lock_logged(self._locks, self._audit, "rolling_restart", inp.lock_params(), inp.wait_for_lock)
            return await self._run(inp, mid, result)
        finally:
            await self._locks.release()

    async def _run(self, inp: RollingRestartInput, mid: str, result: RollingRestartResult) -> RollingRestartResult:
        saga = Saga()
        try:
            if inp.rollback_of is not None:
                await self._undo_completed(inp, inp.rollback_of, result, saga)
            else:
                await self._roll(inp, result, saga)
        except (Exception, asyncio.CancelledError) as exc:
            self._record_failure(exc, result)
            workflow.logger.warning("Rolling restart %s failed: %s", mid, result.error)
            await asyncio.shield(asyncio.ensure_future(self._unwind(saga, result)))
            if inp.rollback_of is not None and result.status != "failed":
                result.status = "rollback_failed"  # the run it undoes is still in place (or partly, when the unwinding failed)
            await self._finish(result, inp.rollback_of)
            raise ApplicationError(
                f"rolling restart {result.status}: {result.error}",
                result,
                type=_failure_kind(inp, result),
                non_retryable=True,
            )
        if not inp.dry_run:
            await self._clear_mark()
        result.status = "rolled_back" if inp.rollback_of else "dry_run" if inp.dry_run else "completed"
        await self._finish(result, inp.rollback_of)
        return result

    async def _roll(self, inp: RollingRestartInput, result: RollingRestartResult, saga: Saga) -> None:
        await self._step("validating")
        new: FleetConfig = await self._act(
            FleetActivities.load_fleet_config, LoadConfigInput(config_path=inp.config_path, config=inp.config, pool=inp.pool)
        )
        result.config_version = new.config_version
        fleet: FleetSnapshot = await self._act(FleetActivities.list_fleet_instances, FleetInput(fleet=inp.spec))
        chosen = self._choose(inp, fleet)
        result.instances = [
            InstanceOutcome(
                id=i.id, from_version=i.config_version, to_version=new.config_version,
                outcome="unchanged" if i.config_version == new.config_version else "would_restart",
            )
            for i in chosen
        ]  # fmt: skip
        self._progress.total = len(chosen)
        if inp.dry_run:
            return
        await self._restart_all(inp, result, saga, [(snap, new.config) for snap in chosen])

    async def _restart_all(self, inp: RollingRestartInput, result: RollingRestartResult, saga: Saga,
                           targets: list[tuple[InstanceSnapshot, dict[str, Any]]]) -> None:
        """Each instance in turn onto its config (``result.instances`` says which version, and which to leave alone)."""
        for n, ((snap, config), outcome) in enumerate(zip(targets, result.instances)):
            if outcome.outcome == "would_restart":
                outcome.outcome = "pending"
                started = workflow.now().timestamp()
                # The undo of this instance is registered before it leaves service.
                saga.add(f"restore {snap.id}", lambda snap=snap: self._restore(snap))
                await self._audit.watched(self._restart_one(inp, snap, config, outcome.to_version), inp.stall_alert_seconds,
                                          self._progress.model_dump)
                outcome.outcome = "restarted"
                outcome.duration_s = round(workflow.now().timestamp() - started, 3)
                result.restarted += 1
                self._audit.record("instance_restarted", {"instance": snap.id, "config_version": outcome.from_version},
                                   {"instance": snap.id, "config_version": outcome.to_version, "duration_s": outcome.duration_s})
            self._progress.done = n + 1

    async def _undo_completed(self, inp: RollingRestartInput, run_id: str, result: RollingRestartResult, saga: Saga) -> None:
        """Every instance the completed run ``run_id`` restarted back onto the config it ran before, newest first."""
        await self._step("validating")
        undo: RestartUndo = await self._act(FleetActivities.load_restart_undo, run_id)
        fleet: FleetSnapshot = await self._act(FleetActivities.list_fleet_instances, FleetInput(fleet=inp.spec))
        now = {i.id: i for i in self._choose(inp.model_copy(update={"instances": None}), fleet)}
        before = list(reversed(undo.instances))
        moved = [f"{b.id} runs {now[b.id].config_version if b.id in now else 'nothing (gone)'}" for b in before
                 if b.id not in now or now[b.id].config_version not in (undo.config_version, b.config_version)]
        if moved:
            raise ApplicationError(
                f"the fleet changed since {run_id} left it on {undo.config_version}: {'; '.join(moved)}; nothing was restarted",
                type="FleetChanged", non_retryable=True,
            )  # fmt: skip
        versions = {b.config_version for b in before}
        result.config_version = versions.pop() if len(versions) == 1 else None
        result.instances = [
            InstanceOutcome(id=b.id, from_version=now[b.id].config_version, to_version=b.config_version or "",
                            outcome="unchanged" if now[b.id].config_version == b.config_version else "would_restart")
            for b in before
        ]  # fmt: skip
        self._progress.total = len(before)
        await self._restart_all(inp, result, saga, [(now[b.id], b.config or {}) for b in before])
        result.rolled_back = [o.id for o in result.instances if o.outcome == "restarted"]

    def _choose(self, inp: RollingRestartInput, fleet: FleetSnapshot) -> list[InstanceSnapshot]:
        """The instances to restart, in order, once the fleet is found fit for a rolling restart."""
        by_id = {i.id: i for i in fleet.instances}
        if not by_id:
            raise ApplicationError("the fleet lists no instance", type="FleetNotReady", non_retryable=True)
        unknown = [i for i in inp.instances or [] if i not in by_id]
        if unknown:
            raise ApplicationError(
                f"no instance {', '.join(unknown)} in the fleet; it has {', '.join(by_id)}",
                type="UnknownInstance", non_retryable=True,
            )  # fmt: skip
        out_of_service = [f"{i.id} is {i.state}" for i in fleet.instances if i.state != "serving"]
        if out_of_service:
            raise ApplicationError(
                f"the fleet is not fully serving ({'; '.join(out_of_service)}): a rolling restart takes one "
                "instance out at a time and needs every other one serving",
                type="FleetNotReady", non_retryable=True,
            )  # fmt: skip
        if fleet.migration is not None and fleet.migration.id != self._mark_id:
            raise ApplicationError(
                f"the fleet reports migration {fleet.migration.id} ({fleet.migration.phase}) in progress; "
                "wait for it to finish, or pass its id as migration_id if this restart is part of it",
                type="FleetBusy", non_retryable=True,
            )  # fmt: skip
        return [by_id[i] for i in inp.instances] if inp.instances else list(fleet.instances)

    async def _restart_one(self, inp: RollingRestartInput, snap: InstanceSnapshot, config: dict[str, Any], version: str) -> None:
        iid = snap.id
        await self._step("draining", iid, mark=True)
        await self._act(FleetActivities.drain_instance, InstanceInput(fleet=inp.spec, instance_id=iid))
        await self._step("waiting_idle", iid, mark=True)
        await self._act(
            FleetActivities.wait_instance_idle,
            WaitIdleInput(fleet=inp.spec, instance_id=iid, timeout_s=inp.drain_timeout_s),
            _waiting(inp.drain_timeout_s),
        )
        await self._step("restarting", iid, mark=True)
        await self._act(
            FleetActivities.restart_instance,
            RestartInput(
                fleet=inp.spec, instance_id=iid, config=config, config_version=version,
                timeout_s=inp.health_timeout_s, settle_s=inp.settle_s,
            ),
            _waiting(inp.health_timeout_s + inp.settle_s),
        )  # fmt: skip
        await self._wait_healthy(iid, version)
        await self._step("undraining", iid, mark=True)
        await self._act(FleetActivities.undrain_instance, InstanceInput(fleet=inp.spec, instance_id=iid))

    async def _wait_healthy(self, iid: str, version: str, report_step: bool = True) -> None:
        inp = self._inp
        assert inp is not None
        if report_step:
            await self._step("checking_health", iid, mark=True)
        await self._act(
            FleetActivities.wait_instance_healthy,
            WaitHealthyInput(
                fleet=inp.spec, instance_id=iid, config_version=version, timeout_s=inp.health_timeout_s,
                settle_s=inp.settle_s,
            ),
            _waiting(inp.health_timeout_s + inp.settle_s),
        )  # fmt: skip

    async def _restore(self, snap: InstanceSnapshot) -> InstanceStatus:
        """Compensation: the instance back on the config it ran, healthy and serving (idempotent).

        It is drained first: an instance already on the new config serves traffic, and its
        requests in flight may finish (within the drain timeout) before it restarts.
        """
        inp = self._inp
        assert inp is not None and snap.config is not None and snap.config_version is not None
        await self._step("rolling_back", snap.id, mark=True)
        undrain = InstanceInput(fleet=inp.spec, instance_id=snap.id)
        drained: InstanceStatus = await self._act(FleetActivities.drain_instance, undrain, attempts=10)
        if drained.config_version == snap.config_version and drained.state in ("serving", "draining"):
            # Never left its old config (it failed before or during its restart): it only serves again.
            await self._act(FleetActivities.undrain_instance, undrain, attempts=10)
            return drained.model_copy(update={"skipped": True})
        await self._act(
            FleetActivities.wait_instance_idle,
            WaitIdleInput(fleet=inp.spec, instance_id=snap.id, timeout_s=inp.drain_timeout_s),
            _waiting(inp.drain_timeout_s),
            attempts=5,
        )
        try:
            back = await self._act(
                FleetActivities.restart_instance,
                RestartInput(
                    fleet=inp.spec, instance_id=snap.id, config=snap.config, config_version=snap.config_version,
                    timeout_s=inp.health_timeout_s, settle_s=inp.settle_s,
                ),
                _waiting(inp.health_timeout_s + inp.settle_s),
                attempts=5,
            )  # fmt: skip
            await self._wait_healthy(snap.id, snap.config_version, report_step=False)
        except (Exception, asyncio.CancelledError):
            # Not back on the old config: it still runs the new one, which it served healthily, so it
            # serves again rather than leave the fleet short of an instance (the fleet routes only to healthy ones).
            await self._act(FleetActivities.undrain_instance, undrain, attempts=10)
            raise
        await self._act(FleetActivities.undrain_instance, undrain, attempts=10)
        return back

    async def _act(self, method: Any, arg: Any, options: dict[str, Any] | None = None, attempts: int = 3) -> Any:
        return await workflow.execute_activity_method(method, arg, retry_policy=_retry(attempts), **(options or _QUICK))

    async def _unwind(self, saga: Saga, result: RollingRestartResult) -> None:
        if not saga.pending:
            result.status = "failed"
        else:
            try:
                undone: list[InstanceStatus] = await saga.compensate()
                result.status = "rolled_back"
                result.rolled_back = [s.id for s in undone if not s.skipped]
                for outcome in result.instances:
                    if outcome.id in result.rolled_back:
                        outcome.outcome = "rolled_back"
            except (Exception, asyncio.CancelledError) as exc:
                result.status = "rollback_failed"
                left = ", ".join(name.removeprefix("restore ") for name in saga.pending)
                result.error = f"{result.error}; and the rollback failed: {failure_text(exc)} (not restored: {left})"
        for outcome in result.instances:
            if outcome.outcome in ("pending", "would_restart"):
                outcome.outcome = "not_reached"
        if self._inp is not None and not self._inp.dry_run and result.failed_phase != "validating":
            try:
                await self._clear_mark()
            except (Exception, asyncio.CancelledError) as exc:
                workflow.logger.warning("Could not clear the fleet's migration mark: %s", failure_text(exc))

    def _record_failure(self, exc: BaseException, result: RollingRestartResult) -> None:
        text, iid, kind = failure_text(exc), self._progress.instance, failure_type(exc)
        if iid is not None and kind == "Cancelled":
            text = f"{text} while {self._progress.phase.replace('_', ' ')} {iid}"
        elif iid is not None and not text.startswith(f"instance {iid}"):
            text = f"instance {iid}: {text}"
        result.error, result.error_type = text, kind
        result.failed_phase, result.failed_instance = self._progress.phase, iid
        for outcome in result.instances:
            if outcome.id == iid and outcome.outcome == "pending":
                outcome.outcome = "failed"

    async def _clear_mark(self) -> None:
        inp = self._inp
        if inp is None or inp.keep_migration_mark:
            return
        await self._act(FleetActivities.set_fleet_migration, MarkInput(fleet=inp.spec, migration_id=self._mark_id), attempts=5)

    async def _step(self, phase: Phase, instance: str | None = None, mark: bool = False) -> None:
        workflow.logger.info("Phase %s -> %s %s", self._progress.phase, phase, instance or "")
        p = self._progress
        self._audit.record("phase", {"phase": p.phase, "instance": p.instance},
                           {"phase": phase, "instance": instance, "done": p.done, "total": p.total})
        self._progress.phase, self._progress.instance = phase, instance
        self._progress.message = f"{phase} {instance}" if instance else phase
        if mark and self._inp is not None:
            await self._act(
                FleetActivities.set_fleet_migration,
                MarkInput(fleet=self._inp.spec, migration_id=self._mark_id, phase=f"{MARK_PREFIX}: {phase} {instance}"),
                attempts=5,
            )

    async def _finish(self, result: RollingRestartResult, rollback_of: str | None) -> None:
        result.duration_s = round(workflow.now().timestamp() - result.started_at, 3)
        p = self._progress
        self._audit.record("phase", {"phase": p.phase, "instance": p.instance},
                           {"phase": "done", "instance": None, "done": p.done, "total": p.total})
        self._progress.phase, self._progress.instance, self._progress.message = "done", None, result.status
        if result.status in ("rolled_back", "rollback_failed"):
            before = {"failed_phase": result.failed_phase, "error_type": result.error_type, "rollback_of": rollback_of}
            self._audit.record("rollback", before, {"status": result.status, "restored": len(result.rolled_back),
                                                    "instances": result.rolled_back})
        self._audit.record("ended", None, result.audit_state())
        await self._audit.flush()


def _failure_kind(inp: RollingRestartInput, result: RollingRestartResult) -> str:
    """The type of a failed run's error: a rollback run's own failure is RollbackFailed."""
    if inp.rollback_of is not None:
        return "RollbackFailed"
    return "RollingRestartRolledBack" if result.rolled_back else "RollingRestartFailed"
