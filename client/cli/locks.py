"""Resource locks as the CLI shows them: refuse a start on a locked resource with exit 3, naming the holder."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from client import api
from deployment.plans.errors import ResourceLocked
from workflows.locks import run_resources


def locked(held: dict[str, str]) -> ResourceLocked:
    """The refusal (exit 3): which resource, which run holds it, and how to wait."""
    holders = sorted(set(held.values()))
    return ResourceLocked(
        "locked by a running migration: " + "; ".join(f"{r} by {h}" for r, h in held.items()),
        hint=f"wait for it (snakepit-migrate status {holders[0]} --watch), or run again with --wait-for-lock",
    )


async def refuse_if_locked(client: Client, plan_type: str, params: dict[str, Any], touches: list[str] | None = None) -> None:
    """Raise ``ResourceLocked`` before starting a lone run whose resources another run holds (not for a dry run)."""
    if params.get("dry_run") or params.get("wait_for_lock"):
        return
    held = await api.resource_holders(client, run_resources(plan_type, params, touches))
    if held:
        raise locked(held)


def is_lock_refusal(exc: BaseException) -> bool:
    """Whether a run failed at its start because a resource was locked (taken between the check and the start)."""
    return isinstance(exc, WorkflowFailureError) and isinstance(exc.cause, ApplicationError) and exc.cause.type == "ResourceLocked"


async def locked_after_start(client: Client, exc: WorkflowFailureError, resources: list[str]) -> ResourceLocked:
    """The refusal for a run the workflow itself refused, naming the holder when it still runs."""
    cause = exc.cause
    return locked(await api.resource_holders(client, resources) or {getattr(cause, "message", str(cause)): "another run"})
