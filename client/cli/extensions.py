"""``snakepit-migrate extensions ...``: list custom migrations and run one as a saga."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from temporalio.client import WorkflowFailureError

from client import api
from client.cli import app
from client.cli.common import emit_json, err, out, run
from client.cli.locks import is_lock_refusal, locked_after_start, refuse_if_locked
from client.cli.progress import ProgressView
from client.embedded import ensure_client, worker_while_waiting
from deployment.audit import default_actor
from deployment.errors import BadInput, MigrateError
from deployment.extensions.base import instantiate
from deployment.extensions.registry import load_extension
from workflows.locks import run_resources
from workflows.extension_models import CustomMigrationInput, CustomMigrationResult, ExtensionProgress

extensions_app = typer.Typer(help="Custom migrations: list the registered extensions and run one with rollback.")
app.add_typer(extensions_app, name="extensions")

Address = Annotated[Optional[str], typer.Option("--address", help="Temporal address (default: TEMPORAL_ADDRESS or the embedded server)")]
Json = Annotated[bool, typer.Option("--json", help="print exactly one JSON object on stdout")]


@extensions_app.command("list")
def list_(json_out: Json = False) -> int:
    """The extensions shipped and installed (entry points), with versions; broken ones with their error.

    Exit 0 when every one loads, 1 when some are broken.
    """
    rows = api.list_extensions()
    if json_out:
        emit_json({"extensions": rows})
    else:
        table = Table("name", "version", "source", "reference", "status")
        for r in rows:
            table.add_row(r["name"] or "?", r["version"] or "?", r["source"], r["reference"], "ok" if r["ok"] else f"BROKEN: {r['error']}")
        out.print(table)
    return 0 if all(r["ok"] for r in rows) else 1


@extensions_app.command("show")
def show(
    reference: Annotated[str, typer.Argument(help="a registered name (see: extensions list) or module:Class")],
    json_out: Json = False,
) -> int:
    """One extension: name, version, description and its parameters (what --params accepts)."""
    cls = load_extension(reference)
    schema = cls.Params.model_json_schema()
    if json_out:
        emit_json({"name": cls.name, "version": cls.version, "reference": f"{cls.__module__}:{cls.__qualname__}",
                   "description": cls.description or (cls.__doc__ or "").strip(), "params_schema": schema})  # fmt: skip
        return 0
    out.print(f"{cls.name} {cls.version} ({cls.__module__}:{cls.__qualname__})")
    out.print(f"  {(cls.description or cls.__doc__ or '').strip()}")
    required = set(schema.get("required", []))
    table = Table("parameter", "type", "default", "description")
    for name, field in cls.Params.model_fields.items():
        kind = getattr(field.annotation, "__name__", None) or str(field.annotation).replace("typing.", "")
        default = "(required)" if name in required else json.dumps(field.default, default=str)
        table.add_row(name, kind, default, field.description or "")
    out.print(table)
    return 0


@extensions_app.command("run")
def run_(
    reference: Annotated[str, typer.Argument(help="a registered name (see: extensions list) or module:Class")],
    params: Annotated[str, typer.Option("--params", help="the parameters: a JSON object, or @file holding one")] = "{}",
    bindings: Annotated[Optional[str], typer.Option("--bindings", help="environment bindings for ${name} in params: JSON object or @file")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate and plan only; change nothing")] = False,
    max_per_second: Annotated[Optional[float], typer.Option("--max-per-second", min=0.001, help="throttle the apply step")] = None,
    migration_id: Annotated[Optional[str], typer.Option("--id", help="the migration id (default: generated)")] = None,
    wait_for_lock: Annotated[bool, typer.Option("--wait-for-lock", help="wait for resources another run holds instead of refusing (exit 3)")] = False,
    actor: Annotated[Optional[str], typer.Option("--actor", help="who runs it, for the audit log (default: the OS user)")] = None,
    stall_alert: Annotated[float, typer.Option("--stall-alert", min=1, help="alert when an apply slice reports no progress for this many seconds")] = 300.0,
    address: Address = None,
    json_out: Json = False,
) -> int:
    """Run an extension: validate, plan, apply with checkpoints, verify; roll back on failure.

    The run locks the resources the extension declares (and its bindings):
    another run holding one refuses the start (exit 3, naming it) unless
    --wait-for-lock. Every step is written to the audit log; a failure, a
    rollback or a stalled slice alerts. Exit 0 on success, 1 if the
    migration failed (rolled back or not), 2 on bad input, 3 when locked.
    """
    inp = CustomMigrationInput(
        extension=reference, params=json_object(params, "--params"),
        bindings={k: str(v) for k, v in json_object(bindings or "{}", "--bindings").items()},
        dry_run=dry_run, max_per_second=max_per_second, wait_for_lock=wait_for_lock, stall_alert_seconds=stall_alert,
    )  # fmt: skip
    inp.actor, inp.actor_host = default_actor(actor)
    declared = check_locally(inp)
    return run(_run(inp, declared, migration_id, address, json_out))


def json_object(text: str, option: str) -> dict[str, Any]:
    """The JSON object given inline or as ``@file``; BadInput saying what is wrong and where."""
    where = option
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        where = f"{option} file {path}"
        try:
            text = path.read_text()
        except OSError as exc:
            raise BadInput(f"cannot read {where}: {exc.strerror or exc}", hint=f"{option} @FILE names a JSON file") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                       hint=f"e.g. {option} '{{\"key\": \"value\"}}'") from None  # fmt: skip
    if not isinstance(value, dict):
        raise BadInput(f"{where} must be a JSON object, got {type(value).__name__}", hint=f"e.g. {option} '{{\"key\": \"value\"}}'")
    return value


def check_locally(inp: CustomMigrationInput) -> list[str]:
    """Load the extension here and check the parameters, so bad input is refused before anything starts;
    returns the resources it declares."""
    ext, params = instantiate(load_extension(inp.extension), inp.params, inp.bindings)
    return [str(r) for r in ext.resources(params)]


async def _run(inp: CustomMigrationInput, declared: list[str], migration_id: str | None, address: str | None, json_out: bool) -> int:
    client = await ensure_client(address)
    params = inp.model_dump()
    await refuse_if_locked(client, "custom", params, declared)
    handle = await api.start_custom_migration(client, inp, migration_id)
    try:
        async with worker_while_waiting(client, handle):
            with ProgressView(quiet=json_out and not err.is_terminal, unit="items") as view:
                result = await api.wait_for_custom_migration(handle, view)
    except WorkflowFailureError as exc:
        if is_lock_refusal(exc):  # taken between the check and the start
            raise await locked_after_start(client, exc, run_resources("custom", params, declared)) from None
        raise
    return report_result(result, json_out)


# Failures that mean the user's input cannot work, found before anything was written: exit 2.
BAD_INPUT_TYPES = {
    "InvalidInput", "BadInput", "ExtensionError", "ExtensionInvalid", "StoreUnreachable", "StoreMissing",
    "UnknownStoreScheme", "InvalidSession",
}  # fmt: skip


def exit_code(result: CustomMigrationResult) -> int:
    """0 success, 2 bad input found before apply (nothing written), 1 any other failure."""
    if result.error is None:
        return 0
    if result.failed_phase in (None, "pending", "resolving", "validating", "planning") and result.error_type in BAD_INPUT_TYPES:
        return 2
    return 1


def report_result(result: CustomMigrationResult, json_out: bool) -> int:
    """Print a custom migration's result and return its exit code."""
    if json_out:
        emit_json(result.model_dump())
    else:
        out.print(render(result))
    return exit_code(result)


