"""``snakepit-migrate recover``: find what interrupted migrations left in stores, and clean it up or resume.

``recover ID`` is for a migration whose rollback failed: it prints the
manual procedure for that run, and ``recover ID --resume-rollback`` resumes
the rollback once the cause is fixed (see :mod:`client.cli.recover_rollback`).

A session migration journals every id it writes in the target (first prior
wins). A run that ended without undoing its journal — terminated, timed out,
or whose rollback failed — leaves that journal behind: the marker of partial
data. ``--scan`` lists those journals with the state of their runs;
``--cleanup`` puts every journaled id back as it was; ``--resume`` starts the
same migration again under the same id, which reuses the journal, so a later
rollback still restores what the target held before the first run.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from client import api
from client.cli import app
from client.cli.common import emit_json, err, out, run
from client.embedded import ensure_client
from deployment.errors import BadInput, NotFound
from deployment.sessions.stores import open_store
from deployment.sessions.stores.base import redact_url
from workflows.session_models import SessionMigrationInput

# Run states whose journal is expected: a running copy, or a completed run kept for `rollback ID`.
EXPECTED = {"running": "in progress", "completed": "completed; journal kept so that `rollback ID` can undo it"}


@app.command("recover")
def recover(
    migration_id: Annotated[Optional[str], typer.Argument(help="a migration whose rollback failed: print the procedure that finishes it")] = None,
    resume_rollback: Annotated[bool, typer.Option("--resume-rollback", help="with ID: resume the failed rollback, then check the target against its pre-migration digest")] = False,
    force: Annotated[bool, typer.Option("--force", help="with ID --resume-rollback of a config migration: restore files changed since it")] = False,
    store: Annotated[Optional[list[str]], typer.Option("--store", help="a target store URL to scan (repeatable)")] = None,
    scan: Annotated[bool, typer.Option("--scan", help="list the journals left in the stores and the state of their runs")] = False,
    cleanup: Annotated[Optional[str], typer.Option("--cleanup", help="put back every id migration ID wrote, and drop its journal")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="start migration ID again under the same id (reuses its journal)")] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="Temporal address")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print exactly one JSON object on stdout")] = False,
) -> int:
    """Recover from failed rollbacks and interrupted migrations.

    recover ID prints what a migration whose rollback failed did, what remains
    and the commands to finish it (exit 1 while something remains, 0 when
    nothing does); recover ID --resume-rollback resumes the rollback once the
    cause is fixed and checks the target against its pre-migration digest
    (exit 0 when it matches). --scan/--cleanup/--resume handle partial data of
    interrupted session migrations in the given stores (--scan exits 1 when it
    finds some). Bad input exits 2.
    """
    modes = sum(bool(x) for x in (migration_id, scan, cleanup, resume))
    if modes != 1:
        raise BadInput("say what to do: exactly one of ID, --scan, --cleanup ID, --resume ID",
                       hint="e.g. snakepit-migrate recover sessions-3f9c2a1b, or recover --scan --store URL")  # fmt: skip
    if migration_id and store:
        raise BadInput("recover ID reads the target from the run's own input: --store goes with --scan and --cleanup",
                       hint=f"snakepit-migrate recover {migration_id}")  # fmt: skip
    if (resume_rollback or force) and not migration_id:
        raise BadInput("--resume-rollback and --force go with a migration ID", hint="snakepit-migrate recover ID --resume-rollback")
    if migration_id:
        return run(_failed_rollback(migration_id, resume_rollback, force, address, json_out))
    if not store and (scan or cleanup):
        raise BadInput("--scan and --cleanup need the target stores to look in", hint="add --store URL (repeatable)")
    if cleanup:
        return run(_cleanup(store or [], cleanup, json_out))
    if resume:
        return run(_resume(resume, address, json_out))
    return run(_scan(store or [], address, json_out))


async def _failed_rollback(migration_id: str, resume: bool, force: bool, address: str | None, json_out: bool) -> int:
    from client.cli import recover_rollback as rr
    from deployment.audit import default_actor

    client = await ensure_client(address)
    case, why_not = await rr.find(client, migration_id)
    if case is None:
        if json_out:
            emit_json({"migration_id": migration_id, "needs_recovery": False, "reason": why_not})
        else:
            out.print(why_not)
        return 1 if "recover --scan" in why_not else 0
    if case.kind not in ("SessionMigration", "ConfigMigration"):
        raise BadInput(f"{case.id} is a {case.kind}: recover handles failed rollbacks of session and config migrations",
                       hint=f"see its result with: snakepit-migrate status {case.id}")  # fmt: skip
    if resume:
        if case.kind == "SessionMigration":
            done = await rr.resume_session_rollback(client, case, default_actor(None))
        else:
            done = await rr.resume_config_rollback(client, case, force)
        if json_out:
            emit_json(done)
        else:
            v = done["validation"]
            out.print(f"{case.id}: rollback {done['status']} ({done['rollback_run'] or 'nothing left to undo'})"
                      + (f": {done['error']}" if done["error"] else ""))  # fmt: skip
            if "expected" in v:
                out.print(f"target digest {v['found']}, before the migration {v['expected']}: {'SAME' if v['ok'] else 'DIFFERENT'}")
            else:
                out.print("every file as before the migration" if v["ok"] else "not as before: " + ", ".join(v["not_as_before"]))
        return 0 if done["validation"]["ok"] else 1
    remains = await rr.session_state(case) if case.kind == "SessionMigration" else rr.config_state(case)
    report = rr.procedure(case, remains)
    if json_out:
        emit_json({**report, "needs_recovery": True})
    else:
        out.print(rr.render(report))
    return 1


async def _scan(stores: list[str], address: str | None, json_out: bool) -> int:
    client = await ensure_client(address)
    found: list[dict[str, Any]] = []
    for url in stores:
        async with open_store(url, create=False) as target:
            for mid in await target.journal_ids():
                try:
                    state = (await api.describe(client, mid))["status"]
                except NotFound:
                    state = "unknown to Temporal"
                entry = {"store": redact_url(url), "migration_id": mid, "run": state,
                         "partial_data": state not in EXPECTED}  # fmt: skip
                entry["advice"] = EXPECTED.get(state) or (
                    f"its rollback failed: snakepit-migrate recover {mid} (what remains, and how to finish it), "
                    f"then recover {mid} --resume-rollback"
                    if state == "rollback_failed" else
                    f"snakepit-migrate recover --cleanup {mid} --store URL (put the target back), "
                    f"or --resume {mid} (finish the copy)"
                )
                found.append(entry)
    partial = [f for f in found if f["partial_data"]]
    if json_out:
        emit_json({"journals": found, "partial": len(partial)})
    else:
        for f in found:
            out.print(f"{f['store']}: {f['migration_id']} ({f['run']}) -> {f['advice']}")
        out.print(f"{len(found)} journal(s), {len(partial)} with partial data" if found else "no journals: nothing left behind")
    return 1 if partial else 0


async def _cleanup(stores: list[str], migration_id: str, json_out: bool) -> int:
    restored: dict[str, int] = {}
    for url in stores:
        async with open_store(url, create=False) as target:
            if migration_id in await target.journal_ids():
                restored[redact_url(url)] = await target.undo(migration_id)
    if not restored:
        raise BadInput(f"no store given holds a journal of {migration_id}", hint="list them with: recover --scan --store URL")
    if json_out:
        emit_json({"migration_id": migration_id, "restored": restored})
    else:
        for url, n in restored.items():
            out.print(f"{url}: {n} session id(s) of {migration_id} put back as they were; journal dropped")
    return 0


async def _resume(migration_id: str, address: str | None, json_out: bool) -> int:
    from client.cli.progress import ProgressView
    from client.cli.sessions import report_result
    from client.embedded import worker_while_waiting

    client = await ensure_client(address)
    info = await api.describe(client, migration_id)
    if info["type"] != "SessionMigration" or info["status"] in EXPECTED:
        raise BadInput(
            f"{migration_id} is a {info['type']} that is {info['status']}: only an interrupted session migration resumes",
        )
    params = await api.original_input(client, migration_id)
    params["overwrite"] = True  # the ids it wrote before are its own, recorded in the journal it reuses
    handle = await api.start_session_migration(
        client, SessionMigrationInput.model_validate(params), migration_id, info["task_queue"]
    )
    err.print(f"Resuming {migration_id} (new run {handle.result_run_id})")
    async with worker_while_waiting(client, handle):
        with ProgressView(quiet=json_out and not err.is_terminal) as view:
            result = await api.wait_for_result(handle, view)
    return report_result(result, json_out)
