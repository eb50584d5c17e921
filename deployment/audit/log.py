"""The audit log's storage interface and the driver chosen by URL.

``SNAKEPIT_AUDIT_URL`` names the log: ``postgresql://user@host/db[?table=]``
for a cluster, ``sqlite:///abs/path.db`` otherwise; the default is
``sqlite://$SNAKEPIT_MIGRATE_HOME/audit.db``. Either way the table is created
on first use with triggers that refuse UPDATE and DELETE.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from deployment.audit.entry import GENESIS, AuditEntry, ChainReport, StoredEntry, checked_state, entry_hash, verify_chain
from deployment.errors import BadInput
from deployment.sessions.stores.base import query_options, redact_url
from deployment.sessions.stores.sql import table_name

DEFAULT_TABLE = "snakepit_audit"
COLUMNS = ("seq", "ts", "actor", "host", "event", "migration_id", "workflow_id", "run_id", "before", "after", "key", "prev_hash", "hash")


def audit_url(url: str | None = None) -> str:
    """The audit log's URL: the one given, else ``SNAKEPIT_AUDIT_URL``, else ``audit.db`` in the tool's home."""
    if url or os.environ.get("SNAKEPIT_AUDIT_URL"):
        return url or os.environ["SNAKEPIT_AUDIT_URL"]
    from deployment.home import home

    return f"sqlite://{home() / 'audit.db'}"


class AuditLog(ABC):
    """An append-only, hash-chained log of actions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.table = table_name({"table": query_options(url).get("table", DEFAULT_TABLE)})

    @property
    def display(self) -> str:
        """The URL as it may be shown: credentials redacted."""
        return redact_url(self.url)

    async def __aenter__(self) -> "AuditLog":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @abstractmethod
    async def open(self) -> None:
        """Connect, creating the table and its triggers on first use; raise StoreUnreachable."""

    @abstractmethod
    async def close(self) -> None:
        """Release the connection."""

    @abstractmethod
    async def _append_locked(self, entry: AuditEntry) -> StoredEntry:
        """Append under the driver's write lock, so two writers never fork the chain."""

    @abstractmethod
    async def entries(self, since: str | None = None, migration: str | None = None) -> list[StoredEntry]:
        """Entries in ``seq`` order, optionally from a time on and of one migration."""

    async def append(self, entry: AuditEntry) -> StoredEntry:
        """Append one entry (credentials scrubbed from before/after); with a ``key`` seen before, return that entry."""
        clean = entry.model_copy(update={"before": checked_state(entry.before, "before"), "after": checked_state(entry.after, "after")})
        return await self._append_locked(clean)

    async def verify(self) -> ChainReport:
        """Recompute the whole chain and name every broken entry."""
        return verify_chain(await self.entries())


def chained(entry: AuditEntry, last: tuple[int, str] | None) -> StoredEntry:
    """The entry placed after ``last`` (its seq and hash), with its links."""
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    return StoredEntry(**entry.model_dump(), seq=seq, prev_hash=prev, hash=entry_hash(entry, prev))


def row_values(e: StoredEntry) -> tuple[Any, ...]:
    """The entry's column values, before/after as canonical JSON text."""
    dumped = e.model_dump()
    for name in ("before", "after"):
        dumped[name] = None if dumped[name] is None else json.dumps(dumped[name], sort_keys=True, separators=(",", ":"))
    return tuple(dumped[c] for c in COLUMNS)


def from_row(row: Any) -> StoredEntry:
    """A stored entry from a database row (mapping by column name)."""
    values = {c: row[c] for c in COLUMNS}
    for name in ("before", "after"):
        values[name] = None if values[name] is None else json.loads(values[name])
    return StoredEntry(**values)


def filter_clause(since: str | None, migration: str | None, mark: Callable[[int], str]) -> tuple[str, list[str]]:
    """A WHERE clause for the export filters and its arguments; ``mark(n)`` is the n-th placeholder."""
    clauses: list[str] = []
    args: list[str] = []
    for column, op, value in (("ts", ">=", since), ("migration_id", "=", migration)):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} {op} {mark(len(args))}")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def open_audit_log(url: str | None = None) -> AuditLog:
    """The driver for the audit log at ``url`` (see :func:`audit_url`), not yet opened."""
    from deployment.secrets import resolve_secrets

    url = resolve_secrets(audit_url(url))
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme == "sqlite":
        from deployment.audit.sqlite import SqliteAuditLog

        return SqliteAuditLog(url)
    if scheme in ("postgresql", "postgres"):
        from deployment.audit.postgres import PostgresAuditLog

        return PostgresAuditLog(url)
    raise BadInput(
        f"audit log URL {redact_url(url)!r}: scheme {scheme or '(none)'!r} is not sqlite or postgresql",
        hint="set SNAKEPIT_AUDIT_URL to sqlite:///abs/path/audit.db or postgresql://user@host/db",
    )
