"""Inputs and results of the CustomMigration workflow and its activities.

Only parameters, checkpoints, counts and verdicts travel through Temporal;
the data an extension changes never does.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deployment.extensions.base import Applied, Plan, Progress, Verification

Phase = Literal["pending", "resolving", "locking", "validating", "planning", "applying", "verifying", "rolling_back", "done"]
Status = Literal["completed", "dry_run", "rolled_back", "rollback_failed", "failed"]


class CustomMigrationInput(BaseModel):
    """Which extension to run, with what. The workflow's single JSON input."""

    model_config = ConfigDict(extra="forbid")

    extension: str = Field(min_length=1, description="a registered extension name, or module:Class")
    params: dict[str, Any] = Field(default_factory=dict, description="the extension's parameters (its Params model)")
    bindings: dict[str, str] = Field(default_factory=dict, description="environment bindings, used as ${name} in params")
    dry_run: bool = Field(False, description="validate and plan only; change nothing")
    verify: bool = Field(True, description="run the extension's verify step after apply")
    slice_seconds: float = Field(5.0, gt=0, le=300, description="how long one apply activity runs before reporting")
    max_per_second: float | None = Field(None, gt=0, description="throttle: at most this many items a second")
    fail_after_checkpoints: int | None = Field(
        None, ge=0, description="fault injection: fail apply after this many checkpoints (drills and tests)"
    )
    rollback_of: str | None = Field(None, description="roll back the run with this id (its journal) instead of applying")
    version: str | None = Field(
        None, description="the version required (another major is refused); with rollback_of, the one that run recorded"
    )
    actor: str | None = Field(None, description="who started it, for the audit log (default: the worker's OS user)")
    actor_host: str | None = Field(None, description="the host it was started from, for the audit log")
    wait_for_lock: bool = Field(False, description="run on its own: wait for resources another run holds instead of refusing")
    stall_alert_seconds: float | None = Field(
        None, gt=0, description="alert when one apply slice has reported no progress for this long (None: never)"
    )


class StepInput(BaseModel):
    """One step of an extension, as activity input."""

    migration_id: str
    extension: str
    params: dict[str, Any] = Field(default_factory=dict)
    bindings: dict[str, str] = Field(default_factory=dict)
    version: str | None = Field(None, description="the version the run recorded; None only when resolving")
    name: str | None = Field(None, description="the name the run recorded")
    dry_run: bool = False
    max_per_second: float | None = None
    actor: str | None = Field(None, description="who started the run: the extension's audit entries carry it")
    actor_host: str | None = None


class ExtensionDescription(BaseModel):
    """The extension a worker resolved a reference to."""

    name: str
    version: str
    reference: str
    description: str = ""
    resources: list[str] = Field(default_factory=list, description="what the extension declares it writes (locked on a lone run)")


class ApplyCursor(BaseModel):
    """Where apply stands; heartbeated at every checkpoint and returned after every slice."""

    progress: Progress | None = None
    checkpoints: int = 0
    finished: bool = False
    applied: Applied | None = None
    resumes: int = Field(0, description="how many times a retried attempt resumed from a heartbeated checkpoint")


class ApplyInput(BaseModel):
    """One slice of apply."""

    step: StepInput
    cursor: ApplyCursor
    slice_seconds: float = 5.0
    fail_after_checkpoints: int | None = None


class ExtensionProgress(BaseModel):
    """The answer of the ``progress`` query (the fields of MigrationProgress, and which extension)."""

    migration_id: str
    phase: Phase
    done: int = 0
    total: int = 0
    rate_per_s: float = 0.0
    eta_s: float | None = None
    message: str = ""
    extension: str | None = None
    version: str | None = None


class CustomMigrationResult(BaseModel):
    """What happened, in the figures a person or a script needs."""

    migration_id: str
    status: Status
    extension: str
    name: str | None = None
    version: str | None = Field(None, description="the extension version the run was started with")
    reference: str | None = None
    dry_run: bool = False
    plan: Plan | None = None
    done: int = 0
    changed: int = 0
    checkpoints: int = 0
    apply_resumes: int = 0
    verification: Verification | None = None
    rolled_back: bool = False
    restored: int = 0
    rollback_message: str | None = None
    error: str | None = None
    error_type: str | None = None
    failed_phase: Phase | None = None
    started_at: float = 0.0
    duration_s: float = 0.0

    def audit_state(self) -> dict[str, Any]:
        """The outcome in a few figures, for the audit log's last entry of the run (no plan details, few problems)."""
        state = self.model_dump(exclude={"migration_id", "started_at", "plan", "verification", "rollback_message"})
        state["error"] = (self.error or "")[:500] or None
        if self.plan is not None:
            state["plan"] = {"total": self.plan.total, "to_change": self.plan.to_change}
        if self.verification is not None:
            v = self.verification
            state["verification"] = {"ok": v.ok, "checked": v.checked, "problems": [p[:200] for p in v.problems[:5]]}
        return state
