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
