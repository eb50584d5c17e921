"""The session record, its canonical bytes and its expiry rule.

A record is kept as a plain dict in canonical form: the known fields typed as
the reference says, unknown fields kept as they came.  ``canonical_bytes`` is
the one serialisation every store writes and every digest hashes, so a record
that survives a round trip through any store comes back byte for byte.
"""

from __future__ import annotations

import json
import math
from typing import Any

from deployment.errors import InvalidSession

Record = dict[str, Any]

DEFAULT_TTL = 3600
MAP_FIELDS = ("programs", "metadata", "stats")


def normalize(raw: Any) -> Record:
    """Check a decoded session against the invariants and return its canonical form.

    Timestamps become floats (epoch seconds), ``ttl`` an int, the map fields
    default to ``{}``; unknown fields are kept untouched.  Raises
    :class:`InvalidSession` naming the field that is wrong.
    """
    if not isinstance(raw, dict):
        raise InvalidSession(f"a session must be a JSON object, got {type(raw).__name__}")
    rec = dict(raw)
    sid = rec.get("id")
    if not isinstance(sid, str) or not sid:
        raise InvalidSession("'id' must be a non-empty string")
    ttl = rec.get("ttl", DEFAULT_TTL)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_SECONDS:
        raise InvalidSession(f"session {sid!r}: 'ttl' must be an integer number of seconds from 0 to {MAX_SECONDS}, "
                             f"got {repr(ttl)[:40]}")
    rec["ttl"] = ttl
    for field in ("created_at", "last_accessed"):
        value = rec.get(field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or abs(value) > MAX_SECONDS or not math.isfinite(value):
            raise InvalidSession(f"session {sid!r}: {field!r} must be epoch seconds (a number), got {repr(value)[:40]}")
        rec[field] = float(value)
    if rec["last_accessed"] < rec["created_at"]:
        raise InvalidSession(f"session {sid!r}: 'last_accessed' is earlier than 'created_at'")
    worker = rec.get("last_worker_id")
    if worker is not None and not isinstance(worker, str):
        raise InvalidSession(f"session {sid!r}: 'last_worker_id' must be a string or null")
    rec["last_worker_id"] = worker
    for field in MAP_FIELDS:
        value = rec.get(field, {})
        if not isinstance(value, dict):
            raise InvalidSession(f"session {sid!r}: {field!r} must be an object")
        rec[field] = value
    return rec


def session_problem(rec: Any, key: str) -> str | None:
    """What makes a decoded record unusable as the session stored under ``key`` (None: nothing).

    Only what copying needs is checked, cheaply: an object whose ``id`` is
    the key, an integer ``ttl`` and numeric timestamps.
    """
    if not isinstance(rec, dict):
        return f"a session must be a JSON object, got {type(rec).__name__}"
    if rec.get("id") != key:
        return f"its 'id' is {rec.get('id')!r}, not the key it is stored under"
    ttl = rec.get("ttl")
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        return "'ttl' is missing or not an integer"
    if abs(ttl) > MAX_SECONDS:
        return f"'ttl' {ttl} is out of range (at most {MAX_SECONDS} seconds)"
    for field in ("created_at", "last_accessed"):
        value = rec.get(field)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{field!r} is missing or not a number"
        if abs(value) > MAX_SECONDS or not math.isfinite(value):  # a number no clock reaches, Infinity or NaN
            return f"{field!r} {value} is not a time in seconds"
    return None


# Seconds beyond any session's lifetime or timestamp (about 285 million years): larger numbers are corrupt data.
MAX_SECONDS = 2**53


def canonical_bytes(rec: Record) -> bytes:
    """The stable JSON of a record: sorted keys, no spaces, UTF-8."""
    return json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def decode(data: bytes | str) -> Record:
    """Parse stored canonical JSON back into a record (trusted: written by us)."""
    return json.loads(data)


def expires_at(rec: Record) -> float:
    """The moment the session expires: ``last_accessed + ttl``."""
    return rec["last_accessed"] + rec["ttl"]


def is_expired(rec: Record, now: float) -> bool:
    """Expired when ``last_accessed + ttl < now`` (strictly less), as upstream.

    A tombstone (a delete remembered during dual writes) counts as expired:
    it is never served, copied or compared as a session.
    """
    return rec["last_accessed"] + rec["ttl"] < now or bool(rec.get(TOMBSTONE))


# Marks a record that stands for a session deleted while writes went to two stores.
TOMBSTONE = "_deleted"
