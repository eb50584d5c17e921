"""The audit log in PostgreSQL (through asyncpg), for clusters."""

from __future__ import annotations

import asyncio

import asyncpg

from deployment.audit.entry import AuditEntry, StoredEntry
from deployment.audit.log import COLUMNS, AuditLog, chained, filter_clause, from_row, row_values
from deployment.errors import StoreUnreachable
from deployment.sessions.stores.postgres import PostgresStore


class PostgresAuditLog(AuditLog):
    """Append-only table; a trigger raises on UPDATE, DELETE and TRUNCATE."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._dsn = PostgresStore(url)._dsn  # the same URL handling as the session store (our ?options removed)
        self._conn: asyncpg.Connection | None = None
        self._busy = asyncio.Lock()  # one connection: one statement at a time

    @property
    def conn(self) -> asyncpg.Connection:
        assert self._conn is not None, "audit log not opened"
        return self._conn

    async def open(self) -> None:
        t = self.table
        try:
            self._conn = await asyncpg.connect(self._dsn, timeout=10)
            async with self.conn.transaction():
                await self.conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", t)  # concurrent first uses
                await self.conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {t} (seq bigint PRIMARY KEY, ts text NOT NULL, actor text NOT NULL, "
                    "host text NOT NULL, event text NOT NULL, migration_id text, workflow_id text, run_id text, "
                    "before text, after text, key text UNIQUE, prev_hash text NOT NULL, hash text NOT NULL);"
                    f"CREATE INDEX IF NOT EXISTS {t}_migration ON {t} (migration_id);"
                    f"CREATE OR REPLACE FUNCTION {t}_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP; END $$;"
                    f"CREATE OR REPLACE TRIGGER {t}_no_change BEFORE UPDATE OR DELETE ON {t} "
                    f"FOR EACH ROW EXECUTE FUNCTION {t}_refuse();"
                    f"CREATE OR REPLACE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
                    f"FOR EACH STATEMENT EXECUTE FUNCTION {t}_refuse();"
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            await self.close()
            raise StoreUnreachable(
                f"cannot open the audit log at {self.display}: {exc}", hint="check SNAKEPIT_AUDIT_URL"
            ) from None

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _append_locked(self, entry: AuditEntry) -> StoredEntry:
        t = self.table
        async with self._busy, self.conn.transaction():
            await self.conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", t)  # one writer: the chain never forks
            if entry.key is not None:
                found = await self.conn.fetchrow(f"SELECT * FROM {t} WHERE key = $1", entry.key)
                if found is not None:
                    return from_row(found)
            last = await self.conn.fetchrow(f"SELECT seq, hash FROM {t} ORDER BY seq DESC LIMIT 1")
            stored = chained(entry, (last["seq"], last["hash"]) if last else None)
            marks = ", ".join(f"${i + 1}" for i in range(len(COLUMNS)))
            await self.conn.execute(f"INSERT INTO {t} ({', '.join(COLUMNS)}) VALUES ({marks})", *row_values(stored))
            return stored

    async def entries(self, since: str | None = None, migration: str | None = None) -> list[StoredEntry]:
        where, args = filter_clause(since, migration, lambda n: f"${n}")
        async with self._busy:
            rows = await self.conn.fetch(f"SELECT * FROM {self.table}{where} ORDER BY seq", *args)
        return [from_row(r) for r in rows]
