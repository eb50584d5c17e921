"""The audit entries of one workflow run: deterministic, appended by an activity, in order.

``record`` never holds the workflow up: each entry is appended by the
``append_audit_entry`` activity once the one before it is written, so the log
shows the run's actions in the order they happened. ``flush`` waits for every
entry. Runs started before the audit trail existed record nothing (the
``audit-trail`` patch), so their histories still replay.

A step that has not finished after the run's ``stall_alert_seconds`` is
logged as ``stalled`` and alerted (the ``stall-alerts`` patch).

The last entry of a run that failed, was rolled back or whose rollback
failed also raises an alert (``send_alert``: webhooks and the log), after the
entries; runs started before alerts existed raise none (the ``alerts`` patch).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.alerts import AlertActivities
    from activities.audit import AuditActivities
    from deployment.audit.entry import scrub
    from workflows.audit_models import AlertInput, AuditEventInput

PATCH = "audit-trail"
T = TypeVar("T")
# An audit log that is down holds the end of the run up to an hour; bad input fails at once.
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
                     non_retryable_error_types=["BadInput"])  # fmt: skip
_ALERT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_attempts=5)


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
        alert = alert_for(entry)
        if alert is not None and workflow.patched("alerts"):
            self.alert(alert)

    def alert(self, alert: AlertInput) -> None:
        """Queue an alert after the entries queued so far."""
        self._tail = asyncio.ensure_future(self._send(self._tail, alert))

    async def watched(self, step: Awaitable[T], stall_s: float | None, progress: Callable[[], dict[str, Any]]) -> T:
        """Await ``step``; if it has not finished after ``stall_s`` seconds, log a ``stalled`` entry and alert, once.

        The step goes on either way: a stall is reported, not acted on (an operator's rollback stops it).
        """
        if stall_s is None or not workflow.patched("stall-alerts"):
            return await step
        task = asyncio.ensure_future(step)
        try:
            await workflow.wait_condition(task.done, timeout=timedelta(seconds=stall_s))
        except asyncio.TimeoutError:
            state = {**progress(), "stalled_s": stall_s}
            self.record("stalled", None, state)
            self.alert(AlertInput(
                kind="stalled", migration_id=workflow.info().workflow_id, at=workflow.now().timestamp(), step=state.get("phase"),
                error=f"no progress reported for {stall_s:g} s ({state.get('done')}/{state.get('total')} done)",
                action="none yet: the step goes on; snakepit-migrate rollback ID stops it", figures=state,
            ))  # fmt: skip
        except BaseException:
            task.cancel()
            raise
        return await task

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

    async def _send(self, previous: asyncio.Task[None] | None, alert: AlertInput) -> None:
        if previous is not None:
            await previous
        try:
            await workflow.execute_activity_method(
                AlertActivities.send_alert, alert, retry_policy=_ALERT_RETRY, start_to_close_timeout=timedelta(seconds=60)
            )
        except Exception as exc:
            self.failures.append(f"alert {alert.kind}: {exc.cause if getattr(exc, 'cause', None) else exc}")
            workflow.logger.error("Alert %s of %s was not delivered: %s", alert.kind, alert.migration_id, self.failures[-1])

    async def flush(self) -> None:
        """Wait until every queued entry is written (or has failed for good)."""
        if self._tail is not None:
            await asyncio.shield(self._tail)


def alert_for(entry: AuditEventInput) -> AlertInput | None:
    """The alert a run's last entry calls for: a failure, a rollback or a failed rollback; None for a success."""
    state = entry.after or {}
    status = state.get("status")
    if entry.event != "ended" or status in (None, "completed", "dry_run") or not state.get("error"):
        return None
    actions = {
        "rolled_back": f"rolled back: {state.get('restored', 0)} record(s) put back as they were found",
        "rollback_failed": "the rollback failed: the target may hold part of the change; run the rollback again or repair it",
        "failed": "nothing had been written, so nothing was rolled back",
    }
    return AlertInput(
        kind="verification_mismatch" if state.get("error_type") == "VerificationFailed" else status,
        migration_id=entry.migration_id, at=entry.at, step=state.get("failed_phase"), error=state.get("error"),
        error_type=state.get("error_type"), action=state.get("action") or actions.get(status, status), figures=state,
    )  # fmt: skip
