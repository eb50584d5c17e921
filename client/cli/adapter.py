"""``snakepit-migrate adapter ...``: analyze custom adapters and verify their generic mapping."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from pydantic import ValidationError

from activities.adapters import recorded_calls
from client import api
from client.cli import app
from client.cli.common import emit_json, err, out, run
from client.cli.config import report_refusal
from client.cli.locks import is_lock_refusal, locked_after_start, refuse_if_locked
from client.cli.progress import ProgressView
from client.embedded import ensure_client, worker_while_waiting
from deployment.adapters.analyzer import analyze_path
from deployment.adapters.equivalence import EquivalenceReport, Limits, Tolerance, read_cases, read_records, verify
from deployment.adapters.errors import GenericConfigError
from deployment.adapters.generic import GenericConfig
from deployment.adapters.model import AnalysisReport
from deployment.adapters.proposal import propose_config
from deployment.audit import default_actor
from deployment.errors import BadInput
from deployment.fleet import open_fleet
from deployment.plans.errors import ResourceLocked
from temporalio.client import WorkflowFailureError
from workflows.adapter_models import AdapterMigrationInput, AdapterMigrationResult
from workflows.locks import run_resources

adapter_app = typer.Typer(help="Analyze custom Python adapters and prove their generic-adapter mapping equivalent.")
app.add_typer(adapter_app, name="adapter")

SourcePath = Annotated[str, typer.Argument(help="the adapter: a .py file or a package directory (read, never imported)")]
Json = Annotated[bool, typer.Option("--json", help="print exactly one JSON object on stdout")]
WriteConfig = Annotated[Optional[str], typer.Option("--write-config", help="also write the generic configuration to this JSON file")]


@adapter_app.command("analyze")
def analyze(path: SourcePath, write_config: WriteConfig = None, json_out: Json = False) -> int:
    """List every adapter and tool, say which tools migrate to the generic adapter and why the others do not.

    Prints the proposed generic configuration (libraries, function filters,
    allowed modules, tool aliases). Exit 0, or 2 when PATH is unreadable,
    malformed, or holds no adapter.
    """
    report = analyze_path(path)
    config = propose_config(report)
    if write_config:
        _write_json(write_config, config)
    if json_out:
        emit_json({"report": report.to_dict(), "proposed_config": config})
    else:
        out.print(render_analysis(report, config, write_config), markup=False, highlight=False)
    return 0


@adapter_app.command("verify")
def verify_cmd(
    path: SourcePath,
    generic: Annotated[str, typer.Option("--generic", help="the generic configuration (JSON) to verify")],
    samples: Annotated[Optional[str], typer.Option("--samples", help='JSONL of {"tool": ..., "arguments": {...}} to run')] = None,
    traffic: Annotated[Optional[str], typer.Option("--traffic", help="JSONL of calls recorded by the fleet")] = None,
    accept: Annotated[Optional[list[str]], typer.Option("--accept-mismatch", help="migrate this tool despite mismatches (repeatable)")] = None,
    examples: Annotated[int, typer.Option("--examples", min=0, max=10_000, help="inputs generated per tool from its annotations")] = 50,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="seconds each side may take for a tool's cases")] = 30.0,
    memory_mb: Annotated[int, typer.Option("--memory-mb", min=64, help="address-space limit of each side")] = 1024,
    python: Annotated[Optional[str], typer.Option("--python", help="interpreter the custom adapter runs under (default: this one)")] = None,
    rel_tol: Annotated[float, typer.Option("--rel-tol", min=0, help="relative tolerance for floats")] = 1e-9,
    abs_tol: Annotated[float, typer.Option("--abs-tol", min=0, help="absolute tolerance for floats")] = 1e-12,
    write_config: Annotated[Optional[str], typer.Option("--write-config", help="write the verified (possibly mixed) configuration here")] = None,
    json_out: Json = False,
) -> int:
    """Run each aliased tool through the custom and the generic adapter on the same inputs and compare.

    A mismatch keeps that tool on the custom adapter unless you pass
    --accept-mismatch TOOL. Exit 0 when every aliased tool verified (or was
    accepted), 1 when some stay custom, 2 on bad input.
    """
    report = analyze_path(path)
    config = _read_config(generic)
    accepted = set(accept or [])
    unknown = sorted(accepted - set(config.get("tool_aliases", {})))
    if unknown:
        raise BadInput(f"--accept-mismatch {unknown[0]}: the generic config has no alias of that name",
                       hint="name a tool listed under tool_aliases")
    if python and not shutil.which(python):
        raise BadInput(f"--python {python}: no such interpreter", hint="give the path of the python the adapter runs under")
    limits = Limits(timeout=timeout, memory_mb=memory_mb, **({"python": shutil.which(python)} if python else {}))
    result = verify(
        report,
        config,
        samples=read_cases(samples) if samples else None,
        traffic=read_records(traffic) if traffic else None,
        examples=examples,
        accept=accepted,
        tolerance=Tolerance(rel_tol, abs_tol),
        limits=limits,
    )
    if write_config:
        _write_json(write_config, result.config)
    if json_out:
        emit_json(result.to_dict())
    else:
        out.print(render_verify(result, write_config), markup=False, highlight=False)
    return 0 if result.ok else 1


@adapter_app.command("migrate")
def migrate(
    path: SourcePath,
    fleet: Annotated[str, typer.Option("--fleet", help="the fleet front URL (or local:URL, command:HOOKS)")],
    config: Annotated[Path, typer.Option("--config", help="the pool config the fleet runs (.json, .yaml, .toml); rewritten")],
    traffic: Annotated[Optional[str], typer.Option("--traffic", help="JSONL of calls the fleet recorded (checked, then replayed live)")] = None,
    samples: Annotated[Optional[str], typer.Option("--samples", help='JSONL of {"tool": ..., "arguments": {...}} to check')] = None,
    generic: Annotated[Optional[str], typer.Option("--generic", help="roll out this generic configuration (JSON) instead of the proposed one")] = None,
    generic_path: Annotated[Optional[str], typer.Option("--write-generic", help="where to write the generic configuration (default: generic-adapter.json next to --config)")] = None,
    pool: Annotated[Optional[str], typer.Option("--pool", help="the config's pool the fleet runs (default: its first)")] = None,
    accept: Annotated[Optional[list[str]], typer.Option("--accept-mismatch", help="migrate this tool despite mismatches (repeatable)")] = None,
    examples: Annotated[int, typer.Option("--examples", min=0, max=10_000, help="inputs generated per tool from its annotations")] = 50,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, max=3600, help="seconds each side of the check may take per tool")] = 30.0,
    drain_timeout: Annotated[float, typer.Option("--drain-timeout", min=0.1, max=600, help="seconds in-flight requests may take")] = 30.0,
    health_timeout: Annotated[float, typer.Option("--health-timeout", min=0.1, max=600, help="seconds a restarted instance may take to be healthy")] = 60.0,
    settle: Annotated[float, typer.Option("--settle", min=0, max=600, help="seconds it must then stay healthy")] = 2.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="analyze and verify, report, change nothing")] = False,
    migration_id: Annotated[Optional[str], typer.Option("--id", help="the migration id (default: generated)")] = None,
    actor: Annotated[Optional[str], typer.Option("--actor", help="who runs it, for the audit log (default: the OS user)")] = None,
    wait_for_lock: Annotated[bool, typer.Option("--wait-for-lock", help="wait while another run holds the fleet or a file, instead of refusing (exit 3)")] = False,
    stall_alert: Annotated[float, typer.Option("--stall-alert", min=1, help="alert when the check or the rollout has not finished after this many seconds")] = 1800.0,
    address: Annotated[Optional[str], typer.Option("--address", help="Temporal address (default: TEMPORAL_ADDRESS or the embedded server)")] = None,
    json_out: Json = False,
) -> int:
    """Move a running fleet from its custom adapter to the generic adapter, proven equivalent before and after.

    Analyzes PATH, verifies every migratable tool against its generic mapping
    (a tool that does not match stays on the custom adapter unless accepted),
    backs up --config, writes the generic configuration and the pool config
    onto it, restarts the fleet one instance at a time, and replays --traffic
    against the live fleet. Any failure puts both files back byte for byte and
    the fleet back on the old config. The run locks the fleet and its files:
    while another migration holds one, it is refused with exit 3 naming the
    holder (or waits, with --wait-for-lock). Exit 0 on success, 1 if it failed
    (rolled back or not), 2 on bad input (nothing changed), 3 locked.
    """
    analyze_path(path)  # an unreadable or adapter-less PATH is refused here (exit 2)
    if traffic:
        recorded_calls(traffic)  # a malformed line is refused here, with its number
    if samples:
        read_records(samples)
    if generic:
        _read_config(generic)
    try:
        inp = AdapterMigrationInput(
            path=str(Path(path).resolve()), fleet=fleet, config_path=str(config.resolve()), pool=pool,
            generic=str(Path(generic).resolve()) if generic else None,
            generic_path=str(Path(generic_path).resolve()) if generic_path else None,
            traffic=str(Path(traffic).resolve()) if traffic else None, samples=str(Path(samples).resolve()) if samples else None,
            examples=examples, accept_mismatch=accept or [], sandbox_timeout_s=timeout, drain_timeout_s=drain_timeout,
            health_timeout_s=health_timeout, settle_s=settle, dry_run=dry_run, wait_for_lock=wait_for_lock,
            stall_alert_seconds=stall_alert,
        )  # fmt: skip
    except ValidationError as exc:
        raise BadInput("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
    inp.actor, inp.actor_host = default_actor(actor)
    open_fleet(inp.spec)  # an unknown fleet spec is refused here (exit 2)
    try:
        return run(_migrate(inp, migration_id, address, json_out))
    except ResourceLocked as exc:
        return report_refusal(exc, json_out)


async def _migrate(inp: AdapterMigrationInput, migration_id: str | None, address: str | None, json_out: bool) -> int:
    client = await ensure_client(address)
    await refuse_if_locked(client, "adapter", inp.lock_params())
    try:
        return await _follow(client, await api.start_adapter_migration(client, inp, migration_id), json_out)
    except WorkflowFailureError as exc:  # a lock taken between the check and the start
        if is_lock_refusal(exc):
            raise await locked_after_start(client, exc, run_resources("adapter", inp.lock_params())) from None
        raise


async def _follow(client: Any, handle: Any, json_out: bool) -> int:
    async with worker_while_waiting(client, handle):
        with ProgressView(quiet=json_out and not err.is_terminal, unit="steps") as view:
            return report_migration(await api.wait_for_adapter_migration(handle, view), json_out)


def report_migration(result: AdapterMigrationResult, json_out: bool) -> int:
    """Print an adapter migration's result (one JSON object with ``json_out``) and return its exit code."""
    if json_out:
        emit_json(result.model_dump())
    else:
        out.print(render_migration(result), markup=False, highlight=False)
    return migration_exit_code(result)


