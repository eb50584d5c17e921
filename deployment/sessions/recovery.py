"""What a migration's journal says is still to undo in a store, and a store's digest as a whole.

Used by ``snakepit-migrate recover`` for a run whose rollback failed: the
journal holds every id the migration wrote with its prior record; an id
whose current record already equals its prior was put back, the others
remain. Pure reads: nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deployment.sessions.digest import SetDigest
from deployment.sessions.record import Record, is_expired
from deployment.sessions.stores.base import SessionStore


@dataclass
class JournalState:
    """A migration's journal in one store: ids journaled, already back as before, and still to restore."""

    present: bool
    journaled: int = 0
    restored: int = 0
    remaining: list[str] = field(default_factory=list)


def _is_back(prior: Record | None, held: Record | None, now: float) -> bool:
    """Whether ``held`` is the prior state again (a prior that expired since counts as back when it is gone)."""
    if held == prior:
        return True
    return held is None and prior is not None and is_expired(prior, now)


async def journal_state(store: SessionStore, migration_id: str, batch_size: int = 500) -> JournalState:
    """Read ``migration_id``'s journal in ``store`` and compare each id with what the store holds now."""
    import time

    if migration_id not in await store.journal_ids():
        return JournalState(present=False)
    state = JournalState(present=True)
    cursor: str | None = None
    while True:
        entries, cursor = await store.journal_scan(migration_id, cursor, batch_size)
        held = await store.read_many([sid for sid, _ in entries])
        now = time.time()
        for sid, prior in entries:
            state.journaled += 1
            if _is_back(prior, held.get(sid), now):
                state.restored += 1
            else:
                state.remaining.append(sid)
        if cursor is None:
            return state


async def store_digest(store: SessionStore, batch_size: int = 1000) -> SetDigest:
    """The set digest of every record the store holds (expired included), as a backup point takes it."""
    digest = SetDigest()
    async for batch in store.iter_records(batch_size):
        for rec in batch:
            digest.add(rec)
    return digest
