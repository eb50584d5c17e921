"""Inputs and results of the RollingRestart workflow and its fleet activities.

A fleet travels through Temporal as its spec string (``local:http://...``,
``http://...``, ``command:/path/hooks.toml``, see :func:`deployment.fleet.open_fleet`);
configs travel as the decoded Snakepit keys.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from deployment.fleet.base import InstanceInfo, MigrationMark

Driver = Literal["local", "http", "command"]
Phase = Literal[
    "pending", "validating", "draining", "waiting_idle", "restarting", "checking_health", "undraining",
    "rolling_back", "done",
]
Status = Literal["completed", "dry_run", "rolled_back", "rollback_failed", "failed"]
Outcome = Literal["pending", "would_restart", "unchanged", "restarted", "failed", "rolled_back", "not_reached"]


def fleet_spec(fleet: str, driver: Driver | None = None) -> str:
    """The spec string of a fleet: ``fleet`` as given if it names its driver, else prefixed by ``driver``.

    Without a driver an http(s) URL is driven over HTTP; ``local`` and ``http``
    differ only in that ``local`` can also start and stop a reference fleet.
    """
    if fleet.startswith(("local:", "command:")) or driver in (None, "http"):
        return fleet
    return f"{driver}:{fleet}"


class RollingRestartInput(BaseModel):
    """Which fleet, onto which config, how patiently. The workflow's single JSON input."""

    fleet: str = Field(description="the fleet front URL (http/local) or hooks file (command), or a full fleet spec")
    driver: Driver | None = Field(None, description="local | http | command; default: from the fleet spec, else http")
    config_path: str | None = Field(None, description="the new deployment config, as a file the worker can read")
    config: dict[str, Any] | None = Field(None, description="the new deployment config inline (Snakepit keys)")
    pool: str | None = Field(None, description="which of the config's pools the fleet runs (default: its first)")
    instances: list[str] | None = Field(None, description="restart only these instances, in this order (default: all)")
    drain_timeout_s: float = Field(30.0, gt=0, le=600, description="how long in-flight requests may take to finish")
    health_timeout_s: float = Field(60.0, gt=0, le=600, description="how long a restarted instance may take to be healthy")
    settle_s: float = Field(2.0, ge=0, le=600, description="how long it must then stay healthy before it serves")
    dry_run: bool = Field(False, description="check the fleet and the config and report the plan; change nothing")
    migration_id: str | None = Field(
        None, description="the migration the fleet reports in its health (default: this run's id; a parent passes its own)"
    )
    keep_migration_mark: bool = Field(False, description="leave the fleet's migration mark in place at the end (a parent clears it)")
    rollback_of: str | None = Field(
        None, description="undo the completed rolling restart with this id: each instance it restarted back onto its previous config"
    )
    actor: str | None = Field(None, description="who started it, for the audit log (default: the worker's OS user)")
    actor_host: str | None = Field(None, description="the host it was started from, for the audit log")
    wait_for_lock: bool = Field(False, description="run on its own: wait while another run holds the fleet, instead of failing")
    stall_alert_seconds: float | None = Field(
        None, gt=0, description="alert when one instance's restart has not finished after this long (None: never)"
    )

    @model_validator(mode="after")
    def _one_config(self) -> "RollingRestartInput":
        if self.config_path is not None and self.config is not None:
            raise ValueError("give exactly one of config_path and config")
        if self.config_path is None and self.config is None and self.rollback_of is None:
            raise ValueError("give exactly one of config_path and config")
        if self.instances is not None and (not self.instances or len(set(self.instances)) != len(self.instances)):
            raise ValueError("instances must be a non-empty list without repeats")
        return self

    @property
    def spec(self) -> str:
        """The fleet spec string the activities open."""
        return fleet_spec(self.fleet, self.driver)

    def lock_params(self) -> dict[str, Any]:
        """What a lone run locks, as a plan's ``rolling_restart`` step names it: the fleet (by spec) and the config file."""
        return {"fleet": self.spec, "config_path": self.config_path, "dry_run": self.dry_run, "wait_for_lock": self.wait_for_lock}


