"""Activities of CustomMigration: each runs one step of an extension on this worker.

Every activity loads the extension installed here, refuses a run recorded
with a different major version, resolves the environment bindings, checks
the parameters, and gives the step its context (audit, throttle, logger).
Apply heartbeats each checkpoint the extension reports and resumes from the
last one on a retry. What an extension writes through ``ctx.audit`` is
appended to the audit log (``extension.<event>``, with the run's workflow and
run ids and its actor) at every checkpoint and when the step ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import as_application_errors
from deployment.audit import AuditEntry, default_actor, now_ts, open_audit_log
from deployment.audit.entry import checked_state
from deployment.extensions.base import (
    AuditWriter,
    ExtensionContext,
    ExtensionError,
    MigrationExtension,
    Plan,
    Progress,
    RolledBack,
    StopApply,
    Throttle,
    Verification,
    check_resumable,
    instantiate,
)
from deployment.extensions.registry import load_extension
from workflows.extension_models import ApplyCursor, ApplyInput, ExtensionDescription, StepInput

T = TypeVar("T")
HEARTBEAT_EVERY_S = 2.0
log = logging.getLogger("snakepit_migrate.extensions")


class RunAuditWriter:
    """An extension's audit writer inside an activity: entries go to the audit log with the run's ids, in order.

    ``__call__`` (synchronous, as extensions call it) checks the entry and
    queues it; :meth:`flush` appends what is queued. Each entry's key is the
    run, activity, attempt and its number, so a flush retried after a
    partial failure adds nothing twice. An audit log that cannot be written
    does not fail the step (as with the workflow's own entries): the entries
    stay queued for the next flush and, at the end, the gap is logged.
    """

    def __init__(self, run_id: str, extension: str, version: str, actor: str | None = None, host: str | None = None,
                 log_url: str | None = None) -> None:  # fmt: skip
        info = activity.info()
        self.common = {"extension": extension, "version": version}
        if run_id != info.workflow_id:  # a rollback run works on the journal of the run it undoes
            self.common["journal_of"] = run_id
        self.actor, self.host = default_actor(actor)
        self.host = host or self.host
        self._ids = (info.workflow_id, info.workflow_run_id)
        self._key = f"{info.workflow_run_id}:{info.activity_id}:{info.attempt}"
        self._log_url = log_url
        self._count = 0
        self.pending: list[AuditEntry] = []

    def __call__(self, event: str, /, **fields: Any) -> None:
        after = checked_state({**self.common, **fields}, f"extension.{event}")  # credentials scrubbed; over 8 KiB refused
        self._count += 1
        self.pending.append(AuditEntry(
            ts=now_ts(), actor=self.actor, host=self.host, event=f"extension.{event}", migration_id=self._ids[0],
            workflow_id=self._ids[0], run_id=self._ids[1], after=after, key=f"{self._key}:{self._count}",
        ))  # fmt: skip

    async def flush(self, final: bool = False) -> None:
        """Append every queued entry; with ``final``, log what could not be written."""
        if not self.pending:
            return
        try:
            async with open_audit_log(self._log_url) as audit_log:
                while self.pending:
                    await audit_log.append(self.pending[0])
                    self.pending.pop(0)
        except Exception as exc:  # the step's outcome stands; the gap is reported
            if final:
                log.error("%d audit entries of extension %s in %s were not written: %s",
                          len(self.pending), self.common["extension"], self._ids[0], exc)  # fmt: skip


async def _flush(ctx: ExtensionContext, final: bool = False) -> None:
    """Write the context's queued audit entries (an audit writer without ``flush`` writes as it goes)."""
    flush = getattr(ctx.audit, "flush", None)
    if flush is not None:
        await flush(final)


class ExtensionInvalid(ExtensionError):
    """The extension's validate step found problems: the migration cannot run as asked."""


def prepare(cls: type[MigrationExtension], inp: StepInput) -> tuple[MigrationExtension, BaseModel]:
    """The extension instance and its parsed parameters; refuses a run of another extension or major version."""
    if inp.name is not None and cls.name != inp.name:
        raise ExtensionError(f"{inp.extension} is extension {cls.name!r} on this worker, but the run was started with {inp.name!r}")
    if inp.version is not None:
        check_resumable(cls.name, inp.version, cls.version)
    return instantiate(cls, inp.params, inp.bindings)


class ExtensionActivities:
    """Extension steps; ``loader`` resolves a name or module:Class reference to the installed class."""

    def __init__(
        self,
        loader: Callable[[str], type[MigrationExtension]] = load_extension,
        audit: Callable[..., AuditWriter] = RunAuditWriter,
    ) -> None:
        self._loader = loader
        self._audit = audit  # called with run_id, extension, version, actor and host: the fields of every entry

    def _context(self, cls: type[MigrationExtension], inp: StepInput) -> ExtensionContext:
        return ExtensionContext(
            run_id=inp.migration_id,
            bindings=dict(inp.bindings),
            audit=self._audit(run_id=inp.migration_id, extension=cls.name, version=cls.version, actor=inp.actor,
                              host=inp.actor_host),
            throttle=Throttle(inp.max_per_second),
            log=logging.getLogger(f"snakepit_migrate.extensions.{cls.name}"),
            dry_run=inp.dry_run,
        )

    def _installed(self, reference: str) -> type[MigrationExtension]:
        """The class installed on this worker; the error says which worker lacks it or has it broken."""
        try:
            return self._loader(reference)
        except ExtensionError as exc:
            raise ExtensionError(f"on worker {socket.gethostname()} (pid {os.getpid()}): {exc.message}", hint=exc.hint) from None

    def _load(self, inp: StepInput) -> tuple[MigrationExtension, BaseModel, ExtensionContext]:
        cls = self._installed(inp.extension)
        ext, params = prepare(cls, inp)
        return ext, params, self._context(cls, inp)

    @activity.defn(name="describe_extension")
    async def describe_extension(self, inp: StepInput) -> ExtensionDescription:
        """Resolve the reference on this worker: name and version (the run records them), parameters checked,
        and the resources it declares."""
        with as_application_errors():
            cls = self._installed(inp.extension)
            ext, params = prepare(cls, inp)
            return ExtensionDescription(
                name=cls.name, version=cls.version, reference=f"{cls.__module__}:{cls.__qualname__}",
                description=cls.description, resources=[str(r) for r in ext.resources(params)],
            )  # fmt: skip

    @activity.defn(name="validate_extension")
    async def validate_extension(self, inp: StepInput) -> list[str]:
        """The extension's validate step; its problems fail the run as bad input (nothing was written)."""
        with as_application_errors():
            ext, params, ctx = self._load(inp)
            async with _audited(ctx):
                ctx.audit("validate.start")
                problems = await _heartbeating(ext.validate(params, ctx))
                ctx.audit("validate.done", problems=problems[:10])
            if problems:
                raise ExtensionInvalid(f"{ext.name} cannot run: " + "; ".join(problems))
            return problems

    @activity.defn(name="plan_extension")
    async def plan_extension(self, inp: StepInput) -> Plan:
        """The extension's plan step (read only)."""
        with as_application_errors():
            ext, params, ctx = self._load(inp)
            async with _audited(ctx):
                plan = await _heartbeating(ext.plan(params, ctx))
                ctx.audit("plan", summary=plan.summary, total=plan.total, to_change=plan.to_change, resources=plan.resources)
            return plan

    @activity.defn(name="apply_extension")
    async def apply_extension(self, inp: ApplyInput) -> ApplyCursor:
        """Run apply for up to ``slice_seconds``, heartbeating each checkpoint; resume from the last one on a retry."""
        details = activity.info().heartbeat_details
        cursor = inp.cursor
        if details:  # a retry: continue from the last checkpoint the failed attempt heartbeated
            cursor = ApplyCursor.model_validate(details[0])
            cursor.resumes += 1
            activity.logger.info("Resuming apply after checkpoint %d", cursor.checkpoints)
        with as_application_errors(unreachable_is_transient=True):
            ext, params, ctx = self._load(inp.step)
            if cursor.finished:
                return cursor
            async with _audited(ctx):
                ctx.audit("apply.slice", resume_from=cursor.checkpoints, resumed=bool(details))
                deadline = time.monotonic() + inp.slice_seconds
                latest = [cursor]

                async def report(progress: Progress) -> None:
                    now = ApplyCursor(progress=progress, checkpoints=latest[0].checkpoints + 1, resumes=latest[0].resumes)
                    latest[0] = now
                    activity.heartbeat(now)
                    await _flush(ctx)
                    limit = inp.fail_after_checkpoints
                    if limit is not None and now.checkpoints >= limit:
                        raise ApplicationError(f"injected failure after {now.checkpoints} checkpoints", type="InjectedFailure", non_retryable=True)
                    if time.monotonic() >= deadline:
                        raise StopApply

                try:
                    applied = await _heartbeating(ext.apply(params, ctx, cursor.progress, report), lambda: latest[0])
                except StopApply:
                    return latest[0]
                done = latest[0].model_copy(update={"finished": True, "applied": applied})
                ctx.audit("apply.done", done=applied.done, changed=applied.changed, checkpoints=done.checkpoints)
                return done

    @activity.defn(name="verify_extension")
    async def verify_extension(self, inp: StepInput) -> Verification:
        """The extension's verify step."""
        with as_application_errors(unreachable_is_transient=True):
            ext, params, ctx = self._load(inp)
            async with _audited(ctx):
                found = await _heartbeating(ext.verify(params, ctx))
                ctx.audit("verify", ok=found.ok, checked=found.checked, problems=found.problems[:5])
            return found

    @activity.defn(name="rollback_extension")
    async def rollback_extension(self, inp: StepInput) -> RolledBack:
        """Compensation: the extension's rollback of this run; idempotent."""
        with as_application_errors(unreachable_is_transient=True):
            ext, params, ctx = self._load(inp)
            async with _audited(ctx):
                ctx.audit("rollback.start")
                undone = await _heartbeating(ext.rollback(params, ctx))
                ctx.audit("rollback.done", restored=undone.restored, message=undone.message)
            return undone


@contextlib.asynccontextmanager
async def _audited(ctx: ExtensionContext) -> AsyncIterator[None]:
    """Run a step, then write the audit entries it queued, also when it failed (a failure is logged as such)."""
    try:
        yield
    except BaseException as exc:
        if not isinstance(exc, StopApply):
            ctx.audit("step.failed", error=(str(exc) or type(exc).__name__)[:500], error_type=getattr(exc, "type", None) or type(exc).__name__)
        raise
    finally:
        await asyncio.shield(_flush(ctx, final=True))


async def _heartbeating(step: Awaitable[T], details: Callable[[], Any] | None = None) -> T:
    """Await ``step`` while heartbeating every couple of seconds (with ``details()`` when given)."""
    async with _beat(details):
        return await step


@contextlib.asynccontextmanager
async def _beat(details: Callable[[], Any] | None) -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY_S)
            if details is None:
                activity.heartbeat()
            else:
                activity.heartbeat(details())

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
