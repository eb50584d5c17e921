"""``snakepit-migrate config check|migrate|rollback``: Snakepit configuration files."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from client.cli import app
from client.cli.common import emit_json, err, out, run
from client.cli.locks import is_lock_refusal, locked_after_start, refuse_if_locked
from client.connect import TASK_QUEUE
from deployment.audit import default_actor
from deployment.config.model import Change, Finding, Issue
from deployment.config.plan import CheckReport, MigrationPlan, check_unit, load_base, load_unit, plan_unit
from deployment.config.source import read_base, read_unit
from deployment.errors import BadInput, MigrateError
from deployment.plans.errors import ResourceLocked
from workflows.locks import run_resources

config_app = typer.Typer(help="Check Snakepit config files and migrate them between versions.", no_args_is_help=True)
app.add_typer(config_app, name="config")

PathArg = Annotated[str, typer.Argument(help="a config file (config/config.exs, .json, .yaml, .toml) or a config/ directory")]
Json = Annotated[bool, typer.Option("--json", help="print exactly one JSON object on stdout")]
Address = Annotated[Optional[str], typer.Option("--address", help="Temporal address (default: TEMPORAL_ADDRESS or the embedded server)")]
Actor = Annotated[Optional[str], typer.Option("--actor", help="who runs it, for the audit log (default: the OS user)")]
WaitForLock = Annotated[bool, typer.Option("--wait-for-lock", help="wait while another run holds the files, instead of refusing (exit 3)")]


def _issue_lines(issues: list[Issue]) -> None:
    for i in issues:
        colour = "red" if i.severity == "error" else "yellow"
        out.print(f"[{colour}]{escape(i.text())}[/]", markup=True, highlight=False)


def report_refusal(exc: MigrateError, json_out: bool) -> int:
    """Report a refusal (bad input, a locked resource): one JSON object with ``json_out``, the message on stderr; its exit code."""
    if json_out:
        emit_json({"error": exc.message, "hint": exc.hint, "type": type(exc).__name__})
    err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True)
    return exc.exit_code


@config_app.command("check")
def check(
    path: PathArg,
    version: Annotated[Optional[str], typer.Option("--version", help="validate as this version instead of the detected one")] = None,
    json_out: Json = False,
) -> int:
    """Detect the version, validate every file: exit 0 valid, 1 invalid, 2 unreadable."""
    try:
        report = check_unit(load_unit(read_unit(path)), version, load_base(read_base(path)))
    except MigrateError as exc:
        return report_refusal(exc, json_out)
    if json_out:
        emit_json(report.as_json())
    else:
        _print_check(report)
    return 0 if report.valid else 1


def _print_check(report: CheckReport) -> None:
    out.print(f"version {report.detection.version} (detected)" + (f", validated as {report.version}" if report.version != report.detection.version else ""))
    for reason in report.detection.reasons:
        out.print(f"  because {reason}")
    _issue_lines(report.issues)
    errors = sum(1 for i in report.issues if i.severity == "error")
    warnings = len(report.issues) - errors
    verdict = "valid" if report.valid else "invalid"
    out.print(f"{verdict}: {errors} error(s), {warnings} warning(s) in {len(report.files)} file(s)")


def _print_plan(plan: MigrationPlan, changes: list[Change], findings: list[Finding]) -> None:
    diff = plan.diff()
    if diff:
        out.print(diff, markup=False, highlight=False, end="")
    out.print(f"\n{plan.from_version} -> {plan.to_version}: {len(changes)} change(s) in {sum(f.changed for f in plan.files)} of {len(plan.files)} file(s)")
    for c in changes:
        out.print("  " + c.line(), markup=False, highlight=False)
    if findings:
        out.print(f"\n{len(findings)} finding(s) need a person's review:")
        for f in findings:
            out.print("  " + f.text(), markup=False, highlight=False)
    _issue_lines(plan.issues)


@config_app.command("migrate")
def migrate(
    path: PathArg,
    to: Annotated[str, typer.Option("--to", help="target Snakepit version (0.3, 0.5, 0.6, 0.7, 0.8, 0.10, 0.13)")],
    from_: Annotated[Optional[str], typer.Option("--from", help="source version (default: detected from the keys)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the diff and the changes; write nothing")] = False,
    accept_findings: Annotated[bool, typer.Option("--accept-findings", help="proceed although some settings need review")] = False,
    migration_id: Annotated[Optional[str], typer.Option("--id", help="the migration id (default: config-<random>)")] = None,
    actor: Actor = None,
    wait_for_lock: WaitForLock = False,
    address: Address = None,
    json_out: Json = False,
) -> int:
    """Convert a config file or directory to another version (all files or none, backed up, validated).

    The run locks the path: while another migration holds it, it is refused
    with exit 3 naming the holder (or waits, with --wait-for-lock). Its steps,
    and who accepted the findings, are written to the audit log.
    """
    try:
        plan = plan_unit(load_unit(read_unit(path)), to, from_, load_base(read_base(path)))
    except MigrateError as exc:
        return report_refusal(exc, json_out)
    if dry_run:
        if json_out:
            emit_json({"status": "dry_run", "migration_id": None, **plan.as_json(), "diff": plan.diff()})
        else:
            _print_plan(plan, plan.changes, plan.findings)
            out.print("dry run: nothing written" + ("" if plan.valid else " (the result would not validate)"))
        return 0 if plan.valid else 1
    from activities.config_files import refusal

    refused = refusal(plan.to_version, plan.findings, [i for i in plan.issues if i.severity == "error"], accept_findings)
    if refused is not None:
        if json_out:
            emit_json({"status": "refused", "migration_id": None, "error": refused.message, "hint": refused.hint, "type": type(refused).__name__, **plan.as_json()})
        else:
            _print_plan(plan, plan.changes, plan.findings)
        err.print(f"[bold red]error:[/] {escape(str(refused))}", markup=True)
        return refused.exit_code
    if not plan.changed:
        if json_out:
            emit_json({"status": "unchanged", "migration_id": None, "backup": None, **plan.as_json()})
        else:
            out.print(f"{path} is already {plan.to_version}: nothing to change")
        return 0
    params: dict[str, Any] = {"path": str(Path(path).resolve()), "to_version": to, "accept_findings": accept_findings}
    if from_:
        params["from_version"] = from_
    if wait_for_lock:
        params["wait_for_lock"] = True
    params["actor"], params["actor_host"] = default_actor(actor)
    return _refused_or(lambda: run(_run_workflow(params, address, json_out, migration_id)), json_out)


@config_app.command("rollback")
def rollback(
    migration_id: Annotated[str, typer.Argument(help="the id of a completed config migration")],
    force: Annotated[bool, typer.Option("--force", help="restore even files edited since the migration")] = False,
    actor: Actor = None,
    address: Address = None,
    json_out: Json = False,
) -> int:
    """Restore the files of a config migration byte for byte from its backup."""
    name, host = default_actor(actor)
    params = {"rollback_of": migration_id, "force": force, "actor": name, "actor_host": host}
    return _refused_or(lambda: run(_run_workflow(params, address, json_out, _rollback_id(migration_id))), json_out)


def _refused_or(command: Any, json_out: bool) -> int:
    """Run ``command``; a locked path is reported as a refusal (exit 3)."""
    try:
        return command()
    except ResourceLocked as exc:
        return report_refusal(exc, json_out)


def _rollback_id(migration_id: str) -> str:
    """The id of the run that restores ``migration_id``, as for every migration type: ``<id>-rollback``."""
    return f"{migration_id}-rollback"


async def start_config_workflow(
    client: Client, params: dict[str, Any], migration_id: str | None = None, task_queue: str = TASK_QUEUE
) -> Any:
    """Start ``ConfigMigration`` and return its result, also when it failed and was rolled back."""
    from workflows.config_migration import ConfigMigrationResult

    workflow_id = migration_id or f"config-{uuid.uuid4().hex[:8]}"
    try:
        handle = await client.start_workflow(
            "ConfigMigration", params, id=workflow_id, task_queue=task_queue, result_type=ConfigMigrationResult
        )
    except WorkflowAlreadyStartedError:
        raise BadInput(f"{workflow_id} is already running", hint=f"follow it with: snakepit-migrate status {workflow_id}") from None
    try:
        return await handle.result()
    except WorkflowFailureError as exc:
        if is_lock_refusal(exc):  # a lock taken between the CLI's check and the start
            raise await locked_after_start(client, exc, run_resources("config", params)) from None
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.details:
            return ConfigMigrationResult.model_validate(cause.details[0])
        raise MigrateError(f"config migration {handle.id} failed: {cause or exc}") from None


async def rollback_config(client: Client, migration_id: str, force: bool = False, task_queue: str = TASK_QUEUE) -> Any:
    """Restore a completed config migration (what ``snakepit-migrate rollback ID`` runs for a ConfigMigration)."""
    params = await _with_path(client, {"rollback_of": migration_id, "force": force})
    await refuse_if_locked(client, "config", params)
    return await start_config_workflow(client, params, _rollback_id(migration_id), task_queue)


async def _with_path(client: Client, params: dict[str, Any]) -> dict[str, Any]:
    """A restore's params with the path the migration it undoes changed, so that the restore locks it too."""
    from temporalio.service import RPCError

    from client import api
    from deployment.errors import NotFound

    if params.get("rollback_of") and not params.get("path"):
        try:
            path = (await api.original_input(client, params["rollback_of"])).get("path")
        except (NotFound, RPCError):  # an unknown id: the restore itself says so (NoConfigFound)
            path = None
        if path:
            params = {**params, "path": path}
    return params


