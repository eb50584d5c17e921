"""``snakepit-migrate sessions ...``: move and compare session stores."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from client import api
from client.cli import app
from temporalio.client import WorkflowFailureError

from client.cli.common import emit_json, err, out, run
from client.cli.locks import is_lock_refusal, locked_after_start, refuse_if_locked
from workflows.locks import run_resources
from client.cli.progress import ProgressView
from client.paths import home
from client.search import indexing_available
from client.embedded import ensure_client, spawn_background_worker, worker_is_polling, worker_while_waiting
from deployment.audit import default_actor
from deployment.secrets import secrets_dir, stash_password
from deployment.sessions.stores import open_store, redact_url
from deployment.sessions.verify import VerifyReport, compare_stores
from workflows.session_models import MAX_BATCH_SIZE, MAX_PARALLELISM, ReconfigureInput, SessionMigrationInput, SessionMigrationResult

sessions_app = typer.Typer(help="Move sessions between stores (jsonl, sqlite, redis, postgresql) and compare them.")
app.add_typer(sessions_app, name="sessions")

Address = Annotated[Optional[str], typer.Option("--address", help="Temporal address (default: TEMPORAL_ADDRESS or the embedded server)")]
Json = Annotated[bool, typer.Option("--json", help="print exactly one JSON object on stdout")]
MigrationId = Annotated[str, typer.Argument(help="the migration id (see: snakepit-migrate list)")]


class CorruptChoice(str, Enum):
    stop = "stop"
    skip = "skip"


@sessions_app.command("migrate")
def migrate(
    source: Annotated[str, typer.Option("--from", help="source store URL, e.g. jsonl:///tmp/export.jsonl")],
    target: Annotated[str, typer.Option("--to", help="target store URL, e.g. postgresql://user@host/db")],
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=10_000, help="sessions per batch")] = 500,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="read and count everything, write nothing")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace target sessions with the same id")] = False,
    zero_downtime: Annotated[
        bool, typer.Option("--zero-downtime", help="the source serves live traffic: dual writes, backfill, switch, soak")
    ] = False,
    soak: Annotated[float, typer.Option("--soak", min=0, help="zero downtime: seconds reads come from the target before finalizing")] = 60.0,
    fleet: Annotated[Optional[str], typer.Option("--fleet", help="a fleet (front URL) whose health shows this migration")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="start it and return its id at once")] = False,
    migration_id: Annotated[Optional[str], typer.Option("--id", help="the migration id (default: generated)")] = None,
    actor: Annotated[Optional[str], typer.Option("--actor", help="who runs it, for the audit log (default: the OS user)")] = None,
    stall_alert: Annotated[float, typer.Option("--stall-alert", min=1, help="alert when a copy slice reports no progress for this many seconds")] = 300.0,
    parallelism: Annotated[int, typer.Option("--parallelism", min=1, max=MAX_PARALLELISM, help="key-space partitions copied at once")] = 4,
    rate: Annotated[Optional[float], typer.Option("--rate", min=0.001, help="at most this many sessions read per second (default: no limit)")] = None,
    on_corrupt: Annotated[
        CorruptChoice, typer.Option("--on-corrupt", help="a source record that does not decode or lacks fields: stop (roll back) or skip it (counted and listed)")
    ] = CorruptChoice.stop,
    wait_for_lock: Annotated[bool, typer.Option("--wait-for-lock", help="wait while another run holds the source, target or fleet")] = False,
    address: Address = None,
    json_out: Json = False,
) -> int:
    """Copy every live session from one store to another, verify, and roll back on failure.

    Expired sessions are skipped and counted; timestamps and TTLs are kept
    exactly. Exit 0 on success, 1 if the migration failed (rolled back or
    not), 2 on bad input.
    """
    inp = SessionMigrationInput(
        source=source, target=target, batch_size=batch_size, dry_run=dry_run, overwrite=overwrite,
        zero_downtime=zero_downtime, soak_seconds=soak, fleet=fleet, stall_alert_seconds=stall_alert,
        parallelism=parallelism, rate_limit_per_s=rate, on_corrupt=on_corrupt.value, wait_for_lock=wait_for_lock,
    )  # fmt: skip
    inp.actor, inp.actor_host = default_actor(actor)
    run(_check_urls(source, target))
    inp.source, inp.target = keep_passwords_out(source), keep_passwords_out(target)
    return run(_migrate(inp, migration_id, no_wait, address, json_out))


def keep_passwords_out(url: str) -> str:
    """The URL with a literal password moved into a secret file: the workflow's history only sees a reference."""
    stashed = stash_password(url)
    if stashed != url:
        err.print(f"The password of {redact_url(url)} is kept in {secrets_dir()} (mode 600); the workflow sees {stashed} "
                  "(the worker resolves the reference).")  # fmt: skip
    return stashed


