"""``snakepit-migrate adapter ...``: analyze custom adapters and verify their generic mapping."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from client.cli import app
from client.cli.common import emit_json, out
from deployment.adapters.analyzer import analyze_path
from deployment.adapters.equivalence import EquivalenceReport, Limits, Tolerance, read_cases, read_records, verify
from deployment.adapters.errors import GenericConfigError
from deployment.adapters.generic import GenericConfig
from deployment.adapters.model import AnalysisReport
from deployment.adapters.proposal import propose_config
from deployment.errors import BadInput

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
