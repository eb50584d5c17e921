"""Audit entries and their hash chain: pure logic, no I/O.

Each stored entry carries the hash of the entry before it; its own hash is
the SHA-256 of its canonical JSON (sorted keys, no spaces) including that
previous hash. Walking the log in order and recomputing every hash shows an
edited entry (its hash no longer matches), a removed one (a gap, and a link
to a hash nowhere in the log) and a reordered one (a link to an entry that
now sits elsewhere).
"""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field

from deployment.errors import BadInput
from deployment.sessions.record import canonical_bytes
from deployment.sessions.stores.base import redact_url

GENESIS = "0" * 64
MAX_STATE_BYTES = 8192  # before/after are small JSON objects, not data dumps


class AuditEntry(BaseModel):
    """One action, as appended."""

    ts: str = Field(description="UTC time, ISO 8601 with microseconds and Z (sorts as text)")
    actor: str
    host: str
    event: str
    migration_id: str | None = None
    workflow_id: str | None = None
    run_id: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    key: str | None = Field(None, description="idempotency key: a retried append with the same key adds nothing")


class StoredEntry(AuditEntry):
    """An entry as the log holds it: its place and its links."""

    seq: int
    prev_hash: str
    hash: str


class ChainProblem(BaseModel):
    """One break of the chain, naming the entry."""

    seq: int
    kind: Literal["edited", "removed", "reordered", "broken_link"]
    message: str


class ChainReport(BaseModel):
    """The answer of ``audit verify``."""

    ok: bool
    entries: int
    head: str = Field(description="hash of the last entry; keep it elsewhere to detect a cut-off tail")
    problems: list[ChainProblem] = []


def now_ts() -> str:
    """The current UTC time in the log's fixed-width format."""
    return format_ts(datetime.now(timezone.utc))


def format_ts(when: datetime) -> str:
    """A datetime in the log's format: ``2026-11-25T10:31:41.123456Z``."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_since(text: str) -> str:
    """``--since``: an ISO date or datetime (UTC unless it says otherwise), or an age like 30m, 2h, 7d."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    raw = text.strip()
    if raw[:-1].isdigit() and raw[-1:] in units:
        return format_ts(datetime.now(timezone.utc) - timedelta(seconds=int(raw[:-1]) * units[raw[-1]]))
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(
            f"--since {text!r} is neither an ISO date/time nor an age", hint="e.g. 2026-11-25, 2026-11-25T10:00:00Z, 90m, 2h, 7d"
        ) from None
    return format_ts(when if when.tzinfo else when.replace(tzinfo=timezone.utc))


def default_actor(actor: str | None = None) -> tuple[str, str]:
    """(actor, host): the given actor, else ``SNAKEPIT_ACTOR``, else the OS user; and this host's name."""
    name = actor or os.environ.get("SNAKEPIT_ACTOR")
    if not name:
        try:
            name = getpass.getuser()
        except Exception:  # no user name in a bare container
            name = f"uid-{os.getuid()}"
    return name, socket.gethostname()


def scrub(value: Any) -> Any:
    """A copy of a JSON value with every URL's password replaced by ``***``."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


def checked_state(state: dict[str, Any] | None, what: str) -> dict[str, Any] | None:
    """A before/after state, scrubbed of credentials and refused when over ``MAX_STATE_BYTES``."""
    if state is None:
        return None
    clean = scrub(state)
    if len(canonical_bytes(clean)) > MAX_STATE_BYTES:
        raise BadInput(f"the audit entry's {what} state is over {MAX_STATE_BYTES} bytes", hint="record counts and digests, not data")
    return clean


def entry_hash(entry: AuditEntry, prev_hash: str) -> str:
    """SHA-256 of the entry's canonical JSON with the previous entry's hash."""
    body = AuditEntry.model_validate(entry.model_dump(include=set(AuditEntry.model_fields))).model_dump()
    return hashlib.sha256(canonical_bytes({**body, "prev_hash": prev_hash})).hexdigest()


def verify_chain(rows: list[StoredEntry]) -> ChainReport:
    """Walk the entries in ``seq`` order and name every one whose hash or link is wrong."""
    where = {row.hash: i for i, row in enumerate(rows)}
    problems: list[ChainProblem] = []
    prev_hash, prev_seq = GENESIS, 0
    for i, row in enumerate(rows):
        label = f"entry #{row.seq} ({row.event} at {row.ts})"
        if entry_hash(row, row.prev_hash) != row.hash:
            problems.append(ChainProblem(seq=row.seq, kind="edited", message=f"{label} was edited: its content no longer matches its hash"))
        if row.prev_hash != prev_hash:
            j = where.get(row.prev_hash)
            if j is not None:
                problems.append(ChainProblem(
                    seq=row.seq, kind="reordered",
                    message=f"{label} is out of order: it was written right after the entry now at #{rows[j].seq}, not after #{prev_seq}",
                ))  # fmt: skip
            elif row.seq > prev_seq + 1:
                gone = f"#{prev_seq + 1}" if row.seq == prev_seq + 2 else f"#{prev_seq + 1} to #{row.seq - 1}"
                problems.append(ChainProblem(
                    seq=prev_seq + 1, kind="removed", message=f"entry {gone} was removed: {label} links to an entry that is gone",
                ))  # fmt: skip
            else:
                problems.append(ChainProblem(
                    seq=prev_seq, kind="broken_link",
                    message=f"entry #{prev_seq} was rewritten (or one after it removed and the rest renumbered): {label} does not link to it",
                ))  # fmt: skip
        prev_hash, prev_seq = row.hash, row.seq
    return ChainReport(ok=not problems, entries=len(rows), head=prev_hash, problems=problems)
