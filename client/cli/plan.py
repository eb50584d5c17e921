"""``snakepit-migrate plan validate|show|run``: several migrations as one plan, bound per environment."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from client.cli import app
from client.cli.common import emit_json, err, out, run
from client.paths import home
from deployment.errors import MigrateError
from deployment.plans.check import Validation, validate_plan
from deployment.plans.report import markdown, show as show_plan

plan_app = typer.Typer(help="Validate, show and run migration plans (several migrations, ordered, per environment).",
                       no_args_is_help=True)
app.add_typer(plan_app, name="plan")

PlanArg = Annotated[str, typer.Argument(help="the plan file (YAML)")]
Envs = Annotated[Optional[str], typer.Option("--environments", help="the environments file (default: environments.yaml beside the plan)")]
Json = Annotated[bool, typer.Option("--json", help="print exactly one JSON object on stdout")]


def _unreadable(exc: MigrateError, json_out: bool) -> int:
    if json_out:
        emit_json({"valid": False, "error": exc.message, "hint": exc.hint, "type": type(exc).__name__})
    err.print(f"error: {exc}")
    return exc.exit_code


def _validate(plan: str, env: str | None, environments: str | None, json_out: bool) -> Validation | int:
    """The validation of a plan, or the exit code of a file that could not be read (2)."""
    try:
        return run(validate_plan(plan, env, environments, home() / "config-backups"))
    except MigrateError as exc:
        return _unreadable(exc, json_out)


def _print_issues(found: Validation) -> None:
    for issue in found.issues:
        err.print(f"{issue.kind} {issue.severity}: {issue.text()}")


@plan_app.command("validate")
def validate(plan: PlanArg, env: Annotated[Optional[str], typer.Option("--env", help="the environment to bind and check for real")] = None,
             environments: Envs = None, json_out: Json = False) -> int:
    """Schema (with lines), cycles, conflicts; with --env, bindings and feasibility. Exit 0 valid, 1 invalid, 2 unreadable."""
    found = _validate(plan, env, environments, json_out)
    if isinstance(found, int):
        return found
    if json_out:
        emit_json(found.as_json())
    else:
        _print_issues(found)
        where = f" in {found.environment.name}" if found.environment else " (no environment: bindings and feasibility not checked)"
        groups = " → ".join("[" + ", ".join(g) + "]" for g in found.levels)
        verdict = f"valid{where}: {len(found.plan.migrations)} migration(s), groups {groups}" if found.valid else \
            f"invalid{where}: {sum(i.severity == 'error' for i in found.issues)} error(s)"
        out.print(verdict)
    return 0 if found.valid else 1


@plan_app.command("show")
def show(plan: PlanArg, env: Annotated[str, typer.Option("--env", help="the environment to bind")],
         environments: Envs = None, json_out: Json = False,
         md: Annotated[bool, typer.Option("--md", help="print Markdown (for a change request or runbook)")] = False) -> int:
    """Steps, order and parallel groups, estimated durations, rollback of each step, risks with mitigations."""
    found = _validate(plan, env, environments, json_out)
    if isinstance(found, int):
        return found
    if not found.valid:
        if json_out:
            emit_json(found.as_json())
        _print_issues(found)
        err.print("the plan is not valid: fix the errors above (snakepit-migrate plan validate)")
        return 1
    shown = show_plan(found.plan, found.environment, found.levels, found.params, found.feasibility)
    if json_out:
        emit_json(shown)
    else:
        out.print(markdown(shown), end="")
    return 0