async def rollback_run(client: Any, migration_id: str, json_out: bool) -> int:
    """``rollback ID`` of an adapter migration: signal a running one, undo a completed one, and report.

    The undo of a completed one locks what the migration did (fleet, files): refused with exit 3 while another run holds them.
    """
    info = await api.describe(client, migration_id)
    undo = None
    if info["status"] != "running":
        try:
            done = await api.original_input(client, migration_id)
            undo = AdapterMigrationInput.model_validate({**done, "rollback_of": migration_id, "dry_run": False})
        except ValidationError:  # not an adapter migration's input: request_adapter_rollback says what is wrong
            undo = None
    if undo is not None:
        await refuse_if_locked(client, "adapter", undo.lock_params())
    handle = await api.request_adapter_rollback(client, migration_id, info)
    try:
        async with worker_while_waiting(client, handle):
            with ProgressView(quiet=json_out and not err.is_terminal, unit="steps") as view:
                result = await api.wait_for_adapter_migration(handle, view)
    except WorkflowFailureError as exc:  # a lock taken between the check and the start
        if is_lock_refusal(exc) and undo is not None:
            raise await locked_after_start(client, exc, run_resources("adapter", undo.lock_params())) from None
        raise
    if handle.id == migration_id and result.status == "rolled_back" and result.error_type == "RollbackRequested":
        result.error = None  # a requested rollback that completed is a success of this command
    return report_migration(result, json_out)


