"""Record MigrationPlan histories for the replay test (run by hand after a deliberate workflow change).

    .venv/bin/python tests/histories/record_plan_histories.py [NAME ...]

Writes plan_completed.json (two session migrations in parallel, then one
depending on both), plan_rolled_back.json (a chain whose last step fails;
the completed ones are undone newest first), plan_indexed_audited.json (the
parallel plan indexed by search attributes, with its audit trail) and
plan_paused_resumed.json (its window ends during a 3 s soak; it pauses, and
the ``resume`` signal runs the rest) beside this file, from real runs on a
throwaway dev server with SQLite stores.  With names, only those are
recorded: plan_completed and plan_rolled_back predate the audit trail, and
re-recording them would lose the replay of runs from before it.
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
from deployment.plans.model import Environment, Migration, Plan
from deployment.plans.resolve import resolve
from deployment.sessions.snapshot import generate_sessions
from deployment.sessions.stores import open_store
from worker import build_worker

HERE = Path(__file__).resolve().parent


def sessions(mid: str, source: str, target: str, deps: list[str], **extra: object) -> Migration:
    return Migration(id=mid, type="sessions", params={"source": f"@{source}", "target": f"@{target}", **extra}, depends_on=deps)


async def main() -> None:
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_cli(), dev_server_extra_args=server_args(),
                                                **client_options())
    wanted = set(sys.argv[1:])
    queue = f"record-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SNAKEPIT_AUDIT_URL"] = f"sqlite://{tmp}/audit.db"  # the audit trail's entries go nowhere lasting
        bound = Environment("record", {n: f"sqlite://{tmp}/{n}.db" for n in "legacy a b c d e f g h i j k".split()})
        async with open_store(bound.resources["legacy"]) as store:
            await store.write_many(list(generate_sessions(200, now=time.time(), expired_fraction=0)))
        plans = {
            "plan_completed": Plan("parallel", "plan.yaml", [
                sessions("one", "legacy", "a", []), sessions("two", "legacy", "b", []), sessions("three", "a", "c", ["one", "two"]),
            ]),
            "plan_rolled_back": Plan("chain", "plan.yaml", [
                sessions("one", "legacy", "d", []), sessions("two", "legacy", "e", ["one"]),
                sessions("three", "d", "f", ["two"], fail_after_batches=1, batch_size=20),
            ], policy="rollback"),
            "plan_indexed_audited": Plan("indexed", "plan.yaml", [
                sessions("one", "legacy", "g", []), sessions("two", "legacy", "h", []), sessions("three", "g", "i", ["one", "two"]),
            ]),
            "plan_paused_resumed": Plan("windowed", "plan.yaml", [
                sessions("one", "legacy", "j", [], zero_downtime=True, soak_seconds=3), sessions("two", "legacy", "k", ["one"]),
            ]),
        }  # fmt: skip
        updates = {
            "plan_indexed_audited": {"search_attributes": True, "actor": "recorder", "actor_host": "record-host"},
            "plan_paused_resumed": {"window_s": 1.0, "on_window_exceeded": "pause", "actor": "recorder"},
        }
        async with build_worker(env.client, queue):
            for name, plan in plans.items():
                if wanted and name not in wanted:
                    continue
                # the id is the one the replay test gives: children's ids are built from it
                inp = resolve(plan, bound).model_copy(update=updates.get(name, {}))
                handle = await api.start_migration_plan(env.client, inp, name, queue)
                if name == "plan_paused_resumed":
                    while (await handle.query("progress")).get("phase") != "paused":
                        await asyncio.sleep(0.2)
                    await handle.signal("resume", {"actor": "recorder"})
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
