"""``make demo``: the main job on the embedded default.

Generates a realistic ETS-style snapshot (a few thousand sessions, some
already expired), migrates it into SQLite through the real SessionMigration
workflow on the embedded Temporal server, verifies it, and prints a short
report with the address where the run can be inspected.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from client import api
from client.cli.common import err, out
from client.cli.progress import ProgressView
from client.cli.sessions import render
from client.embedded import UI_PORT, ensure_client, worker_while_waiting
from deployment.sessions.record import is_expired
from deployment.sessions.snapshot import generate_sessions, write_snapshot
from deployment.sessions.stores import open_store
from deployment.sessions.verify import compare_stores
from workflows.session_models import SessionMigrationInput

SESSIONS = 5000


async def demo(folder: Path) -> int:
    """Run the demo in ``folder``; returns the exit code."""
    folder.mkdir(parents=True, exist_ok=True)
    snapshot, database = folder / "ets-export.jsonl", folder / "sessions.db"
    for stale in folder.glob("sessions.db*"):
        stale.unlink()
    now = time.time()
    records = list(generate_sessions(SESSIONS, now=now, expired_fraction=0.12, seed=int(now)))
    write_snapshot(snapshot, iter(records))
    expired = sum(is_expired(r, now) for r in records)
    out.print(f"Generated {len(records)} sessions ({expired} already expired) in {snapshot}")

    source, target = f"jsonl://{snapshot}", f"sqlite://{database}"
    client = await ensure_client(None)
    handle = await api.start_session_migration(client, SessionMigrationInput(source=source, target=target))
    async with worker_while_waiting(client, handle):
        with ProgressView() as view:
            result = await api.wait_for_result(handle, view)
    out.print(render(result))

    async with open_store(source, create=False) as src, open_store(target, create=False) as tgt:
        check = await compare_stores(src, tgt)
    out.print(
        f"Independent check: {'SAME' if check.ok else 'DIFFERENT'} live sessions in both "
        f"({check.matched} matched, digest {check.target_digest})"
    )
    out.print(f"Inspect the run: http://localhost:{UI_PORT}/namespaces/default/workflows/{result.migration_id}")
    out.print(f"Roll it back with: snakepit-migrate rollback {result.migration_id}")
    return 0 if result.status == "completed" and check.ok else 1


def main() -> None:
    """Entry point of ``python -m client.demo [FOLDER]``."""
    from client.cli import entry_with

    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-out").resolve()
    entry_with(lambda: asyncio.run(demo(folder)))


if __name__ == "__main__":
    main()
