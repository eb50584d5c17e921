"""Record CustomMigration histories for the replay test (run by hand after a deliberate workflow change).

    .venv/bin/python tests/histories/record_custom_histories.py

Writes custom_audited_completed.json, custom_audited_rolled_back.json,
custom_audited_dry_run.json and custom_audited_rollback_of.json beside this
file, from real runs of the re-key example on a throwaway dev server: runs
with the audit trail, alerts, stall watch and lone-run locks. The
custom_{completed,rolled_back,dry_run,rollback_of}.json beside them were
recorded before those existed and stay, so runs from then keep replaying.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from client import api
from client.connect import client_options
from client.paths import temporal_cli
from deployment.sessions.snapshot import generate_sessions
from deployment.sessions.stores import open_store
from worker import build_worker
from workflows.extension_models import CustomMigrationInput

HERE = Path(__file__).resolve().parent


async def main() -> None:
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_cli(), **client_options())
    queue = f"record-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SNAKEPIT_AUDIT_URL"] = f"sqlite://{tmp}/audit.db"
        stores = {}
        for name in ("a", "b", "c"):
            stores[name] = f"sqlite://{tmp}/{name}.db"
            async with open_store(stores[name]) as store:
                await store.write_many(list(generate_sessions(300, now=time.time())))
        rename = {"from_key": "tier", "to_key": "plan", "batch_size": 50}
        completed = f"custom_completed-{uuid.uuid4().hex[:6]}"
        who = {"actor": "recorder", "actor_host": "histories", "stall_alert_seconds": 300}
        runs = {
            "custom_audited_completed": (CustomMigrationInput(extension="rekey-sessions", params={"store": "${s}", **rename},
                                                              bindings={"s": stores["a"]}, slice_seconds=0.01, **who), completed),
            "custom_audited_rolled_back": (CustomMigrationInput(extension="rekey-sessions", params={"store": stores["b"], **rename},
                                                                fail_after_checkpoints=3, slice_seconds=0.01, **who), None),
            "custom_audited_dry_run": (CustomMigrationInput(extension="rekey-sessions", params={"store": stores["c"], **rename},
                                                            dry_run=True, **who), None),
            "custom_audited_rollback_of": (CustomMigrationInput(extension="rekey-sessions", params={"store": stores["a"], **rename},
                                                                rollback_of=completed, version="1.0.0", **who), f"{completed}-rollback"),
        }  # fmt: skip
        async with build_worker(env.client, queue):
            for name, (inp, mid) in runs.items():
                handle = await api.start_custom_migration(env.client, inp, mid or f"{name}-{uuid.uuid4().hex[:6]}", queue)
                try:
                    await handle.result()
                except WorkflowFailureError:
                    pass
                history = await handle.fetch_history()
                (HERE / f"{name}.json").write_text(history.to_json())
                print("recorded", name, len(history.events), "events")
    await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
