"""The audit log's activity: append one entry of a workflow run."""

from __future__ import annotations

from datetime import datetime, timezone

from temporalio import activity

from activities.errors import as_application_errors
from deployment.audit import AuditEntry, default_actor, open_audit_log
from deployment.audit.entry import format_ts
from workflows.audit_models import AuditEventInput


class AuditActivities:
    """Writes to the audit log at ``log_url`` (default: ``SNAKEPIT_AUDIT_URL``, else audit.db in the home)."""

    def __init__(self, log_url: str | None = None) -> None:
        self._log_url = log_url

    @activity.defn(name="append_audit_entry")
    async def append_audit_entry(self, params: AuditEventInput) -> int:
        """Append the entry with the run's workflow and run ids; a retry of the same activity adds nothing.

        Returns the entry's place in the log.
        """
        info = activity.info()
        actor, host = default_actor(params.actor)
        entry = AuditEntry(
            ts=format_ts(datetime.fromtimestamp(params.at, timezone.utc)),
            actor=actor,
            host=params.host or host,
            event=params.event,
            migration_id=params.migration_id,
            workflow_id=info.workflow_id,
            run_id=info.workflow_run_id,
            before=params.before,
            after=params.after,
            key=f"{info.workflow_run_id}:{info.activity_id}",
        )
        with as_application_errors(unreachable_is_transient=True):
            async with open_audit_log(self._log_url) as log:
                return (await log.append(entry)).seq
