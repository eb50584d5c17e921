"""What a migration plan is: migrations, their resources and dependencies, and the environments they bind to.

Pure data; :mod:`deployment.plans.loader` builds it from YAML with the line of
every value, :mod:`deployment.plans.graph` orders it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel

# plan type -> the workflow type its child runs
WORKFLOW_TYPES = {
    "sessions": "SessionMigration",
    "config": "ConfigMigration",
    "adapter": "AdapterMigration",
    "rolling_restart": "RollingRestart",
    "custom": "CustomMigration",
}
POLICIES = ("stop", "rollback")

# plan type -> {param: "read" | "write"}: the params that name a resource (a store, a config, a fleet, a file)
RESOURCE_PARAMS: dict[str, dict[str, str]] = {
    "sessions": {"source": "read", "target": "write", "fleet": "read"},
    "config": {"path": "write"},
    "adapter": {"path": "read", "config_path": "write", "fleet": "write", "traffic": "read", "samples": "read",
                "generic": "read"},
    "rolling_restart": {"fleet": "write", "config_path": "read"},
    "custom": {},  # its bindings' values, and what it lists under `touches`, are written
}
REF_PREFIX = "@"


@dataclass
class Migration:
    """One migration of a plan, as written (resources still logical ``@name`` references)."""

    id: str
    type: str
    params: dict[str, Any]
    depends_on: list[str] = field(default_factory=list)
    per_environment: dict[str, dict[str, Any]] = field(default_factory=dict)
    touches: list[str] = field(default_factory=list)
    line: int = 0
    lines: dict[str, int] = field(default_factory=dict)  # "params.source", "depends_on", ... -> line

    @property
    def workflow_type(self) -> str:
        return WORKFLOW_TYPES[self.type]

    def params_for(self, environment: str | None) -> dict[str, Any]:
        """The params with this environment's values laid over them."""
        merged = dict(self.params)
        if environment is not None:
            merged.update(self.per_environment.get(environment, {}))
        return merged

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


@dataclass
class Plan:
    """A plan file: its migrations in file order and its failure policy."""

    name: str
    path: str
    migrations: list[Migration]
    policy: str = "stop"
    digest: str = ""  # sha256 of the plan file's bytes

    def by_id(self) -> dict[str, Migration]:
        return {m.id: m for m in self.migrations}


@dataclass
class Environment:
    """One environment: logical resource name -> what it is there (store URL, path, fleet spec)."""

    name: str
    resources: dict[str, str]
    throughput: dict[str, float] = field(default_factory=dict)  # e.g. sessions_per_s


@dataclass
class Resource:
    """A resource a migration touches, as bound (or logical when no environment is chosen)."""

    name: str  # the logical name, or the literal value
    value: str  # what it is bound to
    param: str
    access: str  # read | write


def resource_refs(migration: Migration, params: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(param, value, access) of every resource-naming param of a migration (values as written)."""
    found: list[tuple[str, str, str]] = []
    for param, access in RESOURCE_PARAMS.get(migration.type, {}).items():
        value = params.get(param)
        if isinstance(value, str) and value:
            access_now = "write" if migration.type == "sessions" and param == "source" and params.get("zero_downtime") else access
            found.append((param, value, access_now))
    if migration.type == "custom":
        for name, value in sorted((params.get("bindings") or {}).items()):
            if isinstance(value, str) and value:
                found.append((f"bindings.{name}", value, "write"))
        found += [("touches", t, "write") for t in migration.touches]
    return found


class ResolvedStep(BaseModel):
    """One migration bound to an environment: the child workflow to start and its JSON input."""

    id: str
    type: str
    workflow: str
    input: dict[str, Any]
    depends_on: list[str] = []
    level: int = 0
    resources: list[dict[str, str]] = []  # {name, value, param, access}


class ResolvedPlan(BaseModel):
    """A plan bound to one environment: the single JSON input of the ``MigrationPlan`` workflow."""

    plan: str
    environment: str
    digest: str
    policy: Literal["stop", "rollback"] = "stop"
    dry_run: bool = False
    wait_for_lock: bool = False
    promoted_from: str | None = None  # the run of the same plan digest that completed in another environment
    window_s: float | None = None  # a maintenance window: no group starts after it has ended
    on_window_exceeded: Literal["pause", "rollback"] = "pause"
    schedule_id: str | None = None  # the Temporal Schedule that starts this input, when one does
    actor: str | None = None  # who started (or scheduled) the run, for the audit log (default: the worker's OS user)
    actor_host: str | None = None
    search_attributes: bool = False  # index the run and its children (Environment, PlanId...): they must be registered
    steps: list[ResolvedStep]
    levels: list[list[str]]

    def procedure_digest(self) -> str:
        """sha256 of the procedure itself (every bound step and input), as exported."""
        body = self.model_dump(include={"plan", "environment", "digest", "policy", "steps", "levels"})
        return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def resources(self) -> list[str]:
        """Every resource value the plan touches, once, in the order its locks are taken (sorted: no two waiters deadlock)."""
        return sorted({r["value"] for s in self.steps for r in s.resources}, key=lock_id)

# The types a later run with ``rollback_of`` undoes after they completed (the plan's ``rollback`` policy uses it).
REVERSIBLE = frozenset({"sessions", "config", "adapter", "rolling_restart", "custom"})


def lock_id(resource: str) -> str:
    """The id of the ``ResourceLock`` workflow guarding a resource (its bound value): one running lock per resource."""
    return "lock-" + hashlib.sha256(resource.encode()).hexdigest()[:20]
