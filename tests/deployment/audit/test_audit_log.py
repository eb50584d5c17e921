"""The audit log on real SQLite and PostgreSQL: append-only, hash-chained, exportable."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import uuid

import asyncpg
import pytest

from deployment.audit import AuditEntry, open_audit_log
from deployment.audit.entry import entry_hash, format_ts, parse_since
from deployment.audit.export import export_entries
from deployment.errors import BadInput


@pytest.fixture(params=["sqlite", "postgresql"])
def audit_url(request, tmp_path):
    """A fresh audit log URL of each kind (the PostgreSQL table dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path}/audit.db"
        return
    base = request.getfixturevalue("pg_base")
    table = f"audit_{uuid.uuid4().hex[:10]}"
    yield f"{base}?table={table}"

    async def drop() -> None:
        conn = await asyncpg.connect(base)
        await conn.execute(f"DROP TABLE IF EXISTS {table}; DROP FUNCTION IF EXISTS {table}_refuse()")
        await conn.close()

    asyncio.run(drop())


def entry(n: int, migration: str = "sessions-1", **extra) -> AuditEntry:
    return AuditEntry(
        ts=f"2026-11-25T10:{n:02d}:00.000000Z", actor="alice", host="ops1", event=f"step_{n}", migration_id=migration,
        workflow_id=migration, run_id="run-1", before={"n": n - 1}, after={"n": n}, **extra,
    )  # fmt: skip


async def filled(url: str, count: int = 5) -> None:
    async with open_audit_log(url) as log:
        for n in range(1, count + 1):
            await log.append(entry(n))


async def tamper(url: str, *statements: str) -> None:
    """Run statements on the log's table with its triggers dropped: what an intruder with DDL rights could do."""
    async with open_audit_log(url) as log:
        t = log.table
        if url.startswith("sqlite"):
            db = log.db
            db.execute(f"DROP TRIGGER {t}_no_update")
            db.execute(f"DROP TRIGGER {t}_no_delete")
            for s in statements:
                db.execute(s.format(t=t))
        else:
            await log.conn.execute(f"DROP TRIGGER {t}_no_change ON {t}")
            for s in statements:
                await log.conn.execute(s.format(t=t))


async def first_problem(url: str) -> tuple[int, str, str]:
    async with open_audit_log(url) as log:
        report = await log.verify()
    assert not report.ok
    p = report.problems[0]
    return p.seq, p.kind, p.message


async def test_appended_entries_are_chained_and_verify(audit_url):
    await filled(audit_url)
    async with open_audit_log(audit_url) as log:
        rows = await log.entries()
        report = await log.verify()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == "0" * 64 and all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:]))
    assert rows[2].after == {"n": 3} and rows[2].actor == "alice" and rows[2].host == "ops1"
    assert report.ok and report.entries == 5 and report.head == rows[-1].hash and report.problems == []


async def test_update_and_delete_are_refused_by_the_database(audit_url):
    await filled(audit_url, 2)
    async with open_audit_log(audit_url) as log:
        for sql in (f"UPDATE {log.table} SET actor = 'mallory'", f"DELETE FROM {log.table} WHERE seq = 1"):
            if audit_url.startswith("sqlite"):
                with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                    log.db.execute(sql)
            else:
                with pytest.raises(asyncpg.PostgresError, match="append-only"):
                    await log.conn.execute(sql)
        if not audit_url.startswith("sqlite"):
            with pytest.raises(asyncpg.PostgresError, match="append-only: TRUNCATE"):
                await log.conn.execute(f"TRUNCATE {log.table}")
        assert len(await log.entries()) == 2 and (await log.verify()).ok


async def test_an_edited_entry_is_named(audit_url):
    await filled(audit_url)
    await tamper(audit_url, "UPDATE {t} SET after = '{{\"n\":300}}' WHERE seq = 3")
    seq, kind, message = await first_problem(audit_url)
    assert (seq, kind) == (3, "edited") and "entry #3 (step_3" in message


async def test_a_removed_entry_is_named(audit_url):
    await filled(audit_url)
    await tamper(audit_url, "DELETE FROM {t} WHERE seq = 3")
    seq, kind, message = await first_problem(audit_url)
    assert (seq, kind) == (3, "removed") and message.startswith("entry #3 was removed")


