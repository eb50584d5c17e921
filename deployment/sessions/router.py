"""Live session routing between a source and a target store, for zero-downtime moves.

Every fleet instance reads and writes sessions through a :class:`SessionRouter`.
Its mode comes from a control record in the *source* store, which a migration
changes step by step:

``source`` → ``dual_write`` (write both, read source) → ``dual_write_read_target``
(write both, read target) → ``target``.

Each write carries a per-session revision (``rev``, one more than the record
it replaces); writes to the target are journaled under the migration id, and
a backfill writes a record only where the target holds none newer, so it can
never overwrite live traffic.  A delete during dual writes leaves a tombstone
in the target so that a backfill cannot bring the session back.  After each
refresh an instance acknowledges the epoch it now follows, which is what the
migration waits for before its next step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from deployment.errors import BadInput
from deployment.sessions.record import TOMBSTONE, Record, is_expired, normalize
from deployment.sessions.stores import open_store
from deployment.sessions.stores.base import QuotaExceeded, SessionStore

Mode = Literal["source", "dual_write", "dual_write_read_target", "target"]
MODES: tuple[Mode, ...] = ("source", "dual_write", "dual_write_read_target", "target")
ROUTING_KEY = "routing"
ACK_PREFIX = "ack/"


@dataclass
class RoutingState:
    """What the control record says: the mode, its epoch, and the migration behind it."""

    mode: Mode = "source"
    epoch: int = 0
    target: str | None = None
    migration_id: str | None = None

    @classmethod
    def parse(cls, value: dict[str, Any] | None) -> "RoutingState":
        """Read a control value; absent means plain ``source`` mode."""
        if not value:
            return cls()
        if value.get("mode") not in MODES:
            raise BadInput(f"routing control record has unknown mode {value.get('mode')!r}")
        return cls(value["mode"], int(value.get("epoch", 0)), value.get("target"), value.get("migration_id"))


async def read_routing(source: SessionStore) -> RoutingState:
    """The routing state recorded in a source store."""
    return RoutingState.parse(await source.control_get(ROUTING_KEY))


async def write_routing(source: SessionStore, state: RoutingState) -> None:
    """Record a new routing state; instances follow it at their next refresh."""
    if state.mode != "source" and not state.target:
        raise BadInput(f"routing mode {state.mode} needs a target store")
    await source.control_put(ROUTING_KEY, asdict(state))


async def routing_acks(source: SessionStore, fresh_s: float) -> dict[str, dict[str, Any]]:
    """Acknowledgements of instances seen within ``fresh_s`` seconds, by instance id."""
    now = time.time()
    acks = await source.control_scan(ACK_PREFIX)
    return {k[len(ACK_PREFIX) :]: v for k, v in acks.items() if now - float(v.get("at", 0)) <= fresh_s}


def next_revision(current: Record | None) -> int:
    """The revision a write replacing ``current`` carries."""
    return int(current.get("rev", 0)) + 1 if current else 1


class SessionRouter:
    """Session access for one fleet instance, following the routing mode of its source store."""

    def __init__(
        self,
        source: SessionStore,
        *,
        ttl: int,
        instance_id: str,
        refresh_s: float = 0.25,
        store_factory: Callable[[str], SessionStore] = open_store,
    ) -> None:
        self.source = source
        self.ttl = ttl
        self.instance_id = instance_id
        self.refresh_s = refresh_s
        self.state = RoutingState()
        self._target: SessionStore | None = None
        self._checked = 0.0
        self._store_factory = store_factory

    # -- following the control record -----------------------------------
    async def refresh(self, force: bool = False) -> RoutingState:
        """Re-read the routing state (at most every ``refresh_s``) and acknowledge it."""
        if not force and time.monotonic() - self._checked < self.refresh_s:
            return self.state
        state = await read_routing(self.source)
        if state.target != (self.state.target if self._target else None):
            await self._switch_target(state.target)
        self.state = state
        self._checked = time.monotonic()
        await self.source.control_put(
            ACK_PREFIX + self.instance_id, {"epoch": state.epoch, "mode": state.mode, "at": time.time()}
        )
        return state

    async def _switch_target(self, url: str | None) -> None:
        if self._target is not None:
            await self._target.close()
            self._target = None
        if url:
            target = self._store_factory(url)
            await target.open()
            self._target = target

    @property
    def target(self) -> SessionStore:
        assert self._target is not None, "no target in this routing mode"
        return self._target

    def _reader(self) -> SessionStore:
        return self.target if self.state.mode in ("dual_write_read_target", "target") else self.source

    # -- reads and writes --------------------------------------------------
    async def _held(self, session_id: str) -> Record | None:
        """What the reading store holds for the id: a live session, an expired one, a tombstone, or None."""
        return (await self._reader().read_many([session_id])).get(session_id)

    async def _read(self, session_id: str) -> Record | None:
        rec = await self._held(session_id)
        return None if rec is None or is_expired(rec, time.time()) else rec

    async def _write(self, rec: Record) -> None:
        mode, mid = self.state.mode, self.state.migration_id or "live"
        if mode == "source":
            await self.source.write_many([rec])
        elif mode == "target":
            await self.target.write_many([rec])
        elif mode == "dual_write":
            await self.source.write_many([rec])
            await self.target.write_journaled(mid, [rec], only_newer=True)
        else:  # dual_write_read_target: the target leads, the source follows
            await self.target.write_journaled(mid, [rec], only_newer=True)
            await self.source.write_many([rec])

    async def begin(self, session_id: str, worker_id: str) -> Record:
        """The live session, created if missing; refreshes ``last_accessed`` (a write)."""
        await self.refresh()
        held = await self._held(session_id)
        now = time.time()
        rec = None if held is None or is_expired(held, now) else held
        if rec is None:
            reader = self._reader()
            if reader.quota is not None and await reader.count() >= reader.quota:
                raise QuotaExceeded(f"store {reader.display} is at its quota of {reader.quota} sessions")
            rec = normalize({"id": session_id, "ttl": self.ttl, "created_at": now, "last_accessed": now,
                             "last_worker_id": worker_id})  # fmt: skip
            rec["rev"] = next_revision(held)  # above any tombstone or expired record it replaces
        else:
            rec = {**rec, "last_accessed": max(now, rec["last_accessed"]), "rev": next_revision(rec)}
        await self._write(rec)
        return rec

    async def commit(self, session_id: str, worker_id: str, changes: dict[str, dict[str, Any]]) -> None:
        """Apply a request's map changes to the freshest copy and record the worker."""
        from deployment.pool.session_access import apply_changes

        await self.refresh()
        current = await self._read(session_id) or await self.begin(session_id, worker_id)
        if not changes and current.get("last_worker_id") == worker_id:
            return
        rec = {**current, "last_worker_id": worker_id, "rev": next_revision(current)}
        for field, change in changes.items():
            rec[field] = apply_changes(current.get(field) or {}, change)
        await self._write(normalize(rec))

    async def delete(self, session_id: str) -> None:
        """Delete a session; during dual writes the target keeps a tombstone."""
        await self.refresh()
        mode = self.state.mode
        if mode in ("source", "dual_write", "dual_write_read_target"):
            held = (await self.source.read_many([session_id])).get(session_id)
            await self.source.delete_many([session_id])
            if mode != "source":
                stone = {**(held or {"id": session_id, "ttl": 0, "created_at": 0.0, "last_accessed": 0.0}),
                         TOMBSTONE: True, "rev": next_revision(held)}  # fmt: skip
                await self.target.write_journaled(self.state.migration_id or "live", [stone], only_newer=True)
        else:
            await self.target.delete_many([session_id])

    async def prune(self) -> int:
        """Delete expired sessions from the store that serves reads; tombstones stay until the switch."""
        await self.refresh()
        store = self._reader()
        now, pruned = time.time(), 0
        async for batch in store.iter_records():
            expired = [r["id"] for r in batch if not r.get(TOMBSTONE) and r["last_accessed"] + r["ttl"] < now]
            if expired:
                await store.delete_many(expired)
                pruned += len(expired)
        return pruned

    async def close(self) -> None:
        """Release both stores."""
        await self._switch_target(None)
        await self.source.close()

    def describe(self) -> dict[str, Any]:
        """The mode and epoch this instance follows, for health and for the migration."""
        return {"mode": self.state.mode, "epoch": self.state.epoch, "migration_id": self.state.migration_id,
                "store": self.source.display}  # fmt: skip
