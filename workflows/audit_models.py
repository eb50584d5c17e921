"""Input of the ``append_audit_entry`` activity."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class AuditEventInput(BaseModel):
    """One action of a workflow, as it hands it to the audit log (no secrets: URLs come redacted)."""

    event: str
    migration_id: str
    at: float = Field(description="workflow time of the action (epoch seconds)")
    actor: str | None = Field(None, description="who started the migration; None: the worker's OS user")
    host: str | None = Field(None, description="where they started it from; None: the worker's host")
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class AlertInput(BaseModel):
    """What went wrong in a run, for the alert sinks (webhooks and the log)."""

    kind: str = Field(description="rolled_back, rollback_failed, failed or verification_mismatch")
    migration_id: str
    at: float = Field(description="workflow time (epoch seconds)")
    step: str | None = Field(None, description="the phase the run failed in")
    error: str | None = None
    error_type: str | None = None
    action: str = Field(description="what was done about it")
    figures: dict[str, Any] = Field(default_factory=dict, description="the run's outcome in figures")
