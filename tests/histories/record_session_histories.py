"""Record SessionMigration histories for the replay test (run by hand after a deliberate workflow change).

    .venv/bin/python tests/histories/record_session_histories.py [--force]

Writes session_completed.json, session_rolled_back.json, session_zero_downtime.json
(recorded before the audit trail: they keep runs in flight from then replayable)
and session_audit_completed.json, session_audit_rolled_back.json (with the
audit-trail patch), session_alerted_rolled_back.json (with the alerts patch too)
session_indexed_completed.json (search attributes and memo upserted) and
session_watched_completed.json (a stall timer beside every copy slice) beside this file, from real runs on a throwaway dev server.
A history that exists already is kept unless --force is given.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from client import api
from client.connect import client_options
from client.paths import temporal_cli
from client.search import server_args
from deployment.sessions.snapshot import generate_sessions, write_snapshot
from deployment.sessions.stores import open_store
from worker import build_worker
from workflows.session_models import SessionMigrationInput

HERE = Path(__file__).resolve().parent


async def main() -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), dev_server_extra_args=server_args(), **client_options()
    )
    queue = f"record-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SNAKEPIT_AUDIT_URL"] = f"sqlite://{tmp}/audit.db"
        snap = Path(tmp) / "in.jsonl"
        write_snapshot(snap, generate_sessions(300, now=time.time()))
        async with open_store(f"sqlite://{tmp}/src.db") as src:  # a source that splits into partitions
            await src.write_many(list(generate_sessions(300, now=time.time(), expired_fraction=0.0)))
        runs = {
            "session_completed": SessionMigrationInput(source=f"jsonl://{snap}", target=f"sqlite://{tmp}/a.db", batch_size=50),
            "session_rolled_back": SessionMigrationInput(
                source=f"jsonl://{snap}", target=f"sqlite://{tmp}/b.db", batch_size=50, fail_after_batches=3
            ),
            "session_zero_downtime": SessionMigrationInput(
                source=f"sqlite://{tmp}/a.db", target=f"sqlite://{tmp}/c.db", zero_downtime=True, soak_seconds=0
            ),
            "session_audit_completed": SessionMigrationInput(
                source=f"jsonl://{snap}", target=f"sqlite://{tmp}/d.db", batch_size=50, actor="recorder", actor_host="ci"
            ),
            "session_audit_rolled_back": SessionMigrationInput(
                source=f"jsonl://{snap}", target=f"sqlite://{tmp}/e.db", batch_size=50, fail_after_batches=3, actor="recorder"
            ),
            "session_indexed_completed": SessionMigrationInput(
                source=f"jsonl://{snap}", target=f"sqlite://{tmp}/g.db", batch_size=50, search_attributes=True
            ),
            "session_watched_completed": SessionMigrationInput(
                source=f"jsonl://{snap}", target=f"sqlite://{tmp}/h.db", batch_size=50, stall_alert_seconds=300
            ),
            "session_alerted_rolled_back": SessionMigrationInput(
                source=f"jsonl://{snap}", target=f"sqlite://{tmp}/f.db", batch_size=50, fail_after_batches=3, actor="recorder"
            ),
            # the parallel-copy and lone-locks patches: partition plan, three partitions' slices, a ResourceLock child each store
            "session_partitioned_completed": SessionMigrationInput(
                source=f"sqlite://{tmp}/src.db", target=f"sqlite://{tmp}/p.db", batch_size=20, parallelism=3, slice_seconds=0.01
            ),
            # the first run of a copy that continues as new after 2 slices (its history ends there)
            "session_continued": SessionMigrationInput(
                source=f"sqlite://{tmp}/src.db", target=f"sqlite://{tmp}/q.db", batch_size=20, parallelism=2,
                slice_seconds=0.01, continue_as_new_after_slices=2,
            ),  # fmt: skip
        }
        if "--force" not in sys.argv:
            runs = {name: inp for name, inp in runs.items() if not (HERE / f"{name}.json").exists()}
        async with build_worker(env.client, queue):
            for name, inp in runs.items():
                handle = await api.start_session_migration(env.client, inp, f"{name}-{uuid.uuid4().hex[:6]}", queue)
                try:
                    await handle.result()
                except WorkflowFailureError:
                    pass
                history = await env.client.get_workflow_handle(handle.id, run_id=handle.result_run_id).fetch_history()
                (HERE / f"{name}.json").write_text(history.to_json())
                print("recorded", name, len(history.events), "events")
    await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
