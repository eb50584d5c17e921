"""SessionRouter against real stores: modes, revisions, tombstones, acknowledgements."""

from __future__ import annotations

import time

import pytest

from deployment.sessions.record import TOMBSTONE, canonical_bytes
from deployment.sessions.router import RoutingState, SessionRouter, read_routing, routing_acks, write_routing
from deployment.sessions.stores import open_store


@pytest.fixture(params=["sqlite_url", "redis_url", "pg_url"])
def source_url(request) -> str:
    return request.getfixturevalue(request.param)


@pytest.fixture
async def stores(source_url, tmp_path):
    target_url = f"sqlite://{tmp_path}/target.db"
    source, target = open_store(source_url), open_store(target_url)
    await source.open()
    await target.open()
    yield source, target, target_url
    await source.close()
    await target.close()


async def router_on(source_url: str, name: str = "i1") -> SessionRouter:
    store = open_store(source_url)
    await store.open()
    return SessionRouter(store, ttl=600, instance_id=name, refresh_s=0)


async def test_source_mode_writes_only_the_source_with_revisions(source_url, stores):
    source, target, _ = stores
    router = await router_on(source_url)
    first = await router.begin("s1", "w1")
    await router.commit("s1", "w2", {"metadata": {"set": {"k": 1}, "deleted": []}})
    held = (await source.read_many(["s1"]))["s1"]
    assert first["rev"] == 1 and held["rev"] == 2 and held["metadata"] == {"k": 1} and held["last_worker_id"] == "w2"
    assert await target.count() == 0
    assert router.describe()["mode"] == "source"
    await router.close()


async def test_dual_write_keeps_both_stores_and_backfill_never_overwrites_newer(source_url, stores):
    source, target, target_url = stores
    router = await router_on(source_url)
    await router.begin("s1", "w1")
    stale = (await source.read_many(["s1"]))["s1"]  # what a backfill read before the live write below
    await write_routing(source, RoutingState("dual_write", 1, target_url, "m1"))
    await router.commit("s1", "w1", {"stats": {"set": {"calls": 5}, "deleted": []}})
    live = (await source.read_many(["s1"]))["s1"]
    assert canonical_bytes((await target.read_many(["s1"]))["s1"]) == canonical_bytes(live)
    assert await target.write_journaled("m1", [stale], only_newer=True) == 0  # the backfill arrives late
    assert (await target.read_many(["s1"]))["s1"]["stats"] == {"calls": 5}
    assert await target.journal_ids() == ["m1"]  # live writes to the target can be undone too
    await router.close()


async def test_delete_during_dual_write_leaves_a_tombstone_a_backfill_cannot_cross(source_url, stores):
    source, target, target_url = stores
    router = await router_on(source_url)
    await router.begin("gone", "w1")
    stale = (await source.read_many(["gone"]))["gone"]
    await write_routing(source, RoutingState("dual_write", 1, target_url, "m1"))
    await router.delete("gone")
    assert await source.read_many(["gone"]) == {}
    assert await target.write_journaled("m1", [stale], only_newer=True) == 0
    assert (await target.read_many(["gone"]))["gone"][TOMBSTONE] is True
    await write_routing(source, RoutingState("dual_write_read_target", 2, target_url, "m1"))
    reborn = await router.begin("gone", "w9")  # a client that comes back gets a fresh session
    assert reborn["rev"] > stale["rev"] and TOMBSTONE not in (await target.read_many(["gone"]))["gone"]
    await router.close()


async def test_read_target_then_target_mode_and_acknowledgements(source_url, stores):
    source, target, target_url = stores
    router, other = await router_on(source_url, "i1"), await router_on(source_url, "i2")
    await write_routing(source, RoutingState("dual_write_read_target", 2, target_url, "m1"))
    await router.refresh(force=True)
    await other.refresh(force=True)
    acks = await routing_acks(source, fresh_s=10)
    assert {k: v["epoch"] for k, v in acks.items()} == {"i1": 2, "i2": 2}
    await router.begin("t1", "w1")
    assert set(await source.read_many(["t1"])) == {"t1"} and set(await target.read_many(["t1"])) == {"t1"}
    await write_routing(source, RoutingState("target", 3, target_url, "m1"))
    await router.begin("t2", "w1")
    assert await source.read_many(["t2"]) == {} and set(await target.read_many(["t2"])) == {"t2"}
    assert (await read_routing(source)).mode == "target"
    time.sleep(0.05)
    assert await routing_acks(source, fresh_s=0.01) == {}  # stale acknowledgements do not count
    await router.close()
    await other.close()
