"""How a fleet instance reads and writes sessions: the one seam a router replaces.

A worker calls :func:`open_session_access` once at start and then, per
request, ``begin`` (get the session, creating it if missing: this refreshes
``last_accessed``) and ``commit`` (write back what the tool changed, and
``last_worker_id``).  Nothing else in the fleet touches a session store, so a
``SessionRouter`` with dual writes only has to implement :class:`SessionAccess`
and be returned by :func:`open_session_access`.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Protocol

from deployment.sessions.record import Record, is_expired
from deployment.sessions.stores import open_store
from deployment.sessions.stores.base import SessionStore


class SessionAccess(Protocol):
    """Session reads and writes of one fleet instance."""

    async def begin(self, session_id: str, worker_id: str) -> Record:
        """The live session ``session_id``, created if missing; refreshes ``last_accessed``."""
        ...

    async def commit(self, session_id: str, worker_id: str, changes: dict[str, dict[str, Any]]) -> None:
        """Apply a request's changes (``SessionContext.changes()``) and record the worker."""
        ...

    async def close(self) -> None:
        """Release the store connections."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the instance reports about its sessions (``/ready``, the admin API):
        at least ``mode``; a router adds what a migration waits on, e.g. the mode it acknowledged."""
        ...

    async def prune(self) -> int:
        """Delete the expired sessions (``last_accessed + ttl < now``); how many went."""
        ...


def apply_changes(current: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """A map with one field's ``{"set": {...}, "deleted": [...]}`` applied (pure)."""
    merged = dict(current)
    for key in change.get("deleted", []):
        merged.pop(key, None)
    merged.update(change.get("set", {}))
    return merged


class StoreSessionAccess:
    """The default: every read and write goes to one store through ``open_store``."""

    def __init__(self, store: SessionStore, ttl: int) -> None:
        self.store = store
        self.ttl = ttl

    async def begin(self, session_id: str, worker_id: str) -> Record:
        rec = await self.store.get(session_id)
        if rec is None:
            rec = await self.store.create(session_id, ttl=self.ttl, last_worker_id=worker_id)
        return rec

    async def commit(self, session_id: str, worker_id: str, changes: dict[str, dict[str, Any]]) -> None:
        if not changes:
            current = (await self.store.read_many([session_id])).get(session_id)
            if current is not None and current.get("last_worker_id") == worker_id:
                return
            if current is not None:
                await self.store.update(session_id, {"last_worker_id": worker_id})
                return
        # Merge onto the freshest copy so that keys this request did not touch are kept.
        rec = await self.begin(session_id, worker_id)
        update: dict[str, Any] = {"last_worker_id": worker_id}
        for field, change in changes.items():
            update[field] = apply_changes(rec.get(field) or {}, change)
        await self.store.update(session_id, update)

    async def close(self) -> None:
        await self.store.close()

    def describe(self) -> dict[str, Any]:
        return {"mode": "direct", "store": self.store.display}

    async def prune(self) -> int:
        now = time.time()
        pruned = 0
        async for batch in self.store.iter_records():
            expired = [r["id"] for r in batch if is_expired(r, now)]
            if expired:
                await self.store.delete_many(expired)
                pruned += len(expired)
        return pruned


async def open_session_access(store_url: str, ttl: int, instance_id: str | None = None) -> SessionAccess:
    """The session access every fleet instance uses.

    A store that can serve live traffic gets a :class:`SessionRouter`, which
    follows the routing mode a zero-downtime migration publishes in it (plain
    ``source`` mode until one does); a JSONL snapshot gets direct access.
    """
    from deployment.sessions.router import SessionRouter

    store = open_store(store_url)
    await store.open()
    if store.scheme == "jsonl":
        return StoreSessionAccess(store, ttl)
    router = SessionRouter(store, ttl=ttl, instance_id=instance_id or f"{socket.gethostname()}:{os.getpid()}")
    await router.refresh(force=True)
    return router
