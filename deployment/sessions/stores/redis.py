"""Redis: one string key a session, ``<prefix><id>`` holding the canonical JSON.

The key expires (``PXAT``) when the session does, rounded up to the next
millisecond so that Redis never drops a session before its time.  The
migration journal is a hash per migration beside the sessions.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from deployment.errors import StoreUnreachable
from deployment.sessions.record import Record, canonical_bytes, expires_at
from deployment.sessions.partition import WHOLE, Partition, hash_plan, hash_residue
from deployment.sessions.stores.base import SessionStore, query_options

DEFAULT_PREFIX = "snakepit:session:"
JOURNAL_PREFIX = "snakepit-migrate:journal:"
CONTROL_PREFIX = "snakepit-migrate:control:"

# Set KEYS[1] to ARGV[1] (expiring at ARGV[2] ms) unless it holds a record with rev >= ARGV[3].
_SET_IF_NEWER = """
local held = redis.call('GET', KEYS[1])
if held then
  local ok, rec = pcall(cjson.decode, held)
  if ok and type(rec) == 'table' and (tonumber(rec['rev']) or 0) >= tonumber(ARGV[3]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1
"""


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisStore(SessionStore):
    """Sessions as expiring keys in one Redis database."""

    scheme = "redis"

    def __init__(self, url: str, *, create: bool = True) -> None:
        super().__init__(url, create=create)
        self.prefix = query_options(url).get("prefix", DEFAULT_PREFIX)
        self._conn_url = urlunsplit(urlsplit(url)._replace(query=""))
        self._r: aioredis.Redis | None = None

    @property
    def r(self) -> aioredis.Redis:
        assert self._r is not None, "store not opened"
        return self._r

    def _control_key(self) -> str:
        return f"{CONTROL_PREFIX}{self.prefix}"

    def _journal_key(self, migration_id: str) -> str:
        return f"{JOURNAL_PREFIX}{self.prefix}{migration_id}"

    async def open(self) -> None:
        try:
            self._r = aioredis.from_url(self._conn_url, socket_connect_timeout=5, socket_timeout=30)
            await self.r.ping()
        except (RedisError, OSError, ValueError) as exc:
            await self.close()
            raise StoreUnreachable(
                f"cannot reach Redis at {self.display}: {exc}",
                hint="check host, port and database number, and that redis-server is running",
            ) from None

    async def close(self) -> None:
        if self._r is not None:
            await self._r.aclose()
            self._r = None

    async def scan(self, cursor: str | None, limit: int) -> tuple[list[Record], str | None]:
        pairs, cursor = await self.scan_encoded(WHOLE, cursor, limit)
        return [json.loads(b) for _, b in pairs], cursor

    async def plan_partitions(self, count: int) -> list[Partition]:
        return hash_plan(count)

    async def scan_encoded(self, partition: Partition, cursor: str | None, limit: int) -> tuple[list[tuple[str, bytes]], str | None]:
        """One SCAN step over the whole key space, keeping the keys whose id hashes into ``partition``."""
        next_cursor, keys = await self.r.scan(
            cursor=int(cursor or 0), match=_glob_escape(self.prefix) + "*", count=limit * partition.count
        )
        skip = len(self.prefix.encode())
        if partition.by_hash:
            keys = [k for k in keys if hash_residue(k[skip:], partition.count) == partition.index]
        values = await self.r.mget(keys) if keys else []
        # None: expired between SCAN and MGET
        pairs = [(k[skip:].decode(), v) for k, v in zip(keys, values) if v is not None]
        return pairs, None if int(next_cursor) == 0 else str(next_cursor)

    async def read_many(self, ids: list[str]) -> dict[str, Record]:
        if not ids:
            return {}
        values = await self.r.mget([self.prefix + i for i in ids])
        return {i: json.loads(v) for i, v in zip(ids, values) if v is not None}

    async def write_many(self, records: list[Record], encoded: list[bytes] | None = None) -> None:
        blobs = encoded if encoded is not None else [canonical_bytes(r) for r in records]
        async with self.r.pipeline(transaction=False) as pipe:
            for rec, blob in zip(records, blobs):
                pipe.set(self.prefix + rec["id"], blob, pxat=math.ceil(expires_at(rec) * 1000))
            await pipe.execute()

    async def delete_many(self, ids: list[str]) -> None:
        if ids:
            await self.r.delete(*[self.prefix + i for i in ids])

    async def count(self) -> int:
        total, cursor = 0, 0
        while True:
            cursor, keys = await self.r.scan(cursor=cursor, match=_glob_escape(self.prefix) + "*", count=1000)
            total += len(keys)
            if int(cursor) == 0:
                return total

    async def journal_record(self, migration_id: str, priors: dict[str, Record | None]) -> None:
        key = self._journal_key(migration_id)
        async with self.r.pipeline(transaction=False) as pipe:
            for sid, prior in priors.items():
                pipe.hsetnx(key, sid, b"" if prior is None else canonical_bytes(prior))
            await pipe.execute()

    async def journal_scan(self, migration_id: str, cursor: str | None, limit: int) -> tuple[list[tuple[str, Record | None]], str | None]:
        next_cursor, items = await self.r.hscan(self._journal_key(migration_id), cursor=int(cursor or 0), count=limit)
        entries = [(k.decode(), json.loads(v) if v else None) for k, v in items.items()]
        return entries, None if int(next_cursor) == 0 else str(next_cursor)

    async def journal_drop(self, migration_id: str) -> None:
        await self.r.delete(self._journal_key(migration_id))

    async def journal_ids(self) -> list[str]:
        head = f"{JOURNAL_PREFIX}{self.prefix}"
        keys = [k.decode() async for k in self.r.scan_iter(match=_glob_escape(head) + "*")]
        return sorted(k[len(head) :] for k in keys)

    async def write_many_if_newer(self, records: list[Record], encoded: list[bytes] | None = None) -> int:
        if not records:
            return 0
        blobs = encoded if encoded is not None else [canonical_bytes(r) for r in records]
        script = self.r.register_script(_SET_IF_NEWER)
        async with self.r.pipeline(transaction=False) as pipe:
            for rec, blob in zip(records, blobs):
                await script(
                    keys=[self.prefix + rec["id"]],
                    args=[blob, math.ceil(expires_at(rec) * 1000), int(rec.get("rev", 0))],
                    client=pipe,
                )
            return sum(int(x) for x in await pipe.execute())

    async def control_get(self, key: str) -> dict[str, Any] | None:
        value = await self.r.hget(self._control_key(), key)
        return json.loads(value) if value is not None else None

    async def control_put(self, key: str, value: dict[str, Any]) -> None:
        await self.r.hset(self._control_key(), key, json.dumps(value))

    async def control_scan(self, prefix: str) -> dict[str, dict[str, Any]]:
        found = await self.r.hgetall(self._control_key())
        return {k.decode(): json.loads(v) for k, v in found.items() if k.decode().startswith(prefix)}

    async def control_delete(self, prefix: str) -> None:
        keys = [k for k in await self.control_scan(prefix)]
        if keys:
            await self.r.hdel(self._control_key(), *keys)