class LoadConfigInput(BaseModel):
    """The new config, by path or inline."""

    config_path: str | None = None
    config: dict[str, Any] | None = None
    pool: str | None = None


class FleetConfig(BaseModel):
    """A config the fleet can load, with what identifies it."""

    config: dict[str, Any]
    config_version: str
    adapter: str


class FleetInput(BaseModel):
    """One fleet."""

    fleet: str


class InstanceSnapshot(InstanceInfo):
    """One instance as found, with the config it runs (what a rollback returns it to)."""

    config: dict[str, Any] | None = None


class FleetSnapshot(BaseModel):
    """Every instance of a fleet and the migration it reports."""

    instances: list[InstanceSnapshot]
    migration: MigrationMark | None = None


class RestartUndo(BaseModel):
    """What a completed rolling restart changed: the instances it restarted, as it found them, and the version it left."""

    instances: list[InstanceSnapshot]
    config_version: str | None = Field(description="the config version the run put them on")


class InstanceInput(BaseModel):
    """One instance of one fleet."""

    fleet: str
    instance_id: str


class WaitIdleInput(BaseModel):
    """Wait until an instance has no request in flight."""

    fleet: str
    instance_id: str
    timeout_s: float


class RestartInput(BaseModel):
    """Restart an instance onto a config."""

    fleet: str
    instance_id: str
    config: dict[str, Any]
    config_version: str
    timeout_s: float
    settle_s: float = 0.0


class WaitHealthyInput(BaseModel):
    """Wait until an instance serves ``config_version`` healthily for ``settle_s``."""

    fleet: str
    instance_id: str
    config_version: str
    timeout_s: float
    settle_s: float = 0.0


class WaitCursor(BaseModel):
    """What a waiting activity heartbeats: when its wait ends, so that a retry keeps the deadline."""

    deadline: float = Field(description="epoch seconds")
    state: str = ""


class InstanceStatus(BaseModel):
    """An instance after a step."""

    id: str
    state: str
    config_version: str | None = None
    skipped: bool = Field(False, description="the step found it done already and did nothing")


class MarkInput(BaseModel):
    """Set (``phase`` given) or clear (``phase`` None) the migration a fleet reports."""

    fleet: str
    migration_id: str
    phase: str | None = None


class InstanceOutcome(BaseModel):
    """What the rolling restart did to one instance."""

    id: str
    from_version: str | None = None
    to_version: str
    outcome: Outcome = "pending"
    duration_s: float = 0.0


class RollingRestartProgress(BaseModel):
    """The answer of the ``progress`` query."""

    migration_id: str
    phase: Phase
    instance: str | None = None
    done: int = 0
    total: int = 0
    rate_per_s: float = 0.0
    eta_s: float | None = None
    message: str = ""


class RollingRestartResult(BaseModel):
    """What happened, per instance, in the figures a person or a script needs."""

    migration_id: str
    status: Status
    fleet: str
    config_version: str | None = None
    dry_run: bool = False
    instances: list[InstanceOutcome] = []
    restarted: int = 0
    rolled_back: list[str] = Field([], description="instances returned to their previous config")
    error: str | None = None
    error_type: str | None = Field(None, description="the failure's type, e.g. InstanceStartFailed or DrainTimeout")
    failed_instance: str | None = None
    failed_phase: Phase | None = None
    started_at: float = 0.0
    duration_s: float = 0.0

    def audit_state(self) -> dict[str, Any]:
        """The outcome in a few figures, for the audit log's last entry of the run."""
        state = self.model_dump(include={"status", "fleet", "config_version", "dry_run", "restarted", "error_type",
                                         "failed_instance", "failed_phase"})  # fmt: skip
        state.update(error=(self.error or "")[:500] or None, restored=len(self.rolled_back), rolled_back=self.rolled_back,
                     versions={i.id: [i.from_version, i.to_version, i.outcome] for i in self.instances[:50]})
        return state