async def _check_urls(*urls: str) -> None:
    for url in urls:
        open_store(url)  # raises a clear BadInput for an unknown scheme or a bad path


async def _migrate(inp: SessionMigrationInput, migration_id: str | None, no_wait: bool, address: str | None, json_out: bool) -> int:
    client = await ensure_client(address)
    params = inp.model_dump()
    await refuse_if_locked(client, "sessions", params)  # exit 3 naming the holder
    inp.search_attributes = await indexing_available(client)
    handle = await api.start_session_migration(client, inp, migration_id)
    if no_wait:
        if not await worker_is_polling(client):
            pid = spawn_background_worker(address)
            err.print(f"No worker was polling; started one in the background (pid {pid}, log {home() / 'worker.log'}).")
        if json_out:
            emit_json({"migration_id": handle.id, "status": "running"})
        else:
            out.print(f"Started {handle.id}. Follow it with: snakepit-migrate status {handle.id} --watch")
        return 0
    try:
        async with worker_while_waiting(client, handle):
            with ProgressView(quiet=json_out and not err.is_terminal) as view:
                result = await api.wait_for_result(handle, view)
    except WorkflowFailureError as exc:
        if is_lock_refusal(exc):  # a lock taken between the check and the start
            raise await locked_after_start(client, exc, run_resources("sessions", params)) from None
        raise
    return report_result(result, json_out)


# Failures of validation that mean the user's input cannot work: exit 2, nothing was written.
BAD_INPUT_TYPES = {
    "InvalidInput", "StoreUnreachable", "SnapshotParseError", "TargetNotCompatible", "QuotaExceeded",
    "UnknownStoreScheme", "BadInput", "InvalidSession", "NothingToRollBack",
}  # fmt: skip


def exit_code(result: SessionMigrationResult) -> int:
    """0 success, 2 bad input found while validating (nothing written), 1 any other failure."""
    if result.error is None:
        return 0
    if result.failed_phase in (None, "pending", "validating") and result.error_type in BAD_INPUT_TYPES:
        return 2
    if result.status == "failed" and result.error_type == "NothingToRollBack":
        return 2
    return 1


def report_result(result: SessionMigrationResult, json_out: bool) -> int:
    """Print a migration result and return its exit code."""
    if json_out:
        emit_json(summary(result))
    else:
        out.print(render(result))
    return exit_code(result)


def summary(result: SessionMigrationResult) -> dict:
    """The JSON contract of a migration result (plus the full detail)."""
    return {
        "migration_id": result.migration_id,
        "status": result.status,
        "sessions_copied": result.sessions_copied,
        "sessions_skipped_expired": result.sessions_skipped_expired,
        "source_digest": result.source_digest,
        "target_digest": result.target_digest,
        "duration_s": result.duration_s,
        "sessions_total": result.sessions_total,
        "batches": result.batches,
        "dry_run": result.dry_run,
        "rolled_back": result.rolled_back,
        "restored": result.restored,
        "error": result.error,
        "error_type": result.error_type,
        "sessions_corrupt": result.sessions_corrupt,
        "corrupt_ids": result.corrupt_ids,
        "partitions": result.partitions,
        "copy_sessions_per_s": result.copy_sessions_per_s,
        "continued_as_new": result.continued_as_new,
        "verification": result.verification.model_dump() if result.verification else None,
    }


def render(r: SessionMigrationResult) -> str:
    """A short human report of a migration result."""
    lines = [f"Migration {r.migration_id}: {r.status.upper()}", f"  {r.source} -> {r.target}"]
    if r.status == "rolled_back" and r.error is None:
        lines.append(f"  rolled back: {r.restored} session id(s) put back as they were")
    else:
        lines.append(
            f"  sessions: {r.sessions_total} read, {r.sessions_copied} copied, {r.sessions_skipped_expired} expired skipped"
            + (" (dry run: nothing written)" if r.dry_run else "")
        )
    if r.sessions_corrupt:
        lines.append(f"  corrupt, skipped: {r.sessions_corrupt} ({', '.join(r.corrupt_ids[:20])}"
                     + (" ..." if r.sessions_corrupt > 20 else "") + ")")  # fmt: skip
    if r.partitions:
        lines.append(f"  copy: {r.partitions} partition(s), batch {r.batch_size}, {r.copy_sessions_per_s:,.0f} sessions/s")
    if r.verification:
        v = r.verification
        lines.append(f"  verified: {'OK' if v.ok else 'MISMATCH'} ({v.matched} matched, {v.missing_count} missing, "
                     f"{v.mismatched_count} mismatched, {v.extra_count} extra)")
    if r.source_digest:
        lines.append(f"  source digest {r.source_digest}")
    if r.target_digest:
        lines.append(f"  target digest {r.target_digest}")
    if r.error:
        lines.append(f"  error: {r.error}")
        lines.append("  the target was rolled back to how it was found" if r.rolled_back else "  nothing was rolled back")
    lines.append(f"  took {r.duration_s:.1f} s")
    return "\n".join(lines)


