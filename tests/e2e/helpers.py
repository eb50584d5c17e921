"""What the end-to-end tests share."""

from __future__ import annotations

import time
from pathlib import Path

from temporalio.client import Client

from client import api
from deployment.sessions.record import canonical_bytes, is_expired
from deployment.sessions.snapshot import generate_sessions, write_snapshot
from deployment.sessions.stores import open_store
from workflows.session_models import SessionMigrationInput, SessionMigrationResult


def make_snapshot(path: Path, count: int, expired_fraction: float = 0.1, seed: int = 7) -> list[dict]:
    """Write a snapshot and return its records."""
    recs = list(generate_sessions(count, now=time.time(), expired_fraction=expired_fraction, seed=seed))
    write_snapshot(path, iter(recs))
    return recs


def live_lines(recs: list[dict], horizon_s: float = 60.0) -> set[bytes]:
    """Canonical bytes of the records still live ``horizon_s`` from now."""
    horizon = time.time() + horizon_s
    return {canonical_bytes(r) for r in recs if not is_expired(r, horizon)}


async def store_bytes(url: str) -> dict[str, bytes]:
    """Every record of a store (expired included) by id, as canonical bytes."""
    async with open_store(url) as store:
        return {r["id"]: canonical_bytes(r) async for batch in store.iter_records() for r in batch}


async def migrate(client: Client, queue: str, migration_id: str | None = None, **fields) -> SessionMigrationResult:
    """Run a SessionMigration to its end through the real workflow."""
    handle = await api.start_session_migration(client, SessionMigrationInput(**fields), migration_id, queue)
    return await api.wait_for_result(handle)


async def wait_for_phase(handle, phase: str, min_done: int = 0, timeout: float = 120.0):  # noqa: ANN001, ANN201
    """Poll the ``progress`` query until the run is in ``phase`` with at least ``min_done`` done.

    Fails at once if the run ends first (with its result), or after ``timeout`` seconds.
    """
    import asyncio

    from workflows.session_models import MigrationProgress

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        p = await handle.query("progress", result_type=MigrationProgress)
        if p.phase == phase and p.done >= min_done:
            return p
        assert p.phase != "done", f"the run ended before {phase}: {await api.wait_for_result(handle)}"
        assert asyncio.get_running_loop().time() < deadline, f"not in {phase} after {timeout:.0f} s: {p}"
        await asyncio.sleep(0.05)
