"""Inputs and results of the MigrationPlan workflow.

Its input is a plan bound to one environment (:class:`deployment.plans.model.ResolvedPlan`);
only ids, statuses and counts of its children travel back.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from deployment.plans.model import ResolvedPlan

StepState = Literal[
    "pending", "running", "completed", "dry_run", "failed", "rolled_back", "skipped", "undoing", "undone",
    "undo_failed", "not_undoable",
]  # fmt: skip
Status = Literal["completed", "dry_run", "failed", "paused", "cancelled", "rolled_back", "rollback_failed"]

MigrationPlanInput = ResolvedPlan


class StepProgress(BaseModel):
    """One child of the plan: which workflow, its id, where it stands."""

    id: str
    type: str
    workflow: str
    group: int
    child_id: str
    state: StepState = "pending"
    child_status: str | None = Field(None, description="the status the child workflow reported")
    rollback_id: str | None = Field(None, description="the child run that undid it under the rollback policy")
    error: str | None = None
    figures: dict[str, Any] = Field({}, description="counts and digests from the child's result")
    duration_s: float | None = Field(None, description="how long the child ran (workflow time)")


class PlanProgress(BaseModel):
    """The answer of the ``progress`` query: the tree of children with their state."""

    plan_id: str
    plan: str
    environment: str
    phase: Literal["pending", "locking", "validating", "running", "paused", "rolling_back", "done"] = "pending"
    group: int = 0
    groups: int = 0
    locks: list[str] = Field([], description="the ResourceLock workflows this run holds")
    waiting_for: str | None = Field(None, description="with wait_for_lock: the lock it waits for")
    paused: str | None = Field(None, description="while paused: why, and how to go on")
    pauses: int = Field(0, description="how many times the window has paused the run")
    steps: list[StepProgress] = []


class MigrationPlanResult(BaseModel):
    """What the plan did, child by child; also attached to its failure."""

    plan_id: str
    plan: str
    environment: str
    digest: str
    policy: str
    dry_run: bool = False
    promoted_from: str | None = Field(None, description="the run in another environment this one was promoted from")
    schedule_id: str | None = Field(None, description="the Temporal Schedule that fired this run, if one did")
    status: Status = "completed"
    steps: list[StepProgress] = []
    completed_order: list[str] = Field([], description="steps in the order they completed")
    undone_order: list[str] = Field([], description="steps undone by the rollback policy, in the order undone")
    failed_step: str | None = None
    error: str | None = None
    error_type: str | None = Field(None, description="the failure's type: PlanFailed, PlanRolledBack, ResourceLocked...")
    started_at: float = 0.0
    duration_s: float = 0.0
    pauses: list[dict[str, Any]] = Field([], description="each time the window ended: the group reached, and how it went on")


class ResumeInput(BaseModel):
    """The ``resume`` signal: go on with the groups a paused run has not started, in a new window."""

    window_s: float | None = Field(None, gt=0, description="the new window (default: the run's own, counted from now)")
    actor: str | None = None
    actor_host: str | None = None


class CancelInput(BaseModel):
    """The ``cancel`` signal: start no further group; keep the completed steps, or roll them back newest first."""

    rollback: bool = False
    actor: str | None = None
    actor_host: str | None = None