def render(r: CustomMigrationResult) -> str:
    """A short human report of a custom migration's result."""
    what = f"{r.name} {r.version}" if r.name else r.extension
    lines = [f"Custom migration {r.migration_id} ({what}): {r.status.upper()}"]
    if r.plan:
        lines.append(f"  plan: {r.plan.summary}" + (" (dry run: nothing written)" if r.dry_run else ""))
    if r.rolled_back and r.error is None:
        lines.append(f"  rolled back: {r.rollback_message}")
    elif not r.dry_run and r.failed_phase not in ("pending", "resolving", "validating", "planning"):
        lines.append(f"  applied: {r.done} handled, {r.changed} changed, {r.checkpoints} checkpoints"
                     + (f", resumed {r.apply_resumes} time(s)" if r.apply_resumes else ""))  # fmt: skip
    if r.verification:
        v = r.verification
        lines.append(f"  verified: {'OK' if v.ok else 'FAILED'} ({v.checked} checked)")
        lines += [f"    {p}" for p in v.problems[:10]]
    if r.error:
        lines.append(f"  error: {r.error}")
        lines.append(f"  rolled back: {r.rollback_message}" if r.rolled_back else "  nothing was rolled back")
    lines.append(f"  took {r.duration_s:.1f} s")
    return "\n".join(lines)


