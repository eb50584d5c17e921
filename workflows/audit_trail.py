"""The audit entries of one workflow run: deterministic, appended by an activity, in order.

``record`` never holds the workflow up: each entry is appended by the
``append_audit_entry`` activity once the one before it is written, so the log
shows the run's actions in the order they happened. ``flush`` waits for every
entry. Runs started before the audit trail existed record nothing (the
``audit-trail`` patch), so their histories still replay.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.audit import AuditActivities
    from deployment.audit.entry import scrub
    from workflows.audit_models import AuditEventInput

PATCH = "audit-trail"
# An audit log that is down holds the end of the run up to an hour; bad input fails at once.
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
                     non_retryable_error_types=["BadInput"])  # fmt: skip


class AuditTrail:
    """Appends a run's audit entries, one after the other."""

    def __init__(self) -> None:
        self.actor: str | None = None
        self.host: str | None = None
        self.failures: list[str] = []
        self._tail: asyncio.Task[None] | None = None

    def record(self, event: str, before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
        """Queue an entry, stamped with the workflow's time."""
        if not workflow.patched(PATCH):
            return
        entry = AuditEventInput(
            event=event, migration_id=workflow.info().workflow_id, at=workflow.now().timestamp(),
            actor=self.actor, host=self.host, before=scrub(before), after=scrub(after),
        )  # fmt: skip
        self._tail = asyncio.ensure_future(self._append(self._tail, entry))

    async def _append(self, previous: asyncio.Task[None] | None, entry: AuditEventInput) -> None:
        if previous is not None:
            await previous  # never raises: failures are kept in ``failures``
        try:
            await workflow.execute_activity_method(
                AuditActivities.append_audit_entry,
                entry,
                retry_policy=_RETRY,
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(hours=1),
            )
        except Exception as exc:  # the migration's outcome stands; the gap is reported
            self.failures.append(f"{entry.event}: {exc.cause if getattr(exc, 'cause', None) else exc}")
            workflow.logger.error("Audit entry %s of %s was not written: %s", entry.event, entry.migration_id, self.failures[-1])

    async def flush(self) -> None:
        """Wait until every queued entry is written (or has failed for good)."""
        if self._tail is not None:
            await asyncio.shield(self._tail)
