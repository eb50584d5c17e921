"""CustomMigration end to end: the re-key example against real SQLite and Redis, failure, crash and versions."""

from __future__ import annotations

import json

from client import api
from deployment.sessions.record import canonical_bytes, is_expired
from deployment.extensions.rekey import renamed
from tests.deployment.extensions.helpers import fill, store_bytes
from workflows.extension_models import CustomMigrationInput

import time


def _live(recs):
    horizon = time.time() + 120
    return [r for r in recs if not is_expired(r, horizon)]


async def run(client, queue, **fields):
    handle = await api.start_custom_migration(client, CustomMigrationInput(**fields), task_queue=queue)
    return await api.wait_for_custom_migration(handle)


async def test_rename_a_metadata_key_in_sqlite_end_to_end(temporal_client, task_queue, sqlite_url):
    recs = await fill(sqlite_url, 500)
    before = await store_bytes(sqlite_url)
    result = await run(
        temporal_client, task_queue, extension="rekey-sessions",
        params={"store": "${sessions}", "from_key": "tier", "to_key": "plan", "batch_size": 50},
        bindings={"sessions": sqlite_url}, slice_seconds=0.2,
    )  # fmt: skip
    assert result.status == "completed", result.error
    assert (result.name, result.version) == ("rekey-sessions", "1.0.0")
    live = _live(recs)
    assert result.changed == len([r for r in recs if not is_expired(r, time.time())]) >= len(live)
    assert result.verification.ok and result.verification.checked == result.changed
    after = await store_bytes(sqlite_url)
    for r in live:  # renamed, and otherwise byte for byte as before (timestamps untouched)
        assert after[r["id"]] == canonical_bytes(renamed(r, "tier", "plan"))
    expired = [r for r in recs if is_expired(r, time.time() - 120)]
    assert expired and all(after[r["id"]] == before[r["id"]] for r in expired)
