"""A custom migration that changes nothing: what ``bench/plan_overhead.py`` runs, so only the orchestration is timed.

Referenced as ``bench.noop_extension:NoOp``; every step answers at once.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from deployment.extensions.base import Applied, ExtensionContext, MigrationExtension, Plan, Progress, Report, RolledBack, Verification


class NoOpParams(BaseModel):
    """No parameters."""

    model_config = ConfigDict(extra="forbid")


class NoOp(MigrationExtension):
    """Validates, plans, applies, verifies and rolls back nothing."""

    name = "noop"
    version = "1.0.0"
    Params = NoOpParams
    description = "changes nothing (orchestration benchmark)"

    async def validate(self, params: Any, ctx: ExtensionContext) -> list[str]:
        return []

    async def plan(self, params: Any, ctx: ExtensionContext) -> Plan:
        return Plan(summary="nothing to change")

    async def apply(self, params: Any, ctx: ExtensionContext, resume: Progress | None, report: Report) -> Applied:
        return Applied()

    async def verify(self, params: Any, ctx: ExtensionContext) -> Verification:
        return Verification(ok=True)

    async def rollback(self, params: Any, ctx: ExtensionContext) -> RolledBack:
        return RolledBack()