async def _run_workflow(params: dict[str, Any], address: str | None, json_out: bool, migration_id: str | None = None) -> int:
    from client.embedded import ensure_client, worker_while_waiting

    client = await ensure_client(address)
    params = await _with_path(client, params)
    await refuse_if_locked(client, "config", params)
    async with worker_while_waiting(client):
        result = await start_config_workflow(client, params, migration_id)
    return report(result, json_out)


_REFUSALS = {"FileChanged", "NoConfigFound", "FindingsNotAccepted", "LossyDownConversion", "UnknownVersion", "ConfigParseError", "InvalidInput"}


def report(result: Any, json_out: bool) -> int:
    """Print a ConfigMigration result; exit 0 when it completed (or restored), 2 when refused for bad input, else 1."""
    ok = result.status in ("completed", "unchanged", "dry_run") or (result.status == "rolled_back" and not result.error)
    code = 0 if ok else 2 if result.status in ("refused", "failed") and result.error_type in _REFUSALS else 1
    if json_out:
        emit_json(result.model_dump())
        return code
    if result.status == "completed":
        for c in result.changes:
            out.print("  " + c.line(), markup=False, highlight=False)
        out.print(f"{result.migration_id}: migrated {result.path} from {result.from_version} to {result.to_version}: {len(result.changes)} change(s) in {len(result.files_written)} file(s)")
        if result.backup:
            out.print(f"backup: {result.backup.directory} (undo with: snakepit-migrate config rollback {result.migration_id})")
    elif result.status == "rolled_back" and not result.error:
        out.print(f"{result.migration_id}: restored {len(result.restored)} file(s) byte for byte from the backup")
    else:
        err.print(f"[bold red]{result.migration_id}: {result.status}[/]: {escape(str(result.error))}", markup=True)
        if result.restored:
            err.print(f"restored from the backup: {', '.join(result.restored)}")
    return code