async def show_status(client: Any, info: dict[str, Any], watch: bool, json_out: bool) -> int:
    """``status`` of an adapter migration: its progress, or its result as ``adapter migrate`` prints it."""
    if watch and info["status"] == "running":
        return await _follow(client, client.get_workflow_handle(info["migration_id"]), json_out)
    if json_out:
        emit_json(info)
    elif info["status"] == "running":
        p = info["progress"]
        out.print(f"{info['migration_id']}: running, phase {p['phase']}, step {p['done']}/{p['total']}: {p['message']}",
                  markup=False, highlight=False)
    elif info.get("result"):
        out.print(render_migration(AdapterMigrationResult.model_validate(info["result"])), markup=False, highlight=False)
    else:
        out.print(f"{info['migration_id']}: {info['status']}")
    return 0


# Failures found before anything was written that mean the input cannot work: exit 2.
BAD_INPUT_TYPES = {
    "InvalidInput", "BadInput", "AdapterSourceError", "NoAdapterFound", "GenericConfigError", "SamplesParseError",
    "PoolConfigError", "FleetUnreachable",
}  # fmt: skip


def migration_exit_code(result: AdapterMigrationResult) -> int:
    """0 success (or dry run), 2 bad input found before anything was written, 1 any other failure."""
    if result.error is None:
        return 0
    if result.failed_phase in ("pending", "analyzing", "inspecting", "verifying") and result.error_type in BAD_INPUT_TYPES:
        return 2
    return 1