@extensions_app.command("rollback")
def rollback(migration_id: Annotated[str, typer.Argument(help="the custom migration's id")], address: Address = None, json_out: Json = False) -> int:
    """Undo a custom migration: a running one stops and rolls back; a completed one is undone from its journal.

    The undo runs with the extension version the migration recorded: a worker
    with another major version refuses it. Exit 0 when rolled back, 1 if the
    rollback failed, 2 on bad input.
    """
    return run(_rollback(migration_id, address, json_out))


async def _rollback(migration_id: str, address: str | None, json_out: bool) -> int:
    return await rollback_run(await ensure_client(address), migration_id, json_out)


async def rollback_run(client: Any, migration_id: str, json_out: bool) -> int:
    """Roll a custom migration back, wait, print the result and return the exit code (also for ``rollback ID``)."""
    handle = await api.request_extension_rollback(client, migration_id)
    try:
        async with worker_while_waiting(client, handle):
            with ProgressView(quiet=json_out and not err.is_terminal, unit="items") as view:
                result = await api.wait_for_custom_migration(handle, view)
    except WorkflowFailureError as exc:
        if is_lock_refusal(exc):  # the undo run writes the same resources: another run holds one
            params = await api.original_input(client, handle.id)
            try:
                declared = check_locally(CustomMigrationInput.model_validate(params))
            except (MigrateError, ValueError):  # not installed here: the refusal still names the lock
                declared = []
            raise await locked_after_start(client, exc, run_resources("custom", params, declared)) from None
        raise
    if result.status == "rolled_back":
        result.error = None  # a requested rollback that completed is a success of this command
    return report_result(result, json_out)


@extensions_app.command("status")
def status(
    migration_id: Annotated[str, typer.Argument(help="the custom migration's id")],
    watch: Annotated[bool, typer.Option("--watch", help="follow it live until it ends")] = False,
    address: Address = None,
    json_out: Json = False,
) -> int:
    """Where a custom migration stands: phase, progress and extension version, or its result."""
    return run(_status(migration_id, watch, address, json_out))


async def _status(migration_id: str, watch: bool, address: str | None, json_out: bool) -> int:
    client = await ensure_client(address)
    info = await api.describe(client, migration_id)
    if info["type"] != "CustomMigration":
        raise BadInput(f"{migration_id} is a {info['type']}, not a custom migration", hint=f"use: snakepit-migrate status {migration_id}")
    return await show_status(client, info, watch, json_out)


async def show_status(client: Any, info: dict[str, Any], watch: bool, json_out: bool) -> int:
    """Print where a custom migration stands, or follow it with ``watch`` (also for ``status ID``)."""
    migration_id = info["migration_id"]
    if watch and info["status"] == "running":
        handle = client.get_workflow_handle(migration_id)
        async with worker_while_waiting(client, handle):
            with ProgressView(quiet=json_out and not err.is_terminal, unit="items") as view:
                return report_result(await api.wait_for_custom_migration(handle, view), json_out)
    if json_out:
        emit_json(info)
    elif info["status"] == "running":
        p = ExtensionProgress.model_validate(info["progress"])
        eta = f", ETA {p.eta_s:.0f} s" if p.eta_s is not None else ""
        out.print(f"{migration_id} ({p.extension or '?'} {p.version or ''}): running, phase {p.phase}, "
                  f"{p.done}/{p.total} ({p.rate_per_s:,.0f}/s{eta}) {p.message}")  # fmt: skip
    elif info.get("result"):
        out.print(render(CustomMigrationResult.model_validate(info["result"])))
    else:
        out.print(f"{migration_id}: {info['status']}")
    return 0
