"""Session store drivers, chosen by URL scheme.

``jsonl:///abs/path.jsonl`` (portable snapshot), ``sqlite:///abs/path.db``
(embedded default), ``redis://host:port/db`` and ``postgresql://...``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from deployment.errors import UnknownStoreScheme
from deployment.sessions.stores.base import SessionStore, redact_url

SCHEMES = ("jsonl", "sqlite", "redis", "postgresql", "postgres")


def open_store(url: str, *, create: bool = True) -> SessionStore:
    """The driver for ``url``, not yet opened (use ``async with``).

    With ``create=False`` (a source) a missing file or table makes ``open()``
    fail instead of creating it. Raises :class:`UnknownStoreScheme` for a
    scheme no driver handles. A password given as a reference (see
    :mod:`deployment.secrets`) is resolved here, in the process that opens the store.
    """
    from deployment.secrets import resolve_secrets

    url = resolve_secrets(url)  # a ${env:NAME} / ${secret:NAME} password, resolved here and never returned
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme == "jsonl":
        from deployment.sessions.stores.jsonl import JsonlStore

        return JsonlStore(url, create=create)
    if scheme == "sqlite":
        from deployment.sessions.stores.sqlite import SqliteStore

        return SqliteStore(url, create=create)
    if scheme in ("redis", "rediss"):
        from deployment.sessions.stores.redis import RedisStore

        return RedisStore(url, create=create)
    if scheme in ("postgresql", "postgres"):
        from deployment.sessions.stores.postgres import PostgresStore

        return PostgresStore(url, create=create)
    raise UnknownStoreScheme(
        f"unknown store URL {redact_url(url)!r}: scheme {scheme or '(none)'!r} is not one of jsonl, sqlite, redis, postgresql",
        hint="examples: jsonl:///tmp/sessions.jsonl, sqlite:///var/lib/snakepit/sessions.db, "
        "redis://127.0.0.1:6379/0, postgresql://user@host:5432/db",
    )


__all__ = ["SessionStore", "open_store", "redact_url", "SCHEMES"]
