"""The one async interface every session store driver implements.

Two families of operations:

* the upstream ones (``create``, ``get``, ``update``, ``delete``, ``exists``,
  ``list_ids``, ``stats``) with upstream's semantics: get/update refresh
  ``last_accessed``, create is idempotent, the quota is enforced;
* the migration ones (``scan``, ``read_many``, ``write_many``,
  ``delete_many`` and the journal), which read and write records exactly as
  they are and never refresh anything.

The journal is how a migration undoes itself: before a batch is written, the
prior state of every id it touches (the old record, or "absent") is recorded
in the target, first write wins, so a retried batch cannot overwrite the truth.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from deployment.errors import BadInput
from deployment.sessions.partition import WHOLE, Partition
from deployment.sessions.record import Record, canonical_bytes, is_expired, normalize

DEFAULT_MAX_SESSIONS = 10_000


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``, for display and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def query_options(url: str) -> dict[str, str]:
    """The ``?key=value`` options of a store URL, last value wins."""
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}


class QuotaExceeded(BadInput):
    """A create past the store's ``max_sessions`` quota."""


class SessionStore(ABC):
    """An open connection to one session store."""

    scheme: str = ""
    # False for stores whose writes become readable only after finalize() (JSONL snapshots).
    reads_own_writes: bool = True

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        # False for a source: a missing file or table is an error, never silently created.
        self.create_missing = create
        quota = query_options(url).get("max_sessions")
        if quota is not None and (not quota.isdigit() or int(quota) < 1):
            raise BadInput(f"max_sessions={quota!r} in {redact_url(url)} is not a positive whole number")
        # The quota stated in the URL; upstream's default applies to creates when none is.
        self.quota: int | None = int(quota) if quota is not None else None
        self.max_sessions = self.quota or DEFAULT_MAX_SESSIONS

    @property
    def display(self) -> str:
        """The URL as it may be shown: credentials redacted."""
        return redact_url(self.url)

    async def __aenter__(self) -> "SessionStore":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- lifecycle -------------------------------------------------------
    @abstractmethod
    async def open(self) -> None:
        """Connect, creating the schema if missing; raise StoreUnreachable."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and file handles."""

    # -- migration primitives ------------------------------------------
    @abstractmethod
    async def scan(self, cursor: str | None, limit: int) -> tuple[list[Record], str | None]:
        """Up to ``limit`` records after ``cursor``, expired ones included.

        Returns the records and the cursor to continue from, ``None`` at the
        end.  Never refreshes ``last_accessed``.
        """

    async def plan_partitions(self, count: int) -> list[Partition]:
        """Split the key space into at most ``count`` partitions (see :mod:`deployment.sessions.partition`).

        A store that cannot be read in parts (a JSONL snapshot) returns the one whole partition.
        """
        return [WHOLE]

    async def scan_partition(self, partition: Partition, cursor: str | None, limit: int) -> tuple[list[Record], str | None]:
        """Like :meth:`scan`, restricted to the ids of ``partition``."""
        if partition.whole:
            return await self.scan(cursor, limit)
        pairs, cursor = await self.scan_encoded(partition, cursor, limit)
        return [json.loads(b) for _, b in pairs], cursor

    async def scan_encoded(self, partition: Partition, cursor: str | None, limit: int) -> tuple[list[tuple[str, bytes]], str | None]:
        """Like :meth:`scan_partition`, each record as its id and its canonical JSON bytes.

        The id comes from the store's key, so a record that does not decode
        can still be named.

        Stores that keep every record as canonical JSON return the bytes as
        stored, neither decoded nor encoded again: a copy writes them as they
        are, and a digest of them equals :func:`record_digest` of the record.
        """
        if not partition.whole:
            raise NotImplementedError(f"{self.scheme} stores cannot be scanned by partition")
        records, cursor = await self.scan(cursor, limit)
        return [(r["id"], canonical_bytes(r)) for r in records], cursor

    @abstractmethod
    async def read_many(self, ids: list[str]) -> dict[str, Record]:
        """The records among ``ids`` that exist, as stored (no refresh)."""

    @abstractmethod
    async def write_many(self, records: list[Record], encoded: list[bytes] | None = None) -> None:
        """Insert or replace records exactly as given.

        ``encoded``, when given, holds each record's canonical bytes already
        computed by the caller (they are not encoded a second time).
        """

    @abstractmethod
    async def delete_many(self, ids: list[str]) -> None:
        """Delete these ids; absent ones are ignored."""

    @abstractmethod
    async def count(self) -> int:
        """How many records the store holds, expired ones included."""

    # -- journal --------------------------------------------------------
    @abstractmethod
    async def journal_record(self, migration_id: str, priors: dict[str, Record | None]) -> None:
        """Remember the prior state of each id unless one is remembered already."""

    @abstractmethod
    async def journal_scan(
        self, migration_id: str, cursor: str | None, limit: int
    ) -> tuple[list[tuple[str, Record | None]], str | None]:
        """Page through a migration's journal: (session id, prior record or None)."""

    @abstractmethod
    async def journal_drop(self, migration_id: str) -> None:
        """Forget a migration's journal (after rollback, or when it is finalised)."""

    @abstractmethod
    async def journal_ids(self) -> list[str]:
        """The migration ids that have a journal in this store."""

    # -- live routing: revisions and a small control key-value space ----
    @abstractmethod
    async def write_many_if_newer(self, records: list[Record], encoded: list[bytes] | None = None) -> int:
        """Write each record unless the store holds the id with an equal or higher ``rev``.

        Atomic per record, so a backfill can never overwrite a newer write
        from live traffic.  Returns how many records were written.
        """

    @abstractmethod
    async def control_get(self, key: str) -> dict[str, Any] | None:
        """A value of the migration control space beside the sessions."""

    @abstractmethod
    async def control_put(self, key: str, value: dict[str, Any]) -> None:
        """Set a value of the control space."""

    @abstractmethod
    async def control_scan(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Every control value whose key starts with ``prefix``."""

    @abstractmethod
    async def control_delete(self, prefix: str) -> None:
        """Remove every control value whose key starts with ``prefix``."""

    # -- derived helpers -------------------------------------------------
    async def iter_records(self, batch_size: int = 1000) -> AsyncIterator[list[Record]]:
        """Every record, batch by batch."""
        cursor: str | None = None
        while True:
            batch, cursor = await self.scan(cursor, batch_size)
            if batch:
                yield batch
            if cursor is None:
                return

    async def write_journaled(
        self,
        migration_id: str,
        records: list[Record],
        *,
        only_newer: bool = False,
        encoded: list[bytes] | None = None,
        known_absent: bool = False,
    ) -> int:
        """Write records after journaling the prior state of every id; returns how many were written.

        With ``only_newer`` an id the store holds at an equal or higher
        ``rev`` is left alone (a backfill running beside live dual writes).
        ``known_absent`` skips looking the ids up: the caller knows the store
        held none of them before this migration (it was empty at the backup
        point and only this migration writes to it), so every prior is
        "absent"; an id journaled already keeps its first prior.
        """
        ids = [r["id"] for r in records]
        existing = {} if known_absent else await self.read_many(ids)
        await self.journal_record(migration_id, {i: existing.get(i) for i in ids})
        if only_newer:
            return await self.write_many_if_newer(records, encoded)
        await self.write_many(records, encoded)
        return len(records)

    async def undo(self, migration_id: str, batch_size: int = 500) -> int:
        """Put every id the migration touched back as it was, then drop the journal.

        Idempotent: running it again after a crash restores the same priors.
        Returns how many ids were put back.
        """
        cursor: str | None = None
        undone = 0
        while True:
            entries, cursor = await self.journal_scan(migration_id, cursor, batch_size)
            restore = [prior for _, prior in entries if prior is not None]
            remove = [sid for sid, prior in entries if prior is None]
            if restore:
                await self.write_many(restore)
            if remove:
                await self.delete_many(remove)
            undone += len(entries)
            if cursor is None:
                break
        await self.verify_undone(migration_id, batch_size)
        await self.journal_drop(migration_id)
        return undone

    async def verify_undone(self, migration_id: str, batch_size: int = 500) -> None:
        """Check that every journaled id is back to its prior state; raise naming those that are not."""
        from deployment.errors import MigrationFailed

        cursor: str | None = None
        wrong: list[str] = []
        while True:
            entries, cursor = await self.journal_scan(migration_id, cursor, batch_size)
            now_held = await self.read_many([sid for sid, _ in entries])
            wrong += [sid for sid, prior in entries if now_held.get(sid) != prior and not _gone_by_expiry(prior, now_held.get(sid))]
            if cursor is None:
                break
        if wrong:
            raise MigrationFailed(
                f"rollback of {migration_id} left {len(wrong)} session(s) different from before: {', '.join(wrong[:20])}"
            )

    async def checkpoint(self) -> str | None:
        """An opaque position of the write side, for resumable appends."""
        return None

    async def restore_checkpoint(self, checkpoint: str | None) -> None:
        """Undo writes made after ``checkpoint`` (append-only stores)."""

    async def finalize(self) -> None:
        """Make written data visible (append-only stores publish their file)."""

    # -- upstream operations --------------------------------------------
    async def create(self, session_id: str, ttl: int = 3600, **fields: Any) -> Record:
        """Create a session, or return the existing one unchanged (idempotent)."""
        found = (await self.read_many([session_id])).get(session_id)
        now = time.time()
        if found is not None and not is_expired(found, now):
            return found
        if await self.count() >= self.max_sessions:
            raise QuotaExceeded(f"store {self.display} is at its quota of {self.max_sessions} sessions")
        rec = normalize({"id": session_id, "ttl": ttl, "created_at": now, "last_accessed": now, **fields})
        await self.write_many([rec])
        return rec

    async def get(self, session_id: str) -> Record | None:
        """The live session, with ``last_accessed`` refreshed; None if absent or expired."""
        found = (await self.read_many([session_id])).get(session_id)
        now = time.time()
        if found is None or is_expired(found, now):
            return None
        found["last_accessed"] = max(now, found["last_accessed"])
        await self.write_many([found])
        return found

    async def update(self, session_id: str, changes: dict[str, Any]) -> Record | None:
        """Apply changes to a live session and refresh ``last_accessed``."""
        found = await self.get(session_id)
        if found is None:
            return None
        found.update(changes)
        rec = normalize(found)
        await self.write_many([rec])
        return rec

    async def delete(self, session_id: str) -> None:
        """Delete one session."""
        await self.delete_many([session_id])

    async def exists(self, session_id: str) -> bool:
        """Whether a live session exists; does not refresh it."""
        found = (await self.read_many([session_id])).get(session_id)
        return found is not None and not is_expired(found, time.time())

    async def list_ids(self) -> list[str]:
        """Ids of the live sessions; does not refresh them."""
        now = time.time()
        return [r["id"] async for batch in self.iter_records() for r in batch if not is_expired(r, now)]

    async def stats(self) -> dict[str, int]:
        """Counts of all, live and expired sessions, and the quota."""
        now = time.time()
        total = expired = 0
        async for batch in self.iter_records():
            total += len(batch)
            expired += sum(1 for r in batch if is_expired(r, now))
        return {"total": total, "live": total - expired, "expired": expired, "max_sessions": self.max_sessions}


def _gone_by_expiry(prior: Record | None, held: Record | None) -> bool:
    # A store that drops expired keys by itself (Redis) cannot hold a prior that has since expired.
    return held is None and prior is not None and is_expired(prior, time.time())


def batched(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    """Split an iterable into lists of at most ``size``."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
