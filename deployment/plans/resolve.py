"""Bind a plan to an environment and check every migration's parameters (pure).

``@name`` in a parameter is the resource ``name`` of the environment; the
parameters, with the environment's values laid over them, must be a valid
input of the migration's workflow.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from deployment.plans.errors import PlanIssue
from deployment.plans.graph import conflicts, cycle_issues, find_cycles, levels
from deployment.plans.model import REF_PREFIX, Environment, Migration, Plan, ResolvedPlan, ResolvedStep, Resource, resource_refs


def input_model(plan_type: str) -> type[BaseModel]:
    """The input model of the workflow a plan type runs (the one definition of its parameters)."""
    # Imported here: these models live beside their workflows and activities.
    if plan_type == "sessions":
        from workflows.session_models import SessionMigrationInput as Model
    elif plan_type == "config":
        from activities.config_files import ConfigMigrationInput as Model  # type: ignore[assignment]
    elif plan_type == "adapter":
        from workflows.adapter_models import AdapterMigrationInput as Model  # type: ignore[assignment]
    elif plan_type == "rolling_restart":
        from workflows.fleet_models import RollingRestartInput as Model  # type: ignore[assignment]
    else:
        from workflows.extension_models import CustomMigrationInput as Model  # type: ignore[assignment]
    return Model


def bind(value: Any, env: Environment | None, unbound: list[str]) -> Any:
    """``value`` with every ``@name`` string replaced by the environment's resource (recording unbound names)."""
    if isinstance(value, str) and value.startswith(REF_PREFIX) and len(value) > 1:
        if env is None:
            return value
        name = value[1:]
        if name in env.resources:
            return env.resources[name]
        unbound.append(name)
        return value
    if isinstance(value, dict):
        return {k: bind(v, env, unbound) for k, v in value.items()}
    if isinstance(value, list):
        return [bind(v, env, unbound) for v in value]
    return value


def _resources(m: Migration, raw: dict[str, Any], env: Environment | None) -> list[Resource]:
    """The resources of a migration: logical names from the params as written, values as bound."""
    found = []
    for param, value, access in resource_refs(m, raw):
        logical = value[1:] if value.startswith(REF_PREFIX) else value
        found.append(Resource(name=logical, value=bind(value, env, []), param=param, access=access))
    return found


def check_plan(plan: Plan, env: Environment | None) -> tuple[dict[str, dict[str, Any]], dict[str, list[Resource]], list[PlanIssue]]:
    """Bound params and resources of every migration, and the issues: unbound resources, bad params, cycles, conflicts."""
    issues: list[PlanIssue] = []
    bound_params: dict[str, dict[str, Any]] = {}
    touched: dict[str, list[Resource]] = {}
    for m in plan.migrations:
        raw = m.params_for(env.name if env else None)
        unbound: list[str] = []
        params = bind(raw, env, unbound)
        for name in dict.fromkeys(unbound):
            key = next((k for k, v in raw.items() if v == REF_PREFIX + name), None)
            issues.append(PlanIssue("schema", f"{m.id}: resource {name!r} is not bound in environment {env.name!r}",  # type: ignore[union-attr]
                                    plan.path, m.line_of(f"params.{key}") if key else m.line, m.id,
                                    f"add it under environments.{env.name}.resources in the environments file"))  # type: ignore[union-attr]
        for param in params:
            if param in ("dry_run", "rollback_of"):
                issues.append(PlanIssue("schema", f"{m.id}: {param} is set by the plan run, not in the plan", plan.path,
                                        m.line_of(f"params.{param}"), m.id, f"remove params.{param}"))
        try:
            input_model(m.type).model_validate(params)
        except ValidationError as exc:
            for e in exc.errors():
                key = str(e["loc"][0]) if e["loc"] else ""
                env_key = f"environments.{env.name}.{key}" if env else ""
                line = m.lines.get(env_key) or m.line_of(f"params.{key}")
                issues.append(PlanIssue("schema", f"{m.id}: params{'.' + '.'.join(map(str, e['loc'])) if e['loc'] else ''}: {e['msg']}",
                                        plan.path, line, m.id, f"see the {m.workflow_type} input fields"))
        bound_params[m.id] = params
        touched[m.id] = _resources(m, raw, env)
    cycles = find_cycles(plan)
    if cycles:
        issues += cycle_issues(plan)
    else:
        issues += conflicts(plan, touched)
    return bound_params, touched, issues


def resolve(plan: Plan, env: Environment, *, dry_run: bool = False) -> ResolvedPlan:
    """The workflow input of a plan checked without errors (call :func:`check_plan` first)."""
    params, touched, issues = check_plan(plan, env)
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        raise ValueError(f"the plan has {len(errors)} error(s); check it first")
    groups = levels(plan)
    level_of = {mid: n for n, group in enumerate(groups) for mid in group}
    steps = [
        ResolvedStep(id=m.id, type=m.type, workflow=m.workflow_type, input=params[m.id], depends_on=m.depends_on,
                     level=level_of[m.id], resources=[r.__dict__ for r in touched[m.id]])
        for m in plan.migrations
    ]
    return ResolvedPlan(plan=plan.name, environment=env.name, digest=plan.digest, policy=plan.policy,  # type: ignore[arg-type]
                        dry_run=dry_run, steps=steps, levels=groups)