async def test_reordered_entries_are_named(audit_url):
    await filled(audit_url)
    await tamper(audit_url, "UPDATE {t} SET seq = 100 WHERE seq = 2", "UPDATE {t} SET seq = 2 WHERE seq = 3",
                 "UPDATE {t} SET seq = 3 WHERE seq = 100")  # fmt: skip
    seq, kind, message = await first_problem(audit_url)
    assert (seq, kind) == (2, "reordered") and "entry #2 (step_3" in message


async def test_an_entry_rewritten_with_a_fresh_hash_is_still_caught(audit_url):
    await filled(audit_url)
    async with open_audit_log(audit_url) as log:
        third = (await log.entries())[2]
    forged = third.model_copy(update={"actor": "mallory"})
    new_hash = entry_hash(forged, forged.prev_hash)
    await tamper(audit_url, f"UPDATE {{t}} SET actor = 'mallory', hash = '{new_hash}' WHERE seq = 3")
    seq, kind, message = await first_problem(audit_url)
    assert (seq, kind) == (3, "broken_link") and "entry #4" in message


async def test_an_append_with_a_key_seen_before_adds_nothing(audit_url):
    async with open_audit_log(audit_url) as log:
        a = await log.append(entry(1, key="run-1:7"))
        b = await log.append(entry(2, key="run-1:7"))
        assert a == b and len(await log.entries()) == 1


async def test_concurrent_writers_never_fork_the_chain(audit_url):
    logs = [open_audit_log(audit_url) for _ in range(2)]
    for log in logs:
        await log.open()
    try:
        await asyncio.gather(*(logs[n % 2].append(entry(n % 60)) for n in range(1, 31)))
        report = await logs[0].verify()
        assert report.ok and report.entries == 30
        assert [e.seq for e in await logs[1].entries()] == list(range(1, 31))
    finally:
        for log in logs:
            await log.close()


async def test_passwords_in_states_are_scrubbed(audit_url):
    async with open_audit_log(audit_url) as log:
        await log.append(entry(1).model_copy(update={"before": {"source": "postgresql://bob:hunter2@db/x", "n": [1]}}))
        (stored,) = await log.entries()
    assert stored.before == {"source": "postgresql://bob:***@db/x", "n": [1]}
    assert "hunter2" not in export_entries([stored], "jsonl")


async def test_export_filters_by_time_and_migration_in_jsonl_and_csv(audit_url):
    async with open_audit_log(audit_url) as log:
        for n in range(1, 7):
            await log.append(entry(n, migration="sessions-a" if n % 2 else "sessions-b"))
        picked = await log.entries(since=parse_since("2026-11-25T10:03:00Z"), migration="sessions-a")
    assert [e.event for e in picked] == ["step_3", "step_5"]
    lines = [json.loads(line) for line in export_entries(picked, "jsonl").splitlines()]
    assert [line["seq"] for line in lines] == [3, 5] and lines[0]["after"] == {"n": 3}
    rows = list(csv.DictReader(io.StringIO(export_entries(picked, "csv"))))
    assert [r["event"] for r in rows] == ["step_3", "step_5"] and json.loads(rows[1]["before"]) == {"n": 4}


def test_since_accepts_dates_and_ages_and_refuses_the_rest():
    assert parse_since("2026-11-25") == "2026-11-25T00:00:00.000000Z"
    assert parse_since("2026-11-25T12:00:00+02:00") == "2026-11-25T10:00:00.000000Z"
    assert parse_since("2h") < format_ts(__import__("datetime").datetime.now(__import__("datetime").timezone.utc))
    with pytest.raises(BadInput, match="neither an ISO"):
        parse_since("yesterday")


def test_an_unknown_audit_url_is_bad_input():
    with pytest.raises(BadInput, match="scheme 'redis'"):
        open_audit_log("redis://x:secret@h/0")
    with pytest.raises(BadInput) as exc:
        open_audit_log("redis://x:secret@h/0")
    assert "secret" not in str(exc.value)
