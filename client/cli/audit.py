"""``snakepit-migrate audit ...``, ``history`` and ``report``: the audit trail, the Temporal history and the report of a run."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer

from client import api
from client.cli import app
from client.cli.common import emit_json, out, run
from client.embedded import ensure_client
from deployment.audit import AuditEntry, ChainReport, now_ts, open_audit_log, parse_since
from deployment.audit.export import FORMATS, export_entries
from deployment.audit.report import FORMATS as REPORT_FORMATS, build_report, child_section, compare_reports, render_comparison, render_report
from deployment.errors import BadInput, NotFound

audit_app = typer.Typer(
    help="The audit trail: every action of every migration, append-only and hash-chained "
    "(SNAKEPIT_AUDIT_URL, default sqlite://$SNAKEPIT_MIGRATE_HOME/audit.db).",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")

Url = Annotated[Optional[str], typer.Option("--url", help="the audit log URL (default: SNAKEPIT_AUDIT_URL, else audit.db in the home)")]
Address = Annotated[Optional[str], typer.Option("--address", help="Temporal address (default: TEMPORAL_ADDRESS or the embedded server)")]


@audit_app.command("verify")
def verify(url: Url = None, json_out: Annotated[bool, typer.Option("--json", help="print exactly one JSON object")] = False) -> int:
    """Recompute the hash chain; name every edited, removed or reordered entry.

    Exit 0 when the chain is intact, 1 when it is broken, 2 when the log cannot be read.
    """
    report = run(_verify(url))
    if json_out:
        emit_json(report.model_dump())
    else:
        out.print(render_verify(report))
    return 0 if report.ok else 1


async def _verify(url: str | None) -> ChainReport:
    async with open_audit_log(url) as log:
        return await log.verify()


def render_verify(report: ChainReport) -> str:
    """A short human report of a verification."""
    if report.ok:
        return f"INTACT: {report.entries} entries, chain head {report.head}"
    lines = [f"BROKEN: {len(report.problems)} problem(s) in {report.entries} entries"]
    lines += [f"  {p.kind}: {p.message}" for p in report.problems]
    return "\n".join(lines)


@audit_app.command("export")
def export(
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv")] = "jsonl",
    since: Annotated[Optional[str], typer.Option("--since", help="from this time on: ISO date/time (UTC) or an age (90m, 2h, 7d)")] = None,
    migration: Annotated[Optional[str], typer.Option("--migration", help="only the entries of this migration id")] = None,
    url: Url = None,
) -> int:
    """Write the audit entries to stdout, oldest first."""
    if fmt not in FORMATS:
        raise BadInput(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    start = parse_since(since) if since else None
    sys.stdout.write(run(_export(url, start, migration, fmt)))
    return 0


async def _export(url: str | None, since: str | None, migration: str | None, fmt: str) -> str:
    async with open_audit_log(url) as log:
        return export_entries(await log.entries(since=since, migration=migration), fmt)


@app.command("history")
def history(migration_id: Annotated[str, typer.Argument(help="the migration id")], address: Address = None) -> int:
    """Write the migration's Temporal event history as JSON to stdout (e.g. > run.json), for replay or an audit."""
    sys.stdout.write(run(_history(migration_id, address)) + "\n")
    return 0


async def _history(migration_id: str, address: str | None) -> str:
    client = await ensure_client(address)
    return await api.export_history(client, migration_id)


@app.command("report")
def report(
    ids: Annotated[Optional[list[str]], typer.Argument(help="the migration id; with --compare, two run ids", show_default=False)] = None,
    compare: Annotated[bool, typer.Option("--compare", help="put two runs (plans or single migrations) side by side")] = False,
    fmt: Annotated[str, typer.Option("--format", help="md, html (one self-contained file) or json")] = "md",
    json_out: Annotated[bool, typer.Option("--json", help="the same as --format json: exactly one JSON object")] = False,
    url: Url = None,
    address: Address = None,
) -> int:
    """The final report of a migration to stdout: before and after, each step with its timing, validation,
    data integrity, its own figures and findings, impact, rollback and totals, from its result and its audit
    entries. A plan's report covers every child and the plan's totals.

    With --compare RUN_A RUN_B: the two runs side by side (durations, counts, findings; for plans, per step).
    """
    fmt = "json" if json_out else fmt
    if fmt not in REPORT_FORMATS:
        raise BadInput(f"--format {fmt!r} is not one of {', '.join(REPORT_FORMATS)}")
    ids = ids or []
    if compare and len(ids) != 2:
        raise BadInput(f"--compare takes two run ids, got {len(ids)}", hint="snakepit-migrate report --compare RUN_A RUN_B")
    if not compare and len(ids) != 1:
        raise BadInput(f"report takes one migration id, got {len(ids)}",
                       hint="snakepit-migrate report ID, or to compare two runs: snakepit-migrate report --compare RUN_A RUN_B")  # fmt: skip
    if compare:
        sys.stdout.write(run(_compare(ids[0], ids[1], fmt, url, address)))
    else:
        sys.stdout.write(run(_report(ids[0], fmt, url, address)))
    return 0


async def _report(migration_id: str, fmt: str, url: str | None, address: str | None) -> str:
    client = await ensure_client(address)
    async with open_audit_log(url) as log:
        return render_report(await full_report(client, log, migration_id), fmt)


async def _compare(run_a: str, run_b: str, fmt: str, url: str | None, address: str | None) -> str:
    client = await ensure_client(address)
    async with open_audit_log(url) as log:
        a, b = await full_report(client, log, run_a), await full_report(client, log, run_b)
    return render_comparison(compare_reports(a, b), fmt)


async def full_report(client: Any, log: Any, migration_id: str) -> dict[str, Any]:
    """The report of one run from its description and audit entries; a plan's with every child's report."""
    info = await api.describe(client, migration_id)
    chain_ok = (await log.verify()).ok
    children = None
    if info["type"] == "MigrationPlan":
        steps = (info.get("result") or info.get("progress") or {}).get("steps") or []
        children = []
        for step in steps:
            try:
                child_info = await api.describe(client, step["child_id"])
            except NotFound:  # never started (skipped, or not reached yet)
                children.append(child_section(step, None))
                continue
            child = build_report(child_info, await log.entries(migration=step["child_id"]), chain_ok)
            children.append(child_section(step, child))
    return build_report(info, await log.entries(migration=migration_id), chain_ok, children)


async def record_request(event: str, info: dict[str, Any], actor: tuple[str, str]) -> None:
    """Append what an operator asked of a migration (``info`` from ``api.describe``) to the audit log, with who asked."""
    async with open_audit_log() as log:
        await log.append(AuditEntry(
            ts=now_ts(), actor=actor[0], host=actor[1], event=event, migration_id=info["migration_id"],
            workflow_id=info["migration_id"], before={"type": info["type"], "status": info["status"]},
        ))  # fmt: skip
