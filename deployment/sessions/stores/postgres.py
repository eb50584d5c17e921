"""PostgreSQL: a session table (``?table=``, created if missing).

``record`` is of type ``json``, which keeps the canonical text exactly as
written (``jsonb`` would re-encode it); ``expires_at`` is indexed for pruning
and range scans.  Writes use ``unnest`` arrays: one statement a batch.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from deployment.errors import StoreMissing, StoreUnreachable
from deployment.sessions.record import Record, canonical_bytes, expires_at
from deployment.sessions.partition import Partition, range_plan
from deployment.sessions.stores.base import SessionStore, query_options
from deployment.sessions.stores.sql import control_table, journal_table, table_name

_OUR_OPTIONS = {"table", "max_sessions"}


class PostgresStore(SessionStore):
    """A session table in PostgreSQL."""

    scheme = "postgresql"

    def __init__(self, url: str, *, create: bool = True) -> None:
        super().__init__(url, create=create)
        self.table = table_name(query_options(url))
        self.journal = journal_table(self.table)
        self.control = control_table(self.table)
        parts = urlsplit(url)
        rest = [(k, v) for k, v in parse_qsl(parts.query) if k not in _OUR_OPTIONS]
        self._dsn = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(rest)))
        self._pool: asyncpg.Pool | None = None
        self._created: set[str] = set()

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "store not opened"
        return self._pool

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=4, timeout=10)
            async with self.pool.acquire() as conn:
                if not self.create_missing and await conn.fetchval("SELECT to_regclass($1)", self.table) is None:
                    raise StoreMissing(
                        f"table {self.table} does not exist in {self.display}", hint="check ?table= of the source"
                    )
            await self._ddl(
                f"CREATE TABLE IF NOT EXISTS {self.table} "
                "(id text PRIMARY KEY, expires_at double precision NOT NULL, record json NOT NULL);"
                f"CREATE INDEX IF NOT EXISTS {self.table}_expires ON {self.table} (expires_at)"
            )
        except StoreUnreachable:
            await self.close()
            raise
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            await self.close()
            raise StoreUnreachable(
                f"cannot reach PostgreSQL at {self.display}: {exc}",
                hint="check host, port, database and user, and that the server accepts connections",
            ) from None

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def scan(self, cursor: str | None, limit: int) -> tuple[list[Record], str | None]:
        rows = await self.pool.fetch(
            f"SELECT id, record FROM {self.table} WHERE id > $1 ORDER BY id LIMIT $2", cursor or "", limit
        )
        return [json.loads(r["record"]) for r in rows], rows[-1]["id"] if len(rows) == limit else None

    async def plan_partitions(self, count: int) -> list[Partition]:
        if count <= 1:
            return range_plan([])
        bounds = await self.pool.fetchval(
            f"SELECT percentile_disc($1::float8[]) WITHIN GROUP (ORDER BY id) FROM {self.table}",
            [i / count for i in range(1, count)],
        )
        return range_plan([b for b in bounds or [] if b is not None])

    async def scan_encoded(self, partition: Partition, cursor: str | None, limit: int) -> tuple[list[tuple[str, bytes]], str | None]:
        if partition.by_hash:
            return await super().scan_encoded(partition, cursor, limit)
        op, start = (">", cursor) if cursor is not None else (">=", partition.low or "")
        rows = await self.pool.fetch(
            f"SELECT id, record FROM {self.table} WHERE id {op} $1 AND ($3::text IS NULL OR id < $3) ORDER BY id LIMIT $2",
            start,
            limit,
            partition.high,
        )
        return [(r["id"], r["record"].encode()) for r in rows], rows[-1]["id"] if len(rows) == limit else None

    async def read_many(self, ids: list[str]) -> dict[str, Record]:
        if not ids:
            return {}
        rows = await self.pool.fetch(f"SELECT id, record FROM {self.table} WHERE id = ANY($1::text[])", ids)
        return {r["id"]: json.loads(r["record"]) for r in rows}

    async def write_many(self, records: list[Record], encoded: list[bytes] | None = None) -> None:
        if not records:
            return
        await self.pool.execute(
            f"INSERT INTO {self.table} (id, expires_at, record) "
            "SELECT * FROM unnest($1::text[], $2::float8[], $3::json[]) "
            "ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at, record = EXCLUDED.record",
            *_columns(records, encoded),
        )

    async def write_journaled(
        self,
        migration_id: str,
        records: list[Record],
        *,
        only_newer: bool = False,
        encoded: list[bytes] | None = None,
        known_absent: bool = False,
    ) -> int:
        """Into a table that held none of these ids, journal and write them with two ``COPY``s in one transaction.

        A batch of which some ids are present already (a retried batch) fails
        as a whole and is written the general way instead.
        """
        if not known_absent or only_newer or not records:
            return await super().write_journaled(
                migration_id, records, only_newer=only_newer, encoded=encoded, known_absent=known_absent
            )
        await self._ensure_journal()
        ids, expiry, texts = _columns(records, encoded)
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.copy_records_to_table(
                    self.journal, records=[(migration_id, i) for i in ids], columns=["migration_id", "session_id"]
                )
                await conn.copy_records_to_table(
                    self.table, records=list(zip(ids, expiry, texts)), columns=["id", "expires_at", "record"]
                )
        except asyncpg.UniqueViolationError:
            return await super().write_journaled(migration_id, records, encoded=encoded, known_absent=True)
        return len(records)

    async def delete_many(self, ids: list[str]) -> None:
        if ids:
            await self.pool.execute(f"DELETE FROM {self.table} WHERE id = ANY($1::text[])", ids)

    async def count(self) -> int:
        return await self.pool.fetchval(f"SELECT count(*) FROM {self.table}")

    async def _ensure_journal(self) -> None:
        await self._ddl(
            f"CREATE TABLE IF NOT EXISTS {self.journal} (migration_id text NOT NULL, session_id text NOT NULL, "
            "prior json, PRIMARY KEY (migration_id, session_id))"
        )

    async def journal_record(self, migration_id: str, priors: dict[str, Record | None]) -> None:
        await self._ensure_journal()
        await self.pool.execute(
            f"INSERT INTO {self.journal} (migration_id, session_id, prior) "
            "SELECT $1, * FROM unnest($2::text[], $3::json[]) ON CONFLICT DO NOTHING",
            migration_id,
            list(priors),
            [None if p is None else canonical_bytes(p).decode() for p in priors.values()],
        )

    async def journal_scan(self, migration_id: str, cursor: str | None, limit: int) -> tuple[list[tuple[str, Record | None]], str | None]:
        await self._ensure_journal()
        rows = await self.pool.fetch(
            f"SELECT session_id, prior FROM {self.journal} WHERE migration_id = $1 AND session_id > $2 "
            "ORDER BY session_id LIMIT $3",
            migration_id,
            cursor or "",
            limit,
        )
        entries = [(r["session_id"], None if r["prior"] is None else json.loads(r["prior"])) for r in rows]
        return entries, rows[-1]["session_id"] if len(rows) == limit else None

    async def journal_drop(self, migration_id: str) -> None:
        await self._ensure_journal()
        await self.pool.execute(f"DELETE FROM {self.journal} WHERE migration_id = $1", migration_id)

    async def journal_ids(self) -> list[str]:
        await self._ensure_journal()
        return [r[0] for r in await self.pool.fetch(f"SELECT DISTINCT migration_id FROM {self.journal} ORDER BY 1")]

    async def write_many_if_newer(self, records: list[Record], encoded: list[bytes] | None = None) -> int:
        if not records:
            return 0
        status = await self.pool.execute(
            f"INSERT INTO {self.table} AS t (id, expires_at, record) "
            "SELECT * FROM unnest($1::text[], $2::float8[], $3::json[]) "
            "ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at, record = EXCLUDED.record "
            "WHERE coalesce((t.record->>'rev')::bigint, 0) < coalesce((EXCLUDED.record->>'rev')::bigint, 0)",
            *_columns(records, encoded),
        )
        return int(status.split()[-1])

    async def _ensure_control(self) -> None:
        await self._ddl(f"CREATE TABLE IF NOT EXISTS {self.control} (key text PRIMARY KEY, value json NOT NULL)")

    async def _ddl(self, statement: str) -> None:
        """Run a CREATE ... IF NOT EXISTS once per connection pool, safe against other processes doing the same.

        PostgreSQL's IF NOT EXISTS is not atomic between sessions; an advisory
        lock on the table name serialises the creators.
        """
        if statement in self._created:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.table)
            await conn.execute(statement)
        self._created.add(statement)

    async def control_get(self, key: str) -> dict[str, Any] | None:
        await self._ensure_control()
        value = await self.pool.fetchval(f"SELECT value FROM {self.control} WHERE key = $1", key)
        return json.loads(value) if value is not None else None

    async def control_put(self, key: str, value: dict[str, Any]) -> None:
        await self._ensure_control()
        await self.pool.execute(
            f"INSERT INTO {self.control} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            key,
            json.dumps(value),
        )

    async def control_scan(self, prefix: str) -> dict[str, dict[str, Any]]:
        await self._ensure_control()
        rows = await self.pool.fetch(f"SELECT key, value FROM {self.control} WHERE left(key, $2) = $1", prefix, len(prefix))
        return {r["key"]: json.loads(r["value"]) for r in rows}

    async def control_delete(self, prefix: str) -> None:
        await self._ensure_control()
        await self.pool.execute(f"DELETE FROM {self.control} WHERE left(key, $2) = $1", prefix, len(prefix))


def _columns(records: list[Record], encoded: list[bytes] | None) -> tuple[list[str], list[float], list[str]]:
    """The id, expiry and canonical-JSON columns of a batch, for an ``unnest`` insert."""
    blobs = encoded if encoded is not None else [canonical_bytes(r) for r in records]
    return [r["id"] for r in records], [expires_at(r) for r in records], [b.decode() for b in blobs]