def render_migration(r: AdapterMigrationResult) -> str:
    """A short human report of an adapter migration."""
    lines = [f"Adapter migration {r.migration_id}: {r.status.upper()}" + (" (dry run: nothing changed)" if r.dry_run else ""),
             f"  {r.path} on fleet {r.fleet}, pool config {r.config_path}"]
    if r.analysis:
        lines.append(f"  analysis: {len(r.analysis.tools)} tool(s), {r.analysis.migratable} migratable, {r.analysis.custom} stay custom")
    if r.verification:
        for t in r.verification.tools:
            lines.append(f"    {t.tool}: {t.status} -> {t.decision}  {t.matches}/{t.cases} matched" + (f"  {t.detail}" if t.detail else ""))
            if t.first_mismatch:
                lines.append(f"      first mismatch: {t.first_mismatch}")
        lines.append(f"  generic: {', '.join(r.verification.generic_tools) or 'none'}; custom: {', '.join(r.verification.custom_tools) or 'none'}")
    if r.backup and r.backup.config.backup_path:
        lines.append(f"  backup of the pool config: {r.backup.config.backup_path} ({r.backup.config.digest})")
    if r.written:
        lines.append(f"  wrote {r.written.generic_path} and {r.written.config_path} (config {r.written.config_version})")
    if r.rollout:
        lines.append(f"  rollout: {r.rollout.status}, {r.rollout.restarted} instance(s) restarted")
    if r.replay:
        lines.append(f"  live replay: {r.replay.matched}/{r.replay.replayed} recorded calls answered the same")
    if r.error:
        lines.append(f"  error: {r.error}")
        if r.rolled_back:
            lines.append("  rolled back: the pool config and the generic configuration file are as found, the fleet on its old config")
        elif r.status == "rollback_failed":
            lines.append("  the rollback did not finish: check the config file and the fleet (snakepit-migrate pool status)")
        else:
            lines.append("  nothing was changed")
    lines.append(f"  took {r.duration_s:.1f} s")
    return "\n".join(lines)


