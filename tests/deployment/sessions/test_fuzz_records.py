"""Hypothesis fuzzing of session records as stores hold them: any bytes give a session or a named corrupt record.

A record in a source store (``_decode`` of the copy) or a line of a JSONL
snapshot (``JsonlStore``) is either a usable session, or is reported with
its id (or file and line) as corrupt; never another exception, which would
retry the copy forever instead of telling the operator. ``FUZZ_EXAMPLES``
sets the number of examples (``make fuzz`` runs many more).
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from hypothesis import HealthCheck, given, settings, strategies as st
from temporalio.exceptions import ApplicationError

from activities.sessions import _decode
from deployment.errors import SnapshotParseError
from deployment.sessions.record import is_expired
from deployment.sessions.stores.jsonl import JsonlStore

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
numbers = st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([10**400, -(10**400), 2**63])


@st.composite
def session_like(draw: st.DrawFn) -> tuple[str, bytes]:
    """A session with any of its fields replaced by anything, encoded as JSON (NaN and huge numbers included)."""
    sid = draw(st.text(min_size=1, max_size=12))
    rec = {"id": sid, "ttl": 3600, "created_at": 1.7e9, "last_accessed": 1.7e9, "metadata": {}}
    for field in draw(st.sets(st.sampled_from(sorted(rec)), max_size=3)):
        rec[field] = draw(numbers | json_values)
    return sid, json.dumps(rec).encode()


blobs = st.tuples(st.text(min_size=1, max_size=12), st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode()))
deep = st.integers(min_value=500, max_value=5000).map(lambda n: (f"deep-{n}", b"[" * n + b"]" * n))


@FUZZ
@given(st.lists(session_like() | blobs | deep, min_size=1, max_size=6))
def test_any_stored_bytes_decode_to_sessions_or_named_corrupt_records(pairs: list[tuple[str, bytes]]) -> None:
    kept, corrupt = _decode(pairs, "redis://fuzz", "skip")
    assert len(kept) + len(corrupt) == len(pairs)
    for rec, _ in kept:
        is_expired(rec, time.time())  # what the copy asks of every kept session must not raise
    try:
        stopped, none = _decode(pairs, "redis://fuzz", "stop")
    except ApplicationError as exc:
        assert exc.type == "CorruptRecord" and exc.non_retryable and "is corrupt" in exc.message
        assert corrupt, "stopped on a record that skipping kept"
    else:
        assert not corrupt and none == [] and len(stopped) == len(pairs)


@FUZZ
@given(st.lists(st.binary(max_size=80) | session_like().map(lambda p: p[1]), min_size=1, max_size=6))
def test_any_snapshot_line_is_a_session_or_a_named_parse_error(tmp_path_factory, lines: list[bytes]) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "in.jsonl"
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")

    async def read_all() -> list[dict]:
        found: list[dict] = []
        async with JsonlStore(f"jsonl://{path}", create=False) as store:
            cursor = None
            while True:
                batch, cursor = await store.scan(cursor, 100)
                found += batch
                if cursor is None:
                    return found

    try:
        records = asyncio.run(read_all())
    except SnapshotParseError as exc:
        assert str(path) in str(exc) and "line" in str(exc)
    else:
        for rec in records:
            is_expired(rec, time.time())
