"""The audit log in an SQLite file: the embedded default."""

from __future__ import annotations

import sqlite3

from deployment.audit.entry import AuditEntry, StoredEntry
from deployment.audit.log import COLUMNS, AuditLog, chained, filter_clause, from_row, row_values
from deployment.errors import StoreUnreachable
from deployment.sessions.stores.files import path_of


class SqliteAuditLog(AuditLog):
    """Append-only table with triggers that abort any UPDATE or DELETE."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.path = path_of(url)
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "audit log not opened"
        return self._db

    async def open(self) -> None:
        if not self.path.parent.is_dir():
            raise StoreUnreachable(f"cannot open the audit log {self.display}: folder {self.path.parent} does not exist")
        t = self.table
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(
                f"CREATE TABLE IF NOT EXISTS {t} (seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, actor TEXT NOT NULL, "
                "host TEXT NOT NULL, event TEXT NOT NULL, migration_id TEXT, workflow_id TEXT, run_id TEXT, "
                "before TEXT, after TEXT, key TEXT UNIQUE, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
                f"CREATE INDEX IF NOT EXISTS {t}_migration ON {t}(migration_id);"
                f"CREATE TRIGGER IF NOT EXISTS {t}_no_update BEFORE UPDATE ON {t} "
                "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE refused'); END;"
                f"CREATE TRIGGER IF NOT EXISTS {t}_no_delete BEFORE DELETE ON {t} "
                "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE refused'); END;"
            )
        except sqlite3.DatabaseError as exc:
            await self.close()
            raise StoreUnreachable(f"cannot open the audit log {self.display}: {exc}") from None

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def _append_locked(self, entry: AuditEntry) -> StoredEntry:
        db, t = self.db, self.table
        db.execute("BEGIN IMMEDIATE")  # one writer at a time: the chain never forks
        try:
            if entry.key is not None:
                found = db.execute(f"SELECT * FROM {t} WHERE key = ?", (entry.key,)).fetchone()
                if found is not None:
                    db.execute("COMMIT")
                    return from_row(found)
            last = db.execute(f"SELECT seq, hash FROM {t} ORDER BY seq DESC LIMIT 1").fetchone()
            stored = chained(entry, (last["seq"], last["hash"]) if last else None)
            db.execute(f"INSERT INTO {t} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", row_values(stored))
            db.execute("COMMIT")
            return stored
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def entries(self, since: str | None = None, migration: str | None = None) -> list[StoredEntry]:
        where, args = filter_clause(since, migration, lambda n: "?")
        rows = self.db.execute(f"SELECT * FROM {self.table}{where} ORDER BY seq", args).fetchall()
        return [from_row(r) for r in rows]

