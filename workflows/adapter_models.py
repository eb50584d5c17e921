"""Inputs and results of the AdapterMigration workflow and its activities.

Only paths, counts, digests and per-tool verdict summaries travel through
Temporal; adapter sources, generic configurations and recorded calls stay in
files the activities read and write.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from workflows.fleet_models import Driver, RollingRestartResult, fleet_spec

Phase = Literal[
    "pending", "analyzing", "inspecting", "verifying", "backup", "writing", "rolling_out", "replaying",
    "rolling_back", "done",
]  # fmt: skip
Status = Literal["completed", "dry_run", "rolled_back", "rollback_failed", "failed"]
# A tool kept custom only for these reasons answers from its arguments alone, so its recorded calls replay.
REPLAYABLE_REASONS = frozenset({"composite_logic", "streaming"})


class AdapterMigrationInput(BaseModel):
    """Which adapter, which fleet and pool config, which evidence. The workflow's single JSON input."""

    path: str = Field(description="the custom adapter: a .py file or package directory (read, never imported)")
    fleet: str = Field(description="the fleet front URL, or a full fleet spec (local:..., command:...)")
    driver: Driver | None = Field(None, description="local | http | command; default: from the fleet spec, else http")
    config_path: str = Field(description="the pool config the fleet runs (.json, .yaml or .toml); rewritten onto the generic adapter")
    pool: str | None = Field(None, description="which of the config's pools the fleet runs (default: its first)")
    generic: str | None = Field(None, description="a generic configuration (JSON) to verify and roll out instead of the proposed one")
    generic_path: str | None = Field(
        None, description="where the generic configuration is written (default: generic-adapter.json next to the pool config)"
    )
    traffic: str | None = Field(None, description="JSONL of calls the fleet recorded: inputs for the check and the live replay")
    samples: str | None = Field(None, description='JSONL of {"tool": ..., "arguments": {...}} inputs for the check')
    examples: int = Field(50, ge=0, le=10_000, description="inputs generated per tool from its annotations")
    accept_mismatch: list[str] = Field([], description="tools migrated despite mismatches")
    rel_tol: float = Field(1e-9, ge=0, description="relative tolerance for floats")
    abs_tol: float = Field(1e-12, ge=0, description="absolute tolerance for floats")
    sandbox_timeout_s: float = Field(30.0, gt=0, le=3600, description="seconds each side of the check may take per tool")
    replay_per_tool: int = Field(20, ge=0, le=10_000, description="recorded calls per tool replayed against the live fleet")
    drain_timeout_s: float = Field(30.0, gt=0, le=600, description="rollout: how long in-flight requests may take")
    health_timeout_s: float = Field(60.0, gt=0, le=600, description="rollout: how long a restarted instance may take to be healthy")
    settle_s: float = Field(2.0, ge=0, le=600, description="rollout: how long it must then stay healthy")
    dry_run: bool = Field(False, description="analyze and verify, report, write and restart nothing")
    rollback_of: str | None = Field(None, description="undo the completed migration with this id instead of migrating")
    undo: UndoPlan | None = Field(
        None, description="with rollback_of: what that migration backed up and wrote (default: read from its result)"
    )
    actor: str | None = Field(None, description="who started it, for the audit log (default: the worker's OS user)")
    actor_host: str | None = Field(None, description="the host it was started from, for the audit log")
    wait_for_lock: bool = Field(False, description="run on its own: wait while another run holds a resource, instead of failing")
    stall_alert_seconds: float | None = Field(
        None, gt=0, description="alert when the check or the rollout has not finished after this long (None: never)"
    )

    @model_validator(mode="after")
    def _undo_with_rollback(self) -> "AdapterMigrationInput":
        if self.undo is not None and self.rollback_of is None:
            raise ValueError("undo goes with rollback_of")
        return self

    @field_validator("accept_mismatch")
    @classmethod
    def _distinct(cls, tools: list[str]) -> list[str]:
        return sorted(set(tools))

    @property
    def spec(self) -> str:
        """The fleet spec string the activities open."""
        return fleet_spec(self.fleet, self.driver)

    def lock_params(self) -> dict[str, Any]:
        """What a lone run locks, as a plan's ``adapter`` step names it: the fleet (by spec) and every file."""
        return {**self.model_dump(exclude={"undo"}), "fleet": self.spec}


class AnalyzeInput(BaseModel):
    """The adapter source to analyze."""

    path: str


class ToolSummary(BaseModel):
    """One tool as the analyzer sees it."""

    name: str
    adapter: str
    migratable: bool
    categories: list[str] = Field([], description="the categories of the reasons it stays custom")
    reasons: list[str] = Field([], description="why it stays custom: category (line N)")


class AnalysisSummary(BaseModel):
    """What the analyzer found, in counts and names."""

    adapters: list[str]
    tools: list[ToolSummary]
    migratable: int
    custom: int


class PoolConfigInput(BaseModel):
    """The pool config a fleet runs, and the fleet."""

    config_path: str
    pool: str | None = None
    fleet: str
    generic_path: str | None = None
    migration_id: str
    needs_url: bool = Field(False, description="the live replay will call the fleet's tools over HTTP")


class PoolConfigInfo(BaseModel):
    """The pool config as found: what it runs, its digest, and where the generic configuration will go."""

    config_path: str
    format: str
    digest: str
    size: int
    config_version: str
    adapter: str
    generic_path: str
    fleet_versions: dict[str, str | None] = Field(description="instance id -> the config version it runs")


