"""What the plan and schedule commands append to the audit log themselves, with who ran them.

The workflow records what a run does; these are the actions before and
around a run that no workflow sees: a plan validated, a procedure exported, a
run submitted, a schedule created, deleted or triggered, a pause resumed or
cancelled. Validation entries are filed under ``plan:<name>``; entries about a
run under its id.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from client.cli.common import err
from deployment.audit import AuditEntry, default_actor, now_ts, open_audit_log
from deployment.plans.check import Validation

Actor = Annotated[Optional[str], typer.Option("--actor", help="who does it, for the audit log (default: SNAKEPIT_ACTOR, else the OS user)")]


def validation_state(found: Validation, environment: str | None) -> dict[str, Any]:
    """The ``plan_validated`` entry: the plan, its digest, the verdict and how many errors, warnings and conflicts."""
    issues = found.issues
    return {
        "plan": found.plan.name, "file": found.plan.path, "digest": found.plan.digest, "environment": environment,
        "valid": found.valid, "errors": sum(i.severity == "error" for i in issues),
        "warnings": sum(i.severity == "warning" for i in issues), "conflicts": sum(i.kind == "conflict" for i in issues),
    }  # fmt: skip


async def record_event(event: str, migration_id: str, actor: tuple[str, str], after: dict[str, Any],
                       workflow_id: str | None = None) -> bool:
    """Append one CLI action to the audit log; a log that cannot take it is reported on stderr and the command goes on.

    Returns whether the entry was written.
    """
    entry = AuditEntry(ts=now_ts(), actor=actor[0], host=actor[1], event=event, migration_id=migration_id,
                       workflow_id=workflow_id, after=after)
    try:
        async with open_audit_log() as log:
            await log.append(entry)
        return True
    except Exception as exc:  # the audit log is down or misconfigured: say so, the action itself stands
        err.print(f"warning: the audit log did not take the {event} entry of {migration_id}: {exc}")
        return False

