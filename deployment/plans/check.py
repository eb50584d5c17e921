"""Validate a plan file against an environment: read the files, check the schema, order, conflicts, feasibility."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployment.plans.errors import PlanIssue, PlanUnreadable
from deployment.plans.feasibility import Feasibility, check_feasibility
from deployment.plans.graph import levels
from deployment.plans.loader import load_environments, load_plan
from deployment.plans.model import Environment, Plan, ResolvedPlan, Resource
from deployment.plans.resolve import check_plan, resolve

DEFAULT_ENVIRONMENTS = "environments.yaml"


@dataclass
class Validation:
    """Everything ``plan validate`` found."""

    plan: Plan
    environment: Environment | None
    issues: list[PlanIssue]
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    touched: dict[str, list[Resource]] = field(default_factory=dict)
    levels: list[list[str]] = field(default_factory=list)
    feasibility: Feasibility | None = None

    @property
    def valid(self) -> bool:
        return not any(i.severity == "error" for i in self.issues)

    def resolved(self, dry_run: bool = False) -> ResolvedPlan:
        """The ``MigrationPlan`` workflow input; only for a valid plan with an environment."""
        assert self.environment is not None and self.valid
        return resolve(self.plan, self.environment, dry_run=dry_run)

    def as_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan.name, "file": self.plan.path, "digest": self.plan.digest,
            "environment": self.environment.name if self.environment else None,
            "valid": self.valid, "policy": self.plan.policy, "levels": self.levels,
            "issues": [i.as_json() for i in self.issues],
            "facts": self.feasibility.facts if self.feasibility else {},
            "risks": [r.__dict__ for r in self.feasibility.risks] if self.feasibility else [],
        }  # fmt: skip


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise PlanUnreadable(f"{what} {path}: no such file", hint="give the path of the YAML file") from None
    except OSError as exc:
        raise PlanUnreadable(f"{what} {path}: cannot be read: {exc.strerror}") from None


def environments_path(plan_path: str, given: str | None) -> str:
    """The environments file: the one given, else ``environments.yaml`` beside the plan."""
    return given or str(Path(plan_path).parent / DEFAULT_ENVIRONMENTS)


async def validate_plan(plan_path: str, env_name: str | None, environments: str | None, backup_dir: Path,
                        *, feasibility: bool = True) -> Validation:
    """Check ``plan_path``: schema (with lines), cycles, conflicts; with an environment, bindings and feasibility.

    Raises :class:`PlanUnreadable` for a file that cannot be read or is not YAML.
    """
    plan, issues = load_plan(plan_path, _read(plan_path, "plan"))
    env = None
    if env_name is not None:
        env_file = environments_path(plan_path, environments)
        envs, env_issues = load_environments(env_file, _read(env_file, "environments file"))
        issues += env_issues
        if env_name not in envs:
            raise PlanUnreadable(f"environment {env_name!r} is not in {env_file}",
                                 hint=f"the environments there are: {', '.join(envs) or 'none'}")
        env = envs[env_name]
    found = Validation(plan, env, issues)
    if issues:  # a plan that is not well formed is not ordered or checked further
        return found
    found.params, found.touched, more = check_plan(plan, env)
    found.issues += more
    if not found.valid:
        return found
    found.levels = levels(plan)
    if env is not None and feasibility:
        found.feasibility = await check_feasibility(plan, found.params, found.touched, backup_dir)
        found.issues += found.feasibility.issues
    return found
