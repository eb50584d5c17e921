"""Plan activities: check a bound plan's feasibility for real when its run starts (a scheduled run has no CLI to do it)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel
from temporalio import activity

from deployment.plans.feasibility import check_feasibility
from deployment.plans.model import Migration, Plan, ResolvedPlan, Resource


class FeasibilityResult(BaseModel):
    """What the checks found: the errors (each a sentence with its hint) and how many risks."""

    errors: list[str] = []
    risks: int = 0


class PlanActivities:
    """Feasibility checks of a plan; config backups are counted against ``backup_root``'s free space."""

    def __init__(self, backup_root: Path | None = None) -> None:
        self._backup_root = backup_root

    @activity.defn(name="check_plan_feasibility")
    async def check_plan_feasibility(self, params: ResolvedPlan) -> FeasibilityResult:
        """Open every store, parse every config, ask every fleet, count free space, as ``plan validate --env`` does."""
        from client.paths import home

        plan = Plan(name=params.plan, path=f"plan {params.plan} ({params.environment})", digest=params.digest,
                    migrations=[Migration(id=s.id, type=s.type, params=s.input, depends_on=s.depends_on) for s in params.steps])
        touched = {s.id: [Resource(**r) for r in s.resources] for s in params.steps}
        found = await check_feasibility(plan, {s.id: s.input for s in params.steps}, touched,
                                        self._backup_root or home() / "config-backups")
        return FeasibilityResult(errors=[i.message + (f" (hint: {i.hint})" if i.hint else "") for i in found.issues],
                                 risks=len(found.risks))