@sessions_app.command("verify")
def verify(
    source: Annotated[str, typer.Option("--from", help="source store URL")],
    target: Annotated[str, typer.Option("--to", help="target store URL")],
    margin: Annotated[float, typer.Option("--margin", min=0, help="leave out sessions expiring within this many seconds")] = 30.0,
    json_out: Json = False,
) -> int:
    """Whether both stores hold the same live sessions; lists missing, extra and mismatched ids.

    Exit 0 when they match, 1 when they differ, 2 on bad input.
    """
    report = run(_verify(source, target, margin))
    if json_out:
        emit_json(report.model_dump())
    else:
        out.print(render_verify(report, source, target))
    return 0 if report.ok else 1


async def _verify(source: str, target: str, margin: float) -> VerifyReport:
    async with open_store(source, create=False) as src, open_store(target, create=False) as tgt:
        return await compare_stores(src, tgt, margin_seconds=margin)


def render_verify(v: VerifyReport, source: str, target: str) -> str:
    """A short human report of a comparison."""
    lines = [
        f"{'SAME' if v.ok else 'DIFFERENT'}: {v.source_live} live in source, {v.target_live} live in target, {v.matched} matched",
        f"  source digest {v.source_digest}",
        f"  target digest {v.target_digest}",
    ]
    for name, count, ids in (("missing from target", v.missing_count, v.missing), ("only in target", v.extra_count, v.extra),
                             ("different", v.mismatched_count, v.mismatched)):
        if count:
            lines.append(f"  {count} {name}: {', '.join(ids)}" + (" ..." if count > len(ids) else ""))
    return "\n".join(lines)


@sessions_app.command("reconfigure")
def reconfigure(
    migration_id: MigrationId,
    rate: Annotated[Optional[float], typer.Option("--rate", help="at most this many sessions read per second")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help=f"sessions per batch, 1 to {MAX_BATCH_SIZE}")] = None,
    parallelism: Annotated[Optional[int], typer.Option("--parallelism", help="partitions copying at once, 1 to the number planned")] = None,
    address: Address = None,
    json_out: Json = False,
) -> int:
    """Change the rate limit, batch size or parallelism of a running session migration.

    The copy slices started from now on use the new settings (within a
    couple of seconds). A value the migration refuses is exit 2 with the reason.
    """
    change = ReconfigureInput(rate_limit_per_s=rate, batch_size=batch_size, parallelism=parallelism)
    settings = run(_reconfigure(migration_id, change, address))
    if json_out:
        emit_json({"migration_id": migration_id, **settings.model_dump()})
    else:
        limit = f"{settings.rate_limit_per_s:g} sessions/s" if settings.rate_limit_per_s else "no rate limit"
        out.print(f"{migration_id}: batch {settings.batch_size}, parallelism {settings.parallelism}, {limit}"
                  + (", paused" if settings.paused else ""))  # fmt: skip
    return 0


async def _reconfigure(migration_id: str, change: ReconfigureInput, address: str | None):  # noqa: ANN202
    return await api.reconfigure_session_migration(await ensure_client(address), migration_id, change)


@sessions_app.command("pause")
def pause(migration_id: MigrationId, address: Address = None, json_out: Json = False) -> int:
    """Pause a running session migration's copy: slices under way finish, no new one starts until resume."""
    return _pause(migration_id, True, address, json_out)


@sessions_app.command("resume")
def resume(migration_id: MigrationId, address: Address = None, json_out: Json = False) -> int:
    """Resume a paused session migration's copy."""
    return _pause(migration_id, False, address, json_out)


def _pause(migration_id: str, paused: bool, address: str | None, json_out: bool) -> int:
    async def send() -> None:
        await api.pause_session_migration(await ensure_client(address), migration_id, paused)

    run(send())
    if json_out:
        emit_json({"migration_id": migration_id, "paused": paused})
    else:
        out.print(f"{migration_id}: {'paused' if paused else 'resumed'}")
    return 0
