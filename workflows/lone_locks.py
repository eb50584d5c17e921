"""Locking a lone run's resources with its audit trail: the locks taken, or the refusal, are logged."""

from __future__ import annotations

from typing import Any

from temporalio.exceptions import ApplicationError

from workflows.audit_trail import AuditTrail
from workflows.locks import ResourceLocks


async def lock_logged(locks: ResourceLocks, audit: AuditTrail, plan_type: str, params: dict[str, Any], wait: bool) -> None:
    """``locks.take_alone`` (nothing for a plan's child or a dry run), with a ``locked`` or ``lock_refused`` entry.

    A refusal (``ResourceLocked``) is re-raised once its entry is written: the run ends there, having changed nothing.
    """
    try:
        if await locks.take_alone(plan_type, params, wait):
            audit.record("locked", after={"locks": list(locks.held)})
    except ApplicationError as exc:
        audit.record("lock_refused", after={"error": exc.message})
        await audit.flush()
        raise
