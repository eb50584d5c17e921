"""SQLite: the embedded default store.

One row a session: ``id``, ``expires_at`` (for pruning and range queries)
and ``record``, the canonical JSON, so a record reads back byte for byte.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from deployment.errors import StoreMissing, StoreUnreachable
from deployment.sessions.record import Record, canonical_bytes, expires_at
from deployment.sessions.partition import Partition, range_plan
from deployment.sessions.stores.base import SessionStore, query_options
from deployment.sessions.stores.files import path_of
from deployment.sessions.stores.sql import control_table, journal_table, table_name

_CHUNK = 500  # SQLite's default limit on bound parameters is 999


class SqliteStore(SessionStore):
    """A session table in an SQLite file."""

    scheme = "sqlite"

    def __init__(self, url: str, *, create: bool = True) -> None:
        super().__init__(url, create=create)
        self.path = path_of(url)
        self.table = table_name(query_options(url))
        self.journal = journal_table(self.table)
        self.control = control_table(self.table)
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "store not opened"
        return self._db

    async def open(self) -> None:
        if not self.path.parent.is_dir():
            raise StoreUnreachable(
                f"cannot open {self.display}: folder {self.path.parent} does not exist",
                hint="create the folder first",
            )
        if not self.create_missing and not self.path.exists():
            raise StoreMissing(f"SQLite database {self.path} does not exist", hint="check the path of the source")
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} "
                "(id TEXT PRIMARY KEY, expires_at REAL NOT NULL, record TEXT NOT NULL)"
            )
            self.db.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_expires ON {self.table}(expires_at)")
        except sqlite3.DatabaseError as exc:
            if self._db is not None:
                self._db.close()
                self._db = None
            raise StoreUnreachable(f"cannot open {self.display}: {exc}", hint="is it an SQLite database file?") from None

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def scan(self, cursor: str | None, limit: int) -> tuple[list[Record], str | None]:
        rows = self.db.execute(
            f"SELECT id, record FROM {self.table} WHERE id > ? ORDER BY id LIMIT ?", (cursor or "", limit)
        ).fetchall()
        records = [json.loads(rec) for _, rec in rows]
        return records, rows[-1][0] if len(rows) == limit else None

    async def plan_partitions(self, count: int) -> list[Partition]:
        total = await self.count()
        bounds = [
            row[0]
            for i in range(1, count)
            for row in self.db.execute(f"SELECT id FROM {self.table} ORDER BY id LIMIT 1 OFFSET ?", (total * i // count,))
        ]
        return range_plan(bounds)

    async def scan_encoded(self, partition: Partition, cursor: str | None, limit: int) -> tuple[list[tuple[str, bytes]], str | None]:
        if partition.by_hash:
            return await super().scan_encoded(partition, cursor, limit)
        op, start = (">", cursor) if cursor is not None else (">=", partition.low or "")
        high = "" if partition.high is None else "AND id < ?"
        rows = self.db.execute(
            f"SELECT id, record FROM {self.table} WHERE id {op} ? {high} ORDER BY id LIMIT ?",
            (start, *([partition.high] if partition.high is not None else []), limit),
        ).fetchall()
        return [(sid, rec.encode()) for sid, rec in rows], rows[-1][0] if len(rows) == limit else None

    async def read_many(self, ids: list[str]) -> dict[str, Record]:
        found: dict[str, Record] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for sid, rec in self.db.execute(f"SELECT id, record FROM {self.table} WHERE id IN ({marks})", chunk):
                found[sid] = json.loads(rec)
        return found

    async def write_many(self, records: list[Record], encoded: list[bytes] | None = None) -> None:
        rows = _rows(records, encoded)
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(f"INSERT OR REPLACE INTO {self.table} (id, expires_at, record) VALUES (?, ?, ?)", rows)

    async def delete_many(self, ids: list[str]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(f"DELETE FROM {self.table} WHERE id = ?", [(i,) for i in ids])

    async def count(self) -> int:
        return self.db.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0]

    def _ensure_journal(self) -> None:
        self.db.execute(
            f"CREATE TABLE IF NOT EXISTS {self.journal} "
            "(migration_id TEXT NOT NULL, session_id TEXT NOT NULL, prior TEXT, PRIMARY KEY (migration_id, session_id))"
        )

    async def journal_record(self, migration_id: str, priors: dict[str, Record | None]) -> None:
        self._ensure_journal()
        rows = [(migration_id, sid, None if p is None else canonical_bytes(p).decode()) for sid, p in priors.items()]
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                f"INSERT OR IGNORE INTO {self.journal} (migration_id, session_id, prior) VALUES (?, ?, ?)", rows
            )

    async def journal_scan(self, migration_id: str, cursor: str | None, limit: int) -> tuple[list[tuple[str, Record | None]], str | None]:
        self._ensure_journal()
        rows = self.db.execute(
            f"SELECT session_id, prior FROM {self.journal} WHERE migration_id = ? AND session_id > ? "
            "ORDER BY session_id LIMIT ?",
            (migration_id, cursor or "", limit),
        ).fetchall()
        entries = [(sid, None if prior is None else json.loads(prior)) for sid, prior in rows]
        return entries, rows[-1][0] if len(rows) == limit else None

    async def journal_drop(self, migration_id: str) -> None:
        self._ensure_journal()
        self.db.execute(f"DELETE FROM {self.journal} WHERE migration_id = ?", (migration_id,))

    async def journal_ids(self) -> list[str]:
        self._ensure_journal()
        return [r[0] for r in self.db.execute(f"SELECT DISTINCT migration_id FROM {self.journal} ORDER BY 1")]

    async def write_many_if_newer(self, records: list[Record], encoded: list[bytes] | None = None) -> int:
        rows = _rows(records, encoded)
        with self.db:
            self.db.execute("BEGIN")
            before = self.db.total_changes
            self.db.executemany(
                f"INSERT INTO {self.table} (id, expires_at, record) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, record = excluded.record "
                f"WHERE coalesce(json_extract({self.table}.record, '$.rev'), 0) "
                "< coalesce(json_extract(excluded.record, '$.rev'), 0)",
                rows,
            )
            return self.db.total_changes - before

    def _ensure_control(self) -> None:
        self.db.execute(f"CREATE TABLE IF NOT EXISTS {self.control} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    async def control_get(self, key: str) -> dict[str, Any] | None:
        self._ensure_control()
        row = self.db.execute(f"SELECT value FROM {self.control} WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    async def control_put(self, key: str, value: dict[str, Any]) -> None:
        self._ensure_control()
        self.db.execute(f"INSERT OR REPLACE INTO {self.control} (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    async def control_scan(self, prefix: str) -> dict[str, dict[str, Any]]:
        self._ensure_control()
        rows = self.db.execute(f"SELECT key, value FROM {self.control} WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))
        return {k: json.loads(v) for k, v in rows}

    async def control_delete(self, prefix: str) -> None:
        self._ensure_control()
        self.db.execute(f"DELETE FROM {self.control} WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))


def _rows(records: list[Record], encoded: list[bytes] | None) -> list[tuple[str, float, str]]:
    blobs = encoded if encoded is not None else [canonical_bytes(r) for r in records]
    return [(r["id"], expires_at(r), b.decode()) for r, b in zip(records, blobs)]
