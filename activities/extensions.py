"""Activities of CustomMigration: each runs one step of an extension on this worker.

Every activity loads the extension installed here, refuses a run recorded
with a different major version, resolves the environment bindings, checks
the parameters, and gives the step its context (audit, throttle, logger).
Apply heartbeats each checkpoint the extension reports and resumes from the
last one on a retry.
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
from deployment.extensions.base import (
    AuditWriter,
    ExtensionContext,
    ExtensionError,
    LogAudit,
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
        audit: Callable[..., AuditWriter] = LogAudit,
    ) -> None:
        self._loader = loader
        self._audit = audit  # called with run_id, extension and version: the fields of every entry

    def _context(self, cls: type[MigrationExtension], inp: StepInput) -> ExtensionContext:
        return ExtensionContext(
            run_id=inp.migration_id,
            bindings=dict(inp.bindings),
            audit=self._audit(run_id=inp.migration_id, extension=cls.name, version=cls.version),
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
        """Resolve the reference on this worker: name and version (the run records them), parameters checked."""
        with as_application_errors():
            cls = self._installed(inp.extension)
            prepare(cls, inp)
            module = cls.__module__
            return ExtensionDescription(
                name=cls.name, version=cls.version, reference=f"{module}:{cls.__qualname__}", description=cls.description
            )

    @activity.defn(name="validate_extension")
    async def validate_extension(self, inp: StepInput) -> list[str]:
        """The extension's validate step; its problems fail the run as bad input (nothing was written)."""
        with as_application_errors():
            ext, params, ctx = self._load(inp)
            ctx.audit("validate.start")
            problems = await _heartbeating(ext.validate(params, ctx))
            ctx.audit("validate.done", problems=problems)
            if problems:
                raise ExtensionInvalid(f"{ext.name} cannot run: " + "; ".join(problems))
            return problems

    @activity.defn(name="plan_extension")
    async def plan_extension(self, inp: StepInput) -> Plan:
        """The extension's plan step (read only)."""
        with as_application_errors():
            ext, params, ctx = self._load(inp)
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
            ctx.audit("apply.slice", resume_from=cursor.checkpoints, resumed=bool(details))
            deadline = time.monotonic() + inp.slice_seconds
            latest = [cursor]

            async def report(progress: Progress) -> None:
                now = ApplyCursor(progress=progress, checkpoints=latest[0].checkpoints + 1, resumes=latest[0].resumes)
                latest[0] = now
                activity.heartbeat(now)
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
            found = await _heartbeating(ext.verify(params, ctx))
            ctx.audit("verify", ok=found.ok, checked=found.checked, problems=found.problems[:5])
            return found

    @activity.defn(name="rollback_extension")
    async def rollback_extension(self, inp: StepInput) -> RolledBack:
        """Compensation: the extension's rollback of this run; idempotent."""
        with as_application_errors(unreachable_is_transient=True):
            ext, params, ctx = self._load(inp)
            ctx.audit("rollback.start")
            undone = await _heartbeating(ext.rollback(params, ctx))
            ctx.audit("rollback.done", restored=undone.restored, message=undone.message)
            return undone


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
