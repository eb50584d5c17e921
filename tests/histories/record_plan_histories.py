"""Record MigrationPlan histories for the replay test (run by hand after a deliberate workflow change).

    .venv/bin/python tests/histories/record_plan_histories.py

Writes plan_completed.json (two session migrations in parallel, then one
depending on both) and plan_rolled_back.json (a chain whose last step fails;
the completed ones are undone newest first) beside this file, from real runs
on a throwaway dev server with SQLite stores.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from client import api
from client.connect import client_options
from client.paths import temporal_cli
from deployment.plans.model import Environment, Migration, Plan
from deployment.plans.resolve import resolve
from deployment.sessions.snapshot import generate_sessions
from deployment.sessions.stores import open_store
from worker import build_worker

HERE = Path(__file__).resolve().parent


def sessions(mid: str, source: str, target: str, deps: list[str], **extra: object) -> Migration:
    return Migration(id=mid, type="sessions", params={"source": f"@{source}", "target": f"@{target}", **extra}, depends_on=deps)


async def main() -> None:
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_cli(), **client_options())
    queue = f"record-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        bound = Environment("record", {n: f"sqlite://{tmp}/{n}.db" for n in ("legacy", "a", "b", "c", "d", "e", "f")})
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
        }  # fmt: skip
        async with build_worker(env.client, queue):
            for name, plan in plans.items():
                # the id is the one the replay test gives: children's ids are built from it
                handle = await api.start_migration_plan(env.client, resolve(plan, bound), name, queue)
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
