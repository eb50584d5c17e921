"""The re-key example without Temporal: its steps against real SQLite and Redis."""

from __future__ import annotations

import json
import time

import pytest
import redis

from deployment.extensions import ExtensionContext, Progress, StopApply
from deployment.extensions.rekey import RekeyParams, RekeySessions, renamed, with_prefix
from deployment.sessions.record import canonical_bytes, is_expired
from deployment.sessions.stores import open_store
from tests.deployment.extensions.helpers import fill, store_bytes


async def apply_in_pieces(ext, params, ctx, every: int) -> tuple[Progress, int]:
    """Run apply, ending each call after ``every`` checkpoints and resuming from the last one."""
    resume: Progress | None = None
    calls = 0
    while True:
        calls += 1
        seen = [0]

        async def report(p: Progress) -> None:
            nonlocal resume
            resume = p
            seen[0] += 1
            if seen[0] >= every:
                raise StopApply

        try:
            await ext.apply(params, ctx, resume, report)
            return resume, calls
        except StopApply:
            continue


async def test_rename_in_sqlite_resumed_from_checkpoints_verifies_and_rolls_back_exactly(sqlite_url):
    recs = await fill(sqlite_url, 300)
    before = await store_bytes(sqlite_url)
    ext, ctx = RekeySessions(), ExtensionContext("rk-1")
    params = RekeyParams(store=sqlite_url, from_key="tier", to_key="plan", batch_size=25)
    assert await ext.validate(params, ctx) == []
    live_now = [r for r in recs if not is_expired(r, time.time())]
    plan = await ext.plan(params, ctx)
    assert (plan.total, plan.to_change) == (300, len(live_now))

    last, calls = await apply_in_pieces(ext, params, ctx, every=3)
    assert calls >= 4 and last.checkpoint["finished"] and last.changed == len(live_now)
    after = await store_bytes(sqlite_url)
    assert all(after[r["id"]] == canonical_bytes(renamed(r, "tier", "plan")) for r in live_now)
    check = await ext.verify(params, ctx)
    assert check.ok and check.checked == len(live_now)

    undone = await ext.rollback(params, ctx)
    assert undone.restored == len(live_now)
    assert await store_bytes(sqlite_url) == before
    assert (await ext.rollback(params, ctx)).restored == 0  # idempotent
    assert await store_bytes(sqlite_url) == before


async def test_verify_names_a_session_written_wrongly_and_one_left_over(sqlite_url):
    await fill(sqlite_url, 50, expired_fraction=0)
    ext, ctx = RekeySessions(), ExtensionContext("rk-2")
    params = RekeyParams(store=sqlite_url, from_key="tier", to_key="plan")
    await ext.apply(params, ctx, None, _ignore)
    async with open_store(sqlite_url) as store:
        first, _ = await store.scan(None, 2)
        first[0]["metadata"]["plan"] = "tampered"
        first[1]["metadata"]["tier"] = "back"
        await store.write_many(first)
    check = await ext.verify(params, ctx)
    assert not check.ok
    assert any(first[0]["id"] in p for p in check.problems)
    assert any("still have key 'tier'" in p and first[1]["id"] in p for p in check.problems)


async def test_a_clash_on_the_new_key_is_refused_unless_overwrite(sqlite_url):
    recs = await fill(sqlite_url, 20, expired_fraction=0)
    async with open_store(sqlite_url) as store:
        await store.write_many([{**recs[3], "metadata": {**recs[3]["metadata"], "plan": "x"}}])
    ext, ctx = RekeySessions(), ExtensionContext("rk-3")
    problems = await ext.validate(RekeyParams(store=sqlite_url, from_key="tier", to_key="plan"), ctx)
    assert problems == [f"1 session(s) already have a metadata key 'plan' (e.g. {recs[3]['id']}); "
                        "pass \"overwrite\": true to replace its value, or choose another to_key"]  # fmt: skip
    assert await ext.validate(RekeyParams(store=sqlite_url, from_key="tier", to_key="plan", overwrite=True), ctx) == []


async def test_moving_redis_keys_to_a_new_prefix_keeps_bytes_and_expiry_and_rolls_back(redis_url, redis_base):
    recs = await fill(redis_url, 200)
    before = await store_bytes(redis_url)
    new_prefix = redis_url.rsplit("prefix=", 1)[1] + "v2:"
    ext, ctx = RekeySessions(), ExtensionContext("rk-4")
    params = RekeyParams(store=redis_url, to_prefix=new_prefix.replace(":v2:", "-v2:"), batch_size=30)
    assert await ext.validate(params, ctx) == []
    overlap = RekeyParams(store=redis_url, to_prefix=new_prefix)
    assert "overlap" in (await ext.validate(overlap, ctx))[0]
    target = with_prefix(redis_url, params.to_prefix)

    try:
        await _move_and_back(ext, params, ctx, redis_url, redis_base, target, before)
    finally:  # the fixture cleans the old prefix only
        async with open_store(target) as t:
            await t.delete_many(list(before))
            await t.journal_drop(ctx.run_id)
    assert len(recs) >= len(before)


