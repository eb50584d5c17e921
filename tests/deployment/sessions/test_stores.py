"""Every driver against its real service: exact round trips, journal, undo, upstream semantics."""

from __future__ import annotations

import time

import pytest
import redis as redis_sync

from deployment.errors import SnapshotParseError, StoreMissing, StoreUnreachable, UnknownStoreScheme
from deployment.sessions.record import canonical_bytes, expires_at, normalize
from deployment.sessions.snapshot import generate_sessions, write_snapshot
from deployment.sessions.stores import open_store
from deployment.sessions.stores.base import QuotaExceeded, redact_url

WRITABLE = ["sqlite_url", "redis_url", "pg_url"]


@pytest.fixture(params=WRITABLE)
def store_url(request) -> str:
    return request.getfixturevalue(request.param)


def sessions(n: int, now: float | None = None) -> list[dict]:
    return list(generate_sessions(n, now=now or time.time(), expired_fraction=0.0))


async def all_records(store) -> dict[str, bytes]:
    return {r["id"]: canonical_bytes(r) async for batch in store.iter_records(37) for r in batch}


async def test_write_then_scan_returns_every_record_byte_for_byte(store_url):
    recs = sessions(250)
    recs[0]["metadata"]["nul"] = "a\u0000b"  # jsonb would refuse this; our stores keep it
    async with open_store(store_url) as store:
        await store.write_many(recs)
        assert await store.count() == 250
        assert await all_records(store) == {r["id"]: canonical_bytes(r) for r in recs}
        some = await store.read_many([recs[3]["id"], "absent"])
        assert list(some) == [recs[3]["id"]] and canonical_bytes(some[recs[3]["id"]]) == canonical_bytes(recs[3])


async def test_journal_keeps_the_first_prior_and_undo_restores_exactly(store_url):
    recs = sessions(40)
    async with open_store(store_url) as store:
        await store.write_many(recs[:10])  # found in the target before the migration
        before = await all_records(store)
        changed = [{**r, "metadata": {"changed": True}} for r in recs[:10]] + recs[10:]
        await store.write_journaled("m1", changed)
        await store.write_journaled("m1", [{**r, "stats": {"again": 1}} for r in recs[:5]])  # a retried batch
        assert await store.journal_ids() == ["m1"]
        assert await store.undo("m1") == 40
        assert await all_records(store) == before
        assert await store.journal_ids() == []
        assert await store.undo("m1") == 0  # idempotent


async def test_upstream_semantics(store_url):
    async with open_store(store_url) as store:
        created = await store.create("alpha", ttl=100, metadata={"k": 1})
        again = await store.create("alpha", ttl=5)
        assert again == created  # create is idempotent
        stamp = created["last_accessed"]
        time.sleep(0.01)
        assert await store.exists("alpha") and await store.list_ids() == ["alpha"]
        assert (await store.read_many(["alpha"]))["alpha"]["last_accessed"] == stamp  # listing refreshes nothing
        got = await store.get("alpha")
        assert got["last_accessed"] > stamp
        updated = await store.update("alpha", {"last_worker_id": "w1"})
        assert updated["last_worker_id"] == "w1" and updated["metadata"] == {"k": 1}
        assert (await store.stats())["live"] == 1
        await store.delete("alpha")
        assert not await store.exists("alpha") and await store.get("alpha") is None


async def test_quota_refuses_creates_past_max_sessions(store_url):
    url = store_url + ("&" if "?" in store_url else "?") + "max_sessions=2"
    async with open_store(url) as store:
        await store.create("a")
        await store.create("b")
        with pytest.raises(QuotaExceeded, match="quota of 2"):
            await store.create("c")


async def test_expired_sessions_are_not_served(store_url):
    now = time.time()
    old = normalize({"id": "old", "ttl": 10, "created_at": now - 100, "last_accessed": now - 50})
    async with open_store(store_url) as store:
        await store.write_many([old])
        assert await store.get("old") is None
        assert not await store.exists("old")


async def test_redis_key_expires_when_the_session_does(redis_url):
    rec = sessions(1)[0]
    async with open_store(redis_url) as store:
        await store.write_many([rec])
        key = store.prefix + rec["id"]
    r = redis_sync.Redis.from_url(redis_url.split("?")[0])
    expire_ms = r.pexpiretime(key)
    assert 0 <= expire_ms - expires_at(rec) * 1000 < 1


async def test_jsonl_reads_and_reports_malformed_lines_with_file_and_line(tmp_path):
    path = tmp_path / "snap.jsonl"
    recs = sessions(5)
    write_snapshot(path, iter(recs))
    async with open_store(f"jsonl://{path}") as store:
        assert await all_records(store) == {r["id"]: canonical_bytes(r) for r in recs}
        assert await store.count() == 5
    with path.open("ab") as fh:
        fh.write(b"\n{\"id\": \"x\", \"ttl\": -3, \"created_at\": 1, \"last_accessed\": 1}\n")
    async with open_store(f"jsonl://{path}") as store:
        with pytest.raises(SnapshotParseError) as caught:
            await all_records(store)
    assert f"{path}, line 7" in str(caught.value) and "'ttl'" in str(caught.value)


async def test_jsonl_target_is_published_on_finalize_and_undone_completely(tmp_path):
    path = tmp_path / "out.jsonl"
    recs = sessions(30)
    async with open_store(f"jsonl://{path}") as store:
        await store.write_journaled("m", recs[:20])
        mark = await store.checkpoint()
        await store.write_journaled("m", recs[20:])
        await store.restore_checkpoint(mark)  # a crash after the checkpoint: the tail is cut back
        await store.write_journaled("m", recs[20:])
        assert not path.exists()
        await store.finalize()
        assert path.read_bytes() == b"".join(canonical_bytes(r) + b"\n" for r in recs)
        await store.undo("m")
        assert not path.exists() and await store.journal_ids() == []


@pytest.mark.parametrize(
    "url, error, needle",
    [
        ("mysql://h/db", UnknownStoreScheme, "scheme 'mysql'"),
        ("sessions.jsonl", UnknownStoreScheme, "scheme '(none)'"),
        ("sqlite://relative/path.db", Exception, "absolute path"),
    ],
)
def test_bad_urls_are_refused_clearly(url, error, needle):
    with pytest.raises(error, match=needle.replace("(", r"\(").replace(")", r"\)")):
        open_store(url)


async def test_missing_sources_are_not_created(tmp_path, pg_base):
    for url in (f"jsonl://{tmp_path}/none.jsonl", f"sqlite://{tmp_path}/none.db", pg_base + "?table=no_such_table_x"):
        with pytest.raises(StoreMissing):
            async with open_store(url, create=False):
                pass
    assert list(tmp_path.iterdir()) == []


async def test_unreachable_services_name_the_redacted_url():
    with pytest.raises(StoreUnreachable) as caught:
        async with open_store("postgresql://bob:s3cret@127.0.0.1:1/db"):
            pass
    assert "s3cret" not in str(caught.value) and "bob:***@127.0.0.1:1" in str(caught.value)
    with pytest.raises(StoreUnreachable, match="redis"):
        async with open_store("redis://127.0.0.1:1/0"):
            pass


def test_redact_url():
    assert redact_url("postgresql://u:pw@h:5432/d?table=t") == "postgresql://u:***@h:5432/d?table=t"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"