def _read_config(path: str) -> dict[str, Any]:
    """The generic config in ``path``: a config file, or the whole ``adapter analyze --json`` output."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return GenericConfig.load(path).raw  # raises the clear error for whatever is wrong
    if isinstance(raw, dict) and "libraries" not in raw and isinstance(raw.get("proposed_config"), dict):
        return GenericConfig.parse(raw["proposed_config"], f"{path}: proposed_config").raw
    return GenericConfig.load(path).raw


def _write_json(path: str, data: dict[str, Any]) -> None:
    try:
        Path(path).write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    except OSError as exc:
        raise GenericConfigError(f"{path}: cannot write the configuration ({exc.strerror or exc})") from None


def render_analysis(report: AnalysisReport, config: dict[str, Any], written: str | None) -> str:
    """Per adapter, per tool: migratable with its call, or not with reasons, lines and guidance."""
    lines: list[str] = []
    for a in report.adapters:
        lines.append(f"{a.name} ({a.generation.replace('_', ' ')}{', thread-safe' if a.thread_safe else ''})  {a.path}:{a.line}")
        for t in a.tools:
            params = ", ".join(p.name + ("" if p.required else f"={p.default!r}") for p in t.params)
            head = f"  {t.name}({params})  [{t.exposure}{', async' if t.is_async else ''}{', streaming' if t.streaming else ''}]"
            if t.migratable and t.mapping:
                m = t.mapping
                call_args = [_src(s) for s in m.args] + [f"{k}={_src(s)}" for k, s in m.kwargs.items()]
                call = f"{m.target}({', '.join(call_args)})"
                if m.wrap:
                    fields = [f"{k!r}: {v!r}" for k, v in m.wrap["constants"].items()] + [f"{m.wrap['result_key']!r}: {call}"]
                    call = "{" + ", ".join(fields) + "}"
                lines.append(f"{head}  MIGRATES -> {call}")
            else:
                lines.append(f"{head}  STAYS CUSTOM")
                for r in t.reasons:
                    lines.append(f"      {r.category}: {r.detail} (line {r.line}{': ' + r.source if r.source else ''})")
                    lines.append(f"        -> {r.guidance}")
        for note in a.notes:
            lines.append(f"  note: {note}")
    s = report.summary()
    lines.append(f"{s['adapters']} adapter(s), {s['tools']} tool(s): {s['migratable']} migrate, {s['custom']} stay custom")
    libs = ", ".join(f"{l['name']}[{', '.join(l['function_filters'])}]" for l in config["libraries"]) or "none"
    lines.append(f"proposed generic libraries: {libs}")
    lines.append(f"generic configuration written to {written}" if written else "write it with --write-config FILE (or see --json)")
    return "\n".join(lines)


def _src(source: dict[str, Any]) -> str:
    return source["param"] if "param" in source else repr(source["const"])


def render_verify(result: EquivalenceReport, written: str | None) -> str:
    """Per tool: cases, matches, the first mismatch with its input, and where the tool ends up."""
    lines = [f"{'EQUIVALENT' if result.ok else 'NOT ALL EQUIVALENT'} (floats within rel {result.tolerance.rel:g}, abs {result.tolerance.abs:g})"]
    for v in result.tools:
        src = ", ".join(f"{k} {n}" for k, n in v.sources.items() if n)
        lines.append(f"  {v.tool}: {v.status.upper()} -> {v.decision}  {v.matches}/{v.cases} matched" + (f" ({src})" if src else ""))
        if v.detail:
            lines.append(f"      {v.detail}")
        if v.first_mismatch:
            fm = v.first_mismatch
            lines.append(f"      first mismatch: arguments {json.dumps(fm['arguments'])[:200]}")
            lines.append(f"        custom:  {_outcome(fm['custom'])}")
            lines.append(f"        generic: {_outcome(fm['generic'])}")
        if v.recorded.get("cases"):
            lines.append(f"      recorded results reproduced: {v.recorded['matches']}/{v.recorded['cases']}")
        if v.recorded_mismatch:
            rm = v.recorded_mismatch
            lines.append(f"      first recorded call not reproduced: arguments {json.dumps(rm['arguments'])[:200]}")
            lines.append(f"        recorded: {json.dumps(rm['recorded'])[:200]}")
            lines.append(f"        custom:   {_outcome(rm['custom'])}")
    if written:
        lines.append(f"verified configuration written to {written}")
    return "\n".join(lines)


def _outcome(o: dict[str, Any]) -> str:
    if o["ok"]:
        return json.dumps(o["value"])[:200]
    return f"raised {o['error']['type']}: {o['error']['message'][:200]}"