async def _move_and_back(ext, params, ctx, redis_url, redis_base, target, before) -> None:
    last, calls = await apply_in_pieces(ext, params, ctx, every=2)
    assert calls >= 2
    assert await store_bytes(redis_url) == {}
    moved = await store_bytes(target)
    assert moved == before and last.changed == len(before)
    r = redis.Redis.from_url(redis_base)
    old_prefix = redis_url.rsplit("prefix=", 1)[1]
    sid = next(iter(moved))
    assert r.pexpiretime(params.to_prefix + sid) > 0
    assert (await ext.verify(params, ctx)).ok

    undone = await ext.rollback(params, ctx)
    assert undone.restored == len(before)
    assert await store_bytes(redis_url) == before and await store_bytes(target) == {}
    assert r.pexpiretime(old_prefix + sid) > 0


async def test_a_snapshot_or_a_non_redis_prefix_move_is_refused(tmp_path, sqlite_url):
    await fill(sqlite_url, 3)
    ext, ctx = RekeySessions(), ExtensionContext("rk-5")
    assert "is a sqlite store" in (await ext.validate(RekeyParams(store=sqlite_url, to_prefix="x:"), ctx))[0]
    snap = tmp_path / "s.jsonl"
    snap.write_text("")
    assert "is a snapshot file" in (await ext.validate(RekeyParams(store=f"jsonl://{snap}", from_key="a", to_key="b"), ctx))[0]


@pytest.mark.parametrize("params, message", [
    ({"store": "x"}, "give from_key and to_key"),
    ({"store": "x", "from_key": "a", "to_key": "a"}, "nothing to rename"),
    ({"store": "x", "from_key": "a", "to_key": "b", "to_prefix": "p"}, "not both"),
    ({"store": "x", "from_key": "a", "to_key": "b", "colour": 1}, "Extra inputs"),
])  # fmt: skip
def test_bad_parameters_say_what_is_wrong(params, message):
    with pytest.raises(ValueError, match=message):
        RekeyParams.model_validate(params)


async def _ignore(p: Progress) -> None:
    return None


@pytest.fixture(params=["sqlite_url", "redis_url", "pg_url"])
def live_store_url(request) -> str:
    """Each kind of live store in turn (set up outside the event loop: the service probes run their own)."""
    return request.getfixturevalue(request.param)


async def test_rename_round_trip_in_every_live_store(live_store_url):
    url, kind = live_store_url, live_store_url.split(":")[0]
    await fill(url, 120, expired_fraction=0)
    before = await store_bytes(url)
    ext, ctx = RekeySessions(), ExtensionContext(f"rk-{kind}")
    params = RekeyParams(store=url, from_key="tier", to_key="plan", batch_size=16)
    last, _ = await apply_in_pieces(ext, params, ctx, every=2)
    assert last.changed == len(before) == 120
    after = await store_bytes(url)
    assert after == {sid: canonical_bytes(renamed(json.loads(b), "tier", "plan")) for sid, b in before.items()}
    assert (await ext.verify(params, ctx)).ok
    assert (await ext.rollback(params, ctx)).restored == 120
    assert await store_bytes(url) == before


async def test_a_move_onto_a_held_id_needs_overwrite_and_its_rollback_puts_the_old_value_back(redis_url):
    recs = await fill(redis_url, 30, expired_fraction=0)
    new_prefix = redis_url.rsplit("prefix=", 1)[1].rstrip(":") + "-new:"
    target = with_prefix(redis_url, new_prefix)
    held = {**recs[5], "metadata": {"note": "already under the new prefix"}}
    async with open_store(target) as t:
        await t.write_many([held])
    target_before = await store_bytes(target)
    ext, ctx = RekeySessions(), ExtensionContext("rk-6")
    problems = await ext.validate(RekeyParams(store=redis_url, to_prefix=new_prefix), ctx)
    assert problems and problems[0].startswith(f"1 session id(s) already exist under prefix {new_prefix!r} (e.g. {recs[5]['id']})")
    params = RekeyParams(store=redis_url, to_prefix=new_prefix, overwrite=True)
    assert await ext.validate(params, ctx) == []
    before = await store_bytes(redis_url)
    await ext.apply(params, ctx, None, _ignore)
    assert (await store_bytes(target))[recs[5]["id"]] == canonical_bytes(recs[5])
    assert (await ext.verify(params, ctx)).ok
    await ext.rollback(params, ctx)
    try:
        assert await store_bytes(target) == target_before and await store_bytes(redis_url) == before
    finally:  # the fixture cleans the old prefix only
        async with open_store(target) as t:
            await t.delete_many([recs[5]["id"]])
