"""``snakepit-migrate recover``: find what interrupted migrations left in stores, and clean it up or resume.

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
    store: Annotated[list[str], typer.Option("--store", help="a target store URL to scan (repeatable)")],
    scan: Annotated[bool, typer.Option("--scan", help="list the journals left in the stores and the state of their runs")] = False,
    cleanup: Annotated[Optional[str], typer.Option("--cleanup", help="put back every id migration ID wrote, and drop its journal")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="start migration ID again under the same id (reuses its journal)")] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="Temporal address")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print exactly one JSON object on stdout")] = False,
) -> int:
    """Find partial data that interrupted session migrations left in target stores; clean it up or resume.

    Exit 0 when nothing needs attention (or the action succeeded), 1 when --scan found partial data, 2 on bad input.
    """
    if sum(bool(x) for x in (scan, cleanup, resume)) != 1:
        raise BadInput("say what to do: exactly one of --scan, --cleanup ID, --resume ID")
    if cleanup:
        return run(_cleanup(store, cleanup, json_out))
    if resume:
        return run(_resume(resume, address, json_out))
    return run(_scan(store, address, json_out))


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