class VerifyInput(BaseModel):
    """The equivalence check: adapter, configuration, evidence, and where to stage the verified configuration."""

    path: str
    generic: str | None = None
    custom_adapter: str
    traffic: str | None = None
    samples: str | None = None
    examples: int = 50
    accept: list[str] = []
    rel_tol: float = 1e-9
    abs_tol: float = 1e-12
    timeout_s: float = 30.0
    stage_as: str | None = Field(None, description="stage the verified configuration under this migration id (None: dry run)")


class ToolCheck(BaseModel):
    """One tool's verdict, small enough for history."""

    tool: str
    status: str
    decision: str
    cases: int = 0
    matches: int = 0
    detail: str = ""
    first_mismatch: str | None = Field(None, description="the first differing input and both outcomes, abridged")


class VerifySummary(BaseModel):
    """The check's verdicts, and the verified configuration's digest and staged file."""

    ok: bool
    tools: list[ToolCheck]
    generic_tools: list[str]
    custom_tools: list[str]
    config_digest: str
    staged_path: str | None = None


class BackupInput(BaseModel):
    """Back up the pool config and the generic configuration file before anything is written."""

    migration_id: str
    config_path: str
    generic_path: str


class FileBackup(BaseModel):
    """One file as found: existed or not, its copy, size and digest."""

    path: str
    existed: bool
    backup_path: str | None = None
    digest: str | None = None
    size: int = 0


class BackupPoint(BaseModel):
    """Both files as found before the first write."""

    config: FileBackup
    generic: FileBackup


class WriteInput(BaseModel):
    """Write the verified generic configuration and point the pool config's pool at the generic adapter."""

    migration_id: str
    config_path: str
    pool: str | None = None
    generic_path: str
    staged_path: str
    staged_digest: str
    custom_adapter: str
    expected_digest: str = Field(description="the pool config's digest at the backup: anything else is refused")


class WrittenConfig(BaseModel):
    """What was written."""

    config_path: str
    config_digest: str
    config_version: str
    generic_path: str
    generic_digest: str


class RestoreInput(BaseModel):
    """Put both files back as the backup found them."""

    backup: BackupPoint
    expect_digest: str | None = Field(None, description="refuse unless the pool config has this digest now (as written)")
    config_only: bool = Field(False, description="leave the generic configuration file (a fleet still reads it)")


class UndoPlan(BaseModel):
    """How to undo a completed migration: its backup and what it wrote."""

    backup: BackupPoint
    written: WrittenConfig


class RestoredConfig(BaseModel):
    """What the restore did."""

    config_digest: str | None
    generic_removed: bool = False
    restored: bool = Field(description="False when both files already were as found")


class ReplayInput(BaseModel):
    """Replay recorded calls against the live fleet."""

    fleet: str
    traffic: str
    tools: list[str] = Field(description="replay the recorded calls of these tools only")
    per_tool: int = 20
    rel_tol: float = 1e-9
    abs_tol: float = 1e-12
    session_id: str = "adapter-migration-replay"


class ReplaySummary(BaseModel):
    """Per tool: recorded calls replayed, and how many got the recorded answer."""

    ok: bool
    tools: list[ToolCheck]
    replayed: int
    matched: int
    skipped_tools: list[str] = Field([], description="recorded tools not replayed: their answers depend on more than their arguments")


class AdapterMigrationProgress(BaseModel):
    """The answer of the ``progress`` query."""

    migration_id: str
    phase: Phase
    instance: str | None = None
    done: int = 0
    total: int = 0
    rate_per_s: float = 0.0
    eta_s: float | None = None
    message: str = ""


class AdapterMigrationResult(BaseModel):
    """What happened, in the figures a person or a script needs."""

    migration_id: str
    status: Status
    path: str
    fleet: str
    config_path: str
    generic_path: str | None = None
    dry_run: bool = False
    analysis: AnalysisSummary | None = None
    pool: PoolConfigInfo | None = None
    verification: VerifySummary | None = None
    backup: BackupPoint | None = None
    written: WrittenConfig | None = None
    rollout: RollingRestartResult | None = None
    replay: ReplaySummary | None = None
    rollback: RollingRestartResult | None = Field(None, description="the rolling restart that put the fleet back")
    restored: RestoredConfig | None = None
    rolled_back: bool = False
    error: str | None = None
    error_type: str | None = None
    failed_phase: Phase | None = None
    started_at: float = 0.0
    duration_s: float = 0.0

    def audit_state(self) -> dict[str, Any]:
        """The outcome in a few figures, for the audit log's last entry of the run."""
        state = self.model_dump(include={"status", "path", "fleet", "config_path", "dry_run", "error_type", "failed_phase",
                                         "rolled_back"})  # fmt: skip
        state["error"] = (self.error or "")[:500] or None
        state["restored"] = int(bool(self.restored and self.restored.restored))
        if self.written is not None:
            state["config_version"] = self.written.config_version
        if self.verification is not None:
            state["generic_tools"], state["custom_tools"] = self.verification.generic_tools, self.verification.custom_tools
        for name in ("rollout", "rollback"):
            run = getattr(self, name)
            if run is not None:
                state[name] = {"status": run.status, "restarted": run.restarted, "config_version": run.config_version}
        return state

    def tool_decisions(self) -> dict[str, str]:
        """Tool name -> generic | custom, as verified."""
        if self.verification is None:
            return {}
        return {t.tool: t.decision for t in self.verification.tools}


def abridged(value: Any, limit: int = 300) -> str:
    """A JSON-ish rendering cut to ``limit`` characters, for history-sized summaries."""
    import json

    text = json.dumps(value, default=repr, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


AdapterMigrationInput.model_rebuild()
