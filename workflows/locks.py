"""Resource locks held by a running workflow: a ``ResourceLock`` child per resource.

A plan locks every resource of every step before its first child; a
migration started on its own (not a child) locks the resources its input
names, the same way, so a lone run and a plan never touch one resource at
once.  Temporal refuses a second running workflow with a lock's id, which is
the refusal (``ResourceLocked``, or, with ``wait_for_lock``, a retry every
``RETRY_S`` seconds).  Each lock is a child with the TERMINATE parent-close
policy: when the holder ends in any way its locks end too.

Runs started before lone runs locked anything take none (the ``lone-locks``
patch), so their histories replay.

A run that refuses rather than waits starts all its locks at once (one
round trip instead of one per resource): if any is held, it releases the
others and is refused, so no run ever holds some locks while waiting for
another, and the lock-id order that keeps waiters from deadlocking is only
needed when waiting (the ``parallel-locks`` patch; runs from before take them
one by one).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from deployment.plans.model import Migration, lock_id, resource_refs
    from deployment.sessions.stores.base import redact_url

LONE_PATCH = "lone-locks"
PARALLEL_PATCH = "parallel-locks"
RETRY_S = 2.0


def run_resources(plan_type: str, params: dict[str, Any], touches: list[str] | None = None) -> list[str]:
    """Every resource a migration's input names (as a plan step of ``plan_type`` would), sorted by lock id."""
    refs = resource_refs(Migration(id="", type=plan_type, params=params, touches=list(touches or [])), params)
    return sorted({value for _, value, _ in refs}, key=lock_id)


class ResourceLocks:
    """The locks one run holds, taken in lock-id order (no two waiters deadlock) and released newest first."""

    def __init__(self) -> None:
        self._handles: list[ChildWorkflowHandle[Any, Any]] = []
        self.held: list[str] = []
        self.waiting_for: str | None = None

    async def take(self, resources: list[str], holder: str, wait: bool) -> None:
        """Lock every resource, or release what was taken and fail with ``ResourceLocked`` (unless ``wait``)."""
        ordered = sorted(resources, key=lock_id)
        if not wait and len(ordered) > 1 and workflow.patched(PARALLEL_PATCH):
            await self._take_at_once(ordered, holder)
            return
        for resource in ordered:
            lid = lock_id(resource)
            while True:
                try:
                    handle = await _start_lock(resource, holder)
                    break
                except WorkflowAlreadyStartedError:
                    if not wait:
                        await self.release()
                        raise _refusal(resource) from None
                    self.waiting_for = lid
                    await workflow.sleep(timedelta(seconds=RETRY_S))
            self._handles.append(handle)
            self.held.append(lid)
        self.waiting_for = None

    async def _take_at_once(self, ordered: list[str], holder: str) -> None:
        """Start every lock together; if one is held (or cannot start), release the others and fail."""
        started = await asyncio.gather(*(_start_lock(r, holder) for r in ordered), return_exceptions=True)
        for handle in started:
            if not isinstance(handle, BaseException):
                self._handles.append(handle)
                self.held.append(handle.id)
        failed = [(r, exc) for r, exc in zip(ordered, started) if isinstance(exc, BaseException)]
        if failed:
            await self.release()
            resource, exc = failed[0]
            if isinstance(exc, WorkflowAlreadyStartedError):
                raise _refusal(resource) from None
            raise exc

    async def take_alone(self, plan_type: str, params: dict[str, Any], wait: bool, touches: list[str] | None = None) -> bool:
        """Lock the input's resources when this run is not a child (a plan parent holds them) and not a dry run.

        Returns whether anything was locked.
        """
        if workflow.info().parent is not None or params.get("dry_run") or not workflow.patched(LONE_PATCH):
            return False
        resources = run_resources(plan_type, params, touches)
        await self.take(resources, workflow.info().workflow_id, wait)
        return bool(resources)

    async def release(self) -> None:
        """Release every lock held, newest first (one already ended, e.g. terminated by an operator, counts as released)."""
        while self._handles:
            handle = self._handles.pop()
            try:
                await handle.signal("release")
            except Exception as exc:  # the lock workflow is gone: nothing is held
                workflow.logger.warning("Lock %s was already released: %s", handle.id, exc)
            self.held.remove(handle.id)


async def _start_lock(resource: str, holder: str) -> ChildWorkflowHandle[Any, Any]:
    """Start the lock of ``resource`` as a child; raises WorkflowAlreadyStartedError when another run holds it."""
    return await workflow.start_child_workflow(
        "ResourceLock", {"resource": redact_url(resource), "holder": holder}, id=lock_id(resource),
        parent_close_policy=ParentClosePolicy.TERMINATE,
    )  # fmt: skip


def _refusal(resource: str) -> ApplicationError:
    lid = lock_id(resource)
    return ApplicationError(f"{redact_url(resource)} is locked by another run (lock {lid})", {"lock_id": lid},
                            type="ResourceLocked", non_retryable=True)
